//! OpenTelemetry export: one `CLIENT` span per chat request, named and attributed after the
//! GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`,
//! `gen_ai.response.finish_reasons`, ...), plus `sluicegate.*` routing facts. Spans are
//! batched and sent over OTLP/HTTP (protobuf) to `telemetry.otlp_endpoint` by the SDK's own
//! export thread, never on the request path. Message content is attached only when the
//! policy sets `telemetry.capture_content`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{Span, SpanKind, Status, Tracer, TracerProvider};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde_json::json;
use sluicegate_policies::TelemetryConfig;

use crate::ledger::{Finished, FinishedObserver};

/// The span exporter; cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::Tracer,
    capture_content: bool,
}

impl Telemetry {
    /// Starts the exporter when the policy names an endpoint; `Ok(None)` otherwise.
    pub fn start(config: &TelemetryConfig) -> anyhow::Result<Option<Telemetry>> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(Duration::from_secs(10))
            .build()?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(config.export_interval)
            .with_max_queue_size(8192)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sluicegate");
        tracing::info!(endpoint = %endpoint, "exporting OpenTelemetry spans over OTLP/HTTP");
        Ok(Some(Telemetry(Arc::new(Inner {
            provider,
            tracer,
            capture_content: config.capture_content,
        }))))
    }

    /// Records the span of one chat request.
    pub fn record(&self, f: &Finished<'_>) {
        let o = f.outcome;
        let request_model = o
            .upstream_model
            .clone()
            .or_else(|| o.requested_model.clone())
            .unwrap_or_default();
        let name = if request_model.is_empty() {
            "chat".to_owned()
        } else {
            format!("chat {request_model}")
        };
        let mut span = self
            .0
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(f.arrived)
            .with_attributes(attributes(f, request_model, self.0.capture_content))
            .start(&self.0.tracer);
        if f.status >= 400 {
            let why = o.error_type.clone().unwrap_or_else(|| f.status.to_string());
            span.set_status(Status::error(why));
        }
        span.end_with_timestamp(f.arrived + f.latency);
    }

    /// Sends every span still queued and stops the export thread.
    pub fn shutdown(&self) {
        if let Err(e) = self.0.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry export did not shut down cleanly");
        }
    }
}

fn attributes(f: &Finished<'_>, request_model: String, content: bool) -> Vec<KeyValue> {
    let o = f.outcome;
    let mut a = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("http.response.status_code", i64::from(f.status)),
        KeyValue::new("sluicegate.request_id", f.request_id.to_owned()),
        KeyValue::new("sluicegate.stream", o.stream),
    ];
    let mut text = |key: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(KeyValue::new(key, v.clone()));
        }
    };
    text("sluicegate.requested_model", &o.requested_model);
    text("sluicegate.route", &o.route);
    text("sluicegate.backend", &o.backend);
    text("sluicegate.rule", &o.rule);
    text("sluicegate.compared", &o.compared);
    text("sluicegate.class", &o.class);
    text("sluicegate.classifier_error", &o.classifier_error);
    text("gen_ai.response.id", &o.response_id);
    text("gen_ai.response.model", &o.response_model);
    text("error.type", &o.error_type);
    if !request_model.is_empty() {
        a.push(KeyValue::new("gen_ai.request.model", request_model));
    }
    if let Some(p) = o.provider {
        // Well-known names of the conventions; the in-process model is ours.
        let name = if p == "local" { "sluicegate.local" } else { p };
        a.push(KeyValue::new("gen_ai.provider.name", name));
    }
    if let Some(c) = o.confidence {
        a.push(KeyValue::new("sluicegate.confidence", f64::from(c)));
    }
    if let Some((class, p)) = &o.runner_up {
        a.push(KeyValue::new("sluicegate.runner_up", class.clone()));
        a.push(KeyValue::new(
            "sluicegate.runner_up_confidence",
            f64::from(*p),
        ));
    }
    if let Some(ms) = o.classifier_ms {
        a.push(KeyValue::new("sluicegate.classifier_ms", ms));
    }
    if let Some(s) = o.similarity {
        a.push(KeyValue::new("sluicegate.similarity", f64::from(s)));
    }

    if o.attempts.len() > 1 {
        let failed = o.attempts[..o.attempts.len() - 1].join(",");
        a.push(KeyValue::new("sluicegate.fallbacks", failed));
    }
    if let Some(n) = o.input_tokens {
        a.push(KeyValue::new("gen_ai.usage.input_tokens", i64::from(n)));
    }
    if let Some(n) = o.output_tokens {
        a.push(KeyValue::new("gen_ai.usage.output_tokens", i64::from(n)));
    }
    if o.input_tokens.is_some() {
        a.push(KeyValue::new(
            "sluicegate.usage.estimated",
            o.tokens_estimated,
        ));
    }
    if !o.finish_reasons.is_empty() {
        let reasons: Vec<StringValue> = o.finish_reasons.iter().cloned().map(Into::into).collect();
        a.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(reasons)),
        ));
    }
    let p = &o.request_params;
    if let Some(n) = p.max_tokens {
        a.push(KeyValue::new("gen_ai.request.max_tokens", i64::from(n)));
    }
    if let Some(t) = p.temperature {
        a.push(KeyValue::new("gen_ai.request.temperature", t));
    }
    if let Some(t) = p.top_p {
        a.push(KeyValue::new("gen_ai.request.top_p", t));
    }
    if let Some(ms) = o.ttft {
        a.push(KeyValue::new(
            "sluicegate.time_to_first_token_ms",
            ms.as_secs_f64() * 1000.0,
        ));
    }
    if let Some(cost) = f.row.and_then(|r| r.cost_usd) {
        a.push(KeyValue::new("sluicegate.cost_usd", cost.to_string()));
    }
    if content {
        if let Some(messages) = o.prompt.as_deref().and_then(input_messages) {
            a.push(KeyValue::new("gen_ai.input.messages", messages));
        }
        if let Some(reply) = &o.reply {
            let out = json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": reply}],
                "finish_reason": o.finish_reasons.first(),
            }]);
            a.push(KeyValue::new("gen_ai.output.messages", out.to_string()));
        }
    }
    a
}

