//! Integer dot products of GGUF weight blocks with 8-bit quantised activations.
//!
//! Activations are quantised once per matmul, per row, to blocks of 32 signed bytes with a scale
//! `d` and `s = d · Σq` ([`Acts`]). A weight block then meets an activation block in integers:
//!
//! - Q4_1 (`f16 d, f16 m, 16 bytes of nibbles`, value `d·q + m`):
//!   `Σ w·x ≈ d_w·d_x·Σ q_w·q_x + m_w·s_x`;
//! - Q8_0 (`f16 d, 32 × i8`, value `d·q`): `Σ w·x ≈ d_w·d_x·Σ q_w·q_x`.
//!
//! Every kernel is written twice: AVX2 + FMA + F16C (chosen at run time when the CPU has them)
//! and plain Rust. Both compute the same integer block sums; they differ only in the order of
//! the f32 additions.

/// Weights per block, in every format handled here.
pub const QK: usize = 32;

pub use super::acts::Acts;

/// The block formats with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Q4_1,
    Q8_0,
}

impl BlockKind {
    /// Bytes of one block of 32 weights.
    pub fn bytes(self) -> usize {
        match self {
            BlockKind::Q4_1 => 20,
            BlockKind::Q8_0 => 34,
        }
    }
}

/// `f16` bits to `f32` (exact; what F16C's `vcvtph2ps` computes).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    if exp == 0 {
        // Zero or subnormal: mant · 2^-24.
        let v = mant as f32 * (1.0 / 16_777_216.0);
        return if sign != 0 { -v } else { v };
    }
    let bits = if exp == 31 {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

fn half_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// Weights of one row of a block-quantised matrix, dequantised (for embeddings and tests).
pub fn dequantize_row(kind: BlockKind, row: &[u8], out: &mut [f32]) {
    for (blk, o) in row.chunks_exact(kind.bytes()).zip(out.chunks_exact_mut(QK)) {
        match kind {
            BlockKind::Q4_1 => {
                let (d, m) = (half_at(blk, 0), half_at(blk, 2));
                for (j, q) in blk[4..20].iter().enumerate() {
                    o[j] = d * f32::from(q & 0x0f) + m;
                    o[j + 16] = d * f32::from(q >> 4) + m;
                }
            }
            BlockKind::Q8_0 => {
                let d = half_at(blk, 0);
                for (o, q) in o.iter_mut().zip(&blk[2..34]) {
                    *o = d * f32::from(*q as i8);
                }
            }
        }
    }
}

/// Whether the CPU has AVX2, FMA and F16C (detected once by std, then cached).
pub fn has_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activation rows handled together per weight row (the unpacked weights are reused): 8, 4,
/// 2 or 1, the largest that fits in `left`.
pub(super) fn group(left: usize) -> usize {
    match left {
        8.. => 8,
        4..=7 => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// `out[j · x.rows + r] = Σ_k W[j,k] · x[r,k]` for every weight row `j` of `w` (whole rows of
/// `kind` blocks, `x.blocks` per row) and every activation row `r`. `simd` picks the AVX2 path;
/// it is ignored (portable path) when [`has_simd`] is false.
pub fn matmul_t(kind: BlockKind, w: &[u8], x: &Acts, out: &mut [f32], simd: bool) {
    let row_bytes = x.blocks * kind.bytes();
    let n_w = w.len() / row_bytes;
    assert!(
        w.len() == n_w * row_bytes && out.len() == n_w * x.rows,
        "bad matmul shape"
    );
    assert!(x.qs.len() == x.rows * x.blocks * QK);
    #[cfg(target_arch = "x86_64")]
    if simd && has_simd() {
        // SAFETY: `has_simd()` found AVX2, FMA and F16C at run time; `row_bytes` is
        // `x.blocks · kind.bytes()` and `x.qs` holds `x.rows · x.blocks` blocks (asserted just
        // above), which is all `matmul_t_avx2` asks.
        unsafe { matmul_t_avx2(kind, w, x, out, row_bytes) };
        return;
    }
    let _ = simd;
    for (wr, o) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(x.rows)) {
        for (r, o) in o.iter_mut().enumerate() {
            *o = match kind {
                BlockKind::Q4_1 => dot_q4_1(wr, x, r),
                BlockKind::Q8_0 => dot_q8_0(wr, x, r),
            };
        }
    }
}

fn dot_q4_1(w: &[u8], x: &Acts, r: usize) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(20).enumerate() {
        let i = r * x.blocks + b;
        let xq = &x.qs[i * QK..(i + 1) * QK];
        let mut sum = 0i32;
        for (j, q) in blk[4..20].iter().enumerate() {
            sum +=
                i32::from(q & 0x0f) * i32::from(xq[j]) + i32::from(q >> 4) * i32::from(xq[j + 16]);
        }
        acc += half_at(blk, 0) * x.d[i] * sum as f32 + half_at(blk, 2) * x.s[i];
    }
    acc
}

fn dot_q8_0(w: &[u8], x: &Acts, r: usize) -> f32 {
    let mut acc = 0.0f32;
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let i = r * x.blocks + b;
        let xq = &x.qs[i * QK..(i + 1) * QK];
        let sum: i32 = blk[2..34]
            .iter()
            .zip(xq)
            .map(|(q, v)| i32::from(*q as i8) * i32::from(*v))
            .sum();
        acc += half_at(blk, 0) * x.d[i] * sum as f32;
    }
    acc
}

