//! Picking the next token: penalties, temperature, top-k, top-p, a seeded generator.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use std::collections::HashMap;

/// Sampling settings of one request, defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// `<= 0` means greedy.
    pub temperature: f32,
    /// `1` keeps every token.
    pub top_p: f32,
    /// `0` keeps every token.
    pub top_k: usize,
    /// Multiplicative (CTRL-style) penalty on tokens in the last `penalty_window` tokens;
    /// `1` is off.
    pub repetition_penalty: f32,
    /// OpenAI's additive penalties over the generated tokens.
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: u64,
}

/// Tokens looked back on for the repetition penalty (llama.cpp's default).
pub const PENALTY_WINDOW: usize = 64;

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

/// The sequence's draws (`rand_pcg`'s PCG-64 MCG): reproducible from the request's seed.
#[derive(Debug, Clone)]
struct Rng(Pcg64Mcg);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(Pcg64Mcg::seed_from_u64(seed))
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One sequence's sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    /// Scratch: each token's weight `e^((l - max) / T)`, and their sums by [`BLOCK`].
    weights: Vec<f32>,
    sums: Vec<f64>,
}

/// Tokens per partial sum of the weights: drawing in id order walks the sums, then one block.
const BLOCK: usize = 256;

/// Weight floors tried in turn when looking for the top-k or top-p candidates: every token at
/// or above a floor is kept, so the heaviest tokens overall are the heaviest of those kept;
/// a floor is low enough once it keeps `k` tokens or the `p` share of the weight.
const FLOORS: [f32; 8] = [
    1.0 / (1 << 4) as f32,
    1.0 / (1 << 8) as f32,
    1.0 / (1 << 12) as f32,
    1.0 / (1 << 16) as f32,
    1.0 / (1 << 20) as f32,
    1.0 / (1 << 24) as f32,
    1e-12,
    0.0,
];

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = Rng::new(params.seed);
        Sampler {
            params,
            rng,
            weights: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// The next token. `recent` is the tail of the sequence (prompt included) for the
    /// repetition penalty, `generated` the tokens produced so far.
    ///
    /// With top-k or top-p the candidates are drawn from heaviest first (ties: lower id
    /// first), else in id order. Neither needs sorting the whole vocabulary: see [`FLOORS`].
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32], generated: &[u32]) -> u32 {
        self.penalise(logits, recent, generated);
        let p = &self.params;
        if p.temperature <= 1e-5 || p.top_k == 1 {
            return argmax(logits);
        }
        let max = finite_max(logits);
        if !max.is_finite() {
            return argmax(logits);
        }
        let (w, sums) = (&mut self.weights, &mut self.sums);
        w.resize(logits.len(), 0.0);
        sums.resize(logits.len().div_ceil(BLOCK), 0.0);
        weights(logits, max, 1.0 / p.temperature, w, sums);
        let total: f64 = sums.iter().sum();
        let r = self.rng.unit();
        let top_k = (p.top_k > 0 && p.top_k < w.len()).then_some(p.top_k);
        let top_p = (p.top_p < 1.0).then(|| f64::from(p.top_p.max(0.0)));
        let token = if top_k.is_none() && top_p.is_none() {
            draw_by_id(w, sums, r * total)
        } else {
            let kept = candidates(w, total, top_k, top_p);
            let total: f64 = kept.iter().map(|&i| f64::from(w[i as usize])).sum();
            draw(w, kept.iter().copied(), r * total)
        };
        token.unwrap_or_else(|| argmax(logits))
    }

    fn penalise(&self, logits: &mut [f32], recent: &[u32], generated: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 && p.repetition_penalty > 0.0 {
            let start = recent.len().saturating_sub(PENALTY_WINDOW);
            let mut seen = Vec::with_capacity(PENALTY_WINDOW);
            for &t in &recent[start..] {
                if seen.contains(&t) {
                    continue;
                }
                seen.push(t);
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            let mut counts: HashMap<u32, u32> = HashMap::new();
            for &t in generated {
                *counts.entry(t).or_default() += 1;
            }
            for (t, n) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= n as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
    }
}

/// The first index of the largest logit (NaN never wins), in 16 lanes so that it vectorises.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = [f32::NEG_INFINITY; 16];
    let mut at = [0u32; 16];
    let chunks = logits.chunks_exact(16);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for (j, &x) in chunk.iter().enumerate() {
            if x > best[j] {
                best[j] = x;
                at[j] = (16 * c + j) as u32;
            }
        }
    }
    let (mut b, mut i) = (f32::NEG_INFINITY, 0u32);
    for (&x, &a) in best.iter().zip(&at) {
        if x > b || (x == b && a < i) {
            (b, i) = (x, a);
        }
    }
    let base = logits.len() - tail.len();
    for (j, &x) in tail.iter().enumerate() {
        if x > b {
            (b, i) = (x, (base + j) as u32);
        }
    }
    i
}

