//! The RFC 3261 §17 transaction layer, sans-IO.
//!
//! The layer is fed parsed messages and the current time and never touches
//! a socket or the clock: the shell drains [`TransactionLayer::poll_transmit`]
//! and [`TransactionLayer::poll_event`] after each call and wakes it at
//! [`TransactionLayer::poll_timeout`]. The four state machines of §17 are
//! implemented with the RFC 6026 Accepted state for INVITE 2xx responses.
//! Every message is serialized once; retransmissions reuse its `Bytes`.
//! Lookups are hash maps and the timers sit in one ordered set, so the cost
//! per message or timer does not grow with the number of transactions.

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod timers;

use bytes::Bytes;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

use crate::header::Via;
use crate::message::{Message, Method, StartLine};
use crate::peer::Peer;

pub use key::TxKey;
pub use timers::TimerConfig;

use key::{AckKey, ClientKey, ServerKey};
use timers::{Armed, Slot, TimerQueue};

/// How long an INVITE server transaction waits for the TU's first response
/// before it sends 100 Trying itself (§17.2.1).
const TRYING_DELAY: Duration = Duration::from_millis(200);

/// A datagram or stream chunk to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Bytes,
}

/// What the layer tells the transaction user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// A new request (not a retransmission). For every method but ACK a server transaction now exists under `key`.
    Request {
        key: TxKey,
        msg: Message,
        from: Peer,
    },
    /// A CANCEL: a server transaction exists for it under `key`; `invite` is the INVITE server transaction it cancels (matched per §9.2), if any. The TU answers the CANCEL itself.
    /// `invite` is given whatever that transaction's state: when [`TransactionLayer::state`] is no longer `Proceeding` a final response was already sent and the CANCEL has no effect (§9.2).
    Cancel {
        key: TxKey,
        invite: Option<TxKey>,
        msg: Message,
        from: Peer,
    },
    /// An ACK that matched no INVITE server transaction in Completed state, i.e. the ACK for a 2xx (it belongs to the dialog/TU). `accepted` is the INVITE server transaction it confirmed, if it matched one in the RFC 6026 Accepted state (by Call-ID, CSeq number and From tag).
    Ack {
        msg: Message,
        from: Peer,
        accepted: Option<TxKey>,
    },
    /// A response for a client transaction: every provisional, the first non-2xx final, and EVERY 2xx of an INVITE (retransmissions included, while the client transaction is in the RFC 6026 Accepted state, so the TU can re-ACK).
    Response { key: TxKey, msg: Message },
    /// A response that matched no client transaction (e.g. a 2xx retransmitted after the client transaction ended).
    StrayResponse { msg: Message, from: Peer },
    /// Timer B or F fired (or the TU reported a transport error): the client transaction failed; the TU acts as on 408.
    Timeout { key: TxKey },
    /// An INVITE server transaction that sent a 2xx got no ACK within 64*T1 (RFC 6026 Timer L): the TU should end the dialog.
    AckTimeout { key: TxKey },
    /// The transaction is gone (for the TU's bookkeeping).
    Terminated { key: TxKey },
}

/// The state of a transaction (RFC 3261 Figures 5-8, RFC 6026 Figures 5 and 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxState {
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client or server: request sent or received, no response yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE server: the ACK for a non-2xx final arrived.
    Confirmed,
    /// INVITE client or server after a 2xx (RFC 6026).
    Accepted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Debug)]
enum Index {
    Client(ClientKey),
    Server(ServerKey),
}

/// One transaction. Tens of thousands linger in the absorbing states at a
/// few hundred calls per second, so what only some of them need is boxed
/// and what a state no longer needs is dropped when it is entered.
#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: TxState,
    /// No retransmissions and zero-length absorbing states (§17.1.1.2).
    reliable: bool,
    /// INVITE server in Accepted: the ACK for the 2xx arrived.
    acked: bool,
    /// Client: where the request goes. Server: where responses go (§18.2.2).
    peer: Peer,
    index: Index,
    /// RFC 2543 INVITE server: the key its ACK carries (with the response's To tag).
    ack_index: Option<Box<ServerKey>>,
    /// INVITE server in Accepted: the key the 2xx's ACK is found by.
    accepted_index: Option<Box<AckKey>>,
    /// INVITE client until its first response: the request, to build the
    /// ACK for a non-2xx final. INVITE server until its first response:
    /// the request, to build 100 Trying.
    request: Option<Box<Message>>,
    /// Client: the request as sent, while it may be retransmitted; INVITE
    /// client in Completed: the ACK, re-sent on each retransmitted final.
    /// Server: the last response sent.
    out: Option<Bytes>,
    /// The current retransmission interval.
    interval: Duration,
    armed: Armed,
}

