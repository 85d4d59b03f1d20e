//! The real on-box classifier (all-MiniLM-L6-v2 from `models/minilm`) in the real binary:
//! routing by class and confidence, bad input, `/readyz`, and trained heads (including one
//! trained on another encoder, which must be refused).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluicegate_tests::classifier_data::TRAINING;
use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{chat, header, http_client, run_sluicegate, temp_dir};
use sluicegate_tests::{FakeUpstream, Gateway};

fn encoder_dir() -> PathBuf {
    sluicegate_tests::minilm_dir()
}

/// Routes `billing` and `remote` on one fake upstream; a rule per class and an escalation rule.
fn policy(up: &FakeUpstream, classifier: &str) -> String {
    let mut toml = openai_backend("small", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend("large", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("billing", "small", &[]));
    toml.push_str(&route("chitchat", "small", &[]));
    toml.push_str(&route("remote", "large", &[]));
    toml.push_str(classifier);
    toml.push_str(&routing(
        "remote",
        r#"rules = [
  { name = "unsure", route = "remote", when = { max_confidence = 0.5 } },
  { name = "billing", route = "billing", when = { class = "billing" } },
  { name = "chitchat", route = "chitchat", when = { class = "chitchat" } },
]"#,
    ));
    toml
}

fn examples_classifier() -> String {
    format!(
        r#"[classifier]
encoder = "{}"
on_classifier_error = "remote"
timeout = "5s"

[classes.billing]
examples = ["I was charged twice", "refund my last payment", "why is my invoice higher this month", "my card payment failed"]

[classes.chitchat]
examples = ["hello!", "how are you today?", "tell me a joke", "good morning, nice to meet you"]

[classes.code]
examples = ["fix this python function", "why does my rust code not compile", "write a SQL query"]

"#,
        encoder_dir().display()
    )
}

async fn readyz(gw: &Gateway) -> (u16, Value) {
    let r = http_client()
        .get(format!("{}/readyz", gw.url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls `/readyz` until the classifier leaves `loading`; returns its final report.
async fn classifier_settled(gw: &Gateway) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = readyz(gw).await;
        if body["classifier"]["state"] != "loading" || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ask(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn requests_route_by_class_and_unsure_ones_escalate() {
    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&policy(&up, &examples_classifier()), &[]).await;
    let (status, body) = classifier_settled(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["classifier"]["state"], "ready", "{body}");

    let r = chat(&gw, &ask("I think I was charged twice for my last order")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluicegate-route"), "billing");
    let decision = header(&r, "x-sluicegate-decision").to_owned();
    assert!(
        decision.starts_with("rule=billing; class=billing("),
        "{decision}"
    );

    let r = chat(&gw, &ask("hi there, how are you doing?")).await;
    assert_eq!(header(&r, "x-sluicegate-route"), "chitchat");

    // Far from every class: the confidence is low and the request escalates.
    let r = chat(
        &gw,
        &ask("Quelle est la température de fusion du tungstène ?"),
    )
    .await;
    let decision = header(&r, "x-sluicegate-decision").to_owned();
    assert_eq!(header(&r, "x-sluicegate-route"), "remote", "{decision}");
    assert!(
        decision.starts_with("rule=unsure(confidence=0.") && decision.contains("<0.5); class="),
        "{decision}"
    );
}

#[tokio::test]
async fn bad_input_never_panics_or_stalls_the_encoder() {
    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&policy(&up, &examples_classifier()), &[]).await;
    assert_eq!(
        classifier_settled(&gw).await.1["classifier"]["state"],
        "ready"
    );

    let huge = "lorem ipsum dolor sit amet ".repeat(40_000); // ~200k tokens, ~1 MB
    let bodies = [
        ask(""),
        ask("   \n\t  "),
        json!({"model": "auto", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]}),
        ask(&huge),
        json!({"model": "auto", "messages": [{"role": "system", "content": "be brief"}]}),
    ];
    for body in &bodies {
        let started = Instant::now();
        let r = chat(&gw, body).await;
        let decision = header(&r, "x-sluicegate-decision").to_owned();
        assert_eq!(r.status(), 200, "{decision}");
        assert!(decision.contains("class="), "{decision}");
        assert!(
            !decision.contains("class=error"),
            "the classifier failed on bad input: {decision}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    // Still healthy and still right afterwards.
    let r = chat(&gw, &ask("please refund my last payment")).await;
    assert_eq!(header(&r, "x-sluicegate-route"), "billing");
    assert_eq!(readyz(&gw).await.1["classifier"]["state"], "ready");
}

/// Writes `rows` as JSONL and trains a head with the real CLI against `encoder`.
fn train_head(dir: &Path, encoder: &Path, rows: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("train.jsonl");
    let lines: Vec<String> = rows
        .iter()
        .map(|(text, label)| json!({"text": text, "label": label}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let out = dir.join("head.safetensors");
    let output = run_sluicegate(
        &[
            "router",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--encoder",
            encoder.to_str().unwrap(),
            "--max-epochs",
            "60",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn head_classifier(encoder: &Path, head: &Path) -> String {
    format!(
        "[classifier]\nencoder = \"{}\"\nhead = \"{}\"\non_classifier_error = \"remote\"\ntimeout = \"5s\"\n\n",
        encoder.display(),
        head.display()
    )
}

#[tokio::test]
async fn a_trained_head_routes_and_a_head_from_another_encoder_is_refused() {
    let dir = temp_dir();
    let head = train_head(&dir, &encoder_dir(), &TRAINING);

    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&policy(&up, &head_classifier(&encoder_dir(), &head)), &[]).await;
    assert_eq!(
        classifier_settled(&gw).await.1["classifier"]["state"],
        "ready"
    );
    let r = chat(&gw, &ask("there is a double charge on my credit card")).await;
    let decision = header(&r, "x-sluicegate-decision").to_owned();
    assert_eq!(header(&r, "x-sluicegate-route"), "billing", "{decision}");
    drop(gw);

    // The same weights with a different config.json: a different encoder fingerprint.
    let other = dir.join("other-encoder");
    std::fs::create_dir_all(&other).unwrap();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::os::unix::fs::symlink(encoder_dir().join(file), other.join(file)).unwrap();
    }
    let config = std::fs::read_to_string(encoder_dir().join("config.json")).unwrap();
    std::fs::write(other.join("config.json"), format!("{config}\n")).unwrap();
    let foreign = train_head(&dir.join("foreign"), &other, &TRAINING);

    let gw = Gateway::start(
        &policy(&up, &head_classifier(&encoder_dir(), &foreign)),
        &[],
    )
    .await;
    let (_, body) = classifier_settled(&gw).await;
    assert_eq!(body["classifier"]["state"], "failed", "{body}");
    let reason = body["classifier"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("encoder"), "{reason}");
    // Requests still succeed, on the policy's `on_classifier_error` route.
    let r = chat(&gw, &ask("refund my last payment please")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluicegate-route"), "remote");
    assert!(header(&r, "x-sluicegate-decision").contains("class=error(failed)"));
}
