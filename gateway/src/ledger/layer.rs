//! `LedgerLayer`: gives each request an [`OutcomeHandle`] and, when its response body ends
//! (or is dropped because the client went away), turns it into one [`LedgerRow`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower::{Layer, Service};

use super::outcome::OutcomeHandle;
use super::row::LedgerRow;
use super::{api_key_id, Finished, FinishedObserver, Ledger};
use crate::error::ErrorType;

/// Records every request that reaches the gateway, errors and disconnects included.
///
/// Inner layers fill the [`OutcomeHandle`] found in the request extensions; this layer adds
/// the status and latency and sends the row to the [`Ledger`] when the body is done.
///
/// ```
/// # async fn demo(ledger: sluicegate_gateway::ledger::Ledger) {
/// let app = axum::Router::<()>::new()
///     .route("/", axum::routing::get(|| async { "hi" }))
///     .layer(sluicegate_gateway::ledger::LedgerLayer::new(ledger));
/// # let _ = app;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LedgerLayer {
    ledger: Option<Ledger>,
    telemetry: Option<Arc<dyn FinishedObserver>>,
}

impl LedgerLayer {
    pub fn new(ledger: Ledger) -> Self {
        LedgerLayer {
            ledger: Some(ledger),
            telemetry: None,
        }
    }

    /// Records nothing; inner layers still get an [`OutcomeHandle`] to fill.
    pub fn disabled() -> Self {
        LedgerLayer {
            ledger: None,
            telemetry: None,
        }
    }

    /// Also exports one OpenTelemetry span per chat request (with or without a ledger).
    pub fn with_telemetry(mut self, telemetry: Option<Arc<dyn FinishedObserver>>) -> Self {
        self.telemetry = telemetry;
        self
    }
}

impl<S> Layer<S> for LedgerLayer {
    type Service = LedgerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LedgerService {
            inner,
            ledger: self.ledger.clone(),
            telemetry: self.telemetry.clone(),
        }
    }
}

/// The service made by [`LedgerLayer`].
#[derive(Debug, Clone)]
pub struct LedgerService<S> {
    inner: S,
    ledger: Option<Ledger>,
    telemetry: Option<Arc<dyn FinishedObserver>>,
}

impl<S, B> Service<Request<Body>> for LedgerService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let arrived = SystemTime::now();
        let outcome = OutcomeHandle::default();
        req.extensions_mut().insert(outcome.clone());
        let pending = Pending {
            request_id: header_text(&req, "x-request-id").unwrap_or_default(),
            api_key_id: api_key_id(req.headers()),
            arrived,
            started,
            outcome,
            ledger: self.ledger.clone(),
            telemetry: self
                .telemetry
                .clone()
                .filter(|_| req.uri().path() == "/v1/chat/completions"),
        };
        // Recorded on drop too: a client that leaves before the response still leaves a row.
        let mut recorder = Recorder {
            pending: Some(pending),
            status: None,
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            let (parts, body) = response.into_parts();
            if let (Some(ErrorType(kind)), Some(p)) =
                (parts.extensions.get::<ErrorType>(), &recorder.pending)
            {
                p.outcome.update(|o| {
                    o.error_type.get_or_insert_with(|| kind.clone());
                });
            }
            recorder.status = Some(parts.status.as_u16());
            let inner = Body::new(body);
            Ok(Response::from_parts(
                parts,
                Body::new(LedgerBody { inner, recorder }),
            ))
        })
    }
}

fn header_text<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Everything needed to write the row once the body is done.
struct Pending {
    request_id: String,
    api_key_id: Option<String>,
    arrived: SystemTime,
    started: Instant,
    outcome: OutcomeHandle,
    ledger: Option<Ledger>,
    /// Set for chat requests when spans are exported.
    telemetry: Option<Arc<dyn FinishedObserver>>,
}

struct Recorder {
    pending: Option<Pending>,
    /// `None` until the inner service has answered.
    status: Option<u16>,
}

impl Recorder {
    /// Writes the row once; `finished` is false when the body was dropped before its end.
    fn record(&mut self, finished: bool) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if p.ledger.is_none() && p.telemetry.is_none() {
            return;
        }
        let mut outcome = p.outcome.snapshot();
        let answered = self.status.is_some();
        let mut status = self.status.unwrap_or(499);
        if !answered || (outcome.stream && !outcome.stream_completed && !finished) {
            // The client went away mid-stream (nginx's "client closed request").
            status = 499;
            outcome
                .error_type
                .get_or_insert_with(|| "client_closed".into());
        }
        let latency = p.started.elapsed();
        let row = p.ledger.as_ref().map(|ledger| {
            LedgerRow::build(
                p.request_id.clone(),
                p.arrived,
                p.api_key_id.clone(),
                status,
                latency,
                if ledger.stores_content() {
                    outcome.clone()
                } else {
                    outcome.clone().without_content()
                },
                ledger.pricing(outcome.route.as_deref()),
            )
        });
        if let Some(telemetry) = &p.telemetry {
            telemetry.finished(&Finished {
                request_id: &p.request_id,
                arrived: p.arrived,
                latency,
                status,
                outcome: &outcome,
                row: row.as_ref(),
            });
        }
        if let (Some(ledger), Some(row)) = (&p.ledger, row) {
            ledger.record(row);
        }
    }
}

/// Wraps a response body to notice its end or its drop.
struct LedgerBody {
    inner: Body,
    recorder: Recorder,
}

impl HttpBody for LedgerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &polled {
            None => self.recorder.record(true),
            Some(Ok(_)) if self.inner.is_end_stream() => self.recorder.record(true),
            _ => {}
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LedgerBody {
    fn drop(&mut self) {
        let finished = self.inner.is_end_stream();
        self.recorder.record(finished);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Only reached with `pending` still set when no response was ever produced.
        self.record(false);
    }
}
