//! API keys never reach a client or a log line, even at `RUST_LOG=debug` and even when the
//! upstream quotes them back in an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sluicegate_tests::policy::single_openai;
use sluicegate_tests::{chat_with, FakeUpstream, Gateway};

/// The key the fake upstream's `auth-401.json` quotes.
const KEY: &str = "sk-live-SECRET-4242abcd";
const CLIENT_TOKEN: &str = "client-token-Zq81-do-not-log";

#[tokio::test]
async fn a_key_quoted_by_the_upstream_is_not_leaked() {
    let up = FakeUpstream::start_default().await;
    let toml = single_openai(
        &up.openai_url(),
        "fx-auth-401",
        "api_key_env = \"SY_SECRET_KEY\"",
    );
    let mut gw = Gateway::start(&toml, &[("SY_SECRET_KEY", KEY), ("RUST_LOG", "debug")]).await;
    let bearer = format!("Bearer {CLIENT_TOKEN}");

    let mut answers = Vec::new();
    for stream in [false, true] {
        let body = json!({
            "model": "auto",
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]
        });
        let response = chat_with(&gw, &body, &[("authorization", &bearer)]).await;
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        assert!(
            status >= 400,
            "stream {stream}: a 401 upstream cannot succeed: {text}"
        );
        answers.push(format!("{status} {headers} {text}"));
    }

    // The upstream really got the key (so the test exercises something).
    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }

    gw.sigterm();
    gw.wait().await;
    let stderr = gw.stderr();
    assert!(
        stderr.to_lowercase().contains("debug"),
        "RUST_LOG=debug should produce debug lines; stderr:\n{stderr}"
    );
    for secret in [KEY, "4242abcd", CLIENT_TOKEN] {
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "the response leaks {secret:?}: {answer}"
            );
        }
        assert!(
            !stderr.contains(secret),
            "stderr leaks {secret:?}:\n{stderr}"
        );
    }
}
