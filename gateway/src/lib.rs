//! The sluicegate gateway: an OpenAI-compatible routing proxy driven by a TOML policy.
//!
//! [`stack`] lists the request path layer by layer; ARCHITECTURE.md tells the whole flow.

pub mod chat;
pub mod check;
pub mod classify;
pub mod error;
pub mod explain;
pub mod extract;
pub mod ledger;
pub mod metrics;
pub mod report;
pub mod router_cli;
pub mod serve;
pub mod stack;
pub mod state;
pub mod telemetry;
pub mod usage;

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
