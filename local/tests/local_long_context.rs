//! What candle's `quantized_phi3` does not run, checked against expectations worked out by
//! hand: Phi-3.5's LongRoPE (short factors within the original context, long ones past it, and
//! the attention factor on `cos`/`sin`, as llama.cpp applies them), Phi-3's sliding window, and
//! the refusal of what the engine cannot run (YaRN, partial rotary embeddings).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use common::{f32_tensor, load_error, load_for, ours_two_steps, rewrite};
use sluicegate_local::testing::ggufs::{random_model_with_metadata, tiny_model, Mix, TINY};
use sluicegate_local::testing::{compare_logits, TestRng};

fn prompt(n: usize) -> Vec<u32> {
    let mut g = TestRng::new(17);
    (0..n).map(|_| g.next_u32() % TINY.vocab as u32).collect()
}

fn u32v(v: usize) -> gguf_file::Value {
    gguf_file::Value::U32(v as u32)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A Phi-3 file with LongRoPE factors (short `S`, long `L`, original context 128 of 256) runs
/// exactly as the same file with `rope_freqs = S` when served 128 positions, and as
/// `rope_freqs = L` when served 256: the factors llama.cpp picks by the context served.
#[test]
fn phi3_longrope_takes_the_factors_of_the_context_served() {
    let src = tiny_model("phi3", Mix::Q8_0);
    let half = TINY.head_dim / 2;
    let short: Vec<f32> = (0..half).map(|i| 1.0 + i as f32 / 8.0).collect();
    let long: Vec<f32> = (0..half).map(|i| 2.0 + i as f32 / 4.0).collect();
    let longrope = rewrite(
        &src,
        "phi3-longrope",
        |_, t| t,
        vec![
            ("rope_factors_short.weight".into(), f32_tensor(&short)),
            ("rope_factors_long.weight".into(), f32_tensor(&long)),
        ],
        vec![(
            "phi3.rope.scaling.original_context_length".into(),
            u32v(128),
        )],
    );
    let freqs = |f: &[f32], name: &str| {
        let t = vec![("rope_freqs.weight".into(), f32_tensor(f))];
        rewrite(&src, name, |_, t| t, t, vec![])
    };
    let (as_short, as_long) = (
        freqs(&short, "phi3-freqs-short"),
        freqs(&long, "phi3-freqs-long"),
    );
    let p = prompt(20);
    let run = |path, context| ours_two_steps(&load_for(path, context), &p);
    let within = run(&longrope, 128);
    let past = run(&longrope, 256);
    assert_eq!(load_for(&longrope, 4096).cfg.context, TINY.context);
    assert_eq!(within, run(&as_short, 256), "served 128: the short factors");
    assert_eq!(past, run(&as_long, 256), "served 256: the long factors");
    let d = max_diff(&within.1, &past.1);
    println!("LongRoPE: short against long factors, largest logit change {d:.3}");
    assert!(d > 0.1, "the factors changed the logits by only {d}");
    for f in [longrope, as_short, as_long] {
        std::fs::remove_file(f).unwrap();
    }
}

/// LongRoPE's attention factor `a` multiplies the rotary embedding's `cos` and `sin`, so Q and
/// K each by `a` and the scores by `a²`: with `a = 2`, exactly what Q's rows of `attn_qkv`
/// times 4 give (powers of two scale Q8_0 blocks, `f16` keys and every product exactly), so the
/// logits are the same bit for bit. Both files' `attn_qkv` are re-quantised the same way.
#[test]
fn phi3_attention_factor_scales_the_scores_by_its_square() {
    let src = tiny_model("phi3", Mix::Q8_0);
    let q_rows = TINY.n_head * TINY.head_dim;
    let scale_q = |by: f32| {
        move |name: &str, t: QTensor| {
            if !name.ends_with("attn_qkv.weight") {
                return t;
            }
            let w = t.dequantize(&Device::Cpu).unwrap();
            let rows = w.dims()[0];
            let q = (w.narrow(0, 0, q_rows).unwrap() * f64::from(by)).unwrap();
            let kv = w.narrow(0, q_rows, rows - q_rows).unwrap();
            let w = candle_core::Tensor::cat(&[q, kv], 0).unwrap();
            QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()
        }
    };
    let factor = vec![(
        "phi3.rope.scaling.attn_factor".to_owned(),
        gguf_file::Value::F32(2.0),
    )];
    let with_factor = rewrite(&src, "phi3-attn-factor", scale_q(1.0), vec![], factor);
    let scaled_q = rewrite(&src, "phi3-q-scaled", scale_q(4.0), vec![], vec![]);
    let p = prompt(20);
    let run = |path| ours_two_steps(&load_for(path, usize::MAX), &p);
    let with = run(&with_factor);
    assert_eq!(with, run(&scaled_q));
    let d = max_diff(&run(&src).1, &with.1);
    println!("attention factor 2: largest logit change {d:.3}");
    assert!(d > 0.1, "the factor changed the logits by only {d}");
    for f in [with_factor, scaled_q] {
        std::fs::remove_file(f).unwrap();
    }
}

/// Phi-3's sliding window (`phi3.attention.sliding_window`, over every layer; llama.cpp
/// ignores it, Hugging Face attends to exactly the window): in a one-layer model the last
/// position of a 20-token prompt, attending to its last 8 positions, sees what the last
/// position of those 8 tokens alone sees (the rotary embedding encodes relative positions
/// only), in a prefill and a decode step; without the window it sees more. In F16 (exact
/// weights, no 8-bit activations), so that what differs is only the rounding of the angles at
/// other positions and of the keys in the `f16` cache.
#[test]
fn phi3_sliding_window_attends_to_the_last_window_positions() {
    let w = 8;
    let one_layer = sluicegate_local::testing::ggufs::TinySizes { n_layer: 1, ..TINY };
    let set = vec![("phi3.attention.sliding_window".to_owned(), u32v(w))];
    let windowed =
        random_model_with_metadata("tiny-phi3-1layer-window8", "phi3", one_layer, Mix::F16, set);
    let plain = random_model_with_metadata("tiny-phi3-1layer", "phi3", one_layer, Mix::F16, vec![]);
    let m = load_for(&windowed, usize::MAX);
    assert_eq!(m.cfg.window(0), Some(w));
    let p = prompt(20);
    let (prefill, decode) = ours_two_steps(&m, &p);
    // Position 18 (the prefill's last) sees 11..=18; position 19 (the decode step) 12..=19.
    let alone = |from: usize| ours_two_steps(&m, &p[from..from + w]).1;
    compare_logits("window 8, prefill", &prefill, &alone(11), 0.01, 0.005);
    compare_logits("window 8, decode", &decode, &alone(12), 0.01, 0.005);
    let plain = load_for(&plain, usize::MAX);
    let full = ours_two_steps(&plain, &p).1;
    let d = max_diff(&full, &decode);
    println!("without the window: largest logit change {d:.3}");
    assert!(d > 0.1, "the window changed the logits by only {d}");
    // A window one longer is told apart too: the last 9 tokens alone, without a window.
    let longer = ours_two_steps(&plain, &p[11..]).1;
    let d = max_diff(&longer, &decode);
    println!("9 positions instead of 8: largest logit change {d:.3}");
    assert!(d > 0.1, "one more position changed the logits by only {d}");
}

#[test]
fn yarn_and_partial_rotary_embeddings_are_refused_by_name() {
    for arch in ["phi3", "qwen2"] {
        let path = tiny_model(arch, Mix::Q8_0);
        let yarn = gguf_file::Value::String("yarn".into());
        let err = load_error(&path, vec![(format!("{arch}.rope.scaling.type"), yarn)]);
        assert!(
            err.contains("\"yarn\"") && err.contains("not supported"),
            "{err}"
        );
        let err = load_error(
            &path,
            vec![(
                format!("{arch}.rope.dimension_count"),
                u32v(TINY.head_dim / 2),
            )],
        );
        assert!(
            err.contains("partial rotary") && err.contains("not supported"),
            "{err}"
        );
    }
}
