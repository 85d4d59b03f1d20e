#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)] // test code
//! The real MiniLM encoder: embedding correctness and the encoder service under bad input
//! and load. Needs `models/minilm` (run `scripts/fetch-models`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluicegate_encoder::reference::CandleBert;
use sluicegate_encoder::{
    cosine, softmax, Classifier, ClassifyError, Encoder, EncoderHandle, Health, Scorer,
    ServiceOptions, Setup,
};

fn model_dir() -> PathBuf {
    let models = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let dir = models.join("minilm");
    assert!(
        dir.join("model.safetensors").is_file() && dir.join("tokenizer.json").is_file(),
        "the MiniLM encoder is missing from {}: run scripts/fetch-models",
        dir.display()
    );
    dir
}

/// Says which kernels a test of the whole model ran: the dispatch takes the first of these
/// paths each kernel has (the unit tests check each path against its oracle).
fn say_paths(test: &str) {
    let paths = sluicegate_encoder::kernels::simd_paths();
    println!("{test}: ran the encoder's fastest kernels of {paths:?} on this CPU");
}

/// Computed once with this code (candle 0.11, f32) and checked for plausibility: the
/// paraphrase pair is far more similar than the unrelated pair, as with sentence-transformers.
const REF_FIRST_DIMS: [f32; 8] = [
    0.006903, -0.063023, -0.072044, -0.032496, -0.042709, 0.070429, 0.009074, 0.015408,
];
const REF_COS_PARAPHRASE: f32 = 0.779752;
const REF_COS_UNRELATED: f32 = 0.118374;

#[test]
fn embeddings_match_the_reference() {
    say_paths("embeddings_match_the_reference");
    let encoder = Encoder::load(&model_dir()).unwrap();
    let texts = [
        "How do I reset my password?",
        "I forgot my password",
        "Write a poem about the sea",
    ];
    let e = encoder.embed(&texts).unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].len(), 384);
    let norm: f32 = e[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
    let para = cosine(&e[0], &e[1]);
    let unrelated = cosine(&e[0], &e[2]);
    println!(
        "first dims {:?}\ncos para {para} unrelated {unrelated}",
        &e[0][..8]
    );
    assert!(
        para > unrelated + 0.4,
        "para {para} vs unrelated {unrelated}"
    );
    assert!((para - REF_COS_PARAPHRASE).abs() < 1e-3, "para {para}");
    assert!(
        (unrelated - REF_COS_UNRELATED).abs() < 1e-3,
        "unrelated {unrelated}"
    );
    for (got, want) in e[0].iter().zip(REF_FIRST_DIMS) {
        assert!((got - want).abs() < 1e-3, "{:?}", &e[0][..8]);
    }
    // Batching (packing inputs together) must not change an embedding.
    let alone = encoder.embed(&texts[..1]).unwrap();
    assert!(cosine(&alone[0], &e[0]) > 0.99999);
}

/// The fused, packed forward pass agrees with candle's own `BertModel` (padded, masked) on a
/// batch of very different lengths, element by element.
#[test]
fn fused_encoder_matches_candle_bert_model() {
    say_paths("fused_encoder_matches_candle_bert_model");
    let dir = model_dir();
    let encoder = Encoder::load(&dir).unwrap();
    let reference = CandleBert::load(&dir).unwrap();
    let long = "The invoice for March lists 12 items, 3 of them twice; café ünïcode. ".repeat(30);
    let texts = [
        "hi",
        "How do I reset my password?",
        "   spaces   and\ttabs\n",
        long.as_str(),
        "1234567890 9876543210",
    ];
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| encoder.token_ids(t).unwrap())
        .collect();
    assert_eq!(
        ids[3].len(),
        encoder.max_tokens(),
        "the long text fills the budget"
    );
    let fused = encoder.embed_ids(&ids).unwrap();
    let candle = reference.embed_ids(&ids).unwrap();
    for (i, (f, c)) in fused.iter().zip(&candle).enumerate() {
        let worst = f
            .iter()
            .zip(c)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "input {i}: largest difference {worst}");
    }
}

