//! Outbound registration of SIP trunks to their provider (RFC 3261 §10.2),
//! so that calls to the trunk's DIDs reach us.
//!
//! Sans-IO: the owner drives it with `now`, sends the REGISTER requests it
//! hands out in client transactions and reports each transaction's final
//! response or failure back under the request's [`RegRequestId`].
//!
//! Per trunk: one Call-ID for all its registrations and a CSeq that only
//! grows; digest challenges are answered once per nonce (a fresh challenge
//! right after our answer without `stale=true` means wrong credentials); the
//! last challenge is reused on refreshes with a counting nonce-count; a
//! failure is retried with exponential back-off.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use sip::{HeaderName, Message, Method, Peer, TransportKind, Uri};
use tracing::{debug, info, warn};

use crate::auth::Challenge;

/// Registration interval asked for when the config gives none.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// First retry delay after a failure; doubled per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest retry delay (before jitter).
const BACKOFF_CAP: Duration = Duration::from_secs(600);
/// Refresh at least this long before the binding expires...
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// ...but never sooner than this after a success (a registrar granting tiny
/// intervals must not make us spin).
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Consecutive `stale=true` challenges answered before giving up.
const MAX_STALE_RETRIES: u32 = 3;
/// Consecutive 423 responses followed before giving up.
const MAX_INTERVAL_RETRIES: u32 = 3;

/// One trunk's registration as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkRegConfig {
    pub name: String,
    /// Where the REGISTER goes: resolved address and transport.
    pub registrar: Peer,
    /// Host part of the AOR and Request-URI: the provider's host name as
    /// configured (may carry a `:port`).
    pub domain: String,
    pub username: String,
    /// The digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    pub password: String,
    /// The interval asked for, in seconds.
    pub expires: u32,
    /// The user part of our Contact: usually the username or main number.
    pub contact_user: String,
}

impl TrunkRegConfig {
    /// A config with the default interval, the Contact user being the username.
    pub fn new(name: &str, registrar: Peer, domain: &str, username: &str, password: &str) -> Self {
        TrunkRegConfig {
            name: name.to_string(),
            registrar,
            domain: domain.to_string(),
            username: username.to_string(),
            auth_username: None,
            password: password.to_string(),
            expires: DEFAULT_EXPIRES,
            contact_user: username.to_string(),
        }
    }
}

/// Where a trunk's registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrunkRegState {
    Idle,
    Registering,
    Registered {
        until: Instant,
    },
    Failed {
        /// The final response code, `None` for a timeout or transport error.
        code: Option<u16>,
        reason: String,
        retry_at: Instant,
    },
}

/// Names one REGISTER handed out by [`TrunkRegistrations::poll_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegRequestId(u64);

/// Whether a REGISTER carried credentials, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Plain,
    /// Reused from an earlier exchange: a challenge to it is answered.
    Cached,
    /// Answering the challenge just received: another challenge without
    /// `stale=true` means the credentials are wrong.
    Fresh,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    id: RegRequestId,
    expires: u32,
    sent: Sent,
}

/// The last challenge answered, kept to authorize refreshes up front.
#[derive(Clone, Debug)]
struct AuthCache {
    challenge: Challenge,
    /// Came in a 407: answer with Proxy-Authorization.
    proxy: bool,
    /// Nonce-count of the last request sent with this nonce.
    nc: u32,
}

struct Trunk {
    cfg: TrunkRegConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The interval asked for (raised by a 423).
    expires: u32,
    state: TrunkRegState,
    pending: Option<Pending>,
    /// When to send the next REGISTER (refresh or retry), if no request is pending.
    next_send: Option<Instant>,
    auth: Option<AuthCache>,
    /// Consecutive failures, for the back-off.
    failures: u32,
    stale_retries: u32,
    interval_retries: u32,
    /// Shutting down: the pending request removes the binding; no retries.
    unregistering: bool,
    /// Removed from the config: dropped once its binding is removed.
    retired: bool,
    /// Until when the registrar holds our binding, as far as we know.
    bound_until: Option<Instant>,
}

