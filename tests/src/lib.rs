//! Test support for sluicegate's end-to-end tests: a fixture-driven fake upstream
//! ([`fake_upstream`]), a harness that runs the real `sluicegate` binary ([`gateway`]),
//! policy snippets ([`policy`]) and client helpers ([`client`]).
//!
//! This crate is test support only: a failed set-up should stop the test at once with a
//! clear message, so panicking on errors is the intended behaviour here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod classifier_data;
pub mod client;
pub mod fake_upstream;
pub mod gateway;
pub mod otlp;
pub mod policy;
pub mod python;
pub mod usage;

use std::path::PathBuf;

pub use client::{
    assert_openai_error, chat, chat_with, header, http_client, ledger_rows, metrics_text,
    sse_frames, SseFrames,
};
pub use fake_upstream::{FakeUpstream, RecordedRequest};
pub use gateway::{run_sluicegate, sluicegate_bin, temp_dir, Gateway};

/// `tests/fixtures`, where the fake upstream finds its replies.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The workspace root (for `policies/examples` and the like).
/// The MiniLM encoder directory (`$SLUICEGATE_MODELS/minilm`, else this checkout's
/// `models/minilm`); panics saying how to get it when it is missing.
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("SLUICEGATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("models"))
        .join("minilm");
    assert!(
        dir.join("model.safetensors").is_file(),
        "the MiniLM encoder is missing from {}: run scripts/fetch-models",
        dir.display()
    );
    dir
}

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}
