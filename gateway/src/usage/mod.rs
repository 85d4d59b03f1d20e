//! Usage figures read back from the ledger, for `GET /api/usage`, the `/dashboard` page and
//! `sluicegate report`. One query ([`query::rows_between`]) and one aggregation
//! ([`aggregate::summarize`]) serve all three, so they cannot disagree.
//!
//! Definitions (per group and in total):
//! - **requests**: ledger rows (one per request that reached the gateway, errors included);
//!   **errors**: rows with HTTP status >= 400 (499 = the client left).
//! - **cost**: the sum of the rows' `cost_usd` (`rust_decimal`, exact; a row without tokens
//!   costs 0). **counterfactual cost**: the sum of `counterfactual_cost_usd`, what the same
//!   tokens would have cost on `ledger.reference_route`; a row written without a reference
//!   route counts its actual cost, so it claims no savings.
//!   **savings** = counterfactual cost - cost.
//! - **escalation share**: requests whose route is `ledger.reference_route` (the same rule as
//!   the `sluicegate_escalations` metric) divided by the requests that got a route; `null`
//!   when the policy has no reference route or nothing was routed.
//! - **p50/p95 latency and time to first token**: nearest-rank percentiles of the rows'
//!   `latency_ms` and `ttft_ms` (each is one of the recorded values).
//! - **series**: the same figures per group and per time bucket (aligned to the Unix epoch;
//!   1h window: 1-minute buckets, 24h: 30 minutes, 7d: 6 hours), empty buckets included.
//!
//! The rows of the window are read into memory (only the columns needed), which suits
//! ledgers of up to a few million rows per window.

pub mod aggregate;
pub mod auth;
pub mod http;
pub mod query;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use aggregate::{summarize, Group, Point, Stats, Summary, UsageRow};
pub use auth::AdminKey;
/// Re-exported so tests and tools can add up ledger money without naming the crate.
pub use rust_decimal::Decimal;

use crate::ledger::Store;

/// The windows `/api/usage` and the dashboard offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `1h`, in 1-minute buckets.
    Hour,
    /// `24h`, in 30-minute buckets.
    Day,
    /// `7d`, in 6-hour buckets.
    Week,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::Week];

    /// As written in the query string: `1h`, `24h` or `7d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The window's length in milliseconds.
    pub fn length_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Window::Hour => HOUR,
            Window::Day => 24 * HOUR,
            Window::Week => 7 * 24 * HOUR,
        }
    }

    /// The series' bucket size: 1 minute, 30 minutes or 6 hours.
    pub fn bucket_ms(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            Window::Hour => MINUTE,
            Window::Day => 30 * MINUTE,
            Window::Week => 6 * 60 * MINUTE,
        }
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("unknown window {s:?}: use one of 1h, 24h, 7d"))
    }
}

/// What requests are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Dimension {
    /// The route that answered (or was tried last).
    #[default]
    Route,
    /// The on-box classifier's class.
    Class,
    /// The backend that answered (or was tried last).
    Backend,
}

impl Dimension {
    /// `route`, `class` or `backend`: the name of the key field in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Route => "route",
            Dimension::Class => "class",
            Dimension::Backend => "backend",
        }
    }

    /// The row's value for this dimension.
    pub fn key(self, row: &UsageRow) -> Option<&str> {
        match self {
            Dimension::Route => row.route.as_deref(),
            Dimension::Class => row.class.as_deref(),
            Dimension::Backend => row.backend.as_deref(),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reading the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("could not read the ledger: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value does not parse (money must never be guessed).
    #[error("the ledger row at time_ms {time_ms} has an invalid {column}: {value:?}")]
    BadValue {
        time_ms: i64,
        column: &'static str,
        value: String,
    },
}

/// Reads the rows of `from_ms..=to_ms` from `store` and summarizes them (see
/// [`summarize`]).
pub async fn load(
    store: &Store,
    by: Dimension,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: Option<i64>,
    reference_route: Option<&str>,
) -> Result<Summary, UsageError> {
    let rows = query::rows_between(store, from_ms, to_ms).await?;
    Ok(summarize(
        &rows,
        by,
        from_ms,
        to_ms,
        bucket_ms,
        reference_route,
    ))
}

/// A look-back such as `90m`, `24h`, `7d` or `2w` (one number, one unit: `s`, `m`, `h`,
/// `d` or `w`), kept as written for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// As written (`24h`).
    pub text: String,
    /// Its length.
    pub duration: Duration,
}

impl Since {
    /// Parses `text`; the error says what to write instead.
    pub fn parse(text: &str) -> Result<Since, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let hint = || format!("invalid duration {text:?}: write e.g. \"90m\", \"24h\", \"7d\"");
        let n: u64 = digits.parse().map_err(|_| hint())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(hint()),
        };
        if n == 0 {
            return Err(format!("duration {text:?} must be greater than zero"));
        }
        let duration = n
            .checked_mul(seconds)
            .map(Duration::from_secs)
            .ok_or_else(hint)?;
        Ok(Since {
            text: text.to_owned(),
            duration,
        })
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
