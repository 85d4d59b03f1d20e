use serde_json::{json, Value};

use super::to_messages_request;
use sluicegate_wire::BackendError;
use sluicegate_wire::ChatRequest;

fn chat(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

/// The Messages request body as JSON, for the default cap of 1024 tokens.
fn convert(body: Value) -> Value {
    let request = to_messages_request(chat(body), "claude-x", 1024).unwrap();
    serde_json::to_value(request).unwrap()
}

fn refused(body: Value) -> (String, Option<String>) {
    match to_messages_request(chat(body), "claude-x", 1024) {
        Err(BackendError::InvalidRequest { message, param }) => (message, param),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[test]
fn system_and_developer_messages_are_joined_into_system() {
    let out = convert(json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"}
        ]
    }));
    assert_eq!(out["model"], "claude-x");
    assert_eq!(out["system"], "Be brief.\n\nAnswer in French.");
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    );
    assert!(out.get("stream").is_none());
}

#[test]
fn tool_calls_and_results_round_trip() {
    let out = convert(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
            {"role": "user", "content": "Thanks"}
        ]
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                {"type": "text", "text": "Thanks"}
            ]}
        ])
    );
}

#[test]
fn assistant_tool_calls_without_text_and_empty_arguments() {
    let out = convert(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "c", "content": "noon"}
        ]
    }));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "c", "name": "now", "input": {}}])
    );
}

#[test]
fn unparseable_tool_arguments_are_refused_with_their_path() {
    let (message, param) = refused(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ]}
        ]
    }));
    assert!(message.contains("not valid JSON"), "{message}");
    assert_eq!(
        param.as_deref(),
        Some("messages[1].tool_calls[1].function.arguments")
    );
}

#[test]
fn consecutive_same_role_messages_are_merged() {
    let out = convert(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "three"}
        ]
    }));
    let messages = out["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[0]["content"],
        json!([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"].as_array().unwrap().len(), 2);
    assert_eq!(out["system"], "sys");
}

#[test]
fn stop_temperature_and_top_p_pass_through() {
    let out = convert(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "stop": "END", "temperature": 0.2, "top_p": 0.9
    }));
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["temperature"], 0.2);
    assert_eq!(out["top_p"], 0.9);
    let out = convert(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]
    }));
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
}

#[test]
fn max_tokens_defaults_and_client_values_win() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(convert(base.clone())["max_tokens"], 1024);
    let mut given = base.clone();
    given["max_tokens"] = json!(50);
    assert_eq!(convert(given.clone())["max_tokens"], 50);
    given["max_completion_tokens"] = json!(70);
    assert_eq!(convert(given)["max_tokens"], 70);
}

#[test]
fn tools_and_tool_choice_variants() {
    let with_choice = |choice: Value| {
        convert(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "does f",
                 "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "g"}}
            ],
            "tool_choice": choice
        }))
    };
    let out = with_choice(json!("auto"));
    assert_eq!(
        out["tools"],
        json!([
            {"name": "f", "description": "does f",
             "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            {"name": "g", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    assert_eq!(out["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        with_choice(json!("required"))["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        with_choice(json!("none"))["tool_choice"],
        json!({"type": "none"})
    );
    assert_eq!(
        with_choice(json!({"type": "function", "function": {"name": "g"}}))["tool_choice"],
        json!({"type": "tool", "name": "g"})
    );
    let (_, param) = refused(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"
    }));
    assert_eq!(param.as_deref(), Some("tool_choice"));
}

#[test]
fn parallel_tool_calls_false_disables_parallel_tool_use() {
    let out = convert(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "parallel_tool_calls": false
    }));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn n_above_one_is_refused() {
    let (message, param) = refused(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2
    }));
    assert_eq!(param.as_deref(), Some("n"));
    assert!(message.contains("one choice"), "{message}");
    // n = 1 is fine.
    convert(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1}));
}

#[test]
fn unexpressible_fields_are_dropped() {
    let out = convert(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "seed": 7, "response_format": {"type": "json_object"}, "logit_bias": {"1": 2}
    }));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "max_tokens", "messages"]);
}

#[test]
fn images_from_data_urls_and_http_urls() {
    let out = convert(json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
        ]}]
    }));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
}

#[test]
fn unsupported_parts_and_image_urls_are_refused_with_their_path() {
    let (_, param) = refused(json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "listen"},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]}]
    }));
    assert_eq!(param.as_deref(), Some("messages[0].content[1].type"));
    let (_, param) = refused(json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}
        ]}]
    }));
    assert_eq!(
        param.as_deref(),
        Some("messages[0].content[0].image_url.url")
    );
}

#[test]
fn a_conversation_must_start_with_a_user_turn() {
    let (message, param) = refused(json!({
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "hi"}]
    }));
    assert_eq!(param.as_deref(), Some("messages"));
    assert!(message.contains("start with a user message"), "{message}");
    let (message, param) = refused(json!({
        "model": "m", "messages": [{"role": "system", "content": "only a system prompt"}]
    }));
    assert_eq!(param.as_deref(), Some("messages"));
    assert!(message.contains("no user message"), "{message}");
}

#[test]
fn tool_messages_need_an_id() {
    let (_, param) = refused(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]
    }));
    assert_eq!(param.as_deref(), Some("messages[1].tool_call_id"));
}
