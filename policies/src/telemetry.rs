//! `[telemetry]`: OpenTelemetry export of one span per chat request (GenAI semantic
//! conventions), over OTLP/HTTP with protobuf bodies.

use crate::error::Errors;
use crate::raw::RawTelemetry;
use crate::values;

/// Where spans go and what they may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318`; spans are posted to
    /// `<endpoint>/v1/traces`. Plain http only (the exporter has no TLS): a local
    /// OpenTelemetry Collector forwards further. Without it nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported resource. Default `sluicegate`.
    pub service_name: String,
    /// Put the request's messages and the reply in the span (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: prompts often hold personal data.
    pub capture_content: bool,
    /// How often finished spans are sent. Default 5 s.
    pub export_interval: std::time::Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "sluicegate".to_owned(),
            capture_content: false,
            export_interval: std::time::Duration::from_secs(5),
        }
    }
}

pub(crate) fn telemetry(raw: Option<RawTelemetry>, errors: &mut Errors) -> TelemetryConfig {
    let raw = raw.unwrap_or_default();
    let default = TelemetryConfig::default();
    let otlp_endpoint = raw.otlp_endpoint.and_then(|u| {
        let checked = values::base_url(&u).and_then(|url| {
            if url.starts_with("https://") {
                // The exporter is built without TLS: say so now rather than drop every span.
                Err(format!(
                    "{url:?}: only plain http is supported; send spans to an OpenTelemetry \
                     Collector on the box or in the cluster (http://...:4318) and let it forward \
                     over TLS"
                ))
            } else {
                Ok(url)
            }
        });
        errors.check("telemetry.otlp_endpoint", checked)
    });
    let service_name = errors
        .non_blank("telemetry.service_name", raw.service_name)
        .unwrap_or(default.service_name);
    let export_interval = raw
        .export_interval
        .and_then(|d| errors.check("telemetry.export_interval", values::duration(&d, false)))
        .unwrap_or(default.export_interval);
    TelemetryConfig {
        otlp_endpoint,
        service_name,
        capture_content: raw.capture_content.unwrap_or(false),
        export_interval,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::parse;

    const BASE: &str = r#"
[backends.a]
kind = "openai"
base_url = "http://127.0.0.1:9"
model = "m"
[routes.r]
backend = "a"
[policy]
default = "r"
"#;

    #[test]
    fn telemetry_is_off_unless_an_endpoint_is_given() {
        let p = parse(BASE).unwrap();
        assert_eq!(p.telemetry.otlp_endpoint, None);
        assert!(!p.telemetry.capture_content);
        let src = format!(
            "{BASE}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/\"\n\
             service_name = \"gw\"\ncapture_content = true\nexport_interval = \"200ms\"\n"
        );
        let p = parse(&src).unwrap();
        assert_eq!(
            p.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(p.telemetry.service_name, "gw");
        assert!(p.telemetry.capture_content);
        assert_eq!(p.telemetry.export_interval.as_millis(), 200);
    }

    #[test]
    fn bad_telemetry_keys_are_named() {
        let src =
            format!("{BASE}[telemetry]\notlp_endpoint = \"grpc://x\"\nexport_interval = \"0s\"\nservice_name = \" \"\n");
        let e = parse(&src).unwrap_err().to_string();
        assert!(e.contains("telemetry.otlp_endpoint"), "{e}");
        assert!(e.contains("telemetry.export_interval"), "{e}");
        assert!(e.contains("telemetry.service_name"), "{e}");
        let src = format!("{BASE}[telemetry]\notlp_endpoint = \"https://otel.example.com\"\n");
        let e = parse(&src).unwrap_err().to_string();
        assert!(
            e.contains("telemetry.otlp_endpoint") && e.contains("only plain http"),
            "{e}"
        );
        let src = format!("{BASE}[telemetry]\nendpoint = \"http://x\"\n");
        let e = parse(&src).unwrap_err().to_string();
        assert!(e.contains("endpoint"), "{e}");
    }
}
