//! `/api/usage` and `/dashboard` through `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{rows, sqlite_with};
use crate::ledger::{Ledger, Store};
use crate::usage::http::router;
use crate::usage::AdminKey;

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::get(uri);
    for (n, v) in headers {
        r = r.header(*n, *v);
    }
    r.body(Body::empty()).unwrap()
}

fn error_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    let e = v["error"].clone();
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some(),
        "{v}"
    );
    e
}

async fn keyed_app() -> Router {
    let store = sqlite_with(&rows()).await;
    router(
        Some(store),
        AdminKey::with_key("ADMIN_KEY", "s3cret"),
        Some("big".into()),
    )
}

#[tokio::test]
async fn a_bad_window_is_a_400_naming_the_parameter() {
    let store = sqlite_with(&rows()).await;
    let app = router(Some(store), AdminKey::Open, None);
    let (status, _, body) = send(&app, get("/api/usage?window=2h", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let e = error_of(&body);
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["param"], "window");
    assert!(
        e["message"].as_str().unwrap().contains("1h, 24h, 7d"),
        "{e}"
    );
    let (status, _, body) = send(&app, get("/api/usage?window=1h", &[])).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["window"], "1h");
    assert_eq!(v["bucket_ms"], 60_000);
    assert_eq!(
        v["to_ms"].as_i64().unwrap() - v["from_ms"].as_i64().unwrap(),
        3_600_000
    );
    // The fixture rows are from 1970: nothing in the last hour.
    assert_eq!(v["totals"]["requests"], 0);
    assert_eq!(v["totals"]["cost_usd"], "0");
    assert_eq!(v["routes"], serde_json::json!([]));
    let (status, _, _) = send(&app, get("/api/usage", &[])).await;
    assert_eq!(status, StatusCode::OK, "the window defaults to 24h");
}

#[tokio::test]
async fn the_admin_key_is_required_when_configured() {
    let app = keyed_app().await;
    for (uri, headers) in [
        ("/api/usage?window=1h", vec![]),
        (
            "/api/usage?window=1h",
            vec![("authorization", "Bearer wrong")],
        ),
        ("/api/usage?window=1h", vec![("authorization", "s3cret")]),
        (
            "/api/usage?window=1h",
            vec![("cookie", "sluicegate_admin=s3cret")],
        ),
        ("/dashboard", vec![]),
        ("/dashboard/app.js", vec![]),
        ("/dashboard?key=wrong", vec![]),
    ] {
        let (status, h, body) = send(&app, get(uri, &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} {headers:?}");
        assert_eq!(error_of(&body)["code"], "invalid_api_key");
        assert!(h.contains_key(header::WWW_AUTHENTICATE));
    }
    // Authentication comes before validation: a bad window without a key is still a 401.
    let (status, _, _) = send(&app, get("/api/usage?window=2h", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bearer = [("authorization", "Bearer s3cret")];
    let (status, _, _) = send(&app, get("/api/usage?window=2h", &bearer)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = send(&app, get("/api/usage?window=7d", &bearer)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(&app, get("/dashboard", &bearer)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("data-testid=\"total-cost\""));
}

#[tokio::test]
async fn the_dashboard_trades_a_key_in_the_url_for_a_cookie() {
    let app = keyed_app().await;
    let (status, h, _) = send(&app, get("/dashboard?key=s3cret&window=7d", &[])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/dashboard?window=7d");
    let set = h[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains("s3cret"),
        "the cookie must not carry the key: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    for uri in [
        "/dashboard",
        "/dashboard/app.js",
        "/dashboard/app.css",
        "/api/usage?window=1h",
    ] {
        let (status, h, _) = send(&app, get(uri, &[("cookie", &cookie)])).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        if uri.starts_with("/dashboard") {
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        }
    }
}

#[tokio::test]
async fn an_unset_key_variable_closes_the_endpoints() {
    let store = sqlite_with(&rows()).await;
    let key = AdminKey::from_env(Some("SLUICEGATE_TEST_ADMIN_KEY_THAT_IS_NEVER_SET"));
    assert!(matches!(key, AdminKey::Missing { .. }));
    let app = router(Some(store), key, None);
    for headers in [vec![], vec![("authorization", "Bearer ")]] {
        let (status, _, body) = send(&app, get("/api/usage", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let e = error_of(&body);
        assert!(e["message"].as_str().unwrap().contains("NEVER_SET"), "{e}");
    }
    let (status, _, _) = send(&app, get("/dashboard?key=", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn read_only_and_ledger_disabled_answers() {
    let app = router(None, AdminKey::Open, None);
    let (status, _, body) = send(&app, get("/api/usage", &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_of(&body)["code"], "ledger_unavailable");
    let post = Request::post("/api/usage").body(Body::empty()).unwrap();
    let (status, _, body) = send(&app, post).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&body)["code"], "method_not_allowed");
}

#[tokio::test]
async fn probes_scrapes_and_usage_write_no_ledger_row() {
    let policy = sluicegate_policies::parse(
        "[backends.b]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [routes.r]\nbackend = \"b\"\n[policy]\ndefault = \"r\"\n",
    )
    .unwrap();
    let state = crate::state::AppState::new(policy).unwrap();
    let store = sqlite_with(&[]).await;
    let (ledger, writer) = Ledger::start(store.clone(), &state.policy, state.metrics.clone());
    let app = crate::stack::app(state, Some(ledger));
    for uri in ["/api/usage?window=1h", "/dashboard", "/dashboard/app.js"] {
        let (status, h, _) = send(&app, get(uri, &[])).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(
            h.contains_key("x-request-id"),
            "{uri} has the common layers"
        );
    }
    // Traffic still is recorded (here a 404 for an unknown path).
    let (status, _, _) = send(&app, get("/nope", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The writer waits for the request path to let go of the ledger.
    drop(app);
    writer
        .close(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let recorded = Store::rows_since(&store, 0).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0].status, 404);
}

/// Closing the writer waits (for at most half its limit) for the request path to let go of
/// the ledger: a row recorded by a response still in flight when `close` began is written.
#[tokio::test]
async fn closing_the_writer_keeps_a_row_recorded_while_it_waits() {
    let policy = sluicegate_policies::parse(
        "[backends.b]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
         [routes.r]\nbackend = \"b\"\n[policy]\ndefault = \"r\"\n",
    )
    .unwrap();
    let store = sqlite_with(&[]).await;
    let (ledger, writer) = Ledger::start(store.clone(), &policy, crate::metrics::Metrics::new());
    let late = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let row = super::row(
            "late",
            super::FROM,
            Some("r"),
            200,
            None,
            None,
            10.0,
            None,
            (0, 0),
        );
        ledger.record(row);
    });
    let written = writer.close(std::time::Duration::from_secs(5)).await;
    late.await.unwrap();
    assert_eq!(written, Some(1));
    let recorded = Store::rows_since(&store, 0).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0].request_id, "late");
}
