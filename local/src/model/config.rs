//! The model's shape, read from the GGUF metadata ([`Config`]).

use candle_core::quantized::gguf_file;

use crate::LocalError;

type Result<T> = std::result::Result<T, LocalError>;

/// Sizes of a llama-architecture model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub dim: usize,
    pub vocab: usize,
    pub context: usize,
    pub eps: f32,
    pub rope_base: f32,
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| LocalError::Model(format!("GGUF metadata has no {key}")))
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Config {
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(LocalError::Model(format!(
                "architecture {arch:?} is not supported (llama only)"
            )));
        }
        let n_head = md_u32(ct, "llama.attention.head_count")?;
        let dim = md_u32(ct, "llama.embedding_length")?;
        let tokens = ct.metadata.get("tokenizer.ggml.tokens");
        let vocab = match md_u32(ct, "llama.vocab_size") {
            Ok(v) => v,
            Err(_) => tokens
                .and_then(|t| t.to_vec().ok())
                .map(Vec::len)
                .unwrap_or_default(),
        };
        Ok(Config {
            n_layer: md_u32(ct, "llama.block_count")?,
            n_head,
            n_kv_head: md_u32(ct, "llama.attention.head_count_kv").unwrap_or(n_head),
            head_dim: md_u32(ct, "llama.rope.dimension_count").unwrap_or(dim / n_head),
            dim,
            vocab,
            context: md_u32(ct, "llama.context_length")?,
            eps: md_f32(ct, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: md_f32(ct, "llama.rope.freq_base").unwrap_or(10_000.0),
        })
    }
}
