//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms as
//! RFC 8760 brings them to SIP): MD5 and SHA-256 with `qop=auth`, plus the
//! RFC 2069 form without qop that old phones still send with MD5.
//!
//! Nonces carry their issue time and a MAC keyed by a server secret, so any
//! nonce can be validated without a table. The only state kept is the highest
//! nonce-count seen per nonce (replay protection), bounded in size.
//!
//! Sans-IO: wall-clock time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Default lifetime of a nonce.
pub const DEFAULT_NONCE_TTL: Duration = Duration::from_secs(300);
/// Default number of nonces whose nonce-count is remembered.
pub const DEFAULT_REPLAY_CAPACITY: usize = 50_000;
/// How far in the future a nonce timestamp may be (clock steps backwards).
const FUTURE_SKEW_SECS: u64 = 5;
const SALT_LEN: usize = 8;
const MAC_LEN: usize = 16;
/// Hex length of a nonce: timestamp (8 bytes), salt, truncated MAC.
const NONCE_HEX_LEN: usize = 2 * (8 + SALT_LEN + MAC_LEN);

/// A digest algorithm we offer and accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    /// Parses an `algorithm` token (case-insensitive). `-sess` variants are not offered.
    pub fn from_token(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of the parts joined by `:`.
    fn hex_of(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> String {
            let mut h = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update(b":");
                }
                h.update(p);
            }
            hex(&h.finalize())
        }
        match self {
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Md5 => run::<Md5>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request's credentials were refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials in the request (for callers; `verify` never returns it).
    #[error("no credentials")]
    Missing,
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    #[error("authentication scheme is not Digest")]
    UnknownScheme,
    #[error("credentials are for another realm")]
    WrongRealm,
    #[error("digest algorithm not offered")]
    UnsupportedAlgorithm,
    #[error("qop not supported")]
    UnsupportedQop,
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// Right password, but the nonce expired or was not issued by this server.
    #[error("nonce has expired or is unknown")]
    Stale,
    #[error("wrong credentials")]
    BadResponse,
    #[error("nonce-count replayed")]
    Replay,
}

impl AuthError {
    /// The failures a client fixes by retrying with a fresh nonce, without
    /// asking its user: answer them with `stale=true`.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::Stale | AuthError::Replay)
    }
}

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthOk {
    pub user: String,
    pub algorithm: Algorithm,
}

/// The parameters of an `Authorization`/`Proxy-Authorization` Digest value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses `Digest username="..", realm="..", ...`.
    pub fn parse(value: &[u8]) -> Result<Credentials, AuthError> {
        let params = parse_digest_params(value)?;
        let mut c = Credentials::default();
        let mut have = [false; 5];
        for (name, v) in params {
            let slot = match param_key(name) {
                "username" => {
                    have[0] = true;
                    &mut c.username
                }
                "realm" => {
                    have[1] = true;
                    &mut c.realm
                }
                "nonce" => {
                    have[2] = true;
                    &mut c.nonce
                }
                "uri" => {
                    have[3] = true;
                    &mut c.uri
                }
                "response" => {
                    have[4] = true;
                    &mut c.response
                }
                "algorithm" => {
                    c.algorithm = Some(v);
                    continue;
                }
                "cnonce" => {
                    c.cnonce = Some(v);
                    continue;
                }
                "qop" => {
                    c.qop = Some(v);
                    continue;
                }
                "nc" => {
                    c.nc = Some(v);
                    continue;
                }
                "opaque" => {
                    c.opaque = Some(v);
                    continue;
                }
                _ => continue,
            };
            *slot = v;
        }
        const NAMES: [&str; 5] = [
            "missing username",
            "missing realm",
            "missing nonce",
            "missing uri",
            "missing response",
        ];
        if let Some(i) = have.iter().position(|h| !h) {
            return Err(AuthError::Malformed(NAMES[i]));
        }
        Ok(c)
    }
}