/// The transaction layer of one SIP endpoint (a UA or the B2BUA).
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    next_id: u64,
    /// Boxed so that growing the map moves pointers, not kilobyte-sized
    /// transactions: with tens of thousands alive, moving them stalled the
    /// layer for tens of milliseconds at each doubling.
    txs: HashMap<u64, Box<Tx>, BuildIdHasher>,
    clients: HashMap<ClientKey, u64>,
    servers: HashMap<ServerKey, u64>,
    accepted: HashMap<AckKey, u64>,
    timers: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    auto_trying: bool,
}

impl TransactionLayer {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            next_id: 1,
            txs: HashMap::default(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            accepted: HashMap::new(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            auto_trying: true,
        }
    }

    pub fn config(&self) -> &TimerConfig {
        &self.cfg
    }

    /// Whether an INVITE server transaction sends 100 Trying by itself when
    /// the TU has sent no response within 200 ms (on by default, §17.2.1).
    pub fn set_auto_trying(&mut self, on: bool) {
        self.auto_trying = on;
    }

    /// A parsed message from the transport.
    pub fn handle_message(&mut self, now: Instant, msg: Message, from: Peer) {
        match msg.start {
            StartLine::Request(_) => self.on_request(now, msg, from),
            StartLine::Response(_) => self.on_response(now, msg, from),
        }
    }

