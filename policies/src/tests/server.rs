//! `[server]`: the optional admin key for the dashboard and usage API.

use super::{assert_has, errors, single_error, MINIMAL};

fn with_server(lines: &str) -> String {
    format!("[server]\n{lines}\n{MINIMAL}")
}

#[test]
fn admin_key_env_is_optional_and_kept() {
    let open = crate::parse(MINIMAL).unwrap();
    assert_eq!(open.server.admin_key_env, None);
    let p = crate::parse(&with_server("admin_key_env = \"SLUICEGATE_ADMIN_KEY\"")).unwrap();
    assert_eq!(
        p.server.admin_key_env.as_deref(),
        Some("SLUICEGATE_ADMIN_KEY")
    );
}

#[test]
fn admin_key_env_must_name_a_variable() {
    let e = single_error(&with_server("admin_key_env = \"s3cr3t-key!\""));
    assert_eq!(e.path, "server.admin_key_env");
    assert!(e.message.contains("NAME of an environment variable"), "{e}");
    let e = single_error(&with_server("admin_key_env = \"\""));
    assert_eq!(e.path, "server.admin_key_env");
    assert!(e.message.contains("must not be empty"), "{e}");
}

#[test]
fn admin_key_env_errors_are_collected_with_the_others() {
    let all = errors(&with_server(
        "admin_key_env = \"1BAD\"\nrequest_timeout = \"soon\"",
    ));
    assert_eq!(all.len(), 2, "{all}");
    assert_has(&all, "server.admin_key_env", "environment variable");
    assert_has(&all, "server.request_timeout", "invalid duration");
}

#[test]
fn a_key_written_in_the_policy_is_a_stray_key() {
    // The key itself never belongs in the policy: `admin_key` is unknown, and named.
    let e = single_error(&with_server("admin_key = \"hunter2\""));
    assert_eq!(e.path, "server.admin_key");
    assert!(e.message.contains("unknown field `admin_key`"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = single_error(&with_server("admin_key_envv = \"X\""));
    assert_eq!(e.path, "server.admin_key_envv");
    assert!(e.message.contains("unknown field `admin_key_envv`"), "{e}");
}
