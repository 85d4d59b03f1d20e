//! The default policy with the real SmolLM2 model in the real binary, offline: `/readyz`
//! waits for the model, the official `openai` Python client streams the local route's reply,
//! an escalation to the (keyless) remote route falls back to the local model and says so,
//! and the ledger prices local requests by the box's cost per hour. A busy local model
//! spills a request over its wait budget to the route's fallback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluicegate_gateway::usage::Decimal;
use sluicegate_tests::policy::{openai_backend, route, routing};
use sluicegate_tests::{
    chat, header, http_client, ledger_rows, metrics_text, workspace_dir, FakeUpstream, Gateway,
};

fn gguf() -> String {
    let path = workspace_dir().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models",
        path.display()
    );
    path.display().to_string()
}

/// The embedded default policy, with the model files found from this checkout.
fn default_policy() -> String {
    let policy = sluicegate_policies::DEFAULT_POLICY;
    let relative = "gguf = \"models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"";
    let encoder = "encoder = \"models/minilm\"";
    assert!(
        policy.contains(relative) && policy.contains(encoder),
        "the default policy's model paths changed"
    );
    let minilm = sluicegate_tests::minilm_dir();
    policy
        .replace(relative, &format!("gguf = \"{}\"", gguf()))
        .replace(encoder, &format!("encoder = \"{}\"", minilm.display()))
}