impl Trunk {
    fn new(cfg: TrunkRegConfig) -> Trunk {
        Trunk {
            expires: cfg.expires,
            cfg,
            call_id: random_hex(16),
            from_tag: random_hex(8),
            cseq: 0,
            state: TrunkRegState::Idle,
            pending: None,
            next_send: None,
            auth: None,
            failures: 0,
            stale_retries: 0,
            interval_retries: 0,
            unregistering: false,
            retired: false,
            bound_until: None,
        }
    }

    /// Whether the registrar may still hold a binding of ours.
    fn maybe_bound(&self, now: Instant) -> bool {
        self.pending.is_some_and(|p| p.expires > 0)
            || matches!(self.state, TrunkRegState::Registering)
            || self.bound_until.is_some_and(|u| u > now)
    }

    /// The same binding at the same registrar: only credentials or the
    /// interval differ, so the registration carries on in place.
    fn same_binding(&self, cfg: &TrunkRegConfig) -> bool {
        let c = &self.cfg;
        c.name == cfg.name
            && c.registrar == cfg.registrar
            && c.domain == cfg.domain
            && c.username == cfg.username
            && c.contact_user == cfg.contact_user
    }

    fn credentials(&self) -> Sent {
        if self.auth.is_some() {
            Sent::Cached
        } else {
            Sent::Plain
        }
    }
}

type LocalAddr = Box<dyn Fn(TransportKind) -> SocketAddr + Send + Sync>;

/// The registrations of every configured trunk.
pub struct TrunkRegistrations {
    trunks: Vec<Trunk>,
    /// `start` was called and `unregister_all` not since.
    started: bool,
    local: LocalAddr,
    user_agent: Option<String>,
    next_id: u64,
    out: VecDeque<(RegRequestId, Message, Peer)>,
}

impl std::fmt::Debug for TrunkRegistrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkRegistrations")
            .field("trunks", &self.states())
            .finish_non_exhaustive()
    }
}

impl TrunkRegistrations {
    /// `local` gives our advertised address for a transport (Via and Contact).
    pub fn new(
        trunks: Vec<TrunkRegConfig>,
        local: impl Fn(TransportKind) -> SocketAddr + Send + Sync + 'static,
    ) -> Self {
        TrunkRegistrations {
            trunks: trunks.into_iter().map(Trunk::new).collect(),
            started: false,
            local: Box::new(local),
            user_agent: None,
            next_id: 0,
            out: VecDeque::new(),
        }
    }

    /// The User-Agent header value for our requests.
    pub fn set_user_agent(&mut self, ua: &str) {
        self.user_agent = Some(ua.to_string());
    }

    /// Starts every registration now.
    pub fn start(&mut self, now: Instant) {
        self.started = true;
        for i in 0..self.trunks.len() {
            if !self.trunks[i].retired {
                self.start_one(now, i);
            }
        }
    }

    fn start_one(&mut self, now: Instant, i: usize) {
        let t = &mut self.trunks[i];
        t.unregistering = false;
        t.failures = 0;
        t.next_send = None;
        // A request in flight is superseded: its answer is ignored.
        t.pending = None;
        let sent = t.credentials();
        self.send(i, sent);
        let t = &mut self.trunks[i];
        if !matches!(t.state, TrunkRegState::Registered { until } if until > now) {
            set_state(t, TrunkRegState::Registering);
        }
    }

