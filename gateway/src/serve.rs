//! `sluicegate serve`: bind, serve, and shut down gracefully on Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sluicegate_policies::Policy;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ledger::{Ledger, Store};
use crate::stack::app;
use crate::state::AppState;
use crate::telemetry::Telemetry;

/// Serves `policy` until a shutdown signal, then lets in-flight requests finish for at most
/// `server.shutdown_grace`.
pub async fn serve(policy: Policy, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let addr = listen.unwrap_or(policy.server.listen);
    let grace = policy.server.shutdown_grace;
    let mut state = AppState::new(policy).context("building backends")?;
    state.telemetry =
        Telemetry::start(&state.policy.telemetry).context("starting the OTLP span exporter")?;
    let telemetry = state.telemetry.clone();
    let ledger = if state.policy.ledger.enabled {
        let url = &state.policy.ledger.url;
        let store = Store::open(url)
            .await
            .with_context(|| format!("opening the ledger at {url}"))?;
        Some(Ledger::start(store, &state.policy, state.metrics.clone()))
    } else {
        tracing::warn!("ledger disabled by the policy: no request is recorded");
        None
    };
    let (ledger, writer) = match ledger {
        Some((l, w)) => (Some(l), Some(w)),
        None => (None, None),
    };
    let loading = state.backends_loading();
    for backend in &loading {
        tracing::info!(%backend, "loading the local model in the background; /readyz says when it is ready");
    }
    for (backend, why) in state.backend_health() {
        if loading.contains(&backend) {
            continue;
        }
        if let Some(why) = why {
            tracing::warn!(%backend, reason = %why, "backend unavailable: its routes will use their fallbacks");
        }
    }
    if let Some(env) = &state.policy.server.admin_key_env {
        if std::env::var(env).map_or(true, |k| k.is_empty()) {
            tracing::warn!(variable = %env, "server.admin_key_env names an unset variable: /dashboard and /api/usage refuse every request");
        }
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "sluicegate listening");
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("sluicegate listening on http://{local}");
    std::io::stdout().flush().ok();

    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let server = axum::serve(listener, app(state, ledger)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        stopping_tx.send_replace(true);
    });
    let grace_expired = async move {
        // Only start counting once shutdown has begun.
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("serving")?,
        () = grace_expired => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over: dropping requests still in flight");
        }
    }
    if let Some(writer) = writer {
        match writer.close(Duration::from_secs(10)).await {
            Some(rows) => tracing::info!(rows, "ledger flushed"),
            None => tracing::error!("ledger flush did not finish in 10s"),
        }
    }
    if let Some(t) = telemetry {
        // Sends the spans still queued; blocking, so off the runtime.
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
