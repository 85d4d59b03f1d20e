//! Block-quantised weights repacked at load for AVX-512 VNNI: [`Packed`].
//!
//! The GGUF layout (one row's blocks after another) makes every output a dot product that ends
//! in a horizontal sum, and a batch of activation rows pays the integer work once per row. Here
//! 16 weight rows are interleaved so that the 16 lanes of a vector are 16 *outputs*:
//!
//! - per group of 16 rows and per block of 32 weights, one 64-byte line holds the 16 rows'
//!   scales (`d` as f16, then `m` as f16 for Q4_1, or the row's weight sum `Σq` as i16 for Q8_0);
//! - then come lines of 4-byte quads: line `t` holds bytes `4t..4t+4` of each row's quants, row
//!   after row. For Q4_1 a quad's low nibbles are weights `4t..4t+4` and its high nibbles
//!   weights `16+4t..16+4t+4`; for Q8_0 (8 lines) it is weights `4t..4t+4`.
//!
//! `vpdpbusd` then multiplies a line by one broadcast quad of the activation row and adds each
//! lane's four products to that lane's integer sum. Q8_0 weights are signed, and `vpdpbusd`
//! wants its first operand unsigned: the activation is offset by 128 (`x ^ 0x80`) and
//! `128·Σq` is subtracted. Per block and lane the float work is `acc += isum·(d_w·d_x)` (and
//! `+ m_w·s_x` for Q4_1), so an output's arithmetic is the same whatever else is in the batch:
//! results are batch-invariant, and there is no horizontal sum at all.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::qkernels::{self, f16_to_f32, Acts, BlockKind, QK};

/// Blocks ahead of the one being computed whose lines are prefetched.
const AHEAD: usize = 16;

/// Weight rows per interleaved group (lanes of a 512-bit vector of i32).
pub const LANES: usize = 16;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A `rows × cols` block-quantised matrix in the interleaved layout.
#[derive(Debug)]
pub struct Packed {
    kind: BlockKind,
    rows: usize,
    blocks: usize,
    lines: Vec<Line>,
}

/// Whether this CPU runs the kernels (AVX-512 F, BW and VNNI).
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// Lines per (group, block): the scale line, then the quads.
const fn lines_per_block(kind: BlockKind) -> usize {
    match kind {
        BlockKind::Q4_1 => 1 + 4,
        BlockKind::Q8_0 => 1 + 8,
    }
}

impl Packed {
    /// Repacks `blocks` (GGUF layout: `rows` rows of `cols / 32` blocks of `kind`).
    pub fn new(kind: BlockKind, blocks: &[u8], rows: usize, cols: usize) -> Packed {
        let nb = cols / QK;
        let row_bytes = nb * kind.bytes();
        assert_eq!(blocks.len(), rows * row_bytes, "bad block data");
        let lpb = lines_per_block(kind);
        let groups = rows.div_ceil(LANES);
        let mut lines = vec![Line([0; 64]); groups * nb * lpb];
        for row in 0..rows {
            let (g, lane) = (row / LANES, row % LANES);
            for b in 0..nb {
                let blk = &blocks[row * row_bytes + b * kind.bytes()..][..kind.bytes()];
                let at = (g * nb + b) * lpb;
                let scales = &mut lines[at].0;
                scales[2 * lane..2 * lane + 2].copy_from_slice(&blk[..2]);
                let (second, quants) = match kind {
                    BlockKind::Q4_1 => ([blk[2], blk[3]], &blk[4..20]),
                    BlockKind::Q8_0 => {
                        let sum: i16 = blk[2..34].iter().map(|q| i16::from(*q as i8)).sum();
                        (sum.to_le_bytes(), &blk[2..34])
                    }
                };
                scales[32 + 2 * lane..32 + 2 * lane + 2].copy_from_slice(&second);
                for (t, quad) in quants.chunks_exact(4).enumerate() {
                    lines[at + 1 + t].0[4 * lane..4 * lane + 4].copy_from_slice(quad);
                }
            }
        }
        Packed {
            kind,
            rows,
            blocks: nb,
            lines,
        }
    }

