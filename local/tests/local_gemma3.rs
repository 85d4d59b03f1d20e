//! Gemma 3 against candle. Candle's `quantized_gemma3` gates its FFN with SiLU where Gemma 3
//! (Hugging Face's `gelu_pytorch_tanh`, llama.cpp's `LLM_FFN_GELU`) uses GELU, and its masks
//! let a sliding layer attend to `window + 1` positions in a prefill and to every position in a
//! decode step, where llama.cpp and Hugging Face attend to exactly `window`. So the whole pass is
//! checked against candle's `gemma3` (its port of Hugging Face's model, GELU-gated) fed the
//! same file's weights dequantised (the GGUF norms, which hold Gemma's `1 +` already, less 1 for
//! its `1 + w` norm), token by token: its rotating cache of `window` positions then attends to
//! exactly the window. (Its batched prefill cannot stand in, with a window one shorter to undo
//! its mask's `window + 1`: its rotating cache fails on a prefill longer than the window, "slice-set
//! only supports contiguous tensors".) Our prefill is compared with its logits at the same
//! position, and our prefill in chunks and batches with our own whole prefill, bit for bit.
//! Prompts are longer than the tiny model's window of 8, so the sliding layers slide. How the GGUF is read (tensor names, norms as stored, tied output, embedding scale,
//! per-layer rotary bases) is checked against `quantized_gemma3` itself, on a copy of the file
//! whose FFN outputs are zero (so that the gate does not matter) and a prompt within the
//! window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Activation, VarBuilder};
use candle_transformers::models::{gemma3, quantized_gemma3};
use common::{load_error, load_ours, ours_two_steps, rewrite};
use sluicegate_local::model::{Arch, Llama, Step, WeightFormat};
use sluicegate_local::testing::ggufs::{tiny_model, tiny_sizes, Mix, GEMMA3_WINDOW};
use sluicegate_local::testing::{compare_logits, say_kernel_paths, TestRng};

/// Tighter than the other families' bounds (0.2 of the standard deviation, 5% of the range):
/// the tiny Gemma's logits (its output is its embedding) spread wide, and a window one position
/// too long moves them by only 0.04-0.09 of their standard deviation (the largest difference
/// 1-2% of the range), a SiLU gate for the GELU by 0.03, against 0.005 (Q8_0), 0.007 (Q4_K_M)
/// and 0.0001 (F16) right.
fn compare(what: &str, ours: &[f32], theirs: &[f32]) {
    compare_logits(what, ours, theirs, 0.02, 0.005);
}

fn prompt(n: usize) -> Vec<u32> {
    let mut g = TestRng::new(13);
    let vocab = tiny_sizes("gemma3").vocab as u32;
    (0..n).map(|_| g.next_u32() % vocab).collect()
}

/// The Hugging Face name of GGUF tensor `name`, and whether it is a norm (`1 + w` there).
fn hf_name(name: &str) -> (String, bool) {
    let top = match name {
        "token_embd.weight" => Some(("model.embed_tokens.weight".to_owned(), false)),
        "output_norm.weight" => Some(("model.norm.weight".to_owned(), true)),
        _ => None,
    };
    if let Some(t) = top {
        return t;
    }
    let rest = name.strip_prefix("blk.").unwrap();
    let (i, part) = rest.split_once('.').unwrap();
    let (hf, norm) = match part {
        "attn_norm.weight" => ("input_layernorm.weight", true),
        "attn_q.weight" => ("self_attn.q_proj.weight", false),
        "attn_k.weight" => ("self_attn.k_proj.weight", false),
        "attn_v.weight" => ("self_attn.v_proj.weight", false),
        "attn_output.weight" => ("self_attn.o_proj.weight", false),
        "attn_q_norm.weight" => ("self_attn.q_norm.weight", true),
        "attn_k_norm.weight" => ("self_attn.k_norm.weight", true),
        "post_attention_norm.weight" => ("post_attention_layernorm.weight", true),
        "ffn_norm.weight" => ("pre_feedforward_layernorm.weight", true),
        "post_ffw_norm.weight" => ("post_feedforward_layernorm.weight", true),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", false),
        "ffn_up.weight" => ("mlp.up_proj.weight", false),
        "ffn_down.weight" => ("mlp.down_proj.weight", false),
        other => panic!("unexpected tensor {other}"),
    };
    (format!("model.layers.{i}.{hf}"), norm)
}

