use std::path::PathBuf;
use std::time::Duration;

use super::{assert_has, errors, MINIMAL};
use crate::{ClassifierInput, ExampleMatch};

const CLASSIFIED: &str = r#"
[routes.remote]
backend = "openai"

[classifier]
encoder = "models/minilm"
on_classifier_error = "remote"

[classes.billing]
description = "money matters"
examples = ["I was charged twice", "refund my last payment"]

[classes.poetry]
examples = ["write a poem"]

[[policy.rules]]
name = "unsure"
route = "remote"
when = { max_confidence = 0.5 }

[[policy.rules]]
name = "billing"
route = "small"
when = { class = "billing", min_confidence = 0.6 }
"#;

fn classified(extra: &str) -> String {
    format!("{MINIMAL}{CLASSIFIED}{extra}")
}

#[test]
fn classifier_classes_and_conditions_parse() {
    let p = crate::parse(&classified("")).unwrap();
    let c = p.classifier.unwrap();
    assert_eq!(c.encoder, PathBuf::from("models/minilm"));
    assert_eq!(c.on_error, "remote");
    assert_eq!(c.input, ClassifierInput::LastUserAndSystem);
    assert_eq!(c.matching, ExampleMatch::Auto);
    assert_eq!(c.timeout, Duration::from_millis(250));
    assert_eq!(c.classes["billing"].examples.len(), 2);
    let w = &p.routing.rules[1].when;
    assert_eq!(w.class.as_deref(), Some(&["billing".to_owned()][..]));
    assert_eq!(w.min_confidence, Some(0.6));
    assert_eq!(p.routing.rules[0].when.max_confidence, Some(0.5));
}

#[test]
fn knn_input_and_timeout_options() {
    let src = classified("").replace(
        "on_classifier_error = \"remote\"",
        "on_classifier_error = \"remote\"\nmatch = \"knn\"\nk = 5\ninput = \"last-user\"\ntimeout = \"1s\"",
    );
    let c = crate::parse(&src).unwrap().classifier.unwrap();
    assert_eq!(c.matching, ExampleMatch::Knn(5));
    assert_eq!(c.input, ClassifierInput::LastUser);
    assert_eq!(c.timeout, Duration::from_secs(1));
    assert_eq!(c.min_similarity, None);
}

#[test]
fn min_similarity_and_the_unknown_condition() {
    let src = classified(
        r#"
[[policy.rules]]
name = "unfamiliar"
route = "remote"
when = { unknown = true }
"#,
    )
    .replace(
        "on_classifier_error = \"remote\"",
        "on_classifier_error = \"remote\"\nmin_similarity = 0.3",
    );
    let p = crate::parse(&src).unwrap();
    assert_eq!(p.classifier.unwrap().min_similarity, Some(0.3));
    assert_eq!(p.routing.rules[2].when.unknown, Some(true));
    let bad = classified("").replace(
        "on_classifier_error = \"remote\"",
        "on_classifier_error = \"remote\"\nmin_similarity = 1.5",
    );
    assert_has(
        &errors(&bad),
        "classifier.min_similarity",
        "not a cosine similarity",
    );
    let stray = classified("").replace(
        "on_classifier_error = \"remote\"",
        "on_classifier_error = \"remote\"\nmin_similarty = 0.3",
    );
    assert_has(
        &errors(&stray),
        "classifier.min_similarty",
        "unknown field `min_similarty`",
    );
}

#[test]
fn every_classifier_problem_is_reported_with_its_path() {
    let src = classified(
        r#"
[classes.empty]
examples = []

[[policy.rules]]
name = "bad"
route = "small"
when = { class = ["poetry", "nope"], min_confidence = 1.5 }

[[policy.rules]]
name = "one"
route = "small"
when = { class = "missing" }
"#,
    )
    .replace(
        "on_classifier_error = \"remote\"",
        "on_classifier_error = \"elsewhere\"",
    );
    let e = errors(&src);
    assert_has(
        &e,
        "classifier.on_classifier_error",
        "no route named \"elsewhere\"",
    );
    assert_has(&e, "classes.empty.examples", "at least one");
    assert_has(
        &e,
        "policy.rules[2].when.class[1]",
        "no class named \"nope\"",
    );
    assert_has(
        &e,
        "policy.rules[2].when.min_confidence",
        "not a confidence",
    );
    assert_has(
        &e,
        "policy.rules[3].when.class",
        "no class named \"missing\"",
    );
}

#[test]
fn classifier_requires_encoder_and_error_route() {
    let src = format!("{MINIMAL}\n[classifier]\nhead = \"h.safetensors\"\n");
    let e = errors(&src);
    assert_has(&e, "classifier.encoder", "missing required key");
    assert_has(&e, "classifier.on_classifier_error", "missing required key");
}

#[test]
fn class_conditions_without_a_classifier_are_rejected() {
    let src = format!(
        "{MINIMAL}\n[[policy.rules]]\nname = \"x\"\nroute = \"small\"\nwhen = {{ class = \"a\" }}\n\n[classes.a]\nexamples = [\"x\"]\n"
    );
    let e = errors(&src);
    assert_has(&e, "policy.rules[0].when", "need a `[classifier]` table");
    assert_has(&e, "classes", "need a `[classifier]` table");
}

#[test]
fn a_head_allows_classes_it_defines_and_load_resolves_paths() {
    let src = format!(
        "{MINIMAL}\n[classifier]\nencoder = \"m/minilm\"\nhead = \"h.safetensors\"\non_classifier_error = \"small\"\n\n[[policy.rules]]\nname = \"x\"\nroute = \"small\"\nwhen = {{ class = \"from-head\" }}\n"
    );
    assert!(crate::parse(&src).is_ok());
    let dir = std::env::temp_dir().join(format!("sy-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.toml");
    std::fs::write(&file, &src).unwrap();
    let c = crate::load(&file).unwrap().classifier.unwrap();
    assert_eq!(c.encoder, dir.join("m/minilm"));
    assert_eq!(c.head, Some(dir.join("h.safetensors")));
    std::fs::remove_dir_all(&dir).unwrap();
}
