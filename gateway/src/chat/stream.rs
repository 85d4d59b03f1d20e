//! The client side of a streamed reply: `chat.completion.chunk` frames, then `[DONE]`.
//! A failure after the first frame is reported as an error frame before `[DONE]`.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use sluicegate_wire::ChatCompletionChunk;
use sluicegate_wire::ChunkStream;

use sluicegate_router::estimate_tokens;

use crate::error::ApiError;
use crate::ledger::OutcomeHandle;

/// Builds the SSE response. The upstream was always asked for usage; it is passed on only
/// when the client asked for it (`stream_options.include_usage`).
pub fn sse_response(
    first: ChatCompletionChunk,
    rest: ChunkStream,
    include_usage: bool,
    tracker: Tracker,
) -> Response {
    Sse::new(client_events(first, rest, include_usage, tracker)).into_response()
}

/// Keeps the request's [`OutcomeHandle`] up to date as frames go out: usage as reported, or
/// estimated from the text when the upstream never reports it; how the stream ended.
#[derive(Debug)]
pub struct Tracker {
    outcome: OutcomeHandle,
    prompt_estimate: u32,
    text: String,
    reported: bool,
    saw_id: bool,
    /// Keep the reply's text in the outcome (content opt-in).
    capture: bool,
}

impl Tracker {
    pub fn new(outcome: OutcomeHandle, prompt_estimate: u32, capture: bool) -> Self {
        Tracker {
            outcome,
            prompt_estimate,
            text: String::new(),
            reported: false,
            saw_id: false,
            capture,
        }
    }

    fn chunk(&mut self, chunk: &ChatCompletionChunk) {
        if let Some(u) = &chunk.usage {
            self.reported = true;
            self.outcome.update(|o| {
                o.input_tokens = Some(u.prompt_tokens);
                o.output_tokens = Some(u.completion_tokens);
                o.tokens_estimated = false;
                o.compute = u.compute_time;
            });
        }
        if !chunk.id.is_empty() && !self.saw_id {
            self.saw_id = true;
            self.outcome.update(|o| {
                o.response_id = Some(chunk.id.clone());
                o.response_model = Some(chunk.model.clone());
            });
        }
        for choice in &chunk.choices {
            if let Some(f) = &choice.finish_reason {
                self.outcome.update(|o| o.finish_reasons.push(f.clone()));
            }
            if let Some(t) = &choice.delta.content {
                self.text.push_str(t);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                if let Some(f) = &call.function {
                    self.text.push_str(f.name.as_deref().unwrap_or_default());
                    self.text
                        .push_str(f.arguments.as_deref().unwrap_or_default());
                }
            }
        }
    }

    fn end(&mut self, error: Option<&'static str>) {
        let estimate = (!self.reported).then(|| estimate_tokens(&self.text));
        let prompt = self.prompt_estimate;
        let reply = self.capture.then(|| self.text.clone());
        self.outcome.update(|o| {
            if reply.is_some() {
                o.reply = reply;
            }
            if let Some(output) = estimate {
                o.input_tokens = Some(prompt);
                o.output_tokens = Some(output);
                o.tokens_estimated = true;
            }
            match error {
                Some(kind) => o.error_type = Some(kind.to_owned()),
                None => o.stream_completed = true,
            }
        });
    }
}

enum State {
    Streaming(ChunkStream),
    Done,
}

fn client_events(
    first: ChatCompletionChunk,
    rest: ChunkStream,
    include_usage: bool,
    tracker: Tracker,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let chunks = stream::once(async move { Ok(first) }).chain(rest).boxed();
    stream::unfold(
        (State::Streaming(chunks), tracker),
        move |(state, mut tracker)| async move {
            let State::Streaming(mut chunks) = state else {
                return None;
            };
            loop {
                match chunks.next().await {
                    Some(Ok(mut chunk)) => {
                        tracker.chunk(&chunk);
                        if !include_usage {
                            if chunk.is_usage_only() {
                                continue;
                            }
                            chunk.usage = None;
                        }
                        return Some((
                            vec![chunk_event(&chunk)],
                            (State::Streaming(chunks), tracker),
                        ));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "stream failed after the first frame");
                        tracker.end(Some(e.kind_name()));
                        let body = ApiError::Backend(e).body();
                        let error = Event::default().data(json(&body));
                        return Some((vec![error, done_event()], (State::Done, tracker)));
                    }
                    None => {
                        tracker.end(None);
                        return Some((vec![done_event()], (State::Done, tracker)));
                    }
                }
            }
        },
    )
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
    use sluicegate_wire::BackendError;
    use sluicegate_wire::{ChunkChoice, Delta, Usage};

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
    ) -> (Vec<String>, crate::ledger::Outcome) {
        let outcome = OutcomeHandle::default();
        let tracker = Tracker::new(outcome.clone(), 7, true);
        let body = sse_response(chunk("a"), stream::iter(rest).boxed(), usage, tracker).into_body();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let frames = String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| f.trim_start_matches("data: ").to_owned())
            .collect::<Vec<_>>();
        (frames, outcome.snapshot())
    }

    #[tokio::test]
    async fn ends_with_done_and_strips_usage_unless_asked() {
        let (f, outcome) = frames(vec![Ok(chunk("b")), Ok(usage_chunk())], false).await;
        assert_eq!(f.len(), 3, "{f:?}");
        assert_eq!(
            (outcome.input_tokens, outcome.output_tokens),
            (Some(3), Some(2))
        );
        assert!(!outcome.tokens_estimated && outcome.stream_completed);
        assert_eq!(outcome.reply.as_deref(), Some("ab"));
        assert_eq!(outcome.response_id.as_deref(), Some("c1"));
        assert_eq!(f[2], "[DONE]");
        assert!(!f.iter().any(|x| x.contains("usage")));
        let (f, _) = frames(vec![Ok(chunk("b")), Ok(usage_chunk())], true).await;
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[2].contains("\"usage\""));
        assert_eq!(f[3], "[DONE]");
    }

    #[tokio::test]
    async fn a_failure_mid_stream_is_an_error_frame_then_done() {
        let (f, outcome) = frames(vec![Err(BackendError::Protocol("cut".into()))], true).await;
        assert_eq!(f.len(), 3, "{f:?}");
        // No usage came: estimated from the prompt and the text that went out.
        assert!(outcome.tokens_estimated);
        assert_eq!(
            (outcome.input_tokens, outcome.output_tokens),
            (Some(7), Some(1))
        );
        assert_eq!(outcome.error_type.as_deref(), Some("protocol"));
        assert!(!outcome.stream_completed);
        let error: serde_json::Value = serde_json::from_str(&f[1]).unwrap();
        assert_eq!(error["error"]["code"], "upstream_error");
        assert_eq!(f[2], "[DONE]");
    }
}
