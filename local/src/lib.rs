//! Sluicegate's in-process LLM engine: a llama-family GGUF chat model served on its own
//! thread, behind the same [`ChatBackend`](sluicegate_wire::ChatBackend) as every HTTP backend.
//!
//! - [`model`]: the GGUF's configuration and a batched llama-style forward pass over its
//!   quantized weights (llama, Qwen2, Qwen3, Phi-3, Gemma 3); [`kv`]: a sequence's KV cache.
//! - [`kernels`]: the integer matmul and f32 kernels, one instruction set per file (AVX-512
//!   VNNI, AVX-512, AVX2, portable), chosen at run time ([`kernels::simd_paths`] names them).
//! - [`tokenizer`]: the tokenizer rebuilt from the GGUF metadata; [`template`]: the GGUF's
//!   chat template, rendered with minijinja.
//! - [`engine`]: the model thread, its bounded queue and continuous batching; a sequence's
//!   state, sampling, stop strings, the estimated wait for a slot.
//! - [`backend`]: [`LocalBackend`], the `ChatBackend` over all of it.
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

pub mod backend;
pub mod defaults;
pub mod engine;
pub mod grammar;
pub mod kernels;
pub mod kv;
pub mod model;
mod params;
pub mod template;
pub mod testing;
pub mod tokenizer;
pub mod tools;

use std::path::PathBuf;

pub use backend::LocalBackend;
pub use defaults::{Defaults, BUILT_IN_MAX_TOKENS};
pub use engine::SamplingParams;
pub use model::WeightFormat;

/// What can go wrong inside the local model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocalError {
    /// The model file is missing or cannot be used.
    #[error("{0}")]
    Model(String),
    /// The chat template failed on this conversation.
    #[error("{0}")]
    Template(String),
    #[error("the prompt needs {tokens} tokens but the model's context is {context}")]
    ContextExceeded { tokens: usize, context: usize },
}

impl From<candle_core::Error> for LocalError {
    fn from(e: candle_core::Error) -> Self {
        LocalError::Model(e.to_string())
    }
}

/// What to do with a prompt longer than the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextOverflow {
    /// 400 `context_length_exceeded`, as OpenAI answers.
    #[default]
    Reject,
    /// A retryable error, so the gateway moves on to the route's fallback.
    Fallback,
}

/// Settings of a local backend.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The GGUF file.
    pub gguf: PathBuf,
    /// The model name reported in responses.
    pub model_name: String,
    /// Threads for the model's matmuls (candle's pool, process-wide; see [`LocalBackend::new`]).
    pub threads: usize,
    /// Sequences decoded together.
    pub max_batch: usize,
    /// Requests waiting for a slot; beyond it requests are refused with 429.
    pub queue: usize,
    /// Refuse (429 with `retry-after`) a request whose estimated wait for a slot is longer.
    pub max_wait: Option<std::time::Duration>,
    /// Context window; the model's own when `None`, never more than it.
    pub context: Option<usize>,
    pub on_context_overflow: ContextOverflow,
    /// Inserted as the system message of conversations that have none.
    pub system_prompt: Option<String>,
    pub weights: WeightFormat,
    /// What to generate with where the request does not say (see [`defaults`]).
    pub defaults: Defaults,
}

impl LocalOptions {
    /// Defaults for everything but the file.
    pub fn new(gguf: impl Into<PathBuf>) -> Self {
        let gguf = gguf.into();
        let model_name = gguf
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".to_owned());
        LocalOptions {
            gguf,
            model_name,
            threads: 2,
            max_batch: 8,
            queue: 32,
            max_wait: None,
            context: None,
            on_context_overflow: ContextOverflow::Reject,
            system_prompt: None,
            weights: WeightFormat::Q8_0,
            defaults: Defaults::default(),
        }
    }
}

/// Where a policy's `gguf` path is found: as given (a relative path is relative to the
/// working directory); failing that, when `SLUICEGATE_MODELS` is set, inside that folder
/// (`models/smollm2/x.gguf` is looked up as `$SLUICEGATE_MODELS/smollm2/x.gguf`).
pub fn resolve_gguf(path: &std::path::Path) -> PathBuf {
    if path.is_file() || path.is_absolute() {
        return path.to_owned();
    }
    if let Some(dir) = std::env::var_os("SLUICEGATE_MODELS") {
        let rest = path.strip_prefix("models").unwrap_or(path);
        let candidate = PathBuf::from(dir).join(rest);
        if candidate.is_file() {
            return candidate;
        }
    }
    path.to_owned()
}

impl LocalOptions {
    /// The options of a policy's `kind = "local"` backend (its `gguf` path resolved with
    /// [`resolve_gguf`]).
    pub fn from_policy(c: &sluicegate_policies::LocalConfig) -> Self {
        use sluicegate_policies::{ContextOverflow as C, LocalWeights as W};
        let mut o = LocalOptions::new(resolve_gguf(&c.gguf));
        o.model_name = c.model.clone();
        o.threads = c.threads;
        o.max_batch = c.max_batch;
        o.queue = c.queue;
        o.max_wait = c.max_wait;
        o.context = c.context.map(|n| n as usize);
        o.on_context_overflow = match c.on_context_overflow {
            C::Reject => ContextOverflow::Reject,
            C::Fallback => ContextOverflow::Fallback,
        };
        o.system_prompt = c.system_prompt.clone();
        o.defaults = Defaults {
            max_tokens: c.defaults.max_tokens,
            temperature: c.defaults.temperature,
            top_p: c.defaults.top_p,
            top_k: c.defaults.top_k.map(|k| k as usize),
            repetition_penalty: c.defaults.repetition_penalty,
        };
        o.weights = match c.weights {
            W::Q8_0 => WeightFormat::Q8_0,
            W::AsStored => WeightFormat::AsStored,
        };
        o
    }
}
