//! A fused, padding-free forward pass of a BERT encoder, on the weights candle loads.
//!
//! candle's `BertModel` (kept as the reference: [`crate::reference`]) pads a batch to its
//! longest input and runs ~20 tensor ops per layer, each allocating and walking strided memory.
//! Here, per layer:
//!
//! 1. the tokens of every input are **packed** into one `[T, H]` matrix (no padding, no mask);
//! 2. Q, K and V come from **one** matrix product with the three weights concatenated at load,
//!    bias added by the product itself (the output starts as the bias rows);
//! 3. attention runs per (input, head) on strided views of that product, in parallel;
//! 4. the output projection and the feed-forward products accumulate onto the residual, and
//!    GELU, softmax and layer norm are vectorised kernels ([`crate::kernels`]).
//!
//! The linear layers use weights packed at load and an AVX2 micro-kernel ([`crate::matmul`]);
//! attention's small products use the `gemm` crate (candle's). Both run on the *current* rayon
//! pool, so the encoder service's own pool caps the threads.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::kernels;
use crate::matmul::PackedMatrix;

type Result<T> = candle_core::Result<T>;

#[derive(Debug)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

/// A linear layer `y = x·Wᵀ + b`, with `Wᵀ` packed for [`PackedMatrix::matmul_acc`].
#[derive(Debug)]
struct Linear {
    weight: PackedMatrix,
    bias: Vec<f32>,
}

#[derive(Debug)]
struct Layer {
    qkv: Linear,
    out: Linear,
    norm1: Norm,
    up: Linear,
    down: Linear,
    norm2: Norm,
}

/// The encoder's weights as flat `f32` buffers.
#[derive(Debug)]
pub struct FusedBert {
    hidden: usize,
    heads: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

fn norm(vb: &VarBuilder, size: usize, eps: f64) -> Result<Norm> {
    Ok(Norm {
        gamma: flat(&vb.get(size, "weight")?)?,
        beta: flat(&vb.get(size, "bias")?)?,
        eps: eps as f32,
    })
}

fn linear(vbs: &[VarBuilder], inputs: usize, outputs: usize) -> Result<Linear> {
    let mut parts = Vec::with_capacity(vbs.len());
    let mut bias = Vec::new();
    for vb in vbs {
        parts.push(vb.get((outputs, inputs), "weight")?);
        bias.extend(flat(&vb.get(outputs, "bias")?)?);
    }
    // [out·parts, in] → [in, out·parts]
    let transposed = flat(&Tensor::cat(&parts, 0)?.t()?.contiguous()?)?;
    Ok(Linear {
        weight: PackedMatrix::pack(&transposed, inputs, outputs * vbs.len()),
        bias,
    })
}

impl FusedBert {
    /// Reads the weights of a BERT checkpoint (with or without the `bert.` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            candle_core::bail!("fused encoder supports GELU (erf) only");
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let emb = vb.pp("embeddings");
        let embed_norm = norm(&emb.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{n}"));
            let att = l.pp("attention");
            let s = att.pp("self");
            layers.push(Layer {
                qkv: linear(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
                out: linear(&[att.pp("output.dense")], h, h)?,
                norm1: norm(&att.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
                up: linear(&[l.pp("intermediate.dense")], h, i)?,
                down: linear(&[l.pp("output.dense")], i, h)?,
                norm2: norm(&l.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
            });
        }
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            max_positions: config.max_position_embeddings,
            word: flat(&emb.get((config.vocab_size, h), "word_embeddings.weight")?)?,
            position: flat(&emb.get(
                (config.max_position_embeddings, h),
                "position_embeddings.weight",
            )?)?,
            token_type: flat(
                &emb.get((config.type_vocab_size, h), "token_type_embeddings.weight")?,
            )?,
            embed_norm,
            layers,
        })
    }

    /// Longest input the position table allows.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled, L2-normalised embeddings of `inputs` (token ids with `[CLS]`/`[SEP]`).
    pub fn embed(&self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(inputs.len());
        let mut total = 0;
        for ids in inputs {
            if ids.len() > self.max_positions {
                candle_core::bail!(
                    "input of {} tokens exceeds {}",
                    ids.len(),
                    self.max_positions
                );
            }
            spans.push((total, ids.len()));
            total += ids.len();
        }
        let mut x = vec![0f32; total * h];
        for (ids, &(start, _)) in inputs.iter().zip(&spans) {
            for (pos, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id * h >= self.word.len() {
                    candle_core::bail!("token id {id} outside the vocabulary");
                }
                let row = &mut x[(start + pos) * h..(start + pos + 1) * h];
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (c, v) in row.iter_mut().enumerate() {
                    *v = word[c] + position[c] + self.token_type[c];
                }
            }
        }
        normalize_rows(&mut x, h, &self.embed_norm);
        for layer in &self.layers {
            self.layer(layer, &mut x, &spans);
        }
        Ok(spans
            .iter()
            .map(|&(start, len)| mean_pool(&x[start * h..(start + len) * h], h))
            .collect())
    }

