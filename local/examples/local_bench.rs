//! Speed of the local backend against candle as it comes, measured in the same run.
//!
//!     CARGO_TARGET_DIR=... cargo run --release -p sluicegate-local --example local_bench
//!
//! Prints, for candle's `quantized_llama` on the file as stored (the baseline) and for the
//! local backend: prompt tok/s (200-token prompt), time to first token of that prompt,
//! single-stream decode tok/s, aggregate decode tok/s at 8 streams (local backend only) and
//! resident memory with the model loaded. Uses the thread budget in `CANDLE_NUM_THREADS`
//! (default 2). Not a test: it prints numbers and asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use futures::StreamExt;
use sluicegate_local::model::{Llama, SeqCache, Step, WeightFormat};
use sluicegate_local::{LocalBackend, LocalOptions};
use sluicegate_wire::ChatBackend;
use sluicegate_wire::ChatRequest;

use sluicegate_local::testing::smollm2_gguf as gguf;

const DECODE: usize = 64;
const PROMPT: usize = 200;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn prompt_ids() -> Vec<u32> {
    // Ordinary token ids past the special tokens, varied so nothing is degenerate (all below
    // the benchmark llama's 32k vocabulary).
    (0..PROMPT as u32).map(|i| 300 + (i * 37) % 20000).collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut b = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[b] {
            b = i;
        }
    }
    b as u32
}

struct Numbers {
    prompt_tps: f64,
    ttft_ms: f64,
    decode_tps: f64,
    /// Decode of one sequence after a 32-token prompt, like each of the batch's 8 (ours only).
    short_tps: f64,
    /// Aggregate decode tok/s of 8 sequences stepped together (model only; ours only).
    batch_tps: f64,
}

