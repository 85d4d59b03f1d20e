//! Tool calls on local models end to end, through [`LocalBackend`]: tiny chat models of
//! random weights with real families' vocabularies and templates (Qwen2.5: Hermes
//! `<tool_call>` blocks; Llama 3.1: a bare JSON call). Under `"auto"` the tools are rendered
//! and noise stays text; under `"required"` or a named function the output is constrained,
//! so even random weights answer with a well-formed call to an allowed tool, whole and
//! streamed; when `max_tokens` leaves no room for a call, the answer is text, not a call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use serde_json::{json, Value};
use sluicegate_local::testing::ggufs::{tiny_chat_model, Mix};
use sluicegate_local::{LocalBackend, LocalOptions};
use sluicegate_wire::{ChatBackend, ChatCompletion, ChatRequest};

fn backend(arch: &str, vocab: &str, template: &str) -> LocalBackend {
    let path = tiny_chat_model(arch, vocab, template, Mix::Q8_0);
    let b = LocalBackend::new(LocalOptions::new(&path)).unwrap();
    b.wait_ready(std::time::Duration::from_secs(120)).unwrap();
    b
}

fn request(choice: Value, max_tokens: u32) -> ChatRequest {
    serde_json::from_value(json!({
        "model": "local",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }},
            {"type": "function", "function": {
                "name": "get_time",
                "description": "The time in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }},
        ],
        "tool_choice": choice,
        "max_tokens": max_tokens,
        "temperature": 0,
    }))
    .unwrap()
}

fn prompt_tokens(r: &ChatCompletion) -> u32 {
    r.usage.as_ref().unwrap().prompt_tokens
}

/// The one call of a whole answer: its name and arguments.
fn the_call(r: &ChatCompletion) -> (String, Value) {
    let c = &r.choices[0];
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"), "{r:?}");
    let calls = c.message.tool_calls.as_ref().expect("no tool_calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert!(args.is_object(), "{args}");
    assert!(calls[0].id.starts_with("call_"), "{}", calls[0].id);
    (calls[0].function.name.clone(), args)
}

/// A streamed answer's calls (name, arguments), text and finish reason.
async fn streamed(b: &LocalBackend, req: ChatRequest) -> (Vec<(String, Value)>, String, String) {
    let mut s = b.stream(req).await.unwrap();
    let (mut calls, mut text, mut finish) = (Vec::new(), String::new(), None);
    while let Some(c) = s.next().await {
        for ch in c.unwrap().choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or_default());
            for d in ch.delta.tool_calls.unwrap_or_default() {
                assert_eq!(d.index as usize, calls.len());
                assert!(d.id.is_some_and(|i| i.starts_with("call_")));
                let f = d.function.unwrap();
                let args = serde_json::from_str(&f.arguments.unwrap()).unwrap();
                calls.push((f.name.unwrap(), args));
            }
            finish = finish.or(ch.finish_reason);
        }
    }
    (calls, text, finish.unwrap())
}

#[tokio::test]
async fn tools_are_rendered_under_auto_and_left_out_under_none() {
    let b = backend("qwen2", "qwen2", "Qwen-Qwen2.5-7B-Instruct");
    let auto = b.complete(request(json!("auto"), 3)).await.unwrap();
    let none = b.complete(request(json!("none"), 3)).await.unwrap();
    // The tools' descriptions are in the prompt under "auto" only.
    println!(
        "prompt tokens: auto {}, none {}",
        prompt_tokens(&auto),
        prompt_tokens(&none)
    );
    assert!(prompt_tokens(&auto) > prompt_tokens(&none) + 50);
    // Noise from random weights is no call.
    assert!(auto.choices[0].message.tool_calls.is_none());
    assert_eq!(auto.choices[0].finish_reason.as_deref(), Some("length"));
    // Streamed under "auto" (through the call splitter), the same greedy text arrives.
    let (calls, text, finish) = streamed(&b, request(json!("auto"), 3)).await;
    assert!(calls.is_empty());
    let whole = auto.choices[0].message.content.as_ref().unwrap().as_text();
    assert_eq!((text.as_str(), finish.as_str()), (whole.as_str(), "length"));
}

/// Under `"required"` and a named function, a call comes back, whole and streamed alike.
async fn forced_calls(b: &LocalBackend) {
    let named = json!({"type": "function", "function": {"name": "get_time"}});
    let required = b.complete(request(json!("required"), 60)).await.unwrap();
    let (name, args) = the_call(&required);
    println!("required: {name}({args})");
    assert!(["get_weather", "get_time"].contains(&name.as_str()));
    let forced = b.complete(request(named.clone(), 60)).await.unwrap();
    let (name, args) = the_call(&forced);
    println!("named: {name}({args})");
    assert_eq!(name, "get_time");
    assert!(forced.choices[0].message.content.is_none());
    let (calls, text, finish) = streamed(b, request(named, 60)).await;
    assert_eq!(calls, vec![(name, args)]);
    assert_eq!((text.as_str(), finish.as_str()), ("", "tool_calls"));
    // No room for a call: what was made is text, cut off, not a call.
    let short = b.complete(request(json!("required"), 4)).await.unwrap();
    assert!(short.choices[0].message.tool_calls.is_none());
    assert_eq!(short.choices[0].finish_reason.as_deref(), Some("length"));
}

#[tokio::test]
async fn a_required_or_named_call_is_forced_in_hermes_format() {
    forced_calls(&backend("qwen2", "qwen2", "Qwen-Qwen2.5-7B-Instruct")).await;
}

#[tokio::test]
async fn a_required_or_named_call_is_forced_in_llama3_format() {
    forced_calls(&backend(
        "llama",
        "llama-bpe",
        "meta-llama-Llama-3.1-8B-Instruct",
    ))
    .await;
}
