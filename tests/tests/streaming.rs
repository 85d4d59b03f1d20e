//! Streamed replies through an OpenAI backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluicegate_tests::policy::single_openai;
use sluicegate_tests::{chat, header, sse_frames, FakeUpstream, Gateway};

fn stream_request(include_usage: Option<bool>) -> Value {
    let mut body = json!({
        "model": "auto",
        "stream": true,
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0.5
    });
    if let Some(include) = include_usage {
        body["stream_options"] = json!({"include_usage": include});
    }
    body
}

async fn start() -> (FakeUpstream, Gateway) {
    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&single_openai(&up.openai_url(), "fx-chat-ok", ""), &[]).await;
    (up, gw)
}

#[tokio::test]
async fn with_include_usage_the_client_gets_chunks_then_usage_then_done() {
    let (up, gw) = start().await;
    let response = chat(&gw, &stream_request(Some(true))).await;
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type").starts_with("text/event-stream"),
        "content-type {:?}",
        header(&response, "content-type")
    );
    assert_eq!(header(&response, "x-sluicegate-route"), "main");
    assert!(!header(&response, "x-request-id").is_empty());
    let frames = sse_frames(response).await;

    assert_eq!(
        frames.data.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    assert_eq!(frames.data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks = frames.json();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{chunks:#?}"
    );
    assert!(
        chunks.iter().all(|c| c["model"] == "fx-chat-ok"),
        "{chunks:#?}"
    );
    assert_eq!(frames.text(), "Hello there!");
    assert_eq!(frames.finish_reason().as_deref(), Some("stop"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // The usage chunk comes last (just before [DONE]) and has no choices.
    let usage = frames.usage_frames();
    assert_eq!(usage.len(), 1, "{chunks:#?}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 12);
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["total_tokens"], 15);

    let sent = &up.requests()[0];
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.body["temperature"], 0.5);
}

#[tokio::test]
async fn without_include_usage_no_usage_reaches_the_client_but_it_was_asked_for() {
    for options in [None, Some(false)] {
        let (up, gw) = start().await;
        let frames = sse_frames(chat(&gw, &stream_request(options)).await).await;
        assert_eq!(frames.data.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(frames.text(), "Hello there!");
        assert_eq!(frames.finish_reason().as_deref(), Some("stop"));
        assert!(frames.usage_frames().is_empty(), "{options:?}: {frames:?}");
        assert!(
            frames.json().iter().all(|c| c["choices"] != json!([])),
            "{options:?}: a usage-only chunk reached the client: {frames:?}"
        );
        let sent = &up.requests()[0];
        assert_eq!(
            sent.body["stream_options"]["include_usage"], true,
            "{options:?}: the upstream must always be asked for usage"
        );
    }
}
