//! The model's shape, read from the GGUF metadata ([`Config`]), and what of it the forward pass
//! cannot run, refused by name.

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
    /// Phi-3 and Phi-3.5 (and Phi-4): Q, K and V in one matrix (`attn_qkv`), gate and up in one
    /// (`ffn_up`, gate first); rotary halves; LongRoPE factors (`rope_factors_short`/`_long`)
    /// and a sliding window over every layer (`phi3.attention.sliding_window`) when the file
    /// has them.
    Phi3,
    /// Gemma 3: embeddings scaled by `√dim`; per-head Q and K norms; RMS norms of the attention
    /// and of the FFN output before each residual add; a GELU (tanh) gate; rotary halves;
    /// sliding-window layers with their own rotary base, every sixth layer global; the output
    /// tied to the embedding.
    Gemma3,
}

impl Arch {
    fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            "phi3" => Ok(Arch::Phi3),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(LocalError::Model(format!(
                "architecture {other:?} is not supported (llama, qwen2, qwen3, phi3, gemma3 are)"
            ))),
        }
    }

    /// The prefix of its metadata keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// Whether the rotary embedding turns `(x[i], x[i + head_dim / 2])` (NeoX) rather than
    /// `(x[2i], x[2i + 1])`.
    pub fn rope_halves(self) -> bool {
        !matches!(self, Arch::Llama)
    }

    /// Whether the FFN gate is GELU (tanh approximation) rather than SiLU.
    pub fn gelu(self) -> bool {
        self == Arch::Gemma3
    }

    /// Whether each layer norms its attention and FFN outputs before adding them.
    pub fn post_norms(self) -> bool {
        self == Arch::Gemma3
    }
}

/// Sizes of a model, and how its attention and rotary embedding are set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub dim: usize,
    pub vocab: usize,
    /// The context served (at most the file's `context_length`).
    pub context: usize,
    pub eps: f32,
    /// Rotary base of the global layers (all layers but Gemma 3's sliding ones).
    pub rope_base: f32,
    /// Rotary base of the sliding-window layers (Gemma 3: `rope.freq_base_swa` or
    /// `rope.local_freq_base`, else 10000; elsewhere `rope_base`).
    pub rope_local_base: f32,
    /// Linear rotary scaling of the global layers (`rope.scaling.factor` of type `linear`):
    /// positions are divided by it. 1: none.
    pub rope_scale: f32,
    /// What the rotary embedding's `cos` and `sin` are multiplied by
    /// (`rope.scaling.attn_factor`, LongRoPE's magnitude correction, as llama.cpp applies it).
    pub rope_attn_factor: f32,
    /// The context the rotary embedding was trained for (`rope.scaling.original_context_length`,
    /// else `context_length`): past it LongRoPE takes its long factors.
    pub rope_original_context: usize,
    /// The factor of the attention scores: `1/√head_dim`, except Gemma 3 27B's `1/√(dim/n_head)`.
    pub attn_scale: f32,
    /// Positions a query of a sliding-window layer attends to, itself included (`None`: no
    /// sliding layers, or a window no shorter than the context).
    pub sliding_window: Option<usize>,
    /// Which layers slide: `(i + 1) % period != 0` (Gemma 3: 6, every sixth layer global; 1:
    /// none; 0: every layer).
    pub sliding_period: usize,
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

fn refuse(what: String) -> LocalError {
    LocalError::Model(format!("{what} is not supported"))
}

