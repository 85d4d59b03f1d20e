//! Reading a model's weights from its GGUF file ([`Llama::load_for_context`]): the tensors of
//! each architecture ([`Arch`]), fused where the formats allow ([`Proj`]), and its rotary
//! embeddings ([`Rope`]).

use std::io::{Read, Seek};

use candle_core::quantized::gguf_file;
use candle_core::Device;

use super::config::{Arch, Config};
use super::proj::Proj;
use super::rope::{pick_factors, Rope};
use super::{Layer, Llama, Result, WeightFormat};
use crate::kernels::qmatmul::QLinear;
use crate::LocalError;

/// Tensor `name` as `f32`s, if the file has it.
fn optional<R: Read + Seek>(
    ct: &gguf_file::Content,
    r: &mut R,
    name: &str,
) -> Result<Option<Vec<f32>>> {
    if ct.tensor_infos.contains_key(name) {
        vector(ct, r, name).map(Some)
    } else {
        Ok(None)
    }
}

fn vector<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R, name: &str) -> Result<Vec<f32>> {
    let t = ct.tensor(r, name, &Device::Cpu)?;
    Ok(t.dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Threads of a model's pool when the caller names none: `CANDLE_NUM_THREADS`, else 2.
fn default_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

fn bad(what: String) -> LocalError {
    LocalError::Model(what)
}

/// Layer `i`'s weights.
fn layer<R: Read + Seek>(
    ct: &gguf_file::Content,
    r: &mut R,
    cfg: &Config,
    i: usize,
    requant: bool,
) -> Result<Layer> {
    let has = |s: &str| ct.tensor_infos.contains_key(&format!("blk.{i}.{s}.weight"));
    let (fused_qkv, fused_gate_up) = (has("attn_qkv"), !has("ffn_gate"));
    let mut w = |s: &str| QLinear::load(ct, r, &format!("blk.{i}.{s}.weight"), requant);
    let q_dim = cfg.n_head * cfg.head_dim;
    let qkv_rows = q_dim + 2 * cfg.n_kv_head * cfg.head_dim;
    // Phi-3 holds Q, K and V in one matrix, and gate and up (gate first) in `ffn_up`.
    let qkv = if fused_qkv {
        vec![w("attn_qkv")?]
    } else {
        vec![w("attn_q")?, w("attn_k")?, w("attn_v")?]
    };
    if qkv.iter().map(|p| p.rows).sum::<usize>() != qkv_rows {
        return Err(bad(format!("layer {i}: Q/K/V are not {qkv_rows} rows")));
    }
    let qkv = Proj::new(qkv);
    let wo = w("attn_output")?.prepare();
    let gate_up = if fused_gate_up {
        vec![w("ffn_up")?]
    } else {
        vec![w("ffn_gate")?, w("ffn_up")?]
    };
    let down = w("ffn_down")?.prepare();
    if gate_up.iter().map(|p| p.rows).sum::<usize>() != 2 * down.cols {
        return Err(bad(format!(
            "layer {i}: gate and up are not twice ffn_down's {} columns",
            down.cols
        )));
    }
    let gate_up = Proj::new(gate_up);
    let mut v = |s: &str| optional(ct, r, &format!("blk.{i}.{s}"));
    let qkv_bias = match (v("attn_q.bias")?, v("attn_k.bias")?, v("attn_v.bias")?) {
        (Some(q), Some(k), Some(b)) => Some([q, k, b].concat()),
        (None, None, None) => None,
        _ => return Err(bad(format!("layer {i}: some of Q/K/V have biases"))),
    };
    let qk_norm = match (v("attn_q_norm.weight")?, v("attn_k_norm.weight")?) {
        (Some(q), Some(k)) => Some((q, k)),
        _ => None,
    };
    let arch = cfg.arch;
    if matches!(arch, Arch::Qwen3 | Arch::Gemma3) && qk_norm.is_none() {
        return Err(bad(format!("{} layer {i} has no Q/K norms", arch.name())));
    }
    let (post_attn_norm, post_ffn_norm) = if arch.post_norms() {
        let need = |x: Option<Vec<f32>>, s: &str| {
            x.ok_or_else(|| bad(format!("{} layer {i} has no {s}", arch.name())))
        };
        (
            Some(need(
                v("post_attention_norm.weight")?,
                "post_attention_norm",
            )?),
            Some(need(v("post_ffw_norm.weight")?, "post_ffw_norm")?),
        )
    } else {
        (None, None)
    };
    Ok(Layer {
        attn_norm: vector(ct, r, &format!("blk.{i}.attn_norm.weight"))?,
        qkv,
        qkv_bias,
        qk_norm,
        wo,
        post_attn_norm,
        ffn_norm: vector(ct, r, &format!("blk.{i}.ffn_norm.weight"))?,
        gate_up,
        down,
        post_ffn_norm,
        window: cfg.window(i),
        rope: Rope::index(cfg, i),
    })
}

impl Llama {
    /// [`Llama::load`] on `CANDLE_NUM_THREADS` threads (default 2).
    pub fn from_gguf<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        format: WeightFormat,
    ) -> Result<Self> {
        Self::load(ct, r, format, default_threads())
    }

    /// [`Llama::load_for_context`] for the file's whole context.
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        format: WeightFormat,
        threads: usize,
    ) -> Result<Self> {
        Self::load_for_context(ct, r, format, threads, usize::MAX)
    }

    /// Loads the weights to serve at most `context` positions (capped at the file's); the
    /// forward pass runs on a rayon pool of `threads` threads of this model's own (each model
    /// in the process has its own budget).
    pub fn load_for_context<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        format: WeightFormat,
        threads: usize,
        context: usize,
    ) -> Result<Self> {
        let cfg = Config::for_context(ct, context)?;
        let requant = format == WeightFormat::Q8_0;
        let mut q = |name: &str| QLinear::load(ct, r, name, requant).map(QLinear::prepare);
        let embed = q("token_embd.weight")?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            Some(q("output.weight")?)
        } else {
            None
        };
        let layers = (0..cfg.n_layer)
            .map(|i| layer(ct, r, &cfg, i, requant))
            .collect::<Result<Vec<_>>>()?;
        let norm = vector(ct, r, "output_norm.weight")?;
        let factors = pick_factors(
            &cfg,
            optional(ct, r, "rope_freqs.weight")?,
            optional(ct, r, "rope_factors_short.weight")?,
            optional(ct, r, "rope_factors_long.weight")?,
        );
        if let Some(f) = factors.as_ref().filter(|f| f.len() != cfg.head_dim / 2) {
            return Err(bad(format!(
                "rotary factors: {} of them for {} frequencies",
                f.len(),
                cfg.head_dim / 2
            )));
        }
        let ropes = Rope::of(&cfg, factors.as_deref());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("local-model-{i}"))
            .build()
            .map_err(|e| LocalError::Model(format!("thread pool: {e}")))?;
        Ok(Llama {
            cfg,
            embed,
            output,
            layers,
            norm,
            ropes,
            pool,
        })
    }
}
