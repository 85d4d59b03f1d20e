//! Grouped-query attention over the `f16` KV cache with AVX-512 (head sizes 64 and 128).
//!
//! For one KV head and the query heads that share it, over a span of positions from the start
//! of a key tile (a sliding window's first positions in that tile get no weight):
//! - scores a tile of 16 positions at a time: the keys are stored transposed
//!   ([`crate::kv::LayerKv`]), so each key component is one vector of 16 positions, widened
//!   to `f32` once and multiplied by that component of every query head (broadcast from
//!   memory): chains of FMAs, no horizontal sums;
//! - the softmax's `exp` is a vectorised polynomial (range reduction to `2^n · e^r`, `scalef`
//!   for the `2^n`);
//! - the weighted sum of value rows widens each row once for up to `16 / C` query heads.

use std::arch::x86_64::*;

use super::attend::Span;
use super::avx512::exp;
use crate::kv::{Heads, LayerKv, TILE};

/// Runs [`super::attend::attend`]'s work when the CPU and the head size allow; returns whether
/// it did. `scores` must hold `group` rows of `span.len` rounded up to whole tiles; `kv` must
/// hold the span's positions of this head size (all asserted here).
pub(crate) fn attend(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    span: Span,
    h: Heads,
    scores: &mut [f32],
    out: &mut [f32],
) -> bool {
    let hd = h.head_dim;
    if !super::avx512::available() || !matches!(hd, 64 | 128) {
        return false;
    }
    // What the kernels read and write, checked here so that their pointers stay in bounds
    // whatever the caller checked.
    let group = q.len() / hd;
    let Span { first, skip, len } = span;
    assert!(
        q.len() == group * hd
            && out.len() == q.len()
            && first.is_multiple_of(TILE)
            && skip < len
            && scores.len() >= group * len.next_multiple_of(TILE)
            && kv.keys(kv_head).len() >= (first + len).div_ceil(TILE) * hd * TILE
            && kv.values(kv_head).len() >= (first + len) * hd,
        "attention shapes"
    );
    // SAFETY: `available()` found AVX-512F at run time, `hd` is `16 · C` for the `C` called,
    // and the shapes `heads` asks for were asserted just above.
    unsafe {
        match hd {
            64 => heads::<4>(q, kv, kv_head, span, h.scale, scores, out),
            _ => heads::<8>(q, kv, kv_head, span, h.scale, scores, out),
        }
    }
    true
}

/// Head size `16 · C`.
///
/// # Safety
/// `q` and `out` hold `group · 16C` values; `scores` at least `group` rows of
/// `span.len.next_multiple_of(16)`; `span.first` is a multiple of 16 and `span.skip <
/// span.len`; KV head `kv_head` of `kv` holds at least `(span.first + span.len).div_ceil(16)`
/// whole key tiles and `span.first + span.len` value rows of head size `16C`. The CPU must
/// support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn heads<const C: usize>(
    q: &[f32],
    kv: &LayerKv,
    kv_head: usize,
    span: Span,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = 16 * C;
    let group = q.len() / hd;
    let Span { first, skip, len } = span;
    let stride = len.next_multiple_of(TILE);
    // Key tile `first / 16` on (`first · hd` values in, as `first` is a multiple of 16), and
    // value row `first + skip` on: where the window starts.
    let keys = kv.keys(kv_head)[first * hd..].as_ptr().cast::<u16>();
    let values = kv.values(kv_head)[(first + skip) * hd..]
        .as_ptr()
        .cast::<u16>();
    let (q, s, o) = (q.as_ptr(), scores.as_mut_ptr(), out.as_mut_ptr());
    let mut g = 0;
    while g < group {
        let n = (group - g).min(4);
        // SAFETY: heads `g..g + n` (`n <= group - g`) of `q` and their score rows (`stride`
        // apart, whole tiles) lie inside `q` and `scores`, and the keys from `first` on hold
        // the `len.div_ceil(16)` tiles `scores_for` reads (the `# Safety` shapes).
        unsafe {
            let (q, s) = (q.add(g * hd), s.add(g * stride));
            match n {
                1 => scores_for::<1>(keys, len, hd, scale, q, s, stride),
                2 => scores_for::<2>(keys, len, hd, scale, q, s, stride),
                3 => scores_for::<3>(keys, len, hd, scale, q, s, stride),
                _ => scores_for::<4>(keys, len, hd, scale, q, s, stride),
            }
        }
        g += n;
    }
    // The window: positions `skip..len` of the span, `len - skip >= 1` of them.
    let kept = len - skip;
    let mut inv = [0f32; 4];
    let mut g = 0;
    while g < group {
        // Accumulators: `G · C` of them, at most 16.
        let n = (group - g).min(16 / C).min(4);
        // SAFETY: score rows `g..g + n` lie inside `scores` and hold `len` scores each
        // (written above), of which `skip..len` are read; heads `g..g + n` of `out` lie
        // inside it; the values from row `first + skip` on hold `kept` rows of `16C` (the
        // `# Safety` shapes).
        unsafe {
            for (i, inv) in inv.iter_mut().enumerate().take(n) {
                *inv = 1.0 / softmax_unnormalised(s.add((g + i) * stride + skip), kept);
            }
            let (p, out) = (s.add(g * stride + skip), o.add(g * hd));
            match n {
                1 => weighted::<C, 1>(values, kept, p, stride, &inv, out),
                2 => weighted::<C, 2>(values, kept, p, stride, &inv, out),
                3 => weighted::<C, 3>(values, kept, p, stride, &inv, out),
                _ => weighted::<C, 4>(values, kept, p, stride, &inv, out),
            }
        }
        g += n;
    }
}