/// Candle's `gemma3::Model` on the file's weights, dequantised, sliding over `window`.
fn hf_model(path: &Path, window: usize) -> gemma3::Model {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let md = |k: &str| ct.metadata.get(&format!("gemma3.{k}")).unwrap();
    let u = |k: &str| md(k).to_u32().unwrap() as usize;
    let mut weights = HashMap::new();
    for name in ct.tensor_infos.keys() {
        let t = ct.tensor(&mut f, name, &Device::Cpu).unwrap();
        let t = t.dequantize(&Device::Cpu).unwrap();
        let (hf, norm) = hf_name(name);
        let t = if norm { (t - 1.0).unwrap() } else { t };
        weights.insert(hf, t);
    }
    let vocab = weights["model.embed_tokens.weight"].dims()[0];
    let cfg = gemma3::Config {
        attention_bias: false,
        head_dim: u("attention.key_length"),
        hidden_activation: Activation::GeluPytorchTanh,
        hidden_size: u("embedding_length"),
        intermediate_size: u("feed_forward_length"),
        num_attention_heads: u("attention.head_count"),
        num_hidden_layers: u("block_count"),
        num_key_value_heads: u("attention.head_count_kv"),
        rms_norm_eps: f64::from(md("attention.layer_norm_rms_epsilon").to_f32().unwrap()),
        rope_theta: f64::from(md("rope.freq_base").to_f32().unwrap()),
        rope_local_base_freq: 10_000.0,
        vocab_size: vocab,
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
        query_pre_attn_scalar: u("attention.key_length"),
        sliding_window: window,
        sliding_window_pattern: 6,
        max_position_embeddings: u("context_length"),
    };
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    gemma3::Model::new(false, &cfg, vb).unwrap()
}

