//! The f32 parts of the llama forward pass on plain slices: RMS norm, rotary embedding (GGUF's
//! interleaved pairs), SiLU gating, and causal grouped-query attention against a KV cache.
//!
//! The KV cache holds `f16` (as llama.cpp's does by default): at 8 sequences of a few hundred
//! positions it is as large as the weights, and attention is bound by reading it. Attention runs
//! per KV head, for the query heads that share it, with AVX-512 ([`super::attend_avx512`]) when
//! the CPU has it, else with this file's plain-Rust body (compiled a second time with AVX2).
#![allow(unsafe_code)]

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Positions per key tile.
pub const TILE: usize = 16;

/// Keys and values of one layer of one sequence, KV head by KV head: the attention of one
/// KV head reads two contiguous runs of memory, which the hardware prefetches well (at a few
/// hundred positions the caches of 8 sequences no longer fit in the L3 cache).
///
/// Values are stored position after position (`[pos][head_dim]`), for the weighted sum. Keys
/// are stored transposed in tiles of [`TILE`] positions (`[tile][head_dim][TILE]`): one 32-byte
/// run holds one key component at 16 positions, so a vector of scores is a chain of FMAs with
/// no horizontal sums. Lanes of the last tile past [`LayerKv::len`] hold stale or later keys
/// and are never read as scores.
#[derive(Debug, Default)]
pub struct LayerKv {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    head_dim: usize,
    len: usize,
}

impl LayerKv {
    /// Appends one position's keys and values (`n_kv_head · head_dim` each), growing the
    /// storage `chunk` positions at a time.
    pub fn push(&mut self, k: &[f32], v: &[f32], head_dim: usize, chunk: usize) {
        assert!(
            v.len() == k.len() && head_dim > 0 && k.len().is_multiple_of(head_dim),
            "key and value sizes"
        );
        if self.k.is_empty() {
            self.k.resize_with(k.len() / head_dim, Vec::new);
            self.v.resize_with(k.len() / head_dim, Vec::new);
            self.head_dim = head_dim;
        }
        assert!(
            self.head_dim == head_dim && self.k.len() * head_dim == k.len(),
            "KV heads changed"
        );
        let (tile, lane) = (self.len / TILE, self.len % TILE);
        let chunk = chunk.next_multiple_of(TILE);
        for (h, (kh, vh)) in k
            .chunks_exact(head_dim)
            .zip(v.chunks_exact(head_dim))
            .enumerate()
        {
            let keys = &mut self.k[h];
            if lane == 0 {
                let end = (tile + 1) * head_dim * TILE;
                if end > keys.capacity() {
                    keys.reserve_exact(chunk * head_dim + end - keys.len());
                }
                keys.resize(end, f16::ZERO);
            }
            let keys = &mut keys[tile * head_dim * TILE..];
            for (c, x) in kh.iter().enumerate() {
                keys[c * TILE + lane] = f16::from_f32(*x);
            }
            let values = &mut self.v[h];
            if values.len() + head_dim > values.capacity() {
                values.reserve_exact(chunk * head_dim);
            }
            let at = values.len();
            values.resize(at + head_dim, f16::ZERO);
            values[at..].convert_from_f32_slice(vh);
        }
        self.len += 1;
    }

    /// Drops positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            let head_dim = self.head_dim;
            self.len = len;
            for (k, v) in self.k.iter_mut().zip(&mut self.v) {
                k.truncate(len.div_ceil(TILE) * head_dim * TILE);
                v.truncate(len * head_dim);
            }
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// KV head `h`'s key tiles, `[tile][head_dim][TILE]` (empty before the first push).
    pub fn keys(&self, h: usize) -> &[f16] {
        self.k.get(h).map_or(&[], |k| k.as_slice())
    }

