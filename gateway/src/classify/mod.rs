//! `ClassifyLayer`: runs the on-box classifier on each chat call, before the rule engine.
//!
//! The verdict (class, confidence, runner-up, milliseconds) is written into the request's one
//! record ([`OutcomeHandle`], which the ledger row, the metrics, the span and
//! `x-sluicegate-decision` are all made from) and into [`Signals`] (the rule engine's input,
//! which `DecideLayer` reads), and is logged. When the classifier cannot answer (loading,
//! failed, overloaded, timed out) the error kind goes into both, the engine picks
//! `on_classifier_error`, the header says `class=error(overloaded)`, and the request still
//! goes on.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::Response;
use futures::future::BoxFuture;
use sluicegate_policies::ClassifierInput;
use sluicegate_router::classifier::{Classifier, Verdict};
use sluicegate_router::{Classification, Signals};
use sluicegate_wire::{ChatRequest, Role};
use tower::{Layer, Service};

use crate::chat::ChatCall;
use crate::ledger::{OutcomeHandle, UNKNOWN_CLASS};

/// Classifies each call with `classifier` (none: calls pass through untouched).
///
/// ```
/// # use std::sync::Arc;
/// use sluicegate_gateway::classify::ClassifyLayer;
/// use sluicegate_policies::ClassifierInput;
/// // Without a configured classifier the layer is a pass-through.
/// let layer = ClassifyLayer::new(None, ClassifierInput::default());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    classifier: Option<Arc<dyn Classifier>>,
    input: ClassifierInput,
    min_similarity: Option<f32>,
}

impl ClassifyLayer {
    pub fn new(classifier: Option<Arc<dyn Classifier>>, input: ClassifierInput) -> Self {
        Self {
            classifier,
            input,
            min_similarity: None,
        }
    }

    /// The layer for a policy's `[classifier]` table (its input and `min_similarity`).
    pub fn for_policy(
        classifier: Option<Arc<dyn Classifier>>,
        config: Option<&sluicegate_policies::ClassifierConfig>,
    ) -> Self {
        Self::new(classifier, config.map(|c| c.input).unwrap_or_default())
            .with_min_similarity(config.and_then(|c| c.min_similarity))
    }

    /// The policy's `min_similarity`, recorded beside each verdict's similarity (the scorer
    /// applies it; this is so the record can say what was compared).
    pub fn with_min_similarity(mut self, min_similarity: Option<f32>) -> Self {
        self.min_similarity = min_similarity;
        self
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify {
            inner,
            classifier: self.classifier.clone(),
            input: self.input,
            min_similarity: self.min_similarity,
        }
    }
}

/// The service made by [`ClassifyLayer`].
#[derive(Debug, Clone)]
pub struct Classify<S> {
    inner: S,
    classifier: Option<Arc<dyn Classifier>>,
    input: ClassifierInput,
    min_similarity: Option<f32>,
}

/// The text of a request that is classified. Non-text parts are skipped.
pub fn classify_text(body: &ChatRequest, input: ClassifierInput) -> String {
    let text_of = |role: &[Role]| {
        body.messages
            .iter()
            .filter(|m| role.contains(&m.role))
            .filter_map(|m| m.content.as_ref().map(|c| c.as_text()))
            .collect::<Vec<_>>()
    };
    let last_user = text_of(&[Role::User]).pop().unwrap_or_default();
    match input {
        ClassifierInput::LastUser => last_user,
        ClassifierInput::Conversation => body.prompt_text(),
        ClassifierInput::LastUserAndSystem => {
            let system = text_of(&[Role::System, Role::Developer]).join("\n");
            if system.trim().is_empty() {
                last_user
            } else {
                format!("{system}\n{last_user}")
            }
        }
    }
}

impl<S> Service<ChatCall> for Classify<S>
where
    S: Service<ChatCall, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: ChatCall) -> Self::Future {
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(classifier) = self.classifier.clone() else {
            return Box::pin(inner.call(call));
        };
        let text = classify_text(&call.body, self.input);
        let min_similarity = self.min_similarity;
        Box::pin(async move {
            let mut signals = call.extensions.remove::<Signals>().unwrap_or_default();
            let record = call.extensions.get::<OutcomeHandle>().cloned();
            let record = record.unwrap_or_default();
            match classifier.classify(text).await {
                Ok(verdict) => {
                    tracing::info!(
                        class = %verdict.class,
                        confidence = verdict.confidence,
                        top = ?verdict.top,
                        ms = verdict.millis,
                        "classified"
                    );
                    signals.classification = Some(Classification {
                        class: verdict.class.clone(),
                        confidence: verdict.confidence,
                        unknown: verdict.unknown,
                        similarity: verdict.similarity,
                    });
                    record.update(|o| write_verdict(o, verdict, min_similarity));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "classifier unavailable: using on_classifier_error");
                    signals.classifier_error = Some(e.kind_name().to_owned());
                    record.update(|o| o.classifier_error = Some(e.kind_name().to_owned()));
                }
            }
            call.extensions.insert(signals);
            inner.call(call).await
        })
    }
}

/// The verdict into the request's record. An out-of-scope verdict is recorded as class
/// `unknown` with the nearest class as its runner-up.
fn write_verdict(o: &mut crate::ledger::Outcome, verdict: Verdict, min_similarity: Option<f32>) {
    o.classifier_ms = Some(verdict.millis);
    o.similarity = verdict.similarity;
    o.min_similarity = min_similarity;
    if verdict.unknown {
        o.runner_up = Some((verdict.class, verdict.confidence));
        o.confidence = Some(verdict.confidence);
        o.class = Some(UNKNOWN_CLASS.to_owned());
    } else {
        o.runner_up = verdict.top.get(1).cloned();
        o.confidence = Some(verdict.confidence);
        o.class = Some(verdict.class);
    }
}

#[cfg(test)]
mod tests;
