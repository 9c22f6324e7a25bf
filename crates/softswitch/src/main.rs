//! The softswitch daemon.

mod cli;
mod config;
mod daemon;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log.as_deref());
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config),
    }
}

/// Prints a summary and exits 0, or every error and exits 1.
fn check(dir: &Path) -> ExitCode {
    match config::load(dir) {
        Ok(config) => {
            let unset = config
                .extensions
                .iter()
                .filter(|e| e.password.is_none())
                .count();
            println!(
                "config OK: {} extensions, {} listen addresses, domain {}, RTP ports {}-{} ({})",
                config.extensions.len(),
                config.sip.listen.len(),
                config.sip.domain,
                config.media.port_min,
                config.media.port_max,
                dir.display(),
            );
            if unset > 0 {
                println!(
                    "{unset} extensions have no password yet; `run` generates them into {}",
                    dir.join(config::SECRETS_FILE).display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            report(&errors);
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> ExitCode {
    let config = match config::load_and_provision(dir) {
        Ok((config, secrets)) => {
            if let Some(path) = secrets {
                tracing::info!(path = %path.display(), "extension passwords not set in the config are in this file");
            }
            config
        }
        Err(errors) => {
            report(&errors);
            return ExitCode::FAILURE;
        }
    };
    match daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(errors: &config::ConfigErrors) {
    for e in errors {
        eprintln!("{e}");
    }
    let n = errors.len();
    eprintln!("config invalid: {n} error{}", if n == 1 { "" } else { "s" });
}
