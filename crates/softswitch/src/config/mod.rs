//! The daemon's configuration: every `*.toml` file in the config folder,
//! merged and validated into one immutable [`Config`].
//!
//! Files are read in name order. Arrays of tables (`[[extension]]`) are
//! concatenated across files; a single table (`[sip]`) may be defined in one
//! file only. Unknown keys are refused. Every problem is reported with its
//! file, line and column, all of them at once.
//!
//! Each section lives in its own module with a raw serde shape (what the
//! operator wrote, with spans) and a `build` step that validates it into the
//! plain data below. Adding a section (`[admission]`, `[[site]]`,
//! `[[trunk]]`, `[[ring_group]]`, `[[inbound_rule]]`, `[[outbound_rule]]`):
//! 1. a module `config/<section>.rs` with `Raw<Section>` and `build`,
//! 2. a field in `load::FileConfig` (`Option<Raw..>` for a table,
//!    `Vec<Raw..>` for an array of tables) and its merge line in `load::merge`,
//! 3. a field in [`Config`] filled in `load::build`.

mod admin;
mod admission;
mod dialplan;
mod error;
mod extension;
mod extension_routing;
mod inbound_rule;
mod load;
mod media;
mod office_hours;
mod outbound_rule;
mod password;
mod ring_group;
mod secrets;
mod sip;
mod site;
mod trunk;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use self::admin::AdminConfig;
pub use self::admission::AdmissionConfig;
// ConfigError is part of the API (items of ConfigErrors) even where unnamed.
#[allow(unused_imports)]
pub use error::{ConfigError, ConfigErrors};
pub use extension::Extension;
pub use media::MediaConfig;
pub use secrets::SECRETS_FILE;
pub use sip::SipConfig;
pub use trunk::TrunkConfig;

/// The whole validated configuration. Plain data: the engine holds it behind
/// an `Arc` and swaps it whole on reload.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[sip]`: signalling.
    pub sip: SipConfig,
    /// `[media]`: the RTP relay.
    pub media: MediaConfig,
    /// `[admission]` and `[[site]]`: bandwidth admission and its sites.
    pub admission: AdmissionConfig,
    /// `[admin]`: the admin API `softswitch status` reads.
    pub admin: AdminConfig,
    /// `[[extension]]`: the phones that register, in file order.
    pub extensions: Vec<Extension>,
    /// The dial plan: `[[extension]]` with their forwarding and permissions,
    /// `[[ring_group]]`, `[[trunk]]` (routing's part), `[[inbound_rule]]`,
    /// `[[outbound_rule]]`, `[[office_hours]]` and `[dialplan]`, validated.
    pub dialplan: routing::Dialplan,
    /// `[[trunk]]`: how to reach and authenticate to each provider, in file
    /// order.
    pub trunks: Vec<TrunkConfig>,
    /// The folder the config was read from.
    pub dir: PathBuf,
}

/// Reads and validates the config in `dir` without writing anything (for
/// `check`). Extensions with no password in the config files take theirs
/// from `secrets.toml` when it has one; otherwise their password is `None`.
pub fn load(dir: &Path) -> Result<Config, ConfigErrors> {
    load::load(dir, false).map(|(config, _)| config)
}

/// Reads and validates the config in `dir`, then gives every extension
/// without a password a generated one, stored in `dir/secrets.toml` (for
/// `run`). Returns the secrets file's path when any extension's password
/// comes from it. Every extension of the returned config has a password.
pub fn load_and_provision(dir: &Path) -> Result<(Config, Option<PathBuf>), ConfigErrors> {
    let loaded = load::load(dir, true);
    release_freed_heap();
    loaded
}

/// Returns freed heap memory to the operating system. Reading a large
/// config peaks at several times what the validated [`Config`] keeps (every
/// TOML document with its spans), and glibc keeps freed memory that is not
/// at the top of the heap mapped for the life of the process. Also worth
/// calling once start-up is over.
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: glibc's malloc_trim has no preconditions; it takes the
        // allocator's locks and only releases pages of free chunks.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// The address to put in Via, Contact and SDP for a socket bound to `bound`:
/// the configured `advertise` address if there is one, else the bound
/// address itself, else (bound to `0.0.0.0`/`::`) the address the host
/// would use to reach the outside, else loopback.
pub fn advertised_ip(configured: Option<IpAddr>, bound: IpAddr) -> IpAddr {
    if let Some(ip) = configured {
        return ip;
    }
    if !bound.is_unspecified() {
        return bound;
    }
    outbound_ip(bound.is_ipv6()).unwrap_or(if bound.is_ipv6() {
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
    })
}