    /// Starts a client transaction and sends `msg` to `to` (retransmitting on UDP per timers A/E). The top Via must carry a branch (use `new_branch()`). For CANCEL the TU builds the request with the INVITE's branch (§9.1); it is its own non-INVITE transaction.
    pub fn send_request(&mut self, now: Instant, msg: Message, to: Peer) -> TxKey {
        let id = self.alloc_id();
        let method = match msg.method() {
            Some(Method::Ack) | None => {
                warn!(%to, "send_request with an ACK or a response: sent without a transaction");
                self.send_stateless(&msg, to);
                return TxKey(id);
            }
            Some(m) => m.clone(),
        };
        let branch = match msg.top_via().map(|v| v.branch().cloned()) {
            Ok(Some(b)) => b,
            _ => {
                warn!(%to, %method, "request without a top Via branch: responses cannot be matched");
                Bytes::new()
            }
        };
        let bytes = msg.to_bytes();
        self.transmit(to, bytes.clone());
        let invite = method == Method::Invite;
        let key = ClientKey { branch, method };
        if let Some(old) = self.clients.insert(key.clone(), id) {
            warn!(old, new = id, "client transaction branch reused");
        }
        let reliable = to.transport.is_reliable();
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                TxState::Calling
            } else {
                TxState::Trying
            },
            reliable,
            acked: false,
            peer: to,
            index: Index::Client(key),
            ack_index: None,
            accepted_index: None,
            request: invite.then(|| Box::new(msg)),
            out: Some(bytes),
            interval: self.cfg.t1,
            armed: Armed::default(),
        };
        if !reliable {
            self.timers
                .arm(&mut tx.armed, id, Slot::Retransmit, now + self.cfg.t1);
        }
        // Timer B or F.
        self.timers
            .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t1x64());
        self.txs.insert(id, Box::new(tx));
        TxKey(id)
    }

    /// Sends a response through server transaction `key` (provisional or final). A 2xx to an INVITE moves it to the RFC 6026 Accepted state, in which the LAYER retransmits the 2xx on UDP (T1 doubling up to T2) until a matching ACK arrives (then emits Ack{accepted: Some(key)}) or Timer L (64*T1) fires (emits AckTimeout). Responses go where §18.2.2 says: for UDP to the Via `received` address (or the source) and `rport` port (or sent-by port / 5060); for TCP back to the source Peer.
    pub fn send_response(&mut self, now: Instant, key: &TxKey, msg: Message) {
        let Some(code) = msg.status() else {
            warn!(%key, "send_response with a request: dropped");
            return;
        };
        let Some(tx) = self.txs.get(&key.0) else {
            warn!(%key, code, "send_response for an unknown transaction: dropped");
            return;
        };
        match tx.kind {
            Kind::InviteServer => self.server_invite_send(now, key.0, code, msg),
            Kind::NonInviteServer => self.server_non_invite_send(now, key.0, code, msg),
            Kind::InviteClient | Kind::NonInviteClient => {
                warn!(%key, code, "send_response on a client transaction: dropped");
            }
        }
    }

    /// Sends a final response through server transaction `key` and ends the
    /// transaction at once, as a stateless proxy answers: for digest
    /// challenges (401/407). A retransmitted request then opens a new
    /// transaction and gets a fresh challenge, the ACK of a 407 is passed up
    /// as a stray ACK, and requests that never authenticate (a flood from an
    /// unknown source) leave no state behind for Timer J or H.
    pub fn send_response_and_end(&mut self, now: Instant, key: &TxKey, msg: Message) {
        self.send_response(now, key, msg);
        self.terminate(key.0);
    }

    /// Sends a request or response outside any transaction (the ACK for a 2xx, a stateless response).
    pub fn send_stateless(&mut self, msg: &Message, to: Peer) {
        self.transmit(to, msg.to_bytes());
    }

    /// Sends bytes already serialized outside any transaction (an ACK for a
    /// 2xx kept as sent, re-sent when the 2xx is retransmitted).
    pub fn send_raw(&mut self, bytes: Bytes, to: Peer) {
        self.transmit(to, bytes);
    }

    /// The transport failed to deliver for this client transaction.
    pub fn transport_error(&mut self, _now: Instant, key: &TxKey) {
        let Some(tx) = self.txs.get(&key.0) else {
            return;
        };
        let pending = matches!(
            tx.state,
            TxState::Calling | TxState::Trying | TxState::Proceeding
        );
        if pending && matches!(tx.kind, Kind::InviteClient | Kind::NonInviteClient) {
            self.events.push_back(TxEvent::Timeout { key: key.clone() });
        }
        debug!(%key, state = ?tx.state, "transport error");
        self.terminate(key.0);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, id, slot)) = self.timers.pop_due(now) {
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            tx.armed[slot as usize] = None;
            match tx.kind {
                Kind::InviteClient => self.client_invite_timer(now, id, slot),
                Kind::NonInviteClient => self.client_non_invite_timer(now, id, slot),
                Kind::InviteServer => self.server_invite_timer(now, id, slot),
                Kind::NonInviteServer => self.server_non_invite_timer(now, id, slot),
            }
        }
    }

    /// When [`TransactionLayer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The state of a live transaction.
    pub fn state(&self, key: &TxKey) -> Option<TxState> {
        self.txs.get(&key.0).map(|t| t.state)
    }

    /// The number of armed timers (for metrics and tests).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    // ----- incoming messages -----

    fn on_request(&mut self, now: Instant, msg: Message, from: Peer) {
        let via = match msg.top_via() {
            Ok(v) => v,
            Err(e) => {
                // No Via: no way to route a response, so no transaction.
                debug!(%from, error = %e, "request without a usable Via dropped");
                return;
            }
        };
        let Some(method) = msg.method().cloned() else {
            return;
        };
        if method == Method::Ack {
            self.on_ack(now, msg, from, &via);
            return;
        }
        let key = ServerKey::for_request(&msg, &via, method.clone());
        if let Some(&id) = self.servers.get(&key) {
            self.on_retransmitted_request(id, &method);
            return;
        }

        let id = self.alloc_id();
        let invite = method == Method::Invite;
        let reliable = from.transport.is_reliable();
        let mut tx = Tx {
            kind: if invite {
                Kind::InviteServer
            } else {
                Kind::NonInviteServer
            },
            state: if invite {
                TxState::Proceeding
            } else {
                TxState::Trying
            },
            reliable,
            acked: false,
            peer: response_peer(&via, from),
            index: Index::Server(key.clone()),
            ack_index: None,
            accepted_index: None,
            request: None,
            out: None,
            interval: self.cfg.t1,
            armed: Armed::default(),
        };
        if invite && self.auto_trying {
            tx.request = Some(Box::new(msg.clone()));
            self.timers
                .arm(&mut tx.armed, id, Slot::Trying, now + TRYING_DELAY);
        }
        self.txs.insert(id, Box::new(tx));
        self.servers.insert(key.clone(), id);

        if method == Method::Cancel {
            let invite = self
                .servers
                .get(&key.with_method(Method::Invite))
                .map(|&i| TxKey(i));
            self.events.push_back(TxEvent::Cancel {
                key: TxKey(id),
                invite,
                msg,
                from,
            });
        } else {
            self.events.push_back(TxEvent::Request {
                key: TxKey(id),
                msg,
                from,
            });
        }
    }

    /// A request that matched a server transaction: re-send the last
    /// response where the state machine says so (§17.2.1, §17.2.2).
    fn on_retransmitted_request(&mut self, id: u64, method: &Method) {
        let Some(tx) = self.txs.get(&id) else {
            return;
        };
        debug!(tx = id, %method, state = ?tx.state, "request retransmission absorbed");
        let resend = match tx.state {
            TxState::Proceeding | TxState::Completed | TxState::Accepted => tx.out.clone(),
            _ => None,
        };
        if let Some(bytes) = resend {
            let to = tx.peer;
            self.transmit(to, bytes);
        }
    }

    fn on_ack(&mut self, now: Instant, msg: Message, from: Peer, via: &Via) {
        let key = ServerKey::for_request(&msg, via, Method::Invite);
        if let Some(&id) = self.servers.get(&key) {
            if self.server_invite_ack(now, id) {
                return;
            }
        }
        if let Some(id) = AckKey::from_msg(&msg).and_then(|k| self.accepted.get(&k).copied()) {
            if let Some(tx) = self.txs.get_mut(&id) {
                if tx.acked {
                    debug!(tx = id, "ACK retransmission for a 2xx absorbed");
                    return;
                }
                tx.acked = true;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                self.events.push_back(TxEvent::Ack {
                    msg,
                    from,
                    accepted: Some(TxKey(id)),
                });
                return;
            }
        }
        self.events.push_back(TxEvent::Ack {
            msg,
            from,
            accepted: None,
        });
    }

    fn on_response(&mut self, now: Instant, msg: Message, from: Peer) {
        let key = match (msg.top_via(), msg.cseq()) {
            (Ok(via), Ok(cseq)) => via.branch().map(|b| ClientKey {
                branch: b.clone(),
                method: cseq.method,
            }),
            _ => None,
        };
        let Some(id) = key.and_then(|k| self.clients.get(&k).copied()) else {
            self.events.push_back(TxEvent::StrayResponse { msg, from });
            return;
        };
        let (Some(code), Some(tx)) = (msg.status(), self.txs.get(&id)) else {
            return;
        };
        match tx.kind {
            Kind::InviteClient => self.client_invite_response(now, id, code, msg),
            Kind::NonInviteClient => self.client_non_invite_response(now, id, code, msg),
            Kind::InviteServer | Kind::NonInviteServer => {}
        }
    }

    // ----- helpers shared by the state machines -----

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    /// Re-sends the stored message of a transaction and re-arms its
    /// retransmission timer with the interval `next` computes.
    fn retransmit(&mut self, now: Instant, id: u64, next: impl FnOnce(Duration) -> Duration) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let Some(bytes) = tx.out.clone() else {
            return;
        };
        tx.interval = next(tx.interval);
        self.timers
            .arm(&mut tx.armed, id, Slot::Retransmit, now + tx.interval);
        let to = tx.peer;
        self.transmit(to, bytes);
    }

    /// Removes a transaction, its timers and its index entries.
    fn terminate(&mut self, id: u64) {
        let Some(mut tx) = self.txs.remove(&id) else {
            return;
        };
        self.timers.disarm_all(&mut tx.armed, id);
        match &tx.index {
            Index::Client(k) => remove_if(&mut self.clients, k, id),
            Index::Server(k) => remove_if(&mut self.servers, k, id),
        }
        if let Some(k) = tx.ack_index.as_deref() {
            remove_if(&mut self.servers, k, id);
        }
        if let Some(k) = tx.accepted_index.as_deref() {
            remove_if(&mut self.accepted, k, id);
        }
        self.events
            .push_back(TxEvent::Terminated { key: TxKey(id) });
    }
}

