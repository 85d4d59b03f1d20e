//! Where ledger rows live: SQLite (WAL mode) by default, PostgreSQL for a `postgres://` URL.
//! One schema for both; created and migrated on start.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::QueryBuilder;

use super::row::LedgerRow;

/// The table, in SQL both databases accept (SQLite maps the types to its affinities).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS ledger (
        request_id TEXT PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        api_key_id TEXT,
        requested_model TEXT,
        class TEXT,
        confidence DOUBLE PRECISION,
        rule TEXT,
        route TEXT,
        backend TEXT,
        upstream_model TEXT,
        attempts BIGINT NOT NULL,
        fallbacks TEXT,
        status BIGINT NOT NULL,
        error_type TEXT,
        input_tokens BIGINT,
        output_tokens BIGINT,
        tokens_estimated BOOLEAN NOT NULL,
        cost_usd TEXT,
        counterfactual_cost_usd TEXT,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        classifier_ms DOUBLE PRECISION,
        stream BOOLEAN NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time_ms)",
];

/// Columns added after the first release: added to an older table on start.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("compute_ms", "DOUBLE PRECISION"),
    ("prompt", "TEXT"),
    ("reply", "TEXT"),
    ("runner_up", "TEXT"),
    ("runner_up_confidence", "DOUBLE PRECISION"),
    ("similarity", "DOUBLE PRECISION"),
    ("compared", "TEXT"),
];

