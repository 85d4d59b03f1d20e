//! The engine's kernels, one instruction set per file, each chosen at run time:
//!
//! - [`blocks`]: integer dot products of GGUF weight blocks (Q4_1, Q8_0) with 8-bit
//!   activations, AVX2 + FMA + F16C and portable; [`acts`]: the activation quantiser.
//! - [`vnni`]: AVX-512 VNNI kernels over weights repacked at load (16 output rows per vector).
//! - [`qmatmul`]: a quantized linear layer, dispatching to the above.
//! - [`avx512`]: AVX-512 SiLU gating and the sampler's weights; [`attend_avx512`]: AVX-512
//!   attention; [`attend`]: attention's dispatch and its portable body (also compiled for
//!   AVX2 + FMA); [`ops`]: RMS norm, rotary embedding, SiLU gating, dot products.

pub mod acts;
pub mod attend;
#[cfg(target_arch = "x86_64")]
pub mod attend_avx512;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod blocks;
pub mod ops;
pub mod qmatmul;
#[cfg(target_arch = "x86_64")]
pub mod vnni;

pub use blocks::BlockKind;

use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet; 1: every path this CPU has; 2: AVX2 and portable only.
static AVX2_ONLY: AtomicU8 = AtomicU8::new(0);

/// Whether the kernels keep to AVX2 (and portable code) on a CPU that has AVX-512, to measure
/// what a CPU without it gets: `SLUICEGATE_LOCAL_KERNEL=avx2` (read once), or [`force_avx2`].
/// Weights loaded meanwhile are not repacked for VNNI; AVX-512 attention, gating and sampling
/// are not used.
pub fn avx2_only() -> bool {
    match AVX2_ONLY.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("SLUICEGATE_LOCAL_KERNEL").is_ok_and(|v| v == "avx2");
            AVX2_ONLY.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    }
}

/// Keeps the kernels to AVX2 and portable code from now on (`true`), or lets them use all
/// this CPU has (`false`): for benchmarks comparing both in one process.
pub fn force_avx2(on: bool) {
    AVX2_ONLY.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// The vector paths this CPU runs, best first (`"portable"` alone where it has none of them),
/// for tests and benchmarks to say which code they measured.
pub fn simd_paths() -> Vec<&'static str> {
    let mut paths = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if vnni::available() && !avx2_only() {
            paths.push("avx512-vnni");
        }
        if avx512::available() {
            paths.push("avx512f");
        }
        if blocks::has_simd() {
            paths.push("avx2+fma+f16c");
        }
    }
    paths.push("portable");
    paths
}

/// For the kernel tests: prints whether `test` checked the `fast` path (`runs`: this CPU has
/// what it needs) besides the portable one, or the portable path only; returns `runs`.
#[cfg(test)]
pub(crate) fn report_path(test: &str, fast: &str, runs: bool) -> bool {
    let paths = simd_paths();
    if runs {
        println!("{test}: checked the {fast} path and the portable path (CPU paths: {paths:?})");
    } else {
        println!(
            "{test}: this CPU lacks {fast}: checked the portable path only (CPU paths: {paths:?})"
        );
    }
    runs
}
