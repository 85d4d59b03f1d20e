//! The local backend on the real SmolLM2-135M-Instruct GGUF file: tokenizer, reference answer,
//! sampling controls, streaming, errors, queueing and batching. Needs `models/smollm2`
//! (run `scripts/fetch-models`). Generations are kept short.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use sluicegate_local::tokenizer::GgufTokenizer;
use sluicegate_local::{LocalBackend, LocalOptions};
use sluicegate_wire::{BackendError, ChatBackend};
use sluicegate_wire::{ChatCompletionChunk, ChatRequest, Message, Role, Stop};

use sluicegate_local::testing::say_kernel_paths;
use sluicegate_local::testing::smollm2_gguf as gguf;

fn tokenizer() -> &'static GgufTokenizer {
    static TOK: OnceLock<GgufTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut f = std::fs::File::open(gguf()).unwrap();
        let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
        GgufTokenizer::from_gguf(&ct).unwrap()
    })
}

fn backend_with(opts: impl FnOnce(&mut LocalOptions)) -> LocalBackend {
    let mut o = LocalOptions::new(gguf());
    opts(&mut o);
    let b = LocalBackend::new(o).unwrap();
    b.wait_ready(Duration::from_secs(120)).unwrap();
    b
}

/// The shared default backend (loading the model once for most tests).
fn backend() -> &'static LocalBackend {
    static B: OnceLock<LocalBackend> = OnceLock::new();
    B.get_or_init(|| backend_with(|_| {}))
}

fn ask(text: &str) -> ChatRequest {
    serde_json::from_value(serde_json::json!({
        "model": "local",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
    }))
    .unwrap()
}

const FRANCE: &str = "What is the capital of France?";

#[test]
fn special_tokens_and_the_chat_prefix_encode_like_llama_cpp() {
    let tok = tokenizer();
    assert_eq!(
        tok.encode("<|im_start|>assistant\n").unwrap(),
        [1, 520, 9531, 198]
    );
    assert_eq!(tok.eos, [2, 0]);
    // Every digit is its own token; no prefix space is added.
    let digits = tok.encode("12345").unwrap();
    assert_eq!(digits.len(), 5, "{digits:?}");
    assert_eq!(tok.decode(&tok.encode("Hello").unwrap()).unwrap(), "Hello");
    assert_eq!(tok.encode("Hello").unwrap().len(), 1);
}

