//! `sluicegate check` on the shipped examples and on a broken policy, and `serve` refusing
//! a broken policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sluicegate_tests::gateway::{run_sluicegate, temp_dir, write_policy};
use sluicegate_tests::{sluicegate_bin, workspace_dir};

const BAD_POLICY: &str = r#"
[backends.openai]
kind = "openai"
model = "gpt-4o-mini"

[routes.billing]
backend = "gpt4"

[policy]
default = "billing"
"#;

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_example_policy_passes_check() {
    let dir = workspace_dir().join("policies").join("examples");
    let mut examples: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "examples found: {examples:?}");
    for example in examples {
        let output = run_sluicegate(&["check", "--config", example.to_str().unwrap()], &[]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            example.display(),
            output_text(&output)
        );
        assert!(
            output_text(&output).contains("ok"),
            "{}",
            output_text(&output)
        );
    }
}

#[test]
fn a_bad_policy_fails_check_with_the_key_path() {
    let dir = temp_dir();
    let file = write_policy(&dir, BAD_POLICY);
    let output = run_sluicegate(&["check", "--config", file.to_str().unwrap()], &[]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(r#"routes.billing.backend: no backend named "gpt4""#),
        "{text}"
    );

    let missing = dir.join("no-such-policy.toml");
    let output = run_sluicegate(&["check", "--config", missing.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn serve_refuses_a_bad_policy() {
    let dir = temp_dir();
    let file = write_policy(&dir, BAD_POLICY);
    let mut child = Command::new(sluicegate_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("serve kept running with an invalid policy");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let output = child.wait_with_output().unwrap();
    let text = output_text(&output);
    assert_ne!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("routes.billing.backend"), "{text}");
    assert!(!text.contains("sluicegate listening"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}
