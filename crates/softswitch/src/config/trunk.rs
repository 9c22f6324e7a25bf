//! `[[trunk]]`: SIP trunks to carriers. What routing needs (name, DIDs,
//! call limit, caller ID) goes into the dial plan; how to reach and
//! authenticate to the provider goes into [`TrunkConfig`].

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use routing::{Presentation, Trunk};
use serde::Deserialize;
use sip::TransportKind;
use toml::Spanned;

use super::dialplan::{at, int_in, is_external_number, is_name, Anchors, Unique};
use super::error::{Diag, FileId};
use super::load::Item;

pub const DEFAULT_SIP_PORT: u16 = 5060;
pub const DEFAULT_EXPIRES: u32 = 3600;

/// How to reach a trunk's provider, after validation.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// `name`: unique; rules name trunks by it.
    pub name: String,
    /// `host`: the provider's registrar/proxy, a DNS name or an IP address
    /// (unresolved: the engine resolves it).
    pub host: String,
    /// The port of `host[:port]`, default 5060.
    pub port: u16,
    /// `transport`: `"udp"` (default) or `"tcp"`.
    pub transport: TransportKind,
    /// `domain`: the provider's SIP domain, host part of the AOR and
    /// Request-URIs. Default: `host` (with `:port` when it is not 5060).
    pub domain: String,
    /// `username`: the account at the provider (user part of the AOR).
    pub username: Option<String>,
    /// `auth_username`: the digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    /// `password`: as the provider gave it (no password policy applies).
    pub password: Option<String>,
    /// `register`: keep a registration at the provider (default false: the
    /// provider authenticates us by address).
    pub register: bool,
    /// `expires`: the registration interval asked for, seconds (default 3600).
    pub expires: u32,
    /// `allowed_ips`: source addresses accepted as this trunk besides the
    /// addresses `host` resolves to.
    pub allowed_ips: Vec<IpAddr>,
}

/// Keeps the provider's password out of logs.
impl fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("register", &self.register)
            .field("expires", &self.expires)
            .field("allowed_ips", &self.allowed_ips)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrunk {
    name: Spanned<String>,
    host: Spanned<String>,
    transport: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    auth_username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    register: Option<Spanned<bool>>,
    expires: Option<Spanned<i64>>,
    dids: Option<Vec<Spanned<String>>>,
    max_calls: Option<Spanned<i64>>,
    main_number: Option<Spanned<String>>,
    caller_id: Option<Spanned<String>>,
    codecs: Option<Vec<Spanned<String>>>,
    allowed_ips: Option<Vec<Spanned<String>>>,
}

impl RawTrunk {
    pub fn name(&self) -> String {
        self.name.get_ref().trim().to_owned()
    }
}

/// A validated trunk: its dial plan part and its connection part.
pub(crate) struct Built {
    pub trunk: Trunk,
    pub config: TrunkConfig,
}

pub(crate) fn build(
    items: Vec<Item<RawTrunk>>,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<Built> {
    let mut unique = Unique::new("trunk");
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let errors_before = diag.error_count();
        let built = one(item.file, item.value, &mut unique, anchors, diag);
        if diag.error_count() == errors_before {
            out.extend(built);
        }
    }
    out
}

