//! A llama-style forward pass over quantized GGUF weights (llama, Qwen2, Qwen3, Phi-3, Gemma 3:
//! [`Arch`]) that runs several sequences in one step: the projections and the MLP of every
//! sequence's new tokens go through one matmul per weight (weights are read once per step,
//! whatever the batch), attention runs per sequence against that sequence's own KV cache,
//! within the layer's sliding window if it has one. Prefill (many tokens of one sequence) and
//! decode (one token each of many sequences) are the same call; a row's result does not depend
//! on what else is in the step.
//!
//! The weights stay in their GGUF block format ([`qmatmul::QLinear`]); Q4_1, Q4_K (as Q4_1)
//! and Q8_0 go through this crate's integer kernels ([`blocks`](crate::kernels::blocks)), on a
//! small rayon pool of its own. Everything else (norms, rotary embedding, attention) runs on
//! plain `f32` slices ([`ops`]). Loading is [`load`], the rotary embeddings [`rope`].

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

mod config;
mod load;
mod proj;
mod rope;

pub use config::{Arch, Config};

use crate::kernels::qmatmul::QLinear;
use crate::kernels::{attend, ops};
use crate::kv::{Heads, LayerKv};
use crate::LocalError;
use proj::Proj;
use rope::Rope;

type Result<T> = std::result::Result<T, LocalError>;

/// KV cache positions are allocated in chunks of this many.
const KV_CHUNK: usize = 128;

/// How the weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// As stored in the file (Q4_K rewritten as the equivalent Q4_1 blocks).
    AsStored,
    /// Block formats without a fast CPU kernel (Q4_0, Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K; not
    /// Q4_1, Q4_K or Q8_0) are re-quantised to Q8_0 at load.
    Q8_0,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// Q, K and V.
    qkv: Proj,
    /// Biases of Q, K and V, side by side (Qwen2).
    qkv_bias: Option<Vec<f32>>,
    /// RMS norm weights of each head of Q and of K (Qwen3, Gemma 3).
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    wo: QLinear,
    /// RMS norm of the attention output before the residual add (Gemma 3).
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// Gate and up.
    gate_up: Proj,
    down: QLinear,
    /// RMS norm of the FFN output before the residual add (Gemma 3).
    post_ffn_norm: Option<Vec<f32>>,
    /// Positions a query attends to, itself included (`None`: every earlier one).
    window: Option<usize>,
    /// Which of the model's rotary embeddings.
    rope: usize,
}

/// The weights, shared by every sequence.
#[derive(Debug)]
pub struct Llama {
    pub cfg: Config,
    embed: QLinear,
    /// `None`: tied to the embedding.
    output: Option<QLinear>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// The rotary embeddings the layers use ([`Rope::of`]).
    ropes: Vec<Rope>,
    pool: rayon::ThreadPool,
}

/// One sequence's attention state.
#[derive(Debug)]
pub struct SeqCache {
    layers: Vec<LayerKv>,
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

impl Llama {
    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> SeqCache {
        SeqCache {
            layers: (0..self.cfg.n_layer).map(|_| LayerKv::default()).collect(),
            len: 0,
        }
    }

