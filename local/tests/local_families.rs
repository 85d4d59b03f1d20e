//! The architectures beyond llama (Qwen2/2.5: Q/K/V biases; Qwen3: per-head Q/K norms and
//! heads wider than `dim / n_head`; Phi-3: Q/K/V and gate/up each in one matrix; all: NeoX-style
//! rotary halves), each against candle's own implementation of it (`quantized_qwen2`,
//! `quantized_qwen3`, `quantized_phi3`) on the same tiny GGUF file of random weights
//! (`sluicegate_local::testing::ggufs::tiny_model`), in Q8_0, Q4_K_M and F16. The logits after a
//! prefill and after one decode step must agree as they do for llama. Gemma 3 is in
//! `local_gemma3.rs`, Phi-3's LongRoPE and sliding window in `local_long_context.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_phi3, quantized_qwen2, quantized_qwen3};
use common::{f32_tensor, load_ours, ours_two_steps, rewrite};
use sluicegate_local::model::{Arch, Llama, WeightFormat};
use sluicegate_local::testing::ggufs::{tiny_model, Mix, TINY};
use sluicegate_local::testing::{compare_logits, say_kernel_paths, TestRng};

fn ours(path: &Path, prompt: &[u32]) -> (Arch, Vec<f32>, Vec<f32>) {
    let m = load_ours(path, WeightFormat::Q8_0);
    let (prefill, decode) = ours_two_steps(&m, prompt);
    (m.cfg.arch, prefill, decode)
}

/// Candle's model of `arch`: prefill logits, then decode logits.
fn candle(arch: &str, path: &Path, prompt: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let (head, tail) = prompt.split_at(prompt.len() - 1);
    let x = |t: &[u32]| Tensor::new(t, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let row = |l: Tensor| -> Vec<f32> { l.flatten_all().unwrap().to_vec1().unwrap() };
    match arch {
        "qwen2" => {
            let mut m = quantized_qwen2::ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
            let a = row(m.forward(&x(head), 0).unwrap());
            (a, row(m.forward(&x(tail), head.len()).unwrap()))
        }
        "qwen3" => {
            let mut m = quantized_qwen3::ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
            let a = row(m.forward(&x(head), 0).unwrap());
            (a, row(m.forward(&x(tail), head.len()).unwrap()))
        }
        "phi3" => {
            let mut m =
                quantized_phi3::ModelWeights::from_gguf(false, ct, &mut f, &Device::Cpu).unwrap();
            let a = row(m.forward(&x(head), 0).unwrap());
            (a, row(m.forward(&x(tail), head.len()).unwrap()))
        }
        other => panic!("no candle model for {other}"),
    }
}

fn check(arch: &str, want: Arch) {
    say_kernel_paths(arch);
    let mut g = TestRng::new(9);
    let prompt: Vec<u32> = (0..20).map(|_| g.next_u32() % TINY.vocab as u32).collect();
    for mix in [Mix::Q8_0, Mix::Q4KM, Mix::F16] {
        let path = tiny_model(arch, mix);
        let (got, op, od) = ours(&path, &prompt);
        assert_eq!(got, want);
        let (cp, cd) = candle(arch, &path, &prompt);
        let what = format!("{arch} {}", mix.name());
        compare_logits(&format!("{what} prefill"), &op, &cp, 0.2, 0.05);
        compare_logits(&format!("{what} decode"), &od, &cd, 0.2, 0.05);
    }
}

#[test]
fn qwen2_matches_candle_quantized_qwen2() {
    check("qwen2", Arch::Qwen2);
}

#[test]
fn qwen3_matches_candle_quantized_qwen3() {
    check("qwen3", Arch::Qwen3);
}

/// Phi-3's fused Q/K/V (`attn_qkv`, Q5_K in Q4_K_M as llama.cpp makes it) and fused gate/up
/// (`ffn_up`, gate first).
#[test]
fn phi3_matches_candle_quantized_phi3() {
    check("phi3", Arch::Phi3);
}

#[test]
fn an_unsupported_architecture_is_refused_by_name() {
    let path = tiny_model("llama", Mix::Q8_0);
    let mut f = std::fs::File::open(&path).unwrap();
    let mut ct = gguf_file::Content::read(&mut f).unwrap();
    ct.metadata.insert(
        "general.architecture".into(),
        gguf_file::Value::String("gemma2".into()),
    );
    let err = Llama::from_gguf(&ct, &mut f, WeightFormat::Q8_0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"gemma2\"") && err.contains("not supported"),
        "{err}"
    );
}

