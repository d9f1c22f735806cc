//! The command line: `duplex serve | genconfig | checkconfig | gentoken`.
//! (Minimal for now: `serve` with a few flags.)

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, StorageConfig, TokenKey};

#[derive(Parser)]
#[command(name = "duplex", version, about = "Realtime messaging server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one node.
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Development mode.
        #[arg(long)]
        dev: bool,
        /// `memory` or `sqlite:PATH`.
        #[arg(long)]
        storage: Option<String>,
        /// API key.
        #[arg(long)]
        api_key: Option<String>,
        /// Token secret.
        #[arg(long)]
        token_secret: Option<String>,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            dev,
            storage,
            api_key,
            token_secret,
        } => {
            let mut config = Config::default();
            if let Some(l) = listen {
                config.listen = l;
            }
            config.dev = dev;
            if dev {
                config.channel = Config::dev_channel_options();
            }
            if let Some(s) = storage {
                config.storage = if s == "memory" {
                    StorageConfig::Memory
                } else {
                    StorageConfig::Sqlite(s.trim_start_matches("sqlite:").into())
                };
            }
            config.api_key = api_key.unwrap_or_else(|| "dev-api-key".into());
            let secret = token_secret.unwrap_or_else(|| "dev-token-secret".into());
            config.token_key = TokenKey::Hmac(secret.clone());
            config.token_secret = secret;
            let _ = tracing_subscriber::fmt()
                .with_env_filter(config.log_level.clone())
                .try_init();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("duplex: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(crate::run::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("duplex: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