/// The largest finite logit (`-inf` when there is none), in 16 lanes so that it vectorises.
fn finite_max(logits: &[f32]) -> f32 {
    let mut best = [f32::NEG_INFINITY; 16];
    let chunks = logits.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (b, &x) in best.iter_mut().zip(chunk) {
            *b = if x.is_finite() && x > *b { x } else { *b };
        }
    }
    best.iter()
        .chain(tail.iter().filter(|x| x.is_finite()))
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// `w[i] = e^((l[i] - max) · inv_t)`, 0 for a logit that is not finite; `sums[b]` the sum of
/// block `b` of [`BLOCK`] weights.
fn weights(logits: &[f32], max: f32, inv_t: f32, w: &mut [f32], sums: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx512::weights(logits, max, inv_t, w, sums, BLOCK) {
        return;
    }
    weights_portable(logits, max, inv_t, w, sums);
}

/// [`weights`] in plain Rust (CPUs without AVX-512F).
fn weights_portable(logits: &[f32], max: f32, inv_t: f32, w: &mut [f32], sums: &mut [f64]) {
    for ((w, l), sum) in w
        .chunks_mut(BLOCK)
        .zip(logits.chunks(BLOCK))
        .zip(sums.iter_mut())
    {
        *sum = 0.0;
        for (w, &l) in w.iter_mut().zip(l) {
            *w = if l.is_finite() {
                ((l - max) * inv_t).exp()
            } else {
                0.0
            };
            *sum += f64::from(*w);
        }
    }
}

/// [`draw`] over every token in id order: the block sums first, then within one block. An `r`
/// past the total (rounding) gives the last token with weight.
fn draw_by_id(w: &[f32], sums: &[f64], mut r: f64) -> Option<u32> {
    let mut last = None;
    let mut at = None;
    for (b, &s) in sums.iter().enumerate() {
        if s <= 0.0 {
            continue;
        }
        last = Some((b, s));
        if r < s {
            at = Some((b, r));
            break;
        }
        r -= s;
    }
    let (b, r) = at.or(last)?;
    let ids = (b * BLOCK) as u32..(w.len().min((b + 1) * BLOCK)) as u32;
    draw(w, ids, r)
}

/// The first of `order` at which the running weight passes `r`.
fn draw(w: &[f32], order: impl Iterator<Item = u32>, mut r: f64) -> Option<u32> {
    let mut last = None;
    for i in order {
        let x = f64::from(w[i as usize]);
        if x <= 0.0 {
            continue;
        }
        if r < x {
            return Some(i);
        }
        r -= x;
        last = Some(i);
    }
    last
}

/// How many weights are at least `floor` (and above 0), and their sum (in `f32` lanes on the
/// vector path; the exact check follows in [`candidates`]).
fn above(w: &[f32], floor: f32) -> (usize, f64) {
    #[cfg(target_arch = "x86_64")]
    if let Some(found) = crate::kernels::avx512::above(w, floor) {
        return found;
    }
    above_portable(w, floor)
}

/// [`above`] in plain Rust (CPUs without AVX-512F).
fn above_portable(w: &[f32], floor: f32) -> (usize, f64) {
    w.iter()
        .filter(|&&x| x >= floor && x > 0.0)
        .fold((0, 0.0), |(n, m), &x| (n + 1, m + f64::from(x)))
}

/// Heaviest first, ties to the lower id.
fn heavier(w: &[f32], a: u32, b: u32) -> std::cmp::Ordering {
    w[b as usize].total_cmp(&w[a as usize]).then(a.cmp(&b))
}

/// The top-k tokens (when `top_k`), then of those the shortest heaviest-first run that holds
/// the `top_p` share of their weight (when `top_p`); heaviest first.
/// `total` is the sum of `w`.
pub(super) fn candidates(
    w: &[f32],
    total: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
) -> Vec<u32> {
    let mut kept = Vec::new();
    for floor in FLOORS {
        let last = floor == 0.0;
        if !last {
            // Cheap checks first: is this floor low enough?
            let (count, mass) = above(w, floor);
            match top_k {
                Some(k) if count < k => continue,
                None if top_p.is_some_and(|p| mass < p * total) => continue,
                _ => {}
            }
        }
        kept.clear();
        kept.extend((0..w.len() as u32).filter(|&i| {
            let x = w[i as usize];
            x >= floor && x > 0.0
        }));
        let mut total = total;
        if let Some(k) = top_k {
            if kept.len() > k {
                kept.select_nth_unstable_by(k - 1, |&a, &b| heavier(w, a, b));
                kept.truncate(k);
            }
            total = kept.iter().map(|&i| f64::from(w[i as usize])).sum();
        }
        kept.sort_unstable_by(|&a, &b| heavier(w, a, b));
        let Some(p) = top_p else { break };
        let limit = p * total;
        let mut acc = 0.0;
        let end = kept.iter().position(|&i| {
            acc += f64::from(w[i as usize]);
            acc >= limit
        });
        match end {
            Some(n) => {
                kept.truncate(n + 1);
                break;
            }
            // Every token above this floor holds less than the share: go lower.
            None if !last => continue,
            None => break,
        }
    }
    kept
}

#[cfg(test)]
mod tests;
