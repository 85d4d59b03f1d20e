//! Validation: defaults, cross-references, every error collected.

use std::time::Duration;

use rust_decimal::Decimal;

use super::{assert_has, errors, single_error, MINIMAL};
use crate::{BackendKind, PriceSource, ServerConfig, Timeouts};

#[test]
fn defaults_are_applied() {
    let p = crate::parse(MINIMAL).unwrap();
    assert_eq!(p.server, ServerConfig::default());
    assert_eq!(p.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(p.server.body_limit, 4 * 1024 * 1024);
    assert_eq!(p.server.request_timeout, Duration::from_secs(600));
    assert_eq!(p.server.shutdown_grace, Duration::from_secs(30));
    let b = &p.backends["openai"];
    assert_eq!(b.name, "openai");
    assert_eq!(b.timeouts, Timeouts::default());
    assert_eq!(b.timeouts.connect, Duration::from_secs(5));
    assert_eq!(b.timeouts.first_byte, Duration::from_secs(60));
    assert_eq!(b.timeouts.total, Duration::from_secs(600));
    assert_eq!(b.kind.base_url(), "https://api.openai.com/v1");
    let r = &p.routes["small"];
    assert_eq!(r.name, "small");
    // No `price`: gpt-4o-mini's list price comes from the bundled table.
    assert_eq!(r.price_source, PriceSource::Bundled);
    assert_eq!(r.price.input_per_mtok, Decimal::new(15, 2));
    assert_eq!(r.price.output_per_mtok, Decimal::new(60, 2));
    assert!(r.fallback.is_empty() && r.description.is_none());
    assert_eq!(
        p.routing.route_header.as_deref(),
        Some("x-sluicegate-route")
    );
    assert!(p.routing.honor_model);
    assert!(p.routing.rules.is_empty());
}

#[test]
fn a_route_price_wins_over_the_bundled_table_and_unknown_models_cost_zero() {
    let src = MINIMAL.replace(
        "backend = \"openai\"\n",
        "backend = \"openai\"\nprice = { input = \"0.5\", output = \"1\" }\n",
    );
    let r = crate::parse(&src).unwrap().routes["small"].clone();
    assert_eq!(r.price_source, PriceSource::Policy);
    assert_eq!(r.price.input_per_mtok, Decimal::new(5, 1));
    let src = MINIMAL.replace("gpt-4o-mini", "llama3.2:1b");
    let r = crate::parse(&src).unwrap().routes["small"].clone();
    assert_eq!(r.price_source, PriceSource::Unknown);
    assert!(r.price.input_per_mtok.is_zero() && r.price.output_per_mtok.is_zero());
}

#[test]
fn anthropic_defaults() {
    let src = format!(
        "{MINIMAL}\n[backends.claude]\nkind = \"anthropic\"\nmodel = \"claude-3-5-haiku-latest\"\n"
    );
    let p = crate::parse(&src).unwrap();
    assert_eq!(
        p.backends["claude"].kind,
        BackendKind::Anthropic {
            base_url: "https://api.anthropic.com".into(),
            api_key_env: None,
            model: "claude-3-5-haiku-latest".into(),
            max_tokens: 4096,
            version: "2023-06-01".into(),
        }
    );
}

#[test]
fn explicit_values_parse() {
    let src = MINIMAL.replace(
        "[backends.openai]",
        "[server]\nlisten = \"[::1]:9000\"\nbody_limit = \"512KiB\"\nrequest_timeout = \"1m\"\n\
         shutdown_grace = \"250ms\"\n\n[backends.openai]\nbase_url = \"http://localhost:8000/v1/\"\n\
         connect_timeout = \"1s\"\nfirst_byte_timeout = \"2m 30s\"\ntotal_timeout = \"1h\"",
    ) + "route_header = \"X-Route\"\nhonor_model = false\n";
    let p = crate::parse(&src).unwrap();
    assert_eq!(p.server.listen.to_string(), "[::1]:9000");
    assert_eq!(p.server.body_limit, 512 * 1024);
    assert_eq!(p.server.request_timeout, Duration::from_secs(60));
    assert_eq!(p.server.shutdown_grace, Duration::from_millis(250));
    let b = &p.backends["openai"];
    assert_eq!(b.kind.base_url(), "http://localhost:8000/v1");
    assert_eq!(b.timeouts.first_byte, Duration::from_secs(150));
    assert_eq!(b.timeouts.total, Duration::from_secs(3600));
    assert_eq!(p.routing.route_header.as_deref(), Some("x-route"));
    assert!(!p.routing.honor_model);
}

#[test]
fn integer_body_limit_and_disabled_route_header() {
    let src = format!("[server]\nbody_limit = 1000\n{MINIMAL}route_header = false\n");
    let p = crate::parse(&src).unwrap();
    assert_eq!(p.server.body_limit, 1000);
    assert_eq!(p.routing.route_header, None);
}

#[test]
fn float_price_is_exact_decimal() {
    let src = MINIMAL.replace(
        "backend = \"openai\"",
        "backend = \"openai\"\nprice = { input = 0.15, output = 3 }",
    );
    let p = crate::parse(&src).unwrap();
    let price = p.routes["small"].price;
    assert_eq!(price.input_per_mtok, "0.15".parse::<Decimal>().unwrap());
    assert_eq!(price.input_per_mtok.to_string(), "0.15");
    assert_eq!(price.output_per_mtok, Decimal::from(3));
}

#[test]
fn missing_backend_message_is_exact() {
    let src = MINIMAL.replace(
        "[routes.small]\nbackend = \"openai\"",
        "[routes.small]\nbackend = \"openai\"\n\n[routes.billing]\nbackend = \"gpt4\"",
    );
    let e = single_error(&src);
    assert_eq!(
        e.to_string(),
        "routes.billing.backend: no backend named \"gpt4\""
    );
}

#[test]
fn all_errors_are_reported() {
    let src = r#"
[server]
listen = "localhost:80"
body_limit = "4 megs"
request_timeout = "30 sex"

[backends.openai]
kind = "openai"
base_url = "ftp://example.com"
api_key_env = ""
model = ""
connect_timeout = "0s"

[backends.claude]
kind = "anthropic"
api_key_env = "sk-ant-123"
max_tokens = 0

[routes.a]
backend = "openai"
fallback = ["x", "a", "b", "b"]
price = { input = "-1", output = "abc" }

[routes.b]
backend = "nope"

[routes.auto]
backend = "openai"

[routes."bad name"]
backend = "openai"

[policy]
default = "x"
route_header = "bad header"

[[policy.rules]]
name = "r"
route = "a"
when = { min_prompt_tokens = 5, max_prompt_tokens = 2, model = [] }

[[policy.rules]]
name = "r"
route = "a"
when = { model = ["ok", ""], header = { equals = "v" } }

[[policy.rules]]
name = ""
route = "x"

[[policy.rules]]
name = "default"
route = "a"
when = { max_prompt_tokens = -1 }
"#;
    let errors = errors(src);
    let expect = [
        ("server.listen", "invalid listen address \"localhost:80\""),
        ("server.body_limit", "invalid size \"4 megs\""),
        ("server.request_timeout", "invalid duration \"30 sex\": "),
        ("backends.openai.base_url", "not an http(s) URL"),
        ("backends.openai.api_key_env", "must not be empty"),
        ("backends.openai.model", "must not be empty"),
        ("backends.openai.connect_timeout", "greater than zero"),
        (
            "backends.claude.api_key_env",
            "NAME of an environment variable",
        ),
        ("backends.claude.model", "missing required key"),
        ("backends.claude.max_tokens", "greater than zero"),
        ("routes.a.fallback[0]", "no route named \"x\""),
        ("routes.a.fallback[1]", "cannot fall back to itself"),
        ("routes.a.fallback[3]", "more than once"),
        ("routes.a.price.input", "must not be negative"),
        ("routes.a.price.output", "invalid price \"abc\""),
        ("routes.b.backend", "no backend named \"nope\""),
        ("routes.auto", "reserved"),
        ("routes.\"bad name\"", "invalid route name"),
        ("policy.default", "no route named \"x\""),
        ("policy.route_header", "not a valid HTTP header name"),
        (
            "policy.rules[0].when",
            "min_prompt_tokens (5) is greater than max_prompt_tokens (2)",
        ),
        ("policy.rules[0].when.model", "must not be empty"),
        ("policy.rules[1].name", "duplicate rule name \"r\""),
        ("policy.rules[1].when.model[1]", "must not be empty"),
        ("policy.rules[1].when.header.name", "missing required key"),
        ("policy.rules[2].name", "must not be empty"),
        ("policy.rules[2].route", "no route named \"x\""),
        ("policy.rules[3].name", "reserved"),
        (
            "policy.rules[3].when.max_prompt_tokens",
            "must not be negative",
        ),
    ];
    for (path, needle) in expect {
        assert_has(&errors, path, needle);
    }
    assert_eq!(
        errors.len(),
        expect.len(),
        "unexpected extra errors:\n{errors}"
    );
    // The pasted key is never echoed back.
    assert!(!errors.to_string().contains("sk-ant-123"));
}

#[test]
fn no_routes_and_no_policy() {
    let errors = errors("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert_has(&errors, "routes", "at least one route");
    assert_has(&errors, "backends", "at least one backend");
    assert_has(&errors, "policy.default", "missing required key");
    assert_eq!(errors.len(), 3, "{errors}");
}

#[test]
fn missing_policy_default() {
    let e = single_error(&MINIMAL.replace("default = \"small\"", "honor_model = true"));
    assert_eq!(e.path, "policy.default");
}

#[test]
fn route_header_true_is_rejected() {
    let e = single_error(&format!("{MINIMAL}route_header = true\n"));
    assert_eq!(e.path, "policy.route_header");
}

#[test]
fn credentials_in_base_url_are_rejected_without_echo() {
    let src = MINIMAL.replace(
        "model = \"gpt-4o-mini\"",
        "model = \"gpt-4o-mini\"\nbase_url = \"https://user:hunter2@example.com/v1\"",
    );
    let e = single_error(&src);
    assert_eq!(e.path, "backends.openai.base_url");
    assert!(!e.message.contains("hunter2"), "{e}");
}

#[test]
fn rules_and_conditions_resolve() {
    let src = format!(
        "{MINIMAL}\n[[policy.rules]]\nname = \"always\"\nroute = \"small\"\n\
         [[policy.rules]]\nname = \"one\"\nroute = \"small\"\nwhen = {{ model = \"auto\", \
         header = {{ name = \"X-A\" }}, max_prompt_tokens = 10, has_tools = false }}\n"
    );
    let p = crate::parse(&src).unwrap();
    assert!(p.routing.rules[0].when.is_empty());
    let w = &p.routing.rules[1].when;
    assert_eq!(w.model.as_deref(), Some(&["auto".to_owned()][..]));
    let h = w.header.as_ref().unwrap();
    assert_eq!((h.name.as_str(), h.equals.as_deref()), ("x-a", None));
    assert_eq!(w.max_prompt_tokens, Some(10));
    assert_eq!(w.min_prompt_tokens, None);
    assert_eq!(w.has_tools, Some(false));
}

#[test]
fn ledger_defaults_and_reference_route_is_checked() {
    let ok = crate::parse(crate::DEFAULT_POLICY).unwrap();
    assert!(ok.ledger.enabled);
    assert_eq!(ok.ledger.reference_route.as_deref(), Some("remote"));
    let src = crate::DEFAULT_POLICY.replace(
        "reference_route = \"remote\"",
        "reference_route = \"nowhere\"",
    );
    let errors = crate::parse(&src).unwrap_err().to_string();
    assert!(
        errors.contains("ledger.reference_route: no route named \"nowhere\""),
        "{errors}"
    );
    let src = crate::DEFAULT_POLICY.replace("url = \"sluicegate-ledger.sqlite\"", "url = \"  \"");
    let errors = crate::parse(&src).unwrap_err().to_string();
    assert!(errors.contains("ledger.url: must not be empty"), "{errors}");
}
