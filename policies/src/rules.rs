//! Phase 2 for the `[policy]` table and its rules.

use std::collections::BTreeSet;

use crate::error::{join, Errors};
use crate::model::{Conditions, HeaderMatch, RoutingPolicy, Rule};
use crate::raw::{RawRouteHeader, RawRouting, RawRule, RawWhen};
use crate::values;

/// Names the router reports for its built-in decision steps; a policy rule
/// may not reuse them, so a decision always says unambiguously what fired.
pub const RESERVED_RULE_NAMES: [&str; 4] = [
    "route-header",
    "requested-model",
    "classifier-error",
    "default",
];

pub(crate) fn routing(
    raw: Option<RawRouting>,
    routes: &BTreeSet<&str>,
    errors: &mut Errors,
) -> RoutingPolicy {
    let raw = raw.unwrap_or_default();
    let default = match raw.default {
        None => {
            errors.push(
                "policy.default",
                "missing required key: name the route used when no rule matches \
                 (e.g. `[policy]` with `default = \"...\"`)",
            );
            String::new()
        }
        Some(name) => {
            if !routes.contains(name.as_str()) {
                errors.push("policy.default", format!("no route named {name:?}"));
            }
            name
        }
    };

    let route_header = match raw.route_header {
        None => Some(RoutingPolicy::DEFAULT_ROUTE_HEADER.to_owned()),
        Some(RawRouteHeader::Flag(false)) => None,
        Some(RawRouteHeader::Flag(true)) => {
            errors.push(
                "policy.route_header",
                "`true` is not a header name: give a header name, or `false` to disable",
            );
            None
        }
        Some(RawRouteHeader::Name(name)) => {
            errors.check("policy.route_header", values::header_name(&name))
        }
    };

    let mut names = BTreeSet::new();
    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("policy.rules[{i}]"), r, routes, &mut names, errors))
        .collect();

    RoutingPolicy {
        default,
        route_header,
        honor_model: raw.honor_model.unwrap_or(true),
        rules,
    }
}

fn rule(
    path: &str,
    raw: RawRule,
    routes: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    errors: &mut Errors,
) -> Rule {
    let at = |key: &str| join(path, key);
    let name = match raw.name {
        None => {
            errors.push(at("name"), "missing required key: every rule needs a name");
            String::new()
        }
        Some(name) if name.trim().is_empty() => {
            errors.push(at("name"), "rule name must not be empty");
            name
        }
        Some(name) if RESERVED_RULE_NAMES.contains(&name.as_str()) => {
            errors.push(
                at("name"),
                format!("rule name {name:?} is reserved (it names a built-in decision step)"),
            );
            name
        }
        Some(name) => {
            if errors
                .check(&at("name"), values::name("rule", &name))
                .is_some()
                && !names.insert(name.clone())
            {
                errors.push(at("name"), format!("duplicate rule name {name:?}"));
            }
            name
        }
    };

    let route = match raw.route {
        None => {
            errors.push(at("route"), "missing required key");
            String::new()
        }
        Some(route) => {
            if !routes.contains(route.as_str()) {
                errors.push(at("route"), format!("no route named {route:?}"));
            }
            route
        }
    };

    let when = raw
        .when
        .map(|w| conditions(&at("when"), w, errors))
        .unwrap_or_default();
    Rule { name, route, when }
}

fn conditions(path: &str, raw: RawWhen, errors: &mut Errors) -> Conditions {
    let at = |key: &str| join(path, key);

    let model = raw.model.map(|models| {
        if models.0.is_empty() {
            errors.push(at("model"), "list must not be empty");
        }
        for (i, m) in models.0.iter().enumerate() {
            if m.trim().is_empty() {
                errors.push(format!("{}[{i}]", at("model")), "must not be empty");
            }
        }
        models.0
    });

    let header = raw.header.map(|h| {
        let header_path = at("header");
        let name = match h.name {
            None => {
                errors.push(join(&header_path, "name"), "missing required key");
                String::new()
            }
            Some(name) => errors
                .check(&join(&header_path, "name"), values::header_name(&name))
                .unwrap_or_default(),
        };
        HeaderMatch {
            name,
            equals: h.equals,
        }
    });

    let min = raw
        .min_prompt_tokens
        .and_then(|n| errors.check(&at("min_prompt_tokens"), values::tokens(n)));
    let max = raw
        .max_prompt_tokens
        .and_then(|n| errors.check(&at("max_prompt_tokens"), values::tokens(n)));
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            errors.push(
                path,
                format!("min_prompt_tokens ({min}) is greater than max_prompt_tokens ({max})"),
            );
        }
    }

    let class = raw.class.map(|classes| {
        if classes.0.is_empty() {
            errors.push(at("class"), "list must not be empty");
        }
        classes.0
    });
    let confidence = |key: &str, v: Option<f64>, errors: &mut Errors| {
        v.and_then(|v| {
            if (0.0..=1.0).contains(&v) {
                Some(v as f32)
            } else {
                errors.push(at(key), format!("{v} is not a confidence in 0..=1"));
                None
            }
        })
    };
    let min_confidence = confidence("min_confidence", raw.min_confidence, errors);
    let max_confidence = confidence("max_confidence", raw.max_confidence, errors);
    if let (Some(lo), Some(hi)) = (min_confidence, max_confidence) {
        if lo >= hi {
            errors.push(
                path,
                format!("min_confidence ({lo}) must be below max_confidence ({hi})"),
            );
        }
    }

    Conditions {
        model,
        header,
        min_prompt_tokens: min,
        max_prompt_tokens: max,
        has_tools: raw.has_tools,
        class,
        min_confidence,
        max_confidence,
        unknown: raw.unknown,
    }
}