fn one(
    file: FileId,
    raw: RawTrunk,
    unique: &mut Unique,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Option<Built> {
    let name = raw.name();
    let name_at = at(file, &raw.name);
    if !is_name(&name) {
        diag.at(
            &name_at,
            "trunk `name` must be 1 to 64 printable characters on one line",
        );
    } else {
        unique.insert(&name, &name_at, diag);
    }
    anchors.add("trunk", &name, format!("trunk {name}"), name_at);

    let endpoint = parse_host(raw.host.get_ref().trim());
    if endpoint.is_none() {
        diag.at(
            &at(file, &raw.host),
            format!(
                "trunk `{name}`: `host` `{}` must be host[:port]: a DNS name or IP address (IPv6 in brackets), port 1-65535 (default 5060)",
                raw.host.get_ref()
            ),
        );
    }
    let transport = match &raw.transport {
        None => Some(TransportKind::Udp),
        Some(t) => match t.get_ref().trim().to_ascii_lowercase().as_str() {
            "udp" => Some(TransportKind::Udp),
            "tcp" => Some(TransportKind::Tcp),
            other => {
                diag.at(
                    &at(file, t),
                    format!("trunk `{name}`: `transport` `{other}` must be \"udp\" or \"tcp\""),
                );
                None
            }
        },
    };

    let text = |key: &str, v: &Option<Spanned<String>>, diag: &mut Diag| {
        let v = v.as_ref()?;
        let s = v.get_ref();
        if s.is_empty() || s.chars().any(char::is_control) || s.len() > 128 {
            diag.at(
                &at(file, v),
                format!("trunk `{name}`: `{key}` must be 1 to 128 characters on one line"),
            );
        }
        Some(s.clone())
    };
    let username = text("username", &raw.username, diag);
    let auth_username = text("auth_username", &raw.auth_username, diag);
    let password = text("password", &raw.password, diag);
    let domain = text("domain", &raw.domain, diag).map(|d| d.trim().to_owned());

    let register = raw.register.as_ref().is_some_and(|r| *r.get_ref());
    if let Some(r) = raw.register.as_ref().filter(|r| *r.get_ref()) {
        let missing: Vec<&str> = [("username", &username), ("password", &password)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            diag.at(
                &at(file, r),
                format!(
                    "trunk `{name}`: `register = true` needs {} (as the provider gave them)",
                    missing.join(" and ")
                ),
            );
        }
    }
    let expires = match &raw.expires {
        None => Some(DEFAULT_EXPIRES),
        Some(e) => int_in(
            e,
            60..=86400,
            &format!("trunk `{name}`: `expires`"),
            file,
            diag,
        ),
    };
    let max_calls = match &raw.max_calls {
        None => Some(0),
        Some(m) => int_in(
            m,
            0..=100_000,
            &format!("trunk `{name}`: `max_calls`"),
            file,
            diag,
        ),
    };

    let mut dids = Vec::new();
    for d in raw.dids.iter().flatten() {
        let s = d.get_ref().trim();
        if is_external_number(s) {
            dids.push(s.to_owned());
        } else {
            diag.at(
                &at(file, d),
                format!("trunk `{name}`: DID `{s}` must be digits with an optional leading +"),
            );
        }
    }
    let main_number = match &raw.main_number {
        Some(m) => {
            let s = m.get_ref().trim();
            if !is_external_number(s) {
                diag.at(
                    &at(file, m),
                    format!("trunk `{name}`: `main_number` `{s}` must be digits with an optional leading +"),
                );
            }
            s.to_owned()
        }
        None => dids.first().cloned().unwrap_or_default(),
    };
    let presentation = match &raw.caller_id {
        None => Some(Presentation::Extension),
        Some(c) => {
            let p = match c.get_ref().trim() {
                "extension" => Some(Presentation::Extension),
                "main_number" => Some(Presentation::MainNumber),
                "anonymous" => Some(Presentation::Anonymous),
                other => {
                    diag.at(
                        &at(file, c),
                        format!("trunk `{name}`: `caller_id` `{other}` must be \"extension\", \"main_number\" or \"anonymous\""),
                    );
                    None
                }
            };
            if p.is_some_and(|p| p != Presentation::Extension) && main_number.is_empty() {
                diag.at(
                    &at(file, c),
                    format!(
                        "trunk `{name}`: `caller_id` `{}` needs `main_number` (or a DID in `dids`)",
                        c.get_ref().trim()
                    ),
                );
            }
            p
        }
    };

    let mut codecs = Vec::new();
    for c in raw.codecs.iter().flatten() {
        let s = c.get_ref().trim();
        let token = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if token {
            codecs.push(s.to_owned());
        } else {
            diag.at(
                &at(file, c),
                format!("trunk `{name}`: codec `{s}` must be a codec name like \"PCMA\", \"G722\" or \"opus\""),
            );
        }
    }
    let mut allowed_ips = Vec::new();
    for a in raw.allowed_ips.iter().flatten() {
        match a.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) => allowed_ips.push(ip),
            Err(_) => diag.at(
                &at(file, a),
                format!(
                    "trunk `{name}`: `allowed_ips` entry `{}` must be an IPv4 or IPv6 address",
                    a.get_ref()
                ),
            ),
        }
    }

    let (host, port) = endpoint?;
    let domain = domain.unwrap_or_else(|| match port {
        DEFAULT_SIP_PORT => host.clone(),
        _ if host.contains(':') => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    });
    Some(Built {
        trunk: Trunk {
            name: name.clone(),
            main_number,
            dids,
            max_calls: max_calls?,
            presentation: presentation?,
            codecs,
        },
        config: TrunkConfig {
            name,
            host,
            port,
            transport: transport?,
            domain,
            username,
            auth_username,
            password,
            register,
            expires: expires?,
            allowed_ips,
        },
    })
}

