#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)] // test code
//! The ledger store against real databases: a SQLite file, and the PostgreSQL server that runs
//! on every machine here (127.0.0.1:5432, database `test`; `.ci/run` starts it if it is down).

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;
use sluicegate_gateway::ledger::{LedgerRow, Outcome, Pricing, Store};
use sluicegate_policies::Price;

fn row(id: &str, time_ms: i64) -> LedgerRow {
    let outcome = Outcome {
        requested_model: Some("auto".into()),
        stream: true,
        class: Some("billing".into()),
        confidence: Some(0.75),
        rule: Some("default".into()),
        route: Some("local".into()),
        backend: Some("ollama".into()),
        upstream_model: Some("smollm2".into()),
        attempts: vec!["remote".into(), "local".into()],
        input_tokens: Some(120),
        output_tokens: Some(30),
        tokens_estimated: true,
        ttft: Some(Duration::from_millis(42)),
        ..Default::default()
    };
    let price = Price {
        input_per_mtok: Decimal::from_str("0.15").unwrap(),
        output_per_mtok: Decimal::from_str("0.60").unwrap(),
    };
    let mut row = LedgerRow::build(
        id.into(),
        SystemTime::UNIX_EPOCH,
        Some("abcd".into()),
        200,
        Duration::from_millis(250),
        outcome,
        Pricing {
            route: Some(price),
            route_per_hour: None,
            reference: Some(price),
        },
    );
    row.time_ms = time_ms;
    row.compute_ms = Some(12.5);
    row
}

async fn round_trip(store: &Store, prefix: &str) {
    let rows: Vec<LedgerRow> = (0..700)
        .map(|i| row(&format!("{prefix}-{i:04}"), 1_000 + i))
        .collect();
    store.insert(&rows).await.unwrap();
    // Writing the same ids again changes nothing (a retried batch cannot double-count).
    store.insert(&rows[..10]).await.unwrap();
    let back: Vec<LedgerRow> = store
        .rows_since(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.request_id.starts_with(prefix))
        .collect();
    assert_eq!(back.len(), 700);
    assert_eq!(back[0], rows[0]);
    assert_eq!(
        back[0].cost_usd,
        Some(Decimal::from_str("0.000036").unwrap())
    );
    assert_eq!(back[0].fallbacks.as_deref(), Some("remote"));
    let later = store.rows_since(1_000 + 690).await.unwrap();
    assert_eq!(
        later
            .iter()
            .filter(|r| r.request_id.starts_with(prefix))
            .count(),
        10
    );
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = std::env::temp_dir().join(format!("sluicegate-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.sqlite");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    round_trip(&store, "sqlite").await;
    // Re-opening migrates nothing away.
    let again = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(again.rows_since(0).await.unwrap().len(), 700);
}

#[tokio::test]
async fn an_older_table_gets_the_new_columns() {
    let dir = std::env::temp_dir().join(format!("sluicegate-ledger-old-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.sqlite");
    let _ = std::fs::remove_file(&path);
    {
        // The first release's table, with one row in it.
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE ledger (request_id TEXT PRIMARY KEY, time_ms BIGINT NOT NULL, \
             api_key_id TEXT, requested_model TEXT, class TEXT, confidence DOUBLE PRECISION, \
             rule TEXT, route TEXT, backend TEXT, upstream_model TEXT, attempts BIGINT NOT NULL, \
             fallbacks TEXT, status BIGINT NOT NULL, error_type TEXT, input_tokens BIGINT, \
             output_tokens BIGINT, tokens_estimated BOOLEAN NOT NULL, cost_usd TEXT, \
             counterfactual_cost_usd TEXT, latency_ms DOUBLE PRECISION NOT NULL, \
             ttft_ms DOUBLE PRECISION, classifier_ms DOUBLE PRECISION, stream BOOLEAN NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO ledger (request_id, time_ms, attempts, status, tokens_estimated, \
             latency_ms, stream) VALUES ('old', 5, 1, 200, false, 3.5, false)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let mut new = row("new", 10);
    new.prompt = Some("[]".into());
    store.insert(&[new]).await.unwrap();
    let back = store.rows_since(0).await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].request_id, "old");
    assert_eq!(back[0].compute_ms, None);
    assert_eq!(back[1].compute_ms, Some(12.5));
}

#[tokio::test]
async fn postgres_round_trip() {
    let url = std::env::var("SLUICEGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let store = Store::open(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is needed for this test (scripts/test starts it): {e}")
    });
    let prefix = format!(
        "pg-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    round_trip(&store, &prefix).await;
}
