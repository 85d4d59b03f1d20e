//! Requests through a `kind = "anthropic"` backend: translated to the Messages API on the
//! way up, and back to OpenAI's format on the way down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluicegate_tests::policy::single_anthropic;
use sluicegate_tests::{
    assert_openai_error, chat, header, sse_frames, FakeUpstream, Gateway, RecordedRequest,
};

const KEY: &str = "sk-ant-test-5e6f7a8b";

async fn start(model: &str) -> (FakeUpstream, Gateway) {
    let up = FakeUpstream::start_default().await;
    let toml = single_anthropic(
        &up.base_url(),
        model,
        "api_key_env = \"SY_ANTHROPIC_KEY\"\nmax_tokens = 1024",
    );
    let gw = Gateway::start(&toml, &[("SY_ANTHROPIC_KEY", KEY)]).await;
    (up, gw)
}

fn weather_tool() -> Value {
    json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["location"]
            }
        }
    })
}

/// The text of Anthropic's `system`: a string or a list of text blocks.
fn system_text(system: &Value) -> String {
    match system {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        other => panic!("`system` is neither a string nor blocks: {other}"),
    }
}

/// Checks what every Messages API request must carry; returns the body.
fn assert_messages_request(sent: &RecordedRequest) -> &Value {
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "Anthropic takes x-api-key"
    );
    assert_eq!(sent.model(), sent.body["model"].as_str().unwrap());
    let body = &sent.body;
    assert!(
        body["max_tokens"].is_u64(),
        "max_tokens is required: {body}"
    );
    let messages = body["messages"].as_array().expect("messages");
    assert!(
        messages
            .iter()
            .all(|m| m["role"] == "user" || m["role"] == "assistant"),
        "only user/assistant roles go in `messages`: {body}"
    );
    body
}

#[tokio::test]
async fn a_request_is_translated_and_the_reply_is_openai_shaped() {
    let (up, gw) = start("fx-msg-ok").await;
    let response = chat(
        &gw,
        &json!({
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello?"}
            ],
            "max_tokens": 256,
            "temperature": 0.3,
            "stop": ["END"]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-backend"), "claude");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fx-msg-ok");
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 21);
    assert_eq!(body["usage"]["completion_tokens"], 12);
    assert_eq!(body["usage"]["total_tokens"], 33);

    let requests = up.requests();
    assert_eq!(requests.len(), 1);
    let sent = assert_messages_request(&requests[0]);
    assert_eq!(sent["model"], "fx-msg-ok");
    assert_eq!(system_text(&sent["system"]), "You are terse.");
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    assert_eq!(sent["messages"][0]["role"], "user");
    assert!(sent["messages"][0].to_string().contains("Hello?"));
    assert_ne!(sent.get("stream"), Some(&json!(true)));
}

#[tokio::test]
async fn max_tokens_comes_from_the_client_or_the_backend() {
    let (up, gw) = start("fx-msg-ok").await;
    let ask = |extra: Value| {
        let mut body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    assert_eq!(chat(&gw, &ask(json!({}))).await.status(), 200);
    assert_eq!(
        chat(
            &gw,
            &ask(json!({"max_completion_tokens": 200, "max_tokens": 900}))
        )
        .await
        .status(),
        200
    );
    let requests = up.requests();
    assert_eq!(
        requests[0].body["max_tokens"], 1024,
        "the backend's default"
    );
    assert_eq!(
        requests[1].body["max_tokens"], 200,
        "max_completion_tokens wins"
    );
    assert!(requests[0].body.get("system").is_none_or(Value::is_null));
}

#[tokio::test]
async fn a_stream_is_translated_to_openai_chunks() {
    let (up, gw) = start("fx-msg-ok").await;
    let response = chat(
        &gw,
        &json!({
            "model": "auto",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}
            ]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/event-stream"));
    let frames = sse_frames(response).await;
    assert_eq!(
        frames.data.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    let chunks = frames.json();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{chunks:#?}"
    );
    assert_eq!(frames.text(), "Hello from Claude!");
    assert_eq!(frames.finish_reason().as_deref(), Some("stop"));
    let usage = frames.usage_frames();
    assert_eq!(usage.len(), 1, "{chunks:#?}");
    assert_eq!(usage[0]["usage"]["prompt_tokens"], 25);
    assert_eq!(usage[0]["usage"]["completion_tokens"], 15);
    assert_eq!(usage[0]["usage"]["total_tokens"], 40);
    assert_eq!(chunks.last(), Some(&usage[0]), "usage comes last");

    let requests = up.requests();
    let sent = assert_messages_request(&requests[0]);
    assert_eq!(sent["stream"], true);
    assert_eq!(system_text(&sent["system"]), "Be brief.");
}

#[tokio::test]
async fn a_tool_use_reply_becomes_tool_calls() {
    let (up, gw) = start("fx-tool-use").await;
    let response = chat(
        &gw,
        &json!({
            "model": "auto",
            "messages": [{"role": "user", "content": "Weather in SF?"}],
            "tools": [weather_tool()]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(body["usage"]["total_tokens"], 475);

    let requests = up.requests();
    let sent = assert_messages_request(&requests[0]);
    let tool = &sent["tools"][0];
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["description"], "Current weather for a city");
    assert_eq!(
        tool["input_schema"],
        weather_tool()["function"]["parameters"]
    );
}

#[tokio::test]
async fn a_streamed_tool_use_becomes_tool_call_deltas() {
    let (_up, gw) = start("fx-tool-use").await;
    let response = chat(
        &gw,
        &json!({
            "model": "auto",
            "stream": true,
            "messages": [{"role": "user", "content": "Weather in SF?"}],
            "tools": [weather_tool()]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let frames = sse_frames(response).await;
    assert_eq!(
        frames.data.last().map(String::as_str),
        Some("[DONE]"),
        "{frames:?}"
    );
    assert_eq!(frames.finish_reason().as_deref(), Some("tool_calls"));
    assert!(frames.usage_frames().is_empty(), "usage was not asked for");
    let deltas: Vec<Value> = frames
        .json()
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .flatten()
        .collect();
    assert!(!deltas.is_empty(), "no tool_calls deltas: {frames:?}");
    assert!(
        deltas.iter().all(|d| d["index"] == deltas[0]["index"]),
        "{deltas:#?}"
    );
    assert_eq!(deltas[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(deltas[0]["type"], "function");
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    let arguments: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect();
    let args: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA"}));
}

#[tokio::test]
async fn tool_results_are_sent_in_anthropic_shape() {
    let (up, gw) = start("fx-msg-ok").await;
    let response = chat(
        &gw,
        &json!({
            "model": "auto",
            "tools": [weather_tool()],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}
                }]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
            ]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let requests = up.requests();
    let sent = assert_messages_request(&requests[0]);
    let blocks: Vec<&Value> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .collect();
    let tool_use = blocks
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(tool_use["id"], "call_1");
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({"location": "Paris"}));
    let result = blocks
        .iter()
        .find(|b| b["type"] == "tool_result")
        .expect("a tool_result block");
    assert_eq!(result["tool_use_id"], "call_1");
    assert!(result.to_string().contains("18C and sunny"));
}

#[tokio::test]
async fn an_overloaded_upstream_without_fallback_is_a_502() {
    let (up, gw) = start("fx-overloaded").await;
    let response = chat(
        &gw,
        &json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body);
    assert_eq!(up.requests().len(), 1);
}
