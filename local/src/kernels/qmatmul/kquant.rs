//! K-quant weights in layouts the engine's kernels run.
//!
//! Q4_K (ggml's super-block of 256 weights: `f16 d, f16 dmin`, twelve bytes packing eight 6-bit
//! scales and eight 6-bit mins, 128 bytes of nibbles) is eight 32-weight sub-blocks, each
//! `w = d·sc·q − dmin·m` with `q` in `0..16`: exactly a Q4_1 block (`w = d'·q + m'`) with
//! `d' = d·sc` and `m' = −dmin·m`. [`q4k_to_q4_1`] rewrites it so, losing only the rounding of
//! `d'` and `m'` to `f16` (a relative 2⁻¹¹ of each sub-block's scale, far below the 8-bit
//! activations' own rounding); the weights keep Q4_1's speed and take 5 bits each instead of
//! 4.5. The other K-quants (Q2_K, Q3_K, Q5_K, Q6_K) have no such twin here and are
//! re-quantised to Q8_0 at load when the engine is asked to (see `QLinear::load`).

use super::blocks::QK;

/// Weights in a Q4_K super-block.
pub const QK_K: usize = 256;
/// Bytes of one Q4_K super-block.
pub const Q4K_BYTES: usize = 2 + 2 + 12 + QK_K / 2;
/// Bytes of one Q4_1 block.
const Q4_1_BYTES: usize = 2 + 2 + QK / 2;

/// The `j`-th 6-bit scale and min of a Q4_K super-block's packed twelve bytes (ggml's
/// `get_scale_min_k4`).
fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn f16_le(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Q4_K blocks (`bytes.len()` a multiple of [`Q4K_BYTES`]) as Q4_1 blocks of the same weights,
/// in the same order.
pub fn q4k_to_q4_1(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / Q4K_BYTES * (QK_K / QK) * Q4_1_BYTES);
    for sb in bytes.chunks_exact(Q4K_BYTES) {
        let (d, dmin) = (f16_le(&sb[0..2]), f16_le(&sb[2..4]));
        let scales = &sb[4..16];
        let qs = &sb[16..];
        // 64 weights per 32 bytes of nibbles: the low nibbles are sub-block 2i, the high 2i+1.
        for (i, q) in qs.chunks_exact(32).enumerate() {
            for (half_, shift) in [(0usize, 0u8), (1, 4)] {
                let (sc, m) = scale_min(2 * i + half_, scales);
                let d1 = half::f16::from_f32(d * f32::from(sc));
                let m1 = half::f16::from_f32(-dmin * f32::from(m));
                out.extend_from_slice(&d1.to_le_bytes());
                out.extend_from_slice(&m1.to_le_bytes());
                // Q4_1 packs weight k in the low nibble of byte k and weight k+16 in its high.
                for k in 0..QK / 2 {
                    let lo = (q[k] >> shift) & 0xF;
                    let hi = (q[k + QK / 2] >> shift) & 0xF;
                    out.push(lo | (hi << 4));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::kernels::blocks::{dequantize_row, BlockKind};
    use crate::testing::TestRng;

    /// Candle quantises random weights to Q4_K; the repacked Q4_1 blocks dequantise to what
    /// candle dequantises the Q4_K blocks to, within the `f16` rounding of each sub-block's
    /// scale and min.
    #[test]
    fn q4k_repacked_as_q4_1_dequantises_as_candle_does() {
        let (rows, cols) = (8, 2 * QK_K);
        let mut g = TestRng::new(11);
        // Rows of different magnitudes and offsets, so scales and mins both vary.
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| g.f() * (1.0 + (i / cols) as f32) * 0.02 + 0.01 * ((i / 32) % 3) as f32)
            .collect();
        let t = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q4K).unwrap();
        let theirs: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let raw = q.data().unwrap().into_owned();
        assert_eq!(raw.len(), rows * cols / QK_K * Q4K_BYTES);
        let repacked = q4k_to_q4_1(&raw);
        let row_bytes = cols / QK * BlockKind::Q4_1.bytes();
        assert_eq!(repacked.len(), rows * row_bytes);
        let mut ours = vec![0.0; rows * cols];
        for (o, b) in ours
            .chunks_exact_mut(cols)
            .zip(repacked.chunks_exact(row_bytes))
        {
            dequantize_row(BlockKind::Q4_1, b, o);
        }
        let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("Q4_K -> Q4_1: largest difference {worst:e}, weights up to {scale:.3}");
        assert!(
            worst <= scale * 2e-3,
            "{worst} against weights up to {scale}"
        );
        // Not trivially equal because everything is zero.
        assert!(scale > 0.1, "{scale}");
    }

    #[test]
    fn scale_min_unpacks_the_high_bits_of_the_last_four() {
        // Sub-block 5: scale = low nibble of byte 9 | top two bits of byte 1 << 4,
        // min = high nibble of byte 9 | top two bits of byte 5 << 4.
        let mut q = [0u8; 12];
        q[1] = 0b1100_0000;
        q[5] = 0b0100_0000;
        q[9] = 0x5A;
        assert_eq!(scale_min(5, &q), (0xA | (3 << 4), 0x5 | (1 << 4)));
        q[2] = 0x3F | 0x40;
        q[6] = 0x21;
        assert_eq!(scale_min(2, &q), (0x3F, 0x21));
    }
}
