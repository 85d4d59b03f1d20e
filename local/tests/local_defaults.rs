//! A local backend's generation defaults on the real SmolLM2-135M-Instruct GGUF file: a
//! request that sets no `max_tokens` is capped (the backend's `defaults.max_tokens`, else the
//! built-in cap), one that asks for more gets it up to the context, and the policy's sampling
//! defaults apply where the request sets none. Needs `models/smollm2` (`scripts/fetch-models`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluicegate_local::testing::say_kernel_paths;
use sluicegate_local::testing::smollm2_gguf as gguf;
use sluicegate_local::{Defaults, LocalBackend, LocalOptions, BUILT_IN_MAX_TOKENS};
use sluicegate_wire::{ChatBackend, ChatRequest};

fn request(extra: serde_json::Value) -> ChatRequest {
    let mut body = serde_json::json!({
        "model": "local",
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(body).unwrap()
}

fn backend(defaults: Defaults) -> LocalBackend {
    let mut o = LocalOptions::new(gguf());
    o.defaults = defaults;
    o.max_batch = 1;
    let b = LocalBackend::new(o).unwrap();
    b.wait_ready(Duration::from_secs(120)).unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_max_tokens_is_capped_and_one_that_asks_gets_more() {
    say_kernel_paths("a_request_without_max_tokens_is_capped_and_one_that_asks_gets_more");
    let b = backend(Defaults::default());
    let none = b.prepare(&request(serde_json::json!({}))).unwrap();
    assert_eq!(none.max_tokens, BUILT_IN_MAX_TOKENS as usize);
    // The built-in sampling (no policy defaults, and this file declares none).
    assert_eq!(none.sampling.temperature, 0.8);
    assert_eq!(none.sampling.top_k, 40);
    let more = b
        .prepare(&request(serde_json::json!({"max_tokens": 3000})))
        .unwrap();
    assert_eq!(more.max_tokens, 3000, "a client may ask past the cap");
    let huge = b
        .prepare(&request(serde_json::json!({"max_tokens": 1_000_000})))
        .unwrap();
    assert!(
        huge.max_tokens < 8192 && huge.max_tokens + huge.prompt.len() == b.context(),
        "never past the context: {}",
        huge.max_tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_defaults_apply_where_the_request_sets_none() {
    say_kernel_paths("the_backend_defaults_apply_where_the_request_sets_none");
    let b = backend(Defaults {
        max_tokens: Some(6),
        temperature: Some(0.0),
        ..Defaults::default()
    });
    let p = b.prepare(&request(serde_json::json!({}))).unwrap();
    assert_eq!((p.max_tokens, p.sampling.temperature), (6, 0.0));
    let asked = b
        .prepare(&request(
            serde_json::json!({"temperature": 0.5, "max_tokens": 9}),
        ))
        .unwrap();
    assert_eq!((asked.max_tokens, asked.sampling.temperature), (9, 0.5));
    // Generated for real: the cap holds on the answer a client gets.
    let answer = b.complete(request(serde_json::json!({}))).await.unwrap();
    let usage = answer.usage.unwrap();
    assert!(usage.completion_tokens <= 6, "{usage:?}");
    assert_eq!(answer.choices[0].finish_reason.as_deref(), Some("length"));
}
