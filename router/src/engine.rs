//! The decision procedure: which route serves a request.

use std::collections::BTreeSet;

use serde::Serialize;
use sluicegate_policies::{Policy, AUTO_MODEL};

use crate::condition::{compile, Condition};
use crate::RequestFacts;

/// The outcome of [`Engine::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The chosen route.
    pub route: String,
    /// What decided: [`Decision::ROUTE_HEADER`], [`Decision::REQUESTED_MODEL`],
    /// a policy rule's name, or [`Decision::DEFAULT`].
    pub rule: String,
    /// The classifier thresholds the rule compared, with the request's values
    /// (`confidence=0.41<0.5`, `unknown`), when its conditions use the classifier's signals.
    pub compared: Option<String>,
}

impl Decision {
    /// The client named the route in the policy's route header.
    pub const ROUTE_HEADER: &'static str = "route-header";
    /// The client's `model` was a route name.
    pub const REQUESTED_MODEL: &'static str = "requested-model";
    /// The classifier could not answer; the policy's `on_classifier_error` route.
    pub const CLASSIFIER_ERROR: &'static str = "classifier-error";
    /// No rule matched; the policy's default route.
    pub const DEFAULT: &'static str = "default";

    fn new(route: &str, rule: &str) -> Self {
        Self {
            route: route.to_owned(),
            rule: rule.to_owned(),
            compared: None,
        }
    }
}

/// Why no route could be chosen. Both are client errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The requested model is not `"auto"`, a route name, or a rule's model alias.
    #[error("unknown model {0:?}: use \"auto\" or one of the models this gateway lists")]
    UnknownModel(String),
    /// The route header named a route that does not exist.
    #[error("header `{header}` names an unknown route {value:?}")]
    UnknownRouteHeader { header: String, value: String },
}

#[derive(Debug, Clone)]
struct CompiledRule {
    name: String,
    route: String,
    conditions: Vec<Condition>,
}

impl CompiledRule {
    fn matches(&self, facts: &RequestFacts) -> bool {
        self.conditions.iter().all(|c| c.holds(facts))
    }
}

/// A policy compiled for fast, allocation-light decisions. Cheap to clone;
/// build a new one when the policy changes.
#[derive(Debug, Clone)]
pub struct Engine {
    routes: BTreeSet<String>,
    default_route: String,
    route_header: Option<String>,
    honor_model: bool,
    rules: Vec<CompiledRule>,
    /// Model names mentioned in some rule's `when.model`.
    aliases: BTreeSet<String>,
    /// `classifier.on_classifier_error`, when a classifier is configured.
    on_classifier_error: Option<String>,
}

impl Engine {
    pub fn new(policy: &Policy) -> Engine {
        let routing = &policy.routing;
        let rules = routing
            .rules
            .iter()
            .map(|rule| CompiledRule {
                name: rule.name.clone(),
                route: rule.route.clone(),
                conditions: compile(&rule.when),
            })
            .collect();
        let aliases = routing
            .rules
            .iter()
            .filter_map(|rule| rule.when.model.as_ref())
            .flatten()
            .cloned()
            .collect();
        Engine {
            routes: policy.route_names().map(str::to_owned).collect(),
            default_route: routing.default.clone(),
            route_header: routing
                .route_header
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            honor_model: routing.honor_model,
            rules,
            aliases,
            on_classifier_error: policy.classifier.as_ref().map(|c| c.on_error.clone()),
        }
    }

    /// Chooses the route for a request. In order:
    /// 1. the route header, when configured and present (its value must be a route);
    /// 2. `model` naming a route, when `honor_model` is on;
    /// 3. an unknown `model` is an error;
    /// 4. the classifier failed: `on_classifier_error`;
    /// 5. the policy rules, first match wins;
    /// 6. the default route.
    pub fn decide(&self, facts: &RequestFacts) -> Result<Decision, DecideError> {
        if let Some(header) = &self.route_header {
            if let Some(value) = facts.headers.get(header.as_str()) {
                let value = String::from_utf8_lossy(value.as_bytes());
                return match self.routes.get(value.as_ref()) {
                    Some(route) => Ok(Decision::new(route, Decision::ROUTE_HEADER)),
                    None => Err(DecideError::UnknownRouteHeader {
                        header: header.clone(),
                        value: value.into_owned(),
                    }),
                };
            }
        }
        if self.honor_model && self.routes.contains(&facts.model) {
            return Ok(Decision::new(&facts.model, Decision::REQUESTED_MODEL));
        }
        // A model the policy does not know is refused whatever else the request says, so a
        // client never sees a model name work only sometimes (say, only with tools).
        if !self.is_known_model(&facts.model) {
            return Err(DecideError::UnknownModel(facts.model.clone()));
        }
        if let (Some(_), Some(route)) = (&facts.signals.classifier_error, &self.on_classifier_error)
        {
            return Ok(Decision::new(route, Decision::CLASSIFIER_ERROR));
        }
        if let Some(rule) = self.rules.iter().find(|r| r.matches(facts)) {
            let compared: Vec<String> = rule
                .conditions
                .iter()
                .filter_map(|c| c.compared(facts))
                .collect();
            return Ok(Decision {
                compared: (!compared.is_empty()).then(|| compared.join(",")),
                ..Decision::new(&rule.route, &rule.name)
            });
        }
        Ok(Decision::new(&self.default_route, Decision::DEFAULT))
    }

    /// Whether `model` is `"auto"`, a route name, or a rule's model alias.
    pub fn is_known_model(&self, model: &str) -> bool {
        model == AUTO_MODEL || self.routes.contains(model) || self.aliases.contains(model)
    }

    /// Every model name a client may send: `"auto"`, the route names and the
    /// rules' model aliases; sorted, without duplicates.
    pub fn known_models(&self) -> Vec<String> {
        let mut models: BTreeSet<&str> = BTreeSet::from([AUTO_MODEL]);
        models.extend(self.routes.iter().map(String::as_str));
        models.extend(self.aliases.iter().map(String::as_str));
        models.into_iter().map(str::to_owned).collect()
    }

    /// The policy's default route.
    pub fn default_route(&self) -> &str {
        &self.default_route
    }
}
