//! The kernels against a plain f32 reference (weights dequantised, activations not
//! quantised), on random data with ragged shapes, on the AVX2 and the portable path and in the layout
//! prepared for this CPU (AVX-512 VNNI where it has it).
//!
//! Tolerance: quantising an activation block to 8 bits moves each value by at most
//! `d/2 = max|x|/254`, so by Cauchy-Schwarz `|y - y_ref| ≤ ‖w‖·‖e‖` with
//! `‖e‖² ≤ Σ_blocks 32·(d/2)²`. Each output is checked against that bound (plus 1e-4
//! relative for f32 sums), and the RMS error over all outputs against 5% of the RMS output
//! (random data with 8x outliers gives about 3%: block scales follow the outliers).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::testing::TestRng;

/// f32 to f16 bits (normal range, truncating): enough for test scales.
fn f16_bits(v: f32) -> [u8; 2] {
    let b = v.to_bits();
    let sign = (b >> 16) & 0x8000;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    assert!((1..31).contains(&exp), "{v} out of f16's normal range");
    ((sign | ((exp as u32) << 10) | ((b >> 13) & 0x3ff)) as u16).to_le_bytes()
}

fn random_blocks(kind: BlockKind, rows: usize, cols: usize, g: &mut TestRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rows * cols / blocks::QK {
        let d = 0.001 + 0.05 * g.f().abs();
        out.extend_from_slice(&f16_bits(d));
        match kind {
            BlockKind::Q4_1 => {
                out.extend_from_slice(&f16_bits(-(0.01 + 0.4 * g.f().abs())));
                out.extend((0..16).map(|_| g.next_u32() as u8));
            }
            BlockKind::Q8_0 => out.extend((0..32).map(|_| (g.next_u32() % 255) as u8 ^ 0x80)),
        }
    }
    out
}

/// The path a prepared layer's `forward` takes on this CPU.
fn prepared_path(layer: &QLinear) -> &'static str {
    match &layer.w {
        #[cfg(target_arch = "x86_64")]
        Weights::Packed(_) => "avx512-vnni",
        Weights::Blocks(..) if blocks::has_simd() => "avx2+fma+f16c",
        _ => "portable",
    }
}

fn check(kind: BlockKind, rows: usize, cols: usize, n: usize, seed: u64) {
    let mut g = TestRng::new(seed);
    let blocks = random_blocks(kind, rows, cols, &mut g);
    // Activations with a few outliers, as real ones have.
    let x: Vec<f32> = (0..n * cols)
        .map(|i| g.f() * if i % 37 == 0 { 8.0 } else { 1.0 })
        .collect();
    let rb = cols / blocks::QK * kind.bytes();
    let mut w = vec![0.0; rows * cols];
    for (j, wr) in w.chunks_exact_mut(cols).enumerate() {
        blocks::dequantize_row(kind, &blocks[j * rb..(j + 1) * rb], wr);
    }
    let acts = Acts::quantize(&x, n, cols);
    // Prepared: on a CPU with AVX-512 VNNI, the repacked layout and its kernels.
    let layer = QLinear::from_blocks(kind, blocks.clone(), rows, cols).prepare();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let pooled = pool.install(|| layer.forward(&x, n).unwrap());
    // The block kernels' AVX2 path is forced here (`simd`), whatever else the CPU has.
    let case = format!("{kind:?} {rows}x{cols} n={n}");
    let fast = crate::kernels::report_path(
        &format!("{case}, block kernels"),
        "avx2+fma+f16c",
        blocks::has_simd(),
    );
    println!(
        "{case}, prepared layer: checked its {} path",
        prepared_path(&layer)
    );
    for simd in [false, true] {
        let path = if simd && fast {
            "avx2+fma+f16c"
        } else {
            "portable"
        };
        let mut t = vec![0.0; rows * n];
        blocks::matmul_t(kind, &blocks, &acts, &mut t, simd);
        let (mut err2, mut ref2) = (0.0f64, 0.0f64);
        for r in 0..n {
            let xr = &x[r * cols..(r + 1) * cols];
            let e2: f64 = xr
                .chunks(32)
                .map(|b| {
                    let d = b.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                    32.0 * (d / 2.0) * (d / 2.0)
                })
                .sum();
            for j in 0..rows {
                let wr = &w[j * cols..(j + 1) * cols];
                let want: f64 = wr.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum();
                let wn = wr.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                let got = t[j * n + r] as f64;
                let bound = wn * e2.sqrt() + 1e-4 * (want.abs() + 1.0);
                assert!(
                    (got - want).abs() <= bound,
                    "{case} {path} [{r},{j}]: {got} vs {want} (bound {bound})"
                );
                // The pooled layer (any path) agrees with this path up to f32 rounding.
                let p = pooled[r * rows + j] as f64;
                assert!(
                    (p - got).abs() <= 1e-4 * (got.abs() + 1.0),
                    "{case}: prepared {p} vs {path} {got}"
                );
                err2 += (got - want).powi(2);
                ref2 += want * want;
            }
        }
        let rel = (err2 / ref2).sqrt();
        assert!(rel < 0.05, "{case} {path}: relative RMS error {rel}");
    }
}

#[test]
fn q4_1_matches_the_f32_reference() {
    for (i, &(rows, cols, n)) in [
        (1, 32, 1),
        (37, 96, 1),
        (65, 576, 3),
        (130, 64, 9),
        (17, 1536, 5),
    ]
    .iter()
    .enumerate()
    {
        check(BlockKind::Q4_1, rows, cols, n, 7 + i as u64);
    }
}

