//! Encodes one text `N` times on the fused encoder, for profiling (`perf record`):
//!
//!     cargo run --release -p sluicegate-encoder --example encode_loop -- TOKENS N
//!
//! Prints the median milliseconds per request; not a benchmark with a baseline (see
//! `benches/encoder.rs` for that).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use sluicegate_encoder::{Encoder, ServiceOptions};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (tokens, n) = (
        args.first().copied().unwrap_or(32),
        args.get(1).copied().unwrap_or(500),
    );
    let dir = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
        .join("minilm");
    let encoder = Encoder::load(&dir).expect("run scripts/fetch-models");
    let words = "the quarterly report shows revenue grew while costs rose ".repeat(80);
    let mut text = String::new();
    for w in words.split(' ') {
        if encoder.token_ids(&text).unwrap().len() >= tokens {
            break;
        }
        text.push_str(w);
        text.push(' ');
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(ServiceOptions::default().threads)
        .build()
        .unwrap();
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            pool.install(|| encoder.embed(&[text.as_str()])).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{} tokens: median {:.2} ms over {n}",
        encoder.token_ids(&text).unwrap().len(),
        ms[n / 2]
    );
}
