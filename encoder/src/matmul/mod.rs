//! `out[T, N] += x[T, K] · W[K, N]` for the encoder's linear layers, with `W` packed once at
//! load.
//!
//! Profiling the fused encoder showed the `gemm` crate at about a fifth of this CPU's FMA peak
//! on these shapes (few rows, K = 384 or 1536): it re-packs the weights on every call and its
//! blocking suits large square products. Here the weights are packed at load into panels of
//! columns (`[N/W][K][W]`, zero-padded) that a micro-kernel walks down while it keeps a tile of
//! outputs in registers; a panel stays in L1/L2 while every row tile passes over it. Rows are
//! split between the current rayon pool's threads. The format is chosen at load for the CPU:
//!
//! - **AVX-512** ([`avx512`]): panels of 32 columns stored as `f16` (converted to `f32` in the
//!   kernel; products and sums stay `f32`), tiles of 8 rows × 32 columns in 16 registers.
//!   Half-width weights halve the memory traffic: the six layers' linear weights take 21 MB
//!   instead of 42 MB, so they stay in a 32 MB L3 between requests.
//! - **AVX2 + FMA** ([`avx2`]): panels of 16 `f32` columns, tiles of 6 rows × 16 columns.
//! - Other CPUs: a plain-Rust loop over the AVX2 layout.

use half::f16;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Whether this CPU runs the AVX-512 kernel ([`Format::F16x32`]).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One row of a panel, on its own cache line(s).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line<T, const W: usize>([T; W]);

/// How a matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Panels of 16 `f32` columns (AVX2 and portable kernels).
    F32x16,
    /// Panels of 32 `f16` columns (AVX-512 kernel).
    F16x32,
}

impl Format {
    /// The fastest format this CPU runs.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            return Self::F16x32;
        }
        Self::F32x16
    }

    fn width(self) -> usize {
        match self {
            Self::F32x16 => 16,
            Self::F16x32 => 32,
        }
    }

    /// Rows of the kernel's full tile.
    fn tile_rows(self) -> usize {
        match self {
            Self::F32x16 => 6,
            Self::F16x32 => 8,
        }
    }
}

#[derive(Debug, Clone)]
enum Panels {
    F32(Vec<Line<f32, 16>>),
    F16(Vec<Line<f16, 32>>),
}

/// A `[K, N]` weight matrix packed in panels of columns.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `[N/W][K]` lines.
    panels: Panels,
}

impl PackedMatrix {
    /// Packs `w`, a row-major `[k, n]` matrix, in the format this CPU runs fastest.
    pub fn pack(w: &[f32], k: usize, n: usize) -> Self {
        Self::pack_as(w, k, n, Format::best())
    }

    /// Packs `w`, a row-major `[k, n]` matrix, in `format`.
    pub fn pack_as(w: &[f32], k: usize, n: usize, format: Format) -> Self {
        assert_eq!(w.len(), k * n, "weight shape");
        let width = format.width();
        let value = |p: usize, kk: usize, c: usize| {
            let col = p * width + c;
            if col < n {
                w[kk * n + col]
            } else {
                0.0
            }
        };
        let count = n.div_ceil(width);
        let lines = (0..count).flat_map(|p| (0..k).map(move |kk| (p, kk)));
        let panels = match format {
            Format::F32x16 => Panels::F32(
                lines
                    .map(|(p, kk)| Line(std::array::from_fn(|c| value(p, kk, c))))
                    .collect(),
            ),
            Format::F16x32 => Panels::F16(
                lines
                    .map(|(p, kk)| Line(std::array::from_fn(|c| f16::from_f32(value(p, kk, c)))))
                    .collect(),
            ),
        };
        Self { k, n, panels }
    }

    pub fn format(&self) -> Format {
        match self.panels {
            Panels::F32(_) => Format::F32x16,
            Panels::F16(_) => Format::F16x32,
        }
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
        // An even share per thread (the kernels' smaller tiles then cover it without a slow
        // single-row tail), and no thread for fewer than two full tiles of work.
        let per_thread = rows.div_ceil(threads).next_multiple_of(2);
        let per_thread = per_thread.max(2 * self.format().tile_rows());
        out.par_chunks_mut(per_thread * self.n)
            .zip(x.par_chunks(per_thread * self.k))
            .for_each(|(out, x)| self.rows(x, out, out.len() / self.n));
    }

