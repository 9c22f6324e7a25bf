//! The engine's sans-IO core: messages and timers in, transmits out.
//!
//! It owns the transaction layer, the registrar and the calls; the async
//! shell (`server.rs`) feeds it what the transport received and sends what
//! it returns. Media sessions are the one resource it allocates directly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sip::transaction::{TimerConfig, TransactionLayer, Transmit, TxEvent, TxKey};
use sip::transport::Received;
use sip::{HeaderName, Message, Method, Peer};
use tracing::{debug, info, warn};

use crate::auth::{AuthError, DigestAuth};
use crate::call::{Call, CallId, Side};
use crate::registrar::{Registrar, RegistrarConfig};
use crate::settings::Settings;
use crate::trunk_reg::{RegRequestId, TrunkRegConfig, TrunkRegState, TrunkRegistrations};

pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER";
pub(crate) const ACCEPT: &str = "application/sdp";

/// A core timer's place in the ordered set: cancelled by key, in O(log n).
pub(crate) type TimerKey = (Instant, u64);

/// What a timer of the core (not of a transaction) is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CoreTimer {
    /// A plan step of a call rang for its time.
    StepTimeout(CallId, usize),
}

/// One site's link as `softswitch status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteStatus {
    pub name: String,
    pub up_capacity_kbps: Option<u32>,
    pub down_capacity_kbps: Option<u32>,
    pub max_calls: Option<u32>,
    pub up_reserved_kbps: u64,
    pub down_reserved_kbps: u64,
    pub calls: u32,
    pub refusals: u64,
}

/// A trunk as `softswitch status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrunkStatus {
    pub name: String,
    pub registration: String,
    pub calls: u32,
}

/// Counters for status and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoreStats {
    pub calls_started: u64,
    pub calls_answered: u64,
    pub calls_failed: u64,
    pub active_calls: usize,
    pub bad_requests: u64,
    pub admission_refusals: u64,
}

pub struct Core {
    pub(crate) settings: Settings,
    pub(crate) tx: TransactionLayer,
    pub(crate) registrar: Registrar,
    pub(crate) proxy_auth: Arc<DigestAuth>,
    pub(crate) relay: media::Relay,
    pub(crate) admission: admission::Admission,
    /// Boxed: a call is a few kilobytes, and a table of them inline would
    /// hold that much for every empty slot too.
    pub(crate) calls: HashMap<CallId, Box<Call>>,
    /// Leg Call-ID -> (call, side): every dialog we are in, A or B.
    pub(crate) dialogs: HashMap<Bytes, (CallId, Side)>,
    /// A-leg INVITE server transaction -> call.
    pub(crate) a_invites: HashMap<TxKey, CallId>,
    /// Client transactions we started -> what they are for.
    pub(crate) client_txs: HashMap<TxKey, crate::call::ClientTx>,
    /// Server transactions whose response waits on the other leg.
    pub(crate) media_sessions: HashMap<media::SessionId, CallId>,
    pub(crate) timers: BTreeMap<(Instant, u64), CoreTimer>,
    pub(crate) timer_seq: u64,
    pub(crate) next_call: CallId,
    pub(crate) stats: CoreStats,
    pub(crate) events: VecDeque<CoreEvent>,
    /// Answered calls per extension (routing's "busy").
    pub(crate) busy: HashMap<String, u32>,
    /// Round-robin memory: the member each group rang last.
    pub(crate) last_member: HashMap<String, String>,
    /// Calls in progress per trunk (its max_calls).
    pub(crate) trunk_calls: HashMap<String, u32>,
    /// Our registrations at the providers of trunks that register.
    pub(crate) trunk_reg: TrunkRegistrations,
    pub(crate) reg_txs: HashMap<TxKey, RegRequestId>,
}

/// What happened, for the shell's logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreEvent {
    CallAnswered { call: CallId },
    CallEnded { call: CallId, reason: String },
}

