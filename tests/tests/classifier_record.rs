//! The classifier's verdict reaches every reader of the request's record, end to end with the
//! real binary and the real encoder (`models/minilm`): the ledger row, the `/metrics` samples
//! (the `class` label and the classifier histogram), the exported span and the decision
//! header all say the same class, confidence and runner-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use sluicegate_tests::otlp::OtlpReceiver;
use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{chat, header, ledger_rows, metrics_text};
use sluicegate_tests::{FakeUpstream, Gateway};

fn encoder_dir() -> PathBuf {
    sluicegate_tests::minilm_dir()
}

#[tokio::test]
async fn the_verdict_reaches_the_ledger_the_metrics_the_span_and_the_header() {
    let receiver = OtlpReceiver::start().await;
    let up = FakeUpstream::start_default().await;
    let mut toml = openai_backend("small", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend("large", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("billing", "small", &[]));
    toml.push_str(&route("remote", "large", &[]));
    toml.push_str(&format!(
        r#"[classifier]
encoder = "{}"
on_classifier_error = "remote"
timeout = "5s"
min_similarity = 0.3

[classes.billing]
examples = ["I was charged twice", "refund my last payment", "why is my invoice higher this month"]

[classes.chitchat]
examples = ["hello!", "how are you today?", "tell me a joke"]

[telemetry]
otlp_endpoint = "{}"
export_interval = "100ms"

[ledger]
url = "ledger.sqlite"

"#,
        encoder_dir().display(),
        receiver.url()
    ));
    toml.push_str(&routing(
        "remote",
        r#"rules = [
    { name = "unfamiliar", route = "remote", when = { unknown = true } },
    { name = "billing", route = "billing", when = { class = "billing" } },
]"#,
    ));
    let mut gw = Gateway::start(&toml, &[]).await;
    // Wait for the encoder: until then requests take `on_classifier_error`.
    gw.wait_ready(Duration::from_secs(60)).await;
    let ask = json!({"model": "auto", "messages": [
        {"role": "user", "content": "I think I was charged twice for my last order"}
    ]});
    let r = chat(&gw, &ask).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluicegate-route"), "billing");
    let decision = header(&r, "x-sluicegate-decision").to_owned();
    assert!(
        decision.starts_with("rule=billing; class=billing(")
            && decision.contains("; runner_up=chitchat("),
        "{decision}"
    );
    let _ = r.text().await.unwrap();

    // A request unlike both classes' examples is `unknown` and escalates.
    let far = json!({"model": "auto", "messages": [
        {"role": "user", "content": "Photosynthesis converts light into chemical energy in chloroplasts."}
    ]});
    let r = chat(&gw, &far).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-sluicegate-route"), "remote");
    let far_decision = header(&r, "x-sluicegate-decision").to_owned();
    assert!(
        far_decision.starts_with("rule=unfamiliar(unknown); class=unknown(similarity=0.")
            && far_decision.contains("<0.3); runner_up="),
        "{far_decision}"
    );
    let _ = r.text().await.unwrap();

    // The metrics: the class label and one classification timed.
    let metrics = metrics_text(&gw).await;
    let sample = metrics
        .lines()
        .find(|l| l.starts_with("sluicegate_requests_total{") && l.contains("class=\"billing\""))
        .unwrap_or_else(|| panic!("no request counted under class billing:\n{metrics}"));
    assert!(sample.ends_with(" 1"), "{sample}");
    let timed = metrics
        .lines()
        .find(|l| l.starts_with("sluicegate_classifier_duration_seconds_count"))
        .unwrap_or_else(|| panic!("no classifier histogram:\n{metrics}"));
    assert!(timed.ends_with(" 2"), "{timed}");
    let unknown = metrics
        .lines()
        .find(|l| l.starts_with("sluicegate_requests_total{") && l.contains("class=\"unknown\""))
        .unwrap_or_else(|| panic!("no request counted under class unknown:\n{metrics}"));
    assert!(unknown.ends_with(" 1"), "{unknown}");

    gw.sigterm();
    assert!(gw.wait().await.success(), "{}", gw.stderr());

    // The ledger row.
    let rows = ledger_rows(&gw.dir().join("ledger.sqlite")).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = rows
        .iter()
        .find(|r| r.class.as_deref() != Some("unknown"))
        .unwrap();
    assert_eq!(row.class.as_deref(), Some("billing"));
    assert_eq!(row.rule.as_deref(), Some("billing"));
    let confidence = row.confidence.unwrap();
    assert!((0.0..=1.0).contains(&confidence), "{row:?}");
    assert!(
        decision.contains(&format!("class=billing({confidence:.2})")),
        "{decision} vs {row:?}"
    );
    assert!(row.classifier_ms.unwrap() > 0.0, "{row:?}");
    assert_eq!(row.runner_up.as_deref(), Some("chitchat"), "{row:?}");
    assert!(row.similarity.unwrap() >= 0.3, "{row:?}");
    let far_row = rows
        .iter()
        .find(|r| r.class.as_deref() == Some("unknown"))
        .unwrap();
    assert_eq!(far_row.rule.as_deref(), Some("unfamiliar"), "{far_row:?}");
    assert_eq!(far_row.compared.as_deref(), Some("unknown"), "{far_row:?}");
    assert!(far_row.similarity.unwrap() < 0.3, "{far_row:?}");
    assert!(
        far_row.runner_up.is_some(),
        "the nearest class: {far_row:?}"
    );

    // The span.
    let mut spans = receiver.spans();
    for _ in 0..50 {
        if spans.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = receiver.spans();
    }
    let span = spans
        .iter()
        .find(|s| s.attr("sluicegate.class").as_deref() == Some("billing"))
        .expect("the billing request's span exported");
    assert_eq!(span.attr("sluicegate.class").as_deref(), Some("billing"));
    assert_eq!(span.attr("sluicegate.rule").as_deref(), Some("billing"));
    let c: f64 = span.attr("sluicegate.confidence").unwrap().parse().unwrap();
    assert!(
        (c - f64::from(confidence)).abs() < 1e-6,
        "{c} vs {confidence}"
    );
    assert!(span.attr("sluicegate.classifier_ms").is_some());
    assert_eq!(
        span.attr("sluicegate.runner_up").as_deref(),
        Some("chitchat")
    );
    let far_span = spans
        .iter()
        .find(|s| s.attr("sluicegate.class").as_deref() == Some("unknown"))
        .expect("the unknown request's span exported");
    assert_eq!(
        far_span.attr("sluicegate.compared").as_deref(),
        Some("unknown")
    );
    let s: f64 = far_span
        .attr("sluicegate.similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!(s < 0.3, "{s}");
}
