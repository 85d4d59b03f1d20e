//! Anthropic Messages SSE events → OpenAI `chat.completion.chunk`s.
//!
//! A small state machine: `message_start` fixes the id, model and input usage; content
//! block events become content and `tool_calls` deltas; `message_delta` carries the finish
//! reason; `message_stop` becomes the final usage-only chunk and ends the stream.

use std::collections::HashMap;

use eventsource_stream::Event;
use futures::stream::{BoxStream, StreamExt};

use super::response::to_usage;
use crate::upstream::ApiKey;
use sluicegate_wire::anthropic::{
    finish_reason, BlockDelta, MessagesUsage, ResponseBlock, StreamEvent,
};
use sluicegate_wire::{
    unix_now, ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, Role, ToolCallDelta,
};
use sluicegate_wire::{BackendError, ChunkStream};

/// Turns Anthropic SSE events into chunks. A stream that ends before `message_stop` is
/// reported as cut off; `key` is scrubbed from upstream error messages.
pub fn chunks_from_events(
    events: BoxStream<'static, Result<Event, BackendError>>,
    key: Option<ApiKey>,
) -> ChunkStream {
    let state = StreamState::new(key);
    futures::stream::unfold(
        (events, state, false),
        |(mut events, mut state, stopped)| async move {
            if stopped || state.is_done() {
                return None;
            }
            loop {
                let item = match events.next().await {
                    None => Err(BackendError::Protocol(
                        "upstream stream ended before message_stop".into(),
                    )),
                    Some(Err(e)) => Err(e),
                    Some(Ok(event)) => match state.on_event(&event.data) {
                        Ok(None) => continue,
                        Ok(Some(chunk)) => Ok(chunk),
                        Err(e) => Err(e),
                    },
                };
                let stop = item.is_err();
                return Some((item, (events, state, stop)));
            }
        },
    )
    .boxed()
}

/// What the stream has told us so far.
#[derive(Debug)]
pub struct StreamState {
    id: String,
    model: String,
    created: i64,
    usage: MessagesUsage,
    /// Anthropic content block index → OpenAI tool call index.
    tools: HashMap<u32, u32>,
    done: bool,
    key: Option<ApiKey>,
}

impl StreamState {
    pub fn new(key: Option<ApiKey>) -> Self {
        StreamState {
            id: String::new(),
            model: String::new(),
            created: unix_now(),
            usage: MessagesUsage::default(),
            tools: HashMap::new(),
            done: false,
            key,
        }
    }

    /// Whether `message_stop` has been seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One event's `data`; at most one chunk comes out of it.
    pub fn on_event(&mut self, data: &str) -> Result<Option<ChatCompletionChunk>, BackendError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        let event: StreamEvent = serde_json::from_str(data)
            .map_err(|e| BackendError::Protocol(format!("invalid event in stream: {e}")))?;
        match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                let delta = Delta {
                    role: Some(Role::Assistant),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                Ok(Some(self.chunk(delta, None)))
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => Ok(self.block_start(index, content_block)),
            StreamEvent::ContentBlockDelta { index, delta } => Ok(self.block_delta(index, delta)),
            StreamEvent::MessageDelta { delta, usage } => {
                self.merge_usage(usage);
                let finish = delta.stop_reason.as_deref().map(finish_reason);
                Ok(finish.map(|f| self.chunk(Delta::default(), Some(f.to_owned()))))
            }
            StreamEvent::MessageStop => {
                self.done = true;
                let mut chunk = ChatCompletionChunk::new(&self.id, &self.model, self.created);
                chunk.usage = Some(to_usage(&self.usage));
                Ok(Some(chunk))
            }
            StreamEvent::Error { error } => Err(self.upstream_error(error.kind, &error.message)),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Unknown => {
                Ok(None)
            }
        }
    }

    fn block_start(&mut self, index: u32, block: ResponseBlock) -> Option<ChatCompletionChunk> {
        match block {
            ResponseBlock::Text { text } if !text.is_empty() => Some(self.text_chunk(text)),
            ResponseBlock::Text { .. } | ResponseBlock::Other => None,
            ResponseBlock::ToolUse { id, name, .. } => {
                let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.insert(index, tool_index);
                Some(self.tool_chunk(ToolCallDelta {
                    index: tool_index,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    }),
                }))
            }
        }
    }

    fn block_delta(&mut self, index: u32, delta: BlockDelta) -> Option<ChatCompletionChunk> {
        match delta {
            BlockDelta::TextDelta { text } if !text.is_empty() => Some(self.text_chunk(text)),
            BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                // Deltas of blocks we did not announce (server tools) are not ours to show.
                let tool_index = *self.tools.get(&index)?;
                Some(self.tool_chunk(ToolCallDelta {
                    index: tool_index,
                    id: None,
                    kind: None,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(partial_json),
                    }),
                }))
            }
            _ => None,
        }
    }

    /// `message_delta` usage is cumulative: a count it carries replaces ours.
    fn merge_usage(&mut self, delta: MessagesUsage) {
        let usage = &mut self.usage;
        if delta.has_input() {
            usage.input_tokens = delta.input_tokens.or(usage.input_tokens);
            usage.cache_creation_input_tokens = delta
                .cache_creation_input_tokens
                .or(usage.cache_creation_input_tokens);
            usage.cache_read_input_tokens = delta
                .cache_read_input_tokens
                .or(usage.cache_read_input_tokens);
        }
        usage.output_tokens = delta.output_tokens.or(usage.output_tokens);
    }

    fn upstream_error(&self, kind: String, message: &str) -> BackendError {
        let status = match kind.as_str() {
            "rate_limit_error" => 429,
            "overloaded_error" => 503,
            "api_error" => 500,
            _ => 502,
        };
        let message = if message.is_empty() {
            format!("upstream reported {kind} mid-stream")
        } else {
            match &self.key {
                Some(key) => key.scrub(message),
                None => message.to_owned(),
            }
        };
        BackendError::Upstream {
            status,
            retry_after: None,
            message,
            code: Some(kind),
        }
    }

    fn text_chunk(&self, text: String) -> ChatCompletionChunk {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    fn tool_chunk(&self, call: ToolCallDelta) -> ChatCompletionChunk {
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    fn chunk(&self, delta: Delta, finish: Option<String>) -> ChatCompletionChunk {
        let mut chunk = ChatCompletionChunk::new(&self.id, &self.model, self.created);
        chunk.choices.push(ChunkChoice::new(0, delta, finish));
        chunk
    }
}

#[cfg(test)]
mod tests;
