//! Models of seeded random weights, of each architecture the engine runs, written as GGUF
//! ([`random_model`]): enough to compare a forward pass with candle's on the same file, and
//! (at real sizes) to time it. No tokenizer: callers feed token ids.

use std::path::PathBuf;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::{models_dir, quantize, write_once, Mix, VERSION};
use crate::testing::TestRng;

/// A model's sizes.
#[derive(Debug, Clone, Copy)]
pub struct TinySizes {
    pub n_layer: usize,
    pub dim: usize,
    pub ffn: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Width of a head (`dim / n_head` except where an architecture lets it differ).
    pub head_dim: usize,
    pub vocab: usize,
    pub context: usize,
}

/// The tiny models' sizes: every projection's input a multiple of 256.
pub const TINY: TinySizes = TinySizes {
    n_layer: 4,
    dim: 256,
    ffn: 512,
    n_head: 4,
    n_kv_head: 2,
    head_dim: 64,
    vocab: 384,
    context: 256,
};

/// Sizes of a small real model (Qwen3-0.6B's widths, fewer layers, a 32k vocabulary), for
/// benchmarks: random weights decode exactly as fast as trained ones.
pub const BENCH: TinySizes = TinySizes {
    n_layer: 12,
    dim: 1024,
    ffn: 3072,
    n_head: 16,
    n_kv_head: 8,
    head_dim: 64,
    vocab: 32768,
    context: 1024,
};

/// The tiny llama ([`TINY`]'s sizes), quantised as `mix`.
pub fn tiny_llama(mix: Mix) -> PathBuf {
    tiny_model("llama", mix)
}

/// A tiny model of architecture `arch` (`llama`, `qwen2`, `qwen3`, `phi3`, `gemma3`),
/// quantised as `mix`. Qwen3's heads are 128 wide (twice `dim / n_head`), as Qwen3's real ones
/// are wider than that too; Gemma 3's are 256 wide, as its real ones (but 27B's), and it has 6
/// layers (the sixth global, the others sliding over [`GEMMA3_WINDOW`] positions).
pub fn tiny_model(arch: &str, mix: Mix) -> PathBuf {
    random_model(&format!("tiny-{arch}"), arch, tiny_sizes(arch), mix)
}

/// The sliding window of the tiny Gemma 3 ([`tiny_model`]).
pub const GEMMA3_WINDOW: usize = 8;

/// [`tiny_model`]'s sizes for `arch`.
pub fn tiny_sizes(arch: &str) -> TinySizes {
    match arch {
        "qwen3" => TinySizes {
            head_dim: 128,
            ..TINY
        },
        "gemma3" => TinySizes {
            n_layer: 6,
            head_dim: 256,
            ..TINY
        },
        _ => TINY,
    }
}

/// A llama of sizes `s`, quantised as `mix`, cached as `name`.
pub fn random_llama(name: &str, s: TinySizes, mix: Mix) -> PathBuf {
    random_model(name, "llama", s, mix)
}

/// A model of architecture `arch` and sizes `s` with seeded random weights, quantised as
/// `mix`, cached as `name`.
pub fn random_model(name: &str, arch: &str, s: TinySizes, mix: Mix) -> PathBuf {
    random_model_with(name, arch, mix, move || (s, Vec::new()))
}

/// [`random_model`] with metadata `extra` added, replacing the generator's own keys of the same
/// names (e.g. `gemma3.attention.sliding_window`); `name` must say what `extra` sets.
pub fn random_model_with_metadata(
    name: &str,
    arch: &str,
    s: TinySizes,
    mix: Mix,
    extra: Vec<(String, Value)>,
) -> PathBuf {
    random_model_with(name, arch, mix, move || (s, extra))
}