    /// Applies a new trunk list (config reload). Trunks whose binding is
    /// unchanged keep their registration, re-registering at once when their
    /// credentials or interval changed; removed trunks are unregistered, new
    /// ones registered (once started).
    pub fn reconfigure(&mut self, now: Instant, trunks: Vec<TrunkRegConfig>) {
        let mut fresh = trunks;
        for i in 0..self.trunks.len() {
            if self.trunks[i].retired {
                continue;
            }
            let pos = fresh.iter().position(|c| self.trunks[i].same_binding(c));
            match pos {
                Some(k) => {
                    let cfg = fresh.remove(k);
                    let t = &mut self.trunks[i];
                    if t.cfg != cfg {
                        info!(trunk = %cfg.name, "trunk registration settings changed");
                        t.expires = cfg.expires;
                        t.cfg = cfg;
                        t.auth = None;
                        if self.started && !t.unregistering {
                            self.start_one(now, i);
                        }
                    }
                }
                None => self.retire(now, i),
            }
        }
        for cfg in fresh {
            self.trunks.push(Trunk::new(cfg));
            if self.started {
                let i = self.trunks.len() - 1;
                self.start_one(now, i);
            }
        }
        self.prune();
    }

    /// Unregisters a trunk gone from the config.
    fn retire(&mut self, now: Instant, i: usize) {
        let t = &mut self.trunks[i];
        info!(trunk = %t.cfg.name, "trunk removed from the configuration");
        t.retired = true;
        if t.maybe_bound(now) && !t.unregistering {
            t.unregistering = true;
            t.next_send = None;
            t.pending = None;
            let sent = t.credentials();
            self.send(i, sent);
        } else if !t.unregistering {
            t.pending = None;
        }
    }

    /// Drops retired trunks with nothing left in flight.
    fn prune(&mut self) {
        self.trunks.retain(|t| !(t.retired && t.pending.is_none()));
    }

    /// The next REGISTER to send and where; the owner starts a client
    /// transaction for it and reports back under the returned id.
    pub fn poll_request(&mut self) -> Option<(RegRequestId, Message, Peer)> {
        self.out.pop_front()
    }

    /// A response to one of our requests. Provisional responses and
    /// responses to requests no longer waited for are ignored.
    pub fn on_response(&mut self, now: Instant, id: RegRequestId, msg: &Message) {
        let Some(code) = msg.status() else { return };
        if code < 200 {
            return;
        }
        let Some(i) = self.index_of(id) else {
            debug!(?id, code, "response to a REGISTER no longer pending");
            return;
        };
        let Some(p) = self.trunks[i].pending.take() else {
            return;
        };
        match code {
            200..=299 => self.on_success(now, i, p, msg),
            401 | 407 => self.on_challenge(now, i, p, code, msg),
            423 => self.on_interval_too_brief(now, i, p, msg),
            _ => {
                let reason = reason_of(msg);
                self.fail(now, i, Some(code), reason);
            }
        }
        self.prune();
    }

    /// Timeout or transport error of the request's transaction.
    pub fn on_failure(&mut self, now: Instant, id: RegRequestId) {
        let Some(i) = self.index_of(id) else { return };
        self.trunks[i].pending = None;
        self.fail(
            now,
            i,
            None,
            "no response (timeout or transport error)".to_string(),
        );
        self.prune();
    }

