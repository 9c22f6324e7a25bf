//! Fake phones driving the engine's sans-IO `Core` in simulated time.
//!
//! Messages are written as SIP text, parsed with `sip::parse_message` and
//! delivered the way the UDP transport does (requests get their top Via
//! stamped). Everything the core transmits is parsed and queued for the
//! address it is sent to. Only the media relay touches real sockets
//! (loopback, a private port range per test).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pbx::auth::{Algorithm, Challenge};
use pbx::{Core, CoreEvent, ExtensionInfo, Settings};
use sip::sdp::Sdp;
use sip::transport::{stamp_via, Incoming, Malformed, Received};
use sip::{HeaderName, Message, Peer, StartLine, TransportKind};

pub const DOMAIN: &str = "pbx.test";
pub const PBX_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
pub const PBX_PORT: u16 = 5060;
/// Ports per test: 32000 + 100 * n .. + 99.
pub const PORTS_PER_TEST: u16 = 100;

pub fn pbx_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PBX_IP), PBX_PORT)
}

/// The extensions every test knows: 1001..1003 (1003 never registers).
pub fn extensions() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("1001", "Alice", "alice-Secret-1001"),
        ("1002", "Bob", "bob-Secret-1002"),
        ("1003", "Carol", "carol-Secret-1003"),
    ]
}

pub fn password_of(user: &str) -> String {
    extensions()
        .into_iter()
        .find(|(n, _, _)| *n == user)
        .map(|(_, _, p)| p.to_string())
        .unwrap_or_else(|| "no-such-password".to_string())
}

pub fn settings(ring_timeout: Duration) -> Settings {
    let extensions = extensions()
        .into_iter()
        .map(|(n, name, pw)| {
            (
                n.to_string(),
                ExtensionInfo {
                    number: n.to_string(),
                    name: name.to_string(),
                    password: pw.to_string(),
                    site: None,
                },
            )
        })
        .collect::<HashMap<String, ExtensionInfo>>();
    Settings {
        router: std::sync::Arc::new(Settings::extensions_only_router(&extensions)),
        trunks: HashMap::new(),
        domain: DOMAIN.to_string(),
        user_agent: "softswitch-test".to_string(),
        ring_timeout,
        min_expires: 60,
        max_expires: 3600,
        extensions,
        advertised: HashMap::from([(TransportKind::Udp, pbx_addr())]),
        auth_algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        // No sites: admission never refuses these calls.
        admission: pbx::settings::AdmissionSettings::default(),
    }
}

/// The core, simulated time, and the queues of what it sent to each address.
pub struct Net {
    pub core: Core,
    pub now: Instant,
    start: Instant,
    wall0: SystemTime,
    inbox: HashMap<SocketAddr, VecDeque<Message>>,
    pub events: Vec<CoreEvent>,
    pub port_min: u16,
    pub port_max: u16,
}

impl Net {
    /// A core with a relay on 127.0.0.1 using the port range of test `n`.
    /// Must run inside a tokio runtime (the relay binds sockets).
    pub fn new(n: u16) -> Net {
        Net::with_ring_timeout(n, Duration::from_secs(60))
    }

    pub fn with_ring_timeout(n: u16, ring_timeout: Duration) -> Net {
        let port_min = 32000 + PORTS_PER_TEST * n;
        let port_max = port_min + PORTS_PER_TEST - 1;
        let ip = IpAddr::V4(PBX_IP);
        let relay =
            media::Relay::new(media::RelayConfig::new(ip, ip, port_min, port_max)).expect("relay");
        let core = Core::new(settings(ring_timeout), relay, [7u8; 32]);
        let start = Instant::now();
        Net {
            core,
            now: start,
            start,
            wall0: SystemTime::now(),
            inbox: HashMap::new(),
            events: Vec::new(),
            port_min,
            port_max,
        }
    }

    pub fn wall(&self) -> SystemTime {
        self.wall0 + (self.now - self.start)
    }

    /// Datagram octets from `from`, classified like the UDP transport does.
    pub fn deliver(&mut self, from: SocketAddr, bytes: Bytes) {
        let peer = Peer::udp(from);
        let rx = match sip::parse_message(&bytes) {
            Ok(mut msg) => {
                if msg.is_request() {
                    stamp_via(&mut msg, from);
                }
                Received::Message(Incoming {
                    msg,
                    from: peer,
                    local: pbx_addr(),
                })
            }
            Err(error) => Received::Malformed(Malformed {
                bytes,
                error,
                from: peer,
            }),
        };
        let (now, wall) = (self.now, self.wall());
        self.core.handle_received(now, wall, rx);
        self.pump();
    }