/// Llama 3.1's `rope_freqs` divides each rotary frequency. No candle model reads it, so this
/// checks only that it is applied: factors of 1 change nothing, factors of 4 change the logits
/// of a prompt (whose tokens' relative positions the rotary embedding encodes).
#[test]
fn rope_freqs_divide_the_rotary_frequencies() {
    let src = tiny_model("llama", Mix::Q8_0);
    let with_factors = |f: f32, name: &str| {
        let factors = f32_tensor(&[f; TINY.head_dim / 2]);
        rewrite(
            &src,
            name,
            |_, t| t,
            vec![("rope_freqs.weight".into(), factors)],
            vec![],
        )
    };
    let prompt: Vec<u32> = (0..12).map(|i| (i * 29 + 5) % TINY.vocab as u32).collect();
    let (_, plain, _) = ours(&src, &prompt);
    let ones = with_factors(1.0, "rope-ones");
    let fours = with_factors(4.0, "rope-fours");
    let (_, same, _) = ours(&ones, &prompt);
    let (_, other, _) = ours(&fours, &prompt);
    assert_eq!(plain, same, "factors of 1 changed the logits");
    let diff = plain
        .iter()
        .zip(&other)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("rope_freqs 4: largest logit change {diff:.3}");
    assert!(diff > 0.1, "factors of 4 changed the logits by only {diff}");
    for p in [ones, fours] {
        std::fs::remove_file(p).unwrap();
    }
}

/// Serves a tiny chat model of `arch` with family `vocab`'s tokenizer and `template`'s chat
/// template through the backend; the prompt it counted must be `prompt` in that tokenizer,
/// and `ends` must be among its end tokens.
async fn serve(arch: &str, vocab: &str, template: &str, prompt: &str, ends: &[&str]) {
    use sluicegate_local::testing::ggufs::tiny_chat_model;
    use sluicegate_local::tokenizer::GgufTokenizer;
    use sluicegate_local::{LocalBackend, LocalOptions};
    use sluicegate_wire::ChatBackend;

    let path = tiny_chat_model(arch, vocab, template, Mix::Q8_0);
    let mut f = std::fs::File::open(&path).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let tok = GgufTokenizer::from_gguf(&ct).unwrap();
    for end in ends {
        let ids = tok.encode(end).unwrap();
        assert_eq!(ids.len(), 1, "{vocab}: {end} is one special token");
        assert!(
            tok.eos.contains(&ids[0]),
            "{vocab}: {end} ends an answer: {:?}",
            tok.eos
        );
    }
    let b = LocalBackend::new(LocalOptions::new(&path)).unwrap();
    b.wait_ready(std::time::Duration::from_secs(120)).unwrap();
    let req = serde_json::from_value(serde_json::json!({
        "model": "local",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "max_tokens": 5,
        "temperature": 0,
    }))
    .unwrap();
    let r = b.complete(req).await.unwrap();
    let usage = r.usage.unwrap();
    println!(
        "{arch} with {vocab}'s tokenizer and {template}: {usage:?}, {:?}",
        r.choices[0].finish_reason
    );
    assert_eq!(
        usage.prompt_tokens as usize,
        tok.encode(prompt).unwrap().len(),
        "{vocab}: the prompt was not {prompt:?}"
    );
    assert!((1..=5).contains(&usage.completion_tokens), "{usage:?}");
}

/// Phi-3.5's template has no BOS (the engine renders the template as written) and ends a turn
/// with `<|end|>`; its vocabulary is SentencePiece.
#[tokio::test]
async fn a_phi3_chat_model_is_served_with_its_own_tokenizer_and_template() {
    serve(
        "phi3",
        "phi-3",
        "microsoft-Phi-3.5-mini-instruct",
        "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n",
        &["<|end|>", "<|endoftext|>"],
    )
    .await;
}

#[tokio::test]
async fn qwen2_and_llama3_chat_models_are_served_with_their_own_tokenizer_and_template() {
    serve(
        "qwen2",
        "qwen2",
        "Qwen-Qwen2.5-7B-Instruct",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        &["<|im_end|>", "<|endoftext|>"],
    )
    .await;
    serve(
        "llama",
        "llama-bpe",
        "meta-llama-Llama-3.1-8B-Instruct",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n",
        &["<|eot_id|>"],
    )
    .await;
}