impl Core {
    pub fn new(settings: Settings, relay: media::Relay, secret: [u8; 32]) -> Core {
        let mut auth = DigestAuth::new(&settings.domain, secret, crate::auth::DEFAULT_NONCE_TTL);
        auth.set_algorithms(&settings.auth_algorithms);
        let auth = Arc::new(auth);
        // Phones set up with our address instead of the domain name put it in To.
        let mut aliases: Vec<String> = settings
            .advertised
            .values()
            .map(|a| a.ip().to_string())
            .collect();
        aliases.sort();
        aliases.dedup();
        let registrar = Registrar::with_auth(
            RegistrarConfig {
                domain: settings.domain.clone(),
                aliases,
                min_expires: settings.min_expires,
                max_expires: settings.max_expires,
                ..RegistrarConfig::new(&settings.domain)
            },
            auth.clone(),
        );
        let proxy_auth = auth;
        let admission = admission::Admission::new(&settings.admission.sites);
        let trunk_reg = {
            let advertised = settings.advertised.clone();
            let configs = settings
                .trunks
                .values()
                .filter(|t| t.register)
                .map(|t| {
                    let mut c =
                        TrunkRegConfig::new(&t.name, t.peer, &t.domain, &t.username, &t.password);
                    c.auth_username = t.auth_username.clone();
                    c.expires = t.expires;
                    c
                })
                .collect();
            let mut r = TrunkRegistrations::new(configs, move |t| {
                advertised
                    .get(&t)
                    .or_else(|| advertised.values().next())
                    .copied()
                    .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 5060)))
            });
            r.set_user_agent(&settings.user_agent);
            r
        };
        Core {
            settings,
            tx: TransactionLayer::new(TimerConfig::default()),
            registrar,
            proxy_auth,
            relay,
            admission,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            a_invites: HashMap::new(),
            client_txs: HashMap::new(),
            media_sessions: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            next_call: 1,
            stats: CoreStats::default(),
            events: VecDeque::new(),
            busy: HashMap::new(),
            last_member: HashMap::new(),
            trunk_calls: HashMap::new(),
            trunk_reg,
            reg_txs: HashMap::new(),
        }
    }

    /// Starts what runs on its own: the trunks' registrations.
    pub fn start(&mut self, now: Instant) {
        self.trunk_reg.start(now);
        self.send_trunk_registrations(now);
    }

    fn send_trunk_registrations(&mut self, now: Instant) {
        while let Some((id, msg, peer)) = self.trunk_reg.poll_request() {
            let key = self.tx.send_request(now, msg, peer);
            self.reg_txs.insert(key, id);
        }
    }

    /// Each trunk's registration at its provider, for status.
    pub fn trunk_status(&self, now: Instant) -> Vec<TrunkStatus> {
        let mut out: Vec<TrunkStatus> = self
            .trunk_reg
            .states()
            .into_iter()
            .map(|(name, state)| TrunkStatus {
                calls: self.trunk_calls.get(&name).copied().unwrap_or(0),
                registration: match state {
                    TrunkRegState::Idle => "idle".to_string(),
                    TrunkRegState::Registering => "registering".to_string(),
                    TrunkRegState::Registered { until } => format!(
                        "registered ({} s left)",
                        until.saturating_duration_since(now).as_secs()
                    ),
                    TrunkRegState::Failed {
                        code,
                        reason,
                        retry_at,
                    } => format!(
                        "failed{}: {reason}; retry in {} s",
                        code.map(|c| format!(" {c}")).unwrap_or_default(),
                        retry_at.saturating_duration_since(now).as_secs()
                    ),
                },
                name,
            })
            .collect();
        for t in self.settings.trunks.values().filter(|t| !t.register) {
            out.push(TrunkStatus {
                name: t.name.clone(),
                registration: "not registering (IP authentication)".to_string(),
                calls: self.trunk_calls.get(&t.name).copied().unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> CoreStats {
        CoreStats {
            active_calls: self.calls.len(),
            ..self.stats.clone()
        }
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn relay(&self) -> &media::Relay {
        &self.relay
    }

    /// Every site's link: capacity, what is reserved, calls, refusals.
    pub fn site_status(&self) -> Vec<SiteStatus> {
        self.admission
            .usages()
            .map(|(_, name, u)| SiteStatus {
                name: name.to_string(),
                up_capacity_kbps: u.limits.up_kbps,
                down_capacity_kbps: u.limits.down_kbps,
                max_calls: u.limits.max_calls,
                up_reserved_kbps: u.up_kbps,
                down_reserved_kbps: u.down_kbps,
                calls: u.calls,
                refusals: u.refusals,
            })
            .collect()
    }

    /// The site a phone is at: its extension's pin, else its address.
    pub(crate) fn site_of(&self, extension: &str, ip: std::net::IpAddr) -> admission::SiteId {
        let sites = &self.settings.admission.sites;
        self.settings
            .extensions
            .get(extension)
            .and_then(|e| e.site.as_deref())
            .and_then(|name| sites.by_name(name))
            .unwrap_or_else(|| sites.lookup(ip))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.keys().next().map(|(t, _)| *t),
            self.tx.poll_timeout(),
            self.trunk_reg.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What the transport received.
    pub fn handle_received(&mut self, now: Instant, wall: SystemTime, rx: Received) {
        match rx {
            Received::Message(inc) => {
                // RFC 3261 §18.1.2: a response whose top Via is not ours is
                // not for us; answering it would let a spoofer aim us at anyone.
                if !inc.msg.is_request() && !self.via_is_ours(&inc.msg) {
                    debug!(from = %inc.from, "response with a foreign Via discarded");
                    return;
                }
                self.tx.handle_message(now, inc.msg, inc.from);
            }
            Received::Malformed(m) => {
                self.stats.bad_requests += 1;
                debug!(from = %m.from, error = %m.error, "malformed message");
                if let Some(resp) = sip::validate::bad_request_response(&m.bytes, &m.error) {
                    // The transaction layer's §18.2.2 rule, for a response sent statelessly.
                    let to =
                        sip::transaction::response_destination(&resp, m.from).unwrap_or(m.from);
                    self.tx.send_stateless(&resp, to);
                }
            }
        }
        self.drain_tx_events(now, wall);
    }

    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        self.tx.handle_timeout(now);
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                CoreTimer::StepTimeout(call, step) => self.step_timeout(now, call, step),
            }
        }
        self.registrar.remove_expired(now);
        self.trunk_reg.handle_timeout(now);
        self.drain_tx_events(now, wall);
    }

    /// The relay saw no media on a session for the configured time.
    pub fn handle_dead_media(&mut self, now: Instant, wall: SystemTime, session: media::SessionId) {
        if let Some(call) = self.media_sessions.get(&session).copied() {
            warn!(
                call,
                "dead media: no RTP or RTCP in either direction, ending the call"
            );
            self.end_call_both(now, call, "dead media");
        }
        self.drain_tx_events(now, wall);
    }

    /// Ends every call with BYE (or CANCEL / 503 before answer) before exit.
    pub fn shutdown(&mut self, now: Instant, wall: SystemTime) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for call in ids {
            self.end_call_both(now, call, "shutdown");
        }
        self.trunk_reg.unregister_all(now);
        self.drain_tx_events(now, wall);
    }

    fn via_is_ours(&self, msg: &Message) -> bool {
        msg.top_via().is_ok_and(|v| {
            let port = v.port.unwrap_or(5060);
            self.settings
                .advertised
                .values()
                .any(|a| a.port() == port && host_is(v.host_str(), a.ip()))
        })
    }

    /// Arms a timer; the key returned cancels it.
    pub(crate) fn add_timer(&mut self, at: Instant, t: CoreTimer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, t);
        key
    }

    pub(crate) fn cancel_timer(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.timers.remove(&key);
        }
    }

    fn drain_tx_events(&mut self, now: Instant, wall: SystemTime) {
        self.drain_tx_events_once(now, wall);
        self.send_trunk_registrations(now);
    }

    fn drain_tx_events_once(&mut self, now: Instant, wall: SystemTime) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Request { key, msg, from } => self.on_request(now, wall, key, msg, from),
                TxEvent::Cancel {
                    key, invite, msg, ..
                } => self.on_cancel(now, key, invite, &msg),
                TxEvent::Ack { msg, accepted, .. } => self.on_ack(&msg, accepted),
                TxEvent::Response { key, msg } => {
                    if let Some(id) = self.reg_txs.get(&key).copied() {
                        if msg.status().is_some_and(|s| s >= 200) {
                            self.reg_txs.remove(&key);
                        }
                        self.trunk_reg.on_response(now, id, &msg);
                    } else {
                        self.on_response(now, key, msg);
                    }
                }
                TxEvent::StrayResponse { msg, from } => self.on_stray_response(now, &msg, from),
                TxEvent::Timeout { key } => {
                    if let Some(id) = self.reg_txs.remove(&key) {
                        self.trunk_reg.on_failure(now, id);
                    } else {
                        self.on_client_timeout(now, key);
                    }
                }
                TxEvent::AckTimeout { key } => self.on_ack_timeout(now, key),
                TxEvent::Terminated { key } => {
                    self.a_invites.remove(&key);
                    self.client_txs.remove(&key);
                    self.reg_txs.remove(&key);
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, wall: SystemTime, key: TxKey, msg: Message, from: Peer) {
        if let Err(rej) = sip::validate::check_request(&msg) {
            self.stats.bad_requests += 1;
            debug!(%from, code = rej.code, reason = %rej.reason, "request refused");
            let mut resp = Message::response_to(&msg, rej.code, Some(&new_tag()));
            if let sip::StartLine::Response(r) = &mut resp.start {
                r.reason = Bytes::from(rej.reason.clone());
            }
            self.tx.send_response(now, &key, resp);
            return;
        }
        let Some(method) = msg.method().cloned() else {
            return;
        };
        // Extensions we do not support (RFC 3261 §8.2.2.3); CANCEL and ACK never carry Require.
        if let Some(unsupported) = unsupported_require(&msg) {
            let mut resp = self.response(&msg, 420);
            resp.push(HeaderName::Unsupported, unsupported);
            self.tx.send_response(now, &key, resp);
            return;
        }
        let in_dialog = msg.to_hdr().ok().and_then(|t| t.tag().cloned()).is_some();
        if in_dialog && !matches!(method, Method::Register | Method::Options) {
            self.on_in_dialog(now, key, msg, from, method);
            return;
        }
        match method {
            Method::Register => {
                let settings = &self.settings;
                let resp = self
                    .registrar
                    .handle(now, wall, &msg, from, |u| settings.password_of(u));
                if resp.status() == Some(401) {
                    self.tx.send_response_and_end(now, &key, resp);
                } else {
                    self.tx.send_response(now, &key, resp);
                }
            }
            Method::Options => {
                let mut resp = self.response(&msg, 200);
                resp.push(HeaderName::Allow, ALLOW);
                resp.push(HeaderName::Accept, ACCEPT);
                resp.push(HeaderName::AcceptLanguage, "en");
                resp.push(HeaderName::Supported, "replaces");
                self.tx.send_response(now, &key, resp);
            }
            Method::Invite => self.on_invite(now, wall, key, msg, from),
            Method::Bye | Method::Info | Method::Update | Method::Prack | Method::Notify => {
                let resp = self.response(&msg, 481);
                self.tx.send_response(now, &key, resp);
            }
            Method::Subscribe | Method::Refer | Method::Message | Method::Publish => {
                let mut resp = self.response(&msg, 405);
                resp.push(HeaderName::Allow, ALLOW);
                self.tx.send_response(now, &key, resp);
            }
            Method::Other(_) => {
                let mut resp = self.response(&msg, 501);
                resp.push(HeaderName::Allow, ALLOW);
                self.tx.send_response(now, &key, resp);
            }
            Method::Ack | Method::Cancel => {}
        }
    }

    /// A final response from us as a UAS, with our Server header.
    pub(crate) fn response(&self, req: &Message, code: u16) -> Message {
        let mut resp = Message::response_to(req, code, Some(&new_tag()));
        resp.push(HeaderName::Server, self.settings.user_agent.clone());
        resp
    }

    /// Authenticates an INVITE's caller (407 challenge per RFC 3261 §22.3).
    /// Returns the extension number, or sends the challenge and returns None.
    pub(crate) fn authenticate_caller(
        &mut self,
        now: Instant,
        wall: SystemTime,
        key: &TxKey,
        msg: &Message,
        from: Peer,
    ) -> Option<String> {
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let uri = msg.request_uri().map(|u| u.to_bytes()).unwrap_or_default();
        let settings = &self.settings;
        let result = match msg.header(&HeaderName::ProxyAuthorization) {
            None => Err(AuthError::Missing),
            Some(h) => self
                .proxy_auth
                .verify(wall, &method, &uri, h, |u| settings.password_of(u)),
        };
        match result {
            Ok(ok) => {
                // The authenticated user must be the caller it claims to be.
                let from_user = msg
                    .from_hdr()
                    .ok()
                    .and_then(|f| f.uri.user_str().map(str::to_string));
                if from_user.as_deref() != Some(ok.user.as_str()) {
                    info!(%from, user = %ok.user, "INVITE From does not match the authenticated user");
                    let resp = self.response(msg, 403);
                    self.tx.send_response(now, key, resp);
                    return None;
                }
                Some(ok.user)
            }
            Err(e) => {
                if !matches!(e, AuthError::Missing) {
                    info!(%from, error = ?e, "INVITE authentication failed");
                }
                let stale = matches!(e, AuthError::Stale);
                let mut resp = self.response(msg, 407);
                for c in self.proxy_auth.challenge(wall, stale) {
                    resp.push(HeaderName::ProxyAuthenticate, c);
                }
                self.tx.send_response_and_end(now, key, resp);
                None
            }
        }
    }
}

/// The first option-tag of Require that we do not support, if any.
fn unsupported_require(msg: &Message) -> Option<String> {
    if matches!(msg.method(), Some(Method::Ack | Method::Cancel)) {
        return None;
    }
    let mut bad = Vec::new();
    for line in msg.headers_named(&HeaderName::Require) {
        for tag in line.split(|&c| c == b',') {
            let tag = String::from_utf8_lossy(tag).trim().to_string();
            // Nothing is required of us that we support yet but these are harmless.
            if !tag.is_empty() && tag != "replaces" {
                bad.push(tag);
            }
        }
    }
    if bad.is_empty() {
        None
    } else {
        Some(bad.join(", "))
    }
}

/// A fresh tag (RFC 3261 §19.3: at least 32 bits of randomness).
pub(crate) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether a Via or URI host names this IP (IPv6 with or without brackets).
pub(crate) fn host_is(host: &str, ip: std::net::IpAddr) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|h| h == ip)
}
