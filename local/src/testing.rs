//! For this crate's tests, examples and benches (and the workspace's): where
//! `scripts/fetch-models` puts the SmolLM2 file.

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
