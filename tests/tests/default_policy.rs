#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded default policy's classifier, through `sluicegate explain` with no `--config`
//! (the real binary, the real encoder found through `SLUICEGATE_MODELS`): everyday requests
//! stay local, code and reasoning escalate, tools escalate, and a request unlike every class
//! is `unknown` and escalates. These prompts are not the policy's examples.

use sluicegate_tests::run_sluicegate;

/// `sluicegate explain PROMPT [ARGS]` on the embedded default; its stdout.
fn explain(prompt: &str, args: &[&str]) -> String {
    let models = sluicegate_tests::minilm_dir()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut all = vec!["explain", prompt];
    all.extend(args);
    let out = run_sluicegate(&all, &[("SLUICEGATE_MODELS", &models)]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "explain failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{out}"))
        .trim()
}

#[test]
fn everyday_requests_stay_local_and_hard_ones_escalate() {
    let cases = [
        ("Say hello", "local", "chitchat"),
        ("Hey, how is it going?", "local", "chitchat"),
        ("Who was the first president of the United States?", "local", "facts"),
        ("What is the tallest mountain in the world?", "local", "facts"),
        ("Make this email sound friendlier: send me the report now.", "local", "rewrite"),
        ("Write a Go function that parses a CSV file into structs", "remote", "code"),
        ("Why does this C code crash with a null pointer dereference?", "remote", "code"),
        ("What is the integral of x^2 from 0 to 3?", "remote", "reasoning"),
        ("If 3 workers build a wall in 6 days, how long do 9 workers take?", "remote", "reasoning"),
    ];
    let mut wrong = Vec::new();
    for (prompt, route, class) in cases {
        let out = explain(prompt, &[]);
        let got_route = line(&out, "route:");
        let got_class = line(&out, "class:");
        if !got_route.starts_with(&format!("{route} ")) || !got_class.starts_with(&format!("{class} ")) {
            wrong.push(format!("{prompt:?}: expected {route}/{class}, got\n{out}"));
        }
        assert!(
            line(&out, "x-sluicegate-decision:").starts_with("rule="),
            "{out}"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn tools_and_unfamiliar_requests_escalate_and_say_why() {
    let out = explain("What is the weather in Paris?", &["--with-tools"]);
    assert_eq!(line(&out, "route:"), "remote (backend openai)", "{out}");
    assert_eq!(line(&out, "rule:"), "tools-go-remote", "{out}");

    let out = explain("Zyxq vortl 88213 plinth grommet", &[]);
    assert_eq!(line(&out, "route:"), "remote (backend openai)", "{out}");
    assert_eq!(
        line(&out, "rule:"),
        "unfamiliar-goes-remote (unknown)",
        "{out}"
    );
    assert!(line(&out, "class:").starts_with("unknown "), "{out}");
    assert!(line(&out, "similarity:").contains("min_similarity 0.25"), "{out}");
    let decision = line(&out, "x-sluicegate-decision:");
    assert!(
        decision.starts_with("rule=unfamiliar-goes-remote(unknown); class=unknown(similarity=0."),
        "{decision}"
    );
}
