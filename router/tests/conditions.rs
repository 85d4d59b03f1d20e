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
name = "unsure"
route = "remote"
when = { max_confidence = 0.5 }

[[policy.rules]]
name = "money"
route = "billing"
when = { class = ["billing"], min_confidence = 0.7 }
"#;

fn decide(class: Option<(&str, f32)>, error: Option<&str>) -> Decision {
    let engine = Engine::new(&sluicegate_policies::parse(POLICY).unwrap());
    let facts = RequestFacts {
        signals: Signals {
            classification: class.map(|(c, p)| Classification {
                class: c.into(),
                confidence: p,
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
    assert_eq!(decide(Some(("chat", 0.95)), None).rule, Decision::DEFAULT);
    // No classification: class conditions never hold.
    assert_eq!(decide(None, None).rule, Decision::DEFAULT);
}

#[test]
fn classifier_failure_uses_the_error_route() {
    let d = decide(None, Some("overloaded"));
    assert_eq!(d.route, "remote");
    assert_eq!(d.rule, Decision::CLASSIFIER_ERROR);
}