/// `host[:port]`: a DNS name, an IPv4 address or an IPv6 address (in
/// brackets when a port follows). The host comes back without brackets.
fn parse_host(s: &str) -> Option<(String, u16)> {
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Some((ip.to_string(), DEFAULT_SIP_PORT));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if !is_hostname(host) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => DEFAULT_SIP_PORT,
        // `u16::from_str` takes a leading `+`; a port is digits only.
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return None,
        },
    };
    Some((host, port))
}

/// A DNS name or dotted IPv4 address: labels of letters, digits and
/// hyphens, not starting or ending with a hyphen.
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_with_and_without_port() {
        let ok = |s: &str| parse_host(s).unwrap();
        assert_eq!(
            ok("sip.provider.example"),
            ("sip.provider.example".into(), 5060)
        );
        assert_eq!(
            ok("SIP.Provider.example:5080"),
            ("sip.provider.example".into(), 5080)
        );
        assert_eq!(ok("203.0.113.5:5061"), ("203.0.113.5".into(), 5061));
        assert_eq!(ok("[2001:db8::1]:5070"), ("2001:db8::1".into(), 5070));
        assert_eq!(ok("[2001:db8::1]"), ("2001:db8::1".into(), 5060));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), 5060));
        for bad in [
            "",
            ":5060",
            "host:",
            "host:0",
            "host:65536",
            "host:+5",
            "ho st",
            "-host.example",
            "host..example",
            "sip:host.example",
            "[2001:db8::1]5060",
            "[nothost]:5060",
            "host:5060:5060",
        ] {
            assert!(parse_host(bad).is_none(), "{bad:?} accepted");
        }
    }

    fn trunks(text: &str) -> Vec<TrunkConfig> {
        let dir = tempfile::tempdir().unwrap();
        let sip = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"pbx.test\"\n\
                   [[outbound_rule]]\ntrunks = [\"a\"]\n";
        std::fs::write(dir.path().join("a.toml"), format!("{sip}{text}")).unwrap();
        crate::config::load(dir.path()).unwrap().trunks
    }

    #[test]
    fn domain_defaults_to_the_host_and_its_port() {
        let t = trunks(
            "[[trunk]]\nname = \"a\"\nhost = \"sip.example:5080\"\ntransport = \"TCP\"\n\
             [[trunk]]\nname = \"b\"\nhost = \"[2001:db8::1]:5090\"\n\
             [[trunk]]\nname = \"c\"\nhost = \"sip.example\"\ndomain = \"voip.example\"\n\
             auth_username = \"auth-1\"\nusername = \"u\"\nexpires = 600\n",
        );
        assert_eq!(
            (t[0].port, t[0].domain.as_str()),
            (5080, "sip.example:5080")
        );
        assert_eq!(t[0].transport, TransportKind::Tcp);
        assert_eq!(
            (t[1].host.as_str(), t[1].domain.as_str()),
            ("2001:db8::1", "[2001:db8::1]:5090")
        );
        assert_eq!(t[2].domain, "voip.example");
        assert_eq!(t[2].auth_username.as_deref(), Some("auth-1"));
        assert_eq!((t[2].expires, t[2].register), (600, false));
    }
}
