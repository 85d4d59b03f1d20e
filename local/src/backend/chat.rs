//! [`ChatBackend`] for [`LocalBackend`]: a whole answer, or a stream of OpenAI chunks; tool
//! calls in the model's output become `tool_calls` ([`crate::tools`]).

use async_trait::async_trait;
use futures::StreamExt;

use sluicegate_wire::{
    unix_now, ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ChunkChoice, Delta, Role,
    Usage,
};
use sluicegate_wire::{BackendError, ChatBackend, ChunkStream, Health};

use super::{failed, LocalBackend};
use crate::engine::Event;
use crate::tools::{self, Splitter};

#[async_trait]
impl ChatBackend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn upstream_model(&self) -> &str {
        &self.opts.model_name
    }

    fn check_available(&self) -> Result<(), BackendError> {
        match self.health() {
            Health::Ready => Ok(()),
            Health::Loading => Err(BackendError::Unavailable("loading".into())),
            Health::Failed(e) => Err(BackendError::Unavailable(e)),
        }
    }

    fn is_loading(&self) -> bool {
        self.health() == Health::Loading
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, BackendError> {
        let (mut rx, mode) = self.start(&request).await?;
        let mut text = String::new();
        loop {
            match rx.recv().await {
                Some(Event::Text(t)) => text.push_str(&t),
                Some(Event::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    compute,
                }) => {
                    let usage = usage(prompt_tokens, completion_tokens, compute);
                    let tools = request.tools.as_deref().unwrap_or_default();
                    let id = self.next_id();
                    let (message, called) = tools::message(text, &mode, tools, call_tag(&id));
                    let finish = finish_reason(called, finish.as_str());
                    return Ok(ChatCompletion {
                        id,
                        object: "chat.completion".into(),
                        created: unix_now(),
                        model: self.opts.model_name.clone(),
                        choices: vec![Choice {
                            index: 0,
                            message,
                            finish_reason: Some(finish),
                            logprobs: None,
                            extra: Default::default(),
                        }],
                        usage: Some(usage),
                        extra: Default::default(),
                    });
                }
                Some(Event::Failed(e)) => return Err(failed(e)),
                None => return Err(failed("the local model stopped mid-answer".into())),
            }
        }
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChunkStream, BackendError> {
        let (rx, mode) = self.start(&request).await?;
        let id = self.next_id();
        let splitter = mode
            .format()
            .map(|f| Splitter::new(f, request.tools.clone().unwrap_or_default(), call_tag(&id)));
        let model = self.opts.model_name.clone();
        let created = unix_now();
        let chunk = move |delta: Delta, finish: Option<String>| {
            let mut c = ChatCompletionChunk::new(&id, &model, created);
            c.choices.push(ChunkChoice::new(0, delta, finish));
            c
        };
        let first = chunk(
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );
        let rest = futures::stream::unfold(Some((rx, splitter)), move |state| {
            let chunk = chunk.clone();
            async move {
                let (mut rx, mut splitter) = state?;
                let items: Vec<Result<ChatCompletionChunk, BackendError>> = match rx.recv().await {
                    Some(Event::Text(t)) => {
                        let pieces = match splitter.as_mut() {
                            Some(s) => s.push(&t),
                            None => vec![tools::Piece::Text(t)],
                        };
                        let items: Vec<_> = pieces
                            .into_iter()
                            .map(|p| Ok(chunk(tools::delta(p), None)))
                            .collect();
                        return Some((futures::stream::iter(items), Some((rx, splitter))));
                    }
                    Some(Event::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                        compute,
                    }) => {
                        let mut items: Vec<_> = splitter
                            .as_mut()
                            .map(Splitter::finish)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| Ok(chunk(tools::delta(p), None)))
                            .collect();
                        let called = splitter.as_ref().is_some_and(|s| s.calls() > 0);
                        let finish = finish_reason(called, finish.as_str());
                        let last = chunk(Delta::default(), Some(finish));
                        let mut usage = chunk(Delta::default(), None);
                        usage.choices.clear();
                        usage.usage = Some(self::usage(prompt_tokens, completion_tokens, compute));
                        items.extend([Ok(last), Ok(usage)]);
                        items
                    }
                    Some(Event::Failed(e)) => vec![Err(failed(e))],
                    None => vec![Err(failed("the local model stopped mid-answer".into()))],
                };
                Some((futures::stream::iter(items), None))
            }
        })
        .flatten();
        Ok(futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .boxed())
    }
}

/// The part of a completion id that makes its tool-call ids unique.
fn call_tag(id: &str) -> &str {
    id.trim_start_matches("chatcmpl-local-")
}

/// An answer's usage, with the model time it took.
fn usage(prompt_tokens: u32, completion_tokens: u32, compute: std::time::Duration) -> Usage {
    let mut u = Usage::new(prompt_tokens, completion_tokens);
    u.compute_time = Some(compute);
    u
}

/// `tool_calls` when the answer holds calls, else the engine's reason.
fn finish_reason(called: bool, finish: &str) -> String {
    if called { "tool_calls" } else { finish }.to_owned()
}