    fn layer(&self, layer: &Layer, x: &mut [f32], spans: &[(usize, usize)]) {
        let h = self.hidden;
        let rows = x.len() / h;
        let qkv = apply(&layer.qkv, x, rows, None);
        let context = self.attention(&qkv, rows, spans);
        // x ← LayerNorm(x + context·Woᵀ + bo)
        let mut attended = apply(&layer.out, &context, rows, Some(x));
        normalize_rows(&mut attended, h, &layer.norm1);
        let mut up = apply(&layer.up, &attended, rows, None);
        up.par_chunks_mut(4096).for_each(kernels::gelu);
        let mut out = apply(&layer.down, &up, rows, Some(&attended));
        normalize_rows(&mut out, h, &layer.norm2);
        x.copy_from_slice(&out);
    }

    /// Scaled dot-product attention of every (input, head) pair over the packed `[T, 3H]` QKV.
    fn attention(&self, qkv: &[f32], rows: usize, spans: &[(usize, usize)]) -> Vec<f32> {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let stride = 3 * h;
        let scale = 1.0 / (d as f32).sqrt();
        let jobs: Vec<(usize, usize, usize)> = spans
            .iter()
            .flat_map(|&(start, len)| (0..heads).map(move |head| (start, len, head)))
            .collect();
        let parts: Vec<Vec<f32>> = jobs
            .par_iter()
            .map(|&(start, len, head)| {
                let q = &qkv[start * stride + head * d..];
                let k = &qkv[start * stride + h + head * d..];
                let v = &qkv[start * stride + 2 * h + head * d..];
                let mut scores = vec![0f32; len * len];
                // scores[i][j] = scale · q_i · k_j
                // SAFETY: `qkv` is `[rows, 3H]` (the QKV layer's shapes were checked at load,
                // the product's by `matmul_acc`). `gemm` reads `q` and `k` at `i · 3H + c` for
                // rows `i < len` and columns `c < d`: the input's `start + len <= rows`
                // positions leave each of them at least `(len - 1) · 3H + d` values (its
                // offset in the row is at most `2H + (heads - 1) · d`, `d` short of `3H`). It writes `scores`, a fresh
                // `len × len` buffer (row stride `len`) aliasing neither input.
                unsafe {
                    gemm::gemm(
                        len,
                        len,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q.as_ptr(),
                        1,
                        stride as isize,
                        k.as_ptr(),
                        stride as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                scores.chunks_mut(len).for_each(kernels::softmax);
                let mut out = vec![0f32; len * d];
                // out[i][c] = Σ_j p[i][j] · v_j[c]
                // SAFETY: as above, `gemm` reads `v` at `j · 3H + c` for `j < len`, `c < d`,
                // inside it, and `scores` (`len × len`) whole; it writes `out`, a fresh
                // `len × d` buffer (row stride `d`) aliasing neither.
                unsafe {
                    gemm::gemm(
                        len,
                        d,
                        len,
                        out.as_mut_ptr(),
                        1,
                        d as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v.as_ptr(),
                        1,
                        stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                out
            })
            .collect();
        let mut context = vec![0f32; rows * h];
        for (&(start, len, head), part) in jobs.iter().zip(&parts) {
            for i in 0..len {
                let dst = (start + i) * h + head * d;
                context[dst..dst + d].copy_from_slice(&part[i * d..(i + 1) * d]);
            }
        }
        context
    }
}

/// `x·Wᵀ + b (+ residual)` for `rows` rows of `x`, on the current rayon pool.
fn apply(linear: &Linear, x: &[f32], rows: usize, residual: Option<&[f32]>) -> Vec<f32> {
    let n = linear.weight.outputs();
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        match residual {
            Some(res) => out.extend(
                res[r * n..(r + 1) * n]
                    .iter()
                    .zip(&linear.bias)
                    .map(|(a, b)| a + b),
            ),
            None => out.extend_from_slice(&linear.bias),
        }
    }
    linear.weight.matmul_acc(x, &mut out, rows);
    out
}

fn normalize_rows(x: &mut [f32], width: usize, norm: &Norm) {
    x.par_chunks_mut(width * 64).for_each(|block| {
        for row in block.chunks_mut(width) {
            kernels::layer_norm(row, &norm.gamma, &norm.beta, norm.eps);
        }
    });
}

fn mean_pool(rows: &[f32], width: usize) -> Vec<f32> {
    let mut sum = vec![0f32; width];
    let count = (rows.len() / width).max(1) as f32;
    for row in rows.chunks(width) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    let norm = sum
        .iter()
        .map(|v| (v / count) * (v / count))
        .sum::<f32>()
        .sqrt()
        + 1e-12;
    sum.iter().map(|v| v / count / norm).collect()
}
