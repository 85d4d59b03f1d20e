//! Syntax, unknown keys and wrong types: one error, located by key path.

use super::{single_error, MINIMAL};

/// Inserts `line` right after the `header` line of MINIMAL (or prepends it).
fn with_line(header: &str, line: &str) -> String {
    if header.is_empty() {
        return format!("{line}\n{MINIMAL}");
    }
    let out = MINIMAL.replacen(header, &format!("{header}\n{line}"), 1);
    assert_ne!(out, MINIMAL, "header {header:?} not found");
    out
}

fn assert_stray(src: &str, key: &str, path: &str) {
    let e = single_error(src);
    assert!(
        e.message.contains(&format!("unknown field `{key}`")),
        "message does not name `{key}`: {e}"
    );
    assert_eq!(e.path, path, "wrong path for {e}");
}

#[test]
fn stray_key_at_top_level() {
    assert_stray(&with_line("", "colour = 1"), "colour", "colour");
}

#[test]
fn stray_key_in_server() {
    let src = format!("[server]\nlisten_on = \"x\"\n{MINIMAL}");
    assert_stray(&src, "listen_on", "server.listen_on");
}

#[test]
fn stray_key_in_backend() {
    // Internally tagged: the variant is buffered, so the path is the backend.
    let src = with_line("[backends.openai]", "modle = \"x\"");
    let e = single_error(&src);
    assert!(e.message.contains("unknown field `modle`"), "{e}");
    assert!(e.path.starts_with("backends.openai"), "{e}");
}

#[test]
fn api_key_in_backend_is_unknown() {
    let src = with_line("[backends.openai]", "api_key = \"sk-secret\"");
    let e = single_error(&src);
    assert!(e.message.contains("unknown field `api_key`"), "{e}");
    assert!(e.path.starts_with("backends.openai"), "{e}");
    assert!(!e.to_string().contains("sk-secret"), "{e}");
}

#[test]
fn anthropic_key_on_openai_backend_is_unknown() {
    let src = with_line("[backends.openai]", "max_tokens = 10");
    let e = single_error(&src);
    assert!(e.message.contains("unknown field `max_tokens`"), "{e}");
}

#[test]
fn unknown_backend_kind() {
    let e = single_error(&MINIMAL.replace("kind = \"openai\"", "kind = \"gemini\""));
    assert!(e.message.contains("gemini"), "{e}");
    assert_eq!(e.path, "backends.openai.kind");
}

#[test]
fn stray_key_in_route() {
    assert_stray(
        &with_line("[routes.small]", "bakend = \"openai\""),
        "bakend",
        "routes.small.bakend",
    );
}

#[test]
fn stray_key_in_price() {
    assert_stray(
        &with_line("[routes.small]", "price = { inptu = 1 }"),
        "inptu",
        "routes.small.price.inptu",
    );
}

#[test]
fn stray_key_in_policy() {
    assert_stray(
        &with_line("[policy]", "defualt = \"small\""),
        "defualt",
        "policy.defualt",
    );
}

#[test]
fn stray_key_in_rule() {
    let src = format!("{MINIMAL}\n[[policy.rules]]\nname = \"r\"\nroute = \"small\"\nroutes = 1\n");
    assert_stray(&src, "routes", "policy.rules[0].routes");
}

#[test]
fn stray_key_in_when() {
    let src = format!(
        "{MINIMAL}\n[[policy.rules]]\nname = \"ok\"\nroute = \"small\"\n\
         [[policy.rules]]\nname = \"r\"\nroute = \"small\"\nwhen = {{ has_tool = true }}\n"
    );
    assert_stray(&src, "has_tool", "policy.rules[1].when.has_tool");
}

#[test]
fn stray_key_in_header_match() {
    let src = format!(
        "{MINIMAL}\n[[policy.rules]]\nname = \"r\"\nroute = \"small\"\n\
         when = {{ header = {{ name = \"x\", value = \"y\" }} }}\n"
    );
    assert_stray(&src, "value", "policy.rules[0].when.header.value");
}

#[test]
fn wrong_type_is_located() {
    let e = single_error(&with_line("[policy]", "honor_model = \"yes\""));
    assert_eq!(e.path, "policy.honor_model");
    assert!(e.message.contains("line"), "{e}");
}

#[test]
fn syntax_error_has_no_path_but_a_line() {
    let e = single_error("[server\nlisten = 1");
    assert_eq!(e.path, "");
    assert!(e.message.contains("line 1"), "{e}");
    assert_eq!(e.to_string(), e.message);
    assert!(!e.message.contains('\n'), "{e}");
}

#[test]
fn display_joins_path_and_message() {
    let e = crate::PolicyError::new("a.b", "bad");
    assert_eq!(e.to_string(), "a.b: bad");
    let all = crate::PolicyErrors(vec![e.clone(), crate::PolicyError::new("", "worse")]);
    assert_eq!(all.to_string(), "a.b: bad\nworse");
}
