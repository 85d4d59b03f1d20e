//! Fallback routes: tried in order while nothing has reached the client, never after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluicegate_tests::policy::{anthropic_backend, openai_backend, route, routing};
use sluicegate_tests::{
    assert_openai_error, chat, header, sse_frames, FakeUpstream, Gateway, RecordedRequest,
};

const UNSET_VAR: &str = "SLUICEGATE_E2E_DEFINITELY_UNSET_KEY";

/// Route `a` (backend `a`, asking for `a_model`, with `a_extra`) falls back to route `b`
/// (backend `b`, `fx-chat-ok`).
async fn start(a_model: &str, a_extra: &str) -> (FakeUpstream, Gateway) {
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("a", &up.openai_url(), a_model, a_extra);
    toml.push_str(&openai_backend("b", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("a", "a", &["b"]));
    toml.push_str(&route("b", "b", &[]));
    toml.push_str(&routing("a", ""));
    let gw = Gateway::start(&toml, &[]).await;
    (up, gw)
}

fn ask(stream: bool) -> Value {
    json!({"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn models(requests: &[RecordedRequest]) -> Vec<String> {
    requests.iter().map(|r| r.model().to_owned()).collect()
}

#[tokio::test]
async fn a_failing_route_falls_back_to_the_next() {
    let (up, gw) = start("fx-error-500", "").await;
    let response = chat(&gw, &ask(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-route"), "b");
    assert_eq!(header(&response, "x-sluicegate-backend"), "b");
    let decision = header(&response, "x-sluicegate-decision").to_owned();
    assert!(
        decision.contains("fallback") && decision.contains('a'),
        "decision: {decision}"
    );
    assert_eq!(
        header(&response, "x-sluicegate-fallback"),
        "a(upstream_status)"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "fx-chat-ok");
    assert_eq!(models(&up.requests()), ["fx-error-500", "fx-chat-ok"]);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_chunk_falls_back() {
    // An HTTP error before the stream starts.
    let (up, gw) = start("fx-error-500", "").await;
    let response = chat(&gw, &ask(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-route"), "b");
    let frames = sse_frames(response).await;
    assert_eq!(frames.text(), "Hello there!");
    assert_eq!(frames.data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        !frames.data.iter().any(|d| d.contains("\"error\"")),
        "{frames:?}"
    );
    assert_eq!(models(&up.requests()), ["fx-error-500", "fx-chat-ok"]);

    // No first byte within the deadline.
    let (up, gw) = start("fx-slow-first-byte", "first_byte_timeout = \"500ms\"").await;
    let response = chat(&gw, &ask(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-route"), "b");
    let decision = header(&response, "x-sluicegate-decision").to_owned();
    assert!(decision.contains("timeout"), "decision: {decision}");
    assert_eq!(sse_frames(response).await.text(), "Hello there!");
    assert_eq!(models(&up.requests()), ["fx-slow-first-byte", "fx-chat-ok"]);
}

#[tokio::test]
async fn a_stream_cut_off_after_its_first_chunk_ends_with_an_error_frame() {
    let (up, gw) = start("fx-cut-off", "").await;
    let response = chat(&gw, &ask(true)).await;
    assert_eq!(response.status(), 200, "the stream had started");
    assert_eq!(header(&response, "x-sluicegate-route"), "a");
    let frames = sse_frames(response).await;
    let n = frames.data.len();
    assert!(n >= 4, "{frames:?}");
    assert_eq!(frames.data[n - 1], "[DONE]");
    let error: Value = serde_json::from_str(&frames.data[n - 2]).unwrap();
    assert_openai_error(&error);
    let chunks: Vec<Value> = frames.data[..n - 2]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "The answer is");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(
        models(&up.requests()),
        ["fx-cut-off"],
        "no fallback once chunks were sent"
    );
}

#[tokio::test]
async fn a_backend_whose_key_is_unset_is_skipped() {
    let (up, gw) = start("fx-chat-ok", &format!("api_key_env = \"{UNSET_VAR}\"")).await;
    let response = chat(&gw, &ask(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-route"), "b");
    let decision = header(&response, "x-sluicegate-decision").to_owned();
    assert!(decision.contains("unavailable"), "decision: {decision}");
    assert_eq!(header(&response, "x-sluicegate-fallback"), "a(unavailable)");
    let requests = up.requests();
    assert_eq!(
        requests.len(),
        1,
        "backend a must not be called without its key"
    );
    assert_eq!(requests[0].header("authorization"), None);
}

#[tokio::test]
async fn an_invalid_request_does_not_fall_back() {
    let (up, gw) = start("fx-error-400-context", "").await;
    let response = chat(&gw, &ask(false)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(header(&response, "x-sluicegate-route"), "a");
    assert_eq!(models(&up.requests()), ["fx-error-400-context"]);
}

#[tokio::test]
async fn an_overloaded_anthropic_backend_falls_back_to_openai() {
    let up = FakeUpstream::start_default().await;
    let mut toml = anthropic_backend("claude", &up.base_url(), "fx-overloaded", "");
    toml.push_str(&openai_backend("gpt", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("smart", "claude", &["fast"]));
    toml.push_str(&route("fast", "gpt", &[]));
    toml.push_str(&routing("smart", ""));
    let gw = Gateway::start(&toml, &[]).await;
    for stream in [false, true] {
        let response = chat(&gw, &ask(stream)).await;
        assert_eq!(response.status(), 200, "stream: {stream}");
        assert_eq!(header(&response, "x-sluicegate-route"), "fast");
        assert_eq!(header(&response, "x-sluicegate-backend"), "gpt");
    }
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/messages",
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/chat/completions"
        ]
    );
}

#[tokio::test]
async fn when_every_route_fails_the_last_error_is_answered() {
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("a", &up.openai_url(), "fx-error-500", "");
    toml.push_str(&openai_backend("b", &up.openai_url(), "fx-error-429", ""));
    toml.push_str(&route("a", "a", &["b"]));
    toml.push_str(&route("b", "b", &[]));
    toml.push_str(&routing("a", ""));
    let gw = Gateway::start(&toml, &[]).await;
    let response = chat(&gw, &ask(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), "3");
    assert_eq!(header(&response, "x-sluicegate-route"), "b");
    assert_eq!(models(&up.requests()), ["fx-error-500", "fx-error-429"]);
}
