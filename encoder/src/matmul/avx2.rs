//! The AVX2 + FMA micro-kernel over panels of 16 `f32` columns.
use std::arch::x86_64::*;

use super::Line;

/// Columns per panel.
pub const NR: usize = 16;
/// Rows of the full tile.
pub const MR: usize = 6;

/// `out += x · W` for `rows` rows.
///
/// # Safety
/// `panels` is a `[K, N]` matrix packed in `[N/16][K]` lines (`n.div_ceil(16) · k` of them),
/// `x` holds at least `rows · k` values (`[rows, K]`) and `out` at least `rows · n`
/// (`[rows, N]`). The CPU must support AVX2 and FMA (the `#[target_feature]`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn rows(
    (k, n): (usize, usize),
    panels: &[Line<f32, NR>],
    x: &[f32],
    out: &mut [f32],
    rows: usize,
) {
    for p in 0..n.div_ceil(NR) {
        let panel = panels[p * k..].as_ptr().cast::<f32>();
        let cols = NR.min(n - p * NR);
        let mut r = 0;
        while r < rows {
            let xs = x[r * k..].as_ptr();
            let dst = out[r * n + p * NR..].as_mut_ptr();
            // Tiles of 6 rows, then 4 and 2 (still enough independent FMA chains to hide
            // their latency), a single row only at an odd end.
            // SAFETY: each arm's tile has at most `rows - r` rows, so its rows of `x` (`k`
            // values, `k` apart from `xs`) and of `out` (`cols <= n - 16p` values, `n` apart
            // from `dst`) lie inside the slices (the `# Safety` shapes); `panel` is line `p · k`
            // of `panels`, followed by the panel's other `k - 1` 64-byte aligned lines.
            r += unsafe {
                match rows - r {
                    left if left >= MR => {
                        let acc = full_tile(k, xs, panel);
                        for (i, a) in acc.iter().enumerate() {
                            add_to(dst.add(i * n), a, cols);
                        }
                        MR
                    }
                    left if left >= 4 => tile::<4>(k, n, xs, panel, dst, cols),
                    left if left >= 2 => tile::<2>(k, n, xs, panel, dst, cols),
                    _ => tile::<1>(k, n, xs, panel, dst, cols),
                }
            };
        }
    }
}

/// Six rows × 16 columns over all of `k`: 12 accumulators, 2 panel loads and 6 broadcasts
/// per step.
///
/// # Safety
/// `xs` points at 6 rows of `k` readable `f32`, `k` apart; `panel` at `k` lines of 16 `f32`,
/// each 32-byte aligned. The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn full_tile(k: usize, xs: *const f32, panel: *const f32) -> [[__m256; 2]; MR] {
    // SAFETY: rows 1 to 5 start inside the six rows the caller vouches for (`5k <= 6k`).
    let x = unsafe {
        [
            xs,
            xs.add(k),
            xs.add(2 * k),
            xs.add(3 * k),
            xs.add(4 * k),
            xs.add(5 * k),
        ]
    };
    let (mut c00, mut c01, mut c10, mut c11) = (zero(), zero(), zero(), zero());
    let (mut c20, mut c21, mut c30, mut c31) = (zero(), zero(), zero(), zero());
    let (mut c40, mut c41, mut c50, mut c51) = (zero(), zero(), zero(), zero());
    let mut w = panel;
    for kk in 0..k {
        // SAFETY: `w` is line `kk < k` of the panel: 16 readable `f32` whose two halves are
        // 32-byte aligned (the line is, and its second half starts 32 bytes in); `x[i].add(kk)`
        // is value `kk < k` of row `i < 6`; `w.add(NR)` is the next line or one past the last.
        unsafe {
            let w0 = _mm256_load_ps(w);
            let w1 = _mm256_load_ps(w.add(8));
            let a = _mm256_broadcast_ss(&*x[0].add(kk));
            c00 = _mm256_fmadd_ps(a, w0, c00);
            c01 = _mm256_fmadd_ps(a, w1, c01);
            let a = _mm256_broadcast_ss(&*x[1].add(kk));
            c10 = _mm256_fmadd_ps(a, w0, c10);
            c11 = _mm256_fmadd_ps(a, w1, c11);
            let a = _mm256_broadcast_ss(&*x[2].add(kk));
            c20 = _mm256_fmadd_ps(a, w0, c20);
            c21 = _mm256_fmadd_ps(a, w1, c21);
            let a = _mm256_broadcast_ss(&*x[3].add(kk));
            c30 = _mm256_fmadd_ps(a, w0, c30);
            c31 = _mm256_fmadd_ps(a, w1, c31);
            let a = _mm256_broadcast_ss(&*x[4].add(kk));
            c40 = _mm256_fmadd_ps(a, w0, c40);
            c41 = _mm256_fmadd_ps(a, w1, c41);
            let a = _mm256_broadcast_ss(&*x[5].add(kk));
            c50 = _mm256_fmadd_ps(a, w0, c50);
            c51 = _mm256_fmadd_ps(a, w1, c51);
            w = w.add(NR);
        }
    }
    [
        [c00, c01],
        [c10, c11],
        [c20, c21],
        [c30, c31],
        [c40, c41],
        [c50, c51],
    ]
}

