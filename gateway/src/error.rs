//! Every error the gateway answers, in OpenAI's error shape with the right status code.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};
use sluicegate_wire::BackendError;
use sluicegate_wire::{ErrorBody, ErrorDetail};

/// An error answered to the client as `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not a valid chat request; `param` names the field.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// The body is larger than `server.body_limit`.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The requested model is neither a route, an alias, nor `auto`.
    #[error("the model `{0}` does not exist; GET /v1/models lists the models this gateway serves")]
    ModelNotFound(String),
    /// The route-override header names no route.
    #[error("header `{header}` names no route `{value}`; GET /v1/models lists the routes")]
    UnknownRoute { header: String, value: String },
    /// No such path.
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    /// The path exists but not for this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A bug in the gateway (a panic was caught).
    #[error("internal error in the gateway")]
    Internal,
    /// The gateway gave up waiting before any response was ready.
    #[error("the request took longer than the gateway's limit of {0}s")]
    GatewayTimeout(u64),
    /// An admin endpoint was called without the right admin key.
    #[error("{0}")]
    Unauthorized(String),
    /// The usage figures cannot be read (ledger disabled, or the database failed).
    #[error("{0}")]
    LedgerUnavailable(String),
    /// Every route tried failed; this is the last failure.
    #[error("{0}")]
    Backend(BackendError),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// Status, OpenAI `type` and `code` for this error.
    pub fn classify(&self) -> (StatusCode, &'static str, Option<String>) {
        use StatusCode as S;
        match self {
            ApiError::InvalidRequest { .. } => (S::BAD_REQUEST, "invalid_request_error", None),
            ApiError::BodyTooLarge { .. } => (
                S::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                Some("request_too_large".into()),
            ),
            ApiError::ModelNotFound(_) => (
                S::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found".into()),
            ),
            ApiError::UnknownRoute { .. } => (
                S::BAD_REQUEST,
                "invalid_request_error",
                Some("unknown_route".into()),
            ),
            ApiError::NotFound { .. } => (
                S::NOT_FOUND,
                "invalid_request_error",
                Some("unknown_url".into()),
            ),
            ApiError::MethodNotAllowed { .. } => (
                S::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                Some("method_not_allowed".into()),
            ),
            ApiError::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "api_error",
                Some("internal_error".into()),
            ),
            ApiError::Unauthorized(_) => (
                S::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key".into()),
            ),
            ApiError::LedgerUnavailable(_) => (
                S::SERVICE_UNAVAILABLE,
                "api_error",
                Some("ledger_unavailable".into()),
            ),
            ApiError::GatewayTimeout(_) => {
                (S::GATEWAY_TIMEOUT, "api_error", Some("timeout".into()))
            }
            ApiError::Backend(e) => classify_backend(e),
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.clone(),
            ApiError::ModelNotFound(_) => Some("model".into()),
            ApiError::UnknownRoute { header, .. } => Some(header.clone()),
            ApiError::Backend(BackendError::InvalidRequest { param, .. }) => param.clone(),
            _ => None,
        }
    }

    /// The client-facing message. Upstream errors are summarised, never relayed raw.
    fn message(&self) -> String {
        match self {
            ApiError::Backend(e) => backend_message(e),
            other => other.to_string(),
        }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> ErrorBody {
        let (_, kind, code) = self.classify();
        ErrorBody {
            error: ErrorDetail {
                message: self.message(),
                kind: kind.to_owned(),
                param: self.param(),
                code,
            },
        }
    }
}

fn classify_backend(e: &BackendError) -> (StatusCode, &'static str, Option<String>) {
    use StatusCode as S;
    match e {
        BackendError::Unavailable(_) => (
            S::SERVICE_UNAVAILABLE,
            "api_error",
            Some("backend_unavailable".into()),
        ),
        BackendError::Connect(_) | BackendError::Protocol(_) => {
            (S::BAD_GATEWAY, "api_error", Some("upstream_error".into()))
        }
        BackendError::Timeout { .. } => (
            S::GATEWAY_TIMEOUT,
            "api_error",
            Some("upstream_timeout".into()),
        ),
        BackendError::InvalidRequest { .. } => (S::BAD_REQUEST, "invalid_request_error", None),
        BackendError::Upstream { status, code, .. } => match status {
            429 => (
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some(code.clone().unwrap_or_else(|| "rate_limit_exceeded".into())),
            ),
            // The client's request was refused as invalid (e.g. context_length_exceeded).
            400 | 413 | 422 => (
                S::from_u16(*status).unwrap_or(S::BAD_REQUEST),
                "invalid_request_error",
                code.clone(),
            ),
            // Anything else is the gateway's or the upstream's problem, not the client's.
            _ => (S::BAD_GATEWAY, "api_error", Some("upstream_error".into())),
        },
    }
}

fn backend_message(e: &BackendError) -> String {
    match e {
        BackendError::Upstream {
            status, message, ..
        } if matches!(status, 400 | 413 | 422 | 429) => {
            format!("upstream refused the request (HTTP {status}): {message}")
        }
        BackendError::Upstream { status, .. } => {
            format!("upstream failed with HTTP {status}")
        }
        other => other.to_string(),
    }
}

/// The short error name a response was answered with, for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorType(pub String);

impl ApiError {
    /// A short stable name for the ledger and metrics.
    pub fn type_name(&self) -> String {
        match self {
            ApiError::Backend(e) => e.kind_name().to_owned(),
            other => {
                let (_, kind, code) = other.classify();
                code.unwrap_or_else(|| kind.to_owned())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.classify();
        let mut response = (status, Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(ErrorType(self.type_name()));
        if let ApiError::Backend(BackendError::Upstream {
            retry_after: Some(after),
            ..
        }) = &self
        {
            if let Ok(value) = HeaderValue::from_str(after) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluicegate admin\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluicegate_wire::TimeoutPhase;
    use std::time::Duration;

    fn upstream(status: u16, retry_after: Option<&str>) -> ApiError {
        ApiError::Backend(BackendError::Upstream {
            status,
            retry_after: retry_after.map(str::to_owned),
            message: "raw upstream words".into(),
            code: None,
        })
    }

    #[test]
    fn upstream_errors_are_mapped_not_leaked() {
        assert_eq!(upstream(500, None).classify().0, StatusCode::BAD_GATEWAY);
        assert_eq!(upstream(503, None).classify().0, StatusCode::BAD_GATEWAY);
        assert!(!upstream(500, None)
            .body()
            .error
            .message
            .contains("raw upstream"));
        assert_eq!(upstream(401, None).classify().0, StatusCode::BAD_GATEWAY);
        assert_eq!(upstream(400, None).classify().0, StatusCode::BAD_REQUEST);
        let timeout = ApiError::Backend(BackendError::Timeout {
            phase: TimeoutPhase::Total,
            after: Duration::from_secs(3),
        });
        assert_eq!(timeout.classify().0, StatusCode::GATEWAY_TIMEOUT);
        let connect = ApiError::Backend(BackendError::Connect("refused".into()));
        assert_eq!(connect.classify().0, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn rate_limits_keep_retry_after() {
        let response = upstream(429, Some("7")).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn body_has_openai_shape() {
        let body = serde_json::to_value(ApiError::ModelNotFound("gpt-9".into()).body()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert!(body["error"]["message"].as_str().unwrap().contains("gpt-9"));
    }
}
