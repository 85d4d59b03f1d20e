//! What the router knows about a request when it decides.

use serde::Serialize;

/// The facts a [`crate::Engine`] decides on. The gateway fills these from
/// the incoming request; nothing here requires parsing the body again.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// The `model` the client asked for (`"auto"`, a route name, or an alias).
    pub model: String,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// Estimated prompt length in tokens (see [`crate::estimate_tokens`]).
    pub prompt_tokens: u32,
    /// Whether the request offers tools / functions.
    pub has_tools: bool,
    /// Derived signals (classification, ...), filled by later layers.
    pub signals: Signals,
}

impl RequestFacts {
    /// Facts for a request for `model` with no headers, no tools and an empty prompt.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }
}

/// Signals derived from the request content by optional layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The on-box classifier's verdict, when a classifier is configured.
    pub classification: Option<Classification>,
    /// Why the classifier gave no verdict (loading, overloaded, timeout, ...), when it failed.
    /// The engine then uses the policy's `on_classifier_error` route.
    pub classifier_error: Option<String>,
}

/// A classifier verdict: the predicted class and how sure the model is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub class: String,
    /// In `0.0..=1.0`.
    pub confidence: f32,
    /// Out of scope: unlike everything the scorer was built from.
    pub unknown: bool,
    /// Cosine similarity to the nearest text the scorer was built from, when it keeps them.
    pub similarity: Option<f32>,
}
