//! `[sip]`: listening sockets, domain, timers and identity.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use sip::ListenSpec;
use toml::Spanned;

use super::error::{Diag, Loc};
use super::load::Section;

pub const DEFAULT_RING_TIMEOUT: u64 = 60;
pub const DEFAULT_MIN_EXPIRES: u32 = 60;
pub const DEFAULT_MAX_EXPIRES: u32 = 3600;
pub const DEFAULT_USER_AGENT: &str = "Softswitch";

/// `[sip]` after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct SipConfig {
    /// `listen`: sockets to receive SIP on, `udp:IP:PORT` or `tcp:IP:PORT`
    /// (IPv6 in brackets). Required, at least one.
    pub listen: Vec<ListenSpec>,
    /// `domain`: the SIP domain phones register to (`sip:1001@domain`).
    /// Required.
    pub domain: String,
    /// `ring_timeout`: seconds an unanswered call rings before it is given
    /// up (1-3600, default 60).
    pub ring_timeout: Duration,
    /// `min_expires`: shortest registration accepted, seconds; shorter
    /// requests get `423 Interval Too Brief` (default 60).
    pub min_expires: u32,
    /// `max_expires`: longest registration granted, seconds; longer requests
    /// are shortened to it (default 3600, at most 86400).
    pub max_expires: u32,
    /// `user_agent`: the `User-Agent`/`Server` header value (default
    /// "Softswitch").
    pub user_agent: String,
    /// `advertise`: the IP put in Via, Contact and SDP when listening on
    /// `0.0.0.0`/`::` or behind NAT. Default: the listen IP, or when that is
    /// unspecified the host's default-route address, else loopback (see
    /// [`crate::config::advertised_ip`]).
    pub advertise: Option<IpAddr>,
    /// `auth_algorithms`: digest algorithms offered to phones, one challenge
    /// each, in this order: `"MD5"`, `"SHA-256"` (default `["MD5"]`). Many
    /// phones answer only the first challenge, and some (baresip 1.0) refuse
    /// a challenge set that includes SHA-256, so SHA-256 is opt-in.
    pub auth_algorithms: Vec<pbx::settings::Algorithm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    domain: Spanned<String>,
    ring_timeout: Option<Spanned<u64>>,
    min_expires: Option<Spanned<u32>>,
    max_expires: Option<Spanned<u32>>,
    user_agent: Option<Spanned<String>>,
    advertise: Option<Spanned<IpAddr>>,
    auth_algorithms: Option<Spanned<Vec<Spanned<String>>>>,
}

