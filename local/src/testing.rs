//! For this crate's tests, examples and benches (and the workspace's): where
//! `scripts/fetch-models` puts the SmolLM2 file, and which kernel paths a model test ran.

use std::path::PathBuf;

pub mod ggufs;

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Seeded test data (`rand_pcg`'s PCG-64 MCG, the workspace's one PRNG).
#[derive(Debug, Clone)]
pub struct TestRng(Pcg64Mcg);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(Pcg64Mcg::seed_from_u64(seed))
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
    /// Uniform in `[-1, 1)`.
    pub fn f(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
}

/// `$SLUICEGATE_MODELS` (default: the repository's `models/`) `/smollm2/...Q4_1.gguf`;
/// panics with the fetch command when it is missing (a test never skips for want of it).
pub fn smollm2_gguf() -> PathBuf {
    let models = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let path = models.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models",
        path.display()
    );
    path
}

/// Says which kernels a test of the whole model ran: each kernel dispatches to the first of
/// these paths it has (`SLUICEGATE_LOCAL_KERNEL=avx2` keeps the block weights off VNNI); the
/// unit tests check each path against its oracle.
pub fn say_kernel_paths(test: &str) {
    let paths = crate::kernels::simd_paths();
    let forced = crate::kernels::avx2_only();
    let note = if forced {
        " (SLUICEGATE_LOCAL_KERNEL=avx2: AVX2 and portable kernels only)"
    } else {
        ""
    };
    println!("{test}: ran the engine's fastest kernels of {paths:?} on this CPU{note}");
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Asserts that `ours` and `theirs` (logits of one position) agree: the same top token (or one
/// of a near tie), an RMS
/// difference at most `rms_share` of `theirs`' standard deviation and a largest difference at
/// most `max_share` of their range. Prints the figures.
pub fn compare_logits(what: &str, ours: &[f32], theirs: &[f32], rms_share: f32, max_share: f32) {
    assert_eq!(ours.len(), theirs.len());
    let max = theirs.iter().copied().fold(f32::MIN, f32::max);
    let min = theirs.iter().copied().fold(f32::MAX, f32::min);
    let diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let n = theirs.len() as f32;
    let mean = theirs.iter().sum::<f32>() / n;
    let sd = (theirs.iter().map(|t| (t - mean).powi(2)).sum::<f32>() / n).sqrt();
    let rms = (ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f32>()
        / n)
        .sqrt();
    println!(
        "{what}: logit range {:.2}, sd {sd:.3}; max abs diff {diff:.3}, RMS diff {rms:.3}",
        max - min
    );
    // The same top token, unless theirs has a near tie there (within 2% of the range: the
    // 8-bit activations' rounding can flip it); ours must then pick one of the tied.
    let (a, b) = (argmax(ours), argmax(theirs));
    if a != b {
        println!(
            "{what}: top tokens {a} (ours) and {b} (theirs), {:.3} apart in theirs",
            theirs[b] - theirs[a]
        );
    }
    assert!(
        theirs[b] - theirs[a] <= 0.02 * (max - min),
        "{what}: top token differs: ours {a}, theirs {b} ({} against {})",
        theirs[a],
        theirs[b]
    );
    assert!(
        rms <= rms_share * sd,
        "{what}: RMS diff {rms} vs standard deviation {sd}"
    );
    assert!(
        diff <= max_share * (max - min),
        "{what}: max abs diff {diff} vs range {}",
        max - min
    );
}