/// Polls `/readyz` until 200. Every 503 on the way must be the model loading.
async fn wait_ready(gw: &Gateway) -> Value {
    let client = http_client();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let r = client
            .get(format!("{}/readyz", gw.url()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status == 200 {
            return body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            body["backends"]["smollm2"]["loading"] == true
                || body["classifier"]["state"] == "loading",
            "{body}"
        );
        assert_eq!(body["status"], "not_ready");
        assert!(
            Instant::now() < until,
            "the model never became ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn python_stream(base_url: &str, model: &str, prompt: &str) -> Value {
    let python = sluicegate_tests::python::openai_python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/stream_reply.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(base_url)
        .args([model, prompt])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn the_default_policy_answers_offline_from_the_local_model() {
    let mut gw = Gateway::start(&default_policy(), &[]).await;
    let ready = wait_ready(&gw).await;
    assert_eq!(ready["backends"]["smollm2"]["available"], true, "{ready}");
    assert_eq!(ready["backends"]["openai"]["available"], false, "{ready}");
    assert!(
        gw.stderr().contains("backend unavailable") && gw.stderr().contains("backend=openai"),
        "start-up must report the keyless remote route:\n{}",
        gw.stderr()
    );

    // The official client streams the local route's reply.
    let url = format!("{}/v1", gw.url());
    let reply = tokio::task::spawn_blocking(move || {
        python_stream(&url, "local", "What is the capital of France?")
    })
    .await
    .unwrap();
    assert_eq!(
        reply["content"], "The capital of France is Paris.",
        "{reply}"
    );
    assert_eq!(reply["finish_reason"], "stop");
    assert_eq!(reply["route"], "local");
    assert!(reply["pieces"].as_u64().unwrap() >= 3, "{reply}");
    assert!(
        reply["usage"]["completion_tokens"].as_u64().unwrap() >= 7,
        "{reply}"
    );

    // An escalation to the remote route (no OPENAI_API_KEY) is answered locally, and says so.
    let response = chat(
        &gw,
        &json!({
            "model": "remote",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "temperature": 0,
            "max_tokens": 40,
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-sluicegate-route"), "local");
    assert_eq!(
        header(&response, "x-sluicegate-fallback"),
        "remote(unavailable)"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The capital of France is Paris."
    );

    // Busy time is on /metrics too.
    let metrics = metrics_text(&gw).await;
    let busy = metrics
        .lines()
        .find(|l| l.starts_with("sluicegate_model_busy_seconds_total{route=\"local\"}"))
        .unwrap_or_else(|| panic!("no busy time on /metrics:\n{metrics}"));
    let seconds: f64 = busy.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(seconds > 0.0, "{busy}");

    // The ledger prices both by the box's busy time, against the remote route's prices.
    gw.sigterm();
    assert!(gw.wait().await.success(), "{}", gw.stderr());
    let db = gw.dir().join("sluicegate-ledger.sqlite");
    let rows = ledger_rows(&db).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in &rows {
        assert_eq!(row.route.as_deref(), Some("local"));
        assert_eq!(row.status, 200);
        assert!(!row.tokens_estimated);
        let busy = row.compute_ms.expect("a local row has busy time");
        assert!(busy > 0.0 && busy <= row.latency_ms, "{row:?}");
        // cost_per_hour = 0.05 and a zero token price: cost is the busy time's share.
        let expected = sluicegate_gateway::ledger::compute_cost(
            "0.05".parse().unwrap(),
            Duration::from_micros((busy * 1000.0).round() as u64),
        );
        let cost = row.cost_usd.expect("priced");
        let diff = (cost - expected).abs();
        assert!(
            diff <= "0.000000001".parse().unwrap(),
            "{cost} vs {expected}"
        );
        let counterfactual = row.counterfactual_cost_usd.expect("reference route priced");
        assert!(counterfactual > Decimal::ZERO);
    }
    assert_eq!(rows[1].fallbacks.as_deref(), Some("remote"));
}

/// A local route with one slot and a 20 ms wait budget, falling back to a fake remote: while
/// a long answer holds the slot, the next request goes to the fallback at once, and says so.
#[tokio::test]
async fn a_request_over_the_local_wait_budget_spills_to_the_fallback() {
    let up = FakeUpstream::start_default().await;
    let mut toml = format!(
        "[backends.smol]\nkind = \"local\"\ngguf = \"{}\"\ncost_per_hour = \"0.05\"\n\
         max_batch = 1\nqueue = 4\nmax_wait_ms = 20\n\n",
        gguf()
    );
    toml.push_str(&openai_backend("big", &up.openai_url(), "fx-chat-ok", ""));
    toml.push_str(&route("local", "smol", &["remote"]));
    toml.push_str(&route("remote", "big", &[]));
    toml.push_str(&routing("local", ""));
    let mut gw = Gateway::start(&toml, &[]).await;
    let client = http_client();
    let until = Instant::now() + Duration::from_secs(120);
    while client
        .get(format!("{}/readyz", gw.url()))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < until, "never ready: {}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ask = |stream: bool, max_tokens: u32| {
        json!({
            "model": "local",
            "stream": stream,
            "messages": [{"role": "user", "content": "Count from 1 to 300, separated by commas."}],
            "temperature": 0,
            "max_tokens": max_tokens,
        })
    };
    // One answer teaches the model thread how long a slot is held.
    let warm = chat(&gw, &ask(false, 40)).await;
    assert_eq!(warm.status(), 200);
    assert_eq!(header(&warm, "x-sluicegate-route"), "local");
    warm.bytes().await.unwrap();
    // A long stream holds the only slot (its first chunk has arrived).
    let long = chat(&gw, &ask(true, 1500)).await;
    assert_eq!(long.status(), 200);
    assert_eq!(header(&long, "x-sluicegate-route"), "local");
    let spilled = chat(&gw, &ask(false, 40)).await;
    assert_eq!(spilled.status(), 200);
    assert_eq!(header(&spilled, "x-sluicegate-route"), "remote");
    let fallback = header(&spilled, "x-sluicegate-fallback").to_owned();
    assert!(fallback.starts_with("local("), "{fallback}");
    let body: Value = spilled.json().await.unwrap();
    assert_eq!(body["model"], "fx-chat-ok");
    drop(long);

    // Nothing lost: a ledger row for each, the spilled one naming the route it left.
    gw.sigterm();
    assert!(gw.wait().await.success(), "{}", gw.stderr());
    let rows = ledger_rows(&gw.dir().join("sluicegate-ledger.sqlite")).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let spilled = rows
        .iter()
        .find(|r| r.route.as_deref() == Some("remote"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(spilled.fallbacks.as_deref(), Some("local"));
    assert_eq!(spilled.status, 200);
}
