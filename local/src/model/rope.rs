//! The rotary embeddings of a model ([`Rope`]): each layer uses one (Gemma 3's sliding layers
//! their own), built from the base, the linear scaling, the per-frequency factors (Llama 3.1's
//! `rope_freqs`, Phi-3's LongRoPE `rope_factors_short`/`_long`) and the magnitude factor, as
//! llama.cpp builds them. The angles of a step's positions are computed per step, not held
//! for the whole context.

use super::config::Config;

/// One rotary embedding: the frequency of each pair of a head, and the factor of `cos`/`sin`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rope {
    inv: Vec<f32>,
    mscale: f32,
}

/// Which per-frequency factors divide the frequencies: `rope_freqs` if the file has it; else
/// LongRoPE's short factors while the served context is within the original one, the long
/// factors past it (llama.cpp's `get_rope_factors`).
pub(super) fn pick_factors(
    cfg: &Config,
    freqs: Option<Vec<f32>>,
    short: Option<Vec<f32>>,
    long: Option<Vec<f32>>,
) -> Option<Vec<f32>> {
    freqs.or(if cfg.context > cfg.rope_original_context {
        long
    } else {
        short
    })
}

impl Rope {
    /// Frequencies `base^(-2i/head_dim) / scale / factors[i]` (a factor missing is 1), `cos` and
    /// `sin` times `mscale`.
    pub(super) fn new(
        head_dim: usize,
        base: f32,
        scale: f32,
        factors: Option<&[f32]>,
        mscale: f32,
    ) -> Rope {
        let inv = (0..head_dim / 2)
            .map(|i| {
                let f = 1.0 / base.powf(2.0 * i as f32 / head_dim as f32);
                let factor = factors.and_then(|v| v.get(i)).copied().unwrap_or(1.0);
                f / factor / scale
            })
            .collect();
        Rope { inv, mscale }
    }

    /// The global layers' embedding and, for Gemma 3, the sliding layers' (local base, no
    /// scaling or factors); `factors` as [`pick_factors`] chose them.
    pub(super) fn of(cfg: &Config, factors: Option<&[f32]>) -> Vec<Rope> {
        let global = Rope::new(
            cfg.head_dim,
            cfg.rope_base,
            cfg.rope_scale,
            factors,
            cfg.rope_attn_factor,
        );
        if cfg.arch == super::Arch::Gemma3 && cfg.sliding_window.is_some() {
            let local = Rope::new(cfg.head_dim, cfg.rope_local_base, 1.0, None, 1.0);
            vec![global, local]
        } else {
            vec![global]
        }
    }

    /// Which of [`Rope::of`]'s embeddings layer `i` uses.
    pub(super) fn index(cfg: &Config, i: usize) -> usize {
        usize::from(cfg.arch == super::Arch::Gemma3 && cfg.slides(i))
    }

    /// `cos` and `sin` of the angles at position `pos`, `head_dim / 2` of each, appended.
    pub(super) fn at(&self, pos: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        for f in &self.inv {
            let a = pos as f32 * f;
            cos.push(a.cos() * self.mscale);
            sin.push(a.sin() * self.mscale);
        }
    }

    /// The frequencies (for tests).
    #[cfg(test)]
    pub(super) fn inv(&self) -> &[f32] {
        &self.inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    fn cfg(arch: Arch) -> Config {
        Config {
            arch,
            n_layer: 12,
            n_head: 4,
            n_kv_head: 2,
            head_dim: 8,
            dim: 32,
            vocab: 10,
            context: 4096,
            eps: 1e-6,
            rope_base: 1_000_000.0,
            rope_local_base: 10_000.0,
            rope_scale: 8.0,
            rope_attn_factor: 1.0,
            rope_original_context: 4096,
            attn_scale: 0.5,
            sliding_window: Some(512),
            sliding_period: 6,
        }
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-6 * w.abs(),
                "{got:?} vs {want:?}"
            );
        }
    }

    /// Gemma 3: the global layers (every sixth) turn at `1e6^(-2i/d) / 8` (linear scaling),
    /// the others at `1e4^(-2i/d)`, unscaled.
    #[test]
    fn gemma3_scales_only_its_global_layers() {
        let c = cfg(Arch::Gemma3);
        let ropes = Rope::of(&c, None);
        let idx: Vec<usize> = (0..12).map(|i| Rope::index(&c, i)).collect();
        assert_eq!(idx, [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0]);
        let want = |base: f64, scale: f64| -> Vec<f64> {
            (0..4)
                .map(|i| base.powf(-2.0 * i as f64 / 8.0) / scale)
                .collect()
        };
        close(ropes[0].inv(), &want(1e6, 8.0));
        close(ropes[1].inv(), &want(1e4, 1.0));
        // Without a sliding window every layer is global.
        let c = Config {
            sliding_window: None,
            ..c
        };
        assert_eq!(Rope::of(&c, None).len(), 1);
        assert!((0..12).all(|i| Rope::index(&c, i) == 0));
    }

    /// Phi-3's LongRoPE: the short factors up to the original context, the long ones past it;
    /// each divides its frequency, and `cos`/`sin` carry the attention factor.
    #[test]
    fn longrope_takes_the_short_factors_within_the_original_context() {
        let short = vec![1.0, 2.0, 4.0, 8.0];
        let long = vec![3.0, 5.0, 7.0, 9.0];
        let c = Config {
            rope_scale: 1.0,
            rope_base: 10_000.0,
            rope_attn_factor: 1.25,
            rope_original_context: 4096,
            context: 4096,
            ..cfg(Arch::Phi3)
        };
        let pick = |c: &Config| pick_factors(c, None, Some(short.clone()), Some(long.clone()));
        assert_eq!(pick(&c), Some(short.clone()));
        let longer = Config { context: 4097, ..c };
        assert_eq!(pick(&longer), Some(long.clone()));
        // `rope_freqs` wins over both.
        assert_eq!(
            pick_factors(&longer, Some(vec![6.0]), Some(short.clone()), None),
            Some(vec![6.0])
        );
        let ropes = Rope::of(&c, Some(&short));
        assert_eq!(ropes.len(), 1);
        let inv: Vec<f64> = (0..4)
            .map(|i| 1e4f64.powf(-2.0 * i as f64 / 8.0) / f64::from(short[i]))
            .collect();
        close(ropes[0].inv(), &inv);
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        ropes[0].at(7, &mut cos, &mut sin);
        let want_cos: Vec<f64> = inv.iter().map(|f| (7.0 * f).cos() * 1.25).collect();
        let want_sin: Vec<f64> = inv.iter().map(|f| (7.0 * f).sin() * 1.25).collect();
        for (g, w) in cos.iter().chain(&sin).zip(want_cos.iter().chain(&want_sin)) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{cos:?} {sin:?}");
        }
    }
}
