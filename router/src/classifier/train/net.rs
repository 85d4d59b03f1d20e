//! The network trained by [`super::train`]: dense layers with ReLU between them, initialised and
//! regularised from the seeded [`Rng`], so one seed gives one head.

use candle_core::{Device, Tensor, Var};
use candle_nn::{Linear, Module, VarMap};

use super::Rng;

pub(super) struct Net {
    pub(super) layers: Vec<Linear>,
    pub(super) dropout: f32,
}

impl Net {
    /// With `train`'s generator, applies dropout drawn from it (candle's own dropout draws from
    /// an unseeded generator, so the same seed would not give the same head).
    pub(super) fn forward(
        &self,
        x: &Tensor,
        mut train: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
                if let Some(rng) = train.as_deref_mut().filter(|_| self.dropout > 0.0) {
                    x = dropout(&x, self.dropout, rng)?;
                }
            }
        }
        Ok(x)
    }
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by `1/(1-p)`.
pub(super) fn dropout(x: &Tensor, p: f32, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.unit() < p { 0.0 } else { keep })
        .collect();
    x * Tensor::from_vec(mask, x.shape(), x.device())?
}

/// A linear layer initialised from the seeded generator, as candle-nn's `linear` would from its
/// unseeded one: weights Kaiming-normal for ReLU (std `sqrt(2/in)`), biases uniform in
/// `±1/sqrt(in)`. The variables go into `varmap` under `{prefix}.weight` and `{prefix}.bias`.
pub(super) fn seeded_linear(
    inputs: usize,
    outputs: usize,
    prefix: &str,
    varmap: &VarMap,
    rng: &mut Rng,
) -> candle_core::Result<Linear> {
    let std = (2.0 / inputs as f32).sqrt();
    let bound = 1.0 / (inputs as f32).sqrt();
    let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.normal() * std).collect();
    let b: Vec<f32> = (0..outputs)
        .map(|_| (rng.unit() * 2.0 - 1.0) * bound)
        .collect();
    let w = Var::from_vec(w, (outputs, inputs), &Device::Cpu)?;
    let b = Var::from_vec(b, outputs, &Device::Cpu)?;
    let layer = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let mut data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned var map".into()))?;
    data.insert(format!("{prefix}.weight"), w);
    data.insert(format!("{prefix}.bias"), b);
    Ok(layer)
}
