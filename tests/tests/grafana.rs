//! `deploy/grafana/sluicegate.json` queries only metrics the gateway really exports: every
//! `sluicegate_*` series named in a panel's expression is on `/metrics` after traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{chat, metrics_text, workspace_dir, FakeUpstream, Gateway};

/// Every `sluicegate_...` identifier in `expr`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sluicegate_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_queries_is_exported() {
    let path = workspace_dir().join("deploy/grafana/sluicegate.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut wanted = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            let names = metric_names(t["expr"].as_str().unwrap());
            assert!(
                !names.is_empty(),
                "{} queries no sluicegate metric",
                panel["title"]
            );
            wanted.extend(names);
        }
    }
    assert!(wanted.len() >= 8, "{wanted:?}");

    let up = FakeUpstream::start_default().await;
    // `main` fails (500) and falls back to `backup`, the reference route: the request counts
    // a fallback and an escalation, so every family has a sample.
    let mut toml = openai_backend("bad", &up.openai_url(), "fx-error-500", "");
    toml.push_str(&openai_backend("good", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("main", "bad", &["backup"]));
    toml.push_str(&route("backup", "good", &[]));
    toml.push_str(&routing("main", ""));
    toml.push_str("\n[ledger]\nurl = \"ledger.sqlite\"\nreference_route = \"backup\"\n");
    let gw = Gateway::start(&toml, &[]).await;
    let r = chat(
        &gw,
        &json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    // Rows reach the metrics from the ledger writer: poll briefly.
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics_text(&gw).await;
        if text.contains("sluicegate_fallbacks_total{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    for name in &wanted {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which /metrics does not export:\n{text}"
        );
    }
}
