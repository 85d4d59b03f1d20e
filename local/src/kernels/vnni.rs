//! Block-quantised weights repacked at load for AVX-512 VNNI: [`Packed`].
//!
//! The GGUF layout (one row's blocks after another) makes every output a dot product that ends
//! in a horizontal sum, and a batch of activation rows pays the integer work once per row. Here
//! 16 weight rows are interleaved so that the 16 lanes of a vector are 16 *outputs*:
//!
//! - per group of 16 rows and per block of 32 weights, one 64-byte line holds the 16 rows'
//!   scales (`d` as f16, then for Q4_1 `m` as f16);
//! - then come lines of 4-byte quads: line `t` holds bytes `4t..4t+4` of each row's quants, row
//!   after row. For Q4_1 a quad's low nibbles are weights `4t..4t+4` and its high nibbles
//!   weights `16+4t..16+4t+4`; for Q8_0 (8 lines) it is weights `4t..4t+4`, offset by 128
//!   (`q ^ 0x80`) to make them unsigned.
//!
//! `vpdpbusd` then multiplies a line (unsigned) by one broadcast quad of the activation row
//! (signed, straight from memory) and adds each lane's four products to that lane's integer
//! sum. For Q8_0 the weights' offset added `128·Σq_x`, which the activation carries
//! ([`Acts`]'s `offset`) and is subtracted, so the integer sum is exact. Per block and lane the
//! float work is `acc += isum·(d_w·d_x)` (and `+ m_w·s_x` for Q4_1), so an output's arithmetic
//! is the same whatever else is in the batch: results are batch-invariant, and there is no
//! horizontal sum at all.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::blocks::{self, f16_to_f32, Acts, BlockKind, QK};

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

impl Packed {
    /// The block format the weights were repacked from.
    pub fn kind(&self) -> BlockKind {
        self.kind
    }
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
                let (quants, flip) = match kind {
                    BlockKind::Q4_1 => {
                        scales[32 + 2 * lane..32 + 2 * lane + 2].copy_from_slice(&blk[2..4]);
                        (&blk[4..20], 0)
                    }
                    BlockKind::Q8_0 => (&blk[2..34], 0x80),
                };
                for (t, quad) in quants.chunks_exact(4).enumerate() {
                    for (dst, q) in lines[at + 1 + t].0[4 * lane..4 * lane + 4]
                        .iter_mut()
                        .zip(quad)
                    {
                        *dst = q ^ flip;
                    }
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
                            o[4 * t + j] = d * f32::from((q ^ 0x80) as i8);
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
        let tasks = groups.div_ceil(per_task);
        let out = Out(out.as_mut_ptr());
        (0..tasks).into_par_iter().for_each(|task| {
            let g0 = task * per_task;
            let g1 = (g0 + per_task).min(groups);
            // SAFETY: `available()` found AVX-512 F, BW and VNNI at run time (asserted above);
            // `x` has `self.blocks` blocks per row and `out` is `x.rows × self.rows` (asserted
            // above); `g0..g1` are groups of `self`; and tasks write disjoint columns of `out`
            // (those of their own groups), which outlives them.
            unsafe { self.groups(x, g0..g1, out.get()) };
        });
    }

