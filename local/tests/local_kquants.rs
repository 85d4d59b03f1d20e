//! The engine on the quantisations most published GGUFs use (Q4_K_M, Q5_K_M, Q6_K, Q8_0,
//! F16, BF16), each against candle's `quantized_llama` on the same file, and each saying which
//! layouts its weights ran in (a K-quant that silently went to candle's slow path fails here).
//!
//! The files are made by `sluicegate_local::testing::ggufs` from what is on the box: a tiny
//! llama of random weights whose widths are multiples of 256 (K-quant throughout), and
//! SmolLM2-135M re-quantised (576 wide: K-quants only in `ffn_down`, llama.cpp's fallbacks
//! elsewhere). The engine's default format re-quantises K-quants other than Q4_K to Q8_0, so
//! it is close to candle's native K-quant matmul, not equal; the mean next-token loss on real
//! text says whether that costs quality.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use candle_core::quantized::gguf_file;
use common::{candle_two_steps, load_candle, load_ours, losses, ours_two_steps, PROSE};
use sluicegate_local::model::WeightFormat;
use sluicegate_local::testing::ggufs::{smollm2_as, tiny_llama, Mix, TINY};
use sluicegate_local::testing::{compare_logits, say_kernel_paths, TestRng};
use sluicegate_local::tokenizer::GgufTokenizer;

/// Layouts whose matmuls are this crate's kernels, not candle's.
fn ours_count(layouts: &std::collections::BTreeMap<String, usize>) -> (usize, usize) {
    let fast = layouts
        .iter()
        .filter(|(k, _)| !k.starts_with("candle"))
        .map(|(_, n)| n)
        .sum();
    (fast, layouts.values().sum())
}

#[test]
fn a_tiny_llama_in_every_format_matches_candle() {
    say_kernel_paths("a_tiny_llama_in_every_format_matches_candle");
    let mut g = TestRng::new(7);
    let prompt: Vec<u32> = (0..24).map(|_| g.next_u32() % TINY.vocab as u32).collect();
    for mix in [
        Mix::Q4KM,
        Mix::Q5KM,
        Mix::Q6K,
        Mix::Q8_0,
        Mix::F16,
        Mix::BF16,
    ] {
        let path = tiny_llama(mix);
        let ours = load_ours(&path, WeightFormat::Q8_0);
        let layouts = ours.layouts();
        println!("tiny {}: layouts {layouts:?}", mix.name());
        let (fast, all) = ours_count(&layouts);
        if matches!(mix, Mix::F16 | Mix::BF16) {
            // Float weights stay exact, on candle's matmul.
            assert_eq!(fast, 0, "{}: {layouts:?}", mix.name());
        } else {
            assert_eq!(
                fast,
                all,
                "{}: every matrix on our kernels: {layouts:?}",
                mix.name()
            );
        }
        if mix == Mix::Q4KM {
            // Q4_K becomes Q4_1 blocks, the Q6_K rows Q8_0 ones: both layouts present.
            assert!(layouts.keys().any(|k| k.starts_with("Q4_1")), "{layouts:?}");
            assert!(layouts.keys().any(|k| k.starts_with("Q8_0")), "{layouts:?}");
        }
        let (op, od) = ours_two_steps(&ours, &prompt);
        let (cp, cd) = candle_two_steps(&mut load_candle(&path), &prompt);
        compare_logits(&format!("tiny {} prefill", mix.name()), &op, &cp, 0.2, 0.05);
        compare_logits(&format!("tiny {} decode", mix.name()), &od, &cd, 0.2, 0.05);
    }
}

#[test]
fn smollm2_k_quants_predict_text_as_well_as_candle_does() {
    say_kernel_paths("smollm2_k_quants_predict_text_as_well_as_candle_does");
    let text = PROSE;
    // The fetched Q4_1 file, which the others were made from, is the baseline.
    let source = sluicegate_local::testing::smollm2_gguf();
    let mut f = std::fs::File::open(&source).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let ids = GgufTokenizer::from_gguf(&ct).unwrap().encode(text).unwrap();
    assert!(ids.len() > 80, "{} tokens", ids.len());
    let (baseline, _) = losses(&source, &ids, WeightFormat::Q8_0);
    println!("SmolLM2 Q4_1 (as fetched): mean next-token loss {baseline:.4}");
    for mix in [Mix::Q4KM, Mix::Q6K, Mix::Q8_0] {
        let path = smollm2_as(mix);
        let layouts = load_ours(&path, WeightFormat::Q8_0).layouts();
        println!("SmolLM2 {}: layouts {layouts:?}", mix.name());
        let (fast, all) = ours_count(&layouts);
        assert_eq!(fast, all, "{}: {layouts:?}", mix.name());
        let (ours, theirs) = losses(&path, &ids, WeightFormat::Q8_0);
        println!(
            "SmolLM2 {}: mean next-token loss over {} tokens: ours {ours:.4}, candle {theirs:.4}",
            mix.name(),
            ids.len() - 1
        );
        assert!(
            (ours - theirs).abs() <= 0.05,
            "{}: mean loss {ours:.4} vs candle's {theirs:.4}",
            mix.name()
        );
        // Re-quantising dequantised Q4_1 weights adds error of its own: a little, not a broken
        // model (a pass that ignored the context would be far above the baseline).
        assert!(
            ours <= baseline + 0.15,
            "{}: mean loss {ours:.4} vs {baseline:.4} for the Q4_1 file it was made from",
            mix.name()
        );
    }
}