/// [`matmul_t`]'s AVX2 path.
///
/// # Safety
/// `row_bytes` is `x.blocks · kind.bytes()`, and `x.qs` holds `x.rows · x.blocks` blocks of 32
/// (so `x.d` and `x.s` hold `x.rows · x.blocks` values: every [`Acts`] has one per block). The
/// CPU must support AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matmul_t_avx2(kind: BlockKind, w: &[u8], x: &Acts, out: &mut [f32], row_bytes: usize) {
    let n = x.rows;
    if kind == BlockKind::Q4_1 && n > 1 {
        let mut un = Unpacked::default();
        for (wr, o) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n)) {
            unpack_q4_1_avx2(&mut un, wr);
            let mut r = 0;
            while r < n {
                let take = group(n - r);
                let o = &mut o[r..r + take];
                // SAFETY: `un` holds the `row_bytes / 20 = x.blocks` blocks of `wr`; rows
                // `r..r + take` of `x` exist (`take <= n - r`) and their blocks lie in it (the
                // `# Safety` shapes).
                unsafe {
                    match take {
                        8 => unpacked_avx2::<8>(&un, x, r, o),
                        4 => unpacked_avx2::<4>(&un, x, r, o),
                        2 => unpacked_avx2::<2>(&un, x, r, o),
                        _ => unpacked_avx2::<1>(&un, x, r, o),
                    }
                }
                r += take;
            }
        }
        return;
    }
    for (wr, o) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(n)) {
        let mut r = 0;
        while r < n {
            let take = group(n - r);
            let o = &mut o[r..r + take];
            // SAFETY: in every arm, `wr` is `row_bytes`, so `x.blocks` whole blocks of `kind`;
            // rows `r..r + take` of `x` exist (`take <= n - r`) and their blocks lie in it
            // (the `# Safety` shapes).
            unsafe {
                match (kind, take) {
                    (BlockKind::Q4_1, 8) => q4_1_avx2::<8>(wr, x, r, o),
                    (BlockKind::Q4_1, 4) => q4_1_avx2::<4>(wr, x, r, o),
                    (BlockKind::Q4_1, 2) => q4_1_avx2::<2>(wr, x, r, o),
                    (BlockKind::Q4_1, _) => q4_1_avx2::<1>(wr, x, r, o),
                    (BlockKind::Q8_0, 8) => q8_0_avx2::<8>(wr, x, r, o),
                    (BlockKind::Q8_0, 4) => q8_0_avx2::<4>(wr, x, r, o),
                    (BlockKind::Q8_0, 2) => q8_0_avx2::<2>(wr, x, r, o),
                    (BlockKind::Q8_0, _) => q8_0_avx2::<1>(wr, x, r, o),
                }
            }
            r += take;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// One Q4_1 weight row against activation rows `r0..r0 + R`.
///
/// # Safety
/// `w` holds at least `x.blocks` Q4_1 blocks; `r0 + R <= x.rows`, and `x.qs` holds `x.rows ·
/// x.blocks` blocks (`x.d`, `x.s` a value per block). The CPU must support AVX2, FMA and
/// F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q4_1_avx2<const R: usize>(w: &[u8], x: &Acts, r0: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let nb = x.blocks;
    let mask = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut macc = [0.0f32; R];
    let (xq, xd, xs) = (x.qs.as_ptr(), x.d.as_ptr(), x.s.as_ptr());
    for b in 0..nb {
        // SAFETY: block `b < nb` lies in `w` (20 bytes at `20b`: 4 bytes of scales, 16 of
        // nibbles) and block `b` of rows `r0..r0 + R` lies in `x` (the `# Safety` shapes);
        // unaligned loads are used throughout.
        unsafe {
            let p = w.as_ptr().add(b * 20);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32)));
            let d = _mm_cvtss_f32(dm);
            let m = _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let qs = _mm_loadu_si128(p.add(4) as *const __m128i);
            let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), mask);
            for r in 0..R {
                let i = (r0 + r) * nb + b;
                let xv = _mm256_loadu_si256(xq.add(i * QK) as *const __m256i);
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                let scale = _mm256_set1_ps(d * *xd.add(i));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[r]);
                macc[r] += m * *xs.add(i);
            }
        }
    }
    for r in 0..R {
        out[r] = hsum(acc[r]) + macc[r];
    }
}

