//! GGUF files no package ships, made for the tests from what is on the box: SmolLM2's weights
//! re-quantised to other formats ([`smollm2_as`]), and a tiny llama of random weights whose
//! widths are multiples of 256, K-quants' super-block ([`tiny_llama`]). SmolLM2-135M is 576
//! wide, so its K-quant files, like llama.cpp's, hold K-quants only where a row is a multiple
//! of 256 wide (`ffn_down`) and the fallback formats elsewhere; the tiny model is K-quant
//! throughout. Candle quantises (its ports of ggml's reference quantisers) and writes them.
//!
//! Files are cached in `$SLUICEGATE_MODELS/test-ggufs/` (git-ignored, like every model file),
//! named by what made them, and written whole before they appear (a temporary name, then a
//! rename), so tests running at once never read half a file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::TestRng;

/// Bump when a generator changes what it writes, so stale cached files are not used.
const VERSION: u32 = 1;

/// A quantisation mix, named as llama.cpp names its presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Q4_K, with Q6_K for the output/embedding and for `attn_v`/`ffn_down` of some layers.
    Q4KM,
    /// Q5_K, with Q6_K where Q4_K_M has it.
    Q5KM,
    Q6K,
    Q8_0,
    F16,
    BF16,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Q4KM => "Q4_K_M",
            Mix::Q5KM => "Q5_K_M",
            Mix::Q6K => "Q6_K",
            Mix::Q8_0 => "Q8_0",
            Mix::F16 => "F16",
            Mix::BF16 => "BF16",
        }
    }

    /// The format of a 2-D tensor `name` (of layer `layer` of `n_layer`) whose rows are `cols`
    /// wide, falling back as llama.cpp does where a K-quant's 256 does not divide `cols`.
    fn pick(self, name: &str, layer: Option<usize>, n_layer: usize, cols: usize) -> GgmlDType {
        // llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third.
        let more_bits = layer
            .is_some_and(|i| i < n_layer / 8 || i >= 7 * n_layer / 8 || (i - n_layer / 8) % 3 == 2);
        let big = name == "output.weight" || name == "token_embd.weight";
        let special = big || (more_bits && (name.contains("attn_v") || name.contains("ffn_down")));
        let wanted = match self {
            Mix::Q4KM if special => GgmlDType::Q6K,
            Mix::Q4KM => GgmlDType::Q4K,
            Mix::Q5KM if special => GgmlDType::Q6K,
            Mix::Q5KM => GgmlDType::Q5K,
            Mix::Q6K => GgmlDType::Q6K,
            Mix::Q8_0 => GgmlDType::Q8_0,
            Mix::F16 => GgmlDType::F16,
            Mix::BF16 => GgmlDType::BF16,
        };
        if cols.is_multiple_of(wanted.block_size()) {
            return wanted;
        }
        match wanted {
            GgmlDType::Q4K => GgmlDType::Q5_0,
            GgmlDType::Q5K => GgmlDType::Q5_1,
            _ => GgmlDType::Q8_0,
        }
    }
}

fn models_dir() -> PathBuf {
    std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// Writes `tensors` with `metadata` to `path` unless it is there; returns `path`.
fn write_once(
    path: PathBuf,
    make: impl FnOnce() -> (Vec<(String, Value)>, Vec<(String, QTensor)>),
) -> PathBuf {
    if path.is_file() {
        return path;
    }
    let (metadata, tensors) = make();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let tmp = path.with_extension(format!("part{}", std::process::id()));
    let file = File::create(&tmp).unwrap_or_else(|e| panic!("creating {}: {e}", tmp.display()));
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut BufWriter::new(file), &md, &ts)
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
    path
}

/// The layer number in a `blk.N.` tensor name.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// Quantises one tensor: 1-D tensors (norms) stay F32.
fn quantize(name: &str, t: &Tensor, mix: Mix, n_layer: usize) -> QTensor {
    let dims = t.dims().to_vec();
    let dtype = match dims.as_slice() {
        [_, cols] => mix.pick(name, layer_of(name), n_layer, *cols),
        _ => GgmlDType::F32,
    };
    QTensor::quantize(t, dtype).unwrap_or_else(|e| panic!("quantising {name} to {dtype:?}: {e}"))
}

/// SmolLM2-135M-Instruct with its weights (dequantised from the fetched Q4_1 file) quantised
/// as `mix`. Panics, saying how to get it, when the Q4_1 file is missing.
pub fn smollm2_as(mix: Mix) -> PathBuf {
    let src = super::smollm2_gguf();
    let path = models_dir().join(format!(
        "test-ggufs/SmolLM2-135M-Instruct.{}.v{VERSION}.gguf",
        mix.name()
    ));
    write_once(path, || {
        let mut f = File::open(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let ct = gguf_file::Content::read(&mut f).unwrap_or_else(|e| panic!("{e}"));
        let n_layer = ct
            .metadata
            .get("llama.block_count")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0) as usize;
        let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
        names.sort();
        let tensors = names
            .into_iter()
            .map(|name| {
                let t = ct
                    .tensor(&mut f, name, &Device::Cpu)
                    .and_then(|q| q.dequantize(&Device::Cpu))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                (name.clone(), quantize(name, &t, mix, n_layer))
            })
            .collect();
        let metadata = ct.metadata.into_iter().collect();
        (metadata, tensors)
    })
}

