//! `[telemetry]`: OpenTelemetry export of one span per chat request (GenAI semantic
//! conventions), over OTLP/HTTP with protobuf bodies.

use crate::error::Errors;
use crate::model::TelemetryConfig;
use crate::raw::RawTelemetry;
use crate::values;

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
