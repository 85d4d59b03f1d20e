//! The one trait every backend implements, and its typed errors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatRequest};

/// A stream of chunks from a backend. Deadlines are already applied by the backend.
pub type ChunkStream = BoxStream<'static, Result<ChatCompletionChunk, BackendError>>;

/// A model backend: an OpenAI-compatible server, Anthropic, or a model in this process.
///
/// The request handed in is the client's, with `model` already set to the backend's upstream
/// model. A backend answers in OpenAI's format whatever protocol it speaks upstream.
#[async_trait]
pub trait ChatBackend: Send + Sync + fmt::Debug {
    /// `"openai"`, `"anthropic"`, ...
    fn kind(&self) -> &'static str;

    /// The model name this backend asks its upstream for.
    fn upstream_model(&self) -> &str;

    /// `Err` when the backend cannot serve at all (for example its API key is not set).
    fn check_available(&self) -> Result<(), BackendError>;

    /// True while the backend is still getting ready (an in-process model loading and
    /// warming up); the gateway is not ready until no backend is.
    fn is_loading(&self) -> bool {
        false
    }

    /// A whole completion.
    async fn complete(&self, request: ChatRequest) -> Result<ChatCompletion, BackendError>;

    /// A stream of chunks. Returns once the upstream has accepted the request; the first
    /// item is due within the first-byte timeout and the stream ends within the total timeout.
    /// The stream always ends with a chunk carrying `usage` when the upstream reports it.
    async fn stream(&self, request: ChatRequest) -> Result<ChunkStream, BackendError>;
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstByte,
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Total => "total",
        })
    }
}

/// Why a backend call failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The backend is not usable (for example its API key variable is not set).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Could not connect, or the connection broke.
    #[error("could not reach the upstream: {0}")]
    Connect(String),
    /// A deadline passed.
    #[error("upstream {phase} timeout after {}ms", after.as_millis())]
    Timeout {
        phase: TimeoutPhase,
        after: Duration,
    },
    /// The upstream answered with an HTTP error.
    #[error("upstream returned HTTP {status}: {message}")]
    Upstream {
        status: u16,
        retry_after: Option<String>,
        message: String,
        code: Option<String>,
    },
    /// The upstream answered something that is not its protocol.
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// The request cannot be served by this backend as asked (not worth a fallback).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
}

impl BackendError {
    /// Whether another route may be tried: connect errors, timeouts, 5xx, 429 and an
    /// unavailable backend. A request the upstream refused as invalid is not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Unavailable(_)
            | BackendError::Connect(_)
            | BackendError::Timeout { .. }
            | BackendError::Protocol(_) => true,
            BackendError::Upstream { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            BackendError::InvalidRequest { .. } => false,
        }
    }

    /// A short stable name for logs, headers and the ledger.
    pub fn kind_name(&self) -> &'static str {
        match self {
            BackendError::Unavailable(_) => "unavailable",
            BackendError::Connect(_) => "connect",
            BackendError::Timeout { .. } => "timeout",
            BackendError::Upstream { status: 429, .. } => "rate_limited",
            BackendError::Upstream { .. } => "upstream_status",
            BackendError::Protocol(_) => "protocol",
            BackendError::InvalidRequest { .. } => "invalid_request",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> BackendError {
        BackendError::Upstream {
            status,
            retry_after: None,
            message: String::new(),
            code: None,
        }
    }

    #[test]
    fn retryable_errors_are_the_ones_worth_a_fallback() {
        assert!(upstream(429).is_retryable());
        assert!(upstream(500).is_retryable());
        assert!(upstream(503).is_retryable());
        assert!(!upstream(400).is_retryable());
        assert!(!upstream(404).is_retryable());
        assert!(BackendError::Connect("refused".into()).is_retryable());
        let timeout = BackendError::Timeout {
            phase: TimeoutPhase::FirstByte,
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable());
        assert_eq!(
            timeout.to_string(),
            "upstream first byte timeout after 1000ms"
        );
        let invalid = BackendError::InvalidRequest {
            message: "n > 1".into(),
            param: Some("n".into()),
        };
        assert!(!invalid.is_retryable());
    }
}