/// `R` rows × 16 columns over all of `k` in `2R` accumulators (two panel loads and `R`
/// broadcasts per step), added to `dst` (row stride `n`); returns `R`.
///
/// # Safety
/// `xs` points at `R` rows of `k` readable `f32`, `k` apart; `panel` at `k` lines of 16 `f32`,
/// each 32-byte aligned; `dst` at `R` rows of `cols <= 16` writable `f32`, `n` apart. The CPU
/// must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(
    k: usize,
    n: usize,
    xs: *const f32,
    panel: *const f32,
    dst: *mut f32,
    cols: usize,
) -> usize {
    let mut acc = [[zero(); 2]; R];
    let mut w = panel;
    for kk in 0..k {
        // SAFETY: `w` is line `kk < k` of the panel (two 32-byte aligned halves of 8 `f32`);
        // `xs.add(i * k + kk)` is value `kk` of row `i < R`; `w.add(NR)` is the next line or
        // one past the last.
        unsafe {
            let w0 = _mm256_load_ps(w);
            let w1 = _mm256_load_ps(w.add(8));
            for (i, a) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*xs.add(i * k + kk));
                a[0] = _mm256_fmadd_ps(x, w0, a[0]);
                a[1] = _mm256_fmadd_ps(x, w1, a[1]);
            }
            w = w.add(NR);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        // SAFETY: row `i < R` of `dst` holds `cols` writable values (the `# Safety` contract).
        unsafe { add_to(dst.add(i * n), a, cols) };
    }
    R
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn zero() -> __m256 {
    _mm256_setzero_ps()
}

/// `row[c] += acc[c]` for `c < cols`.
///
/// # Safety
/// `row` points at `cols <= 16` readable and writable `f32`. The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_to(row: *mut f32, acc: &[__m256; 2], cols: usize) {
    if cols == NR {
        // SAFETY: `row` holds 16 values (`cols == 16`): two unaligned 8-wide loads and stores.
        unsafe {
            _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc[0]));
            _mm256_storeu_ps(
                row.add(8),
                _mm256_add_ps(_mm256_loadu_ps(row.add(8)), acc[1]),
            );
        }
    } else {
        let mut tmp = [0f32; NR];
        // SAFETY: `tmp` holds 16 values: two unaligned 8-wide stores.
        unsafe {
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1]);
        }
        for (c, v) in tmp.iter().enumerate().take(cols) {
            // SAFETY: `c < cols`, and `row` holds `cols` values.
            unsafe { *row.add(c) += v };
        }
    }
}
