//! The client side of a streamed reply: `chat.completion.chunk` frames, then `[DONE]`.
//! A failure after the first frame is reported as an error frame before `[DONE]`.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use switchyard_adapters::wire::ChatCompletionChunk;
use switchyard_adapters::ChunkStream;

use crate::error::ApiError;

/// Builds the SSE response. The upstream was always asked for usage; it is passed on only
/// when the client asked for it (`stream_options.include_usage`).
pub fn sse_response(
    first: ChatCompletionChunk,
    rest: ChunkStream,
    include_usage: bool,
) -> Response {
    Sse::new(client_events(first, rest, include_usage)).into_response()
}

enum State {
    Streaming(ChunkStream),
    Done,
}

fn client_events(
    first: ChatCompletionChunk,
    rest: ChunkStream,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let chunks = stream::once(async move { Ok(first) }).chain(rest).boxed();
    stream::unfold(State::Streaming(chunks), move |state| async move {
        let State::Streaming(mut chunks) = state else {
            return None;
        };
        loop {
            match chunks.next().await {
                Some(Ok(mut chunk)) => {
                    if !include_usage {
                        if chunk.is_usage_only() {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    return Some((vec![chunk_event(&chunk)], State::Streaming(chunks)));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stream failed after the first frame");
                    let body = ApiError::Backend(e).body();
                    let error = Event::default().data(json(&body));
                    return Some((vec![error, done_event()], State::Done));
                }
                None => return Some((vec![done_event()], State::Done)),
            }
        }
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok)))
}

fn chunk_event(chunk: &ChatCompletionChunk) -> Event {
    Event::default().data(json(chunk))
}

fn done_event() -> Event {
    Event::default().data("[DONE]")
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"error":{{"message":"could not encode a frame: {e}","type":"api_error","param":null,"code":null}}}}"#)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_adapters::wire::{ChunkChoice, Delta, Usage};
    use switchyard_adapters::BackendError;

    fn chunk(text: &str) -> ChatCompletionChunk {
        let mut c = ChatCompletionChunk::new("c1", "m", 1);
        let delta = Delta {
            content: Some(text.into()),
            ..Default::default()
        };
        c.choices.push(ChunkChoice::new(0, delta, None));
        c
    }

    fn usage_chunk() -> ChatCompletionChunk {
        let mut c = ChatCompletionChunk::new("c1", "m", 1);
        c.usage = Some(Usage::new(3, 2));
        c
    }

    async fn frames(
        rest: Vec<Result<ChatCompletionChunk, BackendError>>,
        usage: bool,
    ) -> Vec<String> {
        let body = sse_response(chunk("a"), stream::iter(rest).boxed(), usage).into_body();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| f.trim_start_matches("data: ").to_owned())
            .collect()
    }

    #[tokio::test]
    async fn ends_with_done_and_strips_usage_unless_asked() {
        let f = frames(vec![Ok(chunk("b")), Ok(usage_chunk())], false).await;
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(f[2], "[DONE]");
        assert!(!f.iter().any(|x| x.contains("usage")));
        let f = frames(vec![Ok(chunk("b")), Ok(usage_chunk())], true).await;
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[2].contains("\"usage\""));
        assert_eq!(f[3], "[DONE]");
    }

    #[tokio::test]
    async fn a_failure_mid_stream_is_an_error_frame_then_done() {
        let f = frames(vec![Err(BackendError::Protocol("cut".into()))], true).await;
        assert_eq!(f.len(), 3, "{f:?}");
        let error: serde_json::Value = serde_json::from_str(&f[1]).unwrap();
        assert_eq!(error["error"]["code"], "upstream_error");
        assert_eq!(f[2], "[DONE]");
    }
}
