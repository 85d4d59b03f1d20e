//! OpenAI wire types and the backends sluicegate forwards to.
//!
//! Every backend implements [`ChatBackend`] and answers in OpenAI's format, whatever it
//! speaks upstream: [`openai`] for any OpenAI-compatible API, [`anthropic`] for the
//! Messages API.

pub mod anthropic;
mod backend;
pub mod local;
pub mod openai;
mod upstream;
pub mod wire;

pub use backend::{BackendError, ChatBackend, ChunkStream, TimeoutPhase};
pub use upstream::ApiKey;
