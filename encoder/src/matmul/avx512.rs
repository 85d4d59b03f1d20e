//! The AVX-512 micro-kernel over panels of 32 `f16` columns.
//!
//! Per step of `k` it loads one 64-byte line of the panel, widens it to two vectors of 16
//! `f32`, and broadcasts one input per row of the tile: a tile of 8 rows keeps 16 accumulators
//! (16 independent FMA chains, enough to hide the FMA latency on two pipes).

use std::arch::x86_64::*;

use half::f16;

use super::Line;

/// Columns per panel.
pub const NR: usize = 32;

/// Whether the CPU has AVX-512F (which implies the F16C-style conversions at 512 bits).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `out += x · W` for `rows` rows.
///
/// # Safety
/// `panels` is a `[K, N]` matrix packed in `[N/32][K]` lines (`n.div_ceil(32) · k` of them),
/// `x` holds at least `rows · k` values (`[rows, K]`) and `out` at least `rows · n`
/// (`[rows, N]`). The CPU must support AVX-512F (the `#[target_feature]`).
#[target_feature(enable = "avx512f")]
pub unsafe fn rows(
    (k, n): (usize, usize),
    panels: &[Line<f16, NR>],
    x: &[f32],
    out: &mut [f32],
    rows: usize,
) {
    for p in 0..n.div_ceil(NR) {
        let panel = panels[p * k..].as_ptr().cast::<u16>();
        let cols = NR.min(n - p * NR);
        let mut r = 0;
        while r < rows {
            let xs = x[r * k..].as_ptr();
            let dst = out[r * n + p * NR..].as_mut_ptr();
            // SAFETY: each arm's tile has at most `rows - r` rows, so its rows of `x` (`k`
            // values, `k` apart from `xs`) and of `out` (`cols <= n - 32p` values, `n` apart
            // from `dst`) lie inside the slices (the `# Safety` shapes); `panel` is line `p · k`
            // of `panels`, followed by the panel's other `k - 1` 64-byte aligned lines.
            r += unsafe {
                match rows - r {
                    left if left >= 8 => tile::<8>(k, n, xs, panel, dst, cols),
                    left if left >= 4 => tile::<4>(k, n, xs, panel, dst, cols),
                    left if left >= 2 => tile::<2>(k, n, xs, panel, dst, cols),
                    _ => tile::<1>(k, n, xs, panel, dst, cols),
                }
            };
        }
    }
}

/// `R` rows × 32 columns over all of `k` in `2R` accumulators, added to `dst` (row stride
/// `n`); returns `R`.
///
/// # Safety
/// `xs` points at `R` rows of `k` readable `f32`, `k` apart; `panel` at `k` lines of 32 `f16`
/// bits, each 64-byte aligned; `dst` at `R` rows of `cols <= 32` writable `f32`, `n` apart.
/// The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(
    k: usize,
    n: usize,
    xs: *const f32,
    panel: *const u16,
    dst: *mut f32,
    cols: usize,
) -> usize {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut w = panel;
    for kk in 0..k {
        // SAFETY: `w` is line `kk < k` of the panel: 64 bytes, 64-byte aligned, so both
        // 32-byte halves are aligned for `_mm256_load_si256`; `xs.add(i * k + kk)` is value
        // `kk` of row `i < R`; `w.add(NR)` is the next line or one past the last.
        unsafe {
            let w0 = _mm512_cvtph_ps(_mm256_load_si256(w.cast()));
            let w1 = _mm512_cvtph_ps(_mm256_load_si256(w.add(16).cast()));
            for (i, a) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*xs.add(i * k + kk));
                a[0] = _mm512_fmadd_ps(x, w0, a[0]);
                a[1] = _mm512_fmadd_ps(x, w1, a[1]);
            }
            w = w.add(NR);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        // SAFETY: row `i < R` of `dst` holds `cols` writable values (the `# Safety` contract).
        let row = unsafe { dst.add(i * n) };
        if cols == NR {
            // SAFETY: the row holds 32 values (`cols == 32`): two unaligned 16-wide loads and
            // stores.
            unsafe {
                _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), a[0]));
                _mm512_storeu_ps(
                    row.add(16),
                    _mm512_add_ps(_mm512_loadu_ps(row.add(16)), a[1]),
                );
            }
        } else {
            let mut tmp = [0f32; NR];
            // SAFETY: `tmp` holds 32 values: two unaligned 16-wide stores.
            unsafe {
                _mm512_storeu_ps(tmp.as_mut_ptr(), a[0]);
                _mm512_storeu_ps(tmp.as_mut_ptr().add(16), a[1]);
            }
            for (c, v) in tmp.iter().enumerate().take(cols) {
                // SAFETY: `c < cols`, and the row holds `cols` values.
                unsafe { *row.add(c) += v };
            }
        }
    }
    R
}
