//! A llama-architecture forward pass over quantized GGUF weights that runs several sequences in
//! one step: the projections and the MLP of every sequence's new tokens go through one matmul
//! per weight (weights are read once per step, whatever the batch), attention runs per sequence
//! against that sequence's own KV cache. Prefill (many tokens of one sequence) and decode (one
//! token each of many sequences) are the same call.

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;

use super::LocalError;

type Result<T> = std::result::Result<T, LocalError>;

/// KV cache positions are allocated in chunks of this many.
const KV_CHUNK: usize = 128;

/// How the weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// As stored in the file.
    AsStored,
    /// 4- and 5-bit formats without a fast CPU kernel are re-quantised to Q8_0 at load.
    Q8_0,
}

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

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    ffn_norm: Tensor,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// The weights, shared by every sequence.
#[derive(Debug)]
pub struct Llama {
    pub cfg: Config,
    embed: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// One sequence's attention state.
#[derive(Debug)]
pub struct SeqCache {
    layers: Vec<KvCache>,
    len: usize,
}

impl SeqCache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// New tokens of one sequence for one forward step.
#[derive(Debug)]
pub struct Step<'a> {
    pub cache: &'a mut SeqCache,
    pub tokens: &'a [u32],
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

fn load<R: Read + Seek>(
    ct: &gguf_file::Content,
    r: &mut R,
    name: &str,
    format: WeightFormat,
    device: &Device,
) -> Result<QTensor> {
    let t = ct.tensor(r, name, device)?;
    let slow = matches!(
        t.dtype(),
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    );
    if format == WeightFormat::Q8_0 && slow {
        let f = t.dequantize(device)?;
        return Ok(QTensor::quantize(&f, GgmlDType::Q8_0)?);
    }
    Ok(t)
}

impl Llama {
    pub fn from_gguf<R: Read + Seek>(
        ct: &gguf_file::Content,
        r: &mut R,
        format: WeightFormat,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let cfg = Config::from_gguf(ct)?;
        let mut q = |name: &str| load(ct, r, name, format, &device);
        let embed = Arc::new(q("token_embd.weight")?);
        let output = match q("output.weight") {
            Ok(t) => QMatMul::from_qtensor(t)?,
            // Tied embeddings: the output projection shares the embedding's memory.
            Err(_) => QMatMul::from_arc(Arc::clone(&embed))?,
        };
        let norm = q("output_norm.weight")?.dequantize(&device)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut w = |s: &str| q(&format!("blk.{i}.{s}.weight"));
            let mm = |t: QTensor| QMatMul::from_qtensor(t);
            layers.push(Layer {
                attn_norm: w("attn_norm")?.dequantize(&device)?,
                wq: mm(w("attn_q")?)?,
                wk: mm(w("attn_k")?)?,
                wv: mm(w("attn_v")?)?,
                wo: mm(w("attn_output")?)?,
                ffn_norm: w("ffn_norm")?.dequantize(&device)?,
                gate: mm(w("ffn_gate")?)?,
                up: mm(w("ffn_up")?)?,
                down: mm(w("ffn_down")?)?,
            });
        }
        let half = cfg.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / cfg.head_dim as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, half), &device)?;
        let pos = Tensor::arange(0u32, cfg.context as u32, &device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.context, 1))?;
        let angles = pos.matmul(&inv)?;
        Ok(Llama {
            cfg,
            embed,
            layers,
            norm,
            output,
            cos: angles.cos()?,
            sin: angles.sin()?,
            device,
        })
    }

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> SeqCache {
        SeqCache {
            layers: (0..self.cfg.n_layer)
                .map(|_| KvCache::new(1, KV_CHUNK))
                .collect(),
            len: 0,
        }
    }

    /// Runs the new tokens of every step; returns the logits of each step's last token,
    /// `[steps, vocab]`. Every step needs at least one token.
    pub fn forward(&self, steps: &mut [Step<'_>]) -> Result<Tensor> {
        let cfg = &self.cfg;
        let mut ids = Vec::new();
        let mut last = Vec::with_capacity(steps.len());
        for s in steps.iter() {
            if s.tokens.is_empty() {
                return Err(LocalError::Model("empty forward step".into()));
            }
            if s.cache.len + s.tokens.len() > cfg.context {
                return Err(LocalError::ContextExceeded {
                    tokens: s.cache.len + s.tokens.len(),
                    context: cfg.context,
                });
            }
            ids.extend_from_slice(s.tokens);
            last.push(ids.len() as u32 - 1);
        }
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, &self.device)?;
        let mut x = self.embed.embedding(&ids)?;
        for (li, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, cfg.eps)?;
            let q = layer.wq.forward(&h)?;
            let k = layer.wk.forward(&h)?;
            let v = layer.wv.forward(&h)?;
            let mut outs = Vec::with_capacity(steps.len());
            let mut offset = 0;
            for s in steps.iter_mut() {
                let t = s.tokens.len();
                let y = self.attend(li, s.cache, offset, t, (&q, &k, &v))?;
                outs.push(y);
                offset += t;
            }
            let y = if outs.len() == 1 {
                outs.remove(0)
            } else {
                Tensor::cat(&outs, 0)?
            };
            x = (x + layer.wo.forward(&y)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, cfg.eps)?;
            let g = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let u = layer.up.forward(&h)?;
            x = (x + layer.down.forward(&(g * u)?)?)?;
        }
        for s in steps.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        let last = Tensor::from_vec(last, steps.len(), &self.device)?;
        let x = x.index_select(&last, 0)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, cfg.eps)?;
        Ok(self.output.forward(&x)?)
    }

    /// Attention of one sequence's `t` new rows (at `offset` in the batch) in layer `li`.
    fn attend(
        &self,
        li: usize,
        cache: &mut SeqCache,
        offset: usize,
        t: usize,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
        let pos = cache.len;
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let heads = |x: &Tensor, n: usize| -> Result<Tensor> {
            Ok(x.narrow(0, offset, t)?
                .reshape((1, t, n, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let qh = candle_nn::rotary_emb::rope_i(&heads(q, nh)?, &cos, &sin)?;
        let kh = candle_nn::rotary_emb::rope_i(&heads(k, nkv)?, &cos, &sin)?;
        let vh = heads(v, nkv)?;
        let (kc, vc) = cache.layers[li].append(&kh.squeeze(0)?, &vh.squeeze(0)?)?;
        let len = pos + t;
        // Grouped-query attention without copying K/V: the query heads sharing a KV head are
        // stacked along the row axis, `[nkv, group * t, hd]`.
        let group = nh / nkv;
        let qg = qh.reshape((nkv, group * t, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let att = (qg.matmul(&kc.t()?)? * scale)?;
        let att = if t > 1 {
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| {
                    (0..len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            let mask = Tensor::from_vec(mask, (1, 1, t, len), &self.device)?;
            att.reshape((nkv, group, t, len))?
                .broadcast_add(&mask)?
                .reshape((nkv, group * t, len))?
        } else {
            att
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&vc)?; // [nkv, group * t, hd]
        let y = y
            .reshape((nh, t, hd))?
            .transpose(0, 1)?
            .reshape((t, nh * hd))?;
        Ok(y)
    }

    /// Logits as a plain vector (one row of [`Llama::forward`]'s result).
    pub fn row(logits: &Tensor, i: usize) -> Result<Vec<f32>> {
        Ok(logits.get(i)?.to_dtype(DType::F32)?.to_vec1()?)
    }

    /// Vocabulary size of the output layer.
    pub fn vocab(&self) -> Result<usize> {
        Ok(self.embed.shape().dims2()?.0)
    }
}
