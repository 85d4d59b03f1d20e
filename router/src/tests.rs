use http::{HeaderMap, HeaderValue};
use sluicegate_policies::{parse, RESERVED_RULE_NAMES};

use crate::{DecideError, Decision, Engine, RequestFacts};

const POLICY: &str = r#"
[backends.b]
kind = "openai"
model = "m"

[routes.small]
backend = "b"
[routes.large]
backend = "b"
[routes.premium]
backend = "b"

[policy]
default = "small"

[[policy.rules]]
name = "vip"
route = "premium"
when = { header = { name = "X-Tier", equals = "premium" } }

[[policy.rules]]
name = "beta-present"
route = "large"
when = { header = { name = "X-Beta" } }

[[policy.rules]]
name = "tools"
route = "large"
when = { has_tools = true }

[[policy.rules]]
name = "long-auto"
route = "large"
when = { min_prompt_tokens = 2000, model = ["auto", "gpt-4o"] }

[[policy.rules]]
name = "short-mini"
route = "small"
when = { max_prompt_tokens = 100, model = "gpt-4o-mini" }
"#;

/// The test policy with `extra` keys added to its `[policy]` table.
fn engine_with_keys(extra: &str) -> Engine {
    let src = POLICY.replacen(
        "default = \"small\"",
        &format!("default = \"small\"\n{extra}"),
        1,
    );
    Engine::new(&parse(&src).unwrap())
}

/// The test policy with `extra` rules appended after its own.
fn engine_with_rules(extra: &str) -> Engine {
    Engine::new(&parse(&format!("{POLICY}\n{extra}")).unwrap())
}

