//! Compiled rule conditions.
//!
//! Each kind of condition is one [`Condition`] variant; a rule holds when all
//! of its conditions hold. A new signal (a classifier class, a confidence
//! band, ...) is added as a new variant plus its arm in [`Condition::holds`]
//! and [`compile`]; the decision procedure itself does not change.

use sluicegate_policies::Conditions;

use crate::RequestFacts;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    /// The requested model is one of these.
    ModelIn(Vec<String>),
    /// The header (lower-case name) is present, with this exact value if given.
    Header {
        name: String,
        equals: Option<String>,
    },
    /// Estimated prompt tokens `>=` this.
    MinPromptTokens(u32),
    /// Estimated prompt tokens `<=` this.
    MaxPromptTokens(u32),
    /// The request does / does not offer tools.
    HasTools(bool),
    /// The classifier's class is one of these.
    ClassIn(Vec<String>),
    /// The classifier's confidence `>=` this.
    MinConfidence(f32),
    /// The classifier's confidence `<` this.
    MaxConfidence(f32),
    /// The classifier found the request out of scope (or in scope).
    Unknown(bool),
}

impl Condition {
    pub(crate) fn holds(&self, facts: &RequestFacts) -> bool {
        match self {
            Self::ModelIn(models) => models.contains(&facts.model),
            Self::Header { name, equals } => {
                // `&str` lookups in a HeaderMap are case-insensitive.
                let mut values = facts.headers.get_all(name.as_str()).iter().peekable();
                match equals {
                    None => values.peek().is_some(),
                    Some(expected) => values.any(|v| v.as_bytes() == expected.as_bytes()),
                }
            }
            Self::MinPromptTokens(min) => facts.prompt_tokens >= *min,
            Self::MaxPromptTokens(max) => facts.prompt_tokens <= *max,
            Self::HasTools(wanted) => facts.has_tools == *wanted,
            // Without a classification (no classifier, or it failed) these never hold.
            Self::ClassIn(classes) => {
                classification(facts).is_some_and(|c| classes.contains(&c.class))
            }
            Self::MinConfidence(min) => classification(facts).is_some_and(|c| c.confidence >= *min),
            Self::MaxConfidence(max) => classification(facts).is_some_and(|c| c.confidence < *max),
            Self::Unknown(wanted) => classification(facts).is_some_and(|c| c.unknown == *wanted),
        }
    }
}

impl Condition {
    /// For a classifier condition that holds, the request's value against the rule's threshold
    /// (`confidence=0.41<0.5`, `confidence=0.93>=0.7`, `unknown`). A class condition compares
    /// no threshold: the class itself is in the record.
    pub(crate) fn compared(&self, facts: &RequestFacts) -> Option<String> {
        let c = classification(facts)?;
        match self {
            Self::MinConfidence(min) => Some(format!("confidence={:.2}>={min}", c.confidence)),
            Self::MaxConfidence(max) => Some(format!("confidence={:.2}<{max}", c.confidence)),
            Self::Unknown(true) => Some("unknown".to_owned()),
            Self::Unknown(false) => Some("in-scope".to_owned()),
            _ => None,
        }
    }
}

fn classification(facts: &RequestFacts) -> Option<&crate::Classification> {
    facts.signals.classification.as_ref()
}

/// Compiles a rule's `when` table. An empty table compiles to no conditions,
/// which always hold.
pub(crate) fn compile(when: &Conditions) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(models) = &when.model {
        out.push(Condition::ModelIn(models.clone()));
    }
    if let Some(header) = &when.header {
        out.push(Condition::Header {
            name: header.name.to_ascii_lowercase(),
            equals: header.equals.clone(),
        });
    }
    if let Some(min) = when.min_prompt_tokens {
        out.push(Condition::MinPromptTokens(min));
    }
    if let Some(max) = when.max_prompt_tokens {
        out.push(Condition::MaxPromptTokens(max));
    }
    if let Some(wanted) = when.has_tools {
        out.push(Condition::HasTools(wanted));
    }
    if let Some(classes) = &when.class {
        out.push(Condition::ClassIn(classes.clone()));
    }
    if let Some(min) = when.min_confidence {
        out.push(Condition::MinConfidence(min));
    }
    if let Some(max) = when.max_confidence {
        out.push(Condition::MaxConfidence(max));
    }
    if let Some(wanted) = when.unknown {
        out.push(Condition::Unknown(wanted));
    }
    out
}