    /// Runs the new tokens of every step; returns the logits of each step's last token,
    /// `[steps, vocab]`. Every step needs at least one token.
    pub fn forward(&self, steps: &mut [Step<'_>]) -> Result<Tensor> {
        let logits = self.logits(steps)?;
        Ok(Tensor::from_vec(
            logits,
            (steps.len(), self.vocab()?),
            &Device::Cpu,
        )?)
    }

    /// [`Llama::forward`]'s logits as one plain vector, row after row.
    pub fn logits(&self, steps: &mut [Step<'_>]) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
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
        }
        self.pool.install(|| self.run(steps))
    }

    /// Threads of the model's pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the model's thread pool (so that its parallel work uses the model's
    /// threads, not the global pool).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    fn run(&self, steps: &mut [Step<'_>]) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let (dim, hd) = (cfg.dim, cfg.head_dim);
        let kv_dim = cfg.n_kv_head * hd;
        let q_dim = cfg.n_head * hd;
        let heads = Heads {
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: hd,
            scale: cfg.attn_scale,
        };
        // Per batch row: its step and its position.
        let mut rows = Vec::new();
        let mut last = Vec::with_capacity(steps.len());
        for (si, s) in steps.iter_mut().enumerate() {
            for l in s.cache.layers.iter_mut() {
                l.truncate(s.cache.len);
            }
            rows.extend((0..s.tokens.len()).map(|i| (si, s.cache.len + i)));
            last.push(rows.len() - 1);
        }
        let n = rows.len();
        let mut x = vec![0.0; n * dim];
        let ids = steps.iter().flat_map(|s| s.tokens.iter());
        for (xr, id) in x.chunks_exact_mut(dim).zip(ids) {
            if *id as usize >= self.embed.rows {
                return Err(LocalError::Model(format!("token id {id} out of range")));
            }
            self.embed.row(*id as usize, xr)?;
        }
        if cfg.arch == Arch::Gemma3 {
            let s = (dim as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }
        // `cos` and `sin` of each row's position, per rotary embedding.
        let half = hd / 2;
        let angles: Vec<(Vec<f32>, Vec<f32>)> = self
            .ropes
            .iter()
            .map(|r| {
                let (mut cos, mut sin) =
                    (Vec::with_capacity(n * half), Vec::with_capacity(n * half));
                for &(_, pos) in &rows {
                    r.at(pos, &mut cos, &mut sin);
                }
                (cos, sin)
            })
            .collect();
        let mut h = vec![0.0; n * dim];
        for (li, layer) in self.layers.iter().enumerate() {
            ops::rms_norm(&x, &layer.attn_norm, cfg.eps, &mut h);
            let mut qkv = layer.qkv.forward(&h, n)?;
            let (cos, sin) = &angles[layer.rope];
            for (r, (row, &(si, _))) in qkv
                .chunks_exact_mut(q_dim + 2 * kv_dim)
                .zip(&rows)
                .enumerate()
            {
                let (cos, sin) = (&cos[r * half..][..half], &sin[r * half..][..half]);
                if let Some(b) = &layer.qkv_bias {
                    add(row, b);
                }
                if let Some((qn, kn)) = &layer.qk_norm {
                    let (q, k) = row[..q_dim + kv_dim].split_at_mut(q_dim);
                    ops::rms_norm_in_place(q, qn, cfg.eps);
                    ops::rms_norm_in_place(k, kn, cfg.eps);
                }
                if cfg.arch.rope_halves() {
                    ops::rope_halves(&mut row[..q_dim + kv_dim], hd, cos, sin);
                } else {
                    ops::rope(&mut row[..q_dim + kv_dim], hd, cos, sin);
                }
                let (k, v) = row[q_dim..].split_at(kv_dim);
                steps[si].cache.layers[li].push(k, v, hd, KV_CHUNK);
            }
            let caches: Vec<&LayerKv> = steps.iter().map(|s| &s.cache.layers[li]).collect();
            // One task per (row, KV head): a single decoding sequence still uses every thread.
            let per_kv = q_dim / cfg.n_kv_head;
            let mut y = vec![0.0; n * q_dim];
            y.par_chunks_mut(per_kv)
                .enumerate()
                .for_each_init(Vec::new, |scores, (task, y)| {
                    let (row, kv_head) = (task / cfg.n_kv_head, task % cfg.n_kv_head);
                    let (si, pos) = rows[row];
                    let start = layer.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                    let q = &qkv[row * (q_dim + 2 * kv_dim) + kv_head * per_kv..][..per_kv];
                    attend::attend(q, caches[si], kv_head, start..pos + 1, heads, scores, y);
                });
            let mut o = layer.wo.forward(&y, n)?;
            if let Some(w) = &layer.post_attn_norm {
                ops::rms_norm_in_place(&mut o, w, cfg.eps);
            }
            add(&mut x, &o);
            ops::rms_norm(&x, &layer.ffn_norm, cfg.eps, &mut h);
            let gu = layer.gate_up.forward(&h, n)?;
            let ff = gu.len() / n / 2;
            let act = if cfg.arch.gelu() {
                ops::gelu_mul(&gu, ff)
            } else {
                ops::silu_mul(&gu, ff)
            };
            let mut d = layer.down.forward(&act, n)?;
            if let Some(w) = &layer.post_ffn_norm {
                ops::rms_norm_in_place(&mut d, w, cfg.eps);
            }
            add(&mut x, &d);
        }
        for s in steps.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        let xl: Vec<f32> = last
            .iter()
            .flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied())
            .collect();
        let mut hl = vec![0.0; xl.len()];
        ops::rms_norm(&xl, &self.norm, cfg.eps, &mut hl);
        self.output
            .as_ref()
            .unwrap_or(&self.embed)
            .forward(&hl, last.len())
    }

    /// Logits as a plain vector (one row of [`Llama::forward`]'s result).
    pub fn row(logits: &Tensor, i: usize) -> Result<Vec<f32>> {
        Ok(logits.get(i)?.to_dtype(DType::F32)?.to_vec1()?)
    }

    /// How many of the model's weight matrices are held in each layout ([`QLinear::layout`]);
    /// fused projections count once.
    pub fn layouts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut all: Vec<&QLinear> = vec![&self.embed];
        all.extend(self.output.as_ref());
        for l in &self.layers {
            for p in [&l.qkv, &l.gate_up] {
                match p {
                    Proj::Fused(f) => all.push(f),
                    Proj::Split(parts) => all.extend(parts.iter()),
                }
            }
            all.extend([&l.wo, &l.down]);
        }
        let mut counts = std::collections::BTreeMap::new();
        for q in all {
            *counts.entry(q.layout()).or_insert(0) += 1;
        }
        counts
    }

    /// Vocabulary size of the output layer.
    pub fn vocab(&self) -> Result<usize> {
        Ok(self.output.as_ref().unwrap_or(&self.embed).rows)
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