fn engine() -> Engine {
    engine_with_rules("")
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn decide(engine: &Engine, facts: &RequestFacts) -> (String, String) {
    let d = engine.decide(facts).unwrap();
    (d.route, d.rule)
}

fn pair(route: &str, rule: &str) -> (String, String) {
    (route.to_owned(), rule.to_owned())
}

#[test]
fn default_route_for_plain_auto() {
    let e = engine();
    assert_eq!(
        decide(&e, &RequestFacts::new("auto")),
        pair("small", "default")
    );
    assert_eq!(e.default_route(), "small");
}

#[test]
fn route_header_selects_route() {
    let e = engine();
    let facts = RequestFacts {
        headers: headers(&[("x-sluicegate-route", "large")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &facts), pair("large", "route-header"));
}

#[test]
fn route_header_beats_model_and_rules() {
    let e = engine();
    let facts = RequestFacts {
        headers: headers(&[("X-Sluicegate-Route", "small"), ("x-tier", "premium")]),
        has_tools: true,
        ..RequestFacts::new("premium")
    };
    assert_eq!(decide(&e, &facts), pair("small", "route-header"));
}

#[test]
fn route_header_with_unknown_route_is_an_error() {
    let e = engine();
    let facts = RequestFacts {
        headers: headers(&[("x-sluicegate-route", "huge")]),
        ..RequestFacts::new("auto")
    };
    let err = e.decide(&facts).unwrap_err();
    assert_eq!(
        err,
        DecideError::UnknownRouteHeader {
            header: "x-sluicegate-route".into(),
            value: "huge".into()
        }
    );
    assert!(err.to_string().contains("huge"), "{err}");
    assert!(err.to_string().contains("x-sluicegate-route"), "{err}");
}

#[test]
fn route_header_can_be_renamed_or_disabled() {
    let renamed = engine_with_keys("route_header = \"X-Route\"");
    let facts = RequestFacts {
        headers: headers(&[("x-route", "large"), ("x-sluicegate-route", "premium")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&renamed, &facts), pair("large", "route-header"));

    let disabled = engine_with_keys("route_header = false");
    let facts = RequestFacts {
        headers: headers(&[("x-sluicegate-route", "nonexistent")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&disabled, &facts), pair("small", "default"));
}

#[test]
fn requested_model_selects_route_before_rules() {
    let e = engine();
    let facts = RequestFacts {
        has_tools: true,
        ..RequestFacts::new("premium")
    };
    assert_eq!(decide(&e, &facts), pair("premium", "requested-model"));
}

#[test]
fn honor_model_off_lets_rules_decide() {
    let e = engine_with_keys("honor_model = false");
    let facts = RequestFacts {
        has_tools: true,
        ..RequestFacts::new("premium")
    };
    assert_eq!(decide(&e, &facts), pair("large", "tools"));
    // Still a known model: no rule matches, so it falls to the default.
    assert_eq!(
        decide(&e, &RequestFacts::new("premium")),
        pair("small", "default")
    );
}

#[test]
fn header_rule_matches_case_insensitive_name_exact_value() {
    let e = engine();
    let hit = RequestFacts {
        headers: headers(&[("X-TIER", "premium")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &hit), pair("premium", "vip"));
    let wrong_case_value = RequestFacts {
        headers: headers(&[("x-tier", "Premium")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &wrong_case_value), pair("small", "default"));
    let second_value = RequestFacts {
        headers: headers(&[("x-tier", "basic"), ("x-tier", "premium")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &second_value), pair("premium", "vip"));
}

#[test]
fn header_presence_rule() {
    let e = engine();
    let facts = RequestFacts {
        headers: headers(&[("x-beta", "")]),
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &facts), pair("large", "beta-present"));
}

#[test]
fn rules_are_tried_in_order() {
    let e = engine();
    // Both `vip` and `tools` hold; `vip` comes first.
    let facts = RequestFacts {
        headers: headers(&[("x-tier", "premium")]),
        has_tools: true,
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &facts), pair("premium", "vip"));
}

#[test]
fn tools_condition() {
    let e = engine();
    let facts = RequestFacts {
        has_tools: true,
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &facts), pair("large", "tools"));
}

#[test]
fn has_tools_false_condition() {
    let e = engine_with_rules(
        "[[policy.rules]]\nname = \"no-tools\"\nroute = \"premium\"\nwhen = { has_tools = false }",
    );
    assert_eq!(
        decide(&e, &RequestFacts::new("auto")),
        pair("premium", "no-tools")
    );
}

#[test]
fn prompt_length_conditions_are_inclusive() {
    let e = engine();
    let at = |model: &str, tokens: u32| RequestFacts {
        prompt_tokens: tokens,
        ..RequestFacts::new(model)
    };
    assert_eq!(decide(&e, &at("auto", 1999)), pair("small", "default"));
    assert_eq!(decide(&e, &at("auto", 2000)), pair("large", "long-auto"));
    assert_eq!(
        decide(&e, &at("gpt-4o", 50_000)),
        pair("large", "long-auto")
    );
    assert_eq!(
        decide(&e, &at("gpt-4o-mini", 100)),
        pair("small", "short-mini")
    );
    // An alias that matches no rule still reaches the default.
    assert_eq!(
        decide(&e, &at("gpt-4o-mini", 101)),
        pair("small", "default")
    );
    assert_eq!(decide(&e, &at("gpt-4o", 10)), pair("small", "default"));
}

#[test]
fn all_conditions_must_hold() {
    let e = engine();
    // long-auto needs the model to be auto or gpt-4o.
    let facts = RequestFacts {
        prompt_tokens: 5000,
        ..RequestFacts::new("gpt-4o-mini")
    };
    assert_eq!(decide(&e, &facts), pair("small", "default"));
}

#[test]
fn unknown_model_is_an_error_even_when_default_would_apply() {
    let e = engine();
    let err = e.decide(&RequestFacts::new("gpt-5")).unwrap_err();
    assert_eq!(err, DecideError::UnknownModel("gpt-5".into()));
    assert!(err.to_string().contains("gpt-5"), "{err}");
    assert!(e.decide(&RequestFacts::new("")).is_err());
    // Model names are case-sensitive.
    assert!(e.decide(&RequestFacts::new("Small")).is_err());
}

#[test]
fn an_unknown_model_is_refused_even_when_a_rule_would_match() {
    let e = engine();
    let facts = RequestFacts {
        has_tools: true,
        ..RequestFacts::new("gpt-5")
    };
    assert_eq!(
        e.decide(&facts),
        Err(DecideError::UnknownModel("gpt-5".into()))
    );
}

#[test]
fn empty_when_always_matches() {
    let e = engine_with_rules("[[policy.rules]]\nname = \"catch-all\"\nroute = \"large\"");
    assert_eq!(
        decide(&e, &RequestFacts::new("auto")),
        pair("large", "catch-all")
    );
    // A catch-all rule does not make every model name valid.
    assert_eq!(
        e.decide(&RequestFacts::new("whatever")),
        Err(DecideError::UnknownModel("whatever".into()))
    );
}

#[test]
fn known_models_sorted_and_deduped() {
    let e = engine_with_rules(
        "[[policy.rules]]\nname = \"dup\"\nroute = \"large\"\nwhen = { model = [\"gpt-4o\", \"small\", \"auto\"] }",
    );
    assert_eq!(
        e.known_models(),
        ["auto", "gpt-4o", "gpt-4o-mini", "large", "premium", "small"]
    );
    assert!(e.is_known_model("gpt-4o-mini"));
    assert!(!e.is_known_model("gpt-5"));
}

#[test]
fn default_policy_decisions() {
    let policy = parse(sluicegate_policies::DEFAULT_POLICY).unwrap();
    let e = Engine::new(&policy);
    assert_eq!(e.known_models(), ["auto", "local", "remote"]);
    assert_eq!(decide(&e, &RequestFacts::new("auto")).0, "local");
    let long = RequestFacts {
        prompt_tokens: 3000,
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &long).0, "remote");
    let tools = RequestFacts {
        has_tools: true,
        ..RequestFacts::new("auto")
    };
    assert_eq!(decide(&e, &tools).0, "remote");
}

#[test]
fn builtin_rule_names_are_reserved_by_the_policy() {
    for name in [
        Decision::ROUTE_HEADER,
        Decision::REQUESTED_MODEL,
        Decision::CLASSIFIER_ERROR,
        Decision::DEFAULT,
    ] {
        assert!(RESERVED_RULE_NAMES.contains(&name), "{name}");
    }
}
