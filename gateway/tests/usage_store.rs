#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! The usage query against the real PostgreSQL server (127.0.0.1:5432, database `test`;
//! `scripts/test` starts it): the same rows give the same figures as in memory, to the
//! last decimal. The rows go into a schema of their own, dropped afterwards.

use std::str::FromStr;
use std::time::SystemTime;

use rust_decimal::Decimal;
use sluicegate_gateway::ledger::{LedgerRow, Store};
use sluicegate_gateway::usage::{load, summarize, Dimension, UsageRow};
use sqlx::postgres::PgPoolOptions;

const FROM: i64 = 1_700_000_000_000;

fn row(i: i64) -> LedgerRow {
    let route = ["local", "remote", "local", "local"][(i % 4) as usize];
    let priced = i % 7 != 0;
    LedgerRow {
        request_id: format!("u-{i}"),
        time_ms: FROM + i * 37_000,
        api_key_id: None,
        requested_model: Some("auto".into()),
        class: Some(format!("c{}", i % 3)),
        confidence: Some(0.5),
        rule: None,
        route: (i % 11 != 0).then(|| route.to_owned()),
        backend: Some(format!("{route}-b")),
        upstream_model: None,
        attempts: 1,
        fallbacks: None,
        status: if priced { 200 } else { 502 },
        error_type: None,
        input_tokens: priced.then_some(100 + i as u32),
        output_tokens: priced.then_some(7 * i as u32),
        tokens_estimated: false,
        cost_usd: priced.then(|| Decimal::from_str(&format!("0.0000{}1", i % 10)).unwrap()),
        counterfactual_cost_usd: priced
            .then(|| Decimal::from_str(&format!("0.00{}3", i % 10)).unwrap()),
        latency_ms: 10.0 + (i * 13 % 101) as f64 + 0.25,
        ttft_ms: (i % 2 == 0).then_some(3.5 + (i % 17) as f64),
        classifier_ms: None,
        stream: i % 2 == 0,
        runner_up: None,
        runner_up_confidence: None,
        similarity: None,
        compared: None,
        compute_ms: None,
        prompt: None,
        reply: None,
    }
}

#[tokio::test]
async fn postgres_usage_matches_the_in_memory_figures() {
    let base = std::env::var("SLUICEGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {base} is needed for this test (scripts/test starts it): {e}")
        });
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("usage_test_{}_{nanos}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    let rows: Vec<LedgerRow> = (0..300).map(row).collect();
    let store = Store::open(&url).await.unwrap();
    store.insert(&rows).await.unwrap();
    let to = FROM + 299 * 37_000;
    let reference = Some("remote");
    let result = async {
        let from_db = load(&store, Dimension::Route, FROM, to, Some(60_000), reference).await?;
        // The report's read-only connection sees the same.
        let read_only = Store::open_read_only(&url).await?;
        let by_class = load(&read_only, Dimension::Class, FROM + 1, to, None, reference).await?;
        Ok::<_, anyhow::Error>((from_db, by_class))
    }
    .await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    let (from_db, by_class) = result.unwrap();

    let usage: Vec<UsageRow> = rows.iter().map(UsageRow::from).collect();
    let expected = summarize(&usage, Dimension::Route, FROM, to, Some(60_000), reference);
    assert_eq!(from_db, expected);
    let t = &from_db.totals;
    assert_eq!(t.requests, 300);
    let cost: Decimal = rows.iter().filter_map(|r| r.cost_usd).sum();
    let cf: Decimal = rows.iter().filter_map(|r| r.counterfactual_cost_usd).sum();
    assert_eq!(t.cost_usd, cost);
    assert_eq!(t.counterfactual_cost_usd, cf);
    assert_eq!(t.savings_usd, cf - cost);
    assert!(t.p95_latency_ms.unwrap() > t.p50_latency_ms.unwrap());
    let keys: Vec<_> = from_db.groups.iter().map(|g| g.key.as_deref()).collect();
    assert_eq!(keys, [Some("local"), Some("remote"), None]);
    assert_eq!(
        by_class,
        summarize(&usage, Dimension::Class, FROM + 1, to, None, reference)
    );
    assert_eq!(
        by_class.totals.requests, 299,
        "the first row is before FROM + 1"
    );
}