/// Hashes the layer's own sequential ids: they are not chosen by peers, so
/// SipHash's protection is not needed. Multiplying by an odd constant keeps
/// consecutive ids in distinct buckets and mixes the high bits the table
/// uses as tags.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type BuildIdHasher = std::hash::BuildHasherDefault<IdHasher>;

/// Removes `k` only when it still points at transaction `id` (a newer
/// transaction may have taken the key over).
fn remove_if<K: Hash + Eq>(map: &mut HashMap<K, u64>, k: &K, id: u64) {
    if map.get(k) == Some(&id) {
        map.remove(k);
    }
}

/// A fresh RFC 3261 branch: the magic cookie and 80 random bits.
pub fn new_branch() -> String {
    let r: u128 = rand::thread_rng().gen();
    format!("z9hG4bK{:020x}", r & ((1u128 << 80) - 1))
}

/// Where the responses to `req`, received from `from`, go (§18.2.2 with
/// RFC 3581 rport). `None` when the request has no usable Via.
pub fn response_destination(req: &Message, from: Peer) -> Option<Peer> {
    req.top_via().ok().map(|via| response_peer(&via, from))
}

fn response_peer(via: &Via, from: Peer) -> Peer {
    if from.transport.is_reliable() {
        return from;
    }
    let ip = via
        .params
        .value("received")
        .and_then(|r| parse_ip(r))
        .unwrap_or_else(|| from.addr.ip());
    let port = match via.params.get("rport") {
        Some(Some(p)) => std::str::from_utf8(p)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(from.addr.port()),
        Some(None) => from.addr.port(),
        None => via.port.unwrap_or(5060),
    };
    Peer {
        transport: from.transport,
        addr: SocketAddr::new(ip, port),
    }
}

fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}