    /// Row `i`, dequantised (embedding lookup).
    pub fn row(&self, i: usize, out: &mut [f32]) {
        let (g, lane) = (i / LANES, i % LANES);
        let lpb = lines_per_block(self.kind);
        for (b, o) in out.chunks_exact_mut(QK).enumerate().take(self.blocks) {
            let at = (g * self.blocks + b) * lpb;
            let half = |off: usize| {
                let s = &self.lines[at].0;
                u16::from_le_bytes([s[off + 2 * lane], s[off + 2 * lane + 1]])
            };
            let d = f16_to_f32(half(0));
            let quad = |t: usize| &self.lines[at + 1 + t].0[4 * lane..4 * lane + 4];
            match self.kind {
                BlockKind::Q4_1 => {
                    let m = f16_to_f32(half(32));
                    for t in 0..4 {
                        for (j, q) in quad(t).iter().enumerate() {
                            o[4 * t + j] = d * f32::from(q & 0x0f) + m;
                            o[16 + 4 * t + j] = d * f32::from(q >> 4) + m;
                        }
                    }
                }
                BlockKind::Q8_0 => {
                    for t in 0..8 {
                        for (j, q) in quad(t).iter().enumerate() {
                            o[4 * t + j] = d * f32::from(*q as i8);
                        }
                    }
                }
            }
        }
    }

    /// `out[r · rows + j] = Σ_k W[j,k] · x[r,k]` (`out` is `x.rows × rows`, row-major), split
    /// by groups of rows over the current rayon pool. Requires [`available`].
    pub fn matmul(&self, x: &Acts, out: &mut [f32]) {
        assert!(available(), "AVX-512 VNNI kernels on a CPU without them");
        assert_eq!(x.blocks, self.blocks, "activation width");
        let n = x.rows;
        assert_eq!(out.len(), n * self.rows, "output shape");
        assert_eq!(x.qs.len(), n * self.blocks * QK, "activation shape");
        if n == 0 {
            return;
        }
        let groups = self.rows.div_ceil(LANES);
        let threads = rayon::current_num_threads().max(1);
        // A few tasks per thread, so a thread slowed by others on the machine is caught up.
        let per_task = groups.div_ceil(threads * 4).max(1);
        let task_rows = per_task * LANES;
        let tasks = groups.div_ceil(per_task);
        // Each task writes its own `[n, task_rows]` tile; with one activation row that is
        // already the output's layout.
        let mut tiles = vec![0f32; tasks * n * task_rows];
        tiles
            .par_chunks_mut(n * task_rows)
            .enumerate()
            .for_each(|(task, tile)| {
                let g0 = task * per_task;
                let g1 = (g0 + per_task).min(groups);
                // SAFETY: the CPU has the features (asserted above); the shapes of `x` and
                // `tile` were checked above and `g0..g1` are groups of `self`.
                unsafe { self.groups(x, g0..g1, tile, task_rows) };
            });
        for task in 0..tasks {
            let first = task * task_rows;
            let len = task_rows.min(self.rows - first);
            for r in 0..n {
                let tile = &tiles[(task * n + r) * task_rows..][..len];
                out[r * self.rows + first..][..len].copy_from_slice(tile);
            }
        }
    }

