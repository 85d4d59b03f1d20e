//! `sluicegate explain "some prompt"`: the decision a request would get, sent nowhere.
//!
//! The prompt goes through the same two layers a served request goes through
//! ([`ClassifyLayer`] then [`DecideLayer`]) with the policy's real classifier, into a
//! request record ([`Outcome`]); where a served request would be dispatched, the record is
//! printed instead: the route, the rule and the thresholds it compared, the class with its
//! confidence, the runner-up, the similarity to the nearest example, and the
//! `x-sluicegate-decision` header the response would carry. No backend is contacted and no
//! ledger row is written.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::response::IntoResponse;
use serde_json::json;
use sluicegate_policies::Policy;
use sluicegate_router::classifier::{setup, Classifier};
use sluicegate_router::{Decision, Engine};
use sluicegate_wire::Health;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use crate::chat::{ChatCall, DecideLayer};
use crate::classify::ClassifyLayer;
use crate::ledger::{Outcome, OutcomeHandle};

/// What to explain: one user message, with an optional system prompt.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The user message.
    pub prompt: String,
    /// A system prompt sent with it.
    #[arg(long)]
    pub system: Option<String>,
    /// The `model` the client would send.
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Pretend the request offers a tool.
    #[arg(long)]
    pub with_tools: bool,
}

/// How long to wait for the encoder to load.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// The decision for `args` under `policy`, as its request record and the chosen route.
pub async fn decide(policy: &Policy, args: &ExplainArgs) -> anyhow::Result<(Decision, Outcome)> {
    let classifier: Option<Arc<dyn Classifier>> = match &policy.classifier {
        None => None,
        Some(config) => {
            let handle = setup::start(config);
            let mut health = handle.watch_health();
            let ready = tokio::time::timeout(LOAD_LIMIT, async {
                loop {
                    match &*health.borrow_and_update() {
                        Health::Ready => return Ok(()),
                        Health::Failed(why) => return Err(why.clone()),
                        Health::Loading => {}
                    }
                    if health.changed().await.is_err() {
                        return Err("the encoder thread stopped".to_owned());
                    }
                }
            })
            .await;
            match ready {
                Ok(Ok(())) => {}
                Ok(Err(why)) => bail!("the classifier failed to load: {why}"),
                Err(_) => bail!("the classifier did not load in {LOAD_LIMIT:?}"),
            }
            Some(Arc::new(handle))
        }
    };
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": args.prompt}));
    let mut body = json!({"model": args.model, "messages": messages});
    if args.with_tools {
        body["tools"] =
            json!([{"type": "function", "function": {"name": "tool", "parameters": {}}}]);
    }
    let record = OutcomeHandle::default();
    let mut call = ChatCall {
        request_id: "explain".into(),
        headers: Default::default(),
        body: serde_json::from_value(body).context("building the request")?,
        extensions: Default::default(),
        received: Instant::now(),
    };
    call.extensions.insert(record.clone());
    let decided = Arc::new(std::sync::Mutex::new(None));
    let slot = decided.clone();
    // Where dispatch would send the request: keep the decision, as dispatch records it.
    let dispatch = service_fn(move |call: ChatCall| {
        let slot = slot.clone();
        async move {
            if let (Some(d), Some(record)) = (
                call.extensions.get::<Decision>(),
                call.extensions.get::<OutcomeHandle>(),
            ) {
                record.update(|o| {
                    o.decided(d);
                    o.route = Some(d.route.clone());
                });
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(d.clone());
            }
            Ok::<_, Infallible>(http::StatusCode::OK.into_response())
        }
    });
    let response = ServiceBuilder::new()
        .layer(ClassifyLayer::for_policy(
            classifier,
            policy.classifier.as_ref(),
        ))
        .layer(DecideLayer::new(Arc::new(Engine::new(policy))))
        .service(dispatch)
        .oneshot(call)
        .await
        .unwrap_or_else(|never| match never {});
    let decision = decided.lock().unwrap_or_else(|p| p.into_inner()).take();
    match decision {
        Some(d) => Ok((d, record.snapshot())),
        None => {
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            bail!(
                "the request would be refused: {}",
                String::from_utf8_lossy(&body)
            )
        }
    }
}

/// Prints the decision for `args` under `policy`.
pub async fn run(policy: &Policy, args: &ExplainArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (decision, o) = decide(policy, args).await?;
    let backend = policy
        .backend_for(&decision.route)
        .map(|b| b.name.clone())
        .unwrap_or_default();
    writeln!(out, "route:      {} (backend {backend})", decision.route)?;
    match &decision.compared {
        Some(c) => writeln!(out, "rule:       {} ({c})", decision.rule)?,
        None => writeln!(out, "rule:       {}", decision.rule)?,
    }
    match (&o.class, o.confidence, &o.classifier_error) {
        (Some(class), Some(c), _) => writeln!(out, "class:      {class} (confidence {c:.2})")?,
        (_, _, Some(e)) => writeln!(out, "class:      none: the classifier failed ({e})")?,
        _ => writeln!(out, "class:      none (the policy has no [classifier])")?,
    }
    if let Some((class, p)) = &o.runner_up {
        writeln!(out, "runner-up:  {class} ({p:.2})")?;
    }
    if let Some(s) = o.similarity {
        match o.min_similarity {
            Some(min) => writeln!(
                out,
                "similarity: {s:.2} to the nearest example (min_similarity {min})"
            )?,
            None => writeln!(
                out,
                "similarity: {s:.2} to the nearest example (no min_similarity)"
            )?,
        }
    }
    if let Some(ms) = o.classifier_ms {
        writeln!(out, "classified in {ms:.1} ms")?;
    }
    writeln!(out, "x-sluicegate-decision: {}", o.decision_header())?;
    Ok(())
}
