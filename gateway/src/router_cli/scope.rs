//! Out-of-scope figures for `router eval` and `router calibrate --target-oos-recall`: rows
//! whose label the scorer lacks (or that carry its out-of-scope label) are out of scope; the
//! rest are in scope.

use sluicegate_router::classifier::scope::{
    scope_curve, scope_row, threshold_for_oos_recall, threshold_for_oos_recall_with, ScopeCase,
    ScopeRow,
};
use sluicegate_router::classifier::Scorer;

use super::Row;

/// Each row as an out-of-scope case, or `None` when the scorer keeps nothing to compare
/// with (a head trained before references were stored).
pub fn cases(scorer: &dyn Scorer, rows: &[Row], x: &[Vec<f32>]) -> Option<Vec<ScopeCase>> {
    let labels = scorer.labels();
    let oos = scorer.oos_label();
    rows.iter()
        .zip(x)
        .map(|(row, e)| {
            let similarity = scorer.similarity(e)?;
            let verdict = scorer.verdict(e);
            let in_scope = labels.contains(&row.label) && oos != Some(row.label.as_str());
            Some(ScopeCase {
                in_scope,
                correct: verdict.as_ref().is_some_and(|v| v.class == row.label),
                similarity,
                confidence: verdict.as_ref().map_or(0.0, |v| v.confidence),
                oos_predicted: verdict.is_some_and(|v| oos == Some(v.class.as_str())),
            })
        })
        .collect()
}

fn print_row(r: &ScopeRow, mark: &str) {
    // The lowest candidate threshold is "none": every request passes the similarity test.
    let t = if r.min_similarity == f32::MIN {
        "  none".to_owned()
    } else {
        format!("{:>6.3}", r.min_similarity)
    };
    println!(
        "  {t}  oos recall {:>5.1}%  in-scope accuracy {:>5.1}%  in-scope flagged {:>5.1}%{mark}",
        r.oos_recall * 100.0,
        r.in_scope_accuracy * 100.0,
        r.in_scope_flagged * 100.0,
    );
}

/// Prints the figures at `chosen` (else at the threshold for `target` recall) and the curve.
pub fn report(name: &str, cases: &[ScopeCase], chosen: Option<f32>, target: f32) {
    let outside = cases.iter().filter(|c| !c.in_scope).count();
    let inside = cases.len() - outside;
    println!(
        "\n== {name}: out of scope ({outside} rows with labels it lacks, {inside} in scope) =="
    );
    if outside == 0 {
        println!("  no out-of-scope rows: hold some labels out of training to measure this");
        return;
    }
    let at = match chosen {
        Some(t) => Some(("the chosen min_similarity", scope_row(cases, t))),
        None => threshold_for_oos_recall(cases, target)
            .map(|r| ("the lowest min_similarity reaching the target recall", r)),
    };
    if let Some((why, r)) = at {
        println!(
            "at {why} ({:.3}): oos recall {:.1}%, in-scope accuracy {:.1}%",
            r.min_similarity,
            r.oos_recall * 100.0,
            r.in_scope_accuracy * 100.0
        );
    }
    println!("min_similarity: oos recall, in-scope accuracy, in-scope flagged");
    let chosen_t = at.map(|(_, r)| r.min_similarity);
    for r in scope_curve(cases, chosen_t.as_slice()) {
        let mark = if Some(r.min_similarity) == chosen_t {
            "  <-"
        } else {
            ""
        };
        print_row(&r, mark);
    }
    println!(
        "with a max_confidence rule too (escalated: unknown or unsure), the lowest \
         min_similarity reaching {:.0}% recall:",
        target * 100.0
    );
    for c in [0.3, 0.5, 0.7, 0.9] {
        match threshold_for_oos_recall_with(cases, target, c) {
            Some(r) => print_row(&r, &format!("  (max_confidence = {c})")),
            None => println!("  max_confidence = {c}: not reached"),
        }
    }
}

/// `router calibrate --target-oos-recall`: the policy line.
pub fn calibrate(name: &str, cases: &[ScopeCase], target: f32) -> anyhow::Result<()> {
    let Some(r) = threshold_for_oos_recall(cases, target) else {
        anyhow::bail!("no out-of-scope rows in the data: give rows whose labels the scorer lacks");
    };
    println!(
        "{name}: min_similarity {:.3} finds {:.1}% of out-of-scope requests; in-scope accuracy {:.1}% ({:.1}% of in-scope requests flagged)",
        r.min_similarity,
        r.oos_recall * 100.0,
        r.in_scope_accuracy * 100.0,
        r.in_scope_flagged * 100.0
    );
    println!("\npaste into the policy's [classifier] table, and add a rule:\n");
    println!("min_similarity = {:.3}\n", r.min_similarity);
    println!(
        "[[policy.rules]]\nname = \"unfamiliar\"\nroute = \"remote\"   # your escalation route"
    );
    println!("when = {{ unknown = true }}");
    Ok(())
}
