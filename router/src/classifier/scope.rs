//! Out of scope: a request unlike everything the scorer was built from is `unknown`.
//!
//! Two signals, either enough: the similarity of the nearest text the scorer was built from
//! (a class example, or a trained head's in-scope training row) falls under a threshold
//! (`[classifier] min_similarity`, chosen by `sluicegate router calibrate
//! --target-oos-recall`), or a head trained with `--oos-label` predicts that label.

use std::sync::Arc;

use super::{Scorer, Verdict};

/// A scorer whose verdicts are `unknown` below a similarity threshold.
#[derive(Debug, Clone)]
pub struct Scoped {
    inner: Arc<dyn Scorer>,
    min_similarity: f32,
}

impl Scoped {
    /// `inner`, with verdicts out of scope when the nearest similarity is under `min_similarity`.
    pub fn new(inner: Arc<dyn Scorer>, min_similarity: f32) -> Self {
        Self {
            inner,
            min_similarity,
        }
    }
}

/// Whether a verdict's similarity makes it out of scope at `min_similarity`.
pub fn below(similarity: Option<f32>, min_similarity: f32) -> bool {
    similarity.is_some_and(|s| s < min_similarity)
}

impl Scorer for Scoped {
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }

    fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        self.inner.probabilities(embedding)
    }

    fn similarity(&self, embedding: &[f32]) -> Option<f32> {
        self.inner.similarity(embedding)
    }

    fn oos_label(&self) -> Option<&str> {
        self.inner.oos_label()
    }

    fn verdict(&self, embedding: &[f32]) -> Option<Verdict> {
        let mut v = self.inner.verdict(embedding)?;
        v.unknown |= below(v.similarity, self.min_similarity);
        Some(v)
    }
}

/// One evaluated request for out-of-scope detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeCase {
    /// Its true label is one the scorer knows (and not the out-of-scope label).
    pub in_scope: bool,
    /// The scorer's class is its true label (only meaningful in scope).
    pub correct: bool,
    /// Similarity to the nearest text the scorer was built from.
    pub similarity: f32,
    /// A head's out-of-scope label won.
    pub oos_predicted: bool,
    /// The winning class's probability (a `max_confidence` rule escalates below it).
    pub confidence: f32,
}

/// Out-of-scope detection at one `min_similarity`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeRow {
    pub min_similarity: f32,
    /// Share of out-of-scope requests found `unknown`.
    pub oos_recall: f32,
    /// Share of in-scope requests given their right class and not found `unknown`.
    pub in_scope_accuracy: f32,
    /// Share of in-scope requests found `unknown` (escalated for nothing).
    pub in_scope_flagged: f32,
}

impl ScopeCase {
    fn unknown_at(&self, min_similarity: f32) -> bool {
        self.oos_predicted || self.similarity < min_similarity
    }

    /// With a confidence floor as well: what a policy with both an `unknown` rule and a
    /// `max_confidence` rule escalates.
    fn escalated_at(&self, min_similarity: f32, min_confidence: f32) -> bool {
        self.unknown_at(min_similarity) || self.confidence < min_confidence
    }
}

/// Detection quality at `min_similarity`.
pub fn scope_row(cases: &[ScopeCase], min_similarity: f32) -> ScopeRow {
    scope_row_with(cases, min_similarity, f32::MIN)
}

/// Detection quality when requests under `min_similarity` or under `min_confidence` escalate.
pub fn scope_row_with(cases: &[ScopeCase], min_similarity: f32, min_confidence: f32) -> ScopeRow {
    let share = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f32 / d as f32 };
    let (inside, outside): (Vec<&ScopeCase>, Vec<&ScopeCase>) =
        cases.iter().partition(|c| c.in_scope);
    let out = |c: &ScopeCase| c.escalated_at(min_similarity, min_confidence);
    let found = outside.iter().filter(|c| out(c)).count();
    let flagged = inside.iter().filter(|c| out(c)).count();
    let right = inside.iter().filter(|c| c.correct && !out(c)).count();
    ScopeRow {
        min_similarity,
        oos_recall: share(found, outside.len()),
        in_scope_accuracy: share(right, inside.len()),
        in_scope_flagged: share(flagged, inside.len()),
    }
}

/// The lowest `min_similarity` whose out-of-scope recall reaches `target` (so the fewest
/// in-scope requests are flagged), or `None` when no threshold does (there are no
/// out-of-scope cases).
pub fn threshold_for_oos_recall(cases: &[ScopeCase], target: f32) -> Option<ScopeRow> {
    threshold_for_oos_recall_with(cases, target, f32::MIN)
}