/// The local address of the default route. A UDP `connect` sends nothing;
/// it only asks the kernel which source address it would use.
fn outbound_ip(v6: bool) -> Option<IpAddr> {
    let (bind, probe) = if v6 {
        ("[::]:0", "[2001:db8::1]:9")
    } else {
        ("0.0.0.0:0", "192.0.2.1:9")
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn advertised_ip_prefers_configured_then_bound() {
        let conf = IpAddr::from(Ipv4Addr::new(203, 0, 113, 5));
        let bound = IpAddr::from(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(advertised_ip(Some(conf), bound), conf);
        assert_eq!(advertised_ip(None, bound), bound);
        let auto = advertised_ip(None, IpAddr::from(Ipv4Addr::UNSPECIFIED));
        assert!(!auto.is_unspecified());
        assert!(auto.is_ipv4());
    }

    const BASE: &str = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"pbx.test\"\n\
                        [[extension]]\nnumber = \"1001\"\nname = \"Alice\"\n\
                        [[extension]]\nnumber = \"1002\"\npassword = \"Xk9-mQpz-Lw7r\"\n";

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn load_gives_plain_data_with_defaults() {
        let dir = folder(&[("a.toml", BASE)]);
        let config = load(dir.path()).unwrap();
        assert_eq!(config.sip.domain, "pbx.test");
        assert_eq!(config.sip.listen[0].to_string(), "udp:127.0.0.1:5060");
        assert_eq!(config.sip.ring_timeout, Duration::from_secs(60));
        assert_eq!((config.sip.min_expires, config.sip.max_expires), (60, 3600));
        assert_eq!(config.sip.user_agent, "Softswitch");
        assert_eq!(config.media, MediaConfig::default());
        assert_eq!(config.extensions[0].name, "Alice");
        assert_eq!(config.extensions[0].password, None);
        assert_eq!(config.extensions[1].name, "1002");
        assert_eq!(
            config.extensions[1].password.as_deref(),
            Some("Xk9-mQpz-Lw7r")
        );
        assert!(
            !format!("{config:?}").contains("Xk9"),
            "Debug shows a password"
        );
        assert!(!dir.path().join(SECRETS_FILE).exists());
    }

    #[test]
    fn provision_generates_only_missing_passwords_and_keeps_them() {
        let dir = folder(&[("a.toml", BASE)]);
        let (config, path) = load_and_provision(dir.path()).unwrap();
        let secrets = dir.path().join(SECRETS_FILE);
        assert_eq!(path.as_deref(), Some(secrets.as_path()));
        let generated = config.extensions[0].password.clone().unwrap();
        assert_eq!(generated.len(), 20);
        assert_eq!(
            config.extensions[1].password.as_deref(),
            Some("Xk9-mQpz-Lw7r")
        );
        let text = std::fs::read_to_string(&secrets).unwrap();
        assert!(
            text.contains(&format!("\"1001\" = \"{generated}\"")),
            "{text}"
        );
        assert!(!text.contains("1002"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Again, with one more extension: the stored password stays, the new one is added.
        std::fs::write(
            dir.path().join("b.toml"),
            "[[extension]]\nnumber = \"1003\"\n",
        )
        .unwrap();
        let (again, _) = load_and_provision(dir.path()).unwrap();
        assert_eq!(
            again.extensions[0].password.as_deref(),
            Some(generated.as_str())
        );
        let third = again.extensions[2].password.clone().unwrap();
        let text2 = std::fs::read_to_string(&secrets).unwrap();
        assert!(
            text2.starts_with(&text),
            "existing lines were rewritten:\n{text2}"
        );
        assert!(text2.contains(&format!("\"1003\" = \"{third}\"")));
        // `load` now sees every password.
        let checked = load(dir.path()).unwrap();
        assert!(checked.extensions.iter().all(|e| e.password.is_some()));
    }

    #[test]
    fn provision_extends_an_inline_passwords_table() {
        let stored = "passwords = { \"1001\" = \"Xk9-mQpz-Lw7r\" }\n";
        let dir = folder(&[("a.toml", BASE), (SECRETS_FILE, stored)]);
        std::fs::write(
            dir.path().join("b.toml"),
            "[[extension]]\nnumber = \"1003\"\n",
        )
        .unwrap();
        let (config, _) = load_and_provision(dir.path()).unwrap();
        assert_eq!(
            config.extensions[0].password.as_deref(),
            Some("Xk9-mQpz-Lw7r")
        );
        let reread = load(dir.path()).unwrap();
        assert_eq!(reread, config);
    }

    #[test]
    fn weak_stored_password_is_reported_in_the_secrets_file() {
        let stored = "[passwords]\n\"1001\" = \"alice\"\n";
        let dir = folder(&[("a.toml", BASE), (SECRETS_FILE, stored)]);
        let errors = load_and_provision(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        let e = &errors.0[0];
        assert_eq!(e.file, dir.path().join(SECRETS_FILE));
        assert_eq!((e.line, e.column), (2, 10));
        assert!(e.cause.contains("extension 1001: weak password"), "{e}");
        // Nothing was generated for a config that did not load.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SECRETS_FILE)).unwrap(),
            stored
        );
    }

    #[test]
    fn errors_from_several_files_are_sorted_and_all_kept() {
        let dir = folder(&[
            ("a.toml", BASE),
            (
                "b.toml",
                "[[extension]]\nnumber = \"1001\"\n[[extension]]\nnumber = \"x\"\n",
            ),
            ("c.toml", "[media]\nrtp_ports = \"1-2\"\n"),
        ]);
        let errors = load(dir.path()).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{errors}");
        assert!(
            lines[0].contains("b.toml:2:10: extension 1001 is defined twice"),
            "{errors}"
        );
        assert!(
            lines[1].contains("b.toml:4:10: extension number `x`"),
            "{errors}"
        );
        assert!(lines[2].contains("c.toml:2:13: `rtp_ports`"), "{errors}");
    }

    #[test]
    fn empty_folder_and_missing_sip() {
        let dir = folder(&[]);
        let errors = load(dir.path()).unwrap_err();
        assert!(
            errors.to_string().contains("no *.toml config files"),
            "{errors}"
        );
        let dir = folder(&[
            ("a.toml", "[[extension]]\nnumber = \"1001\"\n"),
            ("notes.txt", "x"),
        ]);
        let errors = load(dir.path()).unwrap_err();
        assert!(errors.to_string().contains("no [sip] section"), "{errors}");
    }
}