/// A ledger database.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating if needed) the database at `url`: `postgres://...`, `sqlite://PATH`,
    /// or a plain file path for SQLite.
    pub async fn open(url: &str) -> Result<Store, sqlx::Error> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(PgPoolOptions::new().max_connections(4).connect(url).await?)
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            Store::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await?,
            )
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens an existing ledger for reading only (`sluicegate report`): nothing is created
    /// or migrated, a SQLite file is opened read-only and PostgreSQL sessions are
    /// `default_transaction_read_only`.
    pub async fn open_read_only(url: &str) -> Result<Store, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(url)?.options([("default_transaction_read_only", "on")]);
            return Ok(Store::Postgres(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(options)
                    .await?,
            ));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .read_only(true);
        Ok(Store::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?,
        ))
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        for statement in SCHEMA {
            self.execute(statement).await?;
        }
        let present: Vec<String> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info('ledger')")
                    .fetch_all(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT column_name::TEXT FROM information_schema.columns \
                     WHERE table_name = 'ledger' AND table_schema = current_schema()",
                )
                .fetch_all(pool)
                .await?
            }
        };
        for (name, kind) in ADDED_COLUMNS {
            if !present.iter().any(|p| p == name) {
                self.execute(&format!("ALTER TABLE ledger ADD COLUMN {name} {kind}"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn execute(&self, statement: &str) -> Result<(), sqlx::Error> {
        match self {
            Store::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(drop),
            Store::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(drop),
        }
    }

    /// Inserts `rows` in one statement (one transaction). A row whose request id is already
    /// stored is left as it is.
    pub async fn insert(&self, rows: &[LedgerRow]) -> Result<(), sqlx::Error> {
        macro_rules! insert_with {
            ($db:ty, $pool:expr, $rows:expr) => {{
                let mut q = QueryBuilder::<$db>::new(INSERT_HEAD);
                q.push_values($rows, |mut b, r| {
                    b.push_bind(r.request_id.clone())
                        .push_bind(r.time_ms)
                        .push_bind(r.api_key_id.clone())
                        .push_bind(r.requested_model.clone())
                        .push_bind(r.class.clone())
                        .push_bind(r.confidence.map(f64::from))
                        .push_bind(r.rule.clone())
                        .push_bind(r.route.clone())
                        .push_bind(r.backend.clone())
                        .push_bind(r.upstream_model.clone())
                        .push_bind(i64::from(r.attempts))
                        .push_bind(r.fallbacks.clone())
                        .push_bind(i64::from(r.status))
                        .push_bind(r.error_type.clone())
                        .push_bind(r.input_tokens.map(i64::from))
                        .push_bind(r.output_tokens.map(i64::from))
                        .push_bind(r.tokens_estimated)
                        .push_bind(r.cost_usd.map(|c| c.to_string()))
                        .push_bind(r.counterfactual_cost_usd.map(|c| c.to_string()))
                        .push_bind(r.latency_ms)
                        .push_bind(r.ttft_ms)
                        .push_bind(r.classifier_ms)
                        .push_bind(r.stream)
                        .push_bind(r.compute_ms)
                        .push_bind(r.prompt.clone())
                        .push_bind(r.reply.clone())
                        .push_bind(r.runner_up.clone())
                        .push_bind(r.runner_up_confidence.map(f64::from))
                        .push_bind(r.similarity.map(f64::from))
                        .push_bind(r.compared.clone());
                });
                q.push(" ON CONFLICT (request_id) DO NOTHING");
                q.build().execute($pool).await?;
            }};
        }
        // SQLite allows 32766 bound parameters per statement; 30 columns * 512 rows fits.
        for chunk in rows.chunks(512) {
            match self {
                Store::Sqlite(pool) => insert_with!(sqlx::Sqlite, pool, chunk),
                Store::Postgres(pool) => insert_with!(sqlx::Postgres, pool, chunk),
            }
        }
        Ok(())
    }

    /// Rows that arrived at or after `since_ms`, oldest first, without their content
    /// (`prompt` and `reply` are left out of reads).
    pub async fn rows_since(&self, since_ms: i64) -> Result<Vec<LedgerRow>, sqlx::Error> {
        let sql = "SELECT request_id, time_ms, api_key_id, requested_model, class, confidence, rule, route, backend, upstream_model, attempts, fallbacks, status, error_type, input_tokens, output_tokens, tokens_estimated, cost_usd, counterfactual_cost_usd, latency_ms, ttft_ms, classifier_ms, stream, compute_ms, runner_up, runner_up_confidence, similarity, compared FROM ledger WHERE time_ms >= ";
        macro_rules! select_with {
            ($db:ty, $pool:expr) => {{
                let mut q = QueryBuilder::<$db>::new(sql);
                q.push_bind(since_ms).push(" ORDER BY time_ms, request_id");
                let rows: Vec<RowTuple> = q.build_query_as().fetch_all($pool).await?;
                rows
            }};
        }
        let rows = match self {
            Store::Sqlite(pool) => select_with!(sqlx::Sqlite, pool),
            Store::Postgres(pool) => select_with!(sqlx::Postgres, pool),
        };
        Ok(rows.into_iter().map(from_tuple).collect())
    }
}

const INSERT_HEAD: &str = "INSERT INTO ledger (request_id, time_ms, api_key_id, requested_model, class, confidence, rule, route, backend, upstream_model, attempts, fallbacks, status, error_type, input_tokens, output_tokens, tokens_estimated, cost_usd, counterfactual_cost_usd, latency_ms, ttft_ms, classifier_ms, stream, compute_ms, prompt, reply, runner_up, runner_up_confidence, similarity, compared) ";

#[derive(sqlx::FromRow)]
struct RowTuple {
    request_id: String,
    time_ms: i64,
    api_key_id: Option<String>,
    requested_model: Option<String>,
    class: Option<String>,
    confidence: Option<f64>,
    rule: Option<String>,
    route: Option<String>,
    backend: Option<String>,
    upstream_model: Option<String>,
    attempts: i64,
    fallbacks: Option<String>,
    status: i64,
    error_type: Option<String>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    tokens_estimated: bool,
    cost_usd: Option<String>,
    counterfactual_cost_usd: Option<String>,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    classifier_ms: Option<f64>,
    stream: bool,
    compute_ms: Option<f64>,
    runner_up: Option<String>,
    runner_up_confidence: Option<f64>,
    similarity: Option<f64>,
    compared: Option<String>,
}

fn from_tuple(t: RowTuple) -> LedgerRow {
    let decimal = |s: Option<String>| s.and_then(|s| s.parse().ok());
    let count = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    LedgerRow {
        request_id: t.request_id,
        time_ms: t.time_ms,
        api_key_id: t.api_key_id,
        requested_model: t.requested_model,
        class: t.class,
        confidence: t.confidence.map(|c| c as f32),
        rule: t.rule,
        route: t.route,
        backend: t.backend,
        upstream_model: t.upstream_model,
        attempts: u32::try_from(t.attempts).unwrap_or_default(),
        fallbacks: t.fallbacks,
        status: u16::try_from(t.status).unwrap_or_default(),
        error_type: t.error_type,
        input_tokens: count(t.input_tokens),
        output_tokens: count(t.output_tokens),
        tokens_estimated: t.tokens_estimated,
        cost_usd: decimal(t.cost_usd),
        counterfactual_cost_usd: decimal(t.counterfactual_cost_usd),
        latency_ms: t.latency_ms,
        ttft_ms: t.ttft_ms,
        classifier_ms: t.classifier_ms,
        stream: t.stream,
        compute_ms: t.compute_ms,
        runner_up: t.runner_up,
        runner_up_confidence: t.runner_up_confidence.map(|c| c as f32),
        similarity: t.similarity.map(|c| c as f32),
        compared: t.compared,
        prompt: None,
        reply: None,
    }
}
