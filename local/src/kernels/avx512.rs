//! Vectorised elementwise math in AVX-512: `exp`, the MLP's SiLU gate, sampling weights.

use std::arch::x86_64::*;

/// Whether the CPU has AVX-512F, all these kernels need (detected once by std, then cached),
/// and the kernels are not kept to AVX2 ([`super::avx2_only`]).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && !super::avx2_only()
}

/// `out[i] = silu(g[i]) · u[i]` (`silu(g) = g / (1 + e^-g)`), when the CPU has AVX-512F;
/// returns whether it ran.
pub fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) -> bool {
    if !available() {
        return false;
    }
    assert!(g.len() == u.len() && out.len() == g.len(), "SiLU shapes");
    // SAFETY: `available()` found AVX-512F at run time, and the three slices have one length
    // (asserted just above), which is all `silu_mul_avx512` asks.
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
    if !available() {
        return false;
    }
    assert!(
        l.len() == w.len() && block.is_multiple_of(16) && sums.len() == l.len().div_ceil(block),
        "weight shapes"
    );
    // SAFETY: `available()` found AVX-512F at run time, and `w` is as long as `l` (asserted
    // just above), which is all `weights_avx512` asks.
    unsafe { weights_avx512(l, max, inv_t, w, sums, block) };
    true
}

/// [`weights`]' loop.
///
/// # Safety
/// `w` is at least as long as `l`. The CPU must support AVX-512F.
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
            // SAFETY: `i < l.len()`, and `m` enables only the lanes of `i..l.len()`: the
            // masked load reads no other value of `l` (masked-off lanes are not accessed).
            let x = unsafe { _mm512_maskz_loadu_ps(m, l.as_ptr().add(i)) };
            // Finite lanes: `x - x` is 0 (inf and NaN give NaN).
            let finite = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(_mm512_sub_ps(x, x), _mm512_setzero_ps());
            let e =
                _mm512_maskz_mov_ps(finite & m, exp(_mm512_mul_ps(_mm512_sub_ps(x, max), inv_t)));
            // SAFETY: as for the load, lanes `i..l.len()` only, and `w` is as long as `l`.
            unsafe { _mm512_mask_storeu_ps(w.as_mut_ptr().add(i), m, e) };
            acc = _mm512_add_ps(acc, e);
        }
        *sum = f64::from(_mm512_reduce_add_ps(acc));
    }
}

/// How many of `w` are at least `floor` and above 0, and their sum, when the CPU has AVX-512F.
pub fn above(w: &[f32], floor: f32) -> Option<(usize, f64)> {
    if !available() {
        return None;
    }
    // SAFETY: `above_avx512` is safe apart from its target feature, and `available()` found
    // AVX-512F at run time.
    Some(unsafe { above_avx512(w, floor) })
}

#[target_feature(enable = "avx512f")]
fn above_avx512(w: &[f32], floor: f32) -> (usize, f64) {
    let (floor, zero) = (_mm512_set1_ps(floor), _mm512_setzero_ps());
    let mut count = 0;
    let mut acc = _mm512_setzero_ps();
    for i in (0..w.len()).step_by(16) {
        // SAFETY: `i < w.len()`, and the mask enables only the lanes of `i..w.len()`.
        let x = unsafe { _mm512_maskz_loadu_ps(mask(w.len() - i), w.as_ptr().add(i)) };
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

/// [`silu_mul`]'s loop.
///
/// # Safety
/// `u` and `out` are at least as long as `g`. The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn silu_mul_avx512(g: &[f32], u: &[f32], out: &mut [f32]) {
    let one = _mm512_set1_ps(1.0);
    for i in (0..g.len()).step_by(16) {
        let m = mask(g.len() - i);
        // SAFETY: `i < g.len()`, `m` enables only the lanes of `i..g.len()`, and `u` and `out`
        // are at least as long as `g` (the `# Safety` contract).
        unsafe {
            let gv = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
            let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), gv));
            let y = _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, y);
        }
    }
}

/// `e^x` (below -87 gives 0 or a tiny value, above 88.7 infinity): `x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, degree-6 Taylor for `e^r` (relative error ≤ 2e-7), times `2^n` by `scalef`.
///
/// # Safety
/// Safe Rust that needs AVX-512F: a call from `#[target_feature(enable = "avx512f")]` code is
/// safe, one from elsewhere is `unsafe` and must check the CPU first ([`available`]).
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp(x: __m512) -> __m512 {
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
    use crate::kernels::{ops, report_path};

    /// The vector SiLU gate (where the CPU has AVX-512F) and the portable one against
    /// `f32::exp`, over large values of both signs (where `e^-g` underflows or overflows) and
    /// a length that ends mid-vector.
    #[test]
    fn silu_matches_the_scalar_formula() {
        let g: Vec<f32> = (0..53).map(|i| (i as f32 - 26.0) * 4.1).collect();
        let u: Vec<f32> = (0..53).map(|i| 1.0 + 0.25 * (i % 5) as f32).collect();
        let mut portable = vec![f32::NAN; 53];
        ops::silu_mul_portable(&g, &u, &mut portable);
        let mut checked = vec![("portable", portable)];
        let mut fast = vec![f32::NAN; 53];
        let ran = super::silu_mul(&g, &u, &mut fast);
        if report_path("silu_mul", "avx512f", super::available()) {
            assert!(ran, "AVX-512F present but the vector SiLU did not run");
            checked.push(("avx512f", fast));
        } else {
            assert!(!ran, "the vector SiLU ran without AVX-512F");
        }
        for (path, got) in checked {
            for i in 0..53 {
                let want = g[i] / (1.0 + (-g[i]).exp()) * u[i];
                assert!(
                    (got[i] - want).abs() <= 1e-6 * want.abs().max(1e-3),
                    "{path}: g = {}: {} vs {want}",
                    g[i],
                    got[i]
                );
            }
        }
    }
}
