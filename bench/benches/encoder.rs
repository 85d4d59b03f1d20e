//! Encoder latency and throughput, fused forward pass vs candle's `BertModel` as it comes (the
//! baseline, measured in the same run). Prints numbers; not a timed test.
//!
//! `cargo bench -p sluicegate-bench --bench encoder` (release profile). Uses 2 rayon threads
//! unless `SLUICEGATE_CLASSIFIER_THREADS` says otherwise, like the gateway's encoder service.
//! Latencies include tokenisation. `ROUNDS` (default 200) sets the samples per figure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluicegate_encoder::reference::CandleBert;
use sluicegate_encoder::{
    Classifier, Encoder, EncoderHandle, Health, Scorer, ServiceOptions, Setup,
};
use sluicegate_router::classifier::{ExampleScorer, ExampleStrategy};
use sluicegate_router::stats::percentile_of;

const WORDS: &str =
    "the quarterly report shows revenue grew while costs in the logistics division \
    rose faster than expected and the board asks whether to renegotiate supplier contracts before \
    the next fiscal year begins so please summarise the options with their risks";

/// A text of exactly `tokens` WordPiece tokens (with `[CLS]` and `[SEP]`).
fn text_of(encoder: &Encoder, tokens: usize) -> Result<String, Box<dyn std::error::Error>> {
    let words: Vec<&str> = WORDS
        .split(' ')
        .filter(|w| !w.is_empty())
        .cycle()
        .take(600)
        .collect();
    for n in 1..words.len() {
        let text = words[..n].join(" ");
        if encoder.token_ids(&text)?.len() >= tokens {
            return Ok(text);
        }
    }
    Err("no text long enough".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let dir = models.join("minilm");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let threads = ServiceOptions::default().threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let rss_before = rss_mib();
    let encoder = Encoder::load(&dir).map_err(|e| format!("{e} (run scripts/fetch-models)"))?;
    println!(
        "threads {threads}; RSS {} MiB before load, {} MiB with the encoder",
        rss_before,
        rss_mib()
    );
    let baseline = CandleBert::load(&dir)?;

    println!(
        "\nsingle request (tokenise + forward), {rounds} samples after 20 warm-up, interleaved:"
    );
    println!(
        "{:>7}  {:>22}  {:>22}  {:>7}",
        "tokens", "candle p50 / p99 ms", "fused p50 / p99 ms", "speedup"
    );
    for tokens in [22, 32, 212] {
        let text = text_of(&encoder, tokens)?;
        let (mut base, mut fused) = (Vec::new(), Vec::new());
        for i in 0..rounds + 20 {
            let started = Instant::now();
            pool.install(|| baseline.embed_ids(&[encoder.token_ids(&text)?]))?;
            let b = started.elapsed();
            let started = Instant::now();
            pool.install(|| encoder.embed(&[text.as_str()]))?;
            let f = started.elapsed();
            if i >= 20 {
                base.push(b.as_secs_f64() * 1e3);
                fused.push(f.as_secs_f64() * 1e3);
            }
        }
        let (b50, f50) = (
            percentile_of(&base, 50.0).unwrap_or(0.0),
            percentile_of(&fused, 50.0).unwrap_or(0.0),
        );
        println!(
            "{tokens:>7}  {b50:>10.2} / {:>9.2}  {f50:>10.2} / {:>9.2}  {:>6.2}x",
            percentile_of(&base, 99.0).unwrap_or(0.0),
            percentile_of(&fused, 99.0).unwrap_or(0.0),
            b50 / f50
        );
    }

    let short = text_of(&encoder, 16)?;
    let batch: Vec<Vec<u32>> = (0..32)
        .map(|i| encoder.token_ids(&format!("{short} {i}")))
        .collect::<Result<_, _>>()?;
    let batch_rounds = (rounds / 10).max(5);
    let started = Instant::now();
    for _ in 0..batch_rounds {
        pool.install(|| baseline.embed_ids(&batch))?;
    }
    let base = (batch_rounds * 32) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..batch_rounds {
        pool.install(|| encoder.embed_ids(&batch))?;
    }
    let fused = (batch_rounds * 32) as f64 / started.elapsed().as_secs_f64();
    println!(
        "\nbatch of 32 (~{} tokens each): candle {base:.0} texts/s, fused {fused:.0} texts/s ({:.2}x)",
        batch[0].len(),
        fused / base
    );
    drop(baseline);
    drop(encoder);

    service_under_load(&dir, &short)?;
    println!("RSS at end {} MiB", rss_mib());
    Ok(())
}

/// Many concurrent callers through the encoder service (dynamic batching), like the gateway.
fn service_under_load(dir: &std::path::Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = ServiceOptions { timeout: Duration::from_secs(10), ..ServiceOptions::default() };
        let setup: Setup = Box::new(|encoder: &Encoder| {
            let examples = encoder.embed(&["I was charged twice", "refund my payment"])?;
            let scorer = ExampleScorer::new(vec![("billing".into(), examples)], ExampleStrategy::Centroid);
            Ok(Arc::new(scorer) as Arc<dyn Scorer>)
        });
        let handle = EncoderHandle::start(dir.to_path_buf(), options, setup);
        let mut health = handle.watch_health();
        while !matches!(*health.borrow_and_update(), Health::Ready) {
            health.changed().await?;
        }
        for concurrency in [1usize, 8, 64] {
            let total = 1500usize;
            let started = Instant::now();
            let mut tasks = Vec::new();
            for worker in 0..concurrency {
                let handle = handle.clone();
                let text = text.to_owned();
                tasks.push(tokio::spawn(async move {
                    let mut ms = Vec::new();
                    for i in (worker..total).step_by(concurrency) {
                        let t = Instant::now();
                        handle.classify(format!("{text} {i}")).await?;
                        ms.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok::<_, sluicegate_encoder::ClassifyError>(ms)
                }));
            }
            let mut ms = Vec::new();
            for task in tasks {
                ms.extend(task.await??);
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "service, {concurrency:>2} concurrent callers: {:.0} classifications/s, p50 {:.2} ms, p99 {:.2} ms",
                total as f64 / secs,
                percentile_of(&ms, 50.0).unwrap_or(0.0),
                percentile_of(&ms, 99.0).unwrap_or(0.0)
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
