//! For this crate's tests, examples and benches (and the workspace's): where
//! `scripts/fetch-models` puts the SmolLM2 file, and which kernel paths a model test ran.

use std::path::PathBuf;

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
    let forced = std::env::var("SLUICEGATE_LOCAL_KERNEL").is_ok_and(|v| v == "avx2");
    let note = if forced {
        " (SLUICEGATE_LOCAL_KERNEL=avx2: no VNNI layout)"
    } else {
        ""
    };
    println!("{test}: ran the engine's fastest kernels of {paths:?} on this CPU{note}");
}
