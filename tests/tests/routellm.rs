#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sluicegate router eval --routellm`, end to end with the real CLI and the real encoder, on
//! a file where the answer is known: prompts of three kinds, which both models answer right,
//! only the large one answers right, or neither does. The routers must escalate the second
//! kind first: sending the third to the large model gains nothing. Ranked by "the small model
//! is right" (as the routers did before), the second and third kinds tie and APGR is about
//! 0.67; ranked by the gain, it is about 0.83 (the gap is all recovered after a third).

use serde_json::json;
use sluicegate_tests::{minilm_dir, run_sluicegate, temp_dir};

fn rows() -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    for n in 0..60 {
        rows.push(json!({
            "text": format!("What is {n} plus {}?", n + 3),
            "mixtral_8x7b_correct": true, "gpt4_1106_correct": true,
        }));
        rows.push(json!({
            "text": format!("Prove that every planar graph with {} vertices is five-colourable, \
                citing the discharging lemma.", n + 10),
            "mixtral_8x7b_correct": false, "gpt4_1106_correct": true,
        }));
        rows.push(json!({
            "text": format!("Which card am I holding in my left hand right now, deck number {n}?"),
            "mixtral_8x7b_correct": false, "gpt4_1106_correct": false,
        }));
    }
    rows
}

/// The APGR column of `router`'s line in the table.
fn apgr(out: &str, router: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.split('|').next().is_some_and(|c| c.trim() == router))
        .unwrap_or_else(|| panic!("no {router} line in:\n{out}"));
    line.split('|').nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn routellm_eval_escalates_what_the_large_model_gains_on_first() {
    let dir = temp_dir();
    let file = dir.join("routellm.jsonl");
    let lines: Vec<String> = rows().iter().map(|r| r.to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let encoder = minilm_dir();
    let out = run_sluicegate(
        &[
            "router",
            "eval",
            "--routellm",
            file.to_str().unwrap(),
            "--encoder",
            encoder.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "router eval failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    for router in ["knn", "head", "head+knn"] {
        let a = apgr(&stdout, router);
        // The best order scores 0.83 here; the order by "the small model is right" 0.67.
        assert!(a > 0.78, "{router}: APGR {a}\n{stdout}");
    }
}
