//! Time to pick one token from SmolLM2's real logits (49,152 of them) with common sampling
//! settings; each sequence pays it once per generated token, on the model's thread:
//!
//!     cargo run --release -p sluicegate-local --example sampler_bench
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use candle_core::quantized::gguf_file;
use sluicegate_local::engine::sampler::{Sampler, SamplingParams};
use sluicegate_local::model::{Llama, Step, WeightFormat};

fn main() {
    let path = sluicegate_local::testing::smollm2_gguf();
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let m = Llama::from_gguf(&ct, &mut f, WeightFormat::AsStored).unwrap();
    let mut cache = m.new_cache();
    // "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    // and a few tokens of the answer.
    let ids: Vec<u32> = vec![
        1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198, 504, 3575,
    ];
    let l = m
        .forward(&mut [Step {
            cache: &mut cache,
            tokens: &ids,
        }])
        .unwrap();
    let logits = Llama::row(&l, 0).unwrap();
    let recent: Vec<u32> = (0..64).map(|i| i * 100).collect();
    let settings = [
        ("greedy, repetition penalty 1.3", 0.0, 1.0, 0, 1.3),
        ("temperature 1", 1.0, 1.0, 0, 1.0),
        ("temperature 0.7, top_p 0.9", 0.7, 0.9, 0, 1.0),
        ("temperature 1, top_k 40", 1.0, 1.0, 40, 1.0),
    ];
    for (name, temperature, top_p, top_k, repetition_penalty) in settings {
        let mut s = Sampler::new(SamplingParams {
            temperature,
            top_p,
            top_k,
            repetition_penalty,
            ..SamplingParams::default()
        });
        let mut times: Vec<f64> = (0..300)
            .map(|_| {
                let mut l = logits.clone();
                let t = Instant::now();
                s.sample(&mut l, &recent, &recent);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{name:<32} p50 {:>7.1} us   p99 {:>7.1} us",
            times[150], times[296]
        );
    }
}
