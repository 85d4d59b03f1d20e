//! The KV cache of one sequence: keys and values of every layer, stored `f16` (as llama.cpp's
//! are by default; at 8 sequences of a few hundred positions the cache is as large as the
//! weights, and attention is bound by reading it), KV head by KV head.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Positions per key tile.
pub const TILE: usize = 16;

/// Keys and values of one layer of one sequence, KV head by KV head: the attention of one
/// KV head reads two contiguous runs of memory, which the hardware prefetches well (at a few
/// hundred positions the caches of 8 sequences no longer fit in the L3 cache).
///
/// Values are stored position after position (`[pos][head_dim]`), for the weighted sum. Keys
/// are stored transposed in tiles of [`TILE`] positions (`[tile][head_dim][TILE]`): one 32-byte
/// run holds one key component at 16 positions, so a vector of scores is a chain of FMAs with
/// no horizontal sums. Lanes of the last tile past [`LayerKv::len`] hold stale or later keys
/// and are never read as scores.
#[derive(Debug, Default)]
pub struct LayerKv {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    head_dim: usize,
    len: usize,
}

impl LayerKv {
    /// Appends one position's keys and values (`n_kv_head · head_dim` each), growing the
    /// storage `chunk` positions at a time.
    pub fn push(&mut self, k: &[f32], v: &[f32], head_dim: usize, chunk: usize) {
        assert!(
            v.len() == k.len() && head_dim > 0 && k.len().is_multiple_of(head_dim),
            "key and value sizes"
        );
        if self.k.is_empty() {
            self.k.resize_with(k.len() / head_dim, Vec::new);
            self.v.resize_with(k.len() / head_dim, Vec::new);
            self.head_dim = head_dim;
        }
        assert!(
            self.head_dim == head_dim && self.k.len() * head_dim == k.len(),
            "KV heads changed"
        );
        let (tile, lane) = (self.len / TILE, self.len % TILE);
        let chunk = chunk.next_multiple_of(TILE);
        for (h, (kh, vh)) in k
            .chunks_exact(head_dim)
            .zip(v.chunks_exact(head_dim))
            .enumerate()
        {
            let keys = &mut self.k[h];
            if lane == 0 {
                let end = (tile + 1) * head_dim * TILE;
                if end > keys.capacity() {
                    keys.reserve_exact(chunk * head_dim + end - keys.len());
                }
                keys.resize(end, f16::ZERO);
            }
            let keys = &mut keys[tile * head_dim * TILE..];
            for (c, x) in kh.iter().enumerate() {
                keys[c * TILE + lane] = f16::from_f32(*x);
            }
            let values = &mut self.v[h];
            if values.len() + head_dim > values.capacity() {
                values.reserve_exact(chunk * head_dim);
            }
            let at = values.len();
            values.resize(at + head_dim, f16::ZERO);
            values[at..].convert_from_f32_slice(vh);
        }
        self.len += 1;
    }

    /// Drops positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            let head_dim = self.head_dim;
            self.len = len;
            for (k, v) in self.k.iter_mut().zip(&mut self.v) {
                k.truncate(len.div_ceil(TILE) * head_dim * TILE);
                v.truncate(len * head_dim);
            }
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// KV head `h`'s key tiles, `[tile][head_dim][TILE]` (empty before the first push).
    pub fn keys(&self, h: usize) -> &[f16] {
        self.k.get(h).map_or(&[], |k| k.as_slice())
    }

    /// KV head `h`'s values, `[pos][head_dim]` (empty before the first push).
    pub fn values(&self, h: usize) -> &[f16] {
        self.v.get(h).map_or(&[], |v| v.as_slice())
    }
}

/// Shapes of attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// The factor of the scores `q · k`: usually `1/√head_dim`.
    pub scale: f32,
}
