//! The validated `[policy]` table (rules and their conditions), and the `[classifier]` with
//! its `[classes.NAME]` tables, whose signals rules use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[policy]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPolicy {
    /// The route used when nothing else decides.
    pub default: String,
    /// Lower-case header name that lets a client pick a route explicitly.
    /// Default `Some("x-sluicegate-route")`; `route_header = false` disables it.
    pub route_header: Option<String>,
    /// Whether a request whose `model` is a route name goes to that route. Default true.
    pub honor_model: bool,
    /// Evaluated in order; the first rule whose conditions all hold wins.
    pub rules: Vec<Rule>,
}

impl RoutingPolicy {
    pub const DEFAULT_ROUTE_HEADER: &'static str = "x-sluicegate-route";
}

/// One `[[policy.rules]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// An existing route name.
    pub route: String,
    pub when: Conditions,
}

/// A rule's conditions. All given conditions must hold; none given means always.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    /// The request's `model` is one of these (never an empty list).
    pub model: Option<Vec<String>>,
    pub header: Option<HeaderMatch>,
    /// Estimated prompt tokens `>=` this.
    pub min_prompt_tokens: Option<u32>,
    /// Estimated prompt tokens `<=` this.
    pub max_prompt_tokens: Option<u32>,
    /// The request does (true) or does not (false) offer tools.
    pub has_tools: Option<bool>,
    /// The classifier's class is one of these (never an empty list).
    pub class: Option<Vec<String>>,
    /// The classifier's confidence `>=` this (in `0..=1`).
    pub min_confidence: Option<f32>,
    /// The classifier's confidence `<` this (in `0..=1`): "unsure" requests.
    pub max_confidence: Option<f32>,
    /// The classifier found the request out of scope (`true`) or in scope (`false`).
    pub unknown: Option<bool>,
}

impl Conditions {
    /// True when no condition is given, i.e. the rule always matches.
    pub fn is_empty(&self) -> bool {
        self.model.is_none()
            && self.header.is_none()
            && self.min_prompt_tokens.is_none()
            && self.max_prompt_tokens.is_none()
            && self.has_tools.is_none()
            && self.class.is_none()
            && self.min_confidence.is_none()
            && self.max_confidence.is_none()
            && self.unknown.is_none()
    }
}

/// A header condition: case-insensitive name, exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lower-case header name.
    pub name: String,
    /// `None` means "the header is present", with any value.
    pub equals: Option<String>,
}

/// The validated `[classifier]` table with its classes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    /// The encoder directory.
    pub encoder: PathBuf,
    /// A trained head; when given it decides the class (its labels are the classes).
    pub head: Option<PathBuf>,
    /// The route used when the classifier is loading, down, overloaded or too slow.
    pub on_error: String,
    pub input: ClassifierInput,
    pub matching: ExampleMatch,
    /// Per-request deadline, queueing included. Default 250 ms.
    pub timeout: Duration,
    /// Classes declared by examples.
    pub classes: BTreeMap<String, ClassConfig>,
    /// A request whose nearest example (or head training row) is less similar than this is
    /// out of scope (`unknown`). `None`: only a head's out-of-scope label makes it so.
    pub min_similarity: Option<f32>,
}

// Phase 2 admits `min_similarity` only inside -1..=1, never NaN, so equality is total.
impl Eq for ClassifierConfig {}

impl ClassifierConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

    /// Makes relative paths relative to `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        if self.encoder.is_relative() {
            self.encoder = dir.join(&self.encoder);
        }
        if let Some(head) = self.head.as_mut().filter(|h| h.is_relative()) {
            *head = dir.join(&*head);
        }
    }
}

/// What text of a request is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassifierInput {
    /// The last user message, preceded by the system prompt if any (default).
    #[default]
    LastUserAndSystem,
    /// The last user message only.
    LastUser,
    /// Every message's text.
    Conversation,
}

/// How a request is compared with class examples.
///
/// Measured on banking77 (`sluicegate router eval --few-shot-from`): with 5 examples a class,
/// centroid 75.8% vs 3-nearest 74.7%; with 20, centroid 82.8% vs 3-nearest 87.6%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExampleMatch {
    /// Centroid while classes have fewer than [`ExampleMatch::AUTO_KNN_FROM`] examples on
    /// average, else 3-nearest (default).
    #[default]
    Auto,
    /// Similarity to each class's centroid.
    Centroid,
    /// Mean similarity of the `k` nearest examples of each class.
    Knn(usize),
}

impl ExampleMatch {
    /// Average examples per class from which `Auto` uses 3-nearest.
    pub const AUTO_KNN_FROM: usize = 10;
}

/// One `[classes.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    pub examples: Vec<String>,
    pub description: Option<String>,
}