#[test]
fn long_inputs_keep_head_and_tail_within_the_budget() {
    let encoder = Encoder::load(&model_dir()).unwrap();
    let huge = format!(
        "{} tail words here",
        "lorem ipsum dolor sit amet ".repeat(40_000)
    );
    let started = Instant::now();
    let ids = encoder.token_ids(&huge).unwrap();
    assert_eq!(ids.len(), encoder.max_tokens());
    let tail = encoder.token_ids("tail words here").unwrap();
    assert!(ids.ends_with(&tail[1..]), "the tail is kept");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(encoder.token_ids("").unwrap().len(), 2);
}

/// Nearest of two example sets (the router's scorers live in `sluicegate-router`; the service
/// only needs some [`Scorer`]).
#[derive(Debug)]
struct Nearest {
    labels: Vec<String>,
    examples: Vec<Vec<Vec<f32>>>,
}

impl Scorer for Nearest {
    fn labels(&self) -> &[String] {
        &self.labels
    }
    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let best: Vec<f32> = (self.examples.iter())
            .map(|class| {
                (class.iter().map(|e| cosine(e, embedding))).fold(f32::NEG_INFINITY, f32::max)
            })
            .collect();
        softmax(&best, 0.05)
    }
}

fn scorer_setup() -> Setup {
    Box::new(|enc: &Encoder| {
        let billing = enc.embed(&["I was charged twice", "refund my last payment"])?;
        let poetry = enc.embed(&["write a poem", "compose a sonnet about love"])?;
        let s = Nearest {
            labels: vec!["billing".into(), "poetry".into()],
            examples: vec![billing, poetry],
        };
        Ok(Arc::new(s) as Arc<dyn Scorer>)
    })
}

async fn ready(handle: &EncoderHandle) {
    let mut health = handle.watch_health();
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        health.wait_for(|h| *h != Health::Loading),
    )
    .await;
    assert!(waited.is_ok(), "encoder did not load in 60s");
    assert_eq!(handle.health(), Health::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_classifies_bad_input_without_panicking() {
    say_paths("service_classifies_bad_input_without_panicking");
    // A generous deadline: this checks answers, not speed (a loaded CI box is slow).
    let options = ServiceOptions {
        timeout: Duration::from_secs(20),
        ..ServiceOptions::default()
    };
    let handle = EncoderHandle::start(model_dir(), options, scorer_setup());
    ready(&handle).await;
    let v = handle
        .classify("my card was charged two times".into())
        .await
        .unwrap();
    assert_eq!(v.class, "billing");
    assert!(
        v.confidence > 0.5 && v.top.len() == 2 && v.millis > 0.0,
        "{v:?}"
    );
    let huge = "tell me everything ".repeat(70_000); // ~200k tokens
    for text in ["", "   \n\t ", huge.as_str(), "🤖🤖🤖", "\u{0}"] {
        let v = handle.classify(text.to_owned()).await;
        assert!(v.is_ok(), "{v:?}");
    }
    // Still serving afterwards.
    assert_eq!(handle.health(), Health::Ready);
    assert!(handle.classify("write me a sonnet".into()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_batches_concurrent_calls_and_sheds_overload() {
    say_paths("service_batches_concurrent_calls_and_sheds_overload");
    let options = ServiceOptions {
        queue: 2,
        timeout: Duration::from_secs(30),
        ..ServiceOptions::default()
    };
    let handle = EncoderHandle::start(model_dir(), options, scorer_setup());
    ready(&handle).await;
    let calls = (0..40).map(|i| {
        let h = handle.clone();
        tokio::spawn(async move { h.classify(format!("refund payment number {i}")).await })
    });
    let started = Instant::now();
    let results = futures_join(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(ClassifyError::Overloaded)))
        .count();
    assert_eq!(
        ok + overloaded,
        40,
        "only successes or overload: {results:?}"
    );
    assert!(
        ok >= 1 && overloaded >= 1,
        "ok {ok}, overloaded {overloaded}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_missing_encoder_fails_health_and_calls() {
    let handle = EncoderHandle::start(
        PathBuf::from("/nonexistent/minilm"),
        ServiceOptions::default(),
        scorer_setup(),
    );
    let mut health = handle.watch_health();
    let h = tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|h| matches!(h, Health::Failed(_))),
    )
    .await;
    assert!(h.is_ok());
    let err = handle.classify("hi".into()).await.unwrap_err();
    assert!(err.to_string().contains("scripts/fetch-models"), "{err}");
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}