#[test]
fn text_round_trips_through_the_tokenizer() {
    let tok = tokenizer();
    for text in [
        "What is the capital of France?",
        "Numbers: 3.14159, 2024-06-01, 1,000,000 and 0x1F.",
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines\n\n\r\n  indented",
        "unicode: café, naïve, Zürich, 東京, Ελληνικά, emoji 🚀🎉",
        "<|im_start|>user\nhi<|im_end|>\n",
        "fn main() { println!(\"{}\", 42); }",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "ids {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answers_like_llama_cpp_with_exact_usage() {
    say_kernel_paths("greedy_answers_like_llama_cpp_with_exact_usage");
    let b = backend();
    let mut req = ask(FRANCE);
    req.max_tokens = Some(30);
    let reply = b.complete(req).await.unwrap();
    let choice = &reply.choices[0];
    let text = choice.message.content.as_ref().unwrap().as_text();
    assert_eq!(text, "The capital of France is Paris.");
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = reply.usage.unwrap();
    let prompt = b.prepare(&ask(FRANCE)).unwrap().prompt;
    assert_eq!(usage.prompt_tokens as usize, prompt.len());
    // The answer's tokens (the end-of-turn token is not counted, as OpenAI does not).
    let answer = tokenizer().encode(&text).unwrap();
    assert_eq!(usage.completion_tokens as usize, answer.len());
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
}

async fn collect(b: &LocalBackend, req: ChatRequest) -> Vec<ChatCompletionChunk> {
    let stream = b.stream(req).await.unwrap();
    stream.map(|c| c.unwrap()).collect().await
}

fn text_of(chunks: &[ChatCompletionChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_openai_chunks_and_stops_at_max_tokens() {
    say_kernel_paths("streams_openai_chunks_and_stops_at_max_tokens");
    let mut req = ask(FRANCE);
    req.max_completion_tokens = Some(4);
    let chunks = collect(backend(), req).await;
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    let last = &chunks[chunks.len() - 2];
    assert_eq!(last.choices[0].finish_reason.as_deref(), Some("length"));
    let usage = chunks.last().unwrap();
    assert!(usage.is_usage_only());
    assert_eq!(usage.usage.as_ref().unwrap().completion_tokens, 4);
    assert_eq!(text_of(&chunks), "The capital of France");
    assert!(chunks.iter().all(|c| c.id == chunks[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_end_the_answer_and_are_not_sent() {
    say_kernel_paths("stop_strings_end_the_answer_and_are_not_sent");
    let mut req = ask(FRANCE);
    req.stop = Some(Stop::Many(vec!["nce is".into(), "zzz".into()]));
    let chunks = collect(backend(), req).await;
    assert_eq!(text_of(&chunks), "The capital of Fra");
    let last = &chunks[chunks.len() - 2];
    assert_eq!(last.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_is_reproducible_with_a_seed_and_n_above_one_is_refused() {
    say_kernel_paths("sampling_is_reproducible_with_a_seed_and_n_above_one_is_refused");
    let b = backend();
    let mut req = ask("Write a short poem about the sea.");
    req.temperature = Some(1.0);
    req.top_p = Some(0.95);
    req.seed = Some(42);
    req.max_tokens = Some(12);
    req.extra.insert("top_k".into(), 40.into());
    req.extra
        .insert("repetition_penalty".into(), serde_json::json!(1.1));
    let text = |r: sluicegate_wire::ChatCompletion| {
        r.choices[0].message.content.as_ref().unwrap().as_text()
    };
    let a = text(b.complete(req.clone()).await.unwrap());
    let again = text(b.complete(req.clone()).await.unwrap());
    assert_eq!(a, again);
    req.seed = Some(7);
    let other = text(b.complete(req.clone()).await.unwrap());
    assert_ne!(a, other, "a different seed should sample differently");

    req.n = Some(2);
    let err = b.complete(req).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidRequest { param: Some(p), .. } if p == "n"),
        "{err:?}"
    );
    let mut bad = ask("hi");
    bad.temperature = Some(3.0);
    assert!(matches!(
        b.complete(bad).await,
        Err(BackendError::InvalidRequest { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_longer_than_the_context_is_refused_or_falls_back() {
    let b = backend_with(|o| o.context = Some(64));
    let long = ask(&"word ".repeat(100));
    match b.complete(long.clone()).await.unwrap_err() {
        BackendError::Upstream { status, code, .. } => {
            assert_eq!(status, 400);
            assert_eq!(code.as_deref(), Some("context_length_exceeded"));
        }
        other => panic!("{other:?}"),
    }
    let b = backend_with(|o| {
        o.context = Some(64);
        o.on_context_overflow = sluicegate_local::ContextOverflow::Fallback;
    });
    let err = b.stream(long).await.err().unwrap();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_retryable_429_and_a_gone_client_frees_its_slot() {
    say_kernel_paths("a_full_queue_is_a_retryable_429_and_a_gone_client_frees_its_slot");
    let b = backend_with(|o| {
        o.max_batch = 1;
        o.queue = 1;
    });
    let mut long = ask("Count from 1 to 500, separated by commas.");
    long.max_tokens = Some(2000);
    // A is running (its first text arrived), B waits in the queue, C finds it full.
    let mut a = b.stream(long.clone()).await.unwrap();
    a.next().await.unwrap().unwrap();
    a.next().await.unwrap().unwrap();
    let mut quick = ask(FRANCE);
    quick.max_tokens = Some(3);
    let queued = b.stream(quick.clone()).await.unwrap();
    let err = b.stream(quick.clone()).await.err().unwrap();
    match &err {
        BackendError::Upstream {
            status: 429,
            retry_after,
            ..
        } => assert!(retry_after.is_some()),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    // Dropping A lets B through long before A's 2000 tokens could have been generated.
    drop(a);
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        queued.map(|c| c.unwrap()).collect::<Vec<_>>().await
    })
    .await
    .expect("the queued request should run once the first client is gone");
    assert_eq!(text_of(&done), "The capital of");
}

/// With `max_wait`, a request that would wait longer than that for a slot is refused at once
/// (a retryable 429 whose `retry-after` is the estimate), while there is a free slot it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_wait_budget_is_refused_at_once() {
    say_kernel_paths("a_request_over_the_wait_budget_is_refused_at_once");
    let b = backend_with(|o| {
        o.max_batch = 1;
        o.queue = 8;
        o.max_wait = Some(Duration::from_millis(20));
    });
    // One finished sequence teaches the backend how long a slot is held (tens of tokens).
    let mut warm = ask("Count from 1 to 100, separated by commas.");
    warm.max_tokens = Some(40);
    warm.stop = None;
    let first = collect(&b, warm.clone()).await;
    assert!(!text_of(&first).is_empty());
    // The slot is free: the next request is taken, and holds it.
    let mut a = b.stream(warm.clone()).await.unwrap();
    a.next().await.unwrap().unwrap();
    a.next().await.unwrap().unwrap();
    let started = std::time::Instant::now();
    let err = b.stream(ask(FRANCE)).await.err().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    match &err {
        BackendError::Upstream {
            status: 429,
            retry_after: Some(after),
            code: Some(code),
            message,
        } => {
            assert_eq!(code, "local_wait_exceeded");
            assert!(after.parse::<u64>().unwrap() >= 1, "{after}");
            assert!(message.contains("max_wait_ms (20)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    // Once A is done the slot is free again and a request is served.
    let _ = a.map(|c| c.unwrap()).collect::<Vec<_>>().await;
    let mut quick = ask(FRANCE);
    quick.max_tokens = Some(3);
    assert_eq!(text_of(&collect(&b, quick).await), "The capital of");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sequences_decode_together_exactly_as_alone() {
    say_kernel_paths("concurrent_sequences_decode_together_exactly_as_alone");
    let b = backend();
    let prompts = [
        FRANCE,
        "Name three colors.",
        "What is 2 + 2? Answer with one number and explain briefly why that is so.",
    ];
    let req = |p: &str| {
        let mut r = ask(p);
        r.max_tokens = Some(12);
        r
    };
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(text_of(&collect(b, req(p)).await));
    }
    let together = futures::future::join_all(prompts.iter().map(|p| collect(b, req(p)))).await;
    let together: Vec<String> = together.iter().map(|c| text_of(c)).collect();
    assert_eq!(together, alone);
}

#[test]
fn a_missing_model_file_names_the_fetch_script() {
    let err = LocalBackend::new(LocalOptions::new("/nonexistent/model.gguf")).unwrap_err();
    assert!(err.to_string().contains("scripts/fetch-models"), "{err}");
}

#[test]
fn an_assistant_turn_and_system_prompt_render_through_the_template() {
    let b = backend();
    let mut req = ask("And of Italy?");
    req.messages.insert(0, Message::text(Role::User, FRANCE));
    req.messages.insert(
        1,
        Message::text(Role::Assistant, "The capital of France is Paris."),
    );
    req.messages
        .insert(0, Message::text(Role::System, "You answer briefly."));
    let p = b.prepare(&req).unwrap().prompt;
    let text = tokenizer().decode(&p).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou answer briefly.<|im_end|>\n"));
    assert!(text.ends_with("<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n"));
}

#[tokio::test]
async fn each_backend_runs_on_its_own_thread_budget() {
    // Two specialists in one process: each model's pool has the threads its backend was
    // given (it once took the first backend's for all, through a process-wide variable).
    let one = backend_with(|o| o.threads = 1);
    let three = backend_with(|o| o.threads = 3);
    assert_eq!(one.threads(), Some(1));
    assert_eq!(three.threads(), Some(3));
    for b in [&one, &three] {
        let mut req = ask(FRANCE);
        req.max_tokens = Some(8);
        let r = b.complete(req).await.unwrap();
        assert!(r.usage.is_some_and(|u| u.completion_tokens > 0));
    }
}
