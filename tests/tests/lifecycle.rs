//! Health, readiness, the model list, and graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sluicegate_tests::policy::{openai_backend, route, routing, single_openai};
use sluicegate_tests::{chat, http_client, FakeUpstream, Gateway};

async fn get(gw: &Gateway, path: &str) -> (u16, Value) {
    let response = http_client()
        .get(format!("{}{path}", gw.url()))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn health_readiness_and_models() {
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("one", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend(
        "keyless",
        &up.openai_url(),
        "fx-chat-ok",
        "api_key_env = \"SLUICEGATE_E2E_UNSET_READY_KEY\"",
    ));
    toml.push_str(&route("first", "one", &[]));
    toml.push_str(&route("second", "one", &[]));
    toml.push_str(&route("third", "keyless", &["first"]));
    toml.push_str(&routing("first", ""));
    let gw = Gateway::start(&toml, &[]).await;

    let (status, body) = get(&gw, "/healthz").await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = get(&gw, "/readyz").await;
    assert_eq!(status, 200, "one backend can serve: {body}");
    let backends = body["backends"].as_object().expect("a backend list");
    assert_eq!(backends.len(), 2, "{body}");
    assert_eq!(backends["one"]["available"], true, "{body}");
    assert_eq!(backends["keyless"]["available"], false, "{body}");
    let reason = backends["keyless"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("SLUICEGATE_E2E_UNSET_READY_KEY"), "{body}");

    let (status, body) = get(&gw, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let mut ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["auto", "first", "second", "third"], "{body}");
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["object"] == "model"));
}

#[tokio::test]
async fn readyz_is_503_when_no_backend_can_serve() {
    let up = FakeUpstream::start_default().await;
    let toml = single_openai(
        &up.openai_url(),
        "fx-chat-ok",
        "api_key_env = \"SLUICEGATE_E2E_UNSET_READY_KEY\"",
    );
    let gw = Gateway::start(&toml, &[]).await;
    let (status, body) = get(&gw, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["backends"]["main"]["available"], false);
    let (status, _) = get(&gw, "/healthz").await;
    assert_eq!(status, 200, "alive even when not ready");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let up = FakeUpstream::start_default().await;
    let mut gw = Gateway::start(&single_openai(&up.openai_url(), "fx-slow-short", ""), &[]).await;
    let url = gw.url();
    let in_flight = tokio::spawn(async move {
        let response = http_client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("the in-flight request must not be dropped");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a whole JSON body");
        (status, body)
    });
    // The request is at the upstream, which answers after 1.5s.
    up.wait_for_requests(1).await;
    gw.sigterm();

    // Once the signal is handled the listener is closed.
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if tokio::net::TcpStream::connect(gw.addr()).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "new connections were still accepted after SIGTERM");
    assert!(
        !in_flight.is_finished(),
        "the slow request finished too early to prove anything"
    );

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Sorry for the wait."
    );
    let exit = gw.wait().await;
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
}

#[tokio::test]
async fn sigterm_when_idle_exits_zero_at_once() {
    let up = FakeUpstream::start_default().await;
    let mut gw = Gateway::start(&single_openai(&up.openai_url(), "fx-chat-ok", ""), &[]).await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&gw, &body).await.status(), 200);
    let started = std::time::Instant::now();
    gw.sigterm();
    let exit = gw.wait().await;
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle gateway took {:?} to stop (an idle keep-alive connection must not hold it)",
        started.elapsed()
    );
}