fn ids(tokens: &[u32]) -> Tensor {
    Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn flat(t: Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Candle's logits after each token, fed one at a time.
fn hf_token_by_token(m: &mut gemma3::Model, prompt: &[u32]) -> Vec<Vec<f32>> {
    (0..prompt.len())
        .map(|i| flat(m.forward(&ids(&prompt[i..=i]), i).unwrap()))
        .collect()
}

#[test]
fn gemma3_matches_candle_gemma3_across_its_sliding_window() {
    say_kernel_paths("gemma3");
    let w = GEMMA3_WINDOW;
    let prompt = prompt(20);
    assert!(prompt.len() > 2 * w);
    for mix in [Mix::Q8_0, Mix::Q4KM, Mix::F16] {
        let path = tiny_model("gemma3", mix);
        let ours = load_ours(&path, WeightFormat::Q8_0);
        assert_eq!(ours.cfg.arch, Arch::Gemma3);
        assert_eq!(ours.cfg.sliding_window, Some(w));
        let (op, od) = ours_two_steps(&ours, &prompt);
        let what = format!("gemma3 {}", mix.name());
        let each = hf_token_by_token(&mut hf_model(&path, w), &prompt);
        compare(&format!("{what} prefill"), &op, &each[18]);
        compare(&format!("{what} decode"), &od, &each[19]);
    }
}

#[test]
fn gemma3_reads_its_gguf_as_candle_quantized_gemma3_does() {
    let src = tiny_model("gemma3", Mix::Q8_0);
    let zero_ffn = |name: &str, t: QTensor| {
        if name.ends_with("ffn_down.weight") {
            let z = Tensor::zeros(t.shape(), DType::F32, &Device::Cpu).unwrap();
            QTensor::quantize(&z, GgmlDType::Q8_0).unwrap()
        } else {
            t
        }
    };
    let path = rewrite(&src, "gemma3-no-ffn", zero_ffn, vec![], vec![]);
    // Within the window, where candle's masks are right.
    let prompt = prompt(GEMMA3_WINDOW);
    let (op, od) = ours_two_steps(&load_ours(&path, WeightFormat::Q8_0), &prompt);
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut m = quantized_gemma3::ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let (head, tail) = prompt.split_at(prompt.len() - 1);
    let cp = flat(m.forward(&ids(head), 0).unwrap());
    let cd = flat(m.forward(&ids(tail), head.len()).unwrap());
    compare("gemma3 (FFN zeroed) prefill", &op, &cp);
    compare("gemma3 (FFN zeroed) decode", &od, &cd);
    std::fs::remove_file(path).unwrap();
}

/// A prompt read in chunks (the window's start falling inside and across them) next to another
/// sequence's decode step gives bit for bit the logits of one whole prefill.
#[test]
fn gemma3_chunked_and_batched_prefill_equals_one_prefill() {
    let m = load_ours(&tiny_model("gemma3", Mix::Q8_0), WeightFormat::Q8_0);
    let prompt = prompt(21);
    let mut whole = m.new_cache();
    let want = m
        .logits(&mut [Step {
            cache: &mut whole,
            tokens: &prompt,
        }])
        .unwrap();
    let (mut a, mut b) = (m.new_cache(), m.new_cache());
    let other = [3u32, 9, 27, 81, 243];
    m.logits(&mut [Step {
        cache: &mut b,
        tokens: &other,
    }])
    .unwrap();
    let mut got = Vec::new();
    for (i, chunk) in [&prompt[..5], &prompt[5..14], &prompt[14..]]
        .iter()
        .enumerate()
    {
        let l = m
            .logits(&mut [
                Step {
                    cache: &mut a,
                    tokens: chunk,
                },
                Step {
                    cache: &mut b,
                    tokens: &other[i..=i],
                },
            ])
            .unwrap();
        got = l[..m.vocab().unwrap()].to_vec();
    }
    assert_eq!(got, want);
}

#[test]
fn gemma2_style_soft_capping_and_unsupported_rope_scaling_are_refused_by_name() {
    let path = tiny_model("gemma3", Mix::Q8_0);
    let f = |x: f32| gguf_file::Value::F32(x);
    for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
        let err = load_error(&path, vec![(format!("gemma3.{key}"), f(30.0))]);
        assert!(err.contains(key) && err.contains("not supported"), "{err}");
    }
    let err = load_error(
        &path,
        vec![(
            "gemma3.rope.scaling.type".into(),
            gguf_file::Value::String("yarn".into()),
        )],
    );
    assert!(
        err.contains("\"yarn\"") && err.contains("not supported"),
        "{err}"
    );
}

/// Gemma 3 4B+'s linear rotary scaling (`rope.scaling.factor`, global layers only; the
/// frequencies are unit-tested in `model/rope.rs`): a factor of 1 changes nothing, 8 changes
/// the logits of a prompt.
#[test]
fn gemma3_linear_rope_scaling_is_applied() {
    let src = tiny_model("gemma3", Mix::Q8_0);
    let scaled = |factor: f32| {
        let name = format!("gemma3-linear-{factor}");
        let set = vec![
            (
                "gemma3.rope.scaling.type".to_owned(),
                gguf_file::Value::String("linear".into()),
            ),
            (
                "gemma3.rope.scaling.factor".to_owned(),
                gguf_file::Value::F32(factor),
            ),
        ];
        rewrite(&src, &name, |_, t| t, vec![], set)
    };
    let prompt = prompt(12);
    let run = |p: &Path| ours_two_steps(&load_ours(p, WeightFormat::Q8_0), &prompt).1;
    let plain = run(&src);
    let (one, eight) = (scaled(1.0), scaled(8.0));
    let m: Llama = load_ours(&eight, WeightFormat::Q8_0);
    assert_eq!(m.cfg.rope_scale, 8.0);
    assert_eq!(run(&one), plain, "a factor of 1 changed the logits");
    let diff = run(&eight)
        .iter()
        .zip(&plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("linear rope scaling 8: largest logit change {diff:.3}");
    assert!(
        diff > 0.1,
        "a factor of 8 changed the logits by only {diff}"
    );
    for p in [one, eight] {
        std::fs::remove_file(p).unwrap();
    }
}
