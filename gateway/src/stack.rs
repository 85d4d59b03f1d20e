//! The gateway's tower stack, in one place. A request passes these layers top-down:
//!
//! HTTP layers (every path):
//! 1. `SetSensitiveRequestHeaders`: `authorization`, `cookie`, `x-api-key` and `api-key` are
//!    marked sensitive, so no log or trace prints them.
//! 2. `SetRequestId`: keeps the client's `x-request-id` or makes a UUID v4.
//! 3. [`LedgerLayer`]: gives the request an `OutcomeHandle` that inner layers fill in, and
//!    when the response body ends (or the client drops it) writes one ledger row and the
//!    metrics; every API request that reaches the gateway is recorded, errors and unknown
//!    paths included; with `[telemetry]`, each chat request also becomes one OpenTelemetry
//!    span (GenAI conventions). Operational endpoints (`/healthz`, `/readyz`, `/metrics`, and the
//!    read-only `/dashboard` and `/api/usage` of [`crate::usage::http`]) get these layers
//!    without this one: probes and scrapes are not traffic.
//! 4. `Trace`: one `tracing` span per request (method, path, request id), with status and
//!    latency when the response starts.
//! 5. `PropagateRequestId`: echoes `x-request-id` on every response, errors included.
//! 6. `CatchPanic`: a panic in a handler becomes a 500 in OpenAI's error shape.
//! 7. `AddExtension(BodyLimit)`: the body limit, enforced while the chat handler reads the
//!    body (413 in OpenAI's shape).
//!
//! Chat stack (`POST /v1/chat/completions`), entered by [`chat_completions`]:
//! 8. Parse: [`ChatJson`] reads the body under the limit and parses it; 400 names the field.
//! 9. Request timeout: `server.request_timeout` until the response starts (504).
//! 10. [`ClassifyLayer`]: the on-box classifier's verdict (class or `unknown`, confidence,
//!     runner-up, similarity, ms) goes into the request's record (`OutcomeHandle`) and the
//!     engine's `Signals`; if it cannot answer, the engine uses `on_classifier_error`.
//! 11. [`DecideLayer`]: the policy's rule engine picks a route; unknown model → 404.
//! 12. [`Dispatch`]: calls the route's backend, then its `fallback` routes in order while
//!     nothing has reached the client; sets `x-sluicegate-route`, `-backend`, `-decision`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use serde_json::json;
use sluicegate_wire::{unix_now, ModelList, ModelObject};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, RequestId};
use tower_http::trace::TraceLayer;
use tower_http::ServiceBuilderExt;

use crate::chat::{ChatCall, DecideLayer, Dispatch};
use crate::classify::ClassifyLayer;
use crate::error::ApiError;
use crate::extract::{BodyLimit, ChatJson};
use crate::ledger::{Ledger, LedgerLayer, OutcomeHandle, RequestParams};
use crate::state::AppState;
use crate::usage::AdminKey;

type ChatService = BoxCloneSyncService<ChatCall, Response, Infallible>;

#[derive(Clone)]
struct Ctx {
    state: AppState,
    chat: ChatService,
}

/// The chat stack: layers 10 to 12 above.
pub fn chat_service(state: &AppState) -> ChatService {
    let stack = ServiceBuilder::new()
        .layer(ClassifyLayer::for_policy(
            state.classifier.clone(),
            state.policy.classifier.as_ref(),
        ))
        .layer(DecideLayer::new(state.engine.clone()))
        .service(Dispatch::new(state.clone()));
    BoxCloneSyncService::new(stack)
}

/// The whole application: routes plus the HTTP layers 1-7. Without a ledger, layer 3 is
/// left out (tests and benchmarks) and `/api/usage` answers 503. The operational endpoints
/// (health, metrics, dashboard, usage API) get layers 1-7 without the ledger.
pub fn app(state: AppState, ledger: Option<Ledger>) -> Router {
    let body_limit = BodyLimit(state.policy.server.body_limit);
    let ctx = Ctx {
        chat: chat_service(&state),
        state,
    };
    let usage_store = ledger.as_ref().map(|l| l.store().clone());
    let recorded = ledger
        .map_or_else(LedgerLayer::disabled, LedgerLayer::new)
        .with_telemetry(
            (ctx.state.telemetry.clone())
                .map(|t| Arc::new(t) as Arc<dyn crate::ledger::FinishedObserver>),
        );
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctx.clone());
    // Health checks, metrics scrapes, the dashboard and the usage API are not traffic: they
    // get the same layers but write no ledger row (else every probe would count as a request
    // in the ledger, the metrics and the dashboard).
    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(ctx.clone())
        .merge(crate::usage::http::router(
            usage_store,
            AdminKey::from_env(ctx.state.policy.server.admin_key_env.as_deref()),
            ctx.state.policy.ledger.reference_route.clone(),
        ));
    with_http_layers(api, recorded, body_limit).merge(with_http_layers(
        ops,
        LedgerLayer::disabled(),
        body_limit,
    ))
}

