//! One ledger row, and how its cost is computed.

use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;
use sluicegate_policies::Price;

use super::outcome::Outcome;

/// One request as the ledger stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub request_id: String,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub time_ms: i64,
    /// Hash of the client's API key (never the key), if it sent one.
    pub api_key_id: Option<String>,
    pub requested_model: Option<String>,
    /// The classifier's class (`unknown` when out of scope) and its probability.
    pub class: Option<String>,
    pub confidence: Option<f32>,
    /// The second most likely class (for `unknown`, the nearest class) and its probability.
    pub runner_up: Option<String>,
    pub runner_up_confidence: Option<f32>,
    /// Cosine similarity to the nearest text the scorer was built from.
    pub similarity: Option<f32>,
    pub rule: Option<String>,
    /// The thresholds the rule compared, with the request's values (`confidence=0.41<0.5`).
    pub compared: Option<String>,
    pub route: Option<String>,
    pub backend: Option<String>,
    pub upstream_model: Option<String>,
    pub attempts: u32,
    /// Routes that failed before the one that answered, comma-separated.
    pub fallbacks: Option<String>,
    pub status: u16,
    pub error_type: Option<String>,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    pub tokens_estimated: bool,
    pub cost_usd: Option<Decimal>,
    pub counterfactual_cost_usd: Option<Decimal>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub classifier_ms: Option<f64>,
    pub stream: bool,
    /// Time an in-process model was busy on the request (its share of batched steps).
    pub compute_ms: Option<f64>,
    /// The messages (JSON) and the reply's text, only when the policy sets
    /// `ledger.store_content` (the ledger layer strips them otherwise).
    pub prompt: Option<String>,
    pub reply: Option<String>,
}

/// Prices the ledger needs for a row: the answering route's, and the reference route's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pricing {
    pub route: Option<Price>,
    /// USD per hour of model time, for routes served by an in-process model.
    pub route_per_hour: Option<Decimal>,
    pub reference: Option<Price>,
}

/// USD for `input` and `output` tokens at `price` (USD per 1M tokens).
pub fn cost(price: &Price, input: u32, output: u32) -> Decimal {
    let million = Decimal::from(1_000_000u32);
    (price.input_per_mtok * Decimal::from(input) + price.output_per_mtok * Decimal::from(output))
        / million
}

/// USD for `busy` of a box that costs `per_hour`, exact to the microsecond.
pub fn compute_cost(per_hour: Decimal, busy: Duration) -> Decimal {
    per_hour * Decimal::from(busy.as_micros() as u64) / Decimal::from(3_600_000_000u64)
}

