//! Evaluation arithmetic: accuracy, macro-F1, confusions, confidence thresholds.

/// One evaluated example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub truth: usize,
    pub predicted: usize,
    pub confidence: f32,
}

impl Prediction {
    pub fn correct(&self) -> bool {
        self.truth == self.predicted
    }
}

/// Per-class quality.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub class: usize,
    pub precision: f32,
    pub recall: f32,
    pub f1: f32,
    pub support: usize,
}

/// Quality of a set of predictions over `classes` classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub accuracy: f32,
    pub macro_f1: f32,
    /// Classes present in the truth, worst F1 first.
    pub per_class: Vec<ClassScore>,
    /// `(truth, predicted, count)` of the wrong predictions, most frequent first.
    pub confusions: Vec<(usize, usize, usize)>,
}

pub fn report(predictions: &[Prediction], classes: usize) -> Report {
    let mut tp = vec![0usize; classes];
    let mut fp = vec![0usize; classes];
    let mut support = vec![0usize; classes];
    let mut pairs = std::collections::BTreeMap::new();
    for p in predictions {
        support[p.truth] += 1;
        if p.correct() {
            tp[p.truth] += 1;
        } else {
            fp[p.predicted] += 1;
            *pairs.entry((p.truth, p.predicted)).or_insert(0usize) += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
    let mut per_class: Vec<ClassScore> = (0..classes)
        .filter(|&c| support[c] > 0)
        .map(|c| {
            let precision = ratio(tp[c], tp[c] + fp[c]);
            let recall = ratio(tp[c], support[c]);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScore {
                class: c,
                precision,
                recall,
                f1,
                support: support[c],
            }
        })
        .collect();
    let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f32>() / per_class.len().max(1) as f32;
    per_class.sort_by(|a, b| a.f1.total_cmp(&b.f1));
    let mut confusions: Vec<_> = pairs.into_iter().map(|((t, p), n)| (t, p, n)).collect();
    confusions.sort_by_key(|c| std::cmp::Reverse(c.2));
    let right = predictions.iter().filter(|p| p.correct()).count();
    Report {
        accuracy: ratio(right, predictions.len()),
        macro_f1,
        per_class,
        confusions,
    }
}

/// What a confidence threshold does: requests below it escalate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdRow {
    pub threshold: f32,
    /// Share of requests with confidence below the threshold.
    pub escalated: f32,
    /// Accuracy of the requests kept (confidence >= threshold); 1.0 when none is kept.
    pub kept_accuracy: f32,
}

pub fn threshold_row(predictions: &[Prediction], threshold: f32) -> ThresholdRow {
    let kept: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| p.confidence >= threshold)
        .collect();
    let right = kept.iter().filter(|p| p.correct()).count();
    ThresholdRow {
        threshold,
        escalated: 1.0 - kept.len() as f32 / predictions.len().max(1) as f32,
        kept_accuracy: if kept.is_empty() {
            1.0
        } else {
            right as f32 / kept.len() as f32
        },
    }
}

/// Candidate thresholds: every distinct confidence (plus 0), ascending.
fn candidates(predictions: &[Prediction]) -> Vec<f32> {
    let mut c: Vec<f32> = predictions.iter().map(|p| p.confidence).collect();
    c.push(0.0);
    c.sort_by(f32::total_cmp);
    c.dedup();
    c
}

/// The highest threshold whose escalation share stays within `target` (most accuracy for
/// that budget).
pub fn threshold_for_escalation(predictions: &[Prediction], target: f32) -> ThresholdRow {
    candidates(predictions)
        .into_iter()
        .map(|t| threshold_row(predictions, t))
        .take_while(|r| r.escalated <= target)
        .last()
        .unwrap_or_else(|| threshold_row(predictions, 0.0))
}

/// The lowest threshold whose kept accuracy reaches `target` (fewest escalations), if any.
pub fn threshold_for_accuracy(predictions: &[Prediction], target: f32) -> Option<ThresholdRow> {
    candidates(predictions)
        .into_iter()
        .map(|t| threshold_row(predictions, t))
        .find(|r| r.kept_accuracy >= target && r.escalated < 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(truth: usize, predicted: usize, confidence: f32) -> Prediction {
        Prediction {
            truth,
            predicted,
            confidence,
        }
    }

    #[test]
    fn scores_and_thresholds() {
        let preds = [p(0, 0, 0.9), p(0, 1, 0.4), p(1, 1, 0.8), p(1, 1, 0.7)];
        let r = report(&preds, 2);
        assert!((r.accuracy - 0.75).abs() < 1e-6);
        // class 0: P=1 R=.5 F1=.667; class 1: P=.667 R=1 F1=.8
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-4);
        assert_eq!(r.per_class[0].class, 0);
        assert_eq!(r.confusions, vec![(0, 1, 1)]);
        let row = threshold_row(&preds, 0.5);
        assert!((row.escalated - 0.25).abs() < 1e-6);
        assert!((row.kept_accuracy - 1.0).abs() < 1e-6);
        assert_eq!(threshold_for_escalation(&preds, 0.3).threshold, 0.7);
        assert_eq!(threshold_for_accuracy(&preds, 0.99).unwrap().threshold, 0.7);
    }
}
