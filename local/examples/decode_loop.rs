//! Decodes `STREAMS` sequences together for `STEPS` steps on the in-process model, for
//! profiling (`perf record`):
//!
//!     cargo run --release -p sluicegate-local --example decode_loop -- STREAMS STEPS
//!
//! Prints the aggregate tokens per second; not a benchmark with a baseline (see
//! `local_bench.rs` for that).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use candle_core::quantized::gguf_file;
use sluicegate_local::model::{Llama, Step, WeightFormat};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (streams, steps) = (
        args.first().copied().unwrap_or(8),
        args.get(1).copied().unwrap_or(200),
    );
    let path = sluicegate_local::testing::smollm2_gguf();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let m = Llama::from_gguf(&ct, &mut f, WeightFormat::AsStored).unwrap();
    let mut caches: Vec<_> = (0..streams).map(|_| m.new_cache()).collect();
    for (i, c) in caches.iter_mut().enumerate() {
        let prompt: Vec<u32> = (0..32)
            .map(|j| 300 + (i as u32 * 8 + j) * 37 % 20000)
            .collect();
        m.forward(&mut [Step {
            cache: c,
            tokens: &prompt,
        }])
        .unwrap();
    }
    let t = Instant::now();
    for step in 0..steps {
        let toks: Vec<[u32; 1]> = (0..streams).map(|i| [1000 + (step + i) as u32]).collect();
        let mut batch: Vec<Step<'_>> = caches
            .iter_mut()
            .zip(&toks)
            .map(|(cache, tokens)| Step { cache, tokens })
            .collect();
        m.forward(&mut batch).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{streams} streams x {steps} steps: {:.1} tok/s aggregate, {:.2} ms per step",
        (streams * steps) as f64 / secs,
        secs * 1000.0 / steps as f64
    );
}
