//! The SIP side: one thread plays every user agent (registering users,
//! callers, callees) over a few UDP sockets, with RFC 3261 retransmissions
//! (T1 = 500 ms doubling to T2 = 4 s) and a bounded wait for each answer.

use crate::clock::now_ns;
use crate::net::{wait_readable, RecvBatch};
use crate::rtp::{Cmd, CmdTx};
use crate::sip::{angle_uri, sdp_audio_addr, sdp_body, uri_user, Challenge, Msg};
use crate::stats::Histogram;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T1: u64 = 500_000_000;
const T2: u64 = 4_000_000_000;
/// Pause between stopping a call's media and sending its BYE, so no packet
/// is still in flight toward a relay port being torn down.
const BYE_AFTER_STOP: u64 = 40_000_000;

#[derive(Clone, Debug)]
pub struct SipConfig {
    pub server: SocketAddr,
    pub domain: String,
    pub password: String,
    /// Give up on a transaction after this long.
    pub timeout_ns: u64,
    pub expires: u32,
}

/// Counters the sampler reads while the run goes on.
#[derive(Default)]
pub struct Live {
    pub regs_ok: AtomicU64,
    pub calls_answered: AtomicU64,
    pub calls_active: AtomicU64,
}

#[derive(Default)]
pub struct RegStats {
    pub attempted: u64,
    pub ok: u64,
    pub failed: BTreeMap<String, u64>,
    pub retransmissions: u64,
    pub skipped_busy: u64,
    pub latency: Histogram,
}

#[derive(Default)]
pub struct CallStats {
    pub attempted: u64,
    pub answered: u64,
    pub completed: u64,
    pub failed: BTreeMap<String, u64>,
    pub throttled: u64,
    pub retransmissions: u64,
    pub max_concurrent: u64,
    pub setup: Histogram,
    pub unexpected_requests: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Timer {
    RegRetx(usize, u32),
    CallRetx(usize, u32),
    Hangup(usize, u32),
    SendBye(usize, u32),
    CalleeRetx(usize, u32),
}

#[derive(Clone, Copy)]
enum Owner {
    Reg(usize),
    Caller(usize),
    Callee(usize),
}

struct User {
    number: String,
    sock: usize,
    call_id: String,
    from_tag: String,
    cseq: u32,
    busy: bool,
    auth_tried: bool,
    started: u64,
    deadline: u64,
    retx_every: u64,
    last: Vec<u8>,
    gen: u32,
    /// Index of the call this user takes part in.
    in_call: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallState {
    Inviting,
    Up,
    Hanging,
    ByeSent,
    Done,
}

pub struct CallRecord {
    pub answered: bool,
    pub caller_stream: u32,
    pub callee_stream: u32,
}

struct Call {
    caller: usize,
    callee: usize,
    call_id: String,
    from_tag: String,
    cseq: u32,
    branch: String,
    state: CallState,
    started: u64,
    deadline: u64,
    retx_every: u64,
    got_provisional: bool,
    auth_tried: bool,
    last: Vec<u8>,
    ack: Vec<u8>,
    gen: u32,
    to_header: String,
    remote_target: String,
    routes: Vec<String>,
    rtp_caller: usize,
    rtp_callee: usize,
    // Callee side (the B-leg as the server sends it to us).
    b_call_id: Option<String>,
    b_response: Vec<u8>,
    b_peer: SocketAddr,
    b_acked: bool,
    b_retx_every: u64,
    b_gen: u32,
    hold_ns: u64,
    answered: bool,
    ok: bool,
}

pub struct Engine {
    cfg: SipConfig,
    socks: Vec<UdpSocket>,
    addrs: Vec<SocketAddr>,
    users: Vec<User>,
    by_number: HashMap<String, usize>,
    calls: Vec<Call>,
    owners: HashMap<String, Owner>,
    /// Dialogs where we are the callee, by the Call-ID the server used.
    callee_of: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    rtp: Option<(CmdTx, Vec<SocketAddr>)>,
    pub live: Arc<Live>,
    pub reg: RegStats,
    pub call: CallStats,
    seq: u64,
    rb: RecvBatch,
    ready: Vec<usize>,
    active_calls: u64,
    next_user: usize,
    next_caller: usize,
    next_callee: usize,
}

fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

impl Engine {
    pub fn new(
        cfg: SipConfig,
        socks: Vec<UdpSocket>,
        rtp: Option<(CmdTx, Vec<SocketAddr>)>,
    ) -> std::io::Result<Engine> {
        let addrs = socks
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine {
            cfg,
            socks,
            addrs,
            users: Vec::new(),
            by_number: HashMap::new(),
            calls: Vec::new(),
            owners: HashMap::new(),
            callee_of: HashMap::new(),
            timers: BinaryHeap::new(),
            rtp,
            live: Arc::new(Live::default()),
            reg: RegStats::default(),
            call: CallStats::default(),
            seq: 0,
            rb: RecvBatch::default(),
            ready: Vec::new(),
            active_calls: 0,
            next_user: 0,
            next_caller: 0,
            next_callee: 0,
        })
    }

