//! One dense layer of a head and its matrix-vector product, the head's whole inference cost
//! (an ensemble of five 384-512-77 networks is about 1.2 M multiply-adds per request).
//!
//! The product is a dot product per output row with 32 independent accumulators, which the
//! compiler vectorises (a plain `sum` must keep the sequential order of float additions). On
//! CPUs with AVX2 + FMA the same code is compiled a second time for them: 8-wide vectors and
//! fused multiply-adds.

/// One dense layer, row-major `[out][in]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
}

impl Dense {
    /// `W · x + b`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = self.bias.clone();
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx2_fma() {
            // SAFETY: `forward_avx2` is safe Rust whose only requirement is its target
            // features, and `has_avx2_fma()` just found AVX2 and FMA on this CPU at run time.
            unsafe { forward_avx2(self, x, &mut out) };
            return out;
        }
        forward_portable(self, x, &mut out);
        out
    }
}

/// The largest `row · x` over `rows` (a head's stored training embeddings), with the same
/// vectorised dot product as [`Dense::forward`]; `None` without rows.
pub fn max_dot(rows: &[Vec<f32>], x: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx2_fma() {
        // SAFETY: `max_dot_avx2` is safe Rust whose only requirement is its target features,
        // and `has_avx2_fma()` just found AVX2 and FMA on this CPU at run time.
        return unsafe { max_dot_avx2(rows, x) };
    }
    max_dot_body(rows, x, |s, a, b| s + a * b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn max_dot_avx2(rows: &[Vec<f32>], x: &[f32]) -> Option<f32> {
    max_dot_body(rows, x, |s, a, b| a.mul_add(b, s))
}

#[inline(always)]
fn max_dot_body(rows: &[Vec<f32>], x: &[f32], fma: impl Fn(f32, f32, f32) -> f32) -> Option<f32> {
    rows.iter().map(|r| dot(r, x, &fma)).max_by(f32::total_cmp)
}

/// The product in plain Rust (what CPUs without AVX2 + FMA run).
fn forward_portable(layer: &Dense, x: &[f32], out: &mut [f32]) {
    forward_body(layer, x, out, |s, a, b| s + a * b);
}

/// The product compiled with AVX2 + FMA, fused (callers check the CPU has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(layer: &Dense, x: &[f32], out: &mut [f32]) {
    forward_body(layer, x, out, |s, a, b| a.mul_add(b, s));
}

/// `out += W · x`, with `fma(s, a, b) = s + a·b` (fused or not).
#[inline(always)]
fn forward_body(layer: &Dense, x: &[f32], out: &mut [f32], fma: impl Fn(f32, f32, f32) -> f32) {
    for (o, row) in out.iter_mut().zip(layer.weight.chunks_exact(layer.inputs)) {
        *o += dot(row, x, &fma);
    }
}

const LANES: usize = 32;

#[inline(always)]
fn dot(a: &[f32], b: &[f32], fma: &impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .fold(0.0, |s, (x, y)| fma(s, *x, *y));
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s = fma(*s, *x, *y);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_dot_is_the_largest_plain_product() {
        let rows: Vec<Vec<f32>> = (0..37)
            .map(|r| {
                (0..70)
                    .map(|i| ((r * 31 + i * 7) % 23) as f32 / 11.0 - 1.0)
                    .collect()
            })
            .collect();
        let x: Vec<f32> = (0..70).map(|i| (i % 5) as f32 / 4.0 - 0.5).collect();
        let plain = rows
            .iter()
            .map(|r| r.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::MIN, f32::max);
        crate::kernels::report_path("max_dot", "avx2+fma");
        let got = max_dot(&rows, &x).unwrap();
        assert!((got - plain).abs() < 1e-4, "dispatched: {got} vs {plain}");
        let portable = max_dot_body(&rows, &x, |s, a, b| s + a * b).unwrap();
        assert!(
            (portable - plain).abs() < 1e-4,
            "portable: {portable} vs {plain}"
        );
        assert_eq!(max_dot(&[], &x), None);
    }

    /// The portable product and the dispatched one (AVX2 + FMA where the CPU has them)
    /// against the plain sum.
    #[test]
    fn matches_the_plain_product_at_any_width() {
        let fast = crate::kernels::report_path("dense", "avx2+fma");
        let dispatched = if fast { "avx2+fma" } else { "portable" };
        for n in [1, 7, 8, 31, 32, 33, 384, 517] {
            let layer = Dense {
                weight: (0..3 * n).map(|i| (i as f32 * 0.37).sin()).collect(),
                bias: vec![0.5, -1.0, 2.0],
                inputs: n,
            };
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut portable = layer.bias.clone();
            forward_portable(&layer, &x, &mut portable);
            for (path, got) in [(dispatched, layer.forward(&x)), ("portable", portable)] {
                for (o, g) in got.iter().enumerate() {
                    let row = &layer.weight[o * n..(o + 1) * n];
                    let plain = layer.bias[o] + row.iter().zip(&x).map(|(w, v)| w * v).sum::<f32>();
                    assert!(
                        (g - plain).abs() < 1e-4,
                        "{path}: n = {n}, output {o}: {g} vs {plain}"
                    );
                }
            }
        }
    }
}