    /// Sends the refreshes and retries that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.trunks.len() {
            let t = &mut self.trunks[i];
            match t.next_send {
                Some(at) if at <= now && t.pending.is_none() && !t.unregistering => {
                    t.next_send = None;
                    if matches!(t.state, TrunkRegState::Failed { .. }) {
                        set_state(t, TrunkRegState::Registering);
                    }
                    let sent = t.credentials();
                    self.send(i, sent);
                }
                _ => {}
            }
        }
    }

    /// When [`TrunkRegistrations::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .filter(|t| t.pending.is_none() && !t.unregistering)
            .filter_map(|t| t.next_send)
            .min()
    }

    /// Each trunk's name and state, in config order.
    pub fn states(&self) -> Vec<(String, TrunkRegState)> {
        self.trunks
            .iter()
            .filter(|t| !t.retired)
            .map(|t| (t.cfg.name.clone(), t.state.clone()))
            .collect()
    }

    /// The trunk a request belongs to.
    pub fn trunk_of(&self, id: RegRequestId) -> Option<&str> {
        self.index_of(id).map(|i| self.trunks[i].cfg.name.as_str())
    }

    /// Requests still waiting for an answer (shutdown waits for them).
    pub fn pending(&self) -> usize {
        self.trunks.iter().filter(|t| t.pending.is_some()).count()
    }

    /// Sends REGISTER with Expires: 0 for each registered (or registering)
    /// trunk, and stops every refresh and retry (shutdown).
    pub fn unregister_all(&mut self, now: Instant) {
        self.started = false;
        for i in 0..self.trunks.len() {
            let t = &mut self.trunks[i];
            if t.unregistering {
                continue;
            }
            let bound = t.maybe_bound(now);
            t.unregistering = true;
            t.next_send = None;
            // A request still in flight is superseded: its answer is ignored.
            t.pending = None;
            if bound {
                let sent = t.credentials();
                self.send(i, sent);
            } else {
                t.unregistering = false;
                set_state(t, TrunkRegState::Idle);
            }
        }
        self.prune();
    }

    fn index_of(&self, id: RegRequestId) -> Option<usize> {
        self.trunks
            .iter()
            .position(|t| t.pending.is_some_and(|p| p.id == id))
    }

    fn on_success(&mut self, now: Instant, i: usize, p: Pending, msg: &Message) {
        let local = (self.local)(self.trunks[i].cfg.registrar.transport);
        let t = &mut self.trunks[i];
        t.stale_retries = 0;
        t.interval_retries = 0;
        if p.expires == 0 {
            t.unregistering = false;
            t.bound_until = None;
            set_state(t, TrunkRegState::Idle);
            return;
        }
        let granted = granted_expires(msg, &t.cfg.contact_user, local).unwrap_or(p.expires);
        if granted == 0 {
            let code = msg.status();
            self.fail(now, i, code, "registrar granted no interval".into());
            return;
        }
        let t = &mut self.trunks[i];
        let interval = Duration::from_secs(u64::from(granted));
        t.failures = 0;
        t.next_send = Some(now + refresh_delay(interval));
        t.bound_until = Some(now + interval);
        debug!(trunk = %t.cfg.name, granted, "trunk registration refreshed");
        set_state(
            t,
            TrunkRegState::Registered {
                until: now + interval,
            },
        );
    }

    fn on_challenge(&mut self, now: Instant, i: usize, p: Pending, code: u16, msg: &Message) {
        let proxy = code == 407;
        let name = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        // The registrar lists its challenges in order of preference: take
        // the first we can answer (RFC 8760 §2.4).
        let challenge = msg
            .headers_named(&name)
            .find_map(|v| Challenge::parse(v).ok());
        let Some(challenge) = challenge else {
            self.trunks[i].auth = None;
            self.fail(
                now,
                i,
                Some(code),
                "no digest challenge we can answer".into(),
            );
            return;
        };
        let t = &mut self.trunks[i];
        if p.sent == Sent::Fresh {
            if !challenge.stale {
                t.auth = None;
                self.fail(
                    now,
                    i,
                    Some(code),
                    "authentication rejected: wrong credentials".into(),
                );
                return;
            }
            t.stale_retries += 1;
            if t.stale_retries > MAX_STALE_RETRIES {
                t.auth = None;
                self.fail(
                    now,
                    i,
                    Some(code),
                    "registrar keeps answering stale=true".into(),
                );
                return;
            }
        }
        t.auth = Some(AuthCache {
            challenge,
            proxy,
            nc: 0,
        });
        // The answer asks for what the challenged request did.
        self.send_expires(i, Sent::Fresh, p.expires);
    }

    fn on_interval_too_brief(&mut self, now: Instant, i: usize, p: Pending, msg: &Message) {
        let min = msg.u32_header(&HeaderName::MinExpires).ok().flatten();
        let t = &mut self.trunks[i];
        t.interval_retries += 1;
        match min {
            Some(min) if min > p.expires && t.interval_retries <= MAX_INTERVAL_RETRIES => {
                info!(trunk = %t.cfg.name, min_expires = min, "registrar asks for a longer interval");
                t.expires = min;
                let sent = t.credentials();
                self.send_expires(i, sent, min);
            }
            _ => self.fail(
                now,
                i,
                Some(423),
                "interval too brief, no usable Min-Expires".into(),
            ),
        }
    }

    /// Marks a trunk failed and schedules the retry (none when shutting down).
    fn fail(&mut self, now: Instant, i: usize, code: Option<u16>, reason: String) {
        let t = &mut self.trunks[i];
        if t.unregistering {
            warn!(trunk = %t.cfg.name, ?code, %reason, "trunk unregistration failed");
            t.unregistering = false;
            set_state(t, TrunkRegState::Idle);
            return;
        }
        let delay = backoff(t.failures);
        t.failures = t.failures.saturating_add(1);
        t.stale_retries = 0;
        t.interval_retries = 0;
        let retry_at = now + delay;
        t.next_send = Some(retry_at);
        warn!(
            trunk = %t.cfg.name,
            ?code,
            %reason,
            retry_in_s = delay.as_secs(),
            "trunk registration failed"
        );
        set_state(
            t,
            TrunkRegState::Failed {
                code,
                reason,
                retry_at,
            },
        );
    }

    fn send(&mut self, i: usize, sent: Sent) {
        let t = &self.trunks[i];
        let expires = if t.unregistering { 0 } else { t.expires };
        self.send_expires(i, sent, expires);
    }

    /// Builds the trunk's next REGISTER and queues it.
    fn send_expires(&mut self, i: usize, sent: Sent, expires: u32) {
        let local = (self.local)(self.trunks[i].cfg.registrar.transport);
        let id = RegRequestId(self.next_id);
        self.next_id += 1;
        let t = &mut self.trunks[i];
        t.cseq = t.cseq.wrapping_add(1).max(1);
        let transport = t.cfg.registrar.transport;
        let uri = request_uri(&t.cfg.domain);
        let aor = format!("<sip:{}@{}>", t.cfg.username, t.cfg.domain);

        let mut req = Message::request(Method::Register, uri.clone());
        req.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {};branch={};rport",
                transport.via_token(),
                local,
                sip::transaction::new_branch()
            ),
        );
        req.push(HeaderName::MaxForwards, "70");
        req.push(HeaderName::From, format!("{aor};tag={}", t.from_tag));
        req.push(HeaderName::To, aor);
        req.push(HeaderName::CallId, t.call_id.clone());
        req.push(HeaderName::CSeq, format!("{} REGISTER", t.cseq));
        req.push(
            HeaderName::Contact,
            format!(
                "<sip:{}@{};transport={}>",
                t.cfg.contact_user, local, transport
            ),
        );
        req.push(HeaderName::Expires, expires.to_string());
        let sent = match (&mut t.auth, sent) {
            (Some(a), Sent::Cached | Sent::Fresh) => {
                a.nc = a.nc.wrapping_add(1).max(1);
                let user = t.cfg.auth_username.as_deref().unwrap_or(&t.cfg.username);
                let value = a.challenge.authorization(
                    "REGISTER",
                    &uri.to_string(),
                    user,
                    &t.cfg.password,
                    &random_hex(8),
                    a.nc,
                );
                let name = if a.proxy {
                    HeaderName::ProxyAuthorization
                } else {
                    HeaderName::Authorization
                };
                req.push(name, value);
                sent
            }
            _ => Sent::Plain,
        };
        if let Some(ua) = &self.user_agent {
            req.push(HeaderName::UserAgent, ua.clone());
        }
        t.pending = Some(Pending { id, expires, sent });
        t.next_send = None;
        debug!(trunk = %t.cfg.name, cseq = t.cseq, expires, ?sent, "sending REGISTER");
        self.out.push_back((id, req, t.cfg.registrar));
    }
}