/// A parsed `WWW-Authenticate`/`Proxy-Authenticate` Digest challenge, for
/// the client side (registering to trunks, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(value: &[u8]) -> Result<Challenge, AuthError> {
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop_auth = false;
        let mut opaque = None;
        let mut stale = false;
        for (name, v) in parse_digest_params(value)? {
            match param_key(name) {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "algorithm" => {
                    algorithm = Algorithm::from_token(&v).ok_or(AuthError::UnsupportedAlgorithm)?
                }
                "qop" => qop_auth = v.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
                "opaque" => opaque = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(AuthError::Malformed("missing realm"))?,
            nonce: nonce.ok_or(AuthError::Malformed("missing nonce"))?,
            algorithm,
            qop_auth,
            opaque,
            stale,
        })
    }

    /// The `Authorization` value answering this challenge. `cnonce` and `nc`
    /// are used only when the server offered `qop=auth`.
    pub fn authorization(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let nc = format!("{nc:08x}");
        let qop = self.qop_auth.then_some((nc.as_str(), cnonce));
        let response = digest_response(
            self.algorithm,
            username,
            &self.realm,
            password,
            method,
            uri,
            &self.nonce,
            qop,
        );
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
            quote(username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(uri),
            self.algorithm
        );
        if let Some((nc, cnonce)) = qop {
            out.push_str(&format!(", cnonce={}, qop=auth, nc={nc}", quote(cnonce)));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque={}", quote(o)));
        }
        out
    }
}

