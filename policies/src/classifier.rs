//! The `[classifier]` and `[classes.NAME]` tables: the on-box classifier's configuration
//! (phase 2), and the checks of rules that use its signals.
//!
//! ```toml
//! [classifier]
//! encoder = "models/minilm"          # directory with config.json, model.safetensors, tokenizer.json
//! on_classifier_error = "remote"     # required: the route used when the classifier cannot answer
//! # head = "heads/support.safetensors"  # optional trained head (`sluicegate router train`)
//! # input = "last-user+system"       # or "last-user", "conversation"
//! # match = "auto"                   # or "centroid", "knn" (with k = 3): how examples are compared
//! # timeout = "250ms"
//! # min_similarity = 0.3            # nearest example less similar than this: `unknown`
//!
//! [classes.billing]
//! description = "payments, invoices, refunds"
//! examples = ["I was charged twice", "refund my last payment"]
//! ```
//!
//! Relative `encoder` and `head` paths are resolved against the policy file's directory when
//! the policy is loaded from a file ([`crate::load`]), and against the working directory when
//! it is parsed from text ([`crate::parse`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::error::{join, Errors};
use crate::model::{ClassConfig, ClassifierConfig, ClassifierInput, ExampleMatch, RoutingPolicy};
use crate::raw::{RawClass, RawClassifier};
use crate::values;

pub(crate) fn classifier(
    raw: Option<RawClassifier>,
    classes: BTreeMap<String, RawClass>,
    routes: &BTreeSet<&str>,
    errors: &mut Errors,
) -> Option<ClassifierConfig> {
    let Some(raw) = raw else {
        if !classes.is_empty() {
            errors.push(
                "classes",
                "classes need a `[classifier]` table (encoder, on_classifier_error)",
            );
        }
        return None;
    };
    let at = |key: &str| join("classifier", key);
    let encoder = match raw.encoder {
        Some(e) if !e.trim().is_empty() => PathBuf::from(e),
        _ => {
            errors.push(
                at("encoder"),
                "missing required key: the encoder directory (e.g. \"models/minilm\")",
            );
            PathBuf::new()
        }
    };
    let on_error = match raw.on_classifier_error {
        None => {
            errors.push(
                at("on_classifier_error"),
                "missing required key: name the route used when the classifier cannot answer \
                 (usually the escalation route)",
            );
            String::new()
        }
        Some(route) => {
            if !routes.contains(route.as_str()) {
                errors.push(
                    at("on_classifier_error"),
                    format!("no route named {route:?}"),
                );
            }
            route
        }
    };
    let input = match raw.input.as_deref() {
        None | Some("last-user+system") => ClassifierInput::LastUserAndSystem,
        Some("last-user") => ClassifierInput::LastUser,
        Some("conversation") => ClassifierInput::Conversation,
        Some(other) => {
            errors.push(
                at("input"),
                format!("unknown input {other:?}: use \"last-user+system\", \"last-user\" or \"conversation\""),
            );
            ClassifierInput::default()
        }
    };
    let k = match raw.k {
        None => 3,
        Some(k) if (1..=100).contains(&k) => usize::try_from(k).unwrap_or(3),
        Some(k) => {
            errors.push(at("k"), format!("{k} is out of range 1..=100"));
            3
        }
    };
    let matching = match raw.matching.as_deref() {
        None | Some("auto") => ExampleMatch::Auto,
        Some("centroid") => ExampleMatch::Centroid,
        Some("knn") => ExampleMatch::Knn(k),
        Some(other) => {
            errors.push(
                at("match"),
                format!("unknown match {other:?}: use \"auto\", \"centroid\" or \"knn\""),
            );
            ExampleMatch::Auto
        }
    };
    let timeout = raw
        .timeout
        .and_then(|t| errors.check(&at("timeout"), values::duration(&t, false)))
        .unwrap_or(ClassifierConfig::DEFAULT_TIMEOUT);
    let min_similarity = raw.min_similarity.and_then(|v| {
        if (-1.0..=1.0).contains(&v) {
            Some(v as f32)
        } else {
            errors.push(
                at("min_similarity"),
                format!("{v} is not a cosine similarity in -1..=1"),
            );
            None
        }
    });
    let head = raw.head.map(PathBuf::from);
    if head.is_none() && classes.is_empty() {
        errors.push(
            "classifier",
            "give a trained `head` or at least one `[classes.NAME]` with examples",
        );
    }
    let classes = classes
        .into_iter()
        .map(|(name, c)| {
            let path = join("classes", &name);
            errors.check(&path, values::name("class", &name));
            let examples = c.examples.unwrap_or_default();
            if head.is_none() && examples.iter().all(|e| e.trim().is_empty()) {
                errors.push(
                    join(&path, "examples"),
                    "give at least one non-empty example",
                );
            }
            let config = ClassConfig {
                examples,
                description: c.description,
            };
            (name, config)
        })
        .collect();
    Some(ClassifierConfig {
        encoder,
        head,
        on_error,
        input,
        matching,
        timeout,
        classes,
        min_similarity,
    })
}

/// Rules may use `class` and confidence conditions only with a classifier, and (without a
/// head, whose labels are only known when it is loaded) only name declared classes.
pub(crate) fn check_rules(
    routing: &RoutingPolicy,
    classifier: Option<&ClassifierConfig>,
    errors: &mut Errors,
) {
    for (i, rule) in routing.rules.iter().enumerate() {
        let path = format!("policy.rules[{i}].when");
        let w = &rule.when;
        let uses = w.class.is_some()
            || w.min_confidence.is_some()
            || w.max_confidence.is_some()
            || w.unknown.is_some();
        match classifier {
            None if uses => errors.push(
                &path,
                "class, confidence and unknown conditions need a `[classifier]` table",
            ),
            Some(c) if c.head.is_none() => {
                let listed = w.class.as_deref().unwrap_or_default();
                for (j, class) in listed.iter().enumerate() {
                    if !c.classes.contains_key(class) {
                        let at = if listed.len() == 1 {
                            format!("{path}.class")
                        } else {
                            format!("{path}.class[{j}]")
                        };
                        errors.push(
                            at,
                            format!("no class named {class:?} (declare it as `[classes.{class}]`)"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
