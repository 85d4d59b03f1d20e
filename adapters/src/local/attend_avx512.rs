//! Grouped-query attention over the `f16` KV cache with AVX-512 (head sizes 64 and 128).
//!
//! For one KV head and the query heads that share it: each key row is widened to `f32` once
//! and dotted with every query head of the group; the softmax's `exp` is a vectorised
//! polynomial (range reduction to `2^n · e^r`, `scalef` for the `2^n`); the weighted sum of
//! value rows runs two positions at a time into separate accumulators, so that the FMA chains
//! overlap.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use super::ops::{Heads, LayerKv};

/// Runs [`super::ops::attend`]'s work when the CPU and the head size allow; returns whether
/// it did. The caller checked the shapes of `q`, `kv`, `scores` and `out`.
pub fn attend(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    len: usize,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) -> bool {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return false;
    }
    // SAFETY: the CPU has AVX-512F (checked above); `ops::attend` checked that `q` and `out`
    // hold whole heads, `scores` one row of `len` per head and `kv` `len` positions.
    unsafe {
        match h.head_dim {
            64 => heads::<4>(q, kv, kv_head, len, h, scores, out),
            128 => heads::<8>(q, kv, kv_head, len, h, scores, out),
            _ => return false,
        }
    }
    true
}

/// Head size `16 · C`.
#[target_feature(enable = "avx512f")]
unsafe fn heads<const C: usize>(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    len: usize,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = 16 * C;
    let kv_dim = h.n_kv_head * hd;
    let group = q.len() / hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let keys = kv.k.as_ptr().cast::<u16>().add(kv_head * hd);
    let values = kv.v.as_ptr().cast::<u16>().add(kv_head * hd);
    let s = scores.as_mut_ptr();
    for j in 0..len {
        let row = keys.add(j * kv_dim);
        let mut k = [_mm512_setzero_ps(); C];
        for (c, k) in k.iter_mut().enumerate() {
            *k = _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * c).cast()));
        }
        for g in 0..group {
            let qg = q.as_ptr().add(g * hd);
            let mut acc = _mm512_mul_ps(_mm512_loadu_ps(qg), k[0]);
            for (c, k) in k.iter().enumerate().skip(1) {
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(qg.add(16 * c)), *k, acc);
            }
            *s.add(g * len + j) = _mm512_reduce_add_ps(acc) * scale;
        }
    }
    for g in 0..group {
        let p = s.add(g * len);
        let inv = _mm512_set1_ps(1.0 / softmax_unnormalised(p, len));
        let mut a0 = [_mm512_setzero_ps(); C];
        let mut a1 = [_mm512_setzero_ps(); C];
        let mut j = 0;
        while j + 1 < len {
            let (w0, w1) = (_mm512_set1_ps(*p.add(j)), _mm512_set1_ps(*p.add(j + 1)));
            let (r0, r1) = (values.add(j * kv_dim), values.add((j + 1) * kv_dim));
            for c in 0..C {
                let v0 = _mm512_cvtph_ps(_mm256_loadu_si256(r0.add(16 * c).cast()));
                let v1 = _mm512_cvtph_ps(_mm256_loadu_si256(r1.add(16 * c).cast()));
                a0[c] = _mm512_fmadd_ps(w0, v0, a0[c]);
                a1[c] = _mm512_fmadd_ps(w1, v1, a1[c]);
            }
            j += 2;
        }
        if j < len {
            let w0 = _mm512_set1_ps(*p.add(j));
            let r0 = values.add(j * kv_dim);
            for (c, a) in a0.iter_mut().enumerate() {
                let v0 = _mm512_cvtph_ps(_mm256_loadu_si256(r0.add(16 * c).cast()));
                *a = _mm512_fmadd_ps(w0, v0, *a);
            }
        }
        let o = out.as_mut_ptr().add(g * hd);
        for c in 0..C {
            _mm512_storeu_ps(
                o.add(16 * c),
                _mm512_mul_ps(_mm512_add_ps(a0[c], a1[c]), inv),
            );
        }
    }
}

/// `p[j] = e^(p[j] - max p)` for `j < len`; returns their sum.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_unnormalised(p: *mut f32, len: usize) -> f32 {
    let mask = |j: usize| -> __mmask16 {
        let left = len - j;
        if left >= 16 {
            0xffff
        } else {
            (1u16 << left) - 1
        }
    };
    let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
    for j in (0..len).step_by(16) {
        let m = mask(j);
        max = _mm512_mask_max_ps(max, m, max, _mm512_maskz_loadu_ps(m, p.add(j)));
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    let mut sum = _mm512_setzero_ps();
    for j in (0..len).step_by(16) {
        let m = mask(j);
        let e = exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.add(j)), max));
        _mm512_mask_storeu_ps(p.add(j), m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    _mm512_reduce_add_ps(sum)
}

/// `e^x` for `x ≤ 0` (below -87 gives 0 or a tiny value): `x = n·ln2 + r`, `|r| ≤ ln2/2`,
/// degree-6 Taylor for `e^r` (relative error ≤ 2e-7), times `2^n` by `scalef`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn exp(x: __m512) -> __m512 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}