#[test]
fn q8_0_matches_the_f32_reference() {
    for (i, &(rows, cols, n)) in [(1, 32, 1), (41, 160, 2), (200, 576, 1), (33, 64, 7)]
        .iter()
        .enumerate()
    {
        check(BlockKind::Q8_0, rows, cols, n, 99 + i as u64);
    }
}

/// A prepared layer gives each activation row the same bits whatever rows share its
/// batch (seeded sampling depends on it), and dequantises embedding rows exactly.
#[test]
fn prepared_layers_are_batch_invariant_and_dequantise_exactly() {
    #[cfg(target_arch = "x86_64")]
    if vnni::available() {
        let layer = QLinear::from_blocks(BlockKind::Q4_1, vec![0; 20], 1, 32).prepare();
        assert!(
            matches!(layer.w, Weights::Packed(_)),
            "VNNI layout not chosen"
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (i, kind) in [BlockKind::Q4_1, BlockKind::Q8_0].into_iter().enumerate() {
        let (rows, cols, n) = (53, 192, 13);
        let mut g = TestRng::new(21 + i as u64);
        let blocks = random_blocks(kind, rows, cols, &mut g);
        let layer = QLinear::from_blocks(kind, blocks.clone(), rows, cols).prepare();
        println!(
            "{kind:?} batch invariance and rows: checked the prepared layer's {} path",
            prepared_path(&layer)
        );
        let x: Vec<f32> = (0..n * cols).map(|_| g.f()).collect();
        let all = pool.install(|| layer.forward(&x, n).unwrap());
        for r in [0, 5, n - 1] {
            let alone = pool
                .install(|| layer.forward(&x[r * cols..(r + 1) * cols], 1))
                .unwrap();
            assert_eq!(
                &all[r * rows..(r + 1) * rows],
                &alone[..],
                "{kind:?} row {r}"
            );
            let three = &x[r.saturating_sub(2) * cols..(r.saturating_sub(2) + 3) * cols];
            let three = pool.install(|| layer.forward(three, 3)).unwrap();
            let at = r - r.saturating_sub(2);
            assert_eq!(
                &all[r * rows..(r + 1) * rows],
                &three[at * rows..(at + 1) * rows],
                "{kind:?} row {r} in a batch of 3"
            );
        }
        let rb = cols / blocks::QK * kind.bytes();
        for j in [0, 16, 17, rows - 1] {
            let mut want = vec![0.0; cols];
            blocks::dequantize_row(kind, &blocks[j * rb..(j + 1) * rb], &mut want);
            let mut got = vec![0.0; cols];
            layer.row(j, &mut got).unwrap();
            assert_eq!(got, want, "{kind:?} row {j}");
        }
    }
}

/// The vectorised activation quantiser is bit for bit the portable one, ties included
/// (rounded half away from zero).
#[test]
fn quantised_activations_match_the_portable_loop() {
    #[cfg(target_arch = "x86_64")]
    let fast = crate::kernels::acts::has_avx512_bw();
    #[cfg(not(target_arch = "x86_64"))]
    let fast = false;
    // Without the vector quantiser both sides are the portable loop, and the values expected
    // at the end are the oracle.
    crate::kernels::report_path("activation quantiser", "avx512f+bw", fast);
    let mut g = TestRng::new(5);
    let mut x: Vec<f32> = (0..64 * 9).map(|_| g.f() * 3.0).collect();
    // Blocks whose scale is exactly 1, with values on and next to the ties.
    for (i, v) in [
        127.0,
        2.5,
        -2.5,
        3.5,
        -3.5,
        0.5,
        -0.5,
        0.499_999_97,
        1.5,
        -126.5,
    ]
    .iter()
    .enumerate()
    {
        x[i] = *v;
    }
    x[64..96].fill(0.0);
    let fast = Acts::quantize(&x, 9, 64);
    let mut slow = Acts::quantize(&x, 9, 64);
    slow.qs.fill(0);
    crate::kernels::acts::quantize_body(&x, &mut slow);
    assert_eq!(fast.qs, slow.qs);
    assert_eq!(fast.d, slow.d);
    assert_eq!(fast.s, slow.s);
    assert_eq!(fast.offset, slow.offset);
    assert_eq!(&fast.qs[..10], &[127, 3, -3, 4, -4, 1, -1, 0, 2, -127]);
}

#[test]
fn f16_conversion_matches_known_values() {
    for (bits, want) in [
        (0x3c00u16, 1.0f32),
        (0xc000, -2.0),
        (0x3555, 0.333_251_95),
        (0x0001, 5.960_464_5e-8),
        (0x7bff, 65504.0),
        (0x0000, 0.0),
    ] {
        assert_eq!(blocks::f16_to_f32(bits), want, "{bits:#x}");
    }
}

#[test]
fn concat_stacks_rows() {
    let mut g = TestRng::new(3);
    let a = random_blocks(BlockKind::Q4_1, 3, 64, &mut g);
    let b = random_blocks(BlockKind::Q4_1, 2, 64, &mut g);
    let la = QLinear::from_blocks(BlockKind::Q4_1, a, 3, 64);
    let lb = QLinear::from_blocks(BlockKind::Q4_1, b, 2, 64);
    let x: Vec<f32> = (0..128).map(|_| g.f()).collect();
    let (ya, yb) = (la.forward(&x, 2).unwrap(), lb.forward(&x, 2).unwrap());
    let both = QLinear::concat(vec![la, lb]).unwrap();
    assert_eq!(both.rows, 5);
    let y = both.forward(&x, 2).unwrap();
    for r in 0..2 {
        assert_eq!(&y[r * 5..r * 5 + 3], &ya[r * 3..r * 3 + 3]);
        assert_eq!(&y[r * 5 + 3..r * 5 + 5], &yb[r * 2..r * 2 + 2]);
    }
}
