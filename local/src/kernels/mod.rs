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

/// The vector paths this CPU runs, best first (`"portable"` alone where it has none of them),
/// for tests and benchmarks to say which code they measured.
pub fn simd_paths() -> Vec<&'static str> {
    let mut paths = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if vnni::available() {
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
