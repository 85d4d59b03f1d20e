//! Training a [`Head`] on frozen embeddings with candle-nn: softmax regression or a one-hidden-
//! layer MLP, class-balanced loss (each class weighs the same whatever its size) with label
//! smoothing, AdamW, early stopping on a held-out slice, then a refit on all rows for the best
//! epoch count. With `ensemble > 1` the refit is repeated with different seeds (initialisation,
//! order, dropout) and the head keeps every network; inference averages their probabilities.

use candle_core::{Device, Tensor, D};
use candle_nn::{Optimizer, VarMap};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

use super::head::{Dense, Head};
use super::ClassifyError;

mod net;
use net::{seeded_linear, Net};

/// Training knobs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Hidden units; 0 trains a plain softmax regression.
    pub hidden: usize,
    pub max_epochs: usize,
    /// Epochs without held-out improvement before stopping.
    pub patience: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// Share of the data held out for early stopping.
    pub holdout: f32,
    /// Dropout on the hidden layer while training.
    pub dropout: f32,
    /// Label smoothing ε of the cross-entropy.
    pub label_smoothing: f32,
    pub seed: u64,
    /// Networks trained on all rows and averaged (1 is a single network).
    pub ensemble: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            hidden: 512,
            max_epochs: 200,
            patience: 15,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            batch_size: 64,
            holdout: 0.1,
            dropout: 0.2,
            label_smoothing: 0.1,
            seed: 7,
            ensemble: 1,
        }
    }
}

/// Progress after each epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 0 for the early-stopping run on the held-out split, then 1..=ensemble for the networks
    /// trained on all rows.
    pub member: usize,
    pub epoch: usize,
    pub loss: f32,
    pub holdout_accuracy: f32,
    pub best_epoch: usize,
}

/// The seeded PRNG for shuffles and splits (`rand_pcg`'s PCG-64 MCG): the same seed gives the
/// same order on every machine.
#[derive(Debug, Clone)]
pub struct Rng(Pcg64Mcg);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(Pcg64Mcg::seed_from_u64(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `[0, 1)` with 24 bits.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = usize::try_from(self.next_u64() % (i as u64 + 1)).unwrap_or(0);
            v.swap(i, j);
        }
    }
}

fn rows(x: &[Vec<f32>], idx: &[usize], dim: usize) -> candle_core::Result<Tensor> {
    let flat: Vec<f32> = idx.iter().flat_map(|&i| x[i].iter().copied()).collect();
    Tensor::from_vec(flat, (idx.len(), dim), &Device::Cpu)
}

fn model_err(e: impl std::fmt::Display) -> ClassifyError {
    ClassifyError::Model(e.to_string())
}

/// Inputs are unit vectors (components around `1/sqrt(dim)`); the network sees them scaled by
/// `sqrt(dim)` so every component is of order one, and the scale is folded into the first
/// layer's weights when the head is saved, so the head takes raw embeddings.
fn input_scale(dim: usize) -> f32 {
    (dim as f32).sqrt()
}

/// Trains a head on embeddings `x` with label indices `y` (into `labels`).
///
/// Phase 1 trains on all but a held-out slice and finds the epoch with the best held-out
/// accuracy (early stopping); phase 2 trains `ensemble` fresh networks on *all* rows for that
/// many epochs (each with its own seed), which make the head returned. Without a held-out
/// slice, phase 1's network is a member and the others train for `max_epochs`. The loss is
/// class-balanced cross-entropy with label smoothing.
pub fn train(
    x: &[Vec<f32>],
    y: &[usize],
    labels: Vec<String>,
    encoder: String,
    options: &TrainOptions,
    mut progress: impl FnMut(EpochReport),
) -> Result<Head, ClassifyError> {
    let dim = x
        .first()
        .map(Vec::len)
        .ok_or_else(|| model_err("no training data"))?;
    let scale = input_scale(dim);
    let x: Vec<Vec<f32>> = x
        .iter()
        .map(|v| v.iter().map(|a| a * scale).collect())
        .collect();
    let mut rng = Rng::new(options.seed);
    let mut order: Vec<usize> = (0..x.len()).collect();
    rng.shuffle(&mut order);
    let held = ((x.len() as f32 * options.holdout) as usize).min(x.len() / 2);
    let (val, fit) = order.split_at(held);
    let data = Data {
        x: &x,
        y,
        dim,
        classes: labels.len(),
    };
    let (best_epoch, first) = data.fit(
        fit,
        Some(val),
        options.max_epochs,
        options,
        &mut rng,
        &mut progress,
    )?;
    let mut members = Vec::new();
    if val.is_empty() {
        members.push(first);
    }
    for k in members.len()..options.ensemble.max(1) {
        // The first network continues phase 1's stream; the others get their own.
        let mut own = Rng::new(options.seed.wrapping_add(1000 * k as u64));
        let rng = if k == 0 { &mut rng } else { &mut own };
        let (_, layers) = data.fit(&order, None, best_epoch, options, rng, &mut |r| {
            progress(EpochReport { member: k + 1, ..r })
        })?;
        members.push(layers);
    }
    for first in members.iter_mut().filter_map(|m| m.first_mut()) {
        first.weight.iter_mut().for_each(|w| *w *= scale);
    }
    Ok(Head {
        members,
        ..Head::single(labels, Vec::new(), encoder)
    })
}

struct Data<'a> {
    x: &'a [Vec<f32>],
    y: &'a [usize],
    dim: usize,
    classes: usize,
}