/// A tiny chat model of architecture `arch` (random weights) with a real family's tokenizer
/// and chat template: the `tokenizer.ggml.*` metadata of llama.cpp's
/// `models/llama-vocab/ggml-vocab-{vocab}.gguf` and `templates/{template}.jinja` (both fetched
/// by `scripts/fetch-models`). Its answers are noise; its prompt, special and end tokens are
/// the family's.
pub fn tiny_chat_model(arch: &str, vocab: &str, template: &str, mix: Mix) -> PathBuf {
    let name = format!("tiny-{arch}-chat-{vocab}");
    // The vocabulary and template are read only when the file is made.
    random_model_with(&name, arch, mix, || {
        let dir = models_dir().join("llama-vocab");
        let vocab_path = dir.join(format!("ggml-vocab-{vocab}.gguf"));
        let template_path = dir.join(format!("templates/{template}.jinja"));
        fn missing(p: &std::path::Path, e: std::io::Error) -> ! {
            panic!("{}: {e}: run scripts/fetch-models", p.display())
        }
        let mut f = std::fs::File::open(&vocab_path).unwrap_or_else(|e| missing(&vocab_path, e));
        let ct = candle_core::quantized::gguf_file::Content::read(&mut f)
            .unwrap_or_else(|e| panic!("{}: {e}", vocab_path.display()));
        let n_vocab = ct
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map_or(0, Vec::len);
        let chat_template =
            std::fs::read_to_string(&template_path).unwrap_or_else(|e| missing(&template_path, e));
        let mut md: Vec<(String, Value)> = ct
            .metadata
            .into_iter()
            .filter(|(k, _)| k.starts_with("tokenizer.ggml."))
            .collect();
        md.push((
            "tokenizer.chat_template".into(),
            Value::String(chat_template),
        ));
        let sizes = TinySizes {
            vocab: n_vocab,
            ..tiny_sizes(arch)
        };
        (sizes, md)
    })
}

