//! The `sluicegate` command line. Parsing only: the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluicegate_gateway::report::{Format, ReportOptions};
use sluicegate_gateway::router_cli::RouterCommand;
use sluicegate_gateway::usage::{Dimension, Since};
use sluicegate_gateway::{check, init_logging, report, router_cli, serve};

#[derive(Debug, Parser)]
#[command(
    name = "sluicegate",
    version,
    about = "An OpenAI-compatible LLM routing gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API.
    Serve {
        /// Policy file (TOML). Without it, the embedded default policy is used.
        #[arg(long, short, env = "SLUICEGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address; overrides `server.listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a policy file and print every error with its key path.
    Check {
        /// Policy file (TOML). Without it, the embedded default policy is checked.
        #[arg(long, short, env = "SLUICEGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the usage figures of the dashboard (requests, cost, savings, latency) from the
    /// ledger the policy points at, read-only.
    Report {
        /// Policy file (TOML) naming the ledger. Without it, the embedded default policy.
        #[arg(long, short, env = "SLUICEGATE_CONFIG")]
        config: Option<PathBuf>,
        /// How far back to look: e.g. 90m, 24h, 7d, 2w.
        #[arg(long, default_value = "24h", value_parser = Since::parse)]
        since: Since,
        /// Group the requests by this.
        #[arg(long, value_enum, default_value_t = Dimension::Route)]
        by: Dimension,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the routing decision a prompt would get (route, rule, class, confidence,
    /// runner-up, similarity), with the policy's real classifier; nothing is sent.
    Explain {
        /// Policy file (TOML). Without it, the embedded default policy.
        #[arg(long, short, env = "SLUICEGATE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: sluicegate_gateway::explain::ExplainArgs,
    },
    /// Train, evaluate and calibrate the on-box classifier.
    Router {
        #[command(subcommand)]
        command: RouterCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Router { command } => match router_cli::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sluicegate router: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Explain { config, args } => {
            let policy = match check::load_policy(config.as_deref()) {
                Ok(p) => p,
                Err(errors) => {
                    eprintln!("invalid policy:\n{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let result = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(sluicegate_gateway::explain::run(
                        &policy,
                        &args,
                        &mut std::io::stdout(),
                    ))
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate explain: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config } => {
            if check::check(config.as_deref(), &mut std::io::stdout()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Report {
            config,
            since,
            by,
            format,
        } => {
            let policy = match check::load_policy(config.as_deref()) {
                Ok(p) => p,
                Err(errors) => {
                    eprintln!("invalid policy:\n{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let options = ReportOptions { since, by, format };
            let result = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(report::run(&policy, &options, &mut std::io::stdout())));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate report: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config, listen } => {
            init_logging();
            let policy = match check::load_policy(config.as_deref()) {
                Ok(p) => p,
                Err(errors) => {
                    eprintln!("invalid policy:\n{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::serve(policy, listen)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
