use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use sluicegate_policies::Timeouts;

use super::*;
use sluicegate_wire::Content;

/// What the fake upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

const SSE: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

/// Records the request; answers a Messages response, or an event stream when asked.
async fn fake_anthropic(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = body["stream"] == json!(true);
    log.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    if stream {
        return ([("content-type", "text/event-stream")], SSE).into_response();
    }
    axum::Json(json!({
        "id": "msg_123",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "pong"}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 7, "output_tokens": 2}
    }))
    .into_response()
}

async fn serve() -> (String, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .fallback(fake_anthropic)
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), log)
}

fn ping() -> ChatRequest {
    serde_json::from_value(json!({
        "model": "claude-test",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "ping"}]
    }))
    .unwrap()
}

#[tokio::test]
async fn sends_key_version_and_path_and_maps_the_reply() {
    let var = "SLUICEGATE_TEST_ANTHROPIC_KEY_SENDS_HEADERS_6C1F";
    std::env::set_var(var, "sk-ant-test-4242");
    let (base, log) = serve().await;
    let backend = AnthropicBackend::new(
        &base,
        "claude-test",
        Some(var),
        333,
        "2023-06-01",
        Timeouts::default(),
    )
    .unwrap();
    assert_eq!(backend.kind(), "anthropic");
    assert_eq!(backend.upstream_model(), "claude-test");
    backend.check_available().unwrap();

    let reply = backend.complete(ping()).await.unwrap();
    assert_eq!(reply.id, "msg_123");
    assert_eq!(
        reply.choices[0].message.content,
        Some(Content::Text("pong".into()))
    );
    assert_eq!(reply.usage.as_ref().map(|u| u.total_tokens), Some(9));

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-test-4242");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.body["model"], "claude-test");
    assert_eq!(seen.body["system"], "Be terse.");
    assert_eq!(seen.body["max_tokens"], 333);
    assert!(seen.body.get("stream").is_none());
}

#[tokio::test]
async fn streams_through_the_backend() {
    let var = "SLUICEGATE_TEST_ANTHROPIC_KEY_STREAMS_9D2E";
    std::env::set_var(var, "sk-ant-stream-key");
    let (base, log) = serve().await;
    let backend = AnthropicBackend::new(
        &base,
        "claude-test",
        Some(var),
        64,
        "2023-06-01",
        Timeouts::default(),
    )
    .unwrap();
    let mut request = ping();
    request.stream = Some(true);
    let chunks: Vec<_> = backend.stream(request).await.unwrap().collect().await;
    let chunks: Vec<_> = chunks.into_iter().map(Result::unwrap).collect();
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hi"));
    assert_eq!(chunks[2].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks[3].is_usage_only());

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["stream"], true);
    assert_eq!(seen.headers["x-api-key"], "sk-ant-stream-key");
}

#[tokio::test]
async fn an_unset_key_makes_the_backend_unavailable() {
    let var = "SLUICEGATE_TEST_ANTHROPIC_KEY_NEVER_SET_31B7";
    let backend = AnthropicBackend::new(
        "http://127.0.0.1:9",
        "claude-test",
        Some(var),
        64,
        DEFAULT_VERSION,
        Timeouts::default(),
    )
    .unwrap();
    let expected = BackendError::Unavailable(format!("{var} is not set"));
    assert_eq!(backend.check_available(), Err(expected.clone()));
    assert_eq!(backend.complete(ping()).await.unwrap_err(), expected);
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_call() {
    let (base, log) = serve().await;
    let backend = AnthropicBackend::new(
        &base,
        "claude-test",
        None,
        64,
        DEFAULT_VERSION,
        Timeouts::default(),
    )
    .unwrap();
    let mut request = ping();
    request.n = Some(3);
    let err = backend.complete(request).await.unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidRequest { ref param, .. } if param.as_deref() == Some("n"))
    );
    assert!(log.lock().unwrap().is_empty());
    assert!(
        AnthropicBackend::new(&base, "m", None, 64, "bad\nversion", Timeouts::default()).is_err()
    );
}