/// One Q8_0 weight row against activation rows `r0..r0 + R`.
///
/// # Safety
/// As [`q4_1_avx2`], with `w` holding at least `x.blocks` Q8_0 blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q8_0_avx2<const R: usize>(w: &[u8], x: &Acts, r0: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let nb = x.blocks;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let (xq, xd) = (x.qs.as_ptr(), x.d.as_ptr());
    for b in 0..nb {
        // SAFETY: as in `q4_1_avx2`, with blocks of 34 bytes (2 of scale, 32 quants).
        unsafe {
            let p = w.as_ptr().add(b * 34);
            let bits = i32::from(std::ptr::read_unaligned(p as *const u16));
            let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
            let wv = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let aw = _mm256_sign_epi8(wv, wv);
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (r0 + r) * nb + b;
                let xv = _mm256_loadu_si256(xq.add(i * QK) as *const __m256i);
                let sx = _mm256_sign_epi8(xv, wv);
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
                let scale = _mm256_set1_ps(d * *xd.add(i));
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, *a);
            }
        }
    }
    for r in 0..R {
        out[r] = hsum(acc[r]);
    }
}

/// One Q4_1 weight row unpacked to one byte per weight, with its scales as f32 (reused by
/// every activation row of a multi-row matmul).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Default)]
struct Unpacked {
    q: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
}

/// An unpacked Q4_1 weight row against activation rows `r0..r0 + R`.
///
/// # Safety
/// `w` holds at least `x.blocks` unpacked blocks (32 bytes and a scale each); `r0 + R <=
/// x.rows`, and `x.qs` holds `x.rows · x.blocks` blocks (`x.d`, `x.s` a value per block). The
/// CPU must support AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn unpacked_avx2<const R: usize>(w: &Unpacked, x: &Acts, r0: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let nb = x.blocks;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    let (xq, xd) = (x.qs.as_ptr(), x.d.as_ptr());
    let (wq, wd) = (w.q.as_ptr(), w.d.as_ptr());
    for b in 0..nb {
        // SAFETY: `w` holds block `b < nb` (32 bytes at `32b`, scale `b`) and block `b` of
        // rows `r0..r0 + R` lies in `x` (the `# Safety` shapes); unaligned loads.
        unsafe {
            let q = _mm256_loadu_si256(wq.add(b * QK) as *const __m256i);
            let d = _mm256_broadcast_ss(&*wd.add(b));
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (r0 + r) * nb + b;
                let xv = _mm256_loadu_si256(xq.add(i * QK) as *const __m256i);
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                let scale = _mm256_mul_ps(d, _mm256_broadcast_ss(&*xd.add(i)));
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, *a);
            }
        }
    }
    for r in 0..R {
        let xs = &x.s[(r0 + r) * nb..(r0 + r + 1) * nb];
        let m: f32 = w.m.iter().zip(xs).map(|(m, s)| m * s).sum();
        out[r] = hsum(acc[r]) + m;
    }
}

/// Unpacks one Q4_1 weight row (`w`, whole blocks) into `un`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn unpack_q4_1_avx2(un: &mut Unpacked, w: &[u8]) {
    use std::arch::x86_64::*;
    let nb = w.len() / 20;
    un.q.resize(nb * QK, 0);
    un.d.resize(nb, 0.0);
    un.m.resize(nb, 0.0);
    let mask = _mm256_set1_epi8(0x0f);
    for b in 0..nb {
        // SAFETY: block `b < nb = w.len() / 20` lies in `w` (4 bytes of scales, 16 of nibbles,
        // unaligned reads), and `un.q` was sized for `nb` blocks of 32 bytes just above.
        unsafe {
            let p = w.as_ptr().add(b * 20);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32)));
            un.d[b] = _mm_cvtss_f32(dm);
            un.m[b] = _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let qs = _mm_loadu_si128(p.add(4) as *const __m128i);
            let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), mask);
            _mm256_storeu_si256(un.q.as_mut_ptr().add(b * QK) as *mut __m256i, q);
        }
    }
}
