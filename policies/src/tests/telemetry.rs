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