    fn token(&mut self) -> String {
        self.seq += 1;
        format!("{:x}{:x}", self.seq, now_ns() & 0xffff_ffff)
    }

    /// Adds users `first..first+count`; returns their indexes.
    pub fn add_users(&mut self, first: u64, count: u64) -> Vec<usize> {
        let mut out = Vec::new();
        for n in first..first + count {
            let number = n.to_string();
            if let Some(&i) = self.by_number.get(&number) {
                out.push(i);
                continue;
            }
            let i = self.users.len();
            let call_id = format!("reg-{}-{}-{}@loadgen", number, std::process::id(), now_ns());
            let from_tag = self.token();
            self.owners.insert(call_id.clone(), Owner::Reg(i));
            self.users.push(User {
                number: number.clone(),
                sock: i % self.socks.len(),
                call_id,
                from_tag,
                cseq: 0,
                busy: false,
                auth_tried: false,
                started: 0,
                deadline: 0,
                retx_every: T1,
                last: Vec::new(),
                gen: 0,
                in_call: None,
            });
            self.by_number.insert(number, i);
            out.push(i);
        }
        out
    }

    fn send(&mut self, sock: usize, to: SocketAddr, bytes: &[u8]) {
        // A refused send is a lost datagram: the retransmission timer covers it.
        let _ = self.socks[sock].send_to(bytes, to);
    }

