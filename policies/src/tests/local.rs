use rust_decimal::Decimal;

use super::{assert_has, errors};
use crate::{BackendKind, ContextOverflow, LocalWeights};

const LOCAL: &str = r#"
[backends.smol]
kind = "local"
gguf = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
cost_per_hour = "0.05"
threads = 2

[routes.small]
backend = "smol"

[policy]
default = "small"
"#;

#[test]
fn a_local_backend_gets_its_defaults() {
    let p = crate::parse(LOCAL).unwrap();
    let b = &p.backends["smol"];
    assert_eq!(b.kind.kind_name(), "local");
    assert_eq!(b.kind.upstream_model(), "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(b.kind.api_key_env(), None);
    let BackendKind::Local(c) = &b.kind else {
        panic!("{:?}", b.kind)
    };
    assert_eq!(c.cost_per_hour, "0.05".parse::<Decimal>().unwrap());
    assert_eq!(
        (c.threads, c.max_batch, c.queue, c.max_wait, c.context),
        (2, 8, 32, None, None)
    );
    let p = crate::parse(&LOCAL.replace("threads = 2", "max_wait_ms = 1500")).unwrap();
    let BackendKind::Local(c) = &p.backends["smol"].kind else {
        panic!()
    };
    assert_eq!(c.max_wait, Some(std::time::Duration::from_millis(1500)));
    assert_eq!(c.on_context_overflow, ContextOverflow::Reject);
    assert_eq!(c.weights, LocalWeights::Q8_0);
    assert_eq!(c.system_prompt, None);
}

#[test]
fn every_bad_local_key_is_reported() {
    let src = LOCAL.replace(
        "threads = 2",
        "threads = 0\nmax_batch = 1000\ncontext = 4\non_context_overflow = \"drop\"\n\
         max_wait_ms = 0\n\
         weights = \"f16\"\ncost_per_hour = \"-1\"",
    );
    let src = src.replace("cost_per_hour = \"0.05\"\n", "");
    let e = errors(&src);
    assert_has(&e, "backends.smol.threads", "between 1 and 256");
    assert_has(&e, "backends.smol.max_batch", "between 1 and 256");
    assert_has(&e, "backends.smol.context", "at least 16");
    assert_has(&e, "backends.smol.max_wait_ms", "between 1 and 3600000");
    assert_has(&e, "backends.smol.on_context_overflow", "\"fallback\"");
    assert_has(&e, "backends.smol.weights", "\"as-stored\"");
    assert_has(&e, "backends.smol.cost_per_hour", "negative");
    let e = errors(&LOCAL.replace("gguf = ", "model = "));
    assert_has(&e, "backends.smol.gguf", "missing");
}

#[test]
fn remote_only_keys_are_unknown_on_a_local_backend() {
    let e = errors(&LOCAL.replace("threads = 2", "api_key_env = \"X\""));
    assert!(e.to_string().contains("api_key_env"), "{e}");
}

#[test]
fn local_generation_defaults_are_read_and_checked_with_their_key_paths() {
    let p = crate::parse(&LOCAL.replace(
        "threads = 2",
        "defaults = { max_tokens = 256, temperature = 0.2, top_p = 0.9, top_k = 50 }",
    ))
    .unwrap();
    let BackendKind::Local(c) = &p.backends["smol"].kind else {
        panic!()
    };
    let d = &c.defaults;
    assert_eq!(
        (
            d.max_tokens,
            d.temperature,
            d.top_p,
            d.top_k,
            d.repetition_penalty
        ),
        (Some(256), Some(0.2), Some(0.9), Some(50), None)
    );
    let bad = errors(&LOCAL.replace(
        "threads = 2",
        "defaults = { max_tokens = 0, temperature = 3.0, top_p = 0.0, repetition_penalty = 0 }",
    ));
    assert_has(&bad, "backends.smol.defaults.max_tokens", "between 1 and");
    assert_has(
        &bad,
        "backends.smol.defaults.temperature",
        "between 0 and 2",
    );
    assert_has(&bad, "backends.smol.defaults.top_p", "greater than 0");
    assert_has(&bad, "backends.smol.defaults.repetition_penalty", "between");
    let stray = errors(&LOCAL.replace("threads = 2", "defaults = { temprature = 0.2 }"));
    // Phase 1 names the backend and the stray key (serde's path stops at the backend table).
    assert_has(&stray, "backends.smol", "unknown field `temprature`");
}