    /// Sends a message as its wire text.
    pub fn send(&mut self, from: SocketAddr, msg: &Message) {
        self.deliver(from, msg.to_bytes());
    }

    /// Moves what the core transmitted into the inboxes.
    pub fn pump(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            assert_eq!(t.to.transport, TransportKind::Udp, "only UDP phones here");
            let msg = sip::parse_message(&t.bytes).unwrap_or_else(|e| {
                panic!(
                    "core sent an unparsable message ({e}):\n{}",
                    String::from_utf8_lossy(&t.bytes)
                )
            });
            self.inbox.entry(t.to.addr).or_default().push_back(msg);
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
    }

    /// Advances simulated time by `d`, firing every timer due on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(due) = self.core.poll_timeout() {
            if due > target {
                break;
            }
            self.now = self.now.max(due);
            let (now, wall) = (self.now, self.wall());
            self.core.handle_timeout(now, wall);
            self.pump();
        }
        self.now = target;
    }

    pub fn take(&mut self, addr: SocketAddr) -> Option<Message> {
        self.inbox.get_mut(&addr).and_then(VecDeque::pop_front)
    }

    pub fn queued(&self, addr: SocketAddr) -> usize {
        self.inbox.get(&addr).map_or(0, VecDeque::len)
    }

    /// Everything queued for any address, in no particular order of address.
    pub fn take_all(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut out = Vec::new();
        for (addr, q) in self.inbox.iter_mut() {
            out.extend(q.drain(..).map(|m| (*addr, m)));
        }
        out
    }

    /// Asserts no address has anything queued.
    pub fn assert_quiet(&mut self) {
        let left = self.take_all();
        assert!(
            left.is_empty(),
            "unexpected messages:\n{}",
            left.iter()
                .map(|(a, m)| format!("to {a}:\n{}", text(m)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Waits (real time, bounded) for the relay to have every port back and
    /// no session left, then asserts it.
    pub async fn assert_media_released(&self) {
        let relay = self.core.relay();
        for _ in 0..200 {
            if relay.ports_in_use() == 0 && relay.active_sessions() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(relay.active_sessions(), 0, "media sessions left");
        assert_eq!(relay.ports_in_use(), 0, "media ports not back in the pool");
    }

    /// Lets every transaction run out (well past Timer B/F/H/J) and asserts
    /// nothing more was sent and no call is left.
    pub fn settle(&mut self) {
        self.advance(Duration::from_secs(40));
        self.assert_quiet();
        assert_eq!(self.core.stats().active_calls, 0, "calls left");
    }

    pub fn in_range(&self, port: u16) -> bool {
        (self.port_min..=self.port_max).contains(&port)
    }
}

/// The message as text, for assertion messages.
pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes()).into_owned()
}

/// A header value as a string.
pub fn hdr(m: &Message, name: HeaderName) -> Option<String> {
    m.header(&name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn hdr_str(m: &Message, name: &str) -> Option<String> {
    m.header_str(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn method_of(m: &Message) -> Option<String> {
    m.method().map(|x| x.as_str().to_string())
}

pub fn to_tag(m: &Message) -> Option<String> {
    m.to_hdr()
        .ok()
        .and_then(|t| t.tag().map(|t| String::from_utf8_lossy(t).into_owned()))
}

pub fn call_id(m: &Message) -> String {
    String::from_utf8_lossy(m.call_id().expect("Call-ID")).into_owned()
}

pub fn reason(m: &Message) -> String {
    match &m.start {
        StartLine::Response(r) => String::from_utf8_lossy(&r.reason).into_owned(),
        StartLine::Request(_) => String::new(),
    }
}

/// The first active audio stream's address in a message's SDP body.
pub fn sdp_addr(m: &Message) -> SocketAddr {
    let sdp = Sdp::parse(&m.body).unwrap_or_else(|e| panic!("bad SDP ({e:?}) in:\n{}", text(m)));
    let media = sdp
        .media
        .iter()
        .find(|x| x.port != 0)
        .unwrap_or_else(|| panic!("no active m= line in:\n{}", text(m)));
    sdp.rtp_addr(media)
        .unwrap_or_else(|| panic!("no address in SDP of:\n{}", text(m)))
}

/// The direction attribute of the first m= line (or session level), if any.
pub fn sdp_direction(m: &Message) -> Option<String> {
    let body = String::from_utf8_lossy(&m.body).into_owned();
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| body.lines().any(|l| l.trim() == format!("a={d}")))
        .map(str::to_string)
}

/// Builds a message from SIP text (CRLF line ends, Content-Length added).
pub fn build(start: &str, headers: &[(&str, String)], body: Option<(&str, &str)>) -> Message {
    let mut t = String::new();
    t.push_str(start);
    t.push_str("\r\n");
    for (n, v) in headers {
        t.push_str(&format!("{n}: {v}\r\n"));
    }
    match body {
        Some((ct, b)) => {
            t.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        }
        None => t.push_str("Content-Length: 0\r\n\r\n"),
    }
    sip::parse_message(&Bytes::from(t.clone()))
        .unwrap_or_else(|e| panic!("test message does not parse ({e}):\n{t}"))
}

pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

pub fn new_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// One dialog as a phone sees it.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    /// Our header (From as UAC, To as UAS), with our tag.
    pub local: String,
    /// Their header, with their tag once known.
    pub remote: String,
    /// Where in-dialog requests go (their Contact).
    pub target: String,
    /// Our last CSeq in this dialog.
    pub cseq: u32,
}

/// A fake SIP phone on a loopback address.
pub struct Phone {
    pub user: String,
    pub password: String,
    pub name: String,
    pub addr: SocketAddr,
    pub rtp_port: u16,
    reg_call_id: String,
    reg_cseq: u32,
}

impl Phone {
    /// Phone `user` at 127.0.0.`host`:`port`.
    pub fn new(user: &str, host: u8, port: u16) -> Phone {
        let name = extensions()
            .into_iter()
            .find(|(n, _, _)| *n == user)
            .map(|(_, name, _)| name.to_string())
            .unwrap_or_else(|| "Nobody".to_string());
        Phone {
            user: user.to_string(),
            password: password_of(user),
            name,
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), port),
            rtp_port: 40000 + u16::from(host) * 2,
            reg_call_id: format!("reg-{:016x}", rand::random::<u64>()),
            reg_cseq: 0,
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{DOMAIN}", self.user)
    }

    pub fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    pub fn via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch={branch};rport", self.addr)
    }

    pub fn sdp(&self, direction: &str) -> String {
        let ip = self.ip();
        format!(
            "v=0\r\no=- 4711 {} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n",
            rand::random::<u16>(),
            self.rtp_port
        )
    }

    // ----- receiving -----

    /// The next message queued for this phone.
    pub fn recv(&self, net: &mut Net) -> Message {
        net.take(self.addr)
            .unwrap_or_else(|| panic!("{} ({}) expected a message, got none", self.user, self.addr))
    }

    pub fn expect_response(&self, net: &mut Net, code: u16) -> Message {
        let m = self.recv(net);
        assert_eq!(
            m.status(),
            Some(code),
            "{} expected a {code}, got:\n{}",
            self.user,
            text(&m)
        );
        m
    }

    pub fn expect_request(&self, net: &mut Net, method: &str) -> Message {
        let m = self.recv(net);
        assert_eq!(
            method_of(&m).as_deref(),
            Some(method),
            "{} expected a {method}, got:\n{}",
            self.user,
            text(&m)
        );
        m
    }

    pub fn assert_idle(&self, net: &mut Net) {
        if let Some(m) = net.take(self.addr) {
            panic!("{} expected nothing, got:\n{}", self.user, text(&m));
        }
    }

    pub fn send(&self, net: &mut Net, msg: &Message) {
        net.send(self.addr, msg);
    }

    // ----- registration -----

    /// A REGISTER of this phone's contact, with optional credentials.
    pub fn register_request(&mut self, authorization: Option<String>) -> Message {
        self.reg_cseq += 1;
        let mut h = vec![
            ("Via", self.via(&new_branch())),
            ("Max-Forwards", "70".to_string()),
            ("From", format!("<{}>;tag={}", self.aor(), new_tag())),
            ("To", format!("<{}>", self.aor())),
            ("Call-ID", self.reg_call_id.clone()),
            ("CSeq", format!("{} REGISTER", self.reg_cseq)),
            ("Contact", self.contact()),
            ("Expires", "3600".to_string()),
            ("User-Agent", "FakePhone/1.0".to_string()),
        ];
        if let Some(a) = authorization {
            h.push(("Authorization", a));
        }
        build(&format!("REGISTER sip:{DOMAIN} SIP/2.0"), &h, None)
    }

    /// Digest credentials answering the MD5 challenge among `values`.
    pub fn answer_challenge<'a>(
        &self,
        values: impl Iterator<Item = &'a Bytes>,
        method: &str,
        uri: &str,
        password: &str,
    ) -> String {
        let challenges: Vec<Challenge> = values
            .map(|v| Challenge::parse(v).expect("challenge parses"))
            .collect();
        let md5 = challenges
            .iter()
            .find(|c| c.algorithm == Algorithm::Md5)
            .expect("an MD5 challenge");
        md5.authorization(
            method,
            uri,
            &self.user,
            password,
            &format!("cn{:08x}", rand::random::<u32>()),
            1,
        )
    }

    /// REGISTER, answer the 401, expect the 200.
    pub fn register(&mut self, net: &mut Net) -> Message {
        let req = self.register_request(None);
        self.send(net, &req);
        let challenge = self.expect_response(net, 401);
        let password = self.password.clone();
        let auth = self.answer_challenge(
            challenge.headers_named(&HeaderName::WwwAuthenticate),
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &password,
        );
        let req = self.register_request(Some(auth));
        self.send(net, &req);
        self.expect_response(net, 200)
    }

    // ----- calls as caller -----

    /// An INVITE to `ext` (new dialog); CSeq `cseq`.
    pub fn invite_request(
        &self,
        dialog: &Dialog,
        ext: &str,
        proxy_auth: Option<String>,
        with_sdp: bool,
    ) -> Message {
        let mut h = vec![
            ("Via", self.via(&new_branch())),
            ("Max-Forwards", "70".to_string()),
            ("From", dialog.local.clone()),
            ("To", format!("<sip:{ext}@{DOMAIN}>")),
            ("Call-ID", dialog.call_id.clone()),
            ("CSeq", format!("{} INVITE", dialog.cseq)),
            ("Contact", self.contact()),
            (
                "Allow",
                "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE".to_string(),
            ),
            ("User-Agent", "FakePhone/1.0".to_string()),
        ];
        if let Some(a) = proxy_auth {
            h.push(("Proxy-Authorization", a));
        }
        let sdp = self.sdp("sendrecv");
        build(
            &format!("INVITE sip:{ext}@{DOMAIN} SIP/2.0"),
            &h,
            with_sdp.then_some(("application/sdp", sdp.as_str())),
        )
    }

    /// A fresh caller-side dialog (no remote tag yet).
    pub fn new_dialog(&self, ext: &str) -> Dialog {
        Dialog {
            call_id: format!("{:016x}@{}", rand::random::<u64>(), self.ip()),
            local: format!("\"{}\" <{}>;tag={}", self.name, self.aor(), new_tag()),
            remote: format!("<sip:{ext}@{DOMAIN}>"),
            target: format!("sip:{ext}@{DOMAIN}"),
            cseq: 1,
        }
    }

    /// The ACK for a non-2xx final: same branch and Request-URI as the INVITE.
    pub fn ack_failure(&self, invite: &Message, resp: &Message) -> Message {
        let uri = invite.request_uri().expect("request").to_bytes();
        let via = hdr(invite, HeaderName::Via).expect("Via");
        let cseq = invite.cseq().expect("CSeq").seq;
        build(
            &format!("ACK {} SIP/2.0", String::from_utf8_lossy(&uri)),
            &[
                ("Via", via),
                ("Max-Forwards", "70".to_string()),
                ("From", hdr(invite, HeaderName::From).expect("From")),
                ("To", hdr(resp, HeaderName::To).expect("To")),
                ("Call-ID", call_id(invite)),
                ("CSeq", format!("{cseq} ACK")),
            ],
            None,
        )
    }

    /// The CANCEL of an INVITE we sent.
    pub fn cancel_request(&self, invite: &Message) -> Message {
        let uri = invite.request_uri().expect("request").to_bytes();
        let cseq = invite.cseq().expect("CSeq").seq;
        build(
            &format!("CANCEL {} SIP/2.0", String::from_utf8_lossy(&uri)),
            &[
                ("Via", hdr(invite, HeaderName::Via).expect("Via")),
                ("Max-Forwards", "70".to_string()),
                ("From", hdr(invite, HeaderName::From).expect("From")),
                ("To", hdr(invite, HeaderName::To).expect("To")),
                ("Call-ID", call_id(invite)),
                ("CSeq", format!("{cseq} CANCEL")),
            ],
            None,
        )
    }

    /// INVITE, expect 407, ACK it, INVITE again with credentials, expect
    /// 100. Returns the dialog and the authenticated INVITE.
    pub fn start_call(&self, net: &mut Net, ext: &str) -> (Dialog, Message) {
        let mut d = self.new_dialog(ext);
        let first = self.invite_request(&d, ext, None, true);
        self.send(net, &first);
        let challenge = self.expect_response(net, 407);
        let ack = self.ack_failure(&first, &challenge);
        self.send(net, &ack);
        self.assert_idle(net);
        d.cseq += 1;
        let auth = self.answer_challenge(
            challenge.headers_named(&HeaderName::ProxyAuthenticate),
            "INVITE",
            &format!("sip:{ext}@{DOMAIN}"),
            &self.password,
        );
        let invite = self.invite_request(&d, ext, Some(auth), true);
        self.send(net, &invite);
        self.expect_response(net, 100);
        (d, invite)
    }

    /// Learns the remote tag and target from a response that makes a dialog.
    pub fn confirm(&self, d: &mut Dialog, resp: &Message) {
        d.remote = hdr(resp, HeaderName::To).expect("To");
        if let Some(c) = resp
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.into_iter().next())
        {
            d.target = String::from_utf8_lossy(&c.uri.to_bytes()).into_owned();
        }
    }

    /// The ACK for a 2xx: a new transaction with the INVITE's CSeq number.
    pub fn ack_2xx(&self, d: &Dialog, cseq: u32) -> Message {
        build(
            &format!("ACK {} SIP/2.0", d.target),
            &[
                ("Via", self.via(&new_branch())),
                ("Max-Forwards", "70".to_string()),
                ("From", d.local.clone()),
                ("To", d.remote.clone()),
                ("Call-ID", d.call_id.clone()),
                ("CSeq", format!("{cseq} ACK")),
            ],
            None,
        )
    }

    /// A request inside a dialog, with the next CSeq.
    pub fn in_dialog(
        &self,
        d: &mut Dialog,
        method: &str,
        body: Option<(&str, &str)>,
        extra: &[(&str, String)],
    ) -> Message {
        d.cseq += 1;
        let mut h = vec![
            ("Via", self.via(&new_branch())),
            ("Max-Forwards", "70".to_string()),
            ("From", d.local.clone()),
            ("To", d.remote.clone()),
            ("Call-ID", d.call_id.clone()),
            ("CSeq", format!("{} {method}", d.cseq)),
        ];
        if method == "INVITE" || method == "UPDATE" {
            h.push(("Contact", self.contact()));
        }
        h.extend(extra.iter().cloned());
        build(&format!("{method} {} SIP/2.0", d.target), &h, body)
    }

    // ----- answering -----

    /// Our side of a dialog an INVITE created, with our tag `tag`.
    pub fn accept_dialog(&self, invite: &Message, tag: &str) -> Dialog {
        let target = invite
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.into_iter().next())
            .map(|c| String::from_utf8_lossy(&c.uri.to_bytes()).into_owned())
            .expect("INVITE has a Contact");
        Dialog {
            call_id: call_id(invite),
            local: format!("{};tag={tag}", hdr(invite, HeaderName::To).expect("To")),
            remote: hdr(invite, HeaderName::From).expect("From"),
            target,
            cseq: 100,
        }
    }

    /// A response to `req` as this phone builds it (its tag on To, its Contact).
    pub fn response(&self, req: &Message, code: u16, tag: &str, sdp: Option<String>) -> Message {
        let mut r = Message::response_to(req, code, Some(tag));
        if (101..300).contains(&code)
            && matches!(method_of(req).as_deref(), Some("INVITE" | "UPDATE"))
        {
            r.push(HeaderName::Contact, self.contact());
        }
        if let Some(s) = sdp {
            r.set_body("application/sdp", s);
        }
        // Through the text form, as a real phone would send it.
        sip::parse_message(&r.to_bytes()).expect("response parses")
    }

    pub fn respond(
        &self,
        net: &mut Net,
        req: &Message,
        code: u16,
        tag: &str,
        sdp: Option<String>,
    ) -> Message {
        let r = self.response(req, code, tag, sdp);
        self.send(net, &r);
        r
    }
}
