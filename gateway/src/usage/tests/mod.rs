//! Known rows in a temporary SQLite ledger: exact totals, percentiles, buckets, and the HTTP
//! answers of `/api/usage` and `/dashboard`.

mod aggregate;
mod http;

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::ledger::{LedgerRow, Store};

/// The window the fixtures live in: one hour starting on a whole minute.
pub const FROM: i64 = 60_000 * 1_000;
pub const TO: i64 = FROM + 3_600_000;

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A row with the fields the usage figures read.
#[allow(clippy::too_many_arguments)]
pub fn row(
    id: &str,
    time_ms: i64,
    route: Option<&str>,
    status: u16,
    cost: Option<&str>,
    counterfactual: Option<&str>,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    tokens: (u32, u32),
) -> LedgerRow {
    LedgerRow {
        request_id: id.into(),
        time_ms,
        api_key_id: None,
        requested_model: Some("auto".into()),
        class: route.map(|r| format!("class-of-{r}")),
        confidence: None,
        rule: None,
        route: route.map(str::to_owned),
        backend: route.map(|r| format!("{r}-backend")),
        upstream_model: None,
        attempts: 1,
        fallbacks: None,
        status,
        error_type: None,
        input_tokens: cost.map(|_| tokens.0),
        output_tokens: cost.map(|_| tokens.1),
        tokens_estimated: false,
        cost_usd: cost.map(dec),
        counterfactual_cost_usd: counterfactual.map(dec),
        latency_ms,
        ttft_ms,
        classifier_ms: None,
        stream: ttft_ms.is_some(),
        runner_up: None,
        runner_up_confidence: None,
        similarity: None,
        compared: None,
        compute_ms: None,
        prompt: None,
        reply: None,
    }
}

/// The fixture rows: six in the window, two just outside it.
#[rustfmt::skip]
pub fn rows() -> Vec<LedgerRow> {
    vec![
        row("a", FROM, Some("small"), 200, Some("0.00045"), Some("0.0045"), 100.0, Some(10.0), (1000, 500)),
        row("b", FROM + 30_000, Some("small"), 200, Some("0.000001"), Some("0.00001"), 300.0, Some(30.0), (2, 1)),
        row("c", FROM + 60_000, Some("big"), 200, Some("0.01"), Some("0.01"), 1000.0, None, (100, 100)),
        row("d", FROM + 120_000, Some("small"), 502, None, None, 50.0, None, (0, 0)),
        row("e", FROM + 120_001, None, 400, None, None, 1.0, None, (0, 0)),
        // Written before the policy had a reference route: no counterfactual, no savings.
        row("h", FROM + 180_000, Some("small"), 200, Some("0.002"), None, 200.0, Some(20.0), (10, 10)),
        row("early", FROM - 1, Some("small"), 200, Some("5"), Some("50"), 9.0, None, (1, 1)),
        row("late", TO + 1, Some("small"), 200, Some("5"), Some("50"), 9.0, None, (1, 1)),
    ]
}

/// A fresh SQLite ledger holding `rows`.
pub async fn sqlite_with(rows: &[LedgerRow]) -> Store {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluicegate-usage-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(dir.join("ledger.sqlite").to_str().unwrap())
        .await
        .unwrap();
    store.insert(rows).await.unwrap();
    store
}
