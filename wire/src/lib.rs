//! The wire types sluicegate speaks and the one trait every backend implements.
//!
//! - [`openai`]: OpenAI Chat Completions types, what clients send and get back (re-exported at
//!   the crate root: they are the gateway's lingua franca).
//! - [`anthropic`]: the Anthropic Messages API types the Anthropic backend sends and reads.
//! - [`ChatBackend`]: a model backend (an HTTP API or a model in this process), with its typed
//!   errors ([`BackendError`]).
//! - [`Health`]: the one health state of anything that loads a model on its own thread.

pub mod anthropic;
mod backend;
mod health;
pub mod openai;

pub use backend::{BackendError, ChatBackend, ChunkStream, TimeoutPhase};
pub use health::Health;
pub use openai::*;
