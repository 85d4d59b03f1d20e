//! Backend for any OpenAI-compatible chat API: OpenAI itself, vLLM, llama.cpp's server, Ollama.

use async_trait::async_trait;
use futures::StreamExt;
use http::{header, HeaderName, HeaderValue};
use sluicegate_policies::Timeouts;

use crate::upstream::HttpUpstream;
use sluicegate_wire::{BackendError, ChatBackend, ChunkStream};
use sluicegate_wire::{ChatCompletion, ChatCompletionChunk, ChatRequest, StreamOptions};

/// An OpenAI-compatible upstream at `base_url` (e.g. `https://api.openai.com/v1`).
#[derive(Debug)]
pub struct OpenAiBackend {
    url: String,
    model: String,
    http: HttpUpstream,
}

impl OpenAiBackend {
    /// `key_env` names the variable holding the API key; `None` for servers without keys.
    pub fn new(
        base_url: &str,
        model: &str,
        key_env: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Self, BackendError> {
        Ok(OpenAiBackend {
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            http: HttpUpstream::new(timeouts, key_env)?,
        })
    }

    fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, BackendError> {
        let mut headers = Vec::new();
        if let Some(key) = self.http.key() {
            headers.push((header::AUTHORIZATION, key.header_value("Bearer ")?));
        }
        Ok(headers)
    }
}

#[async_trait]
impl ChatBackend for OpenAiBackend {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn upstream_model(&self) -> &str {
        &self.model
    }

    fn check_available(&self) -> Result<(), BackendError> {
        self.http.check_key()
    }

    async fn complete(&self, mut request: ChatRequest) -> Result<ChatCompletion, BackendError> {
        self.check_available()?;
        request.stream = None;
        request.stream_options = None;
        let (response, deadlines) = self
            .http
            .post_json(&self.url, &self.headers()?, &request)
            .await?;
        self.http.read_json(response, deadlines).await
    }

    async fn stream(&self, mut request: ChatRequest) -> Result<ChunkStream, BackendError> {
        self.check_available()?;
        request.stream = Some(true);
        // Always ask for usage: the gateway accounts for every token and strips the usage
        // chunk again when the client did not ask for it.
        let mut options = request.stream_options.take().unwrap_or(StreamOptions {
            include_usage: None,
            extra: Default::default(),
        });
        options.include_usage = Some(true);
        request.stream_options = Some(options);
        let (response, deadlines) = self
            .http
            .post_json(&self.url, &self.headers()?, &request)
            .await?;
        let events = self.http.sse_events(response, deadlines);
        Ok(chunks_from_events(events))
    }
}

/// Turns OpenAI SSE events into chunks; `[DONE]` ends the stream, and a stream that ends
/// without it is reported as cut off.
fn chunks_from_events(
    events: futures::stream::BoxStream<'static, Result<eventsource_stream::Event, BackendError>>,
) -> ChunkStream {
    futures::stream::unfold((events, false), |(mut events, finished)| async move {
        if finished {
            return None;
        }
        loop {
            let item = match events.next().await {
                None => Err(BackendError::Protocol(
                    "upstream stream ended before [DONE]".into(),
                )),
                Some(Err(e)) => Err(e),
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data == "[DONE]" {
                        return None;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    parse_chunk(data)
                }
            };
            let stop = item.is_err();
            return Some((item, (events, stop)));
        }
    })
    .boxed()
}

fn parse_chunk(data: &str) -> Result<ChatCompletionChunk, BackendError> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| BackendError::Protocol(format!("invalid JSON in stream: {e}")))?;
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("upstream reported an error mid-stream");
        return Err(BackendError::Upstream {
            status: 502,
            retry_after: None,
            message: message.to_owned(),
            code: error
                .get("code")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        });
    }
    serde_json::from_value(value)
        .map_err(|e| BackendError::Protocol(format!("invalid chunk in stream: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_parse_and_errors_are_typed() {
        let chunk = parse_chunk(
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"x_new":1}"#,
        )
        .unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("Hi"));
        assert_eq!(chunk.extra["x_new"], 1);
        let err = parse_chunk(r#"{"error":{"message":"overloaded","code":"busy"}}"#).unwrap_err();
        assert!(
            matches!(err, BackendError::Upstream { ref message, .. } if message == "overloaded")
        );
        assert!(matches!(
            parse_chunk("{oops"),
            Err(BackendError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn a_stream_without_done_is_reported_as_cut_off() {
        let events = futures::stream::iter(vec![Ok(eventsource_stream::Event {
            data: r#"{"id":"c","model":"m","choices":[]}"#.into(),
            ..Default::default()
        })])
        .boxed();
        let items: Vec<_> = chunks_from_events(events).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(&items[1], Err(BackendError::Protocol(m)) if m.contains("[DONE]")));
    }
}
