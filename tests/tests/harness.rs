//! The test support itself: the fake upstream's fixture rules and the gateway harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluicegate_tests::{http_client, sse_frames, FakeUpstream, Gateway};

async fn post(up: &FakeUpstream, path: &str, body: Value) -> reqwest::Response {
    http_client()
        .post(format!("{}{path}", up.base_url()))
        .header("x-test", "yes")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_missing_fixture_is_a_loud_500_naming_the_file() {
    let up = FakeUpstream::start_default().await;
    let response = post(&up, "/v1/chat/completions", json!({"model": "fx-no-such"})).await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(text.contains("openai/no-such.json"), "{text}");
    let response = post(
        &up,
        "/v1/messages",
        json!({"model": "fx-no-such", "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 500);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("anthropic/no-such.sse"));
    let response = post(&up, "/v1/chat/completions", json!({"model": "gpt-4o"})).await;
    assert_eq!(response.status(), 500);
    assert_eq!(up.take_missing().len(), 3);
}

#[tokio::test]
async fn requests_are_recorded_and_json_fixtures_keep_status_and_headers() {
    let up = FakeUpstream::start_default().await;
    let response = post(
        &up,
        "/v1/chat/completions",
        json!({"model": "fx-error-429"}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    // A stream request without an .sse fixture is answered from the .json one.
    let body = json!({"model": "fx-error-500", "stream": true});
    assert_eq!(
        post(&up, "/v1/chat/completions", body.clone())
            .await
            .status(),
        500
    );
    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/v1/chat/completions");
    assert_eq!(requests[1].header("x-test"), Some("yes"));
    assert_eq!(requests[1].body, body);
}

#[tokio::test]
async fn sse_fixtures_pause_where_told_and_can_stop_short() {
    let up = FakeUpstream::start_default().await;
    let started = Instant::now();
    let response = post(
        &up,
        "/v1/chat/completions",
        json!({"model": "fx-slow-first-byte", "stream": true}),
    )
    .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = sse_frames(response).await;
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(frames.data.last().map(String::as_str), Some("[DONE]"));
    assert!(!frames.data.iter().any(|d| d.contains("delay-ms")));

    let response = post(
        &up,
        "/v1/chat/completions",
        json!({"model": "fx-cut-off", "stream": true}),
    )
    .await;
    let frames = sse_frames(response).await;
    assert_eq!(frames.data.len(), 2, "{frames:?}");
    assert_eq!(frames.text(), "The answer is");
}

#[tokio::test]
#[should_panic(expected = "exited during start-up")]
async fn a_gateway_that_cannot_start_fails_with_its_stderr() {
    Gateway::start("[routes.x]\nbackend = \"nope\"\n", &[]).await;
}
