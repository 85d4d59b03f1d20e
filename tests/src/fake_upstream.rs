//! A fake OpenAI / Anthropic upstream driven by fixture files.
//!
//! The fixture is picked by the `model` of the request: `fx-NAME` means
//! `<fixtures>/openai/NAME.json` for `POST /v1/chat/completions` (`NAME.sse` when the
//! request has `"stream": true`), and `<fixtures>/anthropic/...` for `POST /v1/messages`.
//! A streamed request whose `.sse` does not exist is answered from `NAME.json`, so one error
//! fixture serves both modes.
//!
//! `.json` fixtures: `{"status": 200, "headers": {..}, "delay_ms": 0, "body": {..}}`; only
//! `body` is required. `.sse` fixtures are the raw transcript; a line `: delay-ms N` is not
//! sent but pauses N milliseconds.
//!
//! A missing fixture is answered with a 500 naming the file, printed to stderr, and makes
//! the [`FakeUpstream`] panic when dropped, so a typo cannot pass unnoticed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// One request the fake upstream received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: HeaderMap,
    /// The parsed JSON body (`Null` when it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `model` of the body.
    pub fn model(&self) -> &str {
        self.body["model"].as_str().unwrap_or("")
    }
}

#[derive(Debug, Default)]
struct Shared {
    requests: Vec<RecordedRequest>,
    missing: Vec<String>,
}

#[derive(Debug, Clone)]
struct Ctx {
    fixtures: Arc<PathBuf>,
    shared: Arc<Mutex<Shared>>,
}

/// A running fake upstream on `127.0.0.1:<free port>`; stopped when dropped.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts serving fixtures from `fixtures` (normally [`crate::fixtures_dir`]).
    pub async fn start(fixtures: impl Into<PathBuf>) -> FakeUpstream {
        let ctx = Ctx {
            fixtures: Arc::new(fixtures.into()),
            shared: Arc::default(),
        };
        let shared = ctx.shared.clone();
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .fallback(unknown_path)
            .with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake upstream");
        });
        FakeUpstream { addr, shared, task }
    }

    /// Starts with the crate's own `tests/fixtures`.
    pub async fn start_default() -> FakeUpstream {
        Self::start(crate::fixtures_dir()).await
    }

    /// `http://127.0.0.1:PORT`: the `base_url` of an Anthropic backend.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the `base_url` of an OpenAI backend.
    pub fn openai_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .expect("fake upstream lock")
            .requests
            .clone()
    }

    /// The missing-fixture failures so far, forgotten once taken (so a test that asks for a
    /// missing fixture on purpose can check the failure and still drop cleanly).
    pub fn take_missing(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().expect("fake upstream lock").missing)
    }

    /// Waits until at least `n` requests arrived (panics after 10s).
    pub async fn wait_for_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fake upstream got {} request(s), expected {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
        let missing = self
            .shared
            .lock()
            .map(|s| s.missing.clone())
            .unwrap_or_default();
        if !missing.is_empty() && !std::thread::panicking() {
            panic!("the fake upstream was asked for missing fixtures: {missing:#?}");
        }
    }
}

async fn openai(State(ctx): State<Ctx>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(ctx, "openai", uri, headers, body).await
}

async fn anthropic(State(ctx): State<Ctx>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    serve(ctx, "anthropic", uri, headers, body).await
}

async fn unknown_path(uri: Uri) -> Response {
    let message = format!("fake upstream: no such path {}", uri.path());
    eprintln!("{message}");
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"message": message}})),
    )
        .into_response()
}