/// Logs a change of state (refreshes of a registration only at debug).
fn set_state(t: &mut Trunk, new: TrunkRegState) {
    let same_kind = std::mem::discriminant(&t.state) == std::mem::discriminant(&new);
    if !same_kind {
        match &new {
            TrunkRegState::Idle => info!(trunk = %t.cfg.name, "trunk registration idle"),
            TrunkRegState::Registering => info!(trunk = %t.cfg.name, "trunk registering"),
            TrunkRegState::Registered { .. } => info!(trunk = %t.cfg.name, "trunk registered"),
            // Logged at warn, with the reason and the retry, by `fail`.
            TrunkRegState::Failed { .. } => {}
        }
    }
    t.state = new;
}

/// `sip:<domain>`; a domain that is not a valid host keeps its text verbatim.
fn request_uri(domain: &str) -> Uri {
    Uri::parse(&Bytes::from(format!("sip:{domain}")))
        .ok()
        .filter(|u| u.user.is_none())
        .unwrap_or_else(|| Uri::sip(None, domain, None))
}

/// The interval the registrar granted: the `expires` parameter of our
/// Contact in the 200 (RFC 3261 §10.2.4), else the Expires header. A
/// registrar behind NAT may show our Contact rewritten: a lone Contact is
/// taken as ours.
fn granted_expires(msg: &Message, contact_user: &str, local: SocketAddr) -> Option<u32> {
    let contacts = msg.contacts().ok().flatten().unwrap_or_default();
    let host = match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let ours = contacts.iter().find(|c| {
        c.uri.user_str() == Some(contact_user)
            && c.uri.host_str().eq_ignore_ascii_case(&host)
            && c.uri.port.unwrap_or(5060) == local.port()
    });
    let ours = ours.or(if contacts.len() == 1 {
        contacts.first()
    } else {
        None
    });
    ours.and_then(|c| c.params.value("expires"))
        .and_then(|v| sip::parse::parse_u32(v))
        .or_else(|| msg.u32_header(&HeaderName::Expires).ok().flatten())
}