impl LedgerRow {
    /// Builds the row of a finished request.
    pub fn build(
        request_id: String,
        arrived: SystemTime,
        api_key_id: Option<String>,
        status: u16,
        latency: Duration,
        outcome: Outcome,
        pricing: Pricing,
    ) -> Self {
        let tokens = outcome.input_tokens.zip(outcome.output_tokens);
        let token_cost = tokens.and_then(|(i, o)| pricing.route.map(|p| cost(&p, i, o)));
        let busy_cost = pricing
            .route_per_hour
            .zip(outcome.compute)
            .map(|(rate, busy)| compute_cost(rate, busy));
        let cost_usd = match (token_cost, busy_cost) {
            (Some(t), Some(b)) => Some(t + b),
            (t, b) => t.or(b),
        };
        let counterfactual = tokens.and_then(|(i, o)| pricing.reference.map(|p| cost(&p, i, o)));
        let failed: Vec<&str> = match outcome.attempts.split_last() {
            Some((_, earlier)) => earlier.iter().map(String::as_str).collect(),
            None => Vec::new(),
        };
        LedgerRow {
            request_id,
            time_ms: arrived
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
            api_key_id,
            requested_model: outcome.requested_model,
            class: outcome.class,
            confidence: outcome.confidence,
            runner_up: outcome.runner_up.as_ref().map(|(c, _)| c.clone()),
            runner_up_confidence: outcome.runner_up.map(|(_, p)| p),
            similarity: outcome.similarity,
            rule: outcome.rule,
            compared: outcome.compared,
            route: outcome.route,
            backend: outcome.backend,
            upstream_model: outcome.upstream_model,
            attempts: outcome.attempts.len() as u32,
            fallbacks: (!failed.is_empty()).then(|| failed.join(",")),
            status,
            error_type: outcome.error_type,
            input_tokens: outcome.input_tokens,
            output_tokens: outcome.output_tokens,
            tokens_estimated: outcome.tokens_estimated,
            cost_usd,
            counterfactual_cost_usd: counterfactual,
            latency_ms: latency.as_secs_f64() * 1000.0,
            ttft_ms: outcome.ttft.map(|t| t.as_secs_f64() * 1000.0),
            classifier_ms: outcome.classifier_ms,
            stream: outcome.stream,
            compute_ms: outcome.compute.map(|d| d.as_secs_f64() * 1000.0),
            prompt: outcome.prompt,
            reply: outcome.reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn cost_is_exact_decimal_per_million_tokens() {
        let price = Price {
            input_per_mtok: Decimal::from_str("0.15").unwrap(),
            output_per_mtok: Decimal::from_str("0.60").unwrap(),
        };
        // 1000 * 0.15/1M + 500 * 0.60/1M = 0.00015 + 0.0003
        assert_eq!(
            cost(&price, 1000, 500),
            Decimal::from_str("0.00045").unwrap()
        );
    }

    #[test]
    fn rows_carry_fallbacks_and_both_costs() {
        let outcome = Outcome {
            attempts: vec!["local".into(), "remote".into()],
            input_tokens: Some(10),
            output_tokens: Some(20),
            ..Default::default()
        };
        let price = |i: &str, o: &str| Price {
            input_per_mtok: Decimal::from_str(i).unwrap(),
            output_per_mtok: Decimal::from_str(o).unwrap(),
        };
        let pricing = Pricing {
            route: Some(price("1", "2")),
            route_per_hour: None,
            reference: Some(price("10", "20")),
        };
        let row = LedgerRow::build(
            "r1".into(),
            SystemTime::UNIX_EPOCH,
            None,
            200,
            Duration::from_millis(5),
            outcome,
            pricing,
        );
        assert_eq!(row.fallbacks.as_deref(), Some("local"));
        assert_eq!(row.attempts, 2);
        assert_eq!(row.cost_usd, Some(Decimal::from_str("0.00005").unwrap()));
        assert_eq!(
            row.counterfactual_cost_usd,
            Some(Decimal::from_str("0.0005").unwrap())
        );
        assert_eq!(row.latency_ms, 5.0);
        assert_eq!(row.compute_ms, None);
    }

    #[test]
    fn local_rows_cost_their_share_of_the_box_and_content_is_opt_in() {
        let outcome = Outcome {
            attempts: vec!["local".into()],
            input_tokens: Some(100),
            output_tokens: Some(20),
            compute: Some(Duration::from_millis(1800)),
            prompt: Some("[]".into()),
            reply: Some("hi".into()),
            ..Default::default()
        };
        let pricing = Pricing {
            route: None,
            route_per_hour: Some(Decimal::from_str("0.05").unwrap()),
            reference: None,
        };
        let build = |store| {
            let outcome = if store {
                outcome.clone()
            } else {
                outcome.clone().without_content()
            };
            LedgerRow::build(
                "r".into(),
                SystemTime::UNIX_EPOCH,
                None,
                200,
                Duration::from_secs(2),
                outcome,
                pricing,
            )
        };
        let row = build(false);
        // 1.8 s of a $0.05/h box = 0.05 * 1.8 / 3600 = 0.000025
        assert_eq!(row.cost_usd, Some(Decimal::from_str("0.000025").unwrap()));
        assert_eq!(row.compute_ms, Some(1800.0));
        assert_eq!((row.prompt, row.reply), (None, None));
        let row = build(true);
        assert_eq!(row.prompt.as_deref(), Some("[]"));
        assert_eq!(row.reply.as_deref(), Some("hi"));
    }
}