async fn serve(ctx: Ctx, api: &str, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    ctx.shared
        .lock()
        .expect("fake upstream lock")
        .requests
        .push(RecordedRequest {
            path: uri.path().to_owned(),
            headers,
            body: parsed.clone().unwrap_or(Value::Null),
        });
    let Some(body) = parsed else {
        return fail(
            &ctx,
            StatusCode::BAD_REQUEST,
            "fake upstream: the body is not JSON".into(),
        );
    };
    let model = body["model"].as_str().unwrap_or_default();
    let Some(name) = model.strip_prefix("fx-") else {
        let message = format!("fake upstream: model {model:?} names no fixture (use fx-NAME)");
        return fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, message);
    };
    let stream = body["stream"].as_bool().unwrap_or(false);
    let dir = ctx.fixtures.join(api);
    let sse = dir.join(format!("{name}.sse"));
    let json_file = dir.join(format!("{name}.json"));
    if stream && sse.is_file() {
        return sse_reply(&sse);
    }
    if json_file.is_file() {
        return json_reply(&json_file).await;
    }
    let wanted = if stream { &sse } else { &json_file };
    let message = format!(
        "fake upstream: no fixture {} for model {model:?} (stream: {stream})",
        wanted.display()
    );
    fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn fail(ctx: &Ctx, status: StatusCode, message: String) -> Response {
    eprintln!("{message}");
    ctx.shared
        .lock()
        .expect("fake upstream lock")
        .missing
        .push(message.clone());
    let body = json!({"error": {"message": message, "type": "fake_upstream_error"}});
    (status, axum::Json(body)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFixture {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    delay_ms: u64,
    body: Value,
}

fn ok() -> u16 {
    200
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

async fn json_reply(path: &Path) -> Response {
    let fixture: JsonFixture = serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("fixture {} is not valid: {e}", path.display()));
    if fixture.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fixture.delay_ms)).await;
    }
    let status = StatusCode::from_u16(fixture.status).expect("fixture status");
    let mut response = (status, axum::Json(fixture.body)).into_response();
    for (name, value) in fixture.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("fixture header name");
        let value = HeaderValue::from_str(&value).expect("fixture header value");
        response.headers_mut().insert(name, value);
    }
    response
}

/// A piece of an SSE transcript: bytes to send, or a pause.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Send(String),
    Pause(Duration),
}

fn segments(transcript: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in transcript.split_inclusive('\n') {
        let pause = line.trim_end().strip_prefix(": delay-ms ").map(|n| {
            n.trim()
                .parse::<u64>()
                .expect("`: delay-ms N` takes a number")
        });
        match pause {
            Some(ms) => {
                if !pending.is_empty() {
                    out.push(Segment::Send(std::mem::take(&mut pending)));
                }
                out.push(Segment::Pause(Duration::from_millis(ms)));
            }
            None => pending.push_str(line),
        }
    }
    if !pending.is_empty() {
        out.push(Segment::Send(pending));
    }
    out
}

fn sse_reply(path: &Path) -> Response {
    let plan = segments(&read(path));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        for segment in plan {
            match segment {
                Segment::Pause(d) => tokio::time::sleep(d).await,
                Segment::Send(text) => {
                    if tx.send(Bytes::from(text)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .expect("SSE response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_lines_become_pauses_and_are_not_sent() {
        let plan = segments("data: a\n\n: delay-ms 250\ndata: b\n\n");
        assert_eq!(
            plan,
            vec![
                Segment::Send("data: a\n\n".into()),
                Segment::Pause(Duration::from_millis(250)),
                Segment::Send("data: b\n\n".into()),
            ]
        );
    }

    #[test]
    fn every_fixture_is_well_formed() {
        for api in ["openai", "anthropic"] {
            let dir = crate::fixtures_dir().join(api);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let text = read(&path);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => {
                        let f: JsonFixture = serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                        StatusCode::from_u16(f.status).unwrap();
                    }
                    Some("sse") => {
                        for seg in segments(&text) {
                            let Segment::Send(s) = seg else { continue };
                            for line in s.lines().filter(|l| l.starts_with("data: ")) {
                                let data = &line["data: ".len()..];
                                if data != "[DONE]" {
                                    serde_json::from_str::<Value>(data).unwrap_or_else(|e| {
                                        panic!("{}: {e}: {data}", path.display())
                                    });
                                }
                            }
                        }
                    }
                    _ => panic!("unexpected fixture file {}", path.display()),
                }
            }
        }
    }
}