/// When to refresh a binding granted for `interval`: the earlier of 90 % of
/// it and 30 s before it ends, but not sooner than a few seconds.
fn refresh_delay(interval: Duration) -> Duration {
    let ninety = interval.mul_f64(0.9);
    let margin = interval.saturating_sub(REFRESH_MARGIN);
    ninety.min(margin).max(MIN_REFRESH)
}

/// 30 s, 60 s, 120 s ... capped at 600 s, plus up to 10 % jitter so that
/// trunks failing together do not retry in step.
fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_BASE
        .checked_mul(1u32 << failures.min(16))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let jitter_ms = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 10);
    base + Duration::from_millis(jitter_ms)
}

fn reason_of(msg: &Message) -> String {
    match &msg.start {
        sip::StartLine::Response(r) => String::from_utf8_lossy(&r.reason).into_owned(),
        sip::StartLine::Request(_) => String::new(),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_timing() {
        let s = Duration::from_secs;
        assert_eq!(refresh_delay(s(3600)), s(3240));
        assert_eq!(refresh_delay(s(120)), s(90));
        assert_eq!(refresh_delay(s(40)), s(10));
        assert_eq!(refresh_delay(s(10)), s(5));
        assert_eq!(refresh_delay(s(1)), s(5));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        for (n, base) in [
            (0, 30),
            (1, 60),
            (2, 120),
            (3, 240),
            (4, 480),
            (5, 600),
            (40, 600),
        ] {
            let d = backoff(n);
            let base = Duration::from_secs(base);
            assert!(d >= base && d <= base + base / 10, "{n}: {d:?}");
        }
    }
}
