//! For this crate's tests, examples and benches (and the workspace's): where
//! `scripts/fetch-models` puts the SmolLM2 file, and which kernel paths a model test ran.

use std::path::PathBuf;

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
