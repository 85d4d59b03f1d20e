//! Eight activation rows against one unpacked Q4_1 weight row (batched decode), with one
//! float conversion per block for all eight rows instead of one per row.
//!
//! Per block, the eight rows' integer sums (eight vectors of eight partial sums) are reduced
//! by a transpose-add (`hadd` twice, then the two 128-bit halves added) into one vector holding
//! the eight rows' block sums; that vector is converted once and scaled by the weight scale
//! times the eight rows' activation scales, read block-major from [`scales8`].
#![allow(unsafe_code)]

use super::qkernels::{Acts, Unpacked, QK};

/// The activation scales of rows `r0..r0 + 8`, block-major (`[blocks][8]`).
pub(super) fn scales8(x: &Acts, r0: usize) -> Vec<f32> {
    let nb = x.blocks;
    let mut out = vec![0f32; nb * 8];
    for r in 0..8 {
        for b in 0..nb {
            out[b * 8 + r] = x.d[(r0 + r) * nb + b];
        }
    }
    out
}

/// `out[r] = Σ_k W[k] · x[r0 + r, k]` for `r < 8`.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `w` holds `x.blocks` unpacked blocks, rows `r0..r0 + 8`
/// exist in `x`, `xd` is [`scales8`] of the same rows and `out` has 8 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn unpacked8(w: &Unpacked, x: &Acts, r0: usize, xd: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let nb = x.blocks;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let (xq, wq) = (x.qs.as_ptr(), w.q.as_ptr());
    for b in 0..nb {
        // SAFETY: block `b` of the weight row and of rows `r0..r0 + 8` lie in `w.q` and `x.qs`;
        // `xd` holds 8 scales per block.
        let q = _mm256_loadu_si256(wq.add(b * QK) as *const __m256i);
        let sum = |r: usize| {
            let xv = _mm256_loadu_si256(xq.add(((r0 + r) * nb + b) * QK) as *const __m256i);
            _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones)
        };
        let t0 = _mm256_hadd_epi32(sum(0), sum(1));
        let t1 = _mm256_hadd_epi32(sum(2), sum(3));
        let t2 = _mm256_hadd_epi32(sum(4), sum(5));
        let t3 = _mm256_hadd_epi32(sum(6), sum(7));
        // Low halves: rows 0-3 (u0) and 4-7 (u1) over the block's first 16 weights; high
        // halves: the same over the last 16.
        let u0 = _mm256_hadd_epi32(t0, t1);
        let u1 = _mm256_hadd_epi32(t2, t3);
        let sums = _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(u0, u1),
            _mm256_permute2x128_si256::<0x31>(u0, u1),
        );
        let scale = _mm256_mul_ps(
            _mm256_broadcast_ss(&*w.d.as_ptr().add(b)),
            _mm256_loadu_ps(xd.as_ptr().add(b * 8)),
        );
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    for (r, (o, lane)) in out.iter_mut().zip(lanes).enumerate() {
        let xs = &x.s[(r0 + r) * nb..(r0 + r + 1) * nb];
        let m: f32 = w.m.iter().zip(xs).map(|(m, s)| m * s).sum();
        *o = lane + m;
    }
}

/// `out[r] = Σ_k W[k] · x[r0 + r, k]` for `r < 8`, `w` one row of Q8_0 blocks (34 bytes:
/// f16 scale, 32 × i8), reduced like [`unpacked8`].
///
/// # Safety
/// As [`unpacked8`], with `w` holding `x.blocks` whole Q8_0 blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_0_8(w: &[u8], x: &Acts, r0: usize, xd: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let nb = x.blocks;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    let xq = x.qs.as_ptr();
    for b in 0..nb {
        // SAFETY: block `b` lies in `w` (nb blocks of 34 bytes) and in rows `r0..r0 + 8` of
        // `x.qs`; `xd` holds 8 scales per block.
        let p = w.as_ptr().add(b * 34);
        let bits = i32::from(std::ptr::read_unaligned(p as *const u16));
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
        let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
        // maddubs wants unsigned × signed: |w| times x carrying w's sign.
        let aw = _mm256_sign_epi8(wv, wv);
        let sum = |r: usize| {
            let xv = _mm256_loadu_si256(xq.add(((r0 + r) * nb + b) * QK) as *const __m256i);
            _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones)
        };
        let t0 = _mm256_hadd_epi32(sum(0), sum(1));
        let t1 = _mm256_hadd_epi32(sum(2), sum(3));
        let t2 = _mm256_hadd_epi32(sum(4), sum(5));
        let t3 = _mm256_hadd_epi32(sum(6), sum(7));
        let u0 = _mm256_hadd_epi32(t0, t1);
        let u1 = _mm256_hadd_epi32(t2, t3);
        let sums = _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(u0, u1),
            _mm256_permute2x128_si256::<0x31>(u0, u1),
        );
        let scale = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(xd.as_ptr().add(b * 8)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), acc);
}
