//! OpenAI Chat Completions wire types: what clients send and what they get back.
//!
//! Every struct keeps unknown fields in an `extra` map (`#[serde(flatten)]`), so a field
//! this gateway does not know about is passed through to the backend, not dropped.

mod chunk;
mod error;
mod request;
mod response;

pub use chunk::{ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta};
pub use error::{ErrorBody, ErrorDetail};
pub use request::{
    ChatRequest, Content, ContentPart, FunctionCall, Message, Role, Stop, StreamOptions, Tool,
    ToolCall, ToolFunction,
};
pub use response::{ChatCompletion, Choice, ModelList, ModelObject, Usage};

/// Unknown fields, kept in their original order.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Seconds since the Unix epoch, as OpenAI's `created` field.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
