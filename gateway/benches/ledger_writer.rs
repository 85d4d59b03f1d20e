//! Sustained rows/s the ledger's batched writer absorbs into SQLite (WAL), and PostgreSQL when
//! `LEDGER_BENCH_PG` names a URL. Prints numbers; not a timed test.
//!
//!     cargo bench -p sluicegate-gateway --bench ledger_writer
//!
//! `ROWS` (default 200000) rows are queued as fast as the request path would queue them
//! (`Ledger::record` never blocks); the clock stops when the writer has flushed the last one.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sluicegate_gateway::ledger::{Ledger, LedgerRow, Store};
use sluicegate_gateway::metrics::Metrics;

fn row(i: usize) -> LedgerRow {
    LedgerRow {
        request_id: format!("bench-{i:09}"),
        time_ms: 1_790_000_000_000 + i as i64,
        api_key_id: Some("k-3f9a".into()),
        requested_model: Some("auto".into()),
        class: Some("billing".into()),
        confidence: Some(0.91),
        rule: Some("billing".into()),
        route: Some(
            if i.is_multiple_of(5) {
                "remote"
            } else {
                "local"
            }
            .into(),
        ),
        backend: Some("smollm2".into()),
        upstream_model: Some("SmolLM2-135M-Instruct".into()),
        attempts: 1,
        fallbacks: None,
        status: 200,
        error_type: None,
        input_tokens: Some(120),
        output_tokens: Some(48),
        tokens_estimated: false,
        cost_usd: Some(Decimal::new(4680, 8)),
        counterfactual_cost_usd: Some(Decimal::new(12345, 8)),
        latency_ms: 412.5,
        ttft_ms: Some(88.0),
        classifier_ms: Some(6.2),
        stream: true,
        runner_up: None,
        runner_up_confidence: None,
        similarity: None,
        compared: None,
        compute_ms: Some(180.0),
        prompt: None,
        reply: None,
    }
}

async fn run(url: &str, rows: usize) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(url).await?;
    let policy = sluicegate_policies::parse(sluicegate_policies::DEFAULT_POLICY)
        .map_err(|e| format!("{e:?}"))?;
    let (ledger, writer) = Ledger::start(store, &policy, Metrics::new());
    let started = Instant::now();
    for i in 0..rows {
        ledger.record(row(i));
    }
    let queued = started.elapsed();
    drop(ledger);
    let written = writer.close(Duration::from_secs(600)).await.unwrap_or(0);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {written} of {rows} rows in {secs:.2} s = {:.0} rows/s (queueing took {:.1} ms, {:.2} µs a row)",
        url.split(':').next().unwrap_or(url),
        written as f64 / secs,
        queued.as_secs_f64() * 1e3,
        queued.as_secs_f64() * 1e6 / rows as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("sluicegate-ledger-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    run(
        &format!("sqlite://{}", dir.join("ledger.sqlite").display()),
        rows,
    )
    .await?;
    if let Ok(pg) = std::env::var("LEDGER_BENCH_PG") {
        run(&pg, rows).await?;
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
