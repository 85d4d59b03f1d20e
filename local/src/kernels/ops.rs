//! The f32 parts of the forward pass on plain slices: RMS norm, rotary embedding (GGUF's
//! interleaved pairs, or NeoX halves), SiLU gating (AVX-512 in [`super::avx512`] when the CPU
//! has it), GELU gating (Gemma) and dot products. Portable Rust that the compiler vectorises.

/// `out = x / rms(x) · w`, row by row.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let dim = w.len();
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / dim as f32 + eps).sqrt();
        for ((o, v), g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * inv * g;
        }
    }
}

/// Rotates the pairs `(x[2i], x[2i+1])` of every head of `x` by the angles of one position
/// (`cos`, `sin`: `head_dim / 2` values).
pub fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for ((p, c), s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (a, b) = (p[0], p[1]);
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

/// Rotates the pairs `(x[i], x[i + head_dim/2])` of every head of `x` (NeoX style: Qwen,
/// Phi-3, Gemma) by the angles of one position.
pub fn rope_halves(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        for (((a, b), c), s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
            let (x0, x1) = (*a, *b);
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    }
}

/// [`rms_norm`] of each `w.len()`-wide piece of `x`, in place (Qwen3's per-head norms).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let dim = w.len();
    for xr in x.chunks_exact_mut(dim) {
        let inv = 1.0 / (dot(xr, xr) / dim as f32 + eps).sqrt();
        for (v, g) in xr.iter_mut().zip(w) {
            *v *= inv * g;
        }
    }
}

/// `silu(g) · u` for rows `[g | u]` of `2 · ff` values; returns rows of `ff`.
pub fn silu_mul(gu: &[f32], ff: usize) -> Vec<f32> {
    let mut out = vec![0.0; gu.len() / 2];
    for (row, out) in gu.chunks_exact(2 * ff).zip(out.chunks_exact_mut(ff)) {
        let (g, u) = row.split_at(ff);
        #[cfg(target_arch = "x86_64")]
        if super::avx512::silu_mul(g, u, out) {
            continue;
        }
        silu_mul_portable(g, u, out);
    }
    out
}

/// `out[i] = silu(g[i]) · u[i]` in plain Rust (CPUs without AVX-512F).
pub(crate) fn silu_mul_portable(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// `gelu(g) · u` for rows `[g | u]` of `2 · ff` values (GELU's tanh approximation, as Gemma's
/// `gelu_pytorch_tanh`: `gelu(g) = g/2 · (1 + tanh(√(2/π) · (g + 0.044715 g³)))`); returns
/// rows of `ff`.
pub fn gelu_mul(gu: &[f32], ff: usize) -> Vec<f32> {
    const C: f32 = 0.797_884_6; // √(2/π)
    let mut out = vec![0.0; gu.len() / 2];
    for (row, out) in gu.chunks_exact(2 * ff).zip(out.chunks_exact_mut(ff)) {
        let (g, u) = row.split_at(ff);
        for ((o, g), u) in out.iter_mut().zip(g).zip(u) {
            let t = (C * g * (1.0 + 0.044_715 * g * g)).tanh();
            *o = 0.5 * g * (1.0 + t) * u;
        }
    }
    out
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    /// The GELU gate against the tanh formula in `f64`, and at its landmarks: `gelu(0) = 0`,
    /// `gelu(g) = g` for large `g`, `0` for large `-g`.
    #[test]
    fn gelu_gate_matches_the_tanh_formula() {
        let g: Vec<f32> = (0..41).map(|i| (i as f32 - 20.0) * 0.45).collect();
        let u: Vec<f32> = (0..41).map(|i| 0.5 + (i % 3) as f32).collect();
        let got = super::gelu_mul(&[g.clone(), u.clone()].concat(), 41);
        for i in 0..41 {
            let x = f64::from(g[i]);
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let want = 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()) * f64::from(u[i]);
            // `1 + tanh` cancels for negative `g`: an absolute error of an ulp of `g` there.
            let err = (f64::from(got[i]) - want).abs();
            assert!(err <= 1e-5 * want.abs() + 1e-6, "{x}: {} vs {want}", got[i]);
        }
        let edges = super::gelu_mul(&[0.0, 30.0, -30.0, 1.0, 1.0, 1.0], 3);
        assert_eq!(edges, vec![0.0, 30.0, -0.0]);
    }
}
