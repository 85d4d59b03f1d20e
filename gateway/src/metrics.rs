//! Prometheus metrics (OpenMetrics text on `GET /metrics`), fed from ledger rows so the two
//! always agree. Labels are bounded: route, backend, class and status come from the policy
//! and HTTP, never from client-chosen strings.
//!
//! [`Metrics`] is the ledger's [`RowObserver`]: this module depends on the ledger, never the
//! reverse.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use rust_decimal::prelude::ToPrimitive;

use crate::ledger::{LedgerRow, RowObserver};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    backend: String,
    class: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    route: String,
    r#type: String,
}

type FloatCounter = Counter<f64, AtomicU64>;

fn histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The gateway's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<RouteLabels, FloatCounter>,
    counterfactual: Family<RouteLabels, FloatCounter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ttft: Family<RouteLabels, Histogram, fn() -> Histogram>,
    classifier: Histogram,
    fallbacks: Family<RouteLabels, Counter>,
    escalations: Family<RouteLabels, Counter>,
    compute: Family<RouteLabels, FloatCounter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluicegate");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests that reached the gateway",
            requests.clone(),
        );
        let tokens = Family::default();
        registry.register(
            "tokens",
            "Tokens by route and type (input, output)",
            tokens.clone(),
        );
        let cost = Family::default();
        registry.register_with_unit(
            "cost",
            "Cost of the requests",
            Unit::Other("usd".into()),
            cost.clone(),
        );
        let counterfactual = Family::default();
        registry.register_with_unit(
            "counterfactual_cost",
            "What the same tokens would have cost on the reference route",
            Unit::Other("usd".into()),
            counterfactual.clone(),
        );
        let duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        registry.register_with_unit(
            "request_duration",
            "Request duration",
            Unit::Seconds,
            duration.clone(),
        );
        let ttft = Family::new_with_constructor(histogram as fn() -> Histogram);
        registry.register_with_unit(
            "time_to_first_token",
            "Time to first token",
            Unit::Seconds,
            ttft.clone(),
        );
        let classifier = Histogram::new(exponential_buckets(0.001, 2.0, 12));
        registry.register_with_unit(
            "classifier_duration",
            "On-box classification time",
            Unit::Seconds,
            classifier.clone(),
        );
        let fallbacks = Family::default();
        registry.register(
            "fallbacks",
            "Routes that failed and were fallen back from",
            fallbacks.clone(),
        );
        let escalations = Family::default();
        registry.register(
            "escalations",
            "Requests answered by the reference (large) route",
            escalations.clone(),
        );
        let compute = Family::default();
        registry.register_with_unit(
            "model_busy",
            "Time in-process models were busy on requests (priced by the hour)",
            Unit::Seconds,
            compute.clone(),
        );
        Metrics {
            compute,
            registry: Arc::new(registry),
            requests,
            tokens,
            cost,
            counterfactual,
            duration,
            ttft,
            classifier,
            fallbacks,
            escalations,
        }
    }

    /// Records one finished request. `reference_route` is the policy's escalation route:
    /// requests it answers count as escalations.
    pub fn observe(&self, row: &LedgerRow, reference_route: Option<&str>) {
        let route = row.route.clone().unwrap_or_else(|| "none".into());
        let labels = RouteLabels {
            route: route.clone(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: row.backend.clone().unwrap_or_else(|| "none".into()),
                class: row.class.clone().unwrap_or_else(|| "none".into()),
                status: row.status.to_string(),
            })
            .inc();
        for (kind, n) in [("input", row.input_tokens), ("output", row.output_tokens)] {
            if let Some(n) = n {
                self.tokens
                    .get_or_create(&TokenLabels {
                        route: route.clone(),
                        r#type: kind.into(),
                    })
                    .inc_by(u64::from(n));
            }
        }
        if let Some(c) = row.cost_usd.and_then(|c| c.to_f64()) {
            self.cost.get_or_create(&labels).inc_by(c);
        }
        if let Some(c) = row.counterfactual_cost_usd.and_then(|c| c.to_f64()) {
            self.counterfactual.get_or_create(&labels).inc_by(c);
        }
        self.duration
            .get_or_create(&labels)
            .observe(row.latency_ms / 1000.0);
        if let Some(t) = row.ttft_ms {
            self.ttft.get_or_create(&labels).observe(t / 1000.0);
        }
        if let Some(ms) = row.compute_ms {
            self.compute.get_or_create(&labels).inc_by(ms / 1000.0);
        }
        if let Some(ms) = row.classifier_ms {
            self.classifier.observe(ms / 1000.0);
        }
        if let Some(failed) = &row.fallbacks {
            for r in failed.split(',') {
                self.fallbacks
                    .get_or_create(&RouteLabels {
                        route: r.to_owned(),
                    })
                    .inc();
            }
        }
        if reference_route.is_some() && row.route.as_deref() == reference_route {
            self.escalations.get_or_create(&labels).inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

impl RowObserver for Metrics {
    fn observe(&self, row: &LedgerRow, reference_route: Option<&str>) {
        Metrics::observe(self, row, reference_route);
    }
}
