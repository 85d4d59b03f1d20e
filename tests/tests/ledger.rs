//! The loss budget: every request that reaches the gateway leaves exactly one ledger row,
//! successes, errors and clients that leave early alike, and SIGTERM flushes them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{http_client, ledger_rows, FakeUpstream, Gateway};

fn body(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn every_request_leaves_exactly_one_row() {
    let up = FakeUpstream::start_default().await;
    let dir = sluicegate_tests::gateway::temp_dir();
    let db = dir.join("ledger.sqlite");
    let mut toml = openai_backend("ok", &up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&openai_backend("bad", &up.openai_url(), "fx-error-500", ""));
    toml.push_str(&openai_backend(
        "slow",
        &up.openai_url(),
        "fx-slow-first-byte",
        "",
    ));
    toml.push_str(&route("ok", "ok", &[]));
    toml.push_str(&route("bad", "bad", &[]));
    toml.push_str(&route("slow", "slow", &[]));
    toml.push_str(&routing("ok", ""));
    toml.push_str(&format!(
        "[ledger]\nurl = \"{}\"\nreference_route = \"bad\"\n",
        db.display()
    ));
    let mut gw = Gateway::start(&toml, &[]).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    let client = http_client();

    let mut sent = 0;
    for _ in 0..5 {
        let r = client
            .post(&url)
            .json(&body("ok", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        sent += 1;
    }
    for _ in 0..3 {
        let r = client
            .post(&url)
            .json(&body("ok", true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        sent += 1;
    }
    for _ in 0..2 {
        let r = client
            .post(&url)
            .json(&body("bad", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502);
        sent += 1;
    }
    let r = client.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(&url)
        .json(&body("no-such-model", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    sent += 2;
    // Two clients give up before the slow upstream's first byte.
    for _ in 0..2 {
        let quick = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert!(quick
            .post(&url)
            .json(&body("slow", true))
            .send()
            .await
            .is_err());
        sent += 1;
    }
    // Let the gateway notice the departed clients, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.sigterm();
    let status = gw.wait().await;
    assert!(status.success(), "exit status {status:?}\n{}", gw.stderr());

    let rows = ledger_rows(&db).await;
    assert_eq!(rows.len(), sent, "one row per request: {rows:#?}");
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.status).or_default() += 1;
    }
    assert_eq!(
        by_status,
        BTreeMap::from([(200, 8), (400, 1), (404, 1), (499, 2), (502, 2)]),
        "{rows:#?}"
    );
    let ok: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert!(ok.iter().all(|r| r.route.as_deref() == Some("ok")));
    assert!(ok
        .iter()
        .all(|r| r.input_tokens.is_some() && r.cost_usd.is_some()));
    assert!(ok.iter().all(|r| r.counterfactual_cost_usd.is_some()));
    assert_eq!(ok.iter().filter(|r| r.stream).count(), 3);
    assert!(ok.iter().all(|r| r.ttft_ms.is_some()));
    let failed: Vec<_> = rows.iter().filter(|r| r.status == 502).collect();
    assert!(failed
        .iter()
        .all(|r| r.error_type.as_deref() == Some("upstream_status")));
    let left: Vec<_> = rows.iter().filter(|r| r.status == 499).collect();
    assert!(left
        .iter()
        .all(|r| r.error_type.as_deref() == Some("client_closed")));
    let bad_json = rows.iter().find(|r| r.status == 400).unwrap();
    assert_eq!(bad_json.route, None);
}
