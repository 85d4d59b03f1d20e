#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Out of scope, end to end with the real CLI, the real encoder and the real binary: a head
//! trained with `--oos-label` keeps its in-scope rows as references; `router eval` counts rows
//! with labels the head lacks as out of scope; `router calibrate --target-oos-recall` prints
//! the `min_similarity` line; served with it, an unfamiliar request is `unknown` and escalates,
//! and the ledger row says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sluicegate_tests::classifier_data::TRAINING;
use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{chat, header, ledger_rows, minilm_dir, run_sluicegate, temp_dir};
use sluicegate_tests::{FakeUpstream, Gateway};

/// The shared billing and chitchat rows, and six of other domains marked out of scope.
fn training() -> Vec<(&'static str, &'static str)> {
    let mut rows = TRAINING.to_vec();
    rows.extend([
        ("what's the weather in Paris tomorrow", "oos"),
        ("who won the football match last night", "oos"),
        ("how long do I bake bread for", "oos"),
        ("what is the speed of light", "oos"),
        ("book me a flight to Madrid", "oos"),
        ("play some jazz music", "oos"),
    ]);
    rows
}

/// Held out: in-scope paraphrases, and two labels the head never saw.
const HELD_OUT: [(&str, &str); 8] = [
    ("there is a double charge on my credit card", "billing"),
    ("please give me a refund", "billing"),
    ("hi! how's it going?", "chitchat"),
    ("good evening, lovely to see you", "chitchat"),
    ("explain photosynthesis in plants", "science"),
    ("what causes volcanic eruptions", "science"),
    ("write a haiku about winter", "poetry"),
    ("compose a limerick about a cat", "poetry"),
];

fn jsonl(dir: &Path, name: &str, rows: &[(&str, &str)]) -> PathBuf {
    let path = dir.join(name);
    let lines: Vec<String> = rows
        .iter()
        .map(|(text, label)| json!({"text": text, "label": label}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn sluicegate(args: &[&str]) -> String {
    let out = run_sluicegate(args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sluicegate {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn an_oos_head_is_evaluated_calibrated_and_served() {
    let dir = temp_dir();
    let encoder = minilm_dir();
    let enc = encoder.to_str().unwrap();
    let train = jsonl(&dir, "train.jsonl", &training());
    let held = jsonl(&dir, "held.jsonl", &HELD_OUT);
    let head = dir.join("head.safetensors");
    let (train, held, head_s) = (
        train.to_str().unwrap(),
        held.to_str().unwrap(),
        head.to_str().unwrap(),
    );
    let out = sluicegate(&[
        "router",
        "train",
        "--data",
        train,
        "--out",
        head_s,
        "--encoder",
        enc,
        "--max-epochs",
        "60",
        "--oos-label",
        "oos",
    ]);
    // The references are the 16 in-scope rows, not the out-of-scope ones.
    assert!(out.contains("(3 classes, 16 reference rows"), "{out}");

    let out = sluicegate(&[
        "router",
        "eval",
        "--data",
        held,
        "--head",
        head_s,
        "--encoder",
        enc,
        "--latency-samples",
        "0",
    ]);
    assert!(
        out.contains("(4 rows, 4 with labels the scorer lacks: out of scope"),
        "{out}"
    );
    assert!(
        out.contains("== head: out of scope (4 rows with labels it lacks, 4 in scope) =="),
        "{out}"
    );
    assert!(
        out.contains("min_similarity: oos recall, in-scope accuracy"),
        "{out}"
    );

    let out = sluicegate(&[
        "router",
        "calibrate",
        "--data",
        held,
        "--head",
        head_s,
        "--encoder",
        enc,
        "--target-oos-recall",
        "1",
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("min_similarity = "))
        .unwrap_or_else(|| panic!("no policy line:\n{out}"));
    let min: f32 = line["min_similarity = ".len()..].parse().unwrap();
    assert!((0.0..1.0).contains(&min), "{line}");
    assert!(out.contains("when = { unknown = true }"), "{out}");
    assert!(
        out.contains("finds 100.0% of out-of-scope requests"),
        "{out}"
    );

    // Served with the calibrated threshold (plus a margin, so float noise between the CLI's
    // batch and the server's single embedding cannot flip a row that sat on it): a request
    // unlike the training rows escalates, a familiar one does not.
    let min = min + 0.02;
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("small", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend("large", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("local", "small", &[]));
    toml.push_str(&route("remote", "large", &[]));
    toml.push_str(&format!(
        "[classifier]\nencoder = \"{enc}\"\nhead = \"{head_s}\"\non_classifier_error = \"remote\"\n\
         timeout = \"5s\"\nmin_similarity = {min}\n\n[ledger]\nurl = \"ledger.sqlite\"\n\n"
    ));
    toml.push_str(&routing(
        "local",
        r#"rules = [{ name = "unfamiliar", route = "remote", when = { unknown = true } }]"#,
    ));
    let mut gw = Gateway::start(&toml, &[]).await;
    gw.wait_ready(Duration::from_secs(60)).await;
    let ask =
        |text: &str| json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    let r = chat(&gw, &ask("I want a refund for the double charge")).await;
    assert_eq!(header(&r, "x-sluicegate-route"), "local");
    let _ = r.text().await.unwrap();
    let r = chat(&gw, &ask("explain photosynthesis in plants")).await;
    let decision = header(&r, "x-sluicegate-decision").to_owned();
    assert_eq!(header(&r, "x-sluicegate-route"), "remote", "{decision}");
    assert!(
        decision.starts_with("rule=unfamiliar(unknown); class=unknown("),
        "{decision}"
    );
    let _ = r.text().await.unwrap();
    gw.sigterm();
    assert!(gw.wait().await.success(), "{}", gw.stderr());
    let rows = ledger_rows(&gw.dir().join("ledger.sqlite")).await;
    let far = rows
        .iter()
        .find(|r| r.rule.as_deref() == Some("unfamiliar"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(far.class.as_deref(), Some("unknown"), "{far:?}");
    assert!(far.runner_up.is_some(), "{far:?}");
}