    /// Groups `g` of the weights against every activation row: output row `r`, lane `l` of
    /// group `g` goes to `out[r · rows + 16g + l]` (lanes past `rows` are not written).
    ///
    /// # Safety
    /// `g` are groups of `self` (`g.end <= self.rows.div_ceil(16)`); `x.blocks == self.blocks`
    /// and `x.qs` holds `x.rows · x.blocks` blocks (`x.d`, `x.s`, `x.offset` a value per
    /// block); `out` points at `x.rows × self.rows` `f32` of which no one else reads or writes
    /// the columns of these groups meanwhile. The CPU must support AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn groups(&self, x: &Acts, g: std::ops::Range<usize>, out: *mut f32) {
        for g in g {
            let lanes = (self.rows - g * LANES).min(LANES);
            let mask = (u32::MAX >> (32 - lanes)) as __mmask16;
            let mut r = 0;
            while r < x.rows {
                let take = blocks::group(x.rows - r);
                // SAFETY: `r < x.rows` and `16g < self.rows`: element `(r, 16g)` of `out`.
                let at = unsafe { out.add(r * self.rows + g * LANES) };
                let dst = Dst {
                    at,
                    stride: self.rows,
                    mask,
                };
                // SAFETY: rows `r..r + take` of `x` exist (`take <= x.rows - r`), and `dst`
                // covers their `lanes` columns of group `g` in `out` (`mask` has `lanes`
                // bits), which `out` holds (the `# Safety` contract).
                unsafe {
                    match (self.kind, take) {
                        (BlockKind::Q4_1, 8) => self.kernel::<8, false>(g, x, r, dst),
                        (BlockKind::Q4_1, 4) => self.kernel::<4, false>(g, x, r, dst),
                        (BlockKind::Q4_1, 2) => self.kernel::<2, false>(g, x, r, dst),
                        (BlockKind::Q4_1, _) => self.kernel::<1, false>(g, x, r, dst),
                        (BlockKind::Q8_0, 8) => self.kernel::<8, true>(g, x, r, dst),
                        (BlockKind::Q8_0, 4) => self.kernel::<4, true>(g, x, r, dst),
                        (BlockKind::Q8_0, 2) => self.kernel::<2, true>(g, x, r, dst),
                        (BlockKind::Q8_0, _) => self.kernel::<1, true>(g, x, r, dst),
                    }
                }
                r += take;
            }
        }
    }

    /// Group `g` (Q8_0 when `Q8`, else Q4_1) against activation rows `r0..r0 + R`.
    ///
    /// # Safety
    /// `g` is a group of `self`, whose kind `Q8` says; `x.blocks == self.blocks`, `r0 + R <=
    /// x.rows` and `x.qs` holds `x.rows · x.blocks` blocks (`x.d`, `x.s`, `x.offset` a value per
    /// block); `dst.at + r · dst.stride` is writable in the lanes of `dst.mask` for `r < R`.
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize, const Q8: bool>(
        &self,
        g: usize,
        x: &Acts,
        r0: usize,
        dst: Dst,
    ) {
        let nb = self.blocks;
        let lpb = lines_per_block(if Q8 { BlockKind::Q8_0 } else { BlockKind::Q4_1 });
        let mask = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); R];
        // Group `g`'s lines: `nb · lpb` of them from line `g · nb · lpb`, inside `self.lines`.
        let lines = self.lines[g * nb * lpb..].as_ptr().cast::<u8>();
        let (xq, xd, xs, xo) = (x.qs.as_ptr(), x.d.as_ptr(), x.s.as_ptr(), x.offset.as_ptr());
        for b in 0..nb {
            // SAFETY: block `b < nb` of the group is its `lpb` 64-byte aligned lines at
            // `b · lpb · 64` bytes (the scale line, then the quads): the aligned loads read
            // inside them (the 32-byte halves of the scale line are aligned too); the
            // prefetches use wrapping arithmetic and never fault.
            let (d, m, w) = unsafe {
                let p = lines.add(b * lpb * 64);
                for l in 0..lpb {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add((AHEAD * lpb + l) * 64).cast());
                }
                let d = _mm512_cvtph_ps(_mm256_load_si256(p.cast()));
                let m = _mm512_cvtph_ps(_mm256_load_si256(p.add(32).cast()));
                // Line `t` meets activation quad `t` (weights `4t..4t+4`).
                let mut w = [_mm512_setzero_si512(); 8];
                if Q8 {
                    for (t, w) in w.iter_mut().enumerate() {
                        *w = _mm512_load_si512(p.add(64 * (1 + t)).cast());
                    }
                } else {
                    for t in 0..4 {
                        let raw = _mm512_load_si512(p.add(64 * (1 + t)).cast());
                        w[t] = _mm512_and_si512(raw, mask);
                        w[4 + t] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
                    }
                }
                (d, m, w)
            };
            for (r, a) in acc.iter_mut().enumerate() {
                let i = (r0 + r) * nb + b;
                // SAFETY: block `i` (`b` of row `r0 + r < x.rows`) lies in `x.qs` (32 bytes:
                // eight quads, read unaligned) and has a value in `x.d`, `x.s` and `x.offset`
                // (the `# Safety` shapes).
                unsafe {
                    let q = xq.add(i * QK).cast::<i32>();
                    let mut s0 = _mm512_setzero_si512();
                    let mut s1 = _mm512_setzero_si512();
                    for t in 0..4 {
                        let x0 = _mm512_set1_epi32(q.add(t).read_unaligned());
                        let x1 = _mm512_set1_epi32(q.add(4 + t).read_unaligned());
                        s0 = _mm512_dpbusd_epi32(s0, w[t], x0);
                        s1 = _mm512_dpbusd_epi32(s1, w[4 + t], x1);
                    }
                    let mut isum = _mm512_add_epi32(s0, s1);
                    if Q8 {
                        isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(*xo.add(i)));
                    }
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(*xd.add(i)));
                    *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, *a);
                    if !Q8 {
                        *a = _mm512_fmadd_ps(m, _mm512_set1_ps(*xs.add(i)), *a);
                    }
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: row `r < R` of `dst` is writable in the lanes of `dst.mask` (the
            // `# Safety` contract); the masked store touches no other lane.
            unsafe { _mm512_mask_storeu_ps(dst.at.add(r * dst.stride), dst.mask, *a) };
        }
    }
}

/// Where a kernel stores its `R × 16` results: row `r` at `at + r · stride`, lanes in `mask`.
#[derive(Clone, Copy)]
struct Dst {
    at: *mut f32,
    stride: usize,
    mask: __mmask16,
}

/// The output buffer, shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: `Out` is only a pointer to `Packed::matmul`'s output, which outlives its tasks; each
// task writes only the columns of its own groups, so sending the pointer to another thread
// races with no other access.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: tasks share `&Out` only to copy the pointer out, and write disjoint
// columns through it.
unsafe impl Sync for Out {}

impl Out {
    fn get(self) -> *mut f32 {
        self.0
    }
}