    /// Groups `g` of the weights against every activation row: output row `r`, lane `l` of
    /// group `g` goes to `tile[r · stride + (g - first) · 16 + l]`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn groups(&self, x: &Acts, g: std::ops::Range<usize>, tile: &mut [f32], stride: usize) {
        let first = g.start;
        for g in g {
            let col = (g - first) * LANES;
            let mut r = 0;
            while r < x.rows {
                let take = qkernels::group(x.rows - r);
                let dst = tile.as_mut_ptr().add(r * stride + col);
                match (self.kind, take) {
                    (BlockKind::Q4_1, 8) => self.q4_1::<8>(g, x, r, dst, stride),
                    (BlockKind::Q4_1, 4) => self.q4_1::<4>(g, x, r, dst, stride),
                    (BlockKind::Q4_1, 2) => self.q4_1::<2>(g, x, r, dst, stride),
                    (BlockKind::Q4_1, _) => self.q4_1::<1>(g, x, r, dst, stride),
                    (BlockKind::Q8_0, 8) => self.q8_0::<8>(g, x, r, dst, stride),
                    (BlockKind::Q8_0, 4) => self.q8_0::<4>(g, x, r, dst, stride),
                    (BlockKind::Q8_0, 2) => self.q8_0::<2>(g, x, r, dst, stride),
                    (BlockKind::Q8_0, _) => self.q8_0::<1>(g, x, r, dst, stride),
                }
                r += take;
            }
        }
    }

    /// Group `g` (Q4_1) against activation rows `r0..r0 + R`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4_1<const R: usize>(
        &self,
        g: usize,
        x: &Acts,
        r0: usize,
        dst: *mut f32,
        stride: usize,
    ) {
        let nb = self.blocks;
        let mask = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); R];
        const LPB: usize = lines_per_block(BlockKind::Q4_1);
        let lines = self.lines.as_ptr().add(g * nb * LPB).cast::<u8>();
        let (xq, xd, xs) = (x.qs.as_ptr(), x.d.as_ptr(), x.s.as_ptr());
        for b in 0..nb {
            let p = lines.add(b * LPB * 64);
            for l in 0..LPB {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add((AHEAD * LPB + l) * 64).cast());
            }
            let d = _mm512_cvtph_ps(_mm256_load_si256(p.cast()));
            let m = _mm512_cvtph_ps(_mm256_load_si256(p.add(32).cast()));
            let mut lo = [_mm512_setzero_si512(); 4];
            let mut hi = [_mm512_setzero_si512(); 4];
            for t in 0..4 {
                let raw = _mm512_load_si512(p.add(64 * (1 + t)).cast());
                lo[t] = _mm512_and_si512(raw, mask);
                hi[t] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (r0 + r) * nb + b;
                let q = xq.add(i * QK).cast::<i32>();
                let mut s0 = _mm512_setzero_si512();
                let mut s1 = _mm512_setzero_si512();
                for t in 0..4 {
                    s0 = _mm512_dpbusd_epi32(
                        s0,
                        lo[t],
                        _mm512_set1_epi32(q.add(t).read_unaligned()),
                    );
                    s1 = _mm512_dpbusd_epi32(
                        s1,
                        hi[t],
                        _mm512_set1_epi32(q.add(4 + t).read_unaligned()),
                    );
                }
                let isum = _mm512_add_epi32(s0, s1);
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(*xd.add(i)));
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, *a);
                *a = _mm512_fmadd_ps(m, _mm512_set1_ps(*xs.add(i)), *a);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(dst.add(r * stride), *a);
        }
    }

    /// Group `g` (Q8_0) against activation rows `r0..r0 + R`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q8_0<const R: usize>(
        &self,
        g: usize,
        x: &Acts,
        r0: usize,
        dst: *mut f32,
        stride: usize,
    ) {
        let nb = self.blocks;
        let mut acc = [_mm512_setzero_ps(); R];
        const LPB: usize = lines_per_block(BlockKind::Q8_0);
        let lines = self.lines.as_ptr().add(g * nb * LPB).cast::<u8>();
        let (xq, xd) = (x.qs.as_ptr(), x.d.as_ptr());
        const FLIP: i32 = 0x8080_8080_u32 as i32;
        for b in 0..nb {
            let p = lines.add(b * LPB * 64);
            for l in 0..LPB {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add((AHEAD * LPB + l) * 64).cast());
            }
            let d = _mm512_cvtph_ps(_mm256_load_si256(p.cast()));
            let sum = _mm512_cvtepi16_epi32(_mm256_load_si256(p.add(32).cast()));
            let offset = _mm512_slli_epi32::<7>(sum);
            let mut w = [_mm512_setzero_si512(); 8];
            for (t, w) in w.iter_mut().enumerate() {
                *w = _mm512_load_si512(p.add(64 * (1 + t)).cast());
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (r0 + r) * nb + b;
                let q = xq.add(i * QK).cast::<i32>();
                let mut s0 = _mm512_setzero_si512();
                let mut s1 = _mm512_setzero_si512();
                for t in 0..4 {
                    let x0 = _mm512_set1_epi32(q.add(t).read_unaligned() ^ FLIP);
                    let x1 = _mm512_set1_epi32(q.add(4 + t).read_unaligned() ^ FLIP);
                    s0 = _mm512_dpbusd_epi32(s0, x0, w[t]);
                    s1 = _mm512_dpbusd_epi32(s1, x1, w[4 + t]);
                }
                let isum = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), offset);
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(*xd.add(i)));
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, *a);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(dst.add(r * stride), *a);
        }
    }
}
