//! Classification and local generation on the same box: each alone, then both at once.
//!
//!     cargo run --release -p sluicegate-bench --bin colocated
//!
//! Prints the encoder's single-request latency (p50/p99 at ~22 and ~212 tokens) and the local
//! model's single-stream decode speed, first each alone, then while the other runs flat out,
//! with the ratio. Thread budgets: `SLUICEGATE_CLASSIFIER_THREADS` (encoder, default 2) and
//! `LOCAL_THREADS` (local model, default 2). Not a test: it prints numbers and asserts nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sluicegate_encoder::{Encoder, ServiceOptions};
use sluicegate_local::{LocalBackend, LocalOptions};
use sluicegate_router::stats::percentile_of;
use sluicegate_wire::ChatBackend;
use sluicegate_wire::ChatRequest;

const LONG: &str = "The quarterly report shows revenue grew while costs in the logistics division \
    rose faster than expected, and the board asks whether to renegotiate supplier contracts. ";

fn models() -> PathBuf {
    std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// p50 and p99 (ms) of `rounds` single classifications of `text`.
fn encoder_latency(
    encoder: &Encoder,
    pool: &rayon::ThreadPool,
    text: &str,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        pool.install(|| encoder.embed(&[text]))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((
        percentile_of(&ms, 50.0).unwrap_or(0.0),
        percentile_of(&ms, 99.0).unwrap_or(0.0),
    ))
}

fn request(i: u64) -> anyhow::Result<ChatRequest> {
    Ok(serde_json::from_value(serde_json::json!({
        "model": "local",
        "messages": [{"role": "user", "content": format!("Write a long story about a lighthouse keeper, part {i}.")}],
        "temperature": 0,
        "max_tokens": 64,
        "repetition_penalty": 1.3,
    }))?)
}

/// Streams one request after another until `stop`; counts generated tokens.
async fn generate(
    backend: Arc<LocalBackend>,
    stop: Arc<AtomicBool>,
    tokens: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut s = backend.stream(request(i)?).await?;
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            if chunk
                .choices
                .iter()
                .any(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
            {
                tokens.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
    }
    Ok(())
}

/// Decode tokens/s over `window` (generation already running).
async fn decode_rate(tokens: &AtomicU64, window: Duration) -> f64 {
    let start = tokens.load(Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    (tokens.load(Ordering::Relaxed) - start) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let local_threads: usize = std::env::var("LOCAL_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let threads = ServiceOptions::default().threads;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?,
    );
    let encoder =
        Arc::new(Encoder::load(&models().join("minilm")).context("run scripts/fetch-models")?);
    let short = "How do I reset my password for the online banking app please";
    let long = LONG.repeat(7);
    println!("encoder threads {threads}, local model threads {local_threads}, {rounds} samples per figure");

    let mut alone = Vec::new();
    for text in [short, long.as_str()] {
        encoder_latency(&encoder, &pool, text, 10)?;
        alone.push(encoder_latency(&encoder, &pool, text, rounds)?);
    }

    let mut options = LocalOptions::new(models().join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"));
    options.threads = local_threads;
    let backend = Arc::new(LocalBackend::new(options)?);
    while backend.check_available().is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(AtomicU64::new(0));
    let gen = tokio::spawn(generate(backend.clone(), stop.clone(), tokens.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let decode_alone = decode_rate(&tokens, Duration::from_secs(8)).await;

    // Both at once: classify in a blocking thread while generation keeps streaming.
    let (enc, pl, long2) = (encoder.clone(), pool.clone(), long.clone());
    let both = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        for text in [short, long2.as_str()] {
            out.push(encoder_latency(&enc, &pl, text, rounds)?);
        }
        Ok(out)
    });
    let t = Instant::now();
    let start = tokens.load(Ordering::Relaxed);
    let together = both.await??;
    let decode_together =
        (tokens.load(Ordering::Relaxed) - start) as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    gen.await??;

    for (i, name) in ["short (~14 tokens)", "long (~212 tokens)"]
        .iter()
        .enumerate()
    {
        println!(
            "classify {name}: alone p50 {:.2} ms p99 {:.2} ms | while generating p50 {:.2} ms p99 {:.2} ms ({:.2}x p50)",
            alone[i].0, alone[i].1, together[i].0, together[i].1, together[i].0 / alone[i].0
        );
    }
    println!(
        "local decode: alone {decode_alone:.1} tok/s | while classifying {decode_together:.1} tok/s ({:.2}x)",
        decode_together / decode_alone
    );
    Ok(())
}
