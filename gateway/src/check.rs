//! `sluicegate check`: validate a policy file and print every error with its key path.

use std::path::Path;

use sluicegate_policies::{Policy, PriceSource};

/// Loads `path` (or the embedded default) and reports on it. Returns whether it is valid.
pub fn check(path: Option<&Path>, out: &mut dyn std::io::Write) -> bool {
    let result = load_policy(path);
    let name = path.map_or("embedded default policy".to_owned(), |p| {
        p.display().to_string()
    });
    match result {
        Ok(policy) => {
            let _ = writeln!(
                out,
                "{name}: ok ({} backends, {} routes, {} rules, default route {:?})",
                policy.backends.len(),
                policy.routes.len(),
                policy.routing.rules.len(),
                policy.routing.default
            );
            for route in policy.routes.values() {
                let source = match route.price_source {
                    PriceSource::Policy => continue,
                    PriceSource::Bundled => format!(
                        "bundled list price of its model (as of {})",
                        sluicegate_policies::prices::AS_OF
                    ),
                    PriceSource::Unknown => "no price: its requests cost 0".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "  route {:?}: {source} (input {} / output {} USD per 1M tokens)",
                    route.name,
                    route.price.input_per_mtok.normalize(),
                    route.price.output_per_mtok.normalize()
                );
            }
            true
        }
        Err(errors) => {
            let _ = writeln!(out, "{name}: {} error(s)", errors.0.len());
            for e in &errors.0 {
                let _ = writeln!(out, "  {e}");
            }
            false
        }
    }
}

/// The policy at `path`, or the embedded default when none is given.
pub fn load_policy(path: Option<&Path>) -> Result<Policy, sluicegate_policies::PolicyErrors> {
    match path {
        Some(p) => sluicegate_policies::load(p),
        None => sluicegate_policies::parse(sluicegate_policies::DEFAULT_POLICY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let mut out = Vec::new();
        assert!(check(None, &mut out));
        assert!(String::from_utf8(out).unwrap().contains(": ok"));
    }

    #[test]
    fn routes_priced_from_the_bundled_table_are_named() {
        let dir = std::env::temp_dir().join(format!("sluicegate-check-p-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("priced.toml");
        std::fs::write(
            &file,
            "[backends.openai]\nkind = \"openai\"\nmodel = \"gpt-4o\"\n\
             [routes.remote]\nbackend = \"openai\"\n[policy]\ndefault = \"remote\"\n",
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(check(Some(&file), &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("route \"remote\": bundled list price")
                && text.contains("input 2.5 / output 10 USD"),
            "{text}"
        );
    }

    #[test]
    fn errors_are_listed_with_key_paths() {
        let dir = std::env::temp_dir().join(format!("sluicegate-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(
            &file,
            r#"
[backends.openai]
kind = "openai"
model = "gpt-4o-mini"
[routes.billing]
backend = "gpt4"
[policy]
default = "billing"
"#,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(!check(Some(&file), &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#"routes.billing.backend: no backend named "gpt4""#),
            "{text}"
        );
    }
}