    fn rows(&self, x: &[f32], out: &mut [f32], rows: usize) {
        let shape = (self.k, self.n);
        match &self.panels {
            #[cfg(target_arch = "x86_64")]
            Panels::F16(panels) if avx512::available() => {
                // SAFETY: `avx512::available()` (the guard) found AVX-512F at run time;
                // `panels` are this matrix's `n.div_ceil(32) · k` lines, packed by `pack_as`;
                // `matmul_acc` checked `x` is `[rows, k]` and `out` `[rows, n]` and split both
                // at the same row (`rows = out.len() / n`).
                unsafe { avx512::rows(shape, panels, x, out, rows) };
            }
            #[cfg(target_arch = "x86_64")]
            Panels::F32(panels) if crate::kernels::has_avx2_fma() => {
                // SAFETY: `has_avx2_fma()` (the guard) found AVX2 and FMA at run time; `panels`
                // are this matrix's `n.div_ceil(16) · k` lines, packed by `pack_as`;
                // `matmul_acc` checked `x` is `[rows, k]` and `out` `[rows, n]` and split both
                // at the same row (`rows = out.len() / n`).
                unsafe { avx2::rows(shape, panels, x, out, rows) };
            }
            _ => self.rows_portable(x, out, rows),
        }
    }

    fn rows_portable(&self, x: &[f32], out: &mut [f32], rows: usize) {
        match &self.panels {
            Panels::F32(panels) => portable(self.k, self.n, panels, |w| *w, x, out, rows),
            Panels::F16(panels) => portable(self.k, self.n, panels, |w| w.to_f32(), x, out, rows),
        }
    }
}

/// The plain-Rust product over any panel layout.
fn portable<T, const W: usize>(
    k: usize,
    n: usize,
    panels: &[Line<T, W>],
    value: impl Fn(&T) -> f32,
    x: &[f32],
    out: &mut [f32],
    rows: usize,
) {
    for p in 0..n.div_ceil(W) {
        let panel = &panels[p * k..(p + 1) * k];
        let cols = W.min(n - p * W);
        for r in 0..rows {
            let mut acc = [0f32; W];
            for (kk, w) in panel.iter().enumerate() {
                let xv = x[r * k + kk];
                for (a, w) in acc.iter_mut().zip(&w.0) {
                    *a += xv * value(w);
                }
            }
            for (o, a) in out[r * n + p * W..r * n + p * W + cols].iter_mut().zip(acc) {
                *o += a;
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
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(u64::from(seed));
        (0..len)
            .map(|_| (rng.next_u32() % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_a_naive_product_on_ragged_shapes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // F32x16 panels run the AVX2 + FMA kernel on any CPU that has them (an AVX-512 one
        // too), F16x32 panels the AVX-512 kernel; each also runs the portable loop.
        let avx2 = crate::kernels::report_path("matmul, F32x16 panels", "avx2+fma");
        let avx512 = crate::kernels::report_path("matmul, F16x32 panels", "avx512f");
        for (rows, k, n) in [
            (1, 3, 5),
            (7, 37, 40),
            (13, 64, 16),
            (29, 384, 48),
            (6, 16, 33),
            (32, 384, 1152),
            (3, 1536, 384),
            (23, 40, 17),
            (16, 384, 1536),
            (9, 100, 70),
        ] {
            let (x, w) = (values(rows * k, 1), values(k * n, 7));
            let want = naive(&x, &w, rows, k, n);
            for format in [Format::F32x16, Format::F16x32] {
                let packed = PackedMatrix::pack_as(&w, k, n, format);
                // f16 keeps 11 significant bits of each weight: allow for that over `k` terms.
                let tolerance = match format {
                    Format::F32x16 => 1e-3,
                    Format::F16x32 => 1e-3 * (k as f32).sqrt(),
                };
                let dispatched = match format {
                    Format::F32x16 if avx2 => "avx2+fma",
                    Format::F16x32 if avx512 => "avx512f",
                    _ => "portable",
                };
                for portable in [false, true] {
                    let mut out = vec![1f32; rows * n];
                    let path = if portable {
                        packed.rows_portable(&x, &mut out, rows);
                        "portable"
                    } else {
                        pool.install(|| packed.matmul_acc(&x, &mut out, rows));
                        dispatched
                    };
                    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() < tolerance,
                            "{rows}x{k}x{n} {format:?} {path} [{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
