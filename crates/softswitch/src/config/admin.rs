//! `[admin]`: the daemon's admin API, read by `softswitch status`.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, Loc};
use super::load::Section;

/// Loopback only by default: the admin API has no authentication.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:5081";

/// `[admin]` after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminConfig {
    /// `listen`: where the admin API (HTTP, read-only `GET /status`)
    /// listens (default `127.0.0.1:5081`). It has no authentication: keep
    /// it on a loopback or management address.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5081)),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    listen: Option<Spanned<String>>,
}

pub(crate) fn build(section: Option<Section<RawAdmin>>, diag: &mut Diag) -> Option<AdminConfig> {
    let mut config = AdminConfig::default();
    let Some(section) = section else {
        return Some(config);
    };
    let file = section.file;
    let errors_before = diag.error_count();
    if let Some(listen) = &section.value.listen {
        match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => config.listen = addr,
            _ => diag.at(
                &Loc {
                    file,
                    span: listen.span(),
                },
                format!(
                    "`listen` `{}` is not an IP address and port, e.g. \"{DEFAULT_ADMIN_LISTEN}\"",
                    listen.get_ref()
                ),
            ),
        }
    }
    (diag.error_count() == errors_before).then_some(config)
}
