//! Vectorised elementwise math in AVX-512: `exp`, the MLP's SiLU gate, sampling weights.

use std::arch::x86_64::*;

/// `out[i] = silu(g[i]) · u[i]` (`silu(g) = g / (1 + e^-g)`), when the CPU has AVX-512F;
/// returns whether it ran.
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) -> bool {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return false;
    }
    assert!(g.len() == u.len() && out.len() == g.len(), "SiLU shapes");
    // SAFETY: the CPU has AVX-512F (checked above); the three slices have one length.
    unsafe { silu_mul_avx512(g, u, out) };
    true
}

/// Sampling weights: `w[i] = e^((l[i] - max) · inv_t)`, 0 where `l[i]` is not finite, and
/// `sums[b]` the sum of block `b` of `block` weights (a multiple of 16), when the CPU has
/// AVX-512F; returns whether it ran.
pub fn weights(
    l: &[f32],
    max: f32,
    inv_t: f32,
    w: &mut [f32],
    sums: &mut [f64],
    block: usize,
) -> bool {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return false;
    }
    assert!(
        l.len() == w.len() && block.is_multiple_of(16) && sums.len() == l.len().div_ceil(block),
        "weight shapes"
    );
    // SAFETY: the CPU has AVX-512F (checked above); shapes checked just above.
    unsafe { weights_avx512(l, max, inv_t, w, sums, block) };
    true
}

#[target_feature(enable = "avx512f")]
unsafe fn weights_avx512(
    l: &[f32],
    max: f32,
    inv_t: f32,
    w: &mut [f32],
    sums: &mut [f64],
    block: usize,
) {
    let (max, inv_t) = (_mm512_set1_ps(max), _mm512_set1_ps(inv_t));
    for (b, sum) in sums.iter_mut().enumerate() {
        let mut acc = _mm512_setzero_ps();
        for i in (b * block..l.len().min((b + 1) * block)).step_by(16) {
            let m = mask(l.len() - i);
            let x = _mm512_maskz_loadu_ps(m, l.as_ptr().add(i));
            // Finite lanes: `x - x` is 0 (inf and NaN give NaN).
            let finite = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_sub_ps(x, x), _mm512_setzero_ps());
            let e =
                _mm512_maskz_mov_ps(finite & m, exp(_mm512_mul_ps(_mm512_sub_ps(x, max), inv_t)));
            _mm512_mask_storeu_ps(w.as_mut_ptr().add(i), m, e);
            acc = _mm512_add_ps(acc, e);
        }
        *sum = f64::from(_mm512_reduce_add_ps(acc));
    }
}

/// How many of `w` are at least `floor` and above 0, and their sum, when the CPU has AVX-512F.
pub fn above(w: &[f32], floor: f32) -> Option<(usize, f64)> {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return None;
    }
    // SAFETY: the CPU has AVX-512F (checked above).
    Some(unsafe { above_avx512(w, floor) })
}

#[target_feature(enable = "avx512f")]
unsafe fn above_avx512(w: &[f32], floor: f32) -> (usize, f64) {
    let (floor, zero) = (_mm512_set1_ps(floor), _mm512_setzero_ps());
    let mut count = 0;
    let mut acc = _mm512_setzero_ps();
    for i in (0..w.len()).step_by(16) {
        let x = _mm512_maskz_loadu_ps(mask(w.len() - i), w.as_ptr().add(i));
        let keep =
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, floor) & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, zero);
        count += keep.count_ones() as usize;
        acc = _mm512_mask_add_ps(acc, keep, acc, x);
    }
    (count, f64::from(_mm512_reduce_add_ps(acc)))
}

/// The lanes of a vector that start `left` values before the end.
#[inline]
fn mask(left: usize) -> __mmask16 {
    if left >= 16 {
        0xffff
    } else {
        (1 << left) - 1
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn silu_mul_avx512(g: &[f32], u: &[f32], out: &mut [f32]) {
    let one = _mm512_set1_ps(1.0);
    for i in (0..g.len()).step_by(16) {
        let m = mask(g.len() - i);
        let gv = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
        let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
        let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        let y = _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv);
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, y);
    }
}

/// `e^x` (below -87 gives 0 or a tiny value, above 88.7 infinity): `x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, degree-6 Taylor for `e^r` (relative error ≤ 2e-7), times `2^n` by `scalef`.
///
/// # Safety
/// The CPU must support AVX-512F (callers check it, or run under `#[target_feature]`).
#[inline]
#[target_feature(enable = "avx512f")]
pub unsafe fn exp(x: __m512) -> __m512 {
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

#[cfg(test)]
mod tests {
    /// The vector SiLU gate against `f32::exp`, over large values of both signs (where `e^-g`
    /// underflows or overflows) and a length that ends mid-vector.
    #[test]
    fn silu_matches_the_scalar_formula() {
        let g: Vec<f32> = (0..53).map(|i| (i as f32 - 26.0) * 4.1).collect();
        let u: Vec<f32> = (0..53).map(|i| 1.0 + 0.25 * (i % 5) as f32).collect();
        let mut got = vec![f32::NAN; 53];
        if !super::silu_mul(&g, &u, &mut got) {
            return assert!(!std::arch::is_x86_feature_detected!("avx512f"));
        }
        for i in 0..53 {
            let want = g[i] / (1.0 + (-g[i]).exp()) * u[i];
            assert!(
                (got[i] - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "g = {}: {} vs {want}",
                g[i],
                got[i]
            );
        }
    }
}