/// OpenAI messages (JSON) in the conventions' shape: `[{role, parts: [{type, content}]}]`.
fn input_messages(openai: &str) -> Option<String> {
    let messages: Vec<serde_json::Value> = serde_json::from_str(openai).ok()?;
    let converted: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let parts: Vec<serde_json::Value> = match &m["content"] {
                serde_json::Value::String(s) => vec![json!({"type": "text", "content": s})],
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .map(|t| json!({"type": "text", "content": t}))
                    .collect(),
                _ => Vec::new(),
            };
            json!({"role": m["role"], "parts": parts})
        })
        .collect();
    serde_json::to_string(&converted).ok()
}

impl FinishedObserver for Telemetry {
    fn finished(&self, f: &Finished<'_>) {
        self.record(f)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::SystemTime;

    use super::*;
    use crate::ledger::Outcome;

    fn finished(outcome: &Outcome, status: u16) -> Vec<KeyValue> {
        let f = Finished {
            request_id: "req-1",
            arrived: SystemTime::UNIX_EPOCH,
            latency: Duration::from_millis(30),
            status,
            outcome,
            row: None,
        };
        attributes(&f, "gpt-4o-mini".into(), true)
    }

    fn get<'a>(a: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        a.iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn spans_follow_the_genai_conventions() {
        let outcome = Outcome {
            provider: Some("local"),
            input_tokens: Some(12),
            output_tokens: Some(3),
            finish_reasons: vec!["stop".into()],
            attempts: vec!["remote".into(), "local".into()],
            prompt: Some(r#"[{"role":"user","content":"hi"}]"#.into()),
            reply: Some("hello".into()),
            ..Default::default()
        };
        let a = finished(&outcome, 200);
        assert_eq!(get(&a, "gen_ai.operation.name"), Some(&Value::from("chat")));
        assert_eq!(
            get(&a, "gen_ai.provider.name"),
            Some(&Value::from("sluicegate.local"))
        );
        assert_eq!(get(&a, "gen_ai.usage.input_tokens"), Some(&Value::I64(12)));
        assert_eq!(
            get(&a, "sluicegate.fallbacks"),
            Some(&Value::from("remote"))
        );
        let input = get(&a, "gen_ai.input.messages").unwrap().as_str();
        assert_eq!(
            input,
            r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#
        );
        assert!(get(&a, "gen_ai.output.messages")
            .unwrap()
            .as_str()
            .contains("hello"));
    }

    #[test]
    fn content_stays_out_unless_opted_in() {
        let outcome = Outcome {
            prompt: Some("[]".into()),
            reply: Some("secret".into()),
            ..Default::default()
        };
        let f = Finished {
            request_id: "r",
            arrived: SystemTime::UNIX_EPOCH,
            latency: Duration::ZERO,
            status: 200,
            outcome: &outcome,
            row: None,
        };
        let a = attributes(&f, String::new(), false);
        assert!(get(&a, "gen_ai.output.messages").is_none());
        assert!(get(&a, "gen_ai.input.messages").is_none());
    }
}
