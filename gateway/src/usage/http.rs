//! `GET /api/usage` and the `/dashboard` page: read-only, guarded by the admin key when the
//! policy sets one, and mounted outside the ledger layer (looking at the figures does not
//! change them).
//!
//! The page is four files compiled into the binary (`dashboard/`): no CDN, no other
//! origin; its Content-Security-Policy allows only this origin.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::aggregate::Keyed;
use super::auth::COOKIE;
use super::{now_ms, query, summarize, AdminKey, Dimension, Stats, Window};
use crate::error::ApiError;
use crate::ledger::Store;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");
const ICON_SVG: &str = include_str!("dashboard/icon.svg");

/// No script, style or connection outside this origin; the page cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The window used when none is asked for.
const DEFAULT_WINDOW: Window = Window::Day;

#[derive(Debug, Clone)]
struct Ctx {
    /// `None` when the policy disables the ledger.
    store: Option<Store>,
    key: AdminKey,
    reference_route: Option<String>,
}

/// The routes `/api/usage`, `/dashboard` and the page's files under `/dashboard/`.
pub fn router(store: Option<Store>, key: AdminKey, reference_route: Option<String>) -> Router {
    Router::new()
        .route("/api/usage", get(usage))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(style))
        .route("/dashboard/icon.svg", get(icon))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Ctx {
            store,
            key,
            reference_route,
        })
}

#[derive(Debug, Deserialize)]
struct UsageQuery {
    window: Option<String>,
}

/// The body of `GET /api/usage`. Money fields are decimal strings.
#[derive(Debug, Serialize)]
struct UsageBody<'a> {
    window: &'static str,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    reference_route: Option<&'a str>,
    totals: &'a Stats,
    routes: Vec<Keyed<'a>>,
    /// The same requests by the classifier's class (`null`: not classified).
    classes: Vec<Keyed<'a>>,
    series: Vec<Keyed<'a>>,
}

fn window(text: Option<&str>) -> Result<Window, ApiError> {
    match text {
        None => Ok(DEFAULT_WINDOW),
        Some(w) => w
            .parse()
            .map_err(|e: String| ApiError::invalid(e, Some("window"))),
    }
}

async fn usage(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    ctx.key.check(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text(), None))?;
    let window = window(query.window.as_deref())?;
    let Some(store) = &ctx.store else {
        return Err(ApiError::LedgerUnavailable(
            "the ledger is disabled by the policy ([ledger] enabled = false): \
             no usage is recorded"
                .into(),
        ));
    };
    let to_ms = now_ms();
    let from_ms = to_ms - window.length_ms();
    let reference = ctx.reference_route.as_deref();
    let rows = query::rows_between(store, from_ms, to_ms)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "usage query failed");
            ApiError::LedgerUnavailable(
                "could not read the ledger; the gateway's log has the details".into(),
            )
        })?;
    let by =
        |d: Dimension, bucket: Option<i64>| summarize(&rows, d, from_ms, to_ms, bucket, reference);
    let summary = by(Dimension::Route, Some(window.bucket_ms()));
    let by_class = by(Dimension::Class, None);
    let body = UsageBody {
        window: window.as_str(),
        from_ms,
        to_ms,
        bucket_ms: window.bucket_ms(),
        reference_route: reference,
        totals: &summary.totals,
        routes: summary
            .groups
            .iter()
            .map(|g| g.keyed(Dimension::Route))
            .collect(),
        classes: by_class
            .groups
            .iter()
            .map(|g| g.keyed(Dimension::Class))
            .collect(),
        series: summary
            .series
            .iter()
            .map(|p| p.keyed(Dimension::Route))
            .collect(),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct DashboardQuery {
    key: Option<String>,
    window: Option<String>,
}

/// The page. `?key=<admin key>` is accepted once: the answer is a redirect to the same page
/// without the key, with a session cookie the page's requests then carry.
async fn dashboard(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text(), None))?;
    let Some(key) = query.key else {
        ctx.key.check(&headers)?;
        return Ok(asset(INDEX_HTML, "text/html; charset=utf-8"));
    };
    ctx.key.check_key(&key)?;
    let cookie = ctx.key.cookie_value();
    let location = match query.window.as_deref().map(str::parse::<Window>) {
        Some(Ok(w)) => format!("/dashboard?window={}", w.as_str()),
        _ => "/dashboard".to_owned(),
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, location);
    }
    if let Some(value) = cookie {
        let set = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(set) = HeaderValue::from_str(&set) {
            h.insert(header::SET_COOKIE, set);
        }
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn script(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<Response, ApiError> {
    ctx.key.check(&headers)?;
    Ok(asset(APP_JS, "text/javascript; charset=utf-8"))
}

async fn style(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<Response, ApiError> {
    ctx.key.check(&headers)?;
    Ok(asset(APP_CSS, "text/css; charset=utf-8"))
}

async fn icon(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<Response, ApiError> {
    ctx.key.check(&headers)?;
    Ok(asset(ICON_SVG, "image/svg+xml"))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
