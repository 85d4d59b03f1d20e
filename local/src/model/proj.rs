//! Projections that share their input ([`Proj`]): Q, K and V; gate and up.

use crate::kernels::qmatmul::QLinear;
use crate::LocalError;

type Result<T> = std::result::Result<T, LocalError>;

/// Projections that share their input: one fused layer when their formats allow.
#[derive(Debug)]
pub(super) enum Proj {
    Fused(QLinear),
    Split(Vec<QLinear>),
}

impl Proj {
    pub(super) fn new(parts: Vec<QLinear>) -> Proj {
        match QLinear::concat(parts) {
            Ok(l) => Proj::Fused(l.prepare()),
            Err(parts) => Proj::Split(parts.into_iter().map(QLinear::prepare).collect()),
        }
    }

    /// `n × Σrows`: each part's outputs side by side.
    pub(super) fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let parts = match self {
            Proj::Fused(l) => return l.forward(x, n),
            Proj::Split(parts) => parts,
        };
        let total: usize = parts.iter().map(|p| p.rows).sum();
        let mut out = vec![0.0; n * total];
        let mut col = 0;
        for p in parts {
            let y = p.forward(x, n)?;
            for (o, y) in out.chunks_exact_mut(total).zip(y.chunks_exact(p.rows)) {
                o[col..col + p.rows].copy_from_slice(y);
            }
            col += p.rows;
        }
        Ok(out)
    }
}
