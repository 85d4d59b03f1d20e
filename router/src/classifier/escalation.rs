//! Escalation economics, RouteLLM's way: a router sends the requests it trusts least to the
//! large model; `quality[k]` is the share answered right when the `k` least trusted of `n` go
//! large. PGR (performance gap recovered) at a share is `(quality - weak) / (strong - weak)`;
//! APGR is its area over shares 0..=1; CPT(x) is the share of large-model calls needed to
//! recover `x` of the gap.

/// Quality after sending the `k` least trusted requests to the large model, for `k` in
/// `0..=n`. `rows` are `(trust, small_right, large_right)`; lower trust escalates first.
pub fn quality_curve(rows: &[(f32, bool, bool)]) -> Vec<f64> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len().max(1) as f64;
    let mut right = sorted.iter().filter(|r| r.1).count() as i64;
    let mut out = Vec::with_capacity(sorted.len() + 1);
    out.push(right as f64 / n);
    for r in &sorted {
        right += i64::from(r.2) - i64::from(r.1);
        out.push(right as f64 / n);
    }
    out
}

/// Performance gap recovered at each point of `quality`, between the all-small (`weak`) and
/// all-large (`strong`) qualities.
fn pgr(q: f64, weak: f64, strong: f64) -> f64 {
    if (strong - weak).abs() < 1e-12 {
        return 0.0;
    }
    (q - weak) / (strong - weak)
}

/// The area under the PGR curve over shares `0..=1` (trapezoids between the `n + 1` points).
/// Random routing scores 0.5.
pub fn apgr(quality: &[f64]) -> f64 {
    let (Some(&weak), Some(&strong)) = (quality.first(), quality.last()) else {
        return 0.0;
    };
    let n = quality.len().saturating_sub(1).max(1) as f64;
    quality
        .windows(2)
        .map(|w| (pgr(w[0], weak, strong) + pgr(w[1], weak, strong)) / 2.0 / n)
        .sum()
}

/// The smallest share of large-model calls that recovers `gap` (e.g. 0.8) of the gap.
pub fn calls_for_gap(quality: &[f64], gap: f64) -> Option<f64> {
    let (&weak, &strong) = (quality.first()?, quality.last()?);
    let n = quality.len().saturating_sub(1).max(1) as f64;
    quality
        .iter()
        .position(|&q| pgr(q, weak, strong) >= gap - 1e-12)
        .map(|k| k as f64 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Four requests; the small model is right on the two it trusts most, the large on all.
        let rows = [
            (0.1, false, true),
            (0.2, false, true),
            (0.8, true, true),
            (0.9, true, true),
        ];
        let q = quality_curve(&rows);
        assert_eq!(q, vec![0.5, 0.75, 1.0, 1.0, 1.0]);
        // PGR: 0, .5, 1, 1, 1 -> trapezoids (0+.5)/2 + (.5+1)/2 + 1 + 1 = 3, over 4 = 0.75.
        assert!((apgr(&q) - 0.75).abs() < 1e-12);
        assert_eq!(calls_for_gap(&q, 0.5), Some(0.25));
        assert_eq!(calls_for_gap(&q, 0.95), Some(0.5));
        // The worst order (most trusted escalated first) is below random.
        let reversed: Vec<_> = rows.iter().map(|r| (-r.0, r.1, r.2)).collect();
        assert!(apgr(&quality_curve(&reversed)) < 0.5);
    }

    #[test]
    fn random_order_is_about_one_half() {
        // Alternating rows: each escalation recovers the same on average.
        let rows: Vec<(f32, bool, bool)> =
            (0..1000).map(|i| (i as f32, i % 2 == 0, true)).collect();
        let a = apgr(&quality_curve(&rows));
        assert!((a - 0.5).abs() < 0.01, "{a}");
    }
}
