//! GGUF files no package ships, made for the tests from what is on the box: SmolLM2's weights
//! re-quantised to other formats ([`smollm2_as`]), and tiny models of random weights of each
//! architecture, whose widths are multiples of 256, K-quants' super-block ([`tiny_model`]).
//! SmolLM2-135M is 576 wide, so its K-quant files, like llama.cpp's, hold K-quants only where
//! a row is a multiple of 256 wide (`ffn_down`) and the fallback formats elsewhere; the tiny
//! models are K-quant throughout. Candle quantises (its ports of ggml's reference quantisers) and writes them.
//!
//! Files are cached in `$SLUICEGATE_MODELS/test-ggufs/` (git-ignored, like every model file),
//! named by what made them, and written whole before they appear (a temporary name of the
//! process and call, then a rename), so tests running at once never read half a file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

mod random;

pub use random::{
    random_llama, random_model, random_model_with_metadata, tiny_chat_model, tiny_llama,
    tiny_model, tiny_sizes, TinySizes, BENCH, GEMMA3_WINDOW, TINY,
};

/// Bump when a generator changes what it writes, so stale cached files are not used.
pub(crate) const VERSION: u32 = 2;

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
        // llama.cpp gives a fused Q/K/V one step more (Q4_K_M: Q5_K; Q5_K_M: Q6_K).
        let qkv = name.contains("attn_qkv");
        let wanted = match self {
            Mix::Q4KM if qkv => GgmlDType::Q5K,
            Mix::Q5KM if qkv => GgmlDType::Q6K,
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

pub(crate) fn models_dir() -> PathBuf {
    std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// Writes `tensors` with `metadata` to `path` unless it is there; returns `path`.
pub(crate) fn write_once(
    path: PathBuf,
    make: impl FnOnce() -> (Vec<(String, Value)>, Vec<(String, QTensor)>),
) -> PathBuf {
    if path.is_file() {
        return path;
    }
    let (metadata, tensors) = make();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // A name of this process and call: tests of one process may make the same file at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("part{}-{call}", std::process::id()));
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
pub(crate) fn quantize(name: &str, t: &Tensor, mix: Mix, n_layer: usize) -> QTensor {
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