    /// KV head `h`'s values, `[pos][head_dim]` (empty before the first push).
    pub fn values(&self, h: usize) -> &[f16] {
        self.v.get(h).map_or(&[], |v| v.as_slice())
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
    let mut out = vec![0.0; gu.len() / 2];
    for (row, out) in gu.chunks_exact(2 * ff).zip(out.chunks_exact_mut(ff)) {
        let (g, u) = row.split_at(ff);
        #[cfg(target_arch = "x86_64")]
        if super::math_avx512::silu_mul(g, u, out) {
            continue;
        }
        for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
            *o = g / (1.0 + (-g).exp()) * u;
        }
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
    assert!(
        len <= kv.len() && kv.values(kv_head).len() >= len * h.head_dim,
        "attention past the cache"
    );
    // Rows of whole tiles: the vector path writes scores a tile at a time.
    scores.resize(group * len.next_multiple_of(TILE), 0.0);
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
    let (keys, values) = (kv.keys(kv_head), kv.values(kv_head));
    let scale = 1.0 / (hd as f32).sqrt();
    let group = q.len() / hd;
    // Scores, a tile of positions at a time: each key tile converted once for every head.
    let mut kt = vec![0f32; hd * TILE];
    for t in 0..len.div_ceil(TILE) {
        keys[t * hd * TILE..][..hd * TILE].convert_to_f32_slice(&mut kt);
        let lanes = (len - t * TILE).min(TILE);
        for (head, qh) in q.chunks_exact(hd).enumerate() {
            let mut acc = [0f32; TILE];
            for (qc, kc) in qh.iter().zip(kt.chunks_exact(TILE)) {
                for (a, k) in acc.iter_mut().zip(kc) {
                    *a += qc * k;
                }
            }
            for (s, a) in scores[head * len + t * TILE..][..lanes].iter_mut().zip(acc) {
                *s = a * scale;
            }
        }
    }
    let mut inv = vec![0f32; group];
    for (head, inv) in inv.iter_mut().enumerate() {
        let scores = &mut scores[head * len..(head + 1) * len];
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, s| m.max(*s));
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        *inv = 1.0 / sum;
    }
    // The weighted sum of values, each value row converted once for every head.
    out.fill(0.0);
    let mut v = vec![0f32; hd];
    for j in 0..len {
        values[j * hd..][..hd].convert_to_f32_slice(&mut v);
        for (head, oh) in out.chunks_exact_mut(hd).enumerate() {
            let a = scores[head * len + j] * inv[head];
            for (o, v) in oh.iter_mut().zip(&v) {
                *o += a * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out plainly over `f32` keys and values, position after position.
    fn naive(q: &[f32], k: &[Vec<f32>], v: &[Vec<f32>], kv_head: usize, hd: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for qh in q.chunks_exact(hd) {
            let key = |j: usize| &k[j][kv_head * hd..][..hd];
            let s: Vec<f32> = (0..k.len())
                .map(|j| dot(qh, key(j)) / (hd as f32).sqrt())
                .collect();
            let max = s.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            out.extend((0..hd).map(|c| {
                (0..k.len())
                    .map(|j| e[j] / sum * v[j][kv_head * hd + c])
                    .sum::<f32>()
            }));
        }
        out
    }

    /// The dispatched attention (AVX-512 where the CPU has it) and the plain body against
    /// attention written out plainly: both head sizes the vector path takes and one it does
    /// not, query groups of 3 and 5, lengths off the tile size, a causal prefix of the cache
    /// (later keys in the same tile), and positions written again after a truncation.
    #[test]
    fn attention_matches_a_plain_reference() {
        let mut seed = 11u32;
        let mut f = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        };
        let round = |x: f32| f16::from_f32(x).to_f32();
        for (head_dim, group, held, len) in [
            (64, 3, 1, 1),
            (64, 3, 37, 37),
            (64, 5, 40, 18),
            (128, 3, 20, 20),
            (128, 5, 33, 33),
            (32, 3, 9, 9),
        ] {
            let h = Heads {
                n_head: 2 * group,
                n_kv_head: 2,
                head_dim,
            };
            let kv_dim = h.n_kv_head * head_dim;
            let mut kv = LayerKv::default();
            // What the cache should hold, rounded to f16 as it stores it.
            let mut mirror: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
            let mut push = |kv: &mut LayerKv, mirror: &mut Vec<_>| {
                let k: Vec<f32> = (0..kv_dim).map(|_| 3.0 * f()).collect();
                let v: Vec<f32> = (0..kv_dim).map(|_| f()).collect();
                kv.push(&k, &v, head_dim, 16);
                mirror.push((
                    k.into_iter().map(round).collect::<Vec<_>>(),
                    v.into_iter().map(round).collect::<Vec<_>>(),
                ));
            };
            for _ in 0..21 {
                push(&mut kv, &mut mirror);
            }
            kv.truncate(held.min(3));
            mirror.truncate(held.min(3));
            while mirror.len() < held {
                push(&mut kv, &mut mirror);
            }
            assert_eq!(kv.len(), held);
            let (k, v): (Vec<_>, Vec<_>) = mirror.into_iter().take(len).unzip();
            let q: Vec<f32> = (0..group * head_dim).map(|_| f()).collect();
            for kv_head in 0..2 {
                let want = naive(&q, &k, &v, kv_head, head_dim);
                let mut fast = vec![0.0; q.len()];
                attend(&q, &kv, kv_head, len, h, &mut Vec::new(), &mut fast);
                let mut plain = vec![0.0; q.len()];
                let mut scores = vec![0.0; group * len];
                attend_body(&q, &kv, kv_head, len, h, &mut scores, &mut plain);
                for (name, got) in [("dispatched", &fast), ("plain", &plain)] {
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                            "{name}: head_dim {head_dim} group {group} len {len} [{i}]: \
                             {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
