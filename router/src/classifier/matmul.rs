//! `out[T, N] += x[T, K] · W[K, N]` for the encoder's linear layers, with `W` packed once at
//! load.
//!
//! Profiling the fused encoder showed the `gemm` crate at about a fifth of this CPU's FMA peak
//! on these shapes (few rows, K = 384 or 1536): it re-packs the weights on every call and its
//! blocking suits large square products. Here the weights are packed at load into panels of 16
//! columns (`[N/16][K][16]`, zero-padded), and an AVX2 + FMA micro-kernel computes 6 × 16
//! outputs at a time in 12 registers: per step of `k` it loads two vectors of the panel and
//! broadcasts six inputs (tiles of 4 and 2 rows take the remainder). A panel (K · 64 bytes) stays in L1/L2 while every row tile passes over
//! it. Rows are split between the current rayon pool's threads. CPUs without AVX2/FMA take a
//! plain-Rust loop over the same layout.
#![allow(unsafe_code)]

use rayon::prelude::*;

const NR: usize = 16;
const MR: usize = 6;

/// One row of a panel: 16 floats on their own cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; NR]);

/// A `[K, N]` weight matrix packed in panels of 16 columns.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `[N/16][K]` lines.
    panels: Vec<Line>,
}

impl PackedMatrix {
    /// Packs `w`, a row-major `[k, n]` matrix.
    pub fn pack(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight shape");
        let count = n.div_ceil(NR);
        let mut panels = vec![Line([0.0; NR]); count * k];
        for p in 0..count {
            let cols = NR.min(n - p * NR);
            for kk in 0..k {
                let src = &w[kk * n + p * NR..kk * n + p * NR + cols];
                panels[p * k + kk].0[..cols].copy_from_slice(src);
            }
        }
        Self { k, n, panels }
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    /// `out += x · W` for `rows` rows (`x` is `[rows, K]`, `out` is `[rows, N]`, row-major).
    pub fn matmul_acc(&self, x: &[f32], out: &mut [f32], rows: usize) {
        assert_eq!(x.len(), rows * self.k, "input shape");
        assert_eq!(out.len(), rows * self.n, "output shape");
        if rows == 0 {
            return;
        }
        let threads = rayon::current_num_threads().max(1);
        // An even share per thread (tiles of 6, 4 and 2 rows then cover it without a slow
        // single-row tail), and no thread for fewer than two tiles of work.
        let per_thread = rows.div_ceil(threads).next_multiple_of(2);
        let per_thread = per_thread.max(2 * MR);
        out.par_chunks_mut(per_thread * self.n)
            .zip(x.par_chunks(per_thread * self.k))
            .for_each(|(out, x)| self.rows(x, out, out.len() / self.n));
    }

    fn rows(&self, x: &[f32], out: &mut [f32], rows: usize) {
        #[cfg(target_arch = "x86_64")]
        if super::kernels::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; shapes were checked by `matmul_acc`.
            unsafe { avx2::rows(self, x, out, rows) };
            return;
        }
        self.rows_portable(x, out, rows);
    }

    fn rows_portable(&self, x: &[f32], out: &mut [f32], rows: usize) {
        let (k, n) = (self.k, self.n);
        for p in 0..n.div_ceil(NR) {
            let panel = &self.panels[p * k..(p + 1) * k];
            let cols = NR.min(n - p * NR);
            for r in 0..rows {
                let mut acc = [0f32; NR];
                for (kk, w) in panel.iter().enumerate() {
                    let xv = x[r * k + kk];
                    for (a, w) in acc.iter_mut().zip(&w.0) {
                        *a += xv * w;
                    }
                }
                for (o, a) in out[r * n + p * NR..r * n + p * NR + cols]
                    .iter_mut()
                    .zip(acc)
                {
                    *o += a;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{PackedMatrix, MR, NR};

    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` is `[rows, K]` and `out` is `[rows, N]`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows(m: &PackedMatrix, x: &[f32], out: &mut [f32], rows: usize) {
        let (k, n) = (m.k, m.n);
        for p in 0..n.div_ceil(NR) {
            let panel = m.panels.as_ptr().add(p * k).cast::<f32>();
            let cols = NR.min(n - p * NR);
            let mut r = 0;
            while r < rows {
                let xs = x.as_ptr().add(r * k);
                let dst = out.as_mut_ptr().add(r * n + p * NR);
                // Tiles of 6 rows, then 4 and 2 (still enough independent FMA chains to hide
                // their latency), a single row only at an odd end.
                r += match rows - r {
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
                };
            }
        }
    }

    /// Six rows × 16 columns over all of `k`: 12 accumulators, 2 panel loads and 6 broadcasts
    /// per step.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn full_tile(k: usize, xs: *const f32, panel: *const f32) -> [[__m256; 2]; MR] {
        let x = [
            xs,
            xs.add(k),
            xs.add(2 * k),
            xs.add(3 * k),
            xs.add(4 * k),
            xs.add(5 * k),
        ];
        let (mut c00, mut c01, mut c10, mut c11) = (zero(), zero(), zero(), zero());
        let (mut c20, mut c21, mut c30, mut c31) = (zero(), zero(), zero(), zero());
        let (mut c40, mut c41, mut c50, mut c51) = (zero(), zero(), zero(), zero());
        let mut w = panel;
        for kk in 0..k {
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
            let w0 = _mm256_load_ps(w);
            let w1 = _mm256_load_ps(w.add(8));
            for (i, a) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*xs.add(i * k + kk));
                a[0] = _mm256_fmadd_ps(x, w0, a[0]);
                a[1] = _mm256_fmadd_ps(x, w1, a[1]);
            }
            w = w.add(NR);
        }
        for (i, a) in acc.iter().enumerate() {
            add_to(dst.add(i * n), a, cols);
        }
        R
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }

    /// `row[c] += acc[c]` for `c < cols`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn add_to(row: *mut f32, acc: &[__m256; 2], cols: usize) {
        if cols == NR {
            _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc[0]));
            _mm256_storeu_ps(
                row.add(8),
                _mm256_add_ps(_mm256_loadu_ps(row.add(8)), acc[1]),
            );
        } else {
            let mut tmp = [0f32; NR];
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1]);
            for (c, v) in tmp.iter().enumerate().take(cols) {
                *row.add(c) += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for c in 0..n {
                out[r * n + c] = (0..k).map(|i| x[r * k + i] * w[i * n + c]).sum::<f32>() + 1.0;
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_a_naive_product_on_ragged_shapes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (rows, k, n) in [
            (1, 3, 5),
            (7, 37, 40),
            (13, 64, 16),
            (29, 384, 48),
            (6, 16, 33),
            (32, 384, 1152),
            (3, 1536, 384),
            (23, 40, 17),
        ] {
            let (x, w) = (values(rows * k, 1), values(k * n, 7));
            let packed = PackedMatrix::pack(&w, k, n);
            let want = naive(&x, &w, rows, k, n);
            for portable in [false, true] {
                let mut out = vec![1f32; rows * n];
                if portable {
                    packed.rows_portable(&x, &mut out, rows);
                } else {
                    pool.install(|| packed.matmul_acc(&x, &mut out, rows));
                }
                for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-3,
                        "{rows}x{k}x{n} portable={portable} [{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
}