/// The request-digest of RFC 7616 §3.4.1 (and RFC 2069 when `qop` is None):
/// `qop` is `(nc, cnonce)` for `qop=auth`.
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = alg.hex_of(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let ha2 = alg.hex_of(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce)) => alg.hex_of(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]),
        None => alg.hex_of(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// The server side: issues challenges and verifies credentials for one realm.
pub struct DigestAuth {
    realm: String,
    /// The nonce MAC's key, with its pads already hashed.
    mac: MacKey,
    nonce_ttl: Duration,
    algorithms: Vec<Algorithm>,
    /// Checked for unknown users so that they cost the same work and fail
    /// the same way as a wrong password.
    dummy_password: String,
    replay: Mutex<ReplayState>,
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuth")
            .field("realm", &self.realm)
            .field("nonce_ttl", &self.nonce_ttl)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

struct ReplayState {
    /// nonce -> (issue time, highest nonce-count accepted; 0 for a use without qop).
    seen: HashMap<String, (u64, u32)>,
    capacity: usize,
    /// Nonces issued at or before this time whose entry was evicted: they are
    /// treated as stale since their history is lost.
    floor: u64,
    last_purge: u64,
}

impl DigestAuth {
    pub fn new(realm: &str, secret: [u8; 32], nonce_ttl: Duration) -> Self {
        let dummy_password = hex(&hmac_sha256(&secret, &[b"unknown-user-password"])[..16]);
        DigestAuth {
            realm: realm.to_string(),
            mac: MacKey::new(&secret),
            nonce_ttl,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            dummy_password,
            replay: Mutex::new(ReplayState {
                seen: HashMap::new(),
                capacity: DEFAULT_REPLAY_CAPACITY,
                floor: 0,
                last_purge: 0,
            }),
        }
    }

    /// With a random secret and the default nonce lifetime.
    pub fn with_random_secret(realm: &str) -> Self {
        DigestAuth::new(realm, rand::random(), DEFAULT_NONCE_TTL)
    }

    /// The algorithms offered, in order of preference (default SHA-256, MD5).
    /// An empty list is ignored.
    pub fn set_algorithms(&mut self, algorithms: &[Algorithm]) {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
    }

    /// How many nonces' counts are remembered (at least 16).
    pub fn set_replay_capacity(&mut self, capacity: usize) {
        self.replay_state().capacity = capacity.max(16);
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Header values for `WWW-Authenticate` (or `Proxy-Authenticate`): one per
    /// algorithm, in order of preference, all with the same fresh nonce.
    pub fn challenge(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let nonce = self.make_nonce(unix_secs(now), rand::random());
        let realm = quote(&self.realm);
        self.algorithms
            .iter()
            .map(|alg| {
                // Built by hand: `format!` costs several times as much here.
                let mut v = String::with_capacity(realm.len() + nonce.len() + 70);
                v.push_str("Digest realm=");
                v.push_str(&realm);
                v.push_str(", nonce=\"");
                v.push_str(&nonce);
                v.push_str("\", algorithm=");
                v.push_str(alg.as_str());
                v.push_str(", qop=\"auth\"");
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Checks an `Authorization`/`Proxy-Authorization` value against the
    /// request's method and Request-URI and the password of the user it names
    /// (`password_of` returns None for an unknown user).
    pub fn verify(
        &self,
        now: SystemTime,
        method: &str,
        request_uri: &[u8],
        header_value: &[u8],
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<AuthOk, AuthError> {
        let creds = Credentials::parse(header_value)?;
        self.verify_credentials(now, method, request_uri, &creds, password_of)
    }

    /// [`DigestAuth::verify`] on already parsed credentials.
    pub fn verify_credentials(
        &self,
        now: SystemTime,
        method: &str,
        request_uri: &[u8],
        c: &Credentials,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<AuthOk, AuthError> {
        if c.realm != self.realm {
            return Err(AuthError::WrongRealm);
        }
        let algorithm = match &c.algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a).ok_or(AuthError::UnsupportedAlgorithm)?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let qop = match c.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = c.nc.as_deref().ok_or(AuthError::Malformed("missing nc"))?;
                let cnonce = c
                    .cnonce
                    .as_deref()
                    .ok_or(AuthError::Malformed("missing cnonce"))?;
                Some((nc, cnonce))
            }
            Some(_) => return Err(AuthError::UnsupportedQop),
            // RFC 2069 style: only the MD5 of old phones.
            None if algorithm == Algorithm::Md5 => None,
            None => return Err(AuthError::Malformed("missing qop")),
        };
        let nc = match qop {
            Some((nc, _)) => match parse_nc(nc) {
                Some(n) if n > 0 => n,
                _ => return Err(AuthError::Malformed("bad nc")),
            },
            None => 0,
        };
        if !uri_matches(&c.uri, request_uri) {
            return Err(AuthError::UriMismatch);
        }
        let now_s = unix_secs(now);
        // A nonce we did not issue (e.g. from before a restart, with another
        // secret) is treated like an expired one: a client that proves it
        // knows the password retries with a fresh nonce without asking its user.
        let issued = self
            .check_nonce(&c.nonce)
            .filter(|&ts| ts <= now_s + FUTURE_SKEW_SECS);

        // Unknown user: same work against a password nobody knows, same error.
        let known = password_of(&c.username);
        let password = known.as_deref().unwrap_or(&self.dummy_password);
        let expected = digest_response(
            algorithm,
            &c.username,
            &c.realm,
            password,
            method,
            &c.uri,
            &c.nonce,
            qop,
        );
        let matches = ct_eq_hex(expected.as_bytes(), c.response.as_bytes());
        if !matches || known.is_none() {
            return Err(AuthError::BadResponse);
        }
        let issued = match issued {
            Some(ts) if now_s <= ts.saturating_add(self.nonce_ttl.as_secs()) => ts,
            _ => return Err(AuthError::Stale),
        };
        self.record_nc(now_s, &c.nonce, issued, nc)?;
        Ok(AuthOk {
            user: c.username.clone(),
            algorithm,
        })
    }

    fn replay_state(&self) -> std::sync::MutexGuard<'_, ReplayState> {
        // The state stays consistent even if a holder panicked.
        self.replay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a nonce-count not above the highest accepted for this nonce.
    fn record_nc(&self, now: u64, nonce: &str, issued: u64, nc: u32) -> Result<(), AuthError> {
        let ttl = self.nonce_ttl.as_secs();
        let mut st = self.replay_state();
        if now >= st.last_purge.saturating_add(ttl) {
            st.seen.retain(|_, (ts, _)| ts.saturating_add(ttl) >= now);
            st.last_purge = now;
        }
        if let Some((_, last)) = st.seen.get_mut(nonce) {
            if nc <= *last {
                return Err(AuthError::Replay);
            }
            *last = nc;
            return Ok(());
        }
        if issued <= st.floor {
            return Err(AuthError::Stale);
        }
        if st.seen.len() >= st.capacity {
            st.seen.retain(|_, (ts, _)| ts.saturating_add(ttl) >= now);
            if st.seen.len() >= st.capacity {
                evict_oldest(&mut st);
                if issued <= st.floor {
                    return Err(AuthError::Stale);
                }
            }
        }
        st.seen.insert(nonce.to_string(), (issued, nc));
        Ok(())
    }

    fn make_nonce(&self, ts: u64, salt: [u8; SALT_LEN]) -> String {
        let ts_b = ts.to_be_bytes();
        let mac = self.mac.mac(&[&ts_b, &salt, self.realm.as_bytes()]);
        let mut out = String::with_capacity(NONCE_HEX_LEN);
        push_hex(&mut out, &ts_b);
        push_hex(&mut out, &salt);
        push_hex(&mut out, &mac[..MAC_LEN]);
        out
    }

    /// The issue time of a nonce this server made, or None.
    fn check_nonce(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_HEX_LEN {
            return None;
        }
        let mut raw = [0u8; NONCE_HEX_LEN / 2];
        unhex_into(nonce, &mut raw)?;
        let (ts_b, rest) = raw.split_at(8);
        let (salt, mac) = rest.split_at(SALT_LEN);
        let expected = self.mac.mac(&[ts_b, salt, self.realm.as_bytes()]);
        if !ct_eq(&expected[..MAC_LEN], mac) {
            return None;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(ts_b);
        Some(u64::from_be_bytes(t))
    }
}

/// Drops the oldest eighth of the entries and raises the floor past them.
fn evict_oldest(st: &mut ReplayState) {
    let mut times: Vec<u64> = st.seen.values().map(|(ts, _)| *ts).collect();
    if times.is_empty() {
        return;
    }
    let k = (times.len() / 8).min(times.len() - 1);
    let (_, threshold, _) = times.select_nth_unstable(k);
    let threshold = *threshold;
    st.seen.retain(|_, (ts, _)| *ts > threshold);
    st.floor = st.floor.max(threshold);
}

/// The digest `uri` must be the Request-URI; only the scheme's case may differ.
/// The digest `uri` must name the request's target (RFC 7616 §3.4.6). Some
/// UAs (SIPp among them) put the server's address without the user part,
/// so the same host and port with no user also counts, as in Kamailio.
fn uri_matches(digest_uri: &str, request_uri: &[u8]) -> bool {
    let d = digest_uri.as_bytes();
    let exact = match (
        d.iter().position(|&c| c == b':'),
        request_uri.iter().position(|&c| c == b':'),
    ) {
        (Some(i), Some(j)) => {
            d[..i].eq_ignore_ascii_case(&request_uri[..j]) && d[i..] == request_uri[j..]
        }
        _ => d == request_uri,
    };
    if exact {
        return true;
    }
    let (Ok(du), Ok(ru)) = (
        sip::Uri::parse(&bytes::Bytes::copy_from_slice(d)),
        sip::Uri::parse(&bytes::Bytes::copy_from_slice(request_uri)),
    ) else {
        return false;
    };
    du.is_sip()
        && du.host.eq_ignore_ascii_case(&ru.host)
        && du.port == ru.port
        && (du.user.is_none() || du.user == ru.user)
}

fn parse_nc(s: &str) -> Option<u32> {
    if s.len() != 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    MacKey::new(key).mac(parts)
}

/// HMAC-SHA-256 with a fixed key: the padded key blocks are hashed once, so
/// each MAC costs the message's blocks and one more, not two more.
#[derive(Clone)]
struct MacKey {
    inner: Sha256,
    outer: Sha256,
}

impl MacKey {
    fn new(key: &[u8; 32]) -> Self {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        MacKey { inner, outer }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for p in parts {
            // Length-prefix each part so that part boundaries cannot shift.
            inner.update((p.len() as u64).to_be_bytes());
            inner.update(p);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Constant-time comparison of our lower-case hex with the client's (any case).
fn ct_eq_hex(ours: &[u8], theirs: &[u8]) -> bool {
    if ours.len() != theirs.len() {
        return false;
    }
    ours.iter()
        .zip(theirs)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()))
        == 0
}

pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    push_hex(&mut s, b);
    s
}

fn push_hex(s: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &c in b {
        s.push(DIGITS[(c >> 4) as usize] as char);
        s.push(DIGITS[(c & 15) as usize] as char);
    }
}

/// Decodes hex (either case) into `out`, which must be exactly half as long.
fn unhex_into(s: &str, out: &mut [u8]) -> Option<()> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() != out.len() * 2 {
        return None;
    }
    for (o, p) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = val(p[0])? << 4 | val(p[1])?;
    }
    Some(())
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The lower-case spelling of a digest parameter name we read, or "" for
/// any other (names are case-insensitive; no allocation per parameter).
fn param_key(name: &str) -> &'static str {
    const KNOWN: [&str; 11] = [
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "qop",
        "nc",
        "opaque",
        "stale",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("")
}

/// Splits `Digest a=b, c="d"` into its parameters (quoted values unescaped).
fn parse_digest_params(value: &[u8]) -> Result<Vec<(&str, String)>, AuthError> {
    let v = std::str::from_utf8(value).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let v = v.trim_start();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnknownScheme);
    }
    let b = v.as_bytes();
    // Ten parameters at most in practice: one allocation for the list.
    let mut out: Vec<(&str, String)> = Vec::with_capacity(10);
    let mut i = scheme_end;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && sip::parse::is_token(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(AuthError::Malformed("bad parameter name"));
        }
        let name = &v[start..i];
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return Err(AuthError::Malformed("parameter without value"));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let start = i;
            // Most quoted strings have no escapes: slice them whole.
            while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                i += 1;
            }
            let mut val = String::from(&v[start..i]);
            loop {
                match b.get(i) {
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *b
                            .get(i + 1)
                            .ok_or(AuthError::Malformed("unterminated quoted string"))?;
                        if c.is_ascii() {
                            val.push(char::from(c));
                            i += 2;
                        } else {
                            // An escaped multi-byte character: `i + 1` follows
                            // an ASCII backslash, so it starts a character.
                            let ch = v[i + 1..].chars().next().unwrap_or('\u{fffd}');
                            val.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                    }
                    Some(_) => {
                        let s = i;
                        while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                            i += 1;
                        }
                        val.push_str(&v[s..i]);
                    }
                }
            }
            val
        } else {
            let s = i;
            while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            v[s..i].to_string()
        };
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(AuthError::Malformed("duplicate parameter"));
        }
        out.push((name, value));
        skip_ws(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return Err(AuthError::Malformed("expected comma")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "pbx.example.com";
    const RURI: &str = "sip:pbx.example.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn auth() -> DigestAuth {
        DigestAuth::new(REALM, [7; 32], DEFAULT_NONCE_TTL)
    }

    fn passwords(user: &str) -> Option<String> {
        (user == "101").then(|| "s3cret-Pass".to_string())
    }

    /// A client answer to the first (or `idx`-th) challenge issued at `t`.
    fn answer(
        a: &DigestAuth,
        t: u64,
        idx: usize,
        user: &str,
        pw: &str,
        nc: u32,
    ) -> (String, Challenge) {
        let ch = Challenge::parse(a.challenge(at(t), false)[idx].as_bytes()).unwrap();
        (
            ch.authorization("REGISTER", RURI, user, pw, "0a4f113b", nc),
            ch,
        )
    }

    #[test]
    fn rfc2617_md5_vector() {
        let r = digest_response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_vectors() {
        let args = (
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        let sha = digest_response(
            Algorithm::Sha256,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(
            sha,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = digest_response(
            Algorithm::Md5,
            args.0,
            args.1,
            args.2,
            args.3,
            args.4,
            args.5,
            args.6,
        );
        assert_eq!(md5, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn parses_rfc2617_authorization() {
        let v = br#"Digest username="Mufasa",
            realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b",
            response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(
            Credentials::parse(b"Basic QWxhZGRpbjpvcGVu"),
            Err(AuthError::UnknownScheme)
        );
        assert!(matches!(
            Credentials::parse(br#"Digest username="a", realm="b"#),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            Credentials::parse(br#"Digest username="a", username="b""#),
            Err(AuthError::Malformed(_))
        ));
        let esc = Credentials::parse(
            br#"Digest username="a\"b", realm="r", nonce="n", uri="u", response="x""#,
        )
        .unwrap();
        assert_eq!(esc.username, "a\"b");
    }

    #[test]
    fn digest_names_ignore_case_and_escapes_are_undone() {
        let c = Credentials::parse(
            "Digest USERNAME=\"x\\\\y\\z\\é\", Realm=\"r\", NONCE=n, Uri=\"u\", RESPONSE=\"\", Foo=\"bar\""
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.username, "x\\yzé");
        assert_eq!((c.realm.as_str(), c.nonce.as_str()), ("r", "n"));
        assert_eq!((c.uri.as_str(), c.response.as_str()), ("u", ""));
        // Names are compared without case, so these are duplicates.
        assert_eq!(
            Credentials::parse(br#"Digest nonce="a", Nonce="b""#),
            Err(AuthError::Malformed("duplicate parameter"))
        );
    }

    #[test]
    fn the_keyed_mac_is_hmac_sha256() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, &[]);
        // With no parts the MAC is HMAC(key, ""): the textbook two passes.
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let inner = Sha256::new().chain_update(ipad).finalize();
        let outer: [u8; 32] = Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize()
            .into();
        assert_eq!(mac, outer);
        let once = MacKey::new(&key);
        assert_eq!(once.mac(&[b"a", b"bc"]), once.mac(&[b"a", b"bc"]));
        assert_ne!(once.mac(&[b"a", b"bc"]), once.mac(&[b"ab", b"c"]));
    }

    #[test]
    fn challenge_offers_sha256_then_md5_with_one_nonce() {
        let a = auth();
        let ch = a.challenge(at(1_000), false);
        assert_eq!(ch.len(), 2);
        let c0 = Challenge::parse(ch[0].as_bytes()).unwrap();
        let c1 = Challenge::parse(ch[1].as_bytes()).unwrap();
        assert_eq!(c0.algorithm, Algorithm::Sha256);
        assert_eq!(c1.algorithm, Algorithm::Md5);
        assert_eq!(c0.nonce, c1.nonce);
        assert_eq!(c0.realm, REALM);
        assert!(c0.qop_auth && !c0.stale);
        let stale = a.challenge(at(1_000), true);
        assert!(Challenge::parse(stale[0].as_bytes()).unwrap().stale);
        // Fresh nonce per challenge.
        assert_ne!(
            Challenge::parse(a.challenge(at(1_000), false)[0].as_bytes())
                .unwrap()
                .nonce,
            c0.nonce
        );
    }

    #[test]
    fn verifies_both_algorithms() {
        let a = auth();
        for idx in 0..2 {
            let (h, ch) = answer(&a, 1_000, idx, "101", "s3cret-Pass", 1);
            let ok = a
                .verify(
                    at(1_010),
                    "REGISTER",
                    RURI.as_bytes(),
                    h.as_bytes(),
                    passwords,
                )
                .unwrap();
            assert_eq!(ok.user, "101");
            assert_eq!(ok.algorithm, ch.algorithm);
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike() {
        let a = auth();
        let (bad_pw, _) = answer(&a, 1_000, 0, "101", "guess", 1);
        let (unknown, _) = answer(&a, 1_000, 0, "999", "guess", 1);
        let looked_up = std::cell::Cell::new(0);
        let lookup = |u: &str| {
            looked_up.set(looked_up.get() + 1);
            passwords(u)
        };
        let e1 = a.verify(
            at(1_001),
            "REGISTER",
            RURI.as_bytes(),
            bad_pw.as_bytes(),
            lookup,
        );
        let e2 = a.verify(
            at(1_001),
            "REGISTER",
            RURI.as_bytes(),
            unknown.as_bytes(),
            lookup,
        );
        assert_eq!(e1, Err(AuthError::BadResponse));
        assert_eq!(e2, Err(AuthError::BadResponse));
        assert_eq!(looked_up.get(), 2);
        // Even the dummy password does not let an unknown user in.
        let (dummy, _) = answer(&a, 1_000, 0, "999", &a.dummy_password, 1);
        assert_eq!(
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                dummy.as_bytes(),
                passwords
            ),
            Err(AuthError::BadResponse)
        );
    }

    #[test]
    fn wrong_method_uri_realm_nonce() {
        let a = auth();
        let (h, _) = answer(&a, 1_000, 0, "101", "s3cret-Pass", 1);
        assert_eq!(
            a.verify(
                at(1_001),
                "INVITE",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::BadResponse)
        );
        assert_eq!(
            a.verify(
                at(1_001),
                "REGISTER",
                b"sip:other.example.com",
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::UriMismatch)
        );
        // Scheme case is the only leniency.
        assert!(a
            .verify(
                at(1_001),
                "REGISTER",
                b"SIP:pbx.example.com",
                h.as_bytes(),
                passwords
            )
            .is_ok());
        let other = DigestAuth::new("other.example.com", [7; 32], DEFAULT_NONCE_TTL);
        assert_eq!(
            other.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::WrongRealm)
        );
        // A nonce from a server with another secret (before a restart):
        // stale with the right password, refused with a wrong one.
        let foreign = DigestAuth::new(REALM, [8; 32], DEFAULT_NONCE_TTL);
        assert_eq!(
            foreign.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::Stale)
        );
        let (bad, _) = answer(&a, 1_000, 0, "101", "nope", 1);
        assert_eq!(
            foreign.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                bad.as_bytes(),
                passwords
            ),
            Err(AuthError::BadResponse)
        );
        // A nonce issued in the future (forged time) is not accepted.
        let (later, _) = answer(&a, 2_000, 0, "101", "s3cret-Pass", 1);
        assert_eq!(
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                later.as_bytes(),
                passwords
            ),
            Err(AuthError::Stale)
        );
        // A tampered timestamp.
        let mut ch = Challenge::parse(a.challenge(at(1_000), false)[0].as_bytes()).unwrap();
        ch.nonce
            .replace_range(15..16, if &ch.nonce[15..16] == "9" { "8" } else { "9" });
        let h = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "c", 1);
        assert_eq!(
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn stale_nonce_only_with_right_password() {
        let a = auth();
        let (h, _) = answer(&a, 1_000, 0, "101", "s3cret-Pass", 1);
        assert_eq!(
            a.verify(
                at(1_301),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::Stale)
        );
        let (bad, _) = answer(&a, 1_000, 0, "101", "nope", 1);
        assert_eq!(
            a.verify(
                at(1_301),
                "REGISTER",
                RURI.as_bytes(),
                bad.as_bytes(),
                passwords
            ),
            Err(AuthError::BadResponse)
        );
        // Nonce lifetime edge: still fresh at exactly ttl.
        assert!(a
            .verify(
                at(1_300),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            )
            .is_ok());
    }

    #[test]
    fn nonce_count_replay_refused() {
        let a = auth();
        let ch = Challenge::parse(a.challenge(at(1_000), false)[0].as_bytes()).unwrap();
        let h1 = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "cn", 1);
        let h2 = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "cn", 2);
        let h5 = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "cn", 5);
        let v = |h: &str| {
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords,
            )
        };
        assert!(v(&h1).is_ok());
        assert_eq!(v(&h1), Err(AuthError::Replay));
        assert!(v(&h5).is_ok());
        assert_eq!(v(&h2), Err(AuthError::Replay));
        assert!(AuthError::Replay.is_stale());
    }

    #[test]
    fn rfc2069_md5_without_qop_is_single_use() {
        let a = auth();
        let mut ch = Challenge::parse(a.challenge(at(1_000), false)[1].as_bytes()).unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        ch.qop_auth = false;
        let h = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "", 0);
        assert!(!h.contains("qop"));
        let v = |h: &str| {
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords,
            )
        };
        assert!(v(&h).is_ok());
        assert_eq!(v(&h), Err(AuthError::Replay));
        // SHA-256 without qop is not a thing.
        let mut ch = Challenge::parse(a.challenge(at(1_000), false)[0].as_bytes()).unwrap();
        ch.qop_auth = false;
        let h = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "", 0);
        assert!(matches!(v(&h), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn algorithm_not_offered_is_refused() {
        let mut a = auth();
        a.set_algorithms(&[Algorithm::Sha256]);
        assert_eq!(a.challenge(at(1_000), false).len(), 1);
        let mut ch = Challenge::parse(a.challenge(at(1_000), false)[0].as_bytes()).unwrap();
        ch.algorithm = Algorithm::Md5;
        let h = ch.authorization("REGISTER", RURI, "101", "s3cret-Pass", "c", 1);
        assert_eq!(
            a.verify(
                at(1_001),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            ),
            Err(AuthError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn replay_memory_is_bounded_and_evicted_nonces_go_stale() {
        let mut a = auth();
        a.set_replay_capacity(16);
        let mut first = None;
        for i in 0..40u64 {
            let (h, _) = answer(&a, 1_000 + i, 0, "101", "s3cret-Pass", 1);
            assert!(a
                .verify(
                    at(1_000 + i),
                    "REGISTER",
                    RURI.as_bytes(),
                    h.as_bytes(),
                    passwords
                )
                .is_ok());
            first.get_or_insert(h);
            assert!(a.replay_state().seen.len() <= 16);
        }
        // The first nonce's history is gone: it must not be usable again.
        let first = first.unwrap();
        assert_eq!(
            a.verify(
                at(1_040),
                "REGISTER",
                RURI.as_bytes(),
                first.as_bytes(),
                passwords
            ),
            Err(AuthError::Stale)
        );
        // Expired entries are purged as time passes.
        let (h, _) = answer(&a, 5_000, 0, "101", "s3cret-Pass", 1);
        assert!(a
            .verify(
                at(5_000),
                "REGISTER",
                RURI.as_bytes(),
                h.as_bytes(),
                passwords
            )
            .is_ok());
        assert_eq!(a.replay_state().seen.len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let a = auth();
        for v in [
            &b""[..],
            b"Digest",
            b"Digest ,,,",
            b"Digest username",
            b"Digest username=\"unterminated",
            b"Digest username=\"a\\",
            b"\xff\xfe",
            b"Digest username=a realm=b",
            b"Digest username=\"a\", realm=\"pbx.example.com\", nonce=\"zz\", uri=\"sip:pbx.example.com\", response=\"00\"",
        ] {
            assert!(a.verify(at(1), "REGISTER", RURI.as_bytes(), v, passwords).is_err());
        }
    }
}
