//! Non-streaming requests through an OpenAI backend: what the client gets, and what the
//! upstream was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use sluicegate_tests::policy::{openai_backend, route, routing, single_openai};
use sluicegate_tests::{assert_openai_error, chat, chat_with, header, FakeUpstream, Gateway};

const KEY: &str = "sk-test-proxy-0c1d2e3f";

/// Every field the gateway must pass through unchanged, plus fields it does not know.
fn full_request() -> Value {
    json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Paris?"}
        ],
        "tools": [{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}},
                    "required": ["location"]
                },
                "strict": true
            }
        }],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_object"},
        "n": 2,
        "max_tokens": 300,
        "max_completion_tokens": 250,
        "stop": ["\n\n", "END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 42,
        "user": "user-1234",
        "metadata": {"team": "billing", "trace": "t-1"},
        "logit_bias": {"50256": -100}
    })
}

#[tokio::test]
async fn a_request_is_proxied_with_the_backend_model_and_key() {
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend(
        "gpt",
        &up.openai_url(),
        "fx-chat-ok",
        "api_key_env = \"SY_PROXY_KEY\"",
    );
    toml.push_str(&route("chat", "gpt", &[]));
    toml.push_str(&routing(
        "chat",
        r#"rules = [{ name = "tools-rule", route = "chat", when = { has_tools = true } }]"#,
    ));
    let gw = Gateway::start(&toml, &[("SY_PROXY_KEY", KEY)]).await;

    let sent = full_request();
    let response = chat_with(
        &gw,
        &sent,
        &[("authorization", "Bearer client-own-token-77")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(!header(&response, "x-request-id").is_empty());
    assert_eq!(header(&response, "x-sluicegate-route"), "chat");
    assert_eq!(header(&response, "x-sluicegate-backend"), "gpt");
    let decision = header(&response, "x-sluicegate-decision").to_owned();
    assert!(decision.contains("tools-rule"), "decision: {decision}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fx-chat-ok");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I help you today?"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 28);
    assert_eq!(
        body["system_fingerprint"], "fp_44709d6fcb",
        "unknown response fields are kept"
    );

    let requests = up.requests();
    assert_eq!(requests.len(), 1);
    let got = &requests[0];
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.model(),
        "fx-chat-ok",
        "the upstream must get the backend's model"
    );
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_ne!(got.body.get("stream"), Some(&json!(true)));
    for field in [
        "messages",
        "tools",
        "tool_choice",
        "response_format",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "temperature",
        "top_p",
        "seed",
        "user",
        "metadata",
        "logit_bias",
    ] {
        assert_eq!(
            got.body[field], sent[field],
            "field `{field}` was not passed through"
        );
    }
}

#[tokio::test]
async fn a_client_request_id_is_echoed_back() {
    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&single_openai(&up.openai_url(), "fx-chat-ok", ""), &[]).await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let response = chat_with(&gw, &body, &[("x-request-id", "req-from-client-123")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-request-id"), "req-from-client-123");
    assert_eq!(header(&response, "x-sluicegate-decision"), "rule=default");

    // Without one, the gateway makes its own, different for each request.
    let a = chat(&gw, &body).await;
    let b = chat(&gw, &body).await;
    let (a, b) = (header(&a, "x-request-id"), header(&b, "x-request-id"));
    assert!(!a.is_empty() && a != b, "request ids {a:?} and {b:?}");
}

#[tokio::test]
async fn a_tool_call_reply_reaches_the_client_unchanged() {
    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&single_openai(&up.openai_url(), "fx-tool-call", ""), &[]).await;
    let response = chat(&gw, &full_request()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["tool_calls"][0]["id"], "call_abc123XYZ");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["location"], "Paris, France");
}

/// Two routes: the model name, the route header and `auto` each pick the right one.
#[tokio::test]
async fn routes_are_chosen_by_model_header_and_default() {
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("ok", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend(
        "tools",
        &up.openai_url(),
        "fx-tool-call",
        "",
    ));
    toml.push_str(&route("plain", "ok", &[]));
    toml.push_str(&route("tooling", "tools", &[]));
    toml.push_str(&routing("plain", ""));
    let gw = Gateway::start(&toml, &[]).await;
    let ask =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});

    let r = chat(&gw, &ask("auto")).await;
    assert_eq!(header(&r, "x-sluicegate-route"), "plain");
    let r = chat(&gw, &ask("tooling")).await;
    assert_eq!(header(&r, "x-sluicegate-route"), "tooling");
    assert!(header(&r, "x-sluicegate-decision").contains("requested-model"));
    let r = chat_with(&gw, &ask("auto"), &[("x-sluicegate-route", "tooling")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluicegate-route"), "tooling");
    assert!(header(&r, "x-sluicegate-decision").contains("route-header"));
    let models: Vec<String> = up.requests().iter().map(|r| r.model().to_owned()).collect();
    assert_eq!(models, ["fx-chat-ok", "fx-tool-call", "fx-tool-call"]);

    let r = chat_with(&gw, &ask("auto"), &[("x-sluicegate-route", "nope")]).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(assert_openai_error(&body)["code"], "unknown_route");
}