    fn arm(&mut self, at: u64, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    // ---------------------------------------------------------------- REGISTER

    /// Starts a registration of the next idle user among `pool`.
    pub fn register_next(&mut self, pool: &[usize]) {
        for _ in 0..pool.len() {
            let u = pool[self.next_user % pool.len()];
            self.next_user += 1;
            if !self.users[u].busy && self.users[u].in_call.is_none() {
                self.start_register(u);
                return;
            }
        }
        self.reg.skipped_busy += 1;
    }

    pub fn start_register(&mut self, u: usize) {
        let now = now_ns();
        self.reg.attempted += 1;
        let user = &mut self.users[u];
        user.busy = true;
        user.auth_tried = false;
        user.started = now;
        user.deadline = now + self.cfg.timeout_ns;
        self.send_register(u, None);
    }

    fn send_register(&mut self, u: usize, auth: Option<(&str, String)>) {
        let branch = self.token();
        let now = now_ns();
        let local = self.addrs[self.users[u].sock];
        let cfg = &self.cfg;
        let user = &mut self.users[u];
        user.cseq += 1;
        user.gen += 1;
        user.retx_every = T1;
        let mut m = String::with_capacity(600);
        let _ = write!(
            m,
            "REGISTER sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{n}@{d}>;tag={ft}\r\nTo: <sip:{n}@{d}>\r\n\
             Call-ID: {cid}\r\nCSeq: {cs} REGISTER\r\nContact: <sip:{n}@{local}>\r\n\
             Expires: {exp}\r\nUser-Agent: loadgen\r\n",
            d = cfg.domain,
            n = user.number,
            ft = user.from_tag,
            cid = user.call_id,
            cs = user.cseq,
            exp = cfg.expires,
        );
        if let Some((hdr, value)) = auth {
            let _ = write!(m, "{hdr}: {value}\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        user.last = m.into_bytes();
        let (sock, gen, bytes) = (user.sock, user.gen, user.last.clone());
        let server = self.cfg.server;
        self.send(sock, server, &bytes);
        self.arm(now + T1, Timer::RegRetx(u, gen));
    }

    fn on_register_response(&mut self, u: usize, msg: &Msg) {
        let user = &self.users[u];
        if !user.busy || msg.cseq().map(|c| c.0) != Some(user.cseq) {
            return;
        }
        let Some(code) = msg.status else { return };
        if code < 200 {
            self.users[u].retx_every = T2;
            return;
        }
        let now = now_ns();
        if (code == 401 || code == 407) && !user.auth_tried {
            let hdr_in = if code == 401 {
                "www-authenticate"
            } else {
                "proxy-authenticate"
            };
            let hdr_out = if code == 401 {
                "Authorization"
            } else {
                "Proxy-Authorization"
            };
            let Some(ch) = msg.header(hdr_in).and_then(Challenge::parse) else {
                self.finish_register(u, Some(format!("{code} unparsable challenge")));
                return;
            };
            let uri = format!("sip:{}", self.cfg.domain);
            let cnonce = self.token();
            let user = &mut self.users[u];
            user.auth_tried = true;
            let value = ch.answer(
                "REGISTER",
                &uri,
                &user.number,
                &self.cfg.password,
                &cnonce,
                1,
            );
            self.send_register(u, Some((hdr_out, value)));
            return;
        }
        if (200..300).contains(&code) {
            let started = self.users[u].started;
            self.reg
                .latency
                .record_us(now.saturating_sub(started) / 1000);
            self.reg.ok += 1;
            self.live.regs_ok.fetch_add(1, Ordering::Relaxed);
            self.finish_register(u, None);
        } else {
            self.finish_register(u, Some(code.to_string()));
        }
    }

    fn finish_register(&mut self, u: usize, failure: Option<String>) {
        if let Some(f) = failure {
            bump(&mut self.reg.failed, f);
        }
        let user = &mut self.users[u];
        user.busy = false;
        user.gen += 1;
    }

    /// Users whose registration is still in flight.
    pub fn registering(&self) -> usize {
        self.users.iter().filter(|u| u.busy).count()
    }

    // ------------------------------------------------------------------- CALLS

    pub fn active_calls(&self) -> u64 {
        self.active_calls
    }

    /// Places one call from the next idle caller to the next idle callee.
    pub fn place_call(
        &mut self,
        callers: &[usize],
        callees: &[usize],
        max_concurrent: u64,
        hold_ns: u64,
    ) {
        if self.active_calls >= max_concurrent {
            self.call.throttled += 1;
            return;
        }
        let pick = |users: &Vec<User>, pool: &[usize], next: &mut usize| -> Option<usize> {
            for _ in 0..pool.len() {
                let u = pool[*next % pool.len()];
                *next += 1;
                if users[u].in_call.is_none() && !users[u].busy {
                    return Some(u);
                }
            }
            None
        };
        let Some(caller) = pick(&self.users, callers, &mut self.next_caller) else {
            self.call.throttled += 1;
            return;
        };
        self.users[caller].in_call = Some(usize::MAX);
        let Some(callee) = pick(&self.users, callees, &mut self.next_callee) else {
            self.users[caller].in_call = None;
            self.call.throttled += 1;
            return;
        };
        let c = self.calls.len();
        self.users[caller].in_call = Some(c);
        self.users[callee].in_call = Some(c);
        let now = now_ns();
        let call_id = format!("call-{c}-{}-{}@loadgen", std::process::id(), self.token());
        let from_tag = self.token();
        let nrtp = self.rtp.as_ref().map(|r| r.1.len()).unwrap_or(1).max(1);
        self.owners.insert(call_id.clone(), Owner::Caller(c));
        self.calls.push(Call {
            caller,
            callee,
            call_id,
            from_tag,
            cseq: 0,
            branch: String::new(),
            state: CallState::Inviting,
            started: now,
            deadline: now + self.cfg.timeout_ns,
            retx_every: T1,
            got_provisional: false,
            auth_tried: false,
            last: Vec::new(),
            ack: Vec::new(),
            gen: 0,
            to_header: String::new(),
            remote_target: String::new(),
            routes: Vec::new(),
            rtp_caller: (2 * c) % nrtp,
            rtp_callee: (2 * c + 1) % nrtp,
            b_call_id: None,
            b_response: Vec::new(),
            b_peer: self.cfg.server,
            b_acked: false,
            b_retx_every: T1,
            b_gen: 0,
            hold_ns,
            answered: false,
            ok: false,
        });
        self.active_calls += 1;
        self.call.attempted += 1;
        self.call.max_concurrent = self.call.max_concurrent.max(self.active_calls);
        self.live
            .calls_active
            .store(self.active_calls, Ordering::Relaxed);
        self.send_invite(c, None);
    }

    fn rtp_addr(&self, sock: usize) -> SocketAddr {
        self.rtp
            .as_ref()
            .and_then(|r| r.1.get(sock).copied())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    fn invite_uri(&self, c: usize) -> String {
        format!(
            "sip:{}@{}",
            self.users[self.calls[c].callee].number, self.cfg.domain
        )
    }

    fn send_invite(&mut self, c: usize, auth: Option<(&str, String)>) {
        let branch = self.token();
        let uri = self.invite_uri(c);
        let sdp = sdp_body(self.rtp_addr(self.calls[c].rtp_caller), c as u64);
        let sock = self.users[self.calls[c].caller].sock;
        let local = self.addrs[sock];
        let caller_num = self.users[self.calls[c].caller].number.clone();
        let callee_num = self.users[self.calls[c].callee].number.clone();
        let d = self.cfg.domain.clone();
        let call = &mut self.calls[c];
        call.cseq += 1;
        call.gen += 1;
        call.branch = branch;
        call.retx_every = T1;
        call.got_provisional = false;
        let mut m = String::with_capacity(1200);
        let _ = write!(
            m,
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{caller_num}@{d}>;tag={ft}\r\nTo: <sip:{callee_num}@{d}>\r\n\
             Call-ID: {cid}\r\nCSeq: {cs} INVITE\r\nContact: <sip:{caller_num}@{local}>\r\n\
             User-Agent: loadgen\r\nContent-Type: application/sdp\r\n",
            b = call.branch,
            ft = call.from_tag,
            cid = call.call_id,
            cs = call.cseq,
        );
        if let Some((h, v)) = auth {
            let _ = write!(m, "{h}: {v}\r\n");
        }
        let _ = write!(m, "Content-Length: {}\r\n\r\n{sdp}", sdp.len());
        call.last = m.into_bytes();
        let (gen, bytes) = (call.gen, call.last.clone());
        let server = self.cfg.server;
        self.send(sock, server, &bytes);
        self.arm(now_ns() + T1, Timer::CallRetx(c, gen));
    }

    /// ACK for a non-2xx final response: same branch, Request-URI as the INVITE.
    fn ack_failure(&mut self, c: usize, msg: &Msg) {
        let uri = self.invite_uri(c);
        let sock = self.users[self.calls[c].caller].sock;
        let local = self.addrs[sock];
        let call = &self.calls[c];
        let from = format!(
            "<sip:{}@{}>;tag={}",
            self.users[call.caller].number, self.cfg.domain, call.from_tag
        );
        let m = format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cs} ACK\r\nContent-Length: 0\r\n\r\n",
            b = call.branch,
            to = msg.header("to").unwrap_or(""),
            cid = call.call_id,
            cs = call.cseq,
        );
        let server = self.cfg.server;
        self.send(sock, server, m.as_bytes());
    }

    /// An in-dialog request from the caller (ACK for 2xx, BYE).
    fn dialog_request(&mut self, c: usize, method: &str, cseq: u32) -> Vec<u8> {
        let branch = self.token();
        let sock = self.users[self.calls[c].caller].sock;
        let local = self.addrs[sock];
        let call = &self.calls[c];
        let mut m = String::with_capacity(600);
        let _ = write!(
            m,
            "{method} {rt} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:{caller}@{d}>;tag={ft}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n",
            rt = call.remote_target,
            caller = self.users[call.caller].number,
            d = self.cfg.domain,
            ft = call.from_tag,
            to = call.to_header,
            cid = call.call_id,
        );
        for r in &call.routes {
            let _ = write!(m, "Route: {r}\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m.into_bytes()
    }

    fn on_caller_response(&mut self, c: usize, msg: &Msg) {
        let Some(code) = msg.status else { return };
        let Some((cseq, method)) = msg.cseq() else {
            return;
        };
        let now = now_ns();
        let state = self.calls[c].state;
        if method.eq_ignore_ascii_case("BYE") {
            if state == CallState::ByeSent && code >= 200 && cseq == self.calls[c].cseq {
                if (200..300).contains(&code) {
                    self.call.completed += 1;
                    self.end_call(c, None);
                } else {
                    self.end_call(c, Some(format!("BYE {code}")));
                }
            }
            return;
        }
        if !method.eq_ignore_ascii_case("INVITE") {
            return;
        }
        if cseq != self.calls[c].cseq {
            // A late answer to the challenged INVITE: ACK it and move on.
            if code >= 300 {
                self.ack_failure(c, msg);
            }
            return;
        }
        if code < 200 {
            if state == CallState::Inviting {
                self.calls[c].got_provisional = true;
            }
            return;
        }
        if code >= 300 {
            self.ack_failure(c, msg);
            if state != CallState::Inviting {
                return;
            }
            if (code == 401 || code == 407) && !self.calls[c].auth_tried {
                let hdr_in = if code == 401 {
                    "www-authenticate"
                } else {
                    "proxy-authenticate"
                };
                let hdr_out = if code == 401 {
                    "Authorization"
                } else {
                    "Proxy-Authorization"
                };
                let Some(ch) = msg.header(hdr_in).and_then(Challenge::parse) else {
                    self.end_call(c, Some(format!("{code} unparsable challenge")));
                    return;
                };
                let uri = self.invite_uri(c);
                let cnonce = self.token();
                let number = self.users[self.calls[c].caller].number.clone();
                let value = ch.answer("INVITE", &uri, &number, &self.cfg.password, &cnonce, 1);
                self.calls[c].auth_tried = true;
                self.send_invite(c, Some((hdr_out, value)));
            } else {
                self.end_call(c, Some(code.to_string()));
            }
            return;
        }
        // 2xx
        let sock = self.users[self.calls[c].caller].sock;
        let server = self.cfg.server;
        if state != CallState::Inviting {
            // Retransmitted 200: our ACK was lost.
            let ack = self.calls[c].ack.clone();
            if !ack.is_empty() {
                self.send(sock, server, &ack);
            }
            return;
        }
        let dest = sdp_audio_addr(msg.body);
        {
            let call = &mut self.calls[c];
            call.to_header = msg.header("to").unwrap_or("").to_string();
            call.remote_target = msg
                .contact_uri()
                .map(str::to_string)
                .unwrap_or_else(|| format!("sip:{}", server));
            call.routes = msg
                .record_routes()
                .into_iter()
                .rev()
                .map(str::to_string)
                .collect();
            call.state = CallState::Up;
            call.answered = true;
            call.gen += 1;
        }
        let ack = self.dialog_request(c, "ACK", cseq);
        self.send(sock, server, &ack);
        self.calls[c].ack = ack;
        self.call.answered += 1;
        self.live.calls_answered.fetch_add(1, Ordering::Relaxed);
        self.call
            .setup
            .record_us(now.saturating_sub(self.calls[c].started) / 1000);
        match dest {
            Some(dest) => {
                if let Some((tx, _)) = &self.rtp {
                    let _ = tx.send(Cmd::Start {
                        id: 2 * c as u32,
                        sock: self.calls[c].rtp_caller,
                        dest,
                    });
                }
            }
            None => bump(&mut self.call.failed, "200 without SDP"),
        }
        let gen = self.calls[c].gen;
        self.arm(now + self.calls[c].hold_ns, Timer::Hangup(c, gen));
    }

    fn stop_media(&mut self, c: usize) {
        if let Some((tx, _)) = &self.rtp {
            let _ = tx.send(Cmd::Stop {
                id: 2 * c as u32,
                sock: self.calls[c].rtp_caller,
            });
            let _ = tx.send(Cmd::Stop {
                id: 2 * c as u32 + 1,
                sock: self.calls[c].rtp_callee,
            });
        }
    }

    fn end_call(&mut self, c: usize, failure: Option<String>) {
        if self.calls[c].state == CallState::Done {
            return;
        }
        self.stop_media(c);
        let ok = failure.is_none();
        if let Some(f) = failure {
            bump(&mut self.call.failed, f);
        }
        let call = &mut self.calls[c];
        call.state = CallState::Done;
        call.ok = ok;
        call.gen += 1;
        call.b_gen += 1;
        let (caller, callee) = (call.caller, call.callee);
        self.users[caller].in_call = None;
        self.users[callee].in_call = None;
        self.active_calls -= 1;
        self.live
            .calls_active
            .store(self.active_calls, Ordering::Relaxed);
    }

    /// Ends every call still running (end of a bounded run).
    pub fn abandon_all(&mut self, cause: &str) {
        for c in 0..self.calls.len() {
            if self.calls[c].state != CallState::Done {
                self.end_call(c, Some(cause.to_string()));
            }
        }
        for u in 0..self.users.len() {
            if self.users[u].busy {
                self.finish_register(u, Some(cause.to_string()));
            }
        }
    }

    pub fn records(&self) -> Vec<CallRecord> {
        self.calls
            .iter()
            .enumerate()
            .map(|(c, call)| CallRecord {
                answered: call.answered,
                caller_stream: 2 * c as u32,
                callee_stream: 2 * c as u32 + 1,
            })
            .collect()
    }

    // ----------------------------------------------------------- callee (UAS)

    fn response(
        req: &Msg,
        code: u16,
        reason: &str,
        to_tag: &str,
        contact: Option<&str>,
        body: &str,
    ) -> Vec<u8> {
        let mut m = String::with_capacity(800);
        let _ = write!(m, "SIP/2.0 {code} {reason}\r\n");
        for v in req.headers("via") {
            let _ = write!(m, "Via: {v}\r\n");
        }
        if (101..300).contains(&code) {
            for v in req.headers("record-route") {
                let _ = write!(m, "Record-Route: {v}\r\n");
            }
        }
        let to = req.header("to").unwrap_or("");
        let _ = write!(
            m,
            "From: {}\r\nTo: {to}{}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            req.header("from").unwrap_or(""),
            if to.contains(";tag=") || to_tag.is_empty() {
                String::new()
            } else {
                format!(";tag={to_tag}")
            },
            req.call_id().unwrap_or(""),
            req.header("cseq").unwrap_or(""),
        );
        if let Some(c) = contact {
            let _ = write!(m, "Contact: <{c}>\r\n");
        }
        if body.is_empty() {
            m.push_str("Content-Length: 0\r\n\r\n");
        } else {
            let _ = write!(
                m,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        m.into_bytes()
    }

    fn on_request(&mut self, sock: usize, from: SocketAddr, msg: &Msg) {
        let call_id = msg.call_id().unwrap_or("");
        // Through a proxy both legs share the Call-ID: a request is for our
        // caller only when its To tag is the caller's From tag.
        let caller = match self.owners.get(call_id) {
            Some(Owner::Caller(c)) => Some(*c),
            _ => None,
        };
        let to_caller = caller.filter(|&c| msg.to_tag() == Some(self.calls[c].from_tag.as_str()));
        let owner = match (to_caller, self.callee_of.get(call_id)) {
            (Some(c), _) => Some(Owner::Caller(c)),
            (None, Some(&c)) => Some(Owner::Callee(c)),
            (None, None) if caller.is_some() => None,
            (None, None) => self.owners.get(call_id).copied(),
        };
        let method = msg.method;
        match (method, owner) {
            ("INVITE", None) => self.on_new_invite(sock, from, msg),
            ("INVITE", Some(Owner::Callee(c))) => {
                let r = self.calls[c].b_response.clone();
                self.send(sock, from, &r);
            }
            ("ACK", Some(Owner::Callee(c))) => {
                self.calls[c].b_acked = true;
                self.calls[c].b_gen += 1;
            }
            ("ACK", _) => {}
            ("BYE", Some(Owner::Callee(c))) => {
                let r = Self::response(msg, 200, "OK", "", None, "");
                self.send(sock, from, &r);
                if let Some((tx, _)) = &self.rtp {
                    let _ = tx.send(Cmd::Stop {
                        id: 2 * c as u32 + 1,
                        sock: self.calls[c].rtp_callee,
                    });
                }
            }
            ("BYE", Some(Owner::Caller(c))) => {
                let r = Self::response(msg, 200, "OK", "", None, "");
                self.send(sock, from, &r);
                self.end_call(c, Some("BYE from server".into()));
            }
            ("CANCEL", Some(Owner::Callee(_))) => {
                let r = Self::response(msg, 200, "OK", "", None, "");
                self.send(sock, from, &r);
            }
            ("OPTIONS", _) => {
                let r = Self::response(msg, 200, "OK", "lg", None, "");
                self.send(sock, from, &r);
            }
            _ => {
                self.call.unexpected_requests += 1;
                let r = Self::response(msg, 481, "Call/Transaction Does Not Exist", "lg", None, "");
                self.send(sock, from, &r);
            }
        }
    }

    fn on_new_invite(&mut self, sock: usize, from: SocketAddr, msg: &Msg) {
        let callee = uri_user(msg.request_uri)
            .and_then(|n| self.by_number.get(n).copied())
            .or_else(|| {
                let to = angle_uri(msg.header("to")?)?;
                self.by_number.get(uri_user(to)?).copied()
            });
        let call = callee
            .and_then(|u| self.users[u].in_call)
            .filter(|&c| c < self.calls.len());
        let Some(c) = call.filter(|&c| self.calls[c].state == CallState::Inviting) else {
            self.call.unexpected_requests += 1;
            let r = Self::response(msg, 480, "Temporarily Unavailable", "lg", None, "");
            self.send(sock, from, &r);
            return;
        };
        let Some(call_id) = msg.call_id() else { return };
        let offer = sdp_audio_addr(msg.body);
        let tag = self.token();
        let local = self.addrs[sock];
        let contact = format!("sip:{}@{local}", self.users[self.calls[c].callee].number);
        let ringing = Self::response(msg, 180, "Ringing", &tag, Some(&contact), "");
        let sdp = sdp_body(self.rtp_addr(self.calls[c].rtp_callee), c as u64);
        let ok = Self::response(msg, 200, "OK", &tag, Some(&contact), &sdp);
        self.send(sock, from, &ringing);
        self.send(sock, from, &ok);
        self.callee_of.insert(call_id.to_string(), c);
        let now = now_ns();
        let call = &mut self.calls[c];
        call.b_call_id = Some(call_id.to_string());
        call.b_response = ok;
        call.b_peer = from;
        call.b_acked = false;
        call.b_retx_every = T1;
        call.b_gen += 1;
        let gen = call.b_gen;
        // Answering starts the callee's media at once: whether its first
        // packets reach the caller is what the clipping figure measures.
        match offer {
            Some(dest) => {
                if let Some((tx, _)) = &self.rtp {
                    let _ = tx.send(Cmd::Start {
                        id: 2 * c as u32 + 1,
                        sock: self.calls[c].rtp_callee,
                        dest,
                    });
                }
            }
            None => bump(&mut self.call.failed, "INVITE without SDP"),
        }
        self.arm(now + T1, Timer::CalleeRetx(c, gen));
    }

    // ------------------------------------------------------------------ timers

    fn fire(&mut self, t: Timer, now: u64) {
        match t {
            Timer::RegRetx(u, gen) => {
                if self.users[u].gen != gen || !self.users[u].busy {
                    return;
                }
                if now >= self.users[u].deadline {
                    self.finish_register(u, Some("timeout".into()));
                    return;
                }
                self.reg.retransmissions += 1;
                let (sock, bytes) = (self.users[u].sock, self.users[u].last.clone());
                let server = self.cfg.server;
                self.send(sock, server, &bytes);
                let every = (self.users[u].retx_every * 2).min(T2);
                self.users[u].retx_every = every;
                self.arm(now + every, Timer::RegRetx(u, gen));
            }
            Timer::CallRetx(c, gen) => {
                let call = &self.calls[c];
                if call.gen != gen
                    || call.state != CallState::Inviting && call.state != CallState::ByeSent
                {
                    return;
                }
                if now >= call.deadline {
                    let what = if call.state == CallState::ByeSent {
                        "BYE timeout"
                    } else {
                        "INVITE timeout"
                    };
                    self.end_call(c, Some(what.into()));
                    return;
                }
                let every = (call.retx_every * 2).min(T2);
                if !(call.state == CallState::Inviting && call.got_provisional) {
                    self.call.retransmissions += 1;
                    let sock = self.users[call.caller].sock;
                    let bytes = call.last.clone();
                    let server = self.cfg.server;
                    self.send(sock, server, &bytes);
                }
                self.calls[c].retx_every = every;
                self.arm(now + every, Timer::CallRetx(c, gen));
            }
            Timer::Hangup(c, gen) => {
                if self.calls[c].gen != gen || self.calls[c].state != CallState::Up {
                    return;
                }
                self.stop_media(c);
                self.calls[c].state = CallState::Hanging;
                self.arm(now + BYE_AFTER_STOP, Timer::SendBye(c, gen));
            }
            Timer::SendBye(c, gen) => {
                if self.calls[c].gen != gen || self.calls[c].state != CallState::Hanging {
                    return;
                }
                self.calls[c].cseq += 1;
                let cseq = self.calls[c].cseq;
                let bye = self.dialog_request(c, "BYE", cseq);
                let sock = self.users[self.calls[c].caller].sock;
                let server = self.cfg.server;
                self.send(sock, server, &bye);
                let call = &mut self.calls[c];
                call.last = bye;
                call.state = CallState::ByeSent;
                call.deadline = now + self.cfg.timeout_ns;
                call.retx_every = T1;
                call.gen += 1;
                let gen = call.gen;
                self.arm(now + T1, Timer::CallRetx(c, gen));
            }
            Timer::CalleeRetx(c, gen) => {
                let call = &self.calls[c];
                if call.b_gen != gen || call.b_acked || call.state == CallState::Done {
                    return;
                }
                if call.b_retx_every >= 16 * T1 {
                    return;
                }
                self.call.retransmissions += 1;
                let (peer, bytes) = (call.b_peer, call.b_response.clone());
                let sock = self.users[call.callee].sock;
                self.send(sock, peer, &bytes);
                let every = (self.calls[c].b_retx_every * 2).min(T2);
                self.calls[c].b_retx_every = every;
                self.arm(now + every, Timer::CalleeRetx(c, gen));
            }
        }
    }

    /// Handles input and timers until `until_ns` (or sooner when idle and
    /// `until_ns` is near), waiting at most `max_wait`.
    pub fn pump(&mut self, until_ns: u64) {
        loop {
            let now = now_ns();
            while let Some(Reverse((at, _))) = self.timers.peek() {
                if *at > now {
                    break;
                }
                if let Some(Reverse((_, t))) = self.timers.pop() {
                    self.fire(t, now);
                }
            }
            if now >= until_ns {
                return;
            }
            let next_timer = self.timers.peek().map(|r| r.0 .0).unwrap_or(u64::MAX);
            let wait = until_ns.min(next_timer).saturating_sub(now);
            let mut ready = std::mem::take(&mut self.ready);
            wait_readable(&self.socks, Duration::from_nanos(wait), &mut ready);
            for &i in &ready {
                loop {
                    let mut rb = std::mem::take(&mut self.rb);
                    let n = rb.recv(&self.socks[i]).unwrap_or(0);
                    for k in 0..n {
                        let (data, from) = rb.get(k);
                        self.on_datagram(i, from, data);
                    }
                    self.rb = rb;
                    if n < crate::net::BATCH {
                        break;
                    }
                }
            }
            self.ready = ready;
        }
    }

    fn on_datagram(&mut self, sock: usize, from: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        let Some(msg) = Msg::parse(data) else { return };
        if msg.status.is_none() {
            self.on_request(sock, from, &msg);
            return;
        }
        match msg.call_id().and_then(|c| self.owners.get(c)).copied() {
            Some(Owner::Reg(u)) => self.on_register_response(u, &msg),
            Some(Owner::Caller(c)) => self.on_caller_response(c, &msg),
            _ => {}
        }
    }
}
