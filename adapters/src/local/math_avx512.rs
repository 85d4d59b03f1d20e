//! Vectorised elementwise math in AVX-512: `exp` and the MLP's SiLU gate.
#![allow(unsafe_code)]

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

#[target_feature(enable = "avx512f")]
unsafe fn silu_mul_avx512(g: &[f32], u: &[f32], out: &mut [f32]) {
    let one = _mm512_set1_ps(1.0);
    for i in (0..g.len()).step_by(16) {
        let left = g.len() - i;
        let m: __mmask16 = if left >= 16 { 0xffff } else { (1 << left) - 1 };
        let gv = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
        let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
        let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        let y = _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv);
        _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, y);
    }
}

/// `e^x` (below -87 gives 0 or a tiny value, above 88.7 infinity): `x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, degree-6 Taylor for `e^r` (relative error ≤ 2e-7), times `2^n` by `scalef`.
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
