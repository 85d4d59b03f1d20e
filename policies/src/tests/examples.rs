use std::path::Path;

use rust_decimal::Decimal;

use crate::{BackendKind, DEFAULT_POLICY};

#[test]
fn every_example_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(errors) = crate::load(&path) {
                panic!("{}:\n{errors}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 3, "expected at least 3 examples, found {count}");
}

#[test]
fn default_policy_is_as_documented() {
    let p = crate::parse(DEFAULT_POLICY).unwrap();
    assert_eq!(p.routing.default, "local");
    assert_eq!(p.route_names().collect::<Vec<_>>(), ["local", "remote"]);

    let openai = &p.backends["openai"];
    assert_eq!(openai.kind.kind_name(), "openai");
    assert_eq!(openai.kind.api_key_env(), Some("OPENAI_API_KEY"));
    assert_eq!(openai.kind.upstream_model(), "gpt-4o-mini");

    let smol = &p.backends["smollm2"];
    assert_eq!(smol.kind.kind_name(), "local");
    assert_eq!(smol.kind.api_key_env(), None);
    assert_eq!(smol.kind.upstream_model(), "SmolLM2-135M-Instruct.Q4_1");
    match &smol.kind {
        BackendKind::Local(c) => {
            assert_eq!(
                c.gguf,
                Path::new("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
            );
            assert_eq!(c.cost_per_hour, "0.05".parse::<Decimal>().unwrap());
            assert_eq!(c.threads, 2);
            assert_eq!(c.on_context_overflow, crate::ContextOverflow::Fallback);
        }
        other => panic!("expected a local backend, got {other:?}"),
    }

    let local = &p.routes["local"];
    assert_eq!(local.backend, "smollm2");
    assert_eq!(local.fallback, ["remote"]);
    assert!(local.price.input_per_mtok.is_zero());
    let remote = &p.routes["remote"];
    assert_eq!(remote.fallback, ["local"]);
    assert_eq!(
        remote.price.input_per_mtok,
        "0.15".parse::<Decimal>().unwrap()
    );
    assert_eq!(
        remote.price.output_per_mtok,
        "0.60".parse::<Decimal>().unwrap()
    );
    assert_eq!(p.backend_for("remote").unwrap().name, "openai");
    assert!(p.backend_for("nope").is_none());

    let tools = p
        .routing
        .rules
        .iter()
        .find(|r| r.when.has_tools == Some(true))
        .unwrap();
    assert_eq!(tools.route, "remote");
    let long = p
        .routing
        .rules
        .iter()
        .find(|r| r.when.min_prompt_tokens == Some(3000))
        .unwrap();
    assert_eq!(long.route, "remote");
}

#[test]
fn anthropic_example_fields() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openai-and-anthropic.toml");
    let p = crate::load(&path).unwrap();
    let sonnet = &p.backends["claude-sonnet"];
    assert_eq!(sonnet.kind.kind_name(), "anthropic");
    match &sonnet.kind {
        BackendKind::Anthropic {
            base_url,
            max_tokens,
            version,
            ..
        } => {
            assert_eq!(base_url, "https://api.anthropic.com");
            assert_eq!(*max_tokens, 8192);
            assert_eq!(version, "2023-06-01");
        }
        other => panic!("expected anthropic, got {other:?}"),
    }
    let premium = p
        .routing
        .rules
        .iter()
        .find(|r| r.name == "premium-tier")
        .unwrap();
    let header = premium.when.header.as_ref().unwrap();
    assert_eq!(header.name, "x-tier");
    assert_eq!(header.equals.as_deref(), Some("premium"));
}

#[test]
fn load_reports_missing_file() {
    let errors = crate::load(Path::new("/definitely/not/here.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].path, "");
    assert!(errors.0[0].message.contains("/definitely/not/here.toml"));
    assert!(!errors.to_string().starts_with(':'));
}
