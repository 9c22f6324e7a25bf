//! The softswitch daemon.

mod admin;
mod cli;
mod config;
mod daemon;
mod status;

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
        Command::Codecs { config } => match config::load(&config) {
            Ok(c) => {
                print!("{}", c.admission.estimator().codec_table_markdown());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                report(&errors);
                ExitCode::FAILURE
            }
        },
        Command::Status {
            config,
            admin,
            json,
        } => status(&config, admin, json),
    }
}

/// Prints the running daemon's state; exits 1 when it cannot be reached.
fn status(dir: &Path, admin: Option<std::net::SocketAddr>, json: bool) -> ExitCode {
    let addr = match admin {
        Some(a) => a,
        None => match config::load(dir) {
            Ok(c) => c.admin.listen,
            Err(errors) => {
                report(&errors);
                return ExitCode::FAILURE;
            }
        },
    };
    match status::fetch(addr) {
        Ok(snapshot) => {
            if json {
                match serde_json::to_string_pretty(&snapshot) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", status::render(&snapshot));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
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
