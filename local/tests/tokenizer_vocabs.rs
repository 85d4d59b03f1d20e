//! The tokenizer on real vocabularies of each family it supports, against the token ids their
//! own (Hugging Face) tokenizers give: llama.cpp's vocabulary test files, which
//! `scripts/fetch-models` takes from PyPI's `llama-cpp-python` source distribution into
//! `models/llama-vocab/` (each `ggml-vocab-NAME.gguf` with `.inp`, cases separated by
//! `__ggml_vocab_test__` lines, and `.out`, one line of ids per case). Every case must match,
//! and decoding the ids must give the text back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use sluicegate_local::tokenizer::GgufTokenizer;

fn vocab_dir() -> PathBuf {
    let models = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    models.join("llama-vocab")
}

/// (text, expected ids) of `ggml-vocab-NAME.gguf`'s test cases.
fn cases(name: &str) -> Vec<(String, Vec<u32>)> {
    let base = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
    let read = |ext: &str| {
        let p = base.with_extension(format!("gguf.{ext}"));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models", p.display()))
    };
    let inp = read("inp");
    let out = read("out");
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    // The input ends with a separator line and no case after it.
    let texts = &texts[..texts.len() - 1];
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), ids.len(), "{name}: cases and answers");
    texts.iter().map(|t| (*t).to_owned()).zip(ids).collect()
}

fn check(name: &str) {
    let path = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
    let mut f = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/fetch-models", path.display()));
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let tok = GgufTokenizer::from_gguf(&ct).unwrap();
    let cases = cases(name);
    let mut wrong = Vec::new();
    for (text, want) in &cases {
        let got = tok.encode(text).unwrap();
        if &got != want {
            wrong.push(format!("{text:?}: got {got:?}, want {want:?}"));
        } else if !want.is_empty() {
            let back = tok.decode(&got).unwrap();
            if &back != text {
                wrong.push(format!("{text:?}: decodes to {back:?}"));
            }
        }
    }
    println!(
        "{name}: {} of {} cases right",
        cases.len() - wrong.len(),
        cases.len()
    );
    assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n"));
}

#[test]
fn gpt2() {
    check("gpt-2");
}

#[test]
fn starcoder() {
    check("starcoder");
}

#[test]
fn refact() {
    check("refact");
}

#[test]
fn falcon() {
    check("falcon");
}

#[test]
fn llama3() {
    check("llama-bpe");
}

#[test]
fn qwen2() {
    check("qwen2");
}

#[test]
fn llama2_sentencepiece() {
    check("llama-spm");
}

#[test]
fn phi3_sentencepiece() {
    check("phi-3");
}
