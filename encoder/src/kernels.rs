//! The element-wise kernels of the fused encoder: GELU (erf form), softmax, layer norm.
//!
//! Each is written once as plain scalar Rust and compiled twice: with AVX2 + FMA enabled (chosen
//! at run time when the CPU has them; the loops then vectorise 8-wide) and as the portable
//! fallback. `exp` is a branch-free polynomial (range reduction to `2^n · e^r`, |r| ≤ ln2/2,
//! degree-6 Taylor, relative error ≤ 1e-6) so that the loops vectorise at all: the libm call
//! would not.

/// `e^x` for `x` in `[-87, 88]` (clamped outside), vectorisable.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // ln 2 split in two (Cody-Waite) so that `n · LN2_HI` is exact and `r` keeps its precision.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Horner form of 1 + r + r²/2! + … + r⁶/6!.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n by building the float's exponent; n is in [-126, 127] after the clamp.
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `erf(x)` (Abramowitz & Stegun 7.1.26, absolute error ≤ 1.5e-7), vectorisable.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    sign * (1.0 - poly * exp(-a * a))
}

#[inline(always)]
fn gelu_body(xs: &mut [f32]) {
    const INV_SQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * INV_SQRT2));
    }
}

#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[inline(always)]
fn layer_norm_body(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * inv * g + b;
    }
}

/// Defines `pub fn $name` that runs `$body` with AVX2 + FMA when the CPU has them.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $fast:ident, ($($arg:ident: $ty:ty),*), $body:ident) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_avx2_fma() {
                // SAFETY: `$fast` is safe Rust whose only requirement is its target features,
                // and `has_avx2_fma()` just found AVX2 and FMA on this CPU at run time.
                unsafe { $fast($($arg),*) };
                return;
            }
            $body($($arg),*)
        }

        /// The same body compiled with AVX2 + FMA (callers check the CPU has them).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $fast($($arg: $ty),*) {
            $body($($arg),*)
        }
    };
}

/// Whether the CPU has AVX2 and FMA (detected once by std, then cached).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The vector paths this CPU runs, best first (`"portable"` alone where it has none of them),
/// for tests and benchmarks to say which code they measured: `avx512f` (the matmul's f16
/// panels), `avx2+fma` (the f32 panels, these element-wise kernels and the heads' dense
/// layers), and the portable code every CPU runs.
pub fn simd_paths() -> Vec<&'static str> {
    let mut paths = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if crate::matmul::has_avx512() {
            paths.push("avx512f");
        }
        if has_avx2_fma() {
            paths.push("avx2+fma");
        }
    }
    paths.push("portable");
    paths
}

dispatch!(
    /// `x · Φ(x)` in place (BERT's exact GELU).
    gelu, gelu_avx2, (xs: &mut [f32]), gelu_body
);
dispatch!(
    /// Softmax of one row in place.
    softmax, softmax_avx2, (row: &mut [f32]), softmax_body
);
dispatch!(
    /// Layer norm of one row in place.
    layer_norm, layer_norm_avx2, (row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32), layer_norm_body
);

/// For the kernel tests: prints whether `test` checked the `fast` path (one of
/// [`simd_paths`]) besides the portable one, or the portable path only because this CPU lacks
/// it; returns whether the CPU runs `fast`.
#[cfg(test)]
pub(crate) fn report_path(test: &str, fast: &str) -> bool {
    let paths = simd_paths();
    let runs = paths.contains(&fast);
    if runs {
        println!("{test}: checked the {fast} path and the portable path (CPU paths: {paths:?})");
    } else {
        println!(
            "{test}: this CPU lacks {fast}: checked the portable path only (CPU paths: {paths:?})"
        );
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp` and `erf` are the scalar bodies the kernels inline; called here they run as
    /// compiled for the portable path.
    #[test]
    fn exp_matches_std_across_its_range() {
        println!("exp: checked the scalar polynomial as compiled for the portable path");
        let mut worst: f32 = 0.0;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.013;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }

    #[test]
    fn erf_matches_reference_values() {
        println!("erf: checked the scalar polynomial as compiled for the portable path");
        // erf(0.5), erf(1), erf(2) to 7 digits.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
        ] {
            assert!((erf(x) - want).abs() < 5e-7, "erf({x}) = {}", erf(x));
        }
    }

    type Norm = fn(&mut [f32], &[f32], &[f32], f32);

    /// The portable bodies, then the dispatched kernels (AVX2 + FMA where the CPU has them).
    #[test]
    fn gelu_softmax_and_norm_agree_with_plain_formulas() {
        let fast = report_path("gelu, softmax, layer_norm", "avx2+fma");
        let dispatched = if fast { "avx2+fma" } else { "portable" };
        check("portable", gelu_body, softmax_body, layer_norm_body);
        check(dispatched, gelu, softmax, layer_norm);
    }

    fn check(path: &str, gelu: fn(&mut [f32]), softmax: fn(&mut [f32]), layer_norm: Norm) {
        let mut xs = vec![-3.0f32, -1.0, -0.1, 0.0, 0.7, 2.5, 4.0];
        let want: Vec<f32> = xs
            .iter()
            .map(|&x| 0.5 * x * (1.0 + erf_slow(x / std::f32::consts::SQRT_2)))
            .collect();
        gelu(&mut xs);
        for (got, want) in xs.iter().zip(&want) {
            assert!((got - want).abs() < 1e-5, "{path}: {got} vs {want}");
        }
        let mut tails = vec![-9.0f32, 9.0];
        gelu(&mut tails);
        assert!(
            tails[0].abs() < 1e-6 && (tails[1] - 9.0).abs() < 1e-6,
            "{path}: {tails:?}"
        );

        let mut row = vec![1.0f32, 2.0, 3.0, -1.0];
        softmax(&mut row);
        let z: f32 = [1.0f32, 2.0, 3.0, -1.0].iter().map(|x| x.exp()).sum();
        assert!((row[2] - 3.0f32.exp() / z).abs() < 1e-6, "{path}: {row:?}");
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-6,
            "{path}: {row:?}"
        );

        let mut row = vec![1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &[1.0; 4], &[0.5; 4], 1e-12);
        let sd = 1.25f32.sqrt();
        assert!((row[0] - (0.5 - 1.5 / sd)).abs() < 1e-5, "{path}: {row:?}");
        assert!((row[3] - (0.5 + 1.5 / sd)).abs() < 1e-5, "{path}: {row:?}");
    }

    /// erf by its Taylor series (slow, accurate for |x| < 4).
    fn erf_slow(x: f32) -> f32 {
        let x = f64::from(x);
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / f64::from(n);
            sum += term / f64::from(2 * n + 1);
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
    }
}
