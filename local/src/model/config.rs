//! The model's shape, read from the GGUF metadata ([`Config`]).

use candle_core::quantized::gguf_file;

use crate::LocalError;

type Result<T> = std::result::Result<T, LocalError>;

/// The architectures the forward pass runs: llama's block with the differences each adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, SmolLM2, Mistral (without sliding windows): rotary pairs interleaved (GGUF's
    /// llama files store Q and K permuted for it).
    Llama,
    /// Qwen2 and Qwen2.5: biases on Q, K and V; rotary halves (NeoX style).
    Qwen2,
    /// Qwen3: an RMS norm of each head of Q and K before the rotary embedding; rotary halves;
    /// heads may be wider than `dim / n_head`.
    Qwen3,
}

impl Arch {
    fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            other => Err(LocalError::Model(format!(
                "architecture {other:?} is not supported (llama, qwen2, qwen3 are)"
            ))),
        }
    }

    /// The prefix of its metadata keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }

    /// Whether the rotary embedding turns `(x[i], x[i + head_dim / 2])` (NeoX) rather than
    /// `(x[2i], x[2i + 1])`.
    pub fn rope_halves(self) -> bool {
        !matches!(self, Arch::Llama)
    }
}

/// Sizes of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub arch: Arch,
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
        let name = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let arch = Arch::from_name(&name)?;
        let key = |k: &str| format!("{name}.{k}");
        let n_head = md_u32(ct, &key("attention.head_count"))?;
        let dim = md_u32(ct, &key("embedding_length"))?;
        let tokens = ct.metadata.get("tokenizer.ggml.tokens");
        let vocab = match md_u32(ct, &key("vocab_size")) {
            Ok(v) => v,
            Err(_) => tokens
                .and_then(|t| t.to_vec().ok())
                .map(Vec::len)
                .unwrap_or_default(),
        };
        let head_dim = md_u32(ct, &key("attention.key_length"))
            .or_else(|_| md_u32(ct, &key("rope.dimension_count")))
            .unwrap_or(dim / n_head);
        Ok(Config {
            arch,
            n_layer: md_u32(ct, &key("block_count"))?,
            n_head,
            n_kv_head: md_u32(ct, &key("attention.head_count_kv")).unwrap_or(n_head),
            head_dim,
            dim,
            vocab,
            context: md_u32(ct, &key("context_length"))?,
            eps: md_f32(ct, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_base: md_f32(ct, &key("rope.freq_base")).unwrap_or(10_000.0),
        })
    }
}
