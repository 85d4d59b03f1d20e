//! The on-box sentence encoder: all-MiniLM-L6-v2, its kernels, and the thread that runs it.
//!
//! - [`model`]: the model itself ([`Encoder`]: tokenise, BERT, mean-pool, L2-normalise), run by
//!   [`fused`]'s packed, padding-free forward pass; [`reference`] is candle's `BertModel`, the
//!   oracle the tests compare against.
//! - [`matmul`], `kernels`, [`dense`]: the vector kernels (AVX-512, AVX2 + FMA, portable),
//!   chosen at run time; [`kernels::simd_paths`] names the ones this CPU runs.
//! - [`service`]: one OS thread owns the model; requests arrive over a bounded channel and are
//!   batched dynamically; health is published on a `watch` channel. [`EncoderHandle`]
//!   implements [`Classifier`] with whatever [`Scorer`] the caller's set-up built.
//! - [`cache`]: embeddings of fixed texts (class examples, training sets) cached on disk.
//!
//! The scorers themselves (class examples, trained heads) live in `sluicegate-router`.
//!
//! Unsafe code (the vector kernels) is allowed in this crate only (the workspace denies it
//! elsewhere). Every `unsafe` block states the invariant it relies on in a `SAFETY:` comment,
//! every `unsafe fn` says what its caller must guarantee in a `# Safety` section, and an
//! `unsafe fn` body is no unsafe context: its unsafe operations sit in commented blocks too. A
//! kernel that is unsafe only for its `#[target_feature]` is a safe `#[target_feature]` fn,
//! called from other code after a run-time feature check, in a commented `unsafe` block.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cache;
pub mod dense;
pub mod fused;
pub mod kernels;
pub mod matmul;
pub mod model;
pub mod reference;
pub mod service;

use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

pub use dense::Dense;
pub use model::{cosine, Encoder, EncoderFiles};
pub use service::{EncoderHandle, ServiceOptions, Setup};
pub use sluicegate_wire::Health;

/// Why no classification was produced. The gateway then uses `on_classifier_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("classifier is still loading")]
    Loading,
    #[error("classifier failed: {0}")]
    Failed(String),
    #[error("classifier overloaded: request queue is full")]
    Overloaded,
    #[error("classifier timed out after {0} ms")]
    Timeout(u64),
    #[error("classifier stopped")]
    Closed,
    #[error("model error: {0}")]
    Model(String),
}

impl ClassifyError {
    /// A short stable name for logs and headers.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Failed(_) => "failed",
            Self::Overloaded => "overloaded",
            Self::Timeout(_) => "timeout",
            Self::Closed => "closed",
            Self::Model(_) => "model",
        }
    }
}

/// A classifier verdict with what it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub class: String,
    /// Probability of `class`, in `0.0..=1.0`.
    pub confidence: f32,
    /// The three most likely classes, best first.
    pub top: Vec<(String, f32)>,
    /// Wall time of the classification (queueing included).
    pub millis: f64,
    /// Cosine similarity to the nearest text the scorer was built from (a class example, a
    /// head's training row), when the scorer keeps them: how familiar the request is.
    pub similarity: Option<f32>,
    /// The request is out of scope: unlike everything the scorer was built from (similarity
    /// under the policy's `min_similarity`), or a head's out-of-scope label won.
    pub unknown: bool,
}

/// Maps an embedding to class probabilities. Cheap; runs on the caller's thread.
pub trait Scorer: Send + Sync + Debug {
    /// The class names, in the scorer's order.
    fn labels(&self) -> &[String];
    /// One probability per label (same order), summing to at most 1 (a scorer may keep a
    /// share for "none of these").
    fn probabilities(&self, embedding: &[f32]) -> Vec<f32>;

    /// Cosine similarity of `embedding` to the nearest text the scorer was built from, if the
    /// scorer keeps those texts' embeddings.
    fn similarity(&self, _embedding: &[f32]) -> Option<f32> {
        None
    }

    /// The label that means "none of the classes" (a head trained with `--oos-label`).
    fn oos_label(&self) -> Option<&str> {
        None
    }

    /// The verdict for one embedding (without timing). `unknown` is set when the out-of-scope
    /// label wins; a similarity threshold is applied by the caller that knows it.
    fn verdict(&self, embedding: &[f32]) -> Option<Verdict> {
        let probs = self.probabilities(embedding);
        let mut ranked: Vec<(String, f32)> = self
            .labels()
            .iter()
            .cloned()
            .zip(probs.iter().copied())
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(3);
        let (class, confidence) = ranked.first().cloned()?;
        let unknown = self.oos_label() == Some(class.as_str());
        Some(Verdict {
            class,
            confidence,
            top: ranked,
            millis: 0.0,
            similarity: self.similarity(embedding),
            unknown,
        })
    }
}

/// What the gateway holds: classify a text, embed texts, report health. Object safe.
#[async_trait]
pub trait Classifier: Send + Sync + Debug {
    /// Unit-length embeddings of `texts`, in order.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ClassifyError>;
    /// The verdict for one text.
    async fn classify(&self, text: String) -> Result<Verdict, ClassifyError>;
    /// Current health.
    fn health(&self) -> Health;
}

/// Numerically stable softmax of `scores / temperature`.
pub fn softmax(scores: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| ((s - max) / t).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter()
        .map(|e| e / sum.max(f32::MIN_POSITIVE))
        .collect()
}
