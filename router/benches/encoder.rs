//! Encoder latency and throughput. Prints numbers; not a timed test.
//!
//! `cargo bench -p switchyard-router --bench encoder` (release profile). Uses 2 rayon threads
//! unless `SWITCHYARD_CLASSIFIER_THREADS` says otherwise, like the gateway's encoder service.

use std::path::PathBuf;
use std::time::Instant;

use switchyard_router::classifier::metrics::percentile;
use switchyard_router::classifier::service::embed_chunked;
use switchyard_router::classifier::{Encoder, ServiceOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = std::env::var_os("SWITCHYARD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let threads = ServiceOptions::default().threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let encoder = Encoder::load(&models.join("minilm"))
        .map_err(|e| format!("{e} (run scripts/fetch-models)"))?;
    let short = "How do I reset my password for the online banking app please";
    let long = "The quarterly report shows revenue grew while costs in the logistics division rose \
                faster than expected, and the board asks whether to renegotiate supplier contracts. "
        .repeat(7);
    println!("threads {threads}, RSS after load {} MiB", rss_mib());
    for (name, text) in [("short", short.to_owned()), ("long", long)] {
        let tokens = encoder.token_ids(&text)?.len();
        let mut ms = Vec::new();
        for i in 0..220 {
            let started = Instant::now();
            pool.install(|| encoder.embed(&[text.as_str()]))?;
            if i >= 20 {
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        println!(
            "{name}: {tokens} tokens  p50 {:.2} ms  p99 {:.2} ms",
            percentile(&ms, 50.0),
            percentile(&ms, 99.0)
        );
    }
    let batch: Vec<String> = (0..32).map(|i| format!("{short} number {i}")).collect();
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    let started = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        pool.install(|| embed_chunked(&encoder, &refs, 32))?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "batch 32 short: {:.0} texts/s ({:.1} ms per batch)",
        (rounds * 32) as f64 / secs,
        secs * 1000.0 / rounds as f64
    );
    println!("RSS at end {} MiB", rss_mib());
    Ok(())
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
