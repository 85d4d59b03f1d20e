//! `Dispatch`: sends the call to its route's backend, and down the route's `fallback` list
//! while nothing has reached the client yet.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::future::BoxFuture;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use sluicegate_router::{estimate_tokens, Decision};
use sluicegate_wire::{BackendError, ChunkStream};
use sluicegate_wire::{ChatCompletion, ChatCompletionChunk, Usage};
use tower::Service;

use super::{headers, stream, ChatCall};
use crate::error::ApiError;
use crate::ledger::{Outcome, OutcomeHandle};
use crate::state::{AppState, Route};

/// The innermost service of the chat stack.
#[derive(Debug, Clone)]
pub struct Dispatch {
    state: AppState,
}

impl Dispatch {
    pub fn new(state: AppState) -> Self {
        Dispatch { state }
    }
}

impl Service<ChatCall> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: ChatCall) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(dispatch(state, call).await) })
    }
}

/// What a successful backend call produced.
enum Reply {
    Whole(Response, Answer),
    Stream(ChatCompletionChunk, ChunkStream),
}

/// The facts of a whole completion the ledger and telemetry keep.
struct Answer {
    usage: Option<Usage>,
    id: String,
    model: String,
    finish_reasons: Vec<String>,
    text: String,
}

impl Answer {
    fn of(completion: &ChatCompletion) -> Self {
        Answer {
            usage: completion.usage.clone(),
            id: completion.id.clone(),
            model: completion.model.clone(),
            finish_reasons: completion
                .choices
                .iter()
                .filter_map(|c| c.finish_reason.clone())
                .collect(),
            text: completion
                .choices
                .first()
                .and_then(|c| c.message.content.as_ref())
                .map(|c| c.as_text())
                .unwrap_or_default(),
        }
    }

    fn record(self, o: &mut Outcome, capture: bool) {
        if let Some(u) = self.usage {
            o.input_tokens = Some(u.prompt_tokens);
            o.output_tokens = Some(u.completion_tokens);
            o.compute = u.compute_time;
        }
        o.response_id = Some(self.id);
        o.response_model = Some(self.model);
        o.finish_reasons = self.finish_reasons;
        if capture {
            o.reply = Some(self.text);
        }
    }
}

async fn dispatch(state: AppState, call: ChatCall) -> Response {
    let Some(decision) = call.extensions.get::<Decision>().cloned() else {
        return ApiError::invalid("no routing decision was made", None).into_response();
    };
    let outcome = call
        .extensions
        .get::<OutcomeHandle>()
        .cloned()
        .unwrap_or_default();
    outcome.update(|o| o.decided(&decision));
    let capture = state.captures_content();
    let mut chain = vec![decision.route.clone()];
    if let Some(route) = state.route(&decision.route) {
        chain.extend(route.config.fallback.iter().cloned());
    }
    let mut attempts: Vec<&str> = Vec::new();
    let mut last_error =
        BackendError::Unavailable(format!("route {} has no backend", decision.route));
    for name in &chain {
        let Some(route) = state.route(name) else {
            continue;
        };
        outcome.update(|o| {
            o.attempts.push(name.clone());
            o.route = Some(name.clone());
            o.backend = Some(route.backend_name.clone());
            o.upstream_model = Some(route.backend.upstream_model().to_owned());
            o.provider = Some(route.backend.kind());
        });
        match attempt(route, &call).await {
            Ok(reply) => {
                let ttft = call.received.elapsed();
                let mut response = match reply {
                    Reply::Whole(response, answer) => {
                        outcome.update(|o| {
                            o.ttft = Some(ttft);
                            answer.record(o, capture);
                        });
                        response
                    }
                    Reply::Stream(first, rest) => {
                        outcome.update(|o| o.ttft = Some(ttft));
                        let tracker = stream::Tracker::new(
                            outcome.clone(),
                            estimate_tokens(&call.body.prompt_text()),
                            capture,
                        );
                        stream::sse_response(first, rest, call.body.wants_stream_usage(), tracker)
                    }
                };
                set_route_headers(response.headers_mut(), &outcome, route);
                return response;
            }
            Err(error) => {
                tracing::warn!(route = %name, error = %error, "route failed");
                let retry = error.is_retryable();
                attempts.push(name);
                outcome.update(|o| o.fallbacks.push(format!("{name}({})", error.kind_name())));
                last_error = error;
                if !retry {
                    break;
                }
            }
        }
    }
    outcome.update(|o| o.error_type = Some(last_error.kind_name().to_owned()));
    let mut response = ApiError::Backend(last_error).into_response();
    if let Some(last) = attempts.last().and_then(|a| state.route(a)) {
        // The last failure is the answer, not a fallback.
        outcome.update(|o| {
            o.fallbacks.pop();
        });
        set_route_headers(response.headers_mut(), &outcome, last);
    }
    response
}

async fn attempt(route: &Route, call: &ChatCall) -> Result<Reply, BackendError> {
    route.backend.check_available()?;
    let mut request = call.body.clone();
    request.model = route.backend.upstream_model().to_owned();
    if request.is_stream() {
        let mut chunks = route.backend.stream(request).await?;
        // Wait for the first chunk: until it arrives nothing has reached the client and
        // another route may still be tried.
        match chunks.next().await {
            Some(Ok(first)) => Ok(Reply::Stream(first, chunks)),
            Some(Err(e)) => Err(e),
            None => Err(BackendError::Protocol(
                "upstream sent an empty stream".into(),
            )),
        }
    } else {
        let completion = route.backend.complete(request).await?;
        let answer = Answer::of(&completion);
        Ok(Reply::Whole(Json(completion).into_response(), answer))
    }
}

/// The routing headers, read from the request's record (which the ledger row, the metrics
/// and the span are made from too).
fn set_route_headers(headers: &mut HeaderMap, outcome: &OutcomeHandle, route: &Route) {
    let record = outcome.snapshot();
    let decision_text = record.decision_header();
    if !record.fallbacks.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&record.fallbacks.join(", ")) {
            headers.insert(HeaderName::from_static(headers::FALLBACK), value);
        }
    }
    for (name, value) in [
        (headers::ROUTE, route.config.name.as_str()),
        (headers::BACKEND, route.backend_name.as_str()),
        (headers::DECISION, decision_text.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}
