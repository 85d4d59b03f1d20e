//! The one ledger query behind every usage figure: the columns [`UsageRow`] needs, for the
//! rows that arrived in a time range. The same SQL runs on SQLite and PostgreSQL.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::QueryBuilder;

use super::{UsageError, UsageRow};
use crate::ledger::Store;

const SELECT: &str = "SELECT time_ms, route, backend, class, status, input_tokens, output_tokens, \
                      cost_usd, counterfactual_cost_usd, latency_ms, ttft_ms, compute_ms FROM ledger WHERE time_ms >= ";

#[derive(sqlx::FromRow)]
struct Columns {
    time_ms: i64,
    route: Option<String>,
    backend: Option<String>,
    class: Option<String>,
    status: i64,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cost_usd: Option<String>,
    counterfactual_cost_usd: Option<String>,
    latency_ms: f64,
    ttft_ms: Option<f64>,
    compute_ms: Option<f64>,
}

/// The rows that arrived in `from_ms..=to_ms`, oldest first. A cost that is not a decimal
/// number is an error, never skipped: totals must not be silently wrong.
pub async fn rows_between(
    store: &Store,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<UsageRow>, UsageError> {
    macro_rules! select_with {
        ($db:ty, $pool:expr) => {{
            let mut q = QueryBuilder::<$db>::new(SELECT);
            q.push_bind(from_ms)
                .push(" AND time_ms <= ")
                .push_bind(to_ms)
                .push(" ORDER BY time_ms");
            let rows: Vec<Columns> = q.build_query_as().fetch_all($pool).await?;
            rows
        }};
    }
    let rows = match store {
        Store::Sqlite(pool) => select_with!(sqlx::Sqlite, pool),
        Store::Postgres(pool) => select_with!(sqlx::Postgres, pool),
    };
    rows.into_iter().map(convert).collect()
}

fn convert(c: Columns) -> Result<UsageRow, UsageError> {
    let time_ms = c.time_ms;
    let money = |column: &'static str, text: Option<String>| match text {
        None => Ok(None),
        Some(text) => Decimal::from_str(&text)
            .map(Some)
            .map_err(|_| UsageError::BadValue {
                time_ms,
                column,
                value: text,
            }),
    };
    let count = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    Ok(UsageRow {
        time_ms,
        route: c.route,
        backend: c.backend,
        class: c.class,
        status: u16::try_from(c.status).unwrap_or_default(),
        input_tokens: count(c.input_tokens),
        output_tokens: count(c.output_tokens),
        cost_usd: money("cost_usd", c.cost_usd)?,
        counterfactual_cost_usd: money("counterfactual_cost_usd", c.counterfactual_cost_usd)?,
        latency_ms: c.latency_ms,
        ttft_ms: c.ttft_ms,
        compute_ms: c.compute_ms,
    })
}
