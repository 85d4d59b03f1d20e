//! What happened to one request, filled in by the layers as it travels and read by the
//! ledger when its response ends.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The class recorded for a request the classifier found out of scope.
pub const UNKNOWN_CLASS: &str = "unknown";

/// Facts about one request's handling; every field is optional because a request can fail
/// at any layer (a 400 never gets a route).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub requested_model: Option<String>,
    pub stream: bool,
    /// The classifier's verdict (written by `ClassifyLayer`): the class, its probability,
    /// the runner-up with its probability, and the time it took (queueing included).
    pub class: Option<String>,
    pub confidence: Option<f32>,
    pub runner_up: Option<(String, f32)>,
    pub classifier_ms: Option<f64>,
    /// Cosine similarity to the nearest text the scorer was built from, and the policy's
    /// `min_similarity` it was held against; `class` is `unknown` when it fell short (or a
    /// head's out-of-scope label won), and `runner_up` is then the nearest class.
    pub similarity: Option<f32>,
    pub min_similarity: Option<f32>,
    /// Why the classifier gave no verdict (`overloaded`, `timeout`, ...); the engine then
    /// used `on_classifier_error`.
    pub classifier_error: Option<String>,
    /// The policy rule that chose the route (written by dispatch from the decision).
    pub rule: Option<String>,
    /// The classifier thresholds the rule compared, with this request's values.
    pub compared: Option<String>,
    pub route: Option<String>,
    pub backend: Option<String>,
    pub upstream_model: Option<String>,
    /// Routes tried, in order, including the one that answered.
    pub attempts: Vec<String>,
    /// The routes that failed before the one that answered, with why (`remote(timeout)`).
    pub fallbacks: Vec<String>,
    /// Short error name of the failure answered or, for streams, of the failure mid-stream.
    pub error_type: Option<String>,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    /// The token counts were estimated by the gateway, not reported by the upstream.
    pub tokens_estimated: bool,
    /// Time to the first byte of the answer (streams: the first chunk).
    pub ttft: Option<Duration>,
    /// A stream reached its end (`[DONE]` sent).
    pub stream_completed: bool,
    /// Time an in-process model was busy on this request (priced by the hour).
    pub compute: Option<Duration>,
    /// `finish_reason` of each choice, as answered.
    pub finish_reasons: Vec<String>,
    /// The answer's `id` and `model`.
    pub response_id: Option<String>,
    pub response_model: Option<String>,
    /// The backend's protocol (`openai`, `anthropic`, `local`).
    pub provider: Option<&'static str>,
    /// Sampling settings the client asked for, for telemetry.
    pub request_params: RequestParams,
    /// The messages as JSON and the reply's text; only filled when the policy opts in to
    /// storing or exporting content.
    pub prompt: Option<String>,
    pub reply: Option<String>,
}

impl Outcome {
    /// `x-sluicegate-decision`: why the request went where it went, read from this record:
    /// `rule=R(confidence=0.41<0.5); class=C(0.41); runner_up=D(0.09); fallback=a(timeout)->b`,
    /// `class=unknown(similarity=0.21<0.3)` for an out-of-scope request, or
    /// `class=error(overloaded)` when the classifier could not answer.
    pub fn decision_header(&self) -> String {
        let rule = self.rule.as_deref().unwrap_or("none");
        let mut parts = vec![match &self.compared {
            Some(compared) => format!("rule={rule}({compared})"),
            None => format!("rule={rule}"),
        }];
        match (&self.class, self.confidence, &self.classifier_error) {
            (Some(class), _, _) if class == UNKNOWN_CLASS => {
                parts.push(match (self.similarity, self.min_similarity) {
                    (Some(s), Some(min)) => format!("class={class}(similarity={s:.2}<{min})"),
                    _ => format!("class={class}"),
                })
            }
            (Some(class), Some(c), _) => parts.push(format!("class={class}({c:.2})")),
            (_, _, Some(kind)) => parts.push(format!("class=error({kind})")),
            _ => {}
        }
        if let Some((class, p)) = &self.runner_up {
            parts.push(format!("runner_up={class}({p:.2})"));
        }
        for f in &self.fallbacks {
            parts.push(format!("fallback={f}"));
        }
        let mut text = parts.join("; ");
        if !self.fallbacks.is_empty() {
            if let Some(route) = &self.route {
                text.push_str(&format!("->{route}"));
            }
        }
        text
    }

    /// Records the engine's decision: the rule and the thresholds it compared.
    pub fn decided(&mut self, d: &sluicegate_router::Decision) {
        self.rule = Some(d.rule.clone());
        self.compared = d.compared.clone();
    }

    /// This outcome with the messages and the reply dropped.
    pub fn without_content(mut self) -> Self {
        self.prompt = None;
        self.reply = None;
        self
    }
}

/// The request's own settings worth recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

/// A shared handle on one request's [`Outcome`]. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutcomeHandle(Arc<Mutex<Outcome>>);

impl OutcomeHandle {
    /// Locks the outcome; a poisoned lock still yields the data (it is plain facts).
    pub fn lock(&self) -> MutexGuard<'_, Outcome> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to the outcome.
    pub fn update(&self, f: impl FnOnce(&mut Outcome)) {
        f(&mut self.lock());
    }

    /// A copy of the outcome as it is now.
    pub fn snapshot(&self) -> Outcome {
        self.lock().clone()
    }
}
