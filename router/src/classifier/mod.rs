//! The classifier's scorers: what turns an embedding from `sluicegate-encoder` into a class.
//!
//! - [`examples`]: classes declared by example utterances (no training).
//! - [`head`]: a trained softmax/MLP head stored as safetensors, tied to its encoder.
//! - [`train`]: training and calibrating heads on labelled JSONL.
//! - [`metrics`]: evaluation arithmetic (accuracy, F1, thresholds, percentiles).
//! - [`setup`]: the scorer a policy's `[classifier]` asks for, and the encoder service for it.

pub mod examples;
pub mod head;
pub mod metrics;
pub mod setup;
pub mod train;

pub use examples::{ExampleScorer, ExampleStrategy};
pub use head::Head;
pub use sluicegate_encoder::{cosine, softmax, Classifier, ClassifyError, Scorer, Verdict};
