//! The chat request extractor: body limit and JSON errors answered in OpenAI's shape.

use axum::extract::{FromRequest, Request};
use sluicegate_wire::ChatRequest;

use crate::error::ApiError;

/// The body limit in force, put in the request extensions by the stack.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A parsed `ChatRequest`; any failure is an [`ApiError`] naming the field at fault.
#[derive(Debug)]
pub struct ChatJson(pub ChatRequest);

impl<S: Send + Sync> FromRequest<S> for ChatJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    ApiError::BodyTooLarge { limit }
                } else {
                    ApiError::invalid(format!("could not read the request body: {e}"), None)
                }
            })?;
        parse_chat_request(&bytes).map(ChatJson)
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Parses and checks a chat request, naming the field at fault in the error.
pub fn parse_chat_request(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; expected a JSON chat completion request",
            None,
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let request: ChatRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(format!("the request body is not valid JSON: {inner}"), None);
        }
        let text = inner.to_string();
        // "missing field `messages`" is reported at the parent; name the field itself.
        let param = match missing_field(&text) {
            Some(field) if path == "." => field.to_owned(),
            Some(field) => format!("{path}.{field}"),
            None => path,
        };
        let param = (param != ".").then_some(param);
        let message = match &param {
            Some(p) => format!("invalid request: `{p}`: {text}"),
            None => format!("invalid request: {text}"),
        };
        ApiError::InvalidRequest { message, param }
    })?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            "`messages` must contain at least one message",
            Some("messages"),
        ));
    }
    if request.model.trim().is_empty() {
        return Err(ApiError::invalid(
            "`model` must not be empty",
            Some("model"),
        ));
    }
    if request.n == Some(0) {
        return Err(ApiError::invalid("`n` must be at least 1", Some("n")));
    }
    Ok(request)
}

fn missing_field(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> (Option<String>, String) {
        match parse_chat_request(body.as_bytes()) {
            Err(ApiError::InvalidRequest { param, message }) => (param, message),
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_reported() {
        let (param, message) = param_of("{\"model\": ");
        assert_eq!(param, None);
        assert!(message.contains("not valid JSON"), "{message}");
    }

    #[test]
    fn missing_messages_names_the_field() {
        let (param, message) = param_of(r#"{"model":"auto"}"#);
        assert_eq!(param.as_deref(), Some("messages"));
        assert!(message.contains("messages"), "{message}");
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        let (param, _) =
            param_of(r#"{"model":"auto","messages":[{"role":"wizard","content":"x"}]}"#);
        assert_eq!(param.as_deref(), Some("messages[0].role"));
        let (param, _) = param_of(r#"{"model":"auto","messages":[],"temperature":"hot"}"#);
        assert_eq!(param.as_deref(), Some("temperature"));
        let (param, _) = param_of(r#"{"model":"auto","messages":[{"content":"x"}]}"#);
        assert_eq!(param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn empty_messages_and_body_are_refused() {
        assert_eq!(
            param_of(r#"{"model":"auto","messages":[]}"#).0.as_deref(),
            Some("messages")
        );
        assert!(param_of("  ").1.contains("empty"));
    }

    #[test]
    fn unknown_fields_survive() {
        let r = parse_chat_request(
            br#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"user":"u1","logit_bias":{"1":2}}"#,
        )
        .unwrap();
        assert_eq!(r.extra["user"], "u1");
        assert_eq!(serde_json::to_value(&r).unwrap()["logit_bias"]["1"], 2);
    }
}