/// The tiny llama's sizes: every projection's input a multiple of 256.
pub const TINY: TinySizes = TinySizes {
    n_layer: 4,
    dim: 256,
    ffn: 512,
    n_head: 4,
    n_kv_head: 2,
    vocab: 384,
    context: 256,
};

#[derive(Debug, Clone, Copy)]
pub struct TinySizes {
    pub n_layer: usize,
    pub dim: usize,
    pub ffn: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub vocab: usize,
    pub context: usize,
}

/// Sizes of a small real model (Qwen3-0.6B's widths, fewer layers, a 32k vocabulary), for
/// benchmarks: random weights decode exactly as fast as trained ones.
pub const BENCH: TinySizes = TinySizes {
    n_layer: 12,
    dim: 1024,
    ffn: 3072,
    n_head: 16,
    n_kv_head: 8,
    vocab: 32768,
    context: 1024,
};

/// A llama of [`TINY`]'s sizes with seeded random weights, quantised as `mix`. No tokenizer:
/// tests feed it token ids.
pub fn tiny_llama(mix: Mix) -> PathBuf {
    random_llama("tiny-llama", TINY, mix)
}

/// A llama of sizes `s` with seeded random weights, quantised as `mix`, cached as `name`.
pub fn random_llama(name: &str, s: TinySizes, mix: Mix) -> PathBuf {
    let path = models_dir().join(format!("test-ggufs/{name}.{}.v{VERSION}.gguf", mix.name()));
    write_once(path, || {
        let mut g = TestRng::new(2026);
        let head_dim = s.dim / s.n_head;
        let kv = s.n_kv_head * head_dim;
        // Weights of about the scale a trained model has (rows of unit-ish norm), so that
        // activations neither vanish nor blow up over the layers.
        let mut w = |rows: usize, cols: usize, scale: f32| -> Tensor {
            let v: Vec<f32> = (0..rows * cols).map(|_| g.f() * scale).collect();
            Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
        };
        let mut t: Vec<(String, Tensor)> = Vec::new();
        let a = 1.7 / (s.dim as f32).sqrt();
        t.push(("token_embd.weight".into(), w(s.vocab, s.dim, 1.0)));
        t.push(("output.weight".into(), w(s.vocab, s.dim, 4.0 * a)));
        for i in 0..s.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}.weight");
            t.push((p("attn_q"), w(s.dim, s.dim, a)));
            t.push((p("attn_k"), w(kv, s.dim, a)));
            t.push((p("attn_v"), w(kv, s.dim, a)));
            t.push((p("attn_output"), w(s.dim, s.dim, a)));
            t.push((p("ffn_gate"), w(s.ffn, s.dim, a)));
            t.push((p("ffn_up"), w(s.ffn, s.dim, a)));
            t.push((p("ffn_down"), w(s.dim, s.ffn, 1.7 / (s.ffn as f32).sqrt())));
        }
        let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu);
        let mut norms = vec![("output_norm.weight".to_owned(), ones(s.dim))];
        for i in 0..s.n_layer {
            norms.push((format!("blk.{i}.attn_norm.weight"), ones(s.dim)));
            norms.push((format!("blk.{i}.ffn_norm.weight"), ones(s.dim)));
        }
        let mut tensors: Vec<(String, QTensor)> = t
            .iter()
            .map(|(n, x)| (n.clone(), quantize(n, x, mix, s.n_layer)))
            .collect();
        for (n, x) in norms {
            let x = x.unwrap_or_else(|e| panic!("{e}"));
            tensors.push((n.clone(), quantize(&n, &x, mix, s.n_layer)));
        }
        let u = |v: usize| Value::U32(v as u32);
        let metadata = vec![
            (
                "general.architecture".to_owned(),
                Value::String("llama".into()),
            ),
            ("llama.block_count".to_owned(), u(s.n_layer)),
            ("llama.embedding_length".to_owned(), u(s.dim)),
            ("llama.feed_forward_length".to_owned(), u(s.ffn)),
            ("llama.attention.head_count".to_owned(), u(s.n_head)),
            ("llama.attention.head_count_kv".to_owned(), u(s.n_kv_head)),
            ("llama.rope.dimension_count".to_owned(), u(head_dim)),
            ("llama.context_length".to_owned(), u(s.context)),
            ("llama.vocab_size".to_owned(), u(s.vocab)),
            (
                "llama.attention.layer_norm_rms_epsilon".to_owned(),
                Value::F32(1e-5),
            ),
            ("llama.rope.freq_base".to_owned(), Value::F32(10_000.0)),
        ];
        (metadata, tensors)
    })
}