/// [`threshold_for_oos_recall`] when requests under `min_confidence` escalate too.
pub fn threshold_for_oos_recall_with(
    cases: &[ScopeCase],
    target: f32,
    min_confidence: f32,
) -> Option<ScopeRow> {
    let mut candidates: Vec<f32> = cases
        .iter()
        .filter(|c| !c.in_scope)
        // Just above each similarity, so that case counts as unknown.
        .map(|c| c.similarity + f32::EPSILON * c.similarity.abs().max(1.0))
        .collect();
    candidates.sort_by(f32::total_cmp);
    candidates.insert(0, f32::MIN);
    candidates
        .into_iter()
        .map(|t| scope_row_with(cases, t, min_confidence))
        .find(|r| r.oos_recall >= target)
}

/// The detection curve at the out-of-scope similarities' deciles (and `extra` thresholds).
pub fn scope_curve(cases: &[ScopeCase], extra: &[f32]) -> Vec<ScopeRow> {
    let mut sims: Vec<f32> = cases
        .iter()
        .filter(|c| !c.in_scope)
        .map(|c| c.similarity)
        .collect();
    sims.sort_by(f32::total_cmp);
    let mut points: Vec<f32> = (1..=9)
        .filter_map(|d| sims.get(sims.len() * d / 10).copied())
        .chain(extra.iter().copied())
        .collect();
    points.sort_by(f32::total_cmp);
    points.dedup();
    points.into_iter().map(|t| scope_row(cases, t)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::classifier::{ExampleScorer, ExampleStrategy};

    #[test]
    fn below_the_threshold_is_unknown_above_it_is_not() {
        let classes = vec![
            ("a".to_owned(), vec![vec![1.0, 0.0, 0.0]]),
            ("b".to_owned(), vec![vec![0.0, 1.0, 0.0]]),
        ];
        let plain: Arc<dyn Scorer> =
            Arc::new(ExampleScorer::new(classes, ExampleStrategy::Centroid));
        let scoped = Scoped::new(plain.clone(), 0.5);
        let far = [0.3, 0.0, 0.954]; // nearest example: cosine 0.3
        let near = [0.8, 0.0, 0.6]; // cosine 0.8
        assert!(
            !plain.verdict(&far).unwrap().unknown,
            "no threshold, no unknown"
        );
        let v = scoped.verdict(&far).unwrap();
        assert!(v.unknown, "{v:?}");
        assert_eq!(v.class, "a", "the nearest class is still reported");
        assert!(!scoped.verdict(&near).unwrap().unknown);
        assert_eq!(scoped.labels(), plain.labels());
    }

    fn case(in_scope: bool, correct: bool, similarity: f32) -> ScopeCase {
        ScopeCase {
            in_scope,
            correct,
            similarity,
            oos_predicted: false,
            confidence: 1.0,
        }
    }

    #[test]
    fn recall_and_in_scope_accuracy_by_hand() {
        let cases = [
            case(true, true, 0.9),
            case(true, true, 0.5),
            case(true, false, 0.6),
            case(true, true, 0.3),
            case(false, false, 0.2),
            case(false, false, 0.4),
            ScopeCase {
                oos_predicted: true,
                ..case(false, false, 0.95)
            },
        ];
        let r = scope_row(&cases, 0.45);
        // Out of scope: 0.2 and 0.4 are under 0.45, the third is the OOS label: 3 of 3.
        assert_eq!(r.oos_recall, 1.0);
        // In scope: 0.9 and 0.5 right and kept; 0.6 wrong; 0.3 flagged: 2 of 4.
        assert_eq!(r.in_scope_accuracy, 0.5);
        assert_eq!(r.in_scope_flagged, 0.25);
        // The lowest threshold that finds 2 of 3: just above 0.2.
        let t = threshold_for_oos_recall(&cases, 0.6).unwrap();
        assert!(t.min_similarity > 0.2 && t.min_similarity < 0.201, "{t:?}");
        assert!((t.oos_recall - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(t.in_scope_accuracy, 0.75);
        assert!(threshold_for_oos_recall(&cases[..4], 0.5).is_none());
        // A confidence floor of 0.5 also escalates the one in-scope case below it.
        let mut unsure = cases;
        unsure[1].confidence = 0.4;
        let r = scope_row_with(&unsure, 0.45, 0.5);
        assert_eq!(r.in_scope_accuracy, 0.25);
        assert_eq!(r.in_scope_flagged, 0.5);
        assert!(!scope_curve(&cases, &[0.45]).is_empty());
    }
}
