//! The ledger: one row per request that reaches the gateway, written off the request path by
//! a batching background writer.
//!
//! - [`LedgerLayer`] (in the HTTP stack) makes the row when a response body ends or is dropped;
//! - [`Ledger::record`] queues it without waiting (an unbounded channel: nothing is dropped);
//! - the writer task drains the queue in batches into the [`Store`] (SQLite by default,
//!   PostgreSQL for a `postgres://` URL) and is flushed on shutdown ([`LedgerWriter::close`]).
//!
//! Each recorded row is also shown to a [`RowObserver`], the Prometheus metrics, which the
//! stack (owning both) hands to [`Ledger::start`]. The ledger never imports the metrics: they
//! depend on the ledger (for [`LedgerRow`] and to implement [`RowObserver`]), not the reverse.

mod layer;
mod outcome;
mod row;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use sluicegate_policies::{BackendKind, Policy, Price};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use layer::{LedgerLayer, LedgerService};
pub use outcome::{Outcome, OutcomeHandle, RequestParams, UNKNOWN_CLASS};
pub use row::{compute_cost, cost, LedgerRow, Pricing};
pub use store::Store;

/// Most rows written in one transaction.
const MAX_BATCH: usize = 512;

/// One finished request, as the observers of [`LedgerLayer`] see it.
#[derive(Debug)]
pub struct Finished<'a> {
    pub request_id: &'a str,
    pub arrived: std::time::SystemTime,
    pub latency: Duration,
    pub status: u16,
    pub outcome: &'a Outcome,
    /// The ledger's row, when a ledger is on (adds cost).
    pub row: Option<&'a LedgerRow>,
}

/// Told of every finished chat request by [`LedgerLayer`] (the OpenTelemetry exporter). Like
/// [`RowObserver`], it lets the ledger call its readers without importing them.
pub trait FinishedObserver: std::fmt::Debug + Send + Sync + 'static {
    fn finished(&self, f: &Finished<'_>);
}

/// Told of every row when [`Ledger::record`] queues it (the gateway's metrics).
pub trait RowObserver: std::fmt::Debug + Send + Sync + 'static {
    /// `reference_route` is the policy's `ledger.reference_route`.
    fn observe(&self, row: &LedgerRow, reference_route: Option<&str>);
}

/// The request path's side of the ledger. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<LedgerRow>,
    prices: Arc<BTreeMap<String, Price>>,
    /// USD per hour of model time, for routes served in-process.
    per_hour: Arc<BTreeMap<String, Decimal>>,
    store_content: bool,
    reference_route: Option<String>,
    reference: Option<Price>,
    observer: Arc<dyn RowObserver>,
    store: Store,
}

/// The writer task; [`LedgerWriter::close`] flushes everything queued and stops it.
#[derive(Debug)]
pub struct LedgerWriter {
    /// When to stop waiting for the request path's last rows.
    close: oneshot::Sender<Instant>,
    task: JoinHandle<u64>,
}

impl Ledger {
    /// Starts the writer over `store`, with the policy's prices; `observer` sees every row.
    pub fn start(
        store: Store,
        policy: &Policy,
        observer: impl RowObserver,
    ) -> (Ledger, LedgerWriter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (close, closing) = oneshot::channel();
        let task = tokio::spawn(write_loop(store.clone(), rx, closing));
        let prices = policy
            .routes
            .iter()
            .map(|(name, r)| (name.clone(), r.price))
            .collect();
        let per_hour = policy
            .routes
            .iter()
            .filter_map(|(name, r)| match &policy.backends.get(&r.backend)?.kind {
                BackendKind::Local(local) => Some((name.clone(), local.cost_per_hour)),
                _ => None,
            })
            .collect();
        let reference_route = policy.ledger.reference_route.clone();
        let reference = reference_route
            .as_ref()
            .and_then(|r| policy.routes.get(r))
            .map(|r| r.price);
        let ledger = Ledger {
            tx,
            prices: Arc::new(prices),
            per_hour: Arc::new(per_hour),
            store_content: policy.ledger.store_content,
            reference_route,
            reference,
            observer: Arc::new(observer),
            store,
        };
        (ledger, LedgerWriter { close, task })
    }

    /// Queues a row; never blocks.
    pub fn record(&self, row: LedgerRow) {
        self.observer.observe(&row, self.reference_route.as_deref());
        if self.tx.send(row).is_err() {
            tracing::error!("ledger writer has stopped; a row was not recorded");
        }
    }

    /// The database the rows go to (the usage API reads it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The prices for a row answered by `route`.
    pub fn pricing(&self, route: Option<&str>) -> Pricing {
        Pricing {
            route: route.and_then(|r| self.prices.get(r).copied()),
            route_per_hour: route.and_then(|r| self.per_hour.get(r).copied()),
            reference: self.reference,
        }
    }

    /// Whether rows keep the messages and the reply (`ledger.store_content`).
    pub fn stores_content(&self) -> bool {
        self.store_content
    }
}

impl LedgerWriter {
    /// Stops the writer and waits at most `limit` for it. It first keeps writing rows until
    /// every [`Ledger`] handle is gone, for at most half of `limit`: a response that is still
    /// streaming when the server stops (its client gone a moment before) holds one, and
    /// records its row when its body is dropped. Then it writes whatever is queued. Returns
    /// the rows written over the writer's life.
    pub async fn close(self, limit: Duration) -> Option<u64> {
        let _ = self.close.send(Instant::now() + limit / 2);
        tokio::time::timeout(limit, self.task)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<LedgerRow>,
    mut closing: oneshot::Receiver<Instant>,
) -> u64 {
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Set by `close`: until then, or until every sender is gone, rows still come in.
    let mut until: Option<Instant> = None;
    loop {
        let closed = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => n == 0,
            deadline = &mut closing, if until.is_none() => {
                // A writer dropped without `close` stops at once.
                until = Some(deadline.unwrap_or_else(|_| Instant::now()));
                false
            }
            () = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => true,
        };
        if closed {
            // Drain whatever is still queued, then stop.
            while let Ok(row) = rx.try_recv() {
                batch.push(row);
                if batch.len() >= MAX_BATCH {
                    written += write_batch(&store, &mut batch).await;
                }
            }
            written += write_batch(&store, &mut batch).await;
            return written;
        }
        written += write_batch(&store, &mut batch).await;
    }
}

async fn write_batch(store: &Store, batch: &mut Vec<LedgerRow>) -> u64 {
    if batch.is_empty() {
        return 0;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match store.insert(batch).await {
            Ok(()) => {
                let n = batch.len() as u64;
                batch.clear();
                return n;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, rows = batch.len(), "ledger write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(rows = batch.len(), "ledger write failed 5 times; rows lost");
    batch.clear();
    0
}

/// A short, stable id for the client's API key: the first 16 hex digits of its SHA-256.
pub fn api_key_id(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .or_else(|| headers.get("x-api-key"))?
        .to_str()
        .ok()?;
    let key = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    if key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(key.as_bytes());
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}
