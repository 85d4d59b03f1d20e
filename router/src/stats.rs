//! The one percentile the project reports (ledger summaries, `report`, the dashboard, `router
//! eval`'s latencies).

/// The nearest-rank `p`-th percentile (`0..=100`) of `sorted` (ascending): the smallest value
/// with at least `p`% of the values at or below it, so always one of the values, never
/// interpolated. `None` when there are no values.
///
/// The rank is `ceil(p * n / 100)`, computed so that an exact rank stays exact (`p = 7` of 100
/// values is the 7th, not the 8th that `ceil(0.07 * 100.0)` gives in floating point).
///
/// ```
/// use sluicegate_router::stats::percentile;
/// let v = [1.0, 2.0, 3.0, 4.0];
/// assert_eq!(percentile(&v, 50.0), Some(2.0));
/// assert_eq!(percentile(&v, 51.0), Some(3.0));
/// assert_eq!(percentile(&[], 50.0), None);
/// ```
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // p * n is exact for the percentiles and counts we see; one division, correctly rounded.
    let rank = (p.clamp(0.0, 100.0) * n as f64 / 100.0).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// [`percentile`] of values in any order.
pub fn percentile_of(values: &[f64], p: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition itself, by counting: the smallest value `x` of the set such that at least
    /// `p`% of the values are `<= x`. No ranks, no rounding of ranks.
    fn by_count(values: &[f64], p: f64) -> Option<f64> {
        let n = values.len() as f64;
        let mut candidates = values.to_vec();
        candidates.sort_by(f64::total_cmp);
        candidates.into_iter().find(|x| {
            let at_or_below = values.iter().filter(|v| *v <= x).count() as f64;
            at_or_below * 100.0 >= p * n
        })
    }

    #[test]
    fn matches_the_counting_definition() {
        for n in 1..=120usize {
            let values: Vec<f64> = (0..n).map(|i| ((i * 37) % n) as f64).collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for p in [
                1.0, 5.0, 7.0, 10.0, 25.0, 33.0, 50.0, 90.0, 95.0, 99.0, 100.0,
            ] {
                assert_eq!(
                    percentile(&sorted, p),
                    by_count(&values, p),
                    "p{p} of {n} values"
                );
            }
        }
    }

    #[test]
    fn exact_ranks_stay_exact() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 7.0), Some(7.0));
        assert_eq!(percentile(&hundred, 50.0), Some(50.0));
        assert_eq!(percentile(&hundred, 95.0), Some(95.0));
        assert_eq!(percentile(&[7.0], 0.0), Some(7.0));
        assert_eq!(percentile_of(&[3.0, 1.0, 2.0, 4.0], 50.0), Some(2.0));
        assert_eq!(percentile_of(&[3.0, 1.0, 2.0, 4.0], 99.0), Some(4.0));
    }
}
