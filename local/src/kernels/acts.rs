//! Activations quantised to 8 bits in blocks of 32 ([`Acts`]), the other operand of the integer
//! kernels ([`super::blocks`], [`super::vnni`]).

use super::blocks::QK;

/// Rows of activations quantised to 8 bits in blocks of 32.
#[derive(Debug, Default)]
pub struct Acts {
    pub rows: usize,
    /// Blocks per row.
    pub blocks: usize,
    pub(super) qs: Vec<i8>,
    pub(super) d: Vec<f32>,
    pub(super) s: Vec<f32>,
    /// `128 · Σq` per block: what offsetting every weight by 128 adds to an integer dot
    /// product with this block (the VNNI kernels' unsigned Q8_0 weights).
    pub(super) offset: Vec<i32>,
}

impl Acts {
    /// Quantises `rows` rows of `cols` values (`cols` a multiple of 32): per block,
    /// `d = max|x| / 127`, `q = round(x / d)`.
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Acts {
        assert!(
            cols.is_multiple_of(QK) && x.len() == rows * cols,
            "bad activation shape"
        );
        let blocks = cols / QK;
        let mut a = Acts {
            rows,
            blocks,
            qs: vec![0; rows * cols],
            d: vec![0.0; rows * blocks],
            s: vec![0.0; rows * blocks],
            offset: vec![0; rows * blocks],
        };
        #[cfg(target_arch = "x86_64")]
        if has_avx512_bw() {
            // SAFETY: `has_avx512_bw()` found AVX-512 F and BW at run time; `x` holds
            // `rows · cols` values (asserted above) and `a` was sized just above for `rows ·
            // blocks` blocks of them, which is all `quantize_avx512` asks.
            unsafe { quantize_avx512(x, &mut a) };
            return a;
        }
        quantize_body(x, &mut a);
        a
    }
}

/// Whether the CPU has AVX-512 F and BW, which the vector quantiser needs.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512_bw() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// [`Acts::quantize`]'s loop in AVX-512, bit for bit the same as [`quantize_body`]: rounding
/// is half away from zero, as `f32::round`.
///
/// # Safety
/// `x` and `a.qs` hold at least `32 · a.d.len()` values each. The CPU must support AVX-512 F
/// and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_avx512(x: &[f32], a: &mut Acts) {
    use std::arch::x86_64::*;
    let signs = _mm512_set1_epi32(i32::MIN);
    let half = _mm512_set1_ps(0.5);
    for i in 0..a.d.len() {
        // SAFETY: block `i < a.d.len()` of `x` is its 32 values at `32i` (the `# Safety`
        // contract): two unaligned 16-wide loads.
        let v = unsafe {
            let xp = x.as_ptr().add(i * QK);
            [_mm512_loadu_ps(xp), _mm512_loadu_ps(xp.add(16))]
        };
        let abs =
            |v: __m512| _mm512_castsi512_ps(_mm512_andnot_si512(signs, _mm512_castps_si512(v)));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(abs(v[0]), abs(v[1])));
        let d = amax / 127.0;
        let id = _mm512_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let mut sum = _mm512_setzero_si512();
        for (h, v) in v.into_iter().enumerate() {
            let t = _mm512_mul_ps(v, id);
            let whole = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(t);
            let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(abs(_mm512_sub_ps(t, whole)), half);
            let one = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(_mm512_set1_ps(1.0)),
                _mm512_and_si512(signs, _mm512_castps_si512(t)),
            ));
            let r = _mm512_cvttps_epi32(_mm512_mask_add_ps(whole, away, whole, one));
            sum = _mm512_add_epi32(sum, r);
            // SAFETY: `a.qs` holds block `i` too (the `# Safety` contract): its half `h < 2`
            // is the 16 bytes at `32i + 16h` (an unaligned store).
            unsafe {
                _mm_storeu_si128(
                    a.qs.as_mut_ptr().add(i * QK + 16 * h).cast(),
                    _mm512_cvtepi32_epi8(r),
                );
            }
        }
        let sum = _mm512_reduce_add_epi32(sum);
        a.d[i] = d;
        a.s[i] = d * sum as f32;
        a.offset[i] = 128 * sum;
    }
}

#[inline(always)]
pub(super) fn quantize_body(x: &[f32], a: &mut Acts) {
    for (i, (xb, qb)) in x
        .chunks_exact(QK)
        .zip(a.qs.chunks_exact_mut(QK))
        .enumerate()
    {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in qb.iter_mut().zip(xb) {
            let r = (v * id).round() as i32;
            sum += r;
            *q = r as i8;
        }
        a.d[i] = d;
        a.s[i] = d * sum as f32;
        a.offset[i] = 128 * sum;
    }
}
