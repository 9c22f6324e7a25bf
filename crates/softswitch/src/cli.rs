//! The command line: `softswitch [--log LEVEL] run|check|status [--config DIR]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A SIP/RTP softswitch: registrar, call control and media relay.
#[derive(Debug, Parser)]
#[command(name = "softswitch", version, about)]
pub struct Cli {
    /// Log filter, e.g. `debug` or `info,sip=trace` (tracing env-filter
    /// syntax). Without it RUST_LOG is used, else `info`.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the softswitch. On first start, extensions without a password
    /// get a generated one in DIR/secrets.toml.
    Run {
        /// The config folder: every *.toml in it is read.
        #[arg(long, value_name = "DIR", default_value = "config")]
        config: PathBuf,
    },
    /// Validate the config and exit: 0 when valid, 1 with every error as
    /// FILE:LINE:COL: cause.
    Check {
        /// The config folder: every *.toml in it is read.
        #[arg(long, value_name = "DIR", default_value = "config")]
        config: PathBuf,
    },
    /// Print the bandwidth each codec needs and what a call reserves, as
    /// admission computes it with this config's [admission] settings
    /// (a Markdown table).
    Codecs {
        /// The config folder.
        #[arg(long, value_name = "DIR", default_value = "config")]
        config: PathBuf,
    },
    /// Show the running daemon's state: registrations, calls, and each
    /// site's link (capacity, reserved kbps each way, calls, refusals).
    Status {
        /// The config folder, to find the admin API's address.
        #[arg(long, value_name = "DIR", default_value = "config")]
        config: PathBuf,
        /// The admin API's address, instead of reading it from the config.
        #[arg(long, value_name = "IP:PORT")]
        admin: Option<std::net::SocketAddr>,
        /// Print the raw JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// Installs the tracing subscriber on stderr. `--log` wins over RUST_LOG;
/// a filter that does not parse falls back to `info` with a warning.
pub fn init_logging(log: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let wanted = log
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let (filter, bad) = match EnvFilter::try_new(&wanted) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(e) = bad {
        tracing::warn!(filter = %wanted, error = %e, "bad log filter; logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_global_log() {
        let cli = Cli::try_parse_from(["softswitch", "check"]).unwrap();
        assert!(cli.log.is_none());
        assert!(
            matches!(cli.command, Command::Check { ref config } if config == &PathBuf::from("config"))
        );
        let cli =
            Cli::try_parse_from(["softswitch", "run", "--config", "/etc/ss", "--log", "debug"])
                .unwrap();
        assert_eq!(cli.log.as_deref(), Some("debug"));
        assert!(
            matches!(cli.command, Command::Run { ref config } if config == &PathBuf::from("/etc/ss"))
        );
        assert!(Cli::try_parse_from(["softswitch"]).is_err());
    }
}
