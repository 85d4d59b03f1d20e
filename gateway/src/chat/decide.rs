//! `DecideLayer`: runs the policy's rule engine and records the [`Decision`] on the call.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready};
use sluicegate_router::{estimate_tokens, DecideError, Engine, RequestFacts, Signals};
use tower::{Layer, Service};

use super::ChatCall;
use crate::error::ApiError;

/// Decides the route of each call with the policy's [`Engine`].
///
/// The inner service finds a [`sluicegate_router::Decision`] in `call.extensions`; a request
/// the policy cannot place (an unknown model) is answered here with 404.
///
/// ```
/// # use std::sync::Arc;
/// # let policy = sluicegate_policies::parse(sluicegate_policies::DEFAULT_POLICY).unwrap();
/// let engine = Arc::new(sluicegate_router::Engine::new(&policy));
/// let layer = sluicegate_gateway::chat::DecideLayer::new(engine);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct DecideLayer {
    engine: Arc<Engine>,
}

impl DecideLayer {
    pub fn new(engine: Arc<Engine>) -> Self {
        DecideLayer { engine }
    }
}

impl<S> Layer<S> for DecideLayer {
    type Service = Decide<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Decide {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service made by [`DecideLayer`].
#[derive(Debug, Clone)]
pub struct Decide<S> {
    inner: S,
    engine: Arc<Engine>,
}

/// Facts the rule engine sees about a call.
pub fn facts_of(call: &ChatCall) -> RequestFacts {
    RequestFacts {
        model: call.body.model.clone(),
        headers: call.headers.clone(),
        prompt_tokens: estimate_tokens(&call.body.prompt_text()),
        has_tools: call.body.has_tools(),
        signals: call
            .extensions
            .get::<Signals>()
            .cloned()
            .unwrap_or_default(),
    }
}

impl<S> Service<ChatCall> for Decide<S>
where
    S: Service<ChatCall, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: ChatCall) -> Self::Future {
        match self.engine.decide(&facts_of(&call)) {
            Ok(decision) => {
                tracing::debug!(route = %decision.route, rule = %decision.rule, "decided");
                call.extensions.insert(decision);
                Either::Right(self.inner.call(call))
            }
            Err(e) => {
                let error = match e {
                    DecideError::UnknownModel(model) => ApiError::ModelNotFound(model),
                    DecideError::UnknownRouteHeader { header, value } => {
                        ApiError::UnknownRoute { header, value }
                    }
                };
                Either::Left(futures::future::ready(Ok(error.into_response())))
            }
        }
    }
}
