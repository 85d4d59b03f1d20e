//! Picking the next token: penalties, temperature, top-k, top-p, a seeded generator.

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

/// SplitMix64: small, fast and reproducible from a seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One sequence's sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = Rng(params.seed);
        Sampler { params, rng }
    }

    /// The next token. `recent` is the tail of the sequence (prompt included) for the
    /// repetition penalty, `generated` the tokens produced so far.
    pub fn sample(&mut self, logits: &mut [f32], recent: &[u32], generated: &[u32]) -> u32 {
        self.penalise(logits, recent, generated);
        let p = &self.params;
        if p.temperature <= 1e-5 || p.top_k == 1 {
            return argmax(logits);
        }
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / p.temperature))
            .filter(|(_, l)| l.is_finite())
            .collect();
        if cand.is_empty() {
            return argmax(logits);
        }
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, by_logit);
            cand.truncate(p.top_k);
        }
        let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f64)> = cand
            .iter()
            .map(|&(i, l)| (i, f64::from(l - max).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        if p.top_p < 1.0 {
            probs.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut acc = 0.0;
            let limit = f64::from(p.top_p.max(0.0)) * total;
            let mut keep = probs.len();
            for (n, c) in probs.iter().enumerate() {
                acc += c.1;
                if acc >= limit {
                    keep = n + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut r = self.rng.unit() * total;
        for &(i, w) in &probs {
            if r < w {
                return i;
            }
            r -= w;
        }
        probs.last().map(|p| p.0).unwrap_or_else(|| argmax(logits))
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

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: 7,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
    }

    #[test]
    fn top_k_one_and_top_p_tiny_are_greedy() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            ..params(1.0)
        });
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.01,
            ..params(1.0)
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[]), 1);
        }
    }

    #[test]
    fn the_seed_makes_it_reproducible_and_top_k_limits_it() {
        let logits = [1.0f32, 1.0, 1.0, 1.0, 0.5, 0.5];
        let run = |seed: u64, top_k: usize| -> Vec<u32> {
            let mut s = Sampler::new(SamplingParams {
                seed,
                top_k,
                ..params(1.0)
            });
            (0..64)
                .map(|_| s.sample(&mut logits.clone(), &[], &[]))
                .collect()
        };
        assert_eq!(run(1, 0), run(1, 0));
        assert_ne!(run(1, 0), run(2, 0));
        let all = run(3, 0);
        assert!(all.iter().any(|&t| t >= 4), "{all:?}");
        assert!(run(3, 4).iter().all(|&t| t < 4));
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..params(0.0)
        });
        // Token 1 (3.0 -> 1.5) falls behind token 2 (2.0).
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[1], &[]), 2);
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 0.6,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], &[1, 1]), 2);
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.5,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.9], &[], &[1, 1]), 2);
    }
}