pub(crate) fn build(section: Section<RawSip>, diag: &mut Diag) -> Option<SipConfig> {
    let file = section.file;
    let raw = section.value;
    let loc = |s: std::ops::Range<usize>| Loc { file, span: s };
    let errors_before = diag.error_count();

    let mut listen = Vec::new();
    match &raw.listen {
        None => diag.at(
            &section.header,
            "[sip] has no `listen` entry; add e.g. listen = [\"udp:0.0.0.0:5060\"]",
        ),
        Some(list) if list.get_ref().is_empty() => diag.at(
            &loc(list.span()),
            "`listen` is empty; add at least one entry, e.g. \"udp:0.0.0.0:5060\"",
        ),
        Some(list) => {
            for entry in list.get_ref() {
                match entry.get_ref().parse::<ListenSpec>() {
                    Err(cause) => {
                        diag.at(&loc(entry.span()), format!("bad listen address {cause}"))
                    }
                    Ok(spec) if spec.addr.port() == 0 => diag.at(
                        &loc(entry.span()),
                        format!("listen address `{}` needs a port, not 0", entry.get_ref()),
                    ),
                    Ok(spec) if listen.contains(&spec) => diag.at(
                        &loc(entry.span()),
                        format!("listen address `{spec}` is listed twice"),
                    ),
                    Ok(spec) => listen.push(spec),
                }
            }
        }
    }

    let domain = raw.domain.get_ref().trim().to_owned();
    if domain.is_empty() {
        diag.at(
            &loc(raw.domain.span()),
            "`domain` is empty; set the SIP domain, e.g. \"pbx.example.com\"",
        );
    } else if !is_host(&domain) {
        diag.at(
            &loc(raw.domain.span()),
            format!("`domain` `{domain}` is not a host name or IP address"),
        );
    }

    let ring_timeout = raw
        .ring_timeout
        .as_ref()
        .map_or(DEFAULT_RING_TIMEOUT, |v| *v.get_ref());
    if let Some(v) = &raw.ring_timeout {
        if !(1..=3600).contains(v.get_ref()) {
            diag.at(
                &loc(v.span()),
                format!("`ring_timeout` {} must be 1 to 3600 seconds", v.get_ref()),
            );
        }
    }

    let min_expires = raw
        .min_expires
        .as_ref()
        .map_or(DEFAULT_MIN_EXPIRES, |v| *v.get_ref());
    let max_expires = raw
        .max_expires
        .as_ref()
        .map_or(DEFAULT_MAX_EXPIRES, |v| *v.get_ref());
    if let Some(v) = &raw.min_expires {
        if *v.get_ref() == 0 {
            diag.at(&loc(v.span()), "`min_expires` must be at least 1 second");
        }
    }
    if let Some(v) = &raw.max_expires {
        if *v.get_ref() > 86_400 {
            diag.at(
                &loc(v.span()),
                format!(
                    "`max_expires` {} is above 86400 seconds (one day)",
                    v.get_ref()
                ),
            );
        }
    }
    if min_expires > max_expires {
        let at = raw
            .max_expires
            .as_ref()
            .or(raw.min_expires.as_ref())
            .map_or(section.header.clone(), |v| loc(v.span()));
        diag.at(
            &at,
            format!("`min_expires` {min_expires} is above `max_expires` {max_expires}"),
        );
    }

    let user_agent = raw
        .user_agent
        .as_ref()
        .map_or(DEFAULT_USER_AGENT.to_owned(), |v| v.get_ref().clone());
    if let Some(v) = &raw.user_agent {
        let ua = v.get_ref();
        // It goes verbatim into a header: no line breaks or control characters.
        if ua.trim().is_empty() || ua.chars().any(char::is_control) || ua.len() > 128 {
            diag.at(
                &loc(v.span()),
                "`user_agent` must be 1 to 128 printable characters on one line",
            );
        }
    }

    let advertise = raw.advertise.as_ref().map(|v| *v.get_ref());
    if let Some(v) = &raw.advertise {
        if let Some(cause) = not_advertisable(*v.get_ref()) {
            diag.at(&loc(v.span()), format!("`advertise` {cause}"));
        }
    }

    let mut auth_algorithms = Vec::new();
    match &raw.auth_algorithms {
        None => auth_algorithms.push(pbx::settings::Algorithm::Md5),
        Some(list) if list.get_ref().is_empty() => diag.at(
            &loc(list.span()),
            "`auth_algorithms` is empty; offer at least \"MD5\" or \"SHA-256\"",
        ),
        Some(list) => {
            for entry in list.get_ref() {
                let alg = match entry.get_ref().to_ascii_uppercase().as_str() {
                    "MD5" => pbx::settings::Algorithm::Md5,
                    "SHA-256" => pbx::settings::Algorithm::Sha256,
                    other => {
                        diag.at(
                            &loc(entry.span()),
                            format!(
                                "unknown digest algorithm `{other}`: use \"MD5\" or \"SHA-256\""
                            ),
                        );
                        continue;
                    }
                };
                if auth_algorithms.contains(&alg) {
                    diag.at(
                        &loc(entry.span()),
                        format!("`{}` is listed twice", entry.get_ref()),
                    );
                } else {
                    auth_algorithms.push(alg);
                }
            }
        }
    }

    (diag.error_count() == errors_before).then(|| SipConfig {
        listen,
        domain,
        ring_timeout: Duration::from_secs(ring_timeout),
        min_expires,
        max_expires,
        user_agent,
        advertise,
        auth_algorithms,
    })
}

/// Why an address cannot be given to peers to reach us, if it cannot.
pub(crate) fn not_advertisable(ip: IpAddr) -> Option<String> {
    if ip.is_unspecified() {
        Some(format!(
            "{ip} is not an address peers can reach; give this host's IP"
        ))
    } else if ip.is_multicast() {
        Some(format!("{ip} is a multicast address; give this host's IP"))
    } else {
        None
    }
}

/// A DNS name (letters, digits, `-`, `.`) or an IP literal.
fn is_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(is_host("pbx.example.com"));
        assert!(is_host("localhost"));
        assert!(is_host("192.0.2.10"));
        assert!(is_host("[2001:db8::1]"));
        assert!(!is_host("pbx example.com"));
        assert!(!is_host("pbx..example.com"));
        assert!(!is_host("-pbx.example.com"));
        assert!(!is_host("sip:pbx.example.com"));
    }
}
