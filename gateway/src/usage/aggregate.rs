//! The usage figures: ledger rows in, totals, groups and time buckets out. Pure code, no I/O,
//! so the API and the CLI compute exactly the same numbers from the same rows.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use sluicegate_router::stats::percentile;

use super::Dimension;
use crate::ledger::LedgerRow;

/// The columns the usage figures need, one per ledger row.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// Milliseconds since the Unix epoch when the request arrived.
    pub time_ms: i64,
    pub route: Option<String>,
    pub backend: Option<String>,
    pub class: Option<String>,
    pub status: u16,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    pub cost_usd: Option<Decimal>,
    pub counterfactual_cost_usd: Option<Decimal>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    /// Busy time of an in-process model (local routes).
    pub compute_ms: Option<f64>,
}

impl From<&LedgerRow> for UsageRow {
    fn from(r: &LedgerRow) -> Self {
        UsageRow {
            time_ms: r.time_ms,
            route: r.route.clone(),
            backend: r.backend.clone(),
            class: r.class.clone(),
            status: r.status,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            counterfactual_cost_usd: r.counterfactual_cost_usd,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            compute_ms: r.compute_ms,
        }
    }
}

/// The figures of a set of requests (all of them, one group, or one time bucket).
/// Money is exact (`Decimal`, serialized as a string); see the module docs of
/// [`crate::usage`] for each definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Ledger rows: requests that reached the gateway.
    pub requests: u64,
    /// Requests answered with HTTP status 400 or more (client disconnects, 499, included).
    pub errors: u64,
    /// Requests that were placed on a route.
    pub routed: u64,
    /// Routed requests whose route is the policy's `ledger.reference_route`.
    pub escalations: u64,
    /// `escalations / routed`; `None` without a reference route or routed requests.
    pub escalation_share: Option<f64>,
    /// Sum of the rows' cost (a row without tokens costs 0).
    pub cost_usd: Decimal,
    /// Sum of what the same tokens would have cost on the reference route (a row without
    /// a counterfactual counts its own cost).
    pub counterfactual_cost_usd: Decimal,
    /// `counterfactual_cost_usd - cost_usd`.
    pub savings_usd: Decimal,
    /// Prompt tokens (reported or estimated).
    pub input_tokens: u64,
    /// Completion tokens (reported or estimated).
    pub output_tokens: u64,
    /// Nearest-rank median of the whole request's latency.
    pub p50_latency_ms: Option<f64>,
    /// Nearest-rank 95th percentile of the latency.
    pub p95_latency_ms: Option<f64>,
    /// Nearest-rank median time to first token (rows that have one).
    pub p50_ttft_ms: Option<f64>,
    /// Nearest-rank 95th percentile time to first token.
    pub p95_ttft_ms: Option<f64>,
    /// Seconds in-process models were busy (local routes priced by the hour).
    pub compute_seconds: f64,
    /// What the rows with model busy time cost per 1M tokens (input + output): the rate a
    /// box's cost per hour implies at the traffic seen. `None` without such rows.
    pub implied_usd_per_mtok: Option<Decimal>,
}

/// One group's figures; `key` is `None` for requests that have no value for the dimension
/// (e.g. a request refused before it got a route).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The route, class or backend.
    pub key: Option<String>,
    /// Its figures.
    pub stats: Stats,
}

/// One time bucket of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Start of the bucket, milliseconds since the Unix epoch.
    pub bucket_start_ms: i64,
    /// The route, class or backend.
    pub key: Option<String>,
    /// The figures of the group's requests that arrived in the bucket.
    pub stats: Stats,
}

/// Everything computed for one time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// What the groups are.
    pub by: Dimension,
    /// The range, both ends included, in milliseconds since the Unix epoch.
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: i64,
    /// Every request of the range.
    pub totals: Stats,
    /// Sorted by key, the `None` group last.
    pub groups: Vec<Group>,
    /// Every group times every bucket (empty buckets included), by key then time;
    /// empty when no bucket size was asked for.
    pub series: Vec<Point>,
}

/// Serializes a group or point as one flat object whose key field is named after the
/// dimension: `{"route": "local", "requests": 3, ...}`.
#[derive(Debug, Serialize)]
pub struct Keyed<'a> {
    /// Only for points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_start_ms: Option<i64>,
    /// One entry: dimension name → key.
    #[serde(flatten)]
    pub key: BTreeMap<&'static str, &'a Option<String>>,
    /// The figures, flattened into the same object.
    #[serde(flatten)]
    pub stats: &'a Stats,
}

impl Group {
    /// This group as JSON-ready [`Keyed`].
    pub fn keyed(&self, by: Dimension) -> Keyed<'_> {
        Keyed {
            bucket_start_ms: None,
            key: BTreeMap::from([(by.as_str(), &self.key)]),
            stats: &self.stats,
        }
    }
}

impl Point {
    /// This point as JSON-ready [`Keyed`].
    pub fn keyed(&self, by: Dimension) -> Keyed<'_> {
        Keyed {
            bucket_start_ms: Some(self.bucket_start_ms),
            key: BTreeMap::from([(by.as_str(), &self.key)]),
            stats: &self.stats,
        }
    }
}

