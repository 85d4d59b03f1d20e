//! HTTP plumbing shared by the HTTP backends: one client per backend, the three deadlines
//! (connect, first byte, total), error mapping and SSE reading.

use std::fmt;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::stream::{BoxStream, StreamExt};
use http::{HeaderName, HeaderValue};
use sluicegate_policies::Timeouts;
use tokio::time::{timeout_at, Instant};

use sluicegate_wire::{BackendError, TimeoutPhase};

/// An API key read from the environment. Never printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Reads the key from `var`; `None` when unset or empty.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ApiKey(v.trim().to_owned()))
    }

    /// A header value marked sensitive, so hyper and tracing never show it.
    pub fn header_value(&self, prefix: &str) -> Result<HeaderValue, BackendError> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0))
            .map_err(|_| BackendError::Unavailable("API key is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Removes the key from a text that came from elsewhere (an upstream error message).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() >= 4 {
            text.replace(&self.0, "[redacted]")
        } else {
            text.to_owned()
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// The deadlines of one upstream call, fixed when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    first_byte: Instant,
    total: Instant,
    timeouts: Timeouts,
}

impl Deadlines {
    pub fn start(timeouts: Timeouts) -> Self {
        let now = Instant::now();
        Deadlines {
            first_byte: now + timeouts.first_byte.min(timeouts.total),
            total: now + timeouts.total,
            timeouts,
        }
    }

    fn first_byte_error(&self) -> BackendError {
        if self.timeouts.first_byte < self.timeouts.total {
            BackendError::Timeout {
                phase: TimeoutPhase::FirstByte,
                after: self.timeouts.first_byte,
            }
        } else {
            self.total_error()
        }
    }

    fn total_error(&self) -> BackendError {
        BackendError::Timeout {
            phase: TimeoutPhase::Total,
            after: self.timeouts.total,
        }
    }
}

/// One HTTP client per backend (its own connection pool and connect timeout).
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    client: reqwest::Client,
    timeouts: Timeouts,
    key_env: Option<String>,
    key: Option<ApiKey>,
}

impl HttpUpstream {
    /// `key_env` names the variable holding the API key; `None` for servers without keys.
    pub fn new(timeouts: Timeouts, key_env: Option<&str>) -> Result<Self, BackendError> {
        let key = key_env.and_then(ApiKey::from_env);
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BackendError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(HttpUpstream {
            client,
            timeouts,
            key_env: key_env.map(str::to_owned),
            key,
        })
    }

    /// `Err(Unavailable)` when the policy names a key variable that is not set.
    pub fn check_key(&self) -> Result<(), BackendError> {
        match (&self.key_env, &self.key) {
            (Some(var), None) => Err(BackendError::Unavailable(format!("{var} is not set"))),
            _ => Ok(()),
        }
    }

    pub fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// POSTs `body` as JSON and waits for a successful status within the first-byte deadline.
    pub async fn post_json<B: serde::Serialize + Sync>(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &B,
    ) -> Result<(reqwest::Response, Deadlines), BackendError> {
        let deadlines = Deadlines::start(self.timeouts);
        let mut builder = self.client.post(url).json(body);
        for (name, value) in headers {
            builder = builder.header(name, value.clone());
        }
        let response = match timeout_at(deadlines.first_byte, builder.send()).await {
            Err(_) => return Err(deadlines.first_byte_error()),
            Ok(Err(e)) => return Err(self.map_reqwest(e, deadlines)),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok((response, deadlines));
        }
        Err(self.error_from_response(response, deadlines).await)
    }

    /// Reads a whole JSON body within the total deadline.
    pub async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
    ) -> Result<T, BackendError> {
        let bytes = match timeout_at(deadlines.total, response.bytes()).await {
            Err(_) => return Err(deadlines.total_error()),
            Ok(Err(e)) => return Err(self.map_reqwest(e, deadlines)),
            Ok(Ok(b)) => b,
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| BackendError::Protocol(format!("invalid JSON from upstream: {e}")))
    }

    /// The response body as SSE events: the first within the first-byte deadline, all
    /// within the total deadline.
    pub fn sse_events(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
    ) -> BoxStream<'static, Result<Event, BackendError>> {
        let this = self.clone();
        let events = response.bytes_stream().eventsource();
        futures::stream::unfold((events, true, false), move |(mut events, first, done)| {
            let this = this.clone();
            async move {
                if done {
                    return None;
                }
                let deadline = if first {
                    deadlines.first_byte
                } else {
                    deadlines.total
                };
                let item = match timeout_at(deadline, events.next()).await {
                    Err(_) if first => Err(deadlines.first_byte_error()),
                    Err(_) => Err(deadlines.total_error()),
                    Ok(None) => return None,
                    Ok(Some(Ok(event))) => Ok(event),
                    Ok(Some(Err(e))) => Err(this.map_sse_error(e, deadlines)),
                };
                let stop = item.is_err();
                Some((item, (events, false, stop)))
            }
        })
        .boxed()
    }

    fn map_sse_error(
        &self,
        e: eventsource_stream::EventStreamError<reqwest::Error>,
        deadlines: Deadlines,
    ) -> BackendError {
        match e {
            eventsource_stream::EventStreamError::Transport(e) => self.map_reqwest(e, deadlines),
            other => BackendError::Protocol(self.scrub(&other.to_string())),
        }
    }

    fn map_reqwest(&self, e: reqwest::Error, deadlines: Deadlines) -> BackendError {
        let text = self.scrub(&error_chain(&e));
        if e.is_timeout() && e.is_connect() {
            BackendError::Timeout {
                phase: TimeoutPhase::Connect,
                after: deadlines.timeouts.connect,
            }
        } else if e.is_timeout() {
            deadlines.total_error()
        } else if e.is_connect() || e.is_request() || e.is_body() {
            BackendError::Connect(text)
        } else if e.is_decode() {
            BackendError::Protocol(text)
        } else {
            BackendError::Connect(text)
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.scrub(text),
            None => text.to_owned(),
        }
    }

    async fn error_from_response(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
    ) -> BackendError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = timeout_at(deadlines.total, response.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let (message, code) = if status == 401 || status == 403 {
            // The upstream's words may quote part of the key: say only what happened.
            (
                "the upstream rejected this backend's credentials".to_owned(),
                None,
            )
        } else {
            upstream_error_text(&body)
        };
        BackendError::Upstream {
            status,
            retry_after,
            message: truncate(&self.scrub(&message), 500),
            code,
        }
    }
}

/// The `error.message` and `error.code` (or `error.type`) of an OpenAI or Anthropic error body.
fn upstream_error_text(body: &[u8]) -> (String, Option<String>) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let code = error
        .and_then(|e| e.get("code").filter(|c| !c.is_null()).or(e.get("type")))
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    (message, code)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_is_never_printed_and_is_scrubbed() {
        let key = ApiKey("sk-secret-123456".into());
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(
            key.scrub("bad key sk-secret-123456 given"),
            "bad key [redacted] given"
        );
        assert!(key.header_value("Bearer ").unwrap().is_sensitive());
    }

    #[test]
    fn error_text_comes_from_openai_and_anthropic_shapes() {
        let openai =
            br#"{"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            upstream_error_text(openai),
            ("Rate limit".into(), Some("rate_limit_exceeded".into()))
        );
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            upstream_error_text(anthropic),
            ("Overloaded".into(), Some("overloaded_error".into()))
        );
        assert_eq!(
            upstream_error_text(b"  bad gateway "),
            ("bad gateway".into(), None)
        );
        assert_eq!(truncate("abcdef", 3), "abc...");
    }
}
