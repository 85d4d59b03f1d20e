//! OpenTelemetry: the real binary exports one GenAI-convention span per chat request to a
//! local OTLP receiver; message content (in spans and in the ledger) only when opted in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use sluicegate_tests::otlp::{OtlpReceiver, Received};
use sluicegate_tests::policy::single_openai;
use sluicegate_tests::{chat, FakeUpstream, Gateway};

const SECRET: &str = "my account number is 12345678";

async fn run(content: bool) -> (Vec<Received>, Vec<(String, Option<String>, Option<String>)>) {
    let receiver = OtlpReceiver::start().await;
    let up = FakeUpstream::start_default().await;
    let mut toml = single_openai(&up.openai_url(), "fx-chat-ok", "");
    toml.push_str(&format!(
        "\n[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"sluicegate-e2e\"\n\
         export_interval = \"100ms\"\ncapture_content = {content}\n\
         \n[ledger]\nurl = \"ledger.sqlite\"\nstore_content = {content}\n",
        receiver.url()
    ));
    let mut gw = Gateway::start(&toml, &[]).await;
    let ask = |stream: bool| {
        json!({
            "model": "auto",
            "messages": [{"role": "user", "content": SECRET}],
            "max_tokens": 50,
            "temperature": 0.2,
            "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { json!(null) },
        })
    };
    let r = chat(&gw, &ask(false)).await;
    assert_eq!(r.status(), 200);
    let r = chat(&gw, &ask(true)).await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    // A request the gateway refuses still makes a span, with its error.
    let r = chat(&gw, &json!({"model": "auto", "messages": "nope"})).await;
    assert_eq!(r.status(), 400);
    // Not traffic: no span.
    let r = sluicegate_tests::http_client()
        .get(format!("{}/healthz", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Shutting down sends whatever is still queued.
    gw.sigterm();
    assert!(gw.wait().await.success(), "{}", gw.stderr());
    let mut spans = receiver.spans();
    for _ in 0..50 {
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = receiver.spans();
    }
    spans.sort_by_key(|s| s.span.start_time_unix_nano);

    let db = gw.dir().join("ledger.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT request_id, prompt, reply FROM ledger ORDER BY time_ms")
            .fetch_all(&pool)
            .await
            .unwrap();
    (spans, rows)
}

#[tokio::test]
async fn each_chat_request_is_one_genai_span() {
    let (spans, rows) = run(true).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_eq!(rows.len(), 3);

    let whole = &spans[0];
    // SPAN_KIND_CLIENT = 3
    assert_eq!(whole.span.kind, 3);
    assert_eq!(whole.span.name, "chat fx-chat-ok");
    assert!(whole.span.end_time_unix_nano > whole.span.start_time_unix_nano);
    assert_eq!(
        whole.resource_attr("service.name").as_deref(),
        Some("sluicegate-e2e")
    );
    let expect = [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "fx-chat-ok"),
        ("gen_ai.response.model", "fx-chat-ok"),
        ("gen_ai.response.id", "chatcmpl-fxOk7d1a2b3c4d5e6f"),
        ("gen_ai.usage.input_tokens", "19"),
        ("gen_ai.usage.output_tokens", "9"),
        ("gen_ai.response.finish_reasons", "[\"stop\"]"),
        ("gen_ai.request.max_tokens", "50"),
        ("gen_ai.request.temperature", "0.2"),
        ("sluicegate.route", "main"),
        ("sluicegate.requested_model", "auto"),
        ("http.response.status_code", "200"),
    ];
    for (key, value) in expect {
        assert_eq!(
            whole.attr(key).as_deref(),
            Some(value),
            "{key} in {whole:#?}"
        );
    }
    // The span and the ledger row are the same request.
    assert_eq!(whole.attr("sluicegate.request_id").unwrap(), rows[0].0);
    assert!(whole.attr("sluicegate.cost_usd").is_some());

    let streamed = &spans[1];
    assert_eq!(streamed.attr("sluicegate.stream").as_deref(), Some("true"));
    assert_eq!(
        streamed.attr("gen_ai.usage.input_tokens").as_deref(),
        Some("12")
    );
    assert_eq!(
        streamed.attr("gen_ai.usage.output_tokens").as_deref(),
        Some("3")
    );
    assert_eq!(
        streamed.attr("gen_ai.response.finish_reasons").as_deref(),
        Some("[\"stop\"]")
    );

    let refused = &spans[2];
    assert_eq!(
        refused.attr("http.response.status_code").as_deref(),
        Some("400")
    );
    assert!(refused.attr("error.type").is_some(), "{refused:#?}");
    // STATUS_CODE_ERROR = 2
    assert_eq!(refused.span.status.as_ref().map(|s| s.code), Some(2));

    // Content was opted in: in the spans, in the conventions' message shape, and in the ledger.
    let input = whole.attr("gen_ai.input.messages").unwrap();
    let input: serde_json::Value = serde_json::from_str(&input).unwrap();
    assert_eq!(input[0]["role"], "user");
    assert_eq!(input[0]["parts"][0]["content"], SECRET);
    let output = whole.attr("gen_ai.output.messages").unwrap();
    assert!(
        output.contains("Hello! How can I help you today?"),
        "{output}"
    );
    assert!(streamed
        .attr("gen_ai.output.messages")
        .unwrap()
        .contains("Hello there!"));
    assert!(rows[0].1.as_deref().unwrap().contains(SECRET));
    assert_eq!(
        rows[0].2.as_deref(),
        Some("Hello! How can I help you today?")
    );
    assert_eq!(rows[1].2.as_deref(), Some("Hello there!"));
}

#[tokio::test]
async fn content_is_kept_out_unless_the_policy_opts_in() {
    let (spans, rows) = run(false).await;
    assert_eq!(spans.len(), 3);
    for s in &spans {
        assert_eq!(s.attr("gen_ai.input.messages"), None);
        assert_eq!(s.attr("gen_ai.output.messages"), None);
        let all = format!("{:?}", s.span.attributes);
        assert!(!all.contains("12345678"), "content leaked: {all}");
    }
    assert!(spans[0].attr("gen_ai.usage.input_tokens").is_some());
    for (id, prompt, reply) in rows {
        assert_eq!((prompt, reply), (None, None), "row {id} holds content");
    }
}