/// A model cached as `name`, made (when not cached) with the sizes and extra metadata that
/// `make` gives (replacing the generator's keys of the same names). Per architecture, the
/// tensors llama.cpp's converter writes: Phi-3's Q/K/V in one `attn_qkv` and gate and up in one
/// `ffn_up` (gate first); Gemma 3's Q/K norms and post-attention and post-FFN norms, its output
/// tied to the embedding (no `output.weight`). Norm weights are about 1 (Gemma's GGUF norms
/// hold the `1 +` of its RMS norm already).
fn random_model_with(
    name: &str,
    arch: &str,
    mix: Mix,
    make: impl FnOnce() -> (TinySizes, Vec<(String, Value)>),
) -> PathBuf {
    let path = models_dir().join(format!("test-ggufs/{name}.{}.v{VERSION}.gguf", mix.name()));
    write_once(path, || {
        let (s, extra) = make();
        let mut g = TestRng::new(2026);
        let (q, kv) = (s.n_head * s.head_dim, s.n_kv_head * s.head_dim);
        // Weights of about the scale a trained model has (rows of unit-ish norm), so that
        // activations neither vanish nor blow up over the layers.
        let mut w = |shape: &[usize], scale: f32, offset: f32| -> Tensor {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| offset + g.f() * scale).collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
        };
        let a = 1.7 / (s.dim as f32).sqrt();
        let mut t: Vec<(String, Tensor)> = vec![
            ("token_embd.weight".into(), w(&[s.vocab, s.dim], 1.0, 0.0)),
            ("output.weight".into(), w(&[s.vocab, s.dim], 4.0 * a, 0.0)),
            ("output_norm.weight".into(), w(&[s.dim], 0.2, 1.0)),
        ];
        if arch == "gemma3" {
            t.retain(|(n, _)| n != "output.weight");
        }
        for i in 0..s.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}");
            t.push((p("attn_norm.weight"), w(&[s.dim], 0.2, 1.0)));
            if arch == "phi3" {
                t.push((p("attn_qkv.weight"), w(&[q + 2 * kv, s.dim], a, 0.0)));
            } else {
                t.push((p("attn_q.weight"), w(&[q, s.dim], a, 0.0)));
                t.push((p("attn_k.weight"), w(&[kv, s.dim], a, 0.0)));
                t.push((p("attn_v.weight"), w(&[kv, s.dim], a, 0.0)));
            }
            let o = 1.7 / (q as f32).sqrt();
            t.push((p("attn_output.weight"), w(&[s.dim, q], o, 0.0)));
            t.push((p("ffn_norm.weight"), w(&[s.dim], 0.2, 1.0)));
            if arch == "phi3" {
                t.push((p("ffn_up.weight"), w(&[2 * s.ffn, s.dim], a, 0.0)));
            } else {
                t.push((p("ffn_gate.weight"), w(&[s.ffn, s.dim], a, 0.0)));
                t.push((p("ffn_up.weight"), w(&[s.ffn, s.dim], a, 0.0)));
            }
            let d = 1.7 / (s.ffn as f32).sqrt();
            t.push((p("ffn_down.weight"), w(&[s.dim, s.ffn], d, 0.0)));
            if arch == "qwen2" {
                t.push((p("attn_q.bias"), w(&[q], 0.5, 0.0)));
                t.push((p("attn_k.bias"), w(&[kv], 0.5, 0.0)));
                t.push((p("attn_v.bias"), w(&[kv], 0.5, 0.0)));
            }
            if arch == "qwen3" || arch == "gemma3" {
                t.push((p("attn_q_norm.weight"), w(&[s.head_dim], 0.3, 1.0)));
                t.push((p("attn_k_norm.weight"), w(&[s.head_dim], 0.3, 1.0)));
            }
            if arch == "gemma3" {
                t.push((p("post_attention_norm.weight"), w(&[s.dim], 0.2, 1.0)));
                t.push((p("post_ffw_norm.weight"), w(&[s.dim], 0.2, 1.0)));
            }
        }
        let tensors: Vec<(String, QTensor)> = t
            .iter()
            .map(|(n, x)| (n.clone(), quantize(n, x, mix, s.n_layer)))
            .collect();
        let u = |v: usize| Value::U32(v as u32);
        let k = |key: &str| format!("{arch}.{key}");
        let metadata = vec![
            (
                "general.architecture".to_owned(),
                Value::String(arch.into()),
            ),
            (k("block_count"), u(s.n_layer)),
            (k("embedding_length"), u(s.dim)),
            (k("feed_forward_length"), u(s.ffn)),
            (k("attention.head_count"), u(s.n_head)),
            (k("attention.head_count_kv"), u(s.n_kv_head)),
            (k("attention.key_length"), u(s.head_dim)),
            (k("attention.value_length"), u(s.head_dim)),
            (k("rope.dimension_count"), u(s.head_dim)),
            (k("context_length"), u(s.context)),
            (k("vocab_size"), u(s.vocab)),
            (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
            (k("rope.freq_base"), Value::F32(10_000.0)),
        ];
        let mut metadata: Vec<(String, Value)> = match arch {
            // Gemma 3's global layers turn at 1e6 (the sliding ones at llama.cpp's 10000).
            "gemma3" => metadata
                .into_iter()
                .filter(|(key, _)| *key != k("rope.freq_base"))
                .chain([
                    (k("rope.freq_base"), Value::F32(1_000_000.0)),
                    (k("attention.sliding_window"), u(GEMMA3_WINDOW)),
                ])
                .collect(),
            // Phi-3.5's converter writes a window longer than the context: no window at all.
            "phi3" => metadata
                .into_iter()
                .chain([(k("attention.sliding_window"), u(262_144))])
                .collect(),
            _ => metadata,
        };
        metadata.retain(|(key, _)| !extra.iter().any(|(e, _)| e == key));
        let metadata = metadata.into_iter().chain(extra).collect();
        (metadata, tensors)
    })
}