/// Scores of `G` query heads (`q`, `hd` apart) at positions `0..len` of `keys`, times `scale`,
/// into rows `stride` apart (whole tiles: lanes past `len` are written too).
///
/// # Safety
/// `keys` points at `len.div_ceil(16)` key tiles of `hd × 16` `f16` bits; `q` at `G` heads of
/// `hd` (even) readable `f32`, `hd` apart; `s` at `G` rows of `len.next_multiple_of(16)`
/// writable `f32`, `stride` apart. The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scores_for<const G: usize>(
    keys: *const u16,
    len: usize,
    hd: usize,
    scale: f32,
    q: *const f32,
    s: *mut f32,
    stride: usize,
) {
    let scale = _mm512_set1_ps(scale);
    for t in 0..len.div_ceil(TILE) {
        // SAFETY: tile `t < len.div_ceil(16)` of the keys holds rows `c < hd` of 16 `f16`
        // (unaligned loads); `c + 1 < hd` as `hd` is even, so `qg` and `qg.add(1)` are inside
        // head `g < G`; row `g` of `s` holds whole tiles, `t · 16 + 16` values included.
        unsafe {
            let tile = keys.add(t * hd * TILE);
            // Two chains per head (even and odd components) to overlap the FMAs' latency.
            let mut acc = [[_mm512_setzero_ps(); 2]; G];
            for c in (0..hd).step_by(2) {
                let k0 = _mm512_cvtph_ps(_mm256_loadu_si256(tile.add(c * TILE).cast()));
                let k1 = _mm512_cvtph_ps(_mm256_loadu_si256(tile.add((c + 1) * TILE).cast()));
                for (g, acc) in acc.iter_mut().enumerate() {
                    let qg = q.add(g * hd + c);
                    acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(*qg), k0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(_mm512_set1_ps(*qg.add(1)), k1, acc[1]);
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                let v = _mm512_mul_ps(_mm512_add_ps(acc[0], acc[1]), scale);
                _mm512_storeu_ps(s.add(g * stride + t * TILE), v);
            }
        }
    }
}

/// `out[g] = inv[g] · Σ_j p[g][j] · v[j]` for `G` heads (`p` rows `stride` apart, `out`
/// rows `16 · C` apart): each value row is widened once for all of them.
///
/// # Safety
/// `values` points at `len` rows of `16C` `f16` bits; `p` at `G` rows of `len` readable `f32`,
/// `stride` apart; `out` at `G` heads of `16C` writable `f32`, `16C` apart. The CPU must
/// support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn weighted<const C: usize, const G: usize>(
    values: *const u16,
    len: usize,
    p: *const f32,
    stride: usize,
    inv: &[f32; 4],
    out: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); C]; G];
    for j in 0..len {
        // SAFETY: row `j < len` of the values holds `16C` `f16` (unaligned 16-wide loads), and
        // row `g < G` of `p` holds `len` weights, `j` included.
        unsafe {
            let row = values.add(j * 16 * C);
            let mut v = [_mm512_setzero_ps(); C];
            for (c, v) in v.iter_mut().enumerate() {
                *v = _mm512_cvtph_ps(_mm256_loadu_si256(row.add(16 * c).cast()));
            }
            for (g, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*p.add(g * stride + j));
                for (a, v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_fmadd_ps(w, *v, *a);
                }
            }
        }
    }
    for (g, acc) in acc.iter().enumerate() {
        let inv = _mm512_set1_ps(inv[g]);
        for (c, a) in acc.iter().enumerate() {
            // SAFETY: head `g < G` of `out` holds `16C` values, `16c..16c + 16` included.
            unsafe { _mm512_storeu_ps(out.add(g * 16 * C + 16 * c), _mm512_mul_ps(*a, inv)) };
        }
    }
}

/// `p[j] = e^(p[j] - max p)` for `j < len`; returns their sum.
///
/// # Safety
/// `p` points at `len` readable and writable `f32`. The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn softmax_unnormalised(p: *mut f32, len: usize) -> f32 {
    let mask = |j: usize| -> __mmask16 {
        let left = len - j;
        if left >= 16 {
            0xffff
        } else {
            (1u16 << left) - 1
        }
    };
    let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
    for j in (0..len).step_by(16) {
        let m = mask(j);
        // SAFETY: `j < len`, and `m` enables only the lanes of `j..len`.
        let x = unsafe { _mm512_maskz_loadu_ps(m, p.add(j)) };
        max = _mm512_mask_max_ps(max, m, max, x);
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    let mut sum = _mm512_setzero_ps();
    for j in (0..len).step_by(16) {
        let m = mask(j);
        // SAFETY: as above, lanes `j..len` only, read and then written.
        let e = unsafe {
            let e = exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.add(j)), max));
            _mm512_mask_storeu_ps(p.add(j), m, e);
            e
        };
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    _mm512_reduce_add_ps(sum)
}
