//! The Python the end-to-end tests run the official `openai` client with.

use std::path::PathBuf;
use std::process::Command;

const SETUP: &str = "run scripts/setup: it makes a venv with the `openai` package \
                     (scripts/test runs it and points SLUICEGATE_PYTHON at that venv's python)";

/// The Python with the `openai` package: `SLUICEGATE_PYTHON` (scripts/test sets it), else the
/// venv scripts/setup makes (`SLUICEGATE_VENV`, default ~/.cache/sluicegate/venv) when it is
/// there, else `python3`. Panics, saying how to get it, when that Python cannot import
/// `openai` (a test never skips for want of it).
pub fn openai_python() -> PathBuf {
    let python: PathBuf = match std::env::var_os("SLUICEGATE_PYTHON") {
        Some(python) => python.into(),
        None => {
            let venv = std::env::var_os("SLUICEGATE_VENV")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|home| PathBuf::from(home).join(".cache/sluicegate/venv"))
                });
            match venv.map(|venv| venv.join("bin/python")) {
                Some(python) if python.exists() => python,
                _ => "python3".into(),
            }
        }
    };
    let probe = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {SETUP}", python.display()));
    assert!(
        probe.status.success(),
        "the `openai` Python package is missing from {}: {SETUP}\n{}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}