/// Running sums of one set of requests.
#[derive(Debug, Default)]
struct Acc {
    requests: u64,
    errors: u64,
    routed: u64,
    escalations: u64,
    cost: Decimal,
    counterfactual: Decimal,
    input: u64,
    output: u64,
    latency: Vec<f64>,
    ttft: Vec<f64>,
    compute_ms: f64,
    compute_cost: Decimal,
    compute_tokens: u64,
}

impl Acc {
    fn add(&mut self, row: &UsageRow, escalated: bool) {
        self.requests += 1;
        self.errors += u64::from(row.status >= 400);
        self.routed += u64::from(row.route.is_some());
        self.escalations += u64::from(escalated);
        let cost = row.cost_usd.unwrap_or_default();
        self.cost += cost;
        // A row priced without a reference route claims no savings: its counterfactual is
        // what it actually cost.
        self.counterfactual += row.counterfactual_cost_usd.unwrap_or(cost);
        self.input += u64::from(row.input_tokens.unwrap_or_default());
        self.output += u64::from(row.output_tokens.unwrap_or_default());
        self.latency.push(row.latency_ms);
        self.ttft.extend(row.ttft_ms);
        if let Some(ms) = row.compute_ms {
            self.compute_ms += ms;
            self.compute_cost += cost;
            self.compute_tokens += u64::from(row.input_tokens.unwrap_or_default())
                + u64::from(row.output_tokens.unwrap_or_default());
        }
    }

    fn finish(mut self, has_reference: bool) -> Stats {
        self.latency.sort_by(f64::total_cmp);
        self.ttft.sort_by(f64::total_cmp);
        let escalation_share = (has_reference && self.routed > 0)
            .then(|| self.escalations as f64 / self.routed as f64);
        Stats {
            requests: self.requests,
            errors: self.errors,
            routed: self.routed,
            escalations: self.escalations,
            escalation_share,
            cost_usd: self.cost.normalize(),
            counterfactual_cost_usd: self.counterfactual.normalize(),
            savings_usd: (self.counterfactual - self.cost).normalize(),
            input_tokens: self.input,
            output_tokens: self.output,
            p50_latency_ms: percentile(&self.latency, 50.0),
            p95_latency_ms: percentile(&self.latency, 95.0),
            p50_ttft_ms: percentile(&self.ttft, 50.0),
            p95_ttft_ms: percentile(&self.ttft, 95.0),
            compute_seconds: self.compute_ms / 1000.0,
            implied_usd_per_mtok: (self.compute_tokens > 0).then(|| {
                (self.compute_cost * Decimal::from(1_000_000u32)
                    / Decimal::from(self.compute_tokens))
                .round_dp(6)
                .normalize()
            }),
        }
    }
}

/// The start of the bucket of size `bucket_ms` that holds `time_ms` (buckets are aligned to
/// the Unix epoch, so the same instant always falls in the same bucket).
pub fn bucket_start(time_ms: i64, bucket_ms: i64) -> i64 {
    time_ms.div_euclid(bucket_ms) * bucket_ms
}

/// Computes the figures of the rows that arrived in `from_ms..=to_ms` (others are ignored),
/// grouped `by` a dimension, and per bucket of `bucket_ms` when given. Requests on
/// `reference_route` count as escalations.
pub fn summarize(
    rows: &[UsageRow],
    by: Dimension,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: Option<i64>,
    reference_route: Option<&str>,
) -> Summary {
    let mut totals = Acc::default();
    let mut groups: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut buckets: BTreeMap<(Option<String>, i64), Acc> = BTreeMap::new();
    let bucket_ms = bucket_ms.filter(|b| *b > 0);
    for row in rows
        .iter()
        .filter(|r| (from_ms..=to_ms).contains(&r.time_ms))
    {
        let escalated = reference_route.is_some() && row.route.as_deref() == reference_route;
        let key = by.key(row).map(str::to_owned);
        totals.add(row, escalated);
        if let Some(size) = bucket_ms {
            buckets
                .entry((key.clone(), bucket_start(row.time_ms, size)))
                .or_default()
                .add(row, escalated);
        }
        groups.entry(key).or_default().add(row, escalated);
    }
    let has_reference = reference_route.is_some();
    let mut series = Vec::new();
    if let Some(size) = bucket_ms {
        let first = bucket_start(from_ms, size);
        let last = bucket_start(to_ms, size);
        for key in groups.keys() {
            let mut start = first;
            while start <= last {
                let acc = buckets.remove(&(key.clone(), start)).unwrap_or_default();
                series.push(Point {
                    bucket_start_ms: start,
                    key: key.clone(),
                    stats: acc.finish(has_reference),
                });
                start += size;
            }
        }
    }
    let mut groups: Vec<Group> = groups
        .into_iter()
        .map(|(key, acc)| Group {
            key,
            stats: acc.finish(has_reference),
        })
        .collect();
    // `None` sorts first in a BTreeMap; the "no route" group reads better last.
    groups.sort_by_key(|g| g.key.is_none());
    series.sort_by_key(|p| p.key.is_none());
    Summary {
        by,
        from_ms,
        to_ms,
        totals: totals.finish(has_reference),
        groups,
        series,
    }
}