impl Config {
    /// The model's configuration for serving its whole `context_length`.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        Self::for_context(ct, usize::MAX)
    }

    /// The model's configuration for serving at most `context` positions (the choice of
    /// LongRoPE factors depends on it).
    pub fn for_context(ct: &gguf_file::Content, context: usize) -> Result<Self> {
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
        let n_layer = md_u32(ct, &key("block_count"))?;
        let tokens = ct.metadata.get("tokenizer.ggml.tokens");
        let vocab = match md_u32(ct, &key("vocab_size")) {
            Ok(v) => v,
            Err(_) => tokens
                .and_then(|t| t.to_vec().ok())
                .map(Vec::len)
                .unwrap_or_default(),
        };
        let rope_dim = md_u32(ct, &key("rope.dimension_count")).ok();
        let head_dim = md_u32(ct, &key("attention.key_length"))
            .ok()
            .or(rope_dim)
            .unwrap_or(dim / n_head);
        if let Some(r) = rope_dim.filter(|r| *r != head_dim) {
            return Err(refuse(format!(
                "{name}.rope.dimension_count {r} below the head size {head_dim} (partial rotary)"
            )));
        }
        if let Some(v) = md_u32(ct, &key("attention.value_length"))
            .ok()
            .filter(|v| *v != head_dim)
        {
            return Err(refuse(format!(
                "{name}.attention.value_length {v} other than the key length {head_dim}"
            )));
        }
        for cap in ["attn_logit_softcapping", "final_logit_softcapping"] {
            if md_f32(ct, &key(cap)).is_some_and(|c| c > 0.0) {
                return Err(refuse(format!("{name}.{cap} (Gemma 2-style soft-capping)")));
            }
        }
        let file_context = md_u32(ct, &key("context_length"))?;
        let rope_base = md_f32(ct, &key("rope.freq_base")).unwrap_or(10_000.0);
        let scaling = ct
            .metadata
            .get(&key("rope.scaling.type"))
            .and_then(|v| v.to_string().ok())
            .map(String::as_str);
        let factor = md_f32(ct, &key("rope.scaling.factor"))
            .or_else(|| md_f32(ct, &key("rope.scale_linear")))
            .filter(|f| *f != 0.0)
            .unwrap_or(1.0);
        let rope_scale = match scaling {
            None | Some("linear") => factor,
            Some("none") => 1.0,
            // LongRoPE: the factors are tensors (`rope_factors_long`/`_short`), read at load.
            Some("longrope" | "su") if arch == Arch::Phi3 => 1.0,
            Some(other) => {
                return Err(refuse(format!(
                    "{name}.rope.scaling.type {other:?} (linear, and Phi-3's LongRoPE factors, are)"
                )))
            }
        };
        let (sliding_window, sliding_period, rope_local_base) = match arch {
            Arch::Gemma3 => (
                md_u32(ct, &key("attention.sliding_window")).ok(),
                match ct.metadata.get(&key("attention.sliding_window_pattern")) {
                    None => 6,
                    Some(v) => v.to_u32().map(|p| p as usize).map_err(|_| {
                        refuse(format!(
                            "{name}.attention.sliding_window_pattern other than a period"
                        ))
                    })?,
                },
                md_f32(ct, &key("rope.freq_base_swa"))
                    .or_else(|| md_f32(ct, &key("rope.local_freq_base")))
                    .unwrap_or(10_000.0),
            ),
            Arch::Phi3 => (
                md_u32(ct, &key("attention.sliding_window")).ok(),
                0,
                rope_base,
            ),
            _ => (None, 1, rope_base),
        };
        let context = file_context.min(context);
        // As llama.cpp: Gemma 3 27B (62 layers) scales by the width of `dim / n_head`.
        let scale_width = if arch == Arch::Gemma3 && n_layer == 62 {
            dim / n_head
        } else {
            head_dim
        };
        Ok(Config {
            arch,
            n_layer,
            n_head,
            n_kv_head: md_u32(ct, &key("attention.head_count_kv")).unwrap_or(n_head),
            head_dim,
            dim,
            vocab,
            context,
            eps: md_f32(ct, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_base,
            rope_local_base,
            rope_scale,
            rope_attn_factor: md_f32(ct, &key("rope.scaling.attn_factor")).unwrap_or(1.0),
            rope_original_context: md_u32(ct, &key("rope.scaling.original_context_length"))
                .unwrap_or(file_context),
            attn_scale: 1.0 / (scale_width as f32).sqrt(),
            sliding_window: sliding_window.filter(|w| *w > 0 && *w < context),
            sliding_period,
        })
    }

    /// Whether layer `i` is a sliding-window layer.
    pub fn slides(&self, i: usize) -> bool {
        // `n.is_multiple_of(0)` is `n == 0`: a period of 0 slides every layer.
        self.sliding_window.is_some() && !(i + 1).is_multiple_of(self.sliding_period)
    }

    /// Positions a query of layer `i` attends to, itself included (`None`: all before it).
    pub fn window(&self, i: usize) -> Option<usize> {
        self.sliding_window.filter(|_| self.slides(i))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};

    use super::*;

    fn content(arch: &str, kv: &[(&str, Value)]) -> Content {
        let mut metadata: HashMap<String, Value> = [
            ("block_count", Value::U32(26)),
            ("embedding_length", Value::U32(1152)),
            ("attention.head_count", Value::U32(4)),
            ("attention.head_count_kv", Value::U32(1)),
            ("attention.key_length", Value::U32(256)),
            ("context_length", Value::U32(32768)),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{arch}.{k}"), v))
        .collect();
        metadata.insert("general.architecture".into(), Value::String(arch.into()));
        for (k, v) in kv {
            metadata.insert(format!("{arch}.{k}"), v.clone());
        }
        Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    /// Gemma 3: sliding layers but every sixth, their base 10000 unless the file names one;
    /// the query scale of the head width, but 27B's (62 layers) of `dim / n_head`, as
    /// llama.cpp has it.
    #[test]
    fn gemma3_windows_bases_and_query_scale() {
        let c = Config::from_gguf(&content(
            "gemma3",
            &[
                ("attention.sliding_window", Value::U32(512)),
                ("rope.freq_base", Value::F32(1e6)),
            ],
        ))
        .unwrap();
        assert_eq!(c.sliding_window, Some(512));
        let windows: Vec<Option<usize>> = (0..12).map(|i| c.window(i)).collect();
        let (l, g) = (Some(512), None);
        assert_eq!(windows, [l, l, l, l, l, g, l, l, l, l, l, g]);
        assert_eq!((c.rope_base, c.rope_local_base), (1e6, 1e4));
        assert_eq!(c.attn_scale, 1.0 / 16.0);
        let big = content(
            "gemma3",
            &[
                ("block_count", Value::U32(62)),
                ("embedding_length", Value::U32(5376)),
                ("attention.head_count", Value::U32(32)),
                ("attention.key_length", Value::U32(128)),
                ("attention.sliding_window", Value::U32(1024)),
                ("rope.freq_base_swa", Value::F32(2e4)),
            ],
        );
        let c = Config::from_gguf(&big).unwrap();
        assert_eq!(c.attn_scale, 1.0 / 168f32.sqrt());
        // A per-layer pattern (Gemma 4's) is refused by name.
        let per_layer = content(
            "gemma3",
            &[(
                "attention.sliding_window_pattern",
                Value::Array(vec![Value::Bool(true); 26]),
            )],
        );
        let err = Config::from_gguf(&per_layer).unwrap_err().to_string();
        assert!(err.contains("sliding_window_pattern"), "{err}");
        assert_eq!(c.rope_local_base, 2e4);
        // Served within the window: nothing slides.
        assert_eq!(Config::for_context(&big, 1024).unwrap().window(0), None);
        assert_eq!(
            Config::for_context(&big, 1025).unwrap().window(0),
            Some(1024)
        );
    }

    /// Phi-3: the window covers every layer, and one no shorter than the context is none.
    #[test]
    fn phi3_windows_every_layer() {
        let window = |w: u32| {
            let ct = content("phi3", &[("attention.sliding_window", Value::U32(w))]);
            let c = Config::from_gguf(&ct).unwrap();
            (0..6).map(|i| c.window(i)).collect::<Vec<_>>()
        };
        assert_eq!(window(2047), vec![Some(2047); 6]);
        assert_eq!(window(262_144), vec![None; 6]);
    }
}
