//! The HTTP backends sluicegate forwards to, each a [`ChatBackend`](sluicegate_wire::ChatBackend)
//! answering in OpenAI's format whatever it speaks upstream: [`openai`] for any
//! OpenAI-compatible API, [`anthropic`] for the Messages API; `upstream` holds the shared
//! plumbing (one client per backend, three deadlines, error mapping, SSE).

pub mod anthropic;
pub mod openai;
mod upstream;

pub use upstream::ApiKey;
