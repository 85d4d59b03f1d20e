use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::response::IntoResponse;
use serde_json::json;
use sluicegate_encoder::ClassifyError;
use sluicegate_router::Decision;
use sluicegate_wire::Health;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::*;
use crate::chat::{headers, DecideLayer};
use crate::ledger::Outcome;

#[derive(Debug)]
struct Fake(Result<Verdict, ClassifyError>);

#[async_trait]
impl Classifier for Fake {
    async fn embed(&self, _: Vec<String>) -> Result<Vec<Vec<f32>>, ClassifyError> {
        Err(ClassifyError::Closed)
    }
    async fn classify(&self, _: String) -> Result<Verdict, ClassifyError> {
        self.0.clone()
    }
    fn health(&self) -> Health {
        Health::Ready
    }
}

const POLICY: &str = r#"
[backends.b]
kind = "openai"
model = "m"
[routes.small]
backend = "b"
[routes.remote]
backend = "b"
[classifier]
encoder = "models/minilm"
on_classifier_error = "remote"
[classes.billing]
examples = ["I was charged twice"]
[policy]
default = "small"
[[policy.rules]]
name = "unfamiliar"
route = "remote"
when = { unknown = true }
[[policy.rules]]
name = "unsure"
route = "remote"
when = { max_confidence = 0.5 }
"#;

fn call(body: serde_json::Value) -> ChatCall {
    ChatCall {
        request_id: "r".into(),
        headers: Default::default(),
        body: serde_json::from_value(body).unwrap(),
        extensions: Default::default(),
        received: Instant::now(),
    }
}

fn hello() -> ChatCall {
    call(json!({"model": "auto", "messages": [{"role": "user", "content": "refund me"}]}))
}

/// ClassifyLayer → DecideLayer → a fake dispatch that records the rule and sets the headers
/// from the request's record, as the real one does. Returns the response and the record.
async fn run(classifier: Option<Arc<dyn Classifier>>, mut call: ChatCall) -> (Response, Outcome) {
    let engine = Arc::new(sluicegate_router::Engine::new(
        &sluicegate_policies::parse(POLICY).unwrap(),
    ));
    let record = OutcomeHandle::default();
    call.extensions.insert(record.clone());
    let dispatch = service_fn(|call: ChatCall| async move {
        let d = call.extensions.get::<Decision>().unwrap().clone();
        let record = call.extensions.get::<OutcomeHandle>().unwrap().clone();
        record.update(|o| o.decided(&d));
        let mut r = http::StatusCode::OK.into_response();
        r.headers_mut()
            .insert(headers::ROUTE, d.route.parse().unwrap());
        let decision = record.snapshot().decision_header();
        r.headers_mut()
            .insert(headers::DECISION, decision.parse().unwrap());
        Ok::<_, Infallible>(r)
    });
    let stack = ServiceBuilder::new()
        .layer(
            ClassifyLayer::new(classifier, ClassifierInput::default())
                .with_min_similarity(Some(0.3)),
        )
        .layer(DecideLayer::new(engine))
        .service(dispatch);
    let response = stack.oneshot(call).await.unwrap();
    (response, record.snapshot())
}

fn header(r: &Response, name: &str) -> String {
    r.headers()[name].to_str().unwrap().to_owned()
}

fn verdict(class: &str, confidence: f32) -> Verdict {
    Verdict {
        class: class.into(),
        confidence,
        top: vec![
            (class.into(), confidence),
            ("other".into(), 1.0 - confidence),
        ],
        millis: 3.0,
        similarity: Some(0.8),
        unknown: false,
    }
}

#[tokio::test]
async fn verdict_reaches_the_engine_the_record_and_the_header() {
    let fake: Arc<dyn Classifier> = Arc::new(Fake(Ok(verdict("billing", 0.87))));
    let (r, record) = run(Some(fake.clone()), hello()).await;
    assert_eq!(header(&r, headers::ROUTE), "small");
    assert_eq!(
        header(&r, headers::DECISION),
        "rule=default; class=billing(0.87); runner_up=other(0.13)"
    );
    assert_eq!(record.class.as_deref(), Some("billing"));
    assert_eq!(record.confidence, Some(0.87));
    assert_eq!(record.runner_up, Some(("other".into(), 1.0 - 0.87)));
    assert_eq!(record.classifier_ms, Some(3.0));
    assert_eq!(record.rule.as_deref(), Some("default"));

    let unsure: Arc<dyn Classifier> = Arc::new(Fake(Ok(verdict("billing", 0.3))));
    let (r, _) = run(Some(unsure), hello()).await;
    assert_eq!(header(&r, headers::ROUTE), "remote");
    assert_eq!(
        header(&r, headers::DECISION),
        "rule=unsure(confidence=0.30<0.5); class=billing(0.30); runner_up=other(0.70)"
    );
}

#[tokio::test]
async fn an_unknown_request_is_recorded_as_unknown_with_the_nearest_class() {
    let mut v = verdict("billing", 0.95);
    v.similarity = Some(0.21);
    v.unknown = true;
    let fake: Arc<dyn Classifier> = Arc::new(Fake(Ok(v)));
    let (r, record) = run(Some(fake), hello()).await;
    assert_eq!(header(&r, headers::ROUTE), "remote");
    assert_eq!(
        header(&r, headers::DECISION),
        "rule=unfamiliar(unknown); class=unknown(similarity=0.21<0.3); runner_up=billing(0.95)"
    );
    assert_eq!(record.class.as_deref(), Some("unknown"));
    assert_eq!(record.runner_up, Some(("billing".into(), 0.95)));
    assert_eq!(record.similarity, Some(0.21));
    assert_eq!(record.compared.as_deref(), Some("unknown"));
}

#[tokio::test]
async fn classifier_errors_use_the_error_route_and_the_request_goes_on() {
    for error in [
        ClassifyError::Overloaded,
        ClassifyError::Timeout(250),
        ClassifyError::Loading,
        ClassifyError::Failed("boom".into()),
    ] {
        let kind = error.kind_name();
        let fake: Arc<dyn Classifier> = Arc::new(Fake(Err(error)));
        let (r, record) = run(Some(fake), hello()).await;
        assert_eq!(r.status(), http::StatusCode::OK);
        assert_eq!(record.classifier_error.as_deref(), Some(kind));
        assert_eq!(record.class, None);
        assert_eq!(header(&r, headers::ROUTE), "remote");
        assert_eq!(
            header(&r, headers::DECISION),
            format!("rule=classifier-error; class=error({kind})")
        );
    }
}

#[tokio::test]
async fn without_a_classifier_calls_pass_through() {
    let (r, record) = run(None, hello()).await;
    assert_eq!(header(&r, headers::DECISION), "rule=default");
    assert_eq!((record.class, record.classifier_ms), (None, None));
}

#[test]
fn classified_text_is_system_plus_last_user_and_skips_non_text_parts() {
    let c = call(json!({"model": "auto", "messages": [
        {"role": "system", "content": "You are a bank."},
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:,"}},
            {"type": "text", "text": "why was I charged twice?"}
        ]}
    ]}));
    let text = classify_text(&c.body, ClassifierInput::LastUserAndSystem);
    assert_eq!(text, "You are a bank.\nwhy was I charged twice?");
    assert_eq!(
        classify_text(&c.body, ClassifierInput::LastUser),
        "why was I charged twice?"
    );
    assert!(classify_text(&c.body, ClassifierInput::Conversation).contains("old question"));
    let empty = call(json!({"model": "auto", "messages": [{"role": "assistant", "content": "x"}]}));
    assert_eq!(classify_text(&empty.body, ClassifierInput::default()), "");
}
