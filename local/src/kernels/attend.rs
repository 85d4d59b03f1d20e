//! Causal grouped-query attention against a sequence's KV cache ([`crate::kv`]), per KV head
//! for the query heads that share it, over a range of positions (a sliding window starts past
//! 0): with AVX-512 ([`super::attend_avx512`]) when the CPU has it, else this file's plain-Rust
//! body, compiled a second time with AVX2 + FMA.

use std::ops::Range;

use half::slice::HalfFloatSliceExt;

use crate::kv::{Heads, LayerKv, TILE};

/// The positions attention reads, from the start of a key tile: `len` positions from `first`
/// (a multiple of [`TILE`]), of which the first `skip` are before the window and get no
/// weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub first: usize,
    pub skip: usize,
    pub len: usize,
}

/// Attention of the query heads that share KV head `kv_head` (`q`: `group · head_dim` values)
/// over `positions` of `kv` (scores scaled by `h.scale`), into `out` (same size as `q`).
/// `scores` is scratch.
pub fn attend(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    positions: Range<usize>,
    h: Heads,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let group = h.n_head / h.n_kv_head;
    assert!(
        q.len() == group * h.head_dim && out.len() == q.len(),
        "attention shapes"
    );
    let Range { start, end } = positions;
    assert!(
        start < end && end <= kv.len() && kv.values(kv_head).len() >= end * h.head_dim,
        "attention past the cache"
    );
    let first = start / TILE * TILE;
    let span = Span {
        first,
        skip: start - first,
        len: end - first,
    };
    // Rows of whole tiles: the vector path writes scores a tile at a time.
    scores.resize(group * span.len.next_multiple_of(TILE), 0.0);
    #[cfg(target_arch = "x86_64")]
    if super::attend_avx512::attend(q, kv, kv_head, span, h, scores, out) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: `attend_avx2` is safe Rust whose only requirement is its target features,
        // and `has_avx2_fma()` just found AVX2 and FMA on this CPU at run time.
        unsafe { attend_avx2(q, kv, kv_head, span, h, scores, out) };
        return;
    }
    attend_body(q, kv, kv_head, span, h, scores, out)
}

/// Whether the CPU has AVX2 and FMA, which [`attend_avx2`] needs.
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// [`attend_body`] compiled with AVX2 + FMA (callers check the CPU has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attend_avx2(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    span: Span,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) {
    attend_body(q, kv, kv_head, span, h, scores, out)
}

#[inline(always)]
fn attend_body(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    span: Span,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = h.head_dim;
    let Span { first, skip, len } = span;
    // From tile `first / TILE` on: its keys start at `first · head_dim`.
    let keys = &kv.keys(kv_head)[first * hd..];
    let values = &kv.values(kv_head)[first * hd..];
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
                *s = a * h.scale;
            }
        }
    }
    let mut inv = vec![0f32; group];
    for (head, inv) in inv.iter_mut().enumerate() {
        let scores = &mut scores[head * len + skip..(head + 1) * len];
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
    for j in skip..len {
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
    use half::f16;

    use super::*;
    use crate::kernels::ops::dot;

    /// Attention written out plainly over `f32` keys and values, position after position
    /// (`k` and `v` are the positions attended to).
    fn naive(
        q: &[f32],
        k: &[Vec<f32>],
        v: &[Vec<f32>],
        kv_head: usize,
        hd: usize,
        scale: f32,
    ) -> Vec<f32> {
        let mut out = Vec::new();
        for qh in q.chunks_exact(hd) {
            let key = |j: usize| &k[j][kv_head * hd..][..hd];
            let s: Vec<f32> = (0..k.len()).map(|j| dot(qh, key(j)) * scale).collect();
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

    /// The path [`attend`] takes for a head size on this CPU.
    fn dispatched(head_dim: usize) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::kernels::avx512::available() && matches!(head_dim, 64 | 128) {
                return "avx512f";
            }
            if has_avx2_fma() {
                return "avx2+fma";
            }
        }
        let _ = head_dim;
        "portable"
    }

    /// The dispatched attention (AVX-512 where the CPU has it, else AVX2 + FMA where it has
    /// those) and the plain body against attention written out plainly: both head sizes the
    /// AVX-512 path takes and one it does not (which the AVX2 path then runs), query groups of
    /// 3 and 5, lengths off the tile size, a causal prefix of the cache (later keys in the same
    /// tile), positions written again after a truncation, and sliding windows (ranges starting
    /// mid-tile, at a tile's start, in a later tile) with a scale other than `1/√head_dim`.
    #[test]
    fn attention_matches_a_plain_reference() {
        let paths = crate::kernels::simd_paths();
        let mut rng = crate::testing::TestRng::new(11);
        let mut f = move || rng.f();
        let round = |x: f32| f16::from_f32(x).to_f32();
        for (head_dim, group, held, start, len) in [
            (64, 3, 1, 0, 1),
            (64, 3, 37, 0, 37),
            (64, 5, 40, 0, 18),
            (128, 3, 20, 0, 20),
            (128, 5, 33, 0, 33),
            (32, 3, 9, 0, 9),
            (64, 3, 37, 5, 37),
            (64, 5, 40, 16, 35),
            (128, 3, 50, 29, 50),
            (128, 5, 33, 32, 33),
            (256, 2, 30, 7, 30),
        ] {
            let path = dispatched(head_dim);
            let case =
                format!("attend, head size {head_dim}, group {group}, positions {start}..{len}");
            if path == "portable" {
                println!("{case}: no vector path for it on this CPU ({paths:?}): checked the portable path only");
            } else {
                println!("{case}: checked the {path} path and the portable path");
            }
            // Windows are checked with another scale too (Gemma 3 27B's is not `1/√head_dim`).
            let scale = if start > 0 {
                0.07
            } else {
                1.0 / (head_dim as f32).sqrt()
            };
            let h = Heads {
                n_head: 2 * group,
                n_kv_head: 2,
                head_dim,
                scale,
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
            let (k, v): (Vec<_>, Vec<_>) = mirror.into_iter().take(len).skip(start).unzip();
            let q: Vec<f32> = (0..group * head_dim).map(|_| f()).collect();
            for kv_head in 0..2 {
                let want = naive(&q, &k, &v, kv_head, head_dim, scale);
                let mut fast = vec![0.0; q.len()];
                attend(&q, &kv, kv_head, start..len, h, &mut Vec::new(), &mut fast);
                let mut plain = vec![0.0; q.len()];
                let first = start / TILE * TILE;
                let span = Span {
                    first,
                    skip: start - first,
                    len: len - first,
                };
                let mut scores = vec![0.0; group * span.len];
                attend_body(&q, &kv, kv_head, span, h, &mut scores, &mut plain);
                for (name, got) in [(dispatched(head_dim), &fast), ("portable", &plain)] {
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
                            "{name}: head_dim {head_dim} group {group} {start}..{len} [{i}]: \
                             {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
