//! Backend for Anthropic's Messages API (`POST {base_url}/v1/messages`).
//!
//! Requests are translated from OpenAI's chat format (`request.rs`), whole responses back
//! into `chat.completion` (`response.rs`) and streamed events into chunks (`stream.rs`).
//! What the Messages API cannot express is refused (`n > 1`, audio parts) or dropped
//! (`seed`, `response_format`).

mod request;
mod response;
mod stream;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use sluicegate_policies::Timeouts;

use crate::upstream::HttpUpstream;
use sluicegate_wire::{BackendError, ChatBackend, ChunkStream};
use sluicegate_wire::{ChatCompletion, ChatRequest};

/// The `anthropic-version` this adapter is written against.
pub const DEFAULT_VERSION: &str = "2023-06-01";

const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
const VERSION_HEADER: HeaderName = HeaderName::from_static("anthropic-version");

/// An Anthropic Messages API upstream at `base_url` (e.g. `https://api.anthropic.com`).
#[derive(Debug)]
pub struct AnthropicBackend {
    url: String,
    model: String,
    default_max_tokens: u32,
    version: HeaderValue,
    http: HttpUpstream,
}

impl AnthropicBackend {
    /// `key_env` names the variable holding the API key (sent as `x-api-key`); `None` for
    /// a proxy that needs none. `default_max_tokens` caps replies when the client sets no
    /// cap (Anthropic requires one); `version` is sent as `anthropic-version`.
    pub fn new(
        base_url: &str,
        model: &str,
        key_env: Option<&str>,
        default_max_tokens: u32,
        version: &str,
        timeouts: Timeouts,
    ) -> Result<Self, BackendError> {
        let version = HeaderValue::from_str(version).map_err(|_| {
            BackendError::Unavailable(format!(
                "anthropic-version {version:?} is not a valid header value"
            ))
        })?;
        Ok(AnthropicBackend {
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            default_max_tokens,
            version,
            http: HttpUpstream::new(timeouts, key_env)?,
        })
    }

    fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, BackendError> {
        let mut headers = vec![(VERSION_HEADER, self.version.clone())];
        if let Some(key) = self.http.key() {
            headers.push((API_KEY_HEADER, key.header_value("")?));
        }
        Ok(headers)
    }
}

#[async_trait]
impl ChatBackend for AnthropicBackend {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn upstream_model(&self) -> &str {
        &self.model
    }

    fn check_available(&self) -> Result<(), BackendError> {
        self.http.check_key()
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, BackendError> {
        self.check_available()?;
        let body = request::to_messages_request(request, &self.model, self.default_max_tokens)?;
        let (response, deadlines) = self
            .http
            .post_json(&self.url, &self.headers()?, &body)
            .await?;
        let response: sluicegate_wire::anthropic::MessagesResponse =
            self.http.read_json(response, deadlines).await?;
        Ok(response::to_chat_completion(response))
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChunkStream, BackendError> {
        self.check_available()?;
        let mut body = request::to_messages_request(request, &self.model, self.default_max_tokens)?;
        body.stream = Some(true);
        let (response, deadlines) = self
            .http
            .post_json(&self.url, &self.headers()?, &body)
            .await?;
        let events = self.http.sse_events(response, deadlines);
        Ok(stream::chunks_from_events(events, self.http.key().cloned()))
    }
}

#[cfg(test)]
mod tests;
