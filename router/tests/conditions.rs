#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)] // test code
//! Rules on the classifier's signals, and the `on_classifier_error` route.

use sluicegate_router::{Classification, Decision, Engine, RequestFacts, Signals};

const POLICY: &str = r#"
[backends.b]
kind = "openai"
model = "m"

[routes.small]
backend = "b"

[routes.remote]
backend = "b"

[routes.billing]
backend = "b"

[classifier]
encoder = "models/minilm"
on_classifier_error = "remote"

[classes.billing]
examples = ["I was charged twice"]

[classes.chat]
examples = ["hello there"]

[policy]
default = "small"

[[policy.rules]]
name = "unfamiliar"
route = "remote"
when = { unknown = true }

[[policy.rules]]
name = "unsure"
route = "remote"
when = { max_confidence = 0.5 }

[[policy.rules]]
name = "money"
route = "billing"
when = { class = ["billing"], min_confidence = 0.7 }
"#;

fn decide(class: Option<(&str, f32)>, error: Option<&str>) -> Decision {
    decide_scoped(class, false, error)
}

fn decide_scoped(class: Option<(&str, f32)>, unknown: bool, error: Option<&str>) -> Decision {
    let engine = Engine::new(&sluicegate_policies::parse(POLICY).unwrap());
    let facts = RequestFacts {
        signals: Signals {
            classification: class.map(|(c, p)| Classification {
                class: c.into(),
                confidence: p,
                unknown,
                similarity: None,
            }),
            classifier_error: error.map(str::to_owned),
        },
        ..RequestFacts::new("auto")
    };
    engine.decide(&facts).unwrap()
}

#[test]
fn class_and_confidence_conditions() {
    assert_eq!(decide(Some(("billing", 0.9)), None).rule, "money");
    assert_eq!(decide(Some(("billing", 0.9)), None).route, "billing");
    // Confident enough to keep, not enough for the billing rule.
    assert_eq!(decide(Some(("billing", 0.6)), None).rule, Decision::DEFAULT);
    assert_eq!(decide(Some(("billing", 0.3)), None).rule, "unsure");
    assert_eq!(
        decide(Some(("billing", 0.3)), None).compared.as_deref(),
        Some("confidence=0.30<0.5")
    );
    assert_eq!(
        decide(Some(("billing", 0.9)), None).compared.as_deref(),
        Some("confidence=0.90>=0.7")
    );
    assert_eq!(decide(Some(("chat", 0.95)), None).compared, None);
    assert_eq!(decide(Some(("chat", 0.95)), None).rule, Decision::DEFAULT);
    // No classification: class conditions never hold.
    assert_eq!(decide(None, None).rule, Decision::DEFAULT);
}

#[test]
fn an_unknown_request_escalates_however_confident() {
    let d = decide_scoped(Some(("billing", 0.99)), true, None);
    assert_eq!(
        (d.rule.as_str(), d.route.as_str()),
        ("unfamiliar", "remote")
    );
    assert_eq!(
        decide_scoped(Some(("billing", 0.99)), false, None).rule,
        "money"
    );
}

#[test]
fn an_unknown_condition_needs_a_classifier() {
    let policy = r#"
[backends.a]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
model = "m"
[routes.a]
backend = "a"
[policy]
default = "a"
[[policy.rules]]
name = "x"
route = "a"
when = { unknown = true }
"#;
    let err = sluicegate_policies::parse(policy).unwrap_err().to_string();
    assert!(err.contains("policy.rules[0].when"), "{err}");
    assert!(err.contains("unknown"), "{err}");
}

#[test]
fn classifier_failure_uses_the_error_route() {
    let d = decide(None, Some("overloaded"));
    assert_eq!(d.route, "remote");
    assert_eq!(d.rule, Decision::CLASSIFIER_ERROR);
}