/// Layers 1-7 around `router`, with `ledger` as layer 3.
fn with_http_layers(router: Router, ledger: LedgerLayer, body_limit: BodyLimit) -> Router {
    let sensitive: Arc<[HeaderName]> = Arc::new([
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("api-key"),
    ]);
    let http_layers = ServiceBuilder::new()
        .sensitive_request_headers(sensitive)
        .set_x_request_id(MakeRequestUuid)
        .layer(ledger)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .propagate_x_request_id()
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal.into_response()
        }))
        .layer(Extension(body_limit));
    router.layer(http_layers)
}

/// Layers 8 and 9, then into the chat stack.
async fn chat_completions(
    State(ctx): State<Ctx>,
    request_id: Option<Extension<RequestId>>,
    outcome: Option<Extension<OutcomeHandle>>,
    headers: HeaderMap,
    ChatJson(body): ChatJson,
) -> Response {
    let outcome = outcome.map(|Extension(o)| o).unwrap_or_default();
    let capture = ctx.state.captures_content();
    outcome.update(|o| {
        o.requested_model = Some(body.model.clone());
        o.stream = body.is_stream();
        o.request_params = RequestParams {
            max_tokens: body.max_output_tokens(),
            temperature: body.temperature,
            top_p: body.top_p,
        };
        if capture {
            o.prompt = serde_json::to_string(&body.messages).ok();
        }
    });
    let mut extensions = http::Extensions::new();
    extensions.insert(outcome);
    let request_id = request_id
        .and_then(|Extension(id)| id.header_value().to_str().ok().map(str::to_owned))
        .unwrap_or_default();
    let call = ChatCall {
        request_id,
        headers,
        body,
        extensions,
        received: Instant::now(),
    };
    let limit = ctx.state.policy.server.request_timeout;
    match tokio::time::timeout(limit, ctx.chat.oneshot(call)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::GatewayTimeout(limit.as_secs()).into_response(),
    }
}

async fn models(State(ctx): State<Ctx>) -> Json<ModelList> {
    let created = unix_now();
    let data = ctx
        .state
        .engine
        .known_models()
        .into_iter()
        .map(|id| ModelObject {
            id,
            object: "model".into(),
            created,
            owned_by: "sluicegate".into(),
        })
        .collect();
    Json(ModelList {
        object: "list".into(),
        data,
    })
}

async fn model(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    if !ctx.state.engine.known_models().contains(&id) {
        return ApiError::ModelNotFound(id).into_response();
    }
    Json(ModelObject {
        id,
        object: "model".into(),
        created: unix_now(),
        owned_by: "sluicegate".into(),
    })
    .into_response()
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the policy is loaded, at least one backend can serve, and no in-process model
/// is still loading or warming up.
async fn readyz(State(ctx): State<Ctx>) -> Response {
    let health = ctx.state.backend_health();
    let loading = ctx.state.backends_loading();
    let mut ready = health.values().any(Option::is_none) && loading.is_empty();
    let backends: serde_json::Map<String, serde_json::Value> = health
        .into_iter()
        .map(|(name, why)| {
            let v = match why {
                None => json!({"available": true}),
                Some(_) if loading.contains(&name) => json!({"available": false, "loading": true}),
                Some(why) => json!({"available": false, "reason": why}),
            };
            (name, v)
        })
        .collect();
    let mut body = json!({"backends": backends});
    // A loading classifier is worth waiting for (seconds); a failed one is reported but does
    // not take the gateway out of service: its requests use `on_classifier_error`.
    if let Some(classifier) = &ctx.state.classifier {
        use sluicegate_wire::Health;
        body["classifier"] = match classifier.health() {
            Health::Loading => {
                ready = false;
                json!({"state": "loading"})
            }
            Health::Ready => json!({"state": "ready"}),
            Health::Failed(why) => json!({"state": "failed", "reason": why}),
        };
    }
    body["status"] = json!(if ready { "ready" } else { "not_ready" });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
