//! The f32 parts of the llama forward pass on plain slices: RMS norm, rotary embedding (GGUF's
//! interleaved pairs), SiLU gating, and causal grouped-query attention against a KV cache.
//!
//! The KV cache holds `f16` (as llama.cpp's does by default): at 8 sequences of a few hundred
//! positions it is as large as the weights, and attention is bound by reading it. Attention runs
//! per KV head, for the query heads that share it, with AVX-512 ([`super::attend_avx512`]) when
//! the CPU has it, else with this file's plain-Rust body (compiled a second time with AVX2).
#![allow(unsafe_code)]

use half::f16;

/// Keys and values of one layer of one sequence, position after position (`[pos][kv_dim]`).
#[derive(Debug, Default)]
pub struct LayerKv {
    pub k: Vec<f16>,
    pub v: Vec<f16>,
}

impl LayerKv {
    /// Appends one position's key and value, growing the storage `chunk` values at a time.
    pub fn push(&mut self, k: &[f32], v: &[f32], chunk: usize) {
        for (buf, new) in [(&mut self.k, k), (&mut self.v, v)] {
            if buf.len() + new.len() > buf.capacity() {
                buf.reserve_exact(chunk.max(new.len()));
            }
            buf.extend(new.iter().map(|x| f16::from_f32(*x)));
        }
    }

    /// Drops positions from `len` on.
    pub fn truncate(&mut self, len: usize, kv_dim: usize) {
        self.k.truncate(len * kv_dim);
        self.v.truncate(len * kv_dim);
    }
}

/// `out = x / rms(x) · w`, row by row.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let dim = w.len();
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / dim as f32 + eps).sqrt();
        for ((o, v), g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotates the pairs `(x[2i], x[2i+1])` of every head of `x` by the angles of one position
/// (`cos`, `sin`: `head_dim / 2` values).
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for ((p, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (a, b) = (p[0], p[1]);
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

/// `silu(g) · u` for rows `[g | u]` of `2 · ff` values; returns rows of `ff`.
pub fn silu_mul(gu: &[f32], ff: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(gu.len() / 2);
    for row in gu.chunks_exact(2 * ff) {
        let (g, u) = row.split_at(ff);
        out.extend(g.iter().zip(u).map(|(g, u)| g / (1.0 + (-g).exp()) * u));
    }
    out
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Shapes of attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

/// Attention of the query heads that share KV head `kv_head` (`q`: `group · head_dim` values)
/// over the first `len` positions of `kv`, into `out` (same size as `q`). `scores` is scratch.
pub fn attend(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    len: usize,
    h: Heads,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let group = h.n_head / h.n_kv_head;
    assert!(
        q.len() == group * h.head_dim && out.len() == q.len(),
        "attention shapes"
    );
    assert!(kv.k.len() >= len * h.n_kv_head * h.head_dim && kv.v.len() == kv.k.len());
    scores.resize(group * len, 0.0);
    #[cfg(target_arch = "x86_64")]
    if super::attend_avx512::attend(q, kv, kv_head, len, h, scores, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above); the body is safe Rust.
        unsafe { attend_avx2(q, kv, kv_head, len, h, scores, out) };
        return;
    }
    attend_body(q, kv, kv_head, len, h, scores, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    len: usize,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) {
    attend_body(q, kv, kv_head, len, h, scores, out)
}

#[inline(always)]
fn attend_body(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    len: usize,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = h.head_dim;
    let kv_dim = h.n_kv_head * hd;
    let off = kv_head * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut k = vec![0f32; hd];
    for (head, (qh, oh)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).enumerate() {
        let scores = &mut scores[head * len..(head + 1) * len];
        let mut max = f32::NEG_INFINITY;
        for (j, s) in scores.iter_mut().enumerate() {
            for (k, v) in k.iter_mut().zip(&kv.k[j * kv_dim + off..][..hd]) {
                *k = v.to_f32();
            }
            *s = dot(qh, &k) * scale;
            max = max.max(*s);
        }
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let inv = 1.0 / sum;
        oh.fill(0.0);
        for (j, s) in scores.iter().enumerate() {
            let a = s * inv;
            for (o, v) in oh.iter_mut().zip(&kv.v[j * kv_dim + off..][..hd]) {
                *o += a * v.to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched attention (AVX-512 where the CPU has it) against the plain body, for
    /// both head sizes the vector path takes, odd lengths included.
    #[test]
    fn attention_matches_the_plain_body() {
        let mut seed = 11u32;
        let mut f = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        };
        for (head_dim, len) in [(64, 1), (64, 37), (128, 20), (32, 9)] {
            let h = Heads {
                n_head: 6,
                n_kv_head: 2,
                head_dim,
            };
            let kv_dim = h.n_kv_head * head_dim;
            let mut kv = LayerKv::default();
            for _ in 0..len {
                let k: Vec<f32> = (0..kv_dim).map(|_| 3.0 * f()).collect();
                let v: Vec<f32> = (0..kv_dim).map(|_| f()).collect();
                kv.push(&k, &v, 16);
            }
            let q: Vec<f32> = (0..3 * head_dim).map(|_| f()).collect();
            for kv_head in 0..2 {
                let (mut got, mut want) = (vec![0.0; q.len()], vec![0.0; q.len()]);
                let mut scores = Vec::new();
                attend(&q, &kv, kv_head, len, h, &mut scores, &mut got);
                let mut scores = vec![0.0; 3 * len];
                attend_body(&q, &kv, kv_head, len, h, &mut scores, &mut want);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                        "head_dim {head_dim} len {len} [{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
}