fn baseline(path: &std::path::Path) -> Numbers {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let ids = prompt_ids();
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    m.forward(&x, 0).unwrap(); // warm-up
    m.clear_kv_cache();
    let t = Instant::now();
    let logits = m.forward(&x, 0).unwrap();
    let prompt_s = t.elapsed().as_secs_f64();
    let mut next = argmax(&logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
    let t = Instant::now();
    for i in 0..DECODE {
        let x = Tensor::new(&[next], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = m.forward(&x, PROMPT + i).unwrap();
        next = argmax(&l.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
    }
    Numbers {
        prompt_tps: PROMPT as f64 / prompt_s,
        ttft_ms: prompt_s * 1000.0,
        decode_tps: DECODE as f64 / t.elapsed().as_secs_f64(),
        short_tps: 0.0,
        batch_tps: 0.0,
    }
}

/// Greedy decode of `DECODE` tokens of one sequence from the logits of its prompt; tok/s.
fn decode_alone(m: &Llama, cache: &mut SeqCache, prompt_logits: &Tensor) -> f64 {
    let mut next = argmax(&Llama::row(prompt_logits, 0).unwrap());
    let t = Instant::now();
    for _ in 0..DECODE {
        let l = m
            .forward(&mut [Step {
                cache: &mut *cache,
                tokens: &[next],
            }])
            .unwrap();
        next = argmax(&Llama::row(&l, 0).unwrap());
    }
    DECODE as f64 / t.elapsed().as_secs_f64()
}

/// A new sequence's prefill of `ids`: its cache, the last token's logits and the seconds taken.
fn prefill(m: &Llama, ids: &[u32]) -> (SeqCache, Tensor, f64) {
    let mut cache = m.new_cache();
    let t = Instant::now();
    let logits = m
        .forward(&mut [Step {
            cache: &mut cache,
            tokens: ids,
        }])
        .unwrap();
    (cache, logits, t.elapsed().as_secs_f64())
}

fn ours(path: &std::path::Path, format: WeightFormat) -> Numbers {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let m = Llama::from_gguf(&ct, &mut f, format).unwrap();
    let ids = prompt_ids();
    prefill(&m, &ids); // warm-up
    let (mut cache, logits, prompt_s) = prefill(&m, &ids);
    let decode_tps = decode_alone(&m, &mut cache, &logits);
    // One sequence after a 32-token prompt: the like-for-like single stream for the batch.
    let mut one = m.new_cache();
    let l = m
        .forward(&mut [Step {
            cache: &mut one,
            tokens: &ids[..32],
        }])
        .unwrap();
    let short_tps = decode_alone(&m, &mut one, &l);
    // 8 sequences with different 32-token prompts, then decoded together.
    let mut caches: Vec<_> = (0..8).map(|_| m.new_cache()).collect();
    let mut next: Vec<u32> = Vec::new();
    for (i, c) in caches.iter_mut().enumerate() {
        let l = m
            .forward(&mut [Step {
                cache: c,
                tokens: &ids[i * 8..i * 8 + 32],
            }])
            .unwrap();
        next.push(argmax(&Llama::row(&l, 0).unwrap()));
    }
    let t = Instant::now();
    for _ in 0..DECODE {
        let toks: Vec<[u32; 1]> = next.iter().map(|t| [*t]).collect();
        let mut steps: Vec<Step<'_>> = caches
            .iter_mut()
            .zip(&toks)
            .map(|(cache, tokens)| Step { cache, tokens })
            .collect();
        let l = m.forward(&mut steps).unwrap();
        next = (0..8)
            .map(|i| argmax(&Llama::row(&l, i).unwrap()))
            .collect();
    }
    Numbers {
        prompt_tps: PROMPT as f64 / prompt_s,
        ttft_ms: prompt_s * 1000.0,
        decode_tps,
        short_tps,
        batch_tps: (8 * DECODE) as f64 / t.elapsed().as_secs_f64(),
    }
}

/// Each quantisation of a model whose widths are multiples of 256 (K-quant throughout; random
/// weights, `ggufs::BENCH`'s sizes) and of SmolLM2 re-quantised (576 wide: K-quants only in
/// `ffn_down`), in the engine's default format (Q8_0 at load). All of a model's files are
/// loaded at once and measured in turn, round after round, so that the machine's noise falls
/// on all of them alike: medians of `ROUNDS` rounds, and each format's decode rate as a share
/// of Q8_0's (the median of the rounds' ratios). On a CPU with AVX-512, Q8_0 and Q4_K_M run
/// again with the kernels kept to AVX2 (`kernels::force_avx2`). Candle runs the Q4_K_M file once, for
/// reference.
fn formats(baselines: bool) {
    use sluicegate_local::testing::ggufs::{random_llama, smollm2_as, Mix, BENCH};
    const ROUNDS: usize = 5;
    let mixes = [Mix::Q8_0, Mix::Q4KM, Mix::Q5KM, Mix::Q6K, Mix::F16];
    let bench_llama = |m| random_llama("bench-llama", BENCH, m);
    let files: [(&str, &dyn Fn(Mix) -> std::path::PathBuf); 2] = [
        ("llama 1024x12 (random)", &bench_llama),
        ("SmolLM2-135M", &smollm2_as),
    ];
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ids = prompt_ids();
    for (model, file) in files {
        // Each file in the engine's default kernels, and (on a CPU with AVX-512) Q8_0 and
        // Q4_K_M again kept to AVX2: what a CPU without AVX-512 gets.
        let avx512 = sluicegate_local::kernels::simd_paths().contains(&"avx512f");
        let mut runs: Vec<(Mix, bool)> = mixes.iter().map(|&m| (m, false)).collect();
        if avx512 {
            runs.extend([(Mix::Q8_0, true), (Mix::Q4KM, true)]);
        }
        let loaded: Vec<(Mix, bool, Llama)> = runs
            .iter()
            .map(|&(mix, avx2)| {
                let path = file(mix);
                let mut f = std::fs::File::open(&path).unwrap();
                let ct = gguf_file::Content::read(&mut f).unwrap();
                sluicegate_local::kernels::force_avx2(avx2);
                let m = Llama::from_gguf(&ct, &mut f, WeightFormat::Q8_0).unwrap();
                sluicegate_local::kernels::force_avx2(false);
                (mix, avx2, m)
            })
            .collect();
        let mut ttft = vec![Vec::new(); loaded.len()];
        let mut decode = vec![Vec::new(); loaded.len()];
        for _ in 0..ROUNDS {
            for (i, (_, avx2, m)) in loaded.iter().enumerate() {
                sluicegate_local::kernels::force_avx2(*avx2);
                let (mut cache, logits, secs) = prefill(m, &ids);
                ttft[i].push(secs * 1000.0);
                decode[i].push(decode_alone(m, &mut cache, &logits));
                sluicegate_local::kernels::force_avx2(false);
            }
        }
        println!("{model}: medians of {ROUNDS} rounds (200-token prompt, {DECODE} decoded)");
        for (i, (mix, avx2, m)) in loaded.iter().enumerate() {
            let mut ratios: Vec<f64> = decode[i]
                .iter()
                .zip(&decode[0])
                .map(|(a, b)| a / b)
                .collect();
            let layouts = m.layouts();
            let name = format!("{}{}", mix.name(), if *avx2 { " AVX2" } else { "" });
            println!(
                "  {name:<12} TTFT(200) {:>7.1} ms   decode {:>6.1} tok/s   {:>4.0}% of Q8_0's   {layouts:?}",
                median(&mut ttft[i]),
                median(&mut decode[i]),
                median(&mut ratios) * 100.0
            );
        }
        if baselines {
            print(
                &format!("  candle, {model} Q4_K_M"),
                &baseline(&file(Mix::Q4KM)),
            );
        }
        println!();
    }
}

/// Greedy, or (`sampled`) what chat clients commonly send: temperature 0.8, top_p 0.95.
fn request(text: &str, max_tokens: u32, sampled: bool) -> ChatRequest {
    let (temperature, top_p) = if sampled { (0.8, 0.95) } else { (0.0, 1.0) };
    serde_json::from_value(serde_json::json!({
        "model": "local",
        "messages": [{"role": "user", "content": text}],
        "temperature": temperature,
        "top_p": top_p,
        "seed": 1,
        "max_tokens": max_tokens,
        // Keep every stream generating the full count.
        "repetition_penalty": 1.3,
    }))
    .unwrap()
}

/// Streams `n` requests at once; returns (generated tokens, seconds, mean TTFT ms, decode
/// tok/s). The last is the sum of each stream's own decode rate between its first and last
/// text chunk: the steady-state aggregate, without the prompts' prefill.
async fn concurrent(b: &LocalBackend, n: usize, text: &str, sampled: bool) -> (u32, f64, f64, f64) {
    let t = Instant::now();
    let runs = (0..n).map(|i| async move {
        let prompt = format!("{text} (variant {i})");
        let mut s = b
            .stream(request(&prompt, DECODE as u32, sampled))
            .await
            .unwrap();
        let mut first = None;
        let mut last = Duration::ZERO;
        let mut tokens = 0;
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            if c.choices
                .iter()
                .any(|c| c.delta.content.as_deref().is_some_and(|s| !s.is_empty()))
            {
                last = t.elapsed();
                first.get_or_insert(last);
            }
            if let Some(u) = c.usage {
                tokens = u.completion_tokens;
            }
        }
        let first = first.unwrap_or_default();
        let span = (last - first).as_secs_f64();
        let rate = if span > 0.0 {
            f64::from(tokens.saturating_sub(1)) / span
        } else {
            0.0
        };
        (tokens, first, rate)
    });
    let results = futures::future::join_all(runs).await;
    let secs = t.elapsed().as_secs_f64();
    let tokens = results.iter().map(|r| r.0).sum();
    let ttft = results.iter().map(|r| r.1.as_secs_f64()).sum::<f64>() / n as f64 * 1000.0;
    let decode = results.iter().map(|r| r.2).sum();
    (tokens, secs, ttft, decode)
}

fn print(name: &str, n: &Numbers) {
    println!(
        "{name:<28} prompt {:>7.1} tok/s   TTFT(200) {:>7.1} ms   decode {:>6.1} tok/s",
        n.prompt_tps, n.ttft_ms, n.decode_tps
    );
    if n.batch_tps > 0.0 {
        println!(
            "{:<28} after 32-token prompts: 1 sequence {:>6.1} tok/s, 8 decoded together {:>6.1} \
             tok/s aggregate ({:.2}x one)",
            "",
            n.short_tps,
            n.batch_tps,
            n.batch_tps / n.short_tps
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "2");
    }
    let threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_default();
    println!("threads: {threads}, prompt {PROMPT} tokens, decode {DECODE} tokens");

    let b = LocalBackend::new(LocalOptions::new(gguf())).unwrap();
    b.wait_ready(Duration::from_secs(300)).unwrap();
    let rss = rss_mb();
    let text = "Write a long story about a lighthouse keeper and the sea.";
    let (tok1, s1, ttft1, dec1) = concurrent(&b, 1, text, false).await;
    let (tok8, s8, ttft8, dec8) = concurrent(&b, 8, text, false).await;
    let (_, _, _, sampled1) = concurrent(&b, 1, text, true).await;
    let (_, _, _, sampled8) = concurrent(&b, 8, text, true).await;
    drop(b);
    std::thread::sleep(Duration::from_millis(200));

    let q8 = ours(&gguf(), WeightFormat::Q8_0);
    let stored = ours(&gguf(), WeightFormat::AsStored);
    println!();
    // `LOCAL_BENCH_NO_BASELINE=1` skips the (slow) baselines, e.g. when profiling.
    let baselines = std::env::var_os("LOCAL_BENCH_NO_BASELINE").is_none();
    if baselines {
        print("candle quantized_llama (Q4_1)", &baseline(&gguf()));
    }
    print("ours, weights as stored", &stored);
    print("ours, Q8_0 at load", &q8);
    println!();
    formats(baselines);
    println!();
    println!(
        "local backend, 1 stream : {:>6.1} tok/s end to end (TTFT {ttft1:.0} ms)",
        f64::from(tok1) / s1
    );
    println!(
        "local backend, 8 streams: {:>6.1} tok/s aggregate ({:.2}x one stream, mean TTFT {ttft8:.0} ms)",
        f64::from(tok8) / s8,
        (f64::from(tok8) / s8) / (f64::from(tok1) / s1)
    );
    println!(
        "local backend, decode only (each stream's rate after its first token, summed): \
         1 stream {dec1:.1} tok/s, 8 streams {dec8:.1} tok/s ({:.2}x)",
        dec8 / dec1
    );
    println!(
        "local backend, decode only, temperature 0.8 / top_p 0.95: 1 stream {sampled1:.1} tok/s, \
         8 streams {sampled8:.1} tok/s ({:.2}x)",
        sampled8 / sampled1
    );
    println!("resident memory with the local backend loaded: {rss:.0} MB");
}
