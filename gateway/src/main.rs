//! The `switchyard` command line. Parsing only: the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_gateway::router_cli::RouterCommand;
use switchyard_gateway::{check, init_logging, router_cli, serve};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
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
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address; overrides `server.listen` (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a policy file and print every error with its key path.
    Check {
        /// Policy file (TOML). Without it, the embedded default policy is checked.
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
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
                eprintln!("switchyard router: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check { config } => {
            if check::check(config.as_deref(), &mut std::io::stdout()) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
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
                    eprintln!("switchyard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
