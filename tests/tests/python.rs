//! The official `openai` Python package talks to the gateway as it would to OpenAI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sluicegate_tests::policy::single_openai;
use sluicegate_tests::{FakeUpstream, Gateway};

#[tokio::test]
async fn the_official_openai_python_client_works() {
    let python = sluicegate_tests::python::openai_python();

    let up = FakeUpstream::start_default().await;
    let gw = Gateway::start(&single_openai(&up.openai_url(), "fx-chat-ok", ""), &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/openai_client.py");
    let url = format!("{}/v1", gw.url());
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&url)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the script failed:\n{stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    let results: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));

    let complete = &results["complete"];
    assert_eq!(complete["object"], "chat.completion", "{results}");
    assert_eq!(complete["model"], "fx-chat-ok");
    assert_eq!(complete["content"], "Hello! How can I help you today?");
    assert_eq!(complete["finish_reason"], "stop");
    assert_eq!(complete["total_tokens"], 28);

    let stream = &results["stream"];
    assert_eq!(stream["content"], "Hello there!", "{results}");
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(stream["total_tokens"], 15);
    assert!(stream["chunks"].as_u64().unwrap() >= 5, "{results}");

    let error = &results["error"];
    assert_eq!(error["raised"], "NotFoundError", "{results}");
    assert_eq!(error["status"], 404);
    assert_eq!(error["code"], "model_not_found");

    let requests = up.requests();
    let models: Vec<&str> = requests.iter().map(|r| r.model()).collect();
    assert_eq!(
        models,
        ["fx-chat-ok", "fx-chat-ok"],
        "the unknown model never reached it"
    );
}
