//! Every error the client can meet, each in OpenAI's error shape with the right status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluicegate_tests::policy::single_openai;
use sluicegate_tests::{assert_openai_error, chat, header, http_client, FakeUpstream, Gateway};

fn hello() -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
}

async fn start(model: &str, backend_extra: &str, server: &str) -> (FakeUpstream, Gateway) {
    let up = FakeUpstream::start_default().await;
    let toml = format!(
        "[server]\n{server}\n\n{}",
        single_openai(&up.openai_url(), model, backend_extra)
    );
    let gw = Gateway::start(&toml, &[]).await;
    (up, gw)
}

/// Posts raw bytes as JSON; returns the status, headers and JSON body.
async fn post_raw(
    gw: &Gateway,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = http_client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text:?}"));
    (status, headers, body)
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let (up, gw) = start("fx-chat-ok", "", "").await;
    let (status, headers, body) = post_raw(&gw, r#"{"model": "auto", "messages": ["#).await;
    assert_eq!(status, 400);
    assert!(
        headers.contains_key("x-request-id"),
        "errors carry a request id too"
    );
    let error = assert_openai_error(&body);
    assert_eq!(error["type"], "invalid_request_error");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn missing_or_mistyped_fields_are_named() {
    let (up, gw) = start("fx-chat-ok", "", "").await;
    let (status, _, body) = post_raw(&gw, r#"{"model": "auto"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(assert_openai_error(&body)["param"], "messages");

    let (status, _, body) = post_raw(
        &gw,
        r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#,
    )
    .await;
    assert_eq!(status, 400);
    let error = assert_openai_error(&body);
    assert_eq!(error["param"], "temperature");
    assert!(
        error["message"].as_str().unwrap().contains("temperature"),
        "{body}"
    );

    let (status, _, body) = post_raw(
        &gw,
        r#"{"model":"auto","messages":[{"role":"wizard","content":"x"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(assert_openai_error(&body)["param"], "messages[0].role");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn an_unknown_model_is_a_404() {
    let (up, gw) = start("fx-chat-ok", "", "").await;
    let mut ask = hello();
    ask["model"] = json!("gpt-9-ultra");
    let response = chat(&gw, &ask).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let error = assert_openai_error(&body);
    assert_eq!(error["code"], "model_not_found");
    assert!(error["message"].as_str().unwrap().contains("gpt-9-ultra"));
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let (up, gw) = start("fx-chat-ok", "", "body_limit = 1024").await;
    let mut big = hello();
    big["messages"][0]["content"] = json!("x".repeat(4096));
    let (status, _, body) = post_raw(&gw, serde_json::to_vec(&big).unwrap()).await;
    assert_eq!(status, 413);
    assert_openai_error(&body);
    // A request within the limit is still served.
    assert_eq!(chat(&gw, &hello()).await.status(), 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn an_upstream_429_keeps_retry_after() {
    let (_up, gw) = start("fx-error-429", "", "").await;
    let response = chat(&gw, &hello()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "retry-after"), "3");
    let body: Value = response.json().await.unwrap();
    let error = assert_openai_error(&body);
    assert_eq!(error["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn an_upstream_500_is_a_502_without_the_upstream_words() {
    let (_up, gw) = start("fx-error-500", "", "").await;
    let response = chat(&gw, &hello()).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);
    assert!(!body.to_string().contains("Sorry about that"), "{body}");
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_at_the_first_byte_timeout() {
    let (_up, gw) = start("fx-slow", "first_byte_timeout = \"500ms\"", "").await;
    let started = Instant::now();
    let response = chat(&gw, &hello()).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: the timeout did not fire"
    );
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);
}

#[tokio::test]
async fn a_refused_connection_is_a_502() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let toml = single_openai(
        &format!("http://{closed}/v1"),
        "fx-chat-ok",
        "connect_timeout = \"2s\"",
    );
    let gw = Gateway::start(&toml, &[]).await;
    let response = chat(&gw, &hello()).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);
}

#[tokio::test]
async fn an_upstream_context_length_error_stays_a_400_with_its_code() {
    let (_up, gw) = start("fx-error-400-context", "", "").await;
    let response = chat(&gw, &hello()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let error = assert_openai_error(&body);
    assert_eq!(error["code"], "context_length_exceeded");
    assert_eq!(error["type"], "invalid_request_error");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_openai_shape() {
    let (_up, gw) = start("fx-chat-ok", "", "").await;
    let response = http_client()
        .get(format!("{}/v1/no-such-thing", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);

    let response = http_client()
        .get(format!("{}/v1/chat/completions", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);
}