impl Data<'_> {
    /// Trains a fresh network on the rows `fit` for up to `epochs`; with `val`, stops early and
    /// returns the best held-out epoch's weights, else the last epoch's.
    fn fit(
        &self,
        fit: &[usize],
        val: Option<&[usize]>,
        epochs: usize,
        options: &TrainOptions,
        rng: &mut Rng,
        progress: &mut dyn FnMut(EpochReport),
    ) -> Result<(usize, Vec<Dense>), ClassifyError> {
        let (x, y, dim, classes) = (self.x, self.y, self.dim, self.classes);
        let mut fit = fit.to_vec();
        // Class-balanced weights: n / (classes * count).
        let mut counts = vec![0usize; classes];
        fit.iter().for_each(|&i| counts[y[i]] += 1);
        let weights: Vec<f32> = counts
            .iter()
            .map(|&c| fit.len() as f32 / (classes as f32 * c.max(1) as f32))
            .collect();
        let weights = Tensor::new(weights.as_slice(), &Device::Cpu).map_err(model_err)?;

        let varmap = VarMap::new();
        let sizes: Vec<usize> = if options.hidden == 0 {
            vec![dim, classes]
        } else {
            vec![dim, options.hidden, classes]
        };
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| seeded_linear(w[0], w[1], &format!("layer{i}"), &varmap, rng))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(model_err)?;
        let net = Net {
            layers,
            dropout: options.dropout,
        };
        let params = candle_nn::ParamsAdamW {
            lr: options.learning_rate,
            weight_decay: options.weight_decay,
            ..Default::default()
        };
        let mut opt = candle_nn::AdamW::new(varmap.all_vars(), params).map_err(model_err)?;
        let val = val.filter(|v| !v.is_empty());
        let val_x = val
            .map(|v| rows(x, v, dim))
            .transpose()
            .map_err(model_err)?;
        let smoothing = f64::from(options.label_smoothing);

        // Best held-out (accuracy, -loss): accuracy first, and among equal accuracies the lower
        // loss, so a saturated accuracy does not freeze the best epoch at the first one.
        let mut best: Option<((f32, f32), usize, Vec<Dense>)> = None;
        for epoch in 1..=epochs {
            rng.shuffle(&mut fit);
            let mut total = 0.0f32;
            let mut batches = 0usize;
            for chunk in fit.chunks(options.batch_size.max(1)) {
                let mut step = || -> candle_core::Result<f32> {
                    let xb = rows(x, chunk, dim)?;
                    let yb: Vec<u32> = chunk.iter().map(|&i| y[i] as u32).collect();
                    let yb = Tensor::new(yb.as_slice(), &Device::Cpu)?;
                    let logp = candle_nn::ops::log_softmax(
                        &net.forward(&xb, Some(&mut *rng))?,
                        D::Minus1,
                    )?;
                    let picked = logp.gather(&yb.unsqueeze(1)?, 1)?.squeeze(1)?;
                    // Label smoothing: (1-ε)·log p(y) + ε·mean_c log p(c).
                    let target = ((picked * (1.0 - smoothing))? + (logp.mean(1)? * smoothing)?)?;
                    let w = weights.index_select(&yb, 0)?;
                    let loss = ((target * &w)?.sum_all()?
                        / w.sum_all()?.to_scalar::<f32>()? as f64)?
                        .neg()?;
                    opt.backward_step(&loss)?;
                    loss.to_scalar::<f32>()
                };
                total += step().map_err(model_err)?;
                batches += 1;
            }
            let (acc, val_loss) = match (val, &val_x) {
                (Some(val), Some(val_x)) => {
                    let logits = net.forward(val_x, None).map_err(model_err)?;
                    let pred = logits
                        .argmax(D::Minus1)
                        .and_then(|p| p.to_vec1::<u32>())
                        .map_err(model_err)?;
                    let right = pred
                        .iter()
                        .zip(val)
                        .filter(|(p, &i)| **p as usize == y[i])
                        .count();
                    let truth: Vec<u32> = val.iter().map(|&i| y[i] as u32).collect();
                    let loss = (|| {
                        let truth = Tensor::new(truth.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
                        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                        logp.gather(&truth, 1)?
                            .mean_all()?
                            .neg()?
                            .to_scalar::<f32>()
                    })()
                    .map_err(model_err)?;
                    (right as f32 / val.len() as f32, loss)
                }
                _ => (0.0, 0.0),
            };
            let score = (acc, -val_loss);
            let better = |b: &(f32, f32)| score.0 > b.0 || (score.0 == b.0 && score.1 > b.1);
            if val.is_none() || best.as_ref().is_none_or(|(b, _, _)| better(b)) {
                best = Some((score, epoch, snapshot(&varmap, sizes.len() - 1)?));
            }
            let best_epoch = best.as_ref().map_or(epoch, |b| b.1);
            progress(EpochReport {
                member: 0,
                epoch,
                loss: total / batches.max(1) as f32,
                holdout_accuracy: acc,
                best_epoch,
            });
            if val.is_some() && epoch - best_epoch >= options.patience {
                break;
            }
        }
        let (_, epoch, layers) = best.ok_or_else(|| model_err("no epoch ran"))?;
        Ok((epoch, layers))
    }
}

fn snapshot(varmap: &VarMap, n: usize) -> Result<Vec<Dense>, ClassifyError> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| model_err("poisoned var map"))?;
    (0..n)
        .map(|i| {
            let get = |name: &str| {
                data.get(&format!("layer{i}.{name}"))
                    .ok_or_else(|| model_err(format!("layer{i}.{name} missing")))
            };
            let w = get("weight")?.as_tensor().clone();
            let b = get("bias")?.as_tensor().clone();
            let (_, inputs) = w.dims2().map_err(model_err)?;
            Ok(Dense {
                weight: w
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .map_err(model_err)?,
                bias: b.to_vec1().map_err(model_err)?,
                inputs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
