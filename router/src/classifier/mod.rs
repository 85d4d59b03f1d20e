//! The classifier's scorers: what turns an embedding from `sluicegate-encoder` into a class.
//!
//! - [`escalation`]: RouteLLM's escalation metrics (APGR, calls for a share of the gap).
//! - [`examples`]: classes declared by example utterances (no training).
//! - [`head`]: a trained softmax/MLP head stored as safetensors, tied to its encoder.
//! - [`train`]: training and calibrating heads on labelled JSONL.
//! - [`metrics`]: evaluation arithmetic (accuracy, F1, thresholds).
//! - [`scope`]: out of scope (`unknown`): too far from everything the scorer was built from.
//! - [`setup`]: the scorer a policy's `[classifier]` asks for, and the encoder service for it.

pub mod escalation;
pub mod examples;
pub mod head;
pub mod metrics;
pub mod scope;
pub mod setup;
pub mod train;

pub use examples::{ExampleScorer, ExampleStrategy};
pub use head::Head;
pub use scope::Scoped;
pub use sluicegate_encoder::{cosine, softmax, Classifier, ClassifyError, Scorer, Verdict};
