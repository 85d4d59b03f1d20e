mod classifier;
mod examples;
mod local;
mod phase1;
mod phase2;
mod server;
mod telemetry;
mod values;

use crate::{PolicyError, PolicyErrors};

/// A small valid policy that tests extend or break.
pub const MINIMAL: &str = r#"
[backends.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o-mini"

[routes.small]
backend = "openai"

[policy]
default = "small"
"#;

/// Parses `src`, expecting failure; returns the errors.
pub fn errors(src: &str) -> PolicyErrors {
    match crate::parse(src) {
        Ok(policy) => panic!("expected errors, got {policy:#?}"),
        Err(errors) => {
            assert!(!errors.is_empty(), "error list is empty");
            errors
        }
    }
}

/// Parses `src`, expecting exactly one error; returns it.
pub fn single_error(src: &str) -> PolicyError {
    let errors = errors(src);
    assert_eq!(errors.len(), 1, "expected one error, got:\n{errors}");
    errors.0.into_iter().next().unwrap()
}

/// Asserts that some error has exactly this path and a message containing `needle`.
pub fn assert_has(errors: &PolicyErrors, path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "no error at `{path}` containing {needle:?} in:\n{errors}"
    );
}
