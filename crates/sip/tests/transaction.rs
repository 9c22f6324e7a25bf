//! The transaction layer in simulated time: a fake `now` advanced from one
//! deadline to the next, real message text through the real parser.

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::transaction::{
    new_branch, response_destination, TimerConfig, TransactionLayer, Transmit, TxEvent, TxKey,
    TxState,
};
use sip::{parse_message, HeaderName, Message, Method, Peer};

const UA: &str = "127.0.0.1:5070";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn udp(s: &str) -> Peer {
    Peer::udp(addr(s))
}

fn tcp(s: &str) -> Peer {
    Peer::tcp(addr(s))
}

/// Parses message text written with `\n` line ends.
fn sip(text: &str) -> Message {
    let wire = text.replace('\n', "\r\n");
    parse_message(&Bytes::from(wire)).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Sim {
    layer: TransactionLayer,
    t0: Instant,
    now: Instant,
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, TxEvent)>,
}

impl Sim {
    fn new() -> Sim {
        let t0 = Instant::now();
        Sim {
            layer: TransactionLayer::new(TimerConfig::default()),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn drain(&mut self) {
        let at = self.elapsed();
        while let Some(t) = self.layer.poll_transmit() {
            self.sent.push((at, t));
        }
        while let Some(e) = self.layer.poll_event() {
            self.events.push((at, e));
        }
    }

    /// Runs every timer up to `t` (from the start), in order.
    fn advance_to(&mut self, t: Duration) {
        let target = self.t0 + t;
        while let Some(at) = self.layer.poll_timeout() {
            if at > target {
                break;
            }
            assert!(at >= self.now, "deadline in the past");
            self.now = at;
            self.layer.handle_timeout(at);
            self.drain();
        }
        self.now = target;
    }

    fn recv(&mut self, msg: Message, from: Peer) {
        self.layer.handle_message(self.now, msg, from);
        self.drain();
    }

    fn send_request(&mut self, msg: Message, to: Peer) -> TxKey {
        let key = self.layer.send_request(self.now, msg, to);
        self.drain();
        key
    }

    fn send_response(&mut self, key: &TxKey, msg: Message) {
        self.layer.send_response(self.now, key, msg);
        self.drain();
    }

    fn take_sent(&mut self) -> Vec<(Duration, Transmit)> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<(Duration, TxEvent)> {
        std::mem::take(&mut self.events)
    }

    fn sent_times(&mut self) -> Vec<Duration> {
        self.take_sent().into_iter().map(|(t, _)| t).collect()
    }
}

fn parsed(t: &Transmit) -> Message {
    parse_message(&t.bytes).unwrap()
}

// ----- messages we send (client side) -----

fn our_invite(branch: &str, transport: &str) -> Message {
    sip(&format!(
        "INVITE sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:5060;branch={branch};rport
Max-Forwards: 70
Route: <sip:proxy.example.com;lr>
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: c1@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:5060>
Content-Type: application/sdp

v=0
o=alice 2890844526 2890844526 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"
    ))
}

fn our_options(branch: &str, transport: &str) -> Message {
    sip(&format!(
        "OPTIONS sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:5060;branch={branch}
Max-Forwards: 70
From: <sip:alice@example.com>;tag=o1
To: <sip:bob@example.com>
Call-ID: opt1@127.0.0.1
CSeq: 7 OPTIONS
Accept: application/sdp
Content-Length: 0

"
    ))
}

/// A response to one of our requests, as the far end writes it.
fn their_response(
    code: u16,
    reason: &str,
    branch: &str,
    cseq: &str,
    to_tag: Option<&str>,
) -> Message {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    sip(&format!(
        "SIP/2.0 {code} {reason}
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport=5060;received=127.0.0.1
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>{tag}
Call-ID: c1@127.0.0.1
CSeq: {cseq}
Contact: <sip:bob@127.0.0.1:5070>
Content-Length: 0

"
    ))
}

// ----- messages we receive (server side) -----

fn their_request(
    method: &str,
    via: &str,
    cseq: u32,
    cseq_method: &str,
    to_tag: Option<&str>,
) -> Message {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    sip(&format!(
        "{method} sip:alice@127.0.0.1:5060 SIP/2.0
Via: {via}
Max-Forwards: 70
From: \"Bob\" <sip:bob@example.com>;tag=b9
To: <sip:alice@example.com>{tag}
Call-ID: srv-call@127.0.0.1
CSeq: {cseq} {cseq_method}
Contact: <sip:bob@127.0.0.1:5070>
Content-Length: 0

"
    ))
}

fn ua_via(branch: &str) -> String {
    format!("SIP/2.0/UDP 127.0.0.1:5070;branch={branch}")
}

fn request_key(events: &[(Duration, TxEvent)]) -> TxKey {
    events
        .iter()
        .find_map(|(_, e)| match e {
            TxEvent::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("a Request event")
}

fn secs(v: &[f64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

// ===== INVITE client =====

#[test]
fn invite_client_udp_timer_a_doubles_until_timer_b() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_invite(&branch, "UDP"), udp(UA));
    assert_eq!(sim.layer.state(&key), Some(TxState::Calling));
    sim.advance_to(ms(40_000));
    let sent = sim.take_sent();
    assert!(sent.iter().all(|(_, t)| t.to == udp(UA)));
    assert!(sent.iter().all(|(_, t)| t.bytes == sent[0].1.bytes));
    let times: Vec<Duration> = sent.iter().map(|(t, _)| *t).collect();
    // Timer A: T1, 2*T1, 4*T1... with no cap; Timer B at 64*T1.
    assert_eq!(times, secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]));
    let events = sim.take_events();
    assert_eq!(
        events,
        vec![
            (ms(32_000), TxEvent::Timeout { key: key.clone() }),
            (ms(32_000), TxEvent::Terminated { key }),
        ]
    );
    assert!(sim.layer.is_empty());
    assert_eq!(sim.layer.poll_timeout(), None);
}

#[test]
fn invite_client_tcp_sends_once_and_times_out() {
    let mut sim = Sim::new();
    let key = sim.send_request(our_invite(&new_branch(), "TCP"), tcp(UA));
    assert_eq!(sim.layer.poll_timeout(), Some(sim.t0 + ms(32_000)));
    sim.advance_to(ms(40_000));
    assert_eq!(sim.sent_times(), vec![ms(0)]);
    let events = sim.take_events();
    assert_eq!(events[0], (ms(32_000), TxEvent::Timeout { key }));
    assert!(sim.layer.is_empty());
}

#[test]
fn invite_client_provisional_stops_timers_a_and_b() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_invite(&branch, "UDP"), udp(UA));
    sim.advance_to(ms(700)); // one retransmission at 500 ms
    sim.recv(
        their_response(100, "Trying", &branch, "1 INVITE", None),
        udp(UA),
    );
    sim.recv(
        their_response(180, "Ringing", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Proceeding));
    sim.advance_to(ms(120_000));
    assert_eq!(sim.sent_times(), vec![ms(0), ms(500)]);
    let codes: Vec<u16> = sim
        .take_events()
        .iter()
        .map(|(_, e)| match e {
            TxEvent::Response { msg, .. } => msg.status().unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(codes, vec![100, 180]);
    // No timer runs in Proceeding: the TU decides (CANCEL).
    assert_eq!(sim.layer.poll_timeout(), None);
    assert_eq!(sim.layer.len(), 1);
}

#[test]
fn invite_client_acks_a_4xx_itself_and_absorbs_retransmissions_until_timer_d() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_invite(&branch, "UDP"), udp(UA));
    sim.take_sent();
    sim.advance_to(ms(100));
    sim.recv(
        their_response(100, "Trying", &branch, "1 INVITE", None),
        udp(UA),
    );
    sim.advance_to(ms(2_000));
    sim.recv(
        their_response(486, "Busy Here", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Completed));

    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.to, udp(UA));
    let ack = parsed(&sent[0].1);
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        "sip:bob@127.0.0.1:5070"
    );
    let vias = ack.vias().unwrap();
    assert_eq!(vias.len(), 1);
    assert_eq!(vias[0].branch().unwrap().as_ref(), branch.as_bytes());
    assert_eq!(ack.to_hdr().unwrap().tag().unwrap().as_ref(), b"b1");
    assert_eq!(ack.from_hdr().unwrap().tag().unwrap().as_ref(), b"a1");
    assert_eq!(ack.call_id().unwrap().as_ref(), b"c1@127.0.0.1");
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
    assert_eq!(
        ack.header(&HeaderName::Route).unwrap().as_ref(),
        b"<sip:proxy.example.com;lr>"
    );
    assert!(ack.body.is_empty());

    let events = sim.take_events();
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[1].1, TxEvent::Response { msg, .. } if msg.status() == Some(486)));

    // A retransmitted 486 is absorbed and answered with the same ACK.
    sim.advance_to(ms(3_000));
    sim.recv(
        their_response(486, "Busy Here", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    let again = sim.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.bytes, sent[0].1.bytes);
    assert!(sim.take_events().is_empty());

    // Timer D: 32 s after the final response.
    sim.advance_to(ms(33_999));
    assert_eq!(sim.layer.len(), 1);
    sim.advance_to(ms(34_000));
    assert_eq!(
        sim.take_events(),
        vec![(ms(34_000), TxEvent::Terminated { key })]
    );
    assert!(sim.layer.is_empty());
}

#[test]
fn invite_client_over_tcp_ends_at_the_final_response() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_invite(&branch, "TCP"), tcp(UA));
    sim.recv(
        their_response(404, "Not Found", &branch, "1 INVITE", Some("b1")),
        tcp(UA),
    );
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 2, "INVITE and ACK");
    assert_eq!(parsed(&sent[1].1).method(), Some(&Method::Ack));
    let events = sim.take_events();
    assert!(matches!(&events[0].1, TxEvent::Response { msg, .. } if msg.status() == Some(404)));
    assert_eq!(events[1].1, TxEvent::Terminated { key });
    assert!(sim.layer.is_empty());
}

#[test]
fn invite_client_passes_every_2xx_until_timer_m() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_invite(&branch, "UDP"), udp(UA));
    sim.take_sent();
    sim.advance_to(ms(300));
    sim.recv(
        their_response(200, "OK", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Accepted));
    sim.advance_to(ms(800));
    sim.recv(
        their_response(200, "OK", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    // A second fork answers too.
    sim.recv(
        their_response(200, "OK", &branch, "1 INVITE", Some("fork2")),
        udp(UA),
    );
    // The ACK for a 2xx is the TU's: the layer sent nothing, not even a retransmission.
    assert!(sim.take_sent().is_empty());
    let tags: Vec<Bytes> = sim
        .take_events()
        .into_iter()
        .map(|(_, e)| match e {
            TxEvent::Response { key: k, msg } => {
                assert_eq!(k, key);
                msg.to_hdr().unwrap().tag().unwrap().clone()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tags, vec!["b1", "b1", "fork2"]);

    // Timer M = 64*T1 after the first 2xx.
    sim.advance_to(ms(32_299));
    assert_eq!(sim.layer.len(), 1);
    sim.advance_to(ms(32_300));
    assert_eq!(
        sim.take_events(),
        vec![(ms(32_300), TxEvent::Terminated { key })]
    );

    // Later retransmissions are stray: the TU re-ACKs from the dialog.
    sim.recv(
        their_response(200, "OK", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    let events = sim.take_events();
    assert!(
        matches!(&events[..], [(_, TxEvent::StrayResponse { from, msg })] if *from == udp(UA) && msg.status() == Some(200))
    );
}

#[test]
fn invite_client_transport_error_is_a_timeout() {
    let mut sim = Sim::new();
    let key = sim.send_request(our_invite(&new_branch(), "TCP"), tcp(UA));
    sim.layer.transport_error(sim.now, &key);
    sim.drain();
    assert_eq!(
        sim.take_events(),
        vec![
            (ms(0), TxEvent::Timeout { key: key.clone() }),
            (ms(0), TxEvent::Terminated { key })
        ]
    );
    assert!(sim.layer.is_empty());
    assert_eq!(sim.layer.timer_count(), 0);
}

// ===== non-INVITE client =====

#[test]
fn non_invite_client_udp_timer_e_caps_at_t2_until_timer_f() {
    let mut sim = Sim::new();
    let key = sim.send_request(our_options(&new_branch(), "UDP"), udp(UA));
    sim.advance_to(ms(40_000));
    assert_eq!(
        sim.sent_times(),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(
        sim.take_events(),
        vec![
            (ms(32_000), TxEvent::Timeout { key: key.clone() }),
            (ms(32_000), TxEvent::Terminated { key })
        ]
    );
}

#[test]
fn non_invite_client_tcp_has_no_timer_e() {
    let mut sim = Sim::new();
    let key = sim.send_request(our_options(&new_branch(), "TCP"), tcp(UA));
    sim.advance_to(ms(40_000));
    assert_eq!(sim.sent_times(), vec![ms(0)]);
    assert_eq!(sim.take_events()[0], (ms(32_000), TxEvent::Timeout { key }));
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_options(&branch, "UDP"), udp(UA));
    sim.advance_to(ms(200));
    sim.recv(
        their_response(100, "Trying", &branch, "7 OPTIONS", None),
        udp(UA),
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Proceeding));
    sim.advance_to(ms(13_000));
    // The timer armed in Trying still fires at 500 ms, then every T2.
    assert_eq!(sim.sent_times(), secs(&[0.0, 0.5, 4.5, 8.5, 12.5]));
}

#[test]
fn non_invite_client_completes_and_absorbs_for_timer_k() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_options(&branch, "UDP"), udp(UA));
    sim.advance_to(ms(600));
    sim.recv(
        their_response(200, "OK", &branch, "7 OPTIONS", Some("b1")),
        udp(UA),
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Completed));
    sim.recv(
        their_response(200, "OK", &branch, "7 OPTIONS", Some("b1")),
        udp(UA),
    );
    let events = sim.take_events();
    assert_eq!(events.len(), 1, "the retransmitted 200 is absorbed");
    assert!(matches!(&events[0].1, TxEvent::Response { msg, .. } if msg.status() == Some(200)));
    // No retransmission after the final response; Timer K = T4.
    sim.advance_to(ms(5_599));
    assert_eq!(sim.sent_times(), secs(&[0.0, 0.5]));
    assert_eq!(sim.layer.len(), 1);
    sim.advance_to(ms(5_600));
    assert_eq!(
        sim.take_events(),
        vec![(ms(5_600), TxEvent::Terminated { key })]
    );
}

#[test]
fn non_invite_client_tcp_timer_k_is_zero() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let key = sim.send_request(our_options(&branch, "TCP"), tcp(UA));
    sim.recv(
        their_response(200, "OK", &branch, "7 OPTIONS", Some("b1")),
        tcp(UA),
    );
    let events = sim.take_events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1, TxEvent::Terminated { key });
    assert!(sim.layer.is_empty());
}

#[test]
fn cancel_is_its_own_client_transaction_on_the_invite_branch() {
    let mut sim = Sim::new();
    let branch = new_branch();
    let invite = sim.send_request(our_invite(&branch, "UDP"), udp(UA));
    sim.recv(
        their_response(180, "Ringing", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    let cancel_msg = sip(&format!(
        "CANCEL sip:bob@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport
Max-Forwards: 70
Route: <sip:proxy.example.com;lr>
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: c1@127.0.0.1
CSeq: 1 CANCEL
Content-Length: 0

"
    ));
    let cancel = sim.send_request(cancel_msg, udp(UA));
    assert_ne!(cancel, invite);
    sim.take_events();
    sim.recv(
        their_response(200, "OK", &branch, "1 CANCEL", Some("b1")),
        udp(UA),
    );
    sim.recv(
        their_response(487, "Request Terminated", &branch, "1 INVITE", Some("b1")),
        udp(UA),
    );
    let keys: Vec<(TxKey, u16)> = sim
        .take_events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            TxEvent::Response { key, msg } => Some((key, msg.status().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec![(cancel, 200), (invite, 487)]);
}

#[test]
fn stray_response_is_reported() {
    let mut sim = Sim::new();
    sim.recv(
        their_response(200, "OK", "z9hG4bKunknown", "1 INVITE", Some("b1")),
        udp(UA),
    );
    let events = sim.take_events();
    assert!(matches!(&events[..], [(_, TxEvent::StrayResponse { from, .. })] if *from == udp(UA)));
    assert!(sim.layer.is_empty());
}

// ===== non-INVITE server =====

#[test]
fn non_invite_server_absorbs_and_replays_until_timer_j() {
    let mut sim = Sim::new();
    let via = ua_via("z9hG4bKopt1");
    let req = their_request("OPTIONS", &via, 3, "OPTIONS", None);
    sim.recv(req.clone(), udp(UA));
    let events = sim.take_events();
    let key = request_key(&events);
    assert!(
        matches!(&events[..], [(_, TxEvent::Request { from, msg, .. })] if *from == udp(UA) && msg == &req)
    );
    assert_eq!(sim.layer.state(&key), Some(TxState::Trying));

    // Retransmission in Trying: absorbed silently.
    sim.recv(req.clone(), udp(UA));
    assert!(sim.take_events().is_empty());
    assert!(sim.take_sent().is_empty());

    sim.advance_to(ms(100));
    sim.send_response(&key, Message::response_to(&req, 200, Some("s1")));
    assert_eq!(sim.layer.state(&key), Some(TxState::Completed));
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.to, udp(UA));
    assert_eq!(parsed(&sent[0].1).status(), Some(200));

    // Retransmission in Completed: the 200 again, same bytes.
    sim.advance_to(ms(1_000));
    sim.recv(req, udp(UA));
    let again = sim.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.bytes, sent[0].1.bytes);
    assert!(sim.take_events().is_empty());

    // Timer J = 64*T1 after the final response.
    sim.advance_to(ms(32_099));
    assert_eq!(sim.layer.len(), 1);
    sim.advance_to(ms(32_100));
    assert_eq!(
        sim.take_events(),
        vec![(ms(32_100), TxEvent::Terminated { key })]
    );
}

#[test]
fn challenge_ends_the_server_transaction_at_once() {
    for (method, code) in [("REGISTER", 401), ("INVITE", 407)] {
        let mut sim = Sim::new();
        let req = their_request(method, &ua_via("z9hG4bKch1"), 1, method, None);
        sim.recv(req.clone(), udp(UA));
        let key = request_key(&sim.take_events());
        sim.layer.send_response_and_end(
            sim.now,
            &key,
            Message::response_to(&req, code, Some("c1")),
        );
        sim.drain();
        let sent = sim.take_sent();
        assert_eq!(sent.len(), 1, "{method}");
        assert_eq!(parsed(&sent[0].1).status(), Some(code));
        assert_eq!(
            sim.take_events(),
            vec![(ms(0), TxEvent::Terminated { key })]
        );
        // No state and no timer left: nothing is retransmitted later.
        assert_eq!(sim.layer.len(), 0, "{method}");
        assert_eq!(sim.layer.timer_count(), 0, "{method}");
        sim.advance_to(ms(40_000));
        assert!(sim.take_sent().is_empty(), "{method}");
        // A retransmitted request is a new request, to be challenged again.
        sim.recv(req, udp(UA));
        let events = sim.take_events();
        assert!(
            matches!(&events[..], [(_, TxEvent::Request { .. })]),
            "{method}: {events:?}"
        );
    }
}

#[test]
fn non_invite_server_proceeding_replays_the_provisional() {
    let mut sim = Sim::new();
    let req = their_request("REGISTER", &ua_via("z9hG4bKreg1"), 1, "REGISTER", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 100, None));
    assert_eq!(sim.layer.state(&key), Some(TxState::Proceeding));
    let first = sim.take_sent();
    sim.recv(req.clone(), udp(UA));
    let again = sim.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.bytes, first[0].1.bytes);
    assert_eq!(parsed(&again[0].1).status(), Some(100));
    // A second final response is refused.
    sim.send_response(&key, Message::response_to(&req, 200, Some("r")));
    sim.send_response(&key, Message::response_to(&req, 500, Some("r")));
    let finals: Vec<u16> = sim
        .take_sent()
        .iter()
        .map(|(_, t)| parsed(t).status().unwrap())
        .collect();
    assert_eq!(finals, vec![200]);
}

#[test]
fn non_invite_server_tcp_timer_j_is_zero() {
    let mut sim = Sim::new();
    let via = "SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKtcp1".to_string();
    let req = their_request("BYE", &via, 2, "BYE", Some("s1"));
    sim.recv(req.clone(), tcp("127.0.0.1:40001"));
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 200, None));
    let sent = sim.take_sent();
    // TCP: back to the connection's source, not the Via port.
    assert_eq!(sent[0].1.to, tcp("127.0.0.1:40001"));
    assert_eq!(
        sim.take_events(),
        vec![(ms(0), TxEvent::Terminated { key })]
    );
    assert!(sim.layer.is_empty());
}

// ===== INVITE server =====

#[test]
fn invite_server_sends_100_trying_when_the_tu_is_slow() {
    let mut sim = Sim::new();
    let req = their_request("INVITE", &ua_via("z9hG4bKinv1"), 1, "INVITE", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.advance_to(ms(199));
    assert!(sim.take_sent().is_empty());
    sim.advance_to(ms(200));
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1);
    let trying = parsed(&sent[0].1);
    assert_eq!(trying.status(), Some(100));
    assert_eq!(trying.to_hdr().unwrap().tag(), None);
    assert_eq!(trying.call_id().unwrap().as_ref(), b"srv-call@127.0.0.1");
    // An INVITE retransmission gets the 100 again.
    sim.recv(req, udp(UA));
    assert_eq!(parsed(&sim.take_sent()[0].1).status(), Some(100));
    assert_eq!(sim.layer.state(&key), Some(TxState::Proceeding));

    // Not when the TU answers in time.
    let req2 = their_request("INVITE", &ua_via("z9hG4bKinv2"), 1, "INVITE", None);
    sim.recv(req2.clone(), udp(UA));
    let key2 = request_key(&sim.take_events());
    sim.send_response(&key2, Message::response_to(&req2, 180, Some("s2")));
    sim.advance_to(ms(5_000));
    let codes: Vec<u16> = sim
        .take_sent()
        .iter()
        .map(|(_, t)| parsed(t).status().unwrap())
        .collect();
    assert_eq!(codes, vec![180]);
}

#[test]
fn invite_server_retransmits_a_4xx_on_timer_g_until_timer_h() {
    let mut sim = Sim::new();
    let req = their_request("INVITE", &ua_via("z9hG4bKinv3"), 1, "INVITE", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 180, Some("s3")));
    // The provisional is replayed on a retransmitted INVITE, and the TU does not see it.
    sim.recv(req.clone(), udp(UA));
    assert!(sim.take_events().is_empty());
    assert_eq!(sim.sent_times(), vec![ms(0), ms(0)]);

    sim.advance_to(ms(1_000));
    sim.send_response(&key, Message::response_to(&req, 486, Some("s3")));
    assert_eq!(sim.layer.state(&key), Some(TxState::Completed));
    sim.advance_to(ms(40_000));
    let sent = sim.take_sent();
    assert!(sent.iter().all(|(_, t)| parsed(t).status() == Some(486)));
    let times: Vec<Duration> = sent.iter().map(|(t, _)| *t).collect();
    // Timer G: T1 doubling up to T2, from the final response at 1 s; Timer H at 33 s.
    assert_eq!(
        times,
        secs(&[1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5])
    );
    // Timer H: the transaction ends; no Ack event.
    assert_eq!(
        sim.take_events(),
        vec![(ms(33_000), TxEvent::Terminated { key })]
    );
}

#[test]
fn invite_server_ack_for_4xx_is_absorbed_and_timer_i_ends_it() {
    let mut sim = Sim::new();
    let branch = "z9hG4bKinv4";
    let req = their_request("INVITE", &ua_via(branch), 1, "INVITE", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 480, Some("s4")));
    sim.advance_to(ms(600)); // one Timer G retransmission at 500 ms
    let ack = their_request("ACK", &ua_via(branch), 1, "ACK", Some("s4"));
    sim.recv(ack.clone(), udp(UA));
    assert_eq!(sim.layer.state(&key), Some(TxState::Confirmed));
    sim.recv(ack, udp(UA));
    assert!(
        sim.take_events().is_empty(),
        "ACKs for a non-2xx stay in the layer"
    );
    // Confirmed: no more retransmissions; Timer I = T4.
    sim.advance_to(ms(5_599));
    assert_eq!(sim.sent_times(), vec![ms(0), ms(500)]);
    assert_eq!(sim.layer.len(), 1);
    sim.advance_to(ms(5_600));
    assert_eq!(
        sim.take_events(),
        vec![(ms(5_600), TxEvent::Terminated { key })]
    );
}

#[test]
fn invite_server_tcp_timers_g_and_i() {
    let mut sim = Sim::new();
    let via = "SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKinv5";
    let src = tcp("127.0.0.1:40002");
    let req = their_request("INVITE", via, 1, "INVITE", None);
    sim.recv(req.clone(), src);
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 403, Some("s5")));
    sim.advance_to(ms(10_000));
    assert_eq!(sim.sent_times(), vec![ms(0)], "no Timer G on TCP");
    sim.recv(their_request("ACK", via, 1, "ACK", Some("s5")), src);
    assert_eq!(
        sim.take_events(),
        vec![(ms(10_000), TxEvent::Terminated { key })]
    );
}

#[test]
fn invite_server_retransmits_2xx_until_the_ack() {
    let mut sim = Sim::new();
    let req = their_request("INVITE", &ua_via("z9hG4bKinv6"), 1, "INVITE", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 200, Some("s6")));
    assert_eq!(sim.layer.state(&key), Some(TxState::Accepted));
    sim.advance_to(ms(5_000));
    // A retransmitted INVITE gets the 2xx again and stays away from the TU.
    sim.recv(req, udp(UA));
    assert!(sim.take_events().is_empty());
    let times = sim.sent_times();
    assert_eq!(times, secs(&[0.0, 0.5, 1.5, 3.5, 5.0]));

    // The ACK for a 2xx is its own transaction (new branch).
    sim.advance_to(ms(6_000));
    let ack = their_request("ACK", &ua_via("z9hG4bKack6"), 1, "ACK", Some("s6"));
    sim.recv(ack.clone(), udp(UA));
    let events = sim.take_events();
    assert_eq!(
        events,
        vec![(
            ms(6_000),
            TxEvent::Ack {
                msg: ack.clone(),
                from: udp(UA),
                accepted: Some(key.clone())
            }
        )]
    );
    // A duplicate ACK is absorbed; the 2xx is no longer retransmitted.
    sim.recv(ack, udp(UA));
    sim.advance_to(ms(31_999));
    assert!(sim.take_events().is_empty());
    assert!(sim.take_sent().is_empty());
    // Timer L ends it without an AckTimeout.
    sim.advance_to(ms(40_000));
    assert_eq!(
        sim.take_events(),
        vec![(ms(32_000), TxEvent::Terminated { key })]
    );
}

#[test]
fn invite_server_2xx_without_ack_times_out_on_timer_l() {
    let mut sim = Sim::new();
    let req = their_request("INVITE", &ua_via("z9hG4bKinv7"), 1, "INVITE", None);
    sim.recv(req.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.advance_to(ms(1_000));
    sim.send_response(&key, Message::response_to(&req, 200, Some("s7")));
    sim.advance_to(ms(40_000));
    let times = sim.sent_times();
    // The 100 Trying the layer sent at 200 ms, then the 2xx and its retransmissions.
    assert_eq!(
        times,
        secs(&[0.2, 1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5])
    );
    assert_eq!(
        sim.take_events(),
        vec![
            (ms(33_000), TxEvent::AckTimeout { key: key.clone() }),
            (ms(33_000), TxEvent::Terminated { key })
        ]
    );
    // An ACK after that belongs to nobody.
    sim.recv(
        their_request("ACK", &ua_via("z9hG4bKlate"), 1, "ACK", Some("s7")),
        udp(UA),
    );
    assert!(matches!(
        &sim.take_events()[..],
        [(_, TxEvent::Ack { accepted: None, .. })]
    ));
}

#[test]
fn ack_for_an_unknown_2xx_goes_to_the_tu() {
    let mut sim = Sim::new();
    let ack = their_request("ACK", &ua_via("z9hG4bKnone"), 9, "ACK", Some("x"));
    sim.recv(ack.clone(), udp(UA));
    assert_eq!(
        sim.take_events(),
        vec![(
            ms(0),
            TxEvent::Ack {
                msg: ack,
                from: udp(UA),
                accepted: None
            }
        )]
    );
    assert!(sim.layer.is_empty());
}

#[test]
fn cancel_finds_the_invite_it_cancels() {
    let mut sim = Sim::new();
    let branch = "z9hG4bKinv8";
    let invite = their_request("INVITE", &ua_via(branch), 1, "INVITE", None);
    sim.recv(invite.clone(), udp(UA));
    let inv_key = request_key(&sim.take_events());
    sim.send_response(&inv_key, Message::response_to(&invite, 180, Some("s8")));

    let cancel = their_request("CANCEL", &ua_via(branch), 1, "CANCEL", None);
    sim.recv(cancel.clone(), udp(UA));
    let events = sim.take_events();
    let cancel_key = match &events[..] {
        [(
            _,
            TxEvent::Cancel {
                key,
                invite,
                msg,
                from,
            },
        )] => {
            assert_eq!(invite.as_ref(), Some(&inv_key));
            assert_eq!(msg, &cancel);
            assert_eq!(*from, udp(UA));
            key.clone()
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_ne!(cancel_key, inv_key);
    assert_eq!(sim.layer.len(), 2);

    // The TU answers both; a retransmitted CANCEL gets its 200 again.
    sim.take_sent();
    sim.send_response(&cancel_key, Message::response_to(&cancel, 200, Some("s8")));
    sim.send_response(&inv_key, Message::response_to(&invite, 487, Some("s8")));
    sim.recv(cancel, udp(UA));
    let codes: Vec<(u16, Method)> = sim
        .take_sent()
        .iter()
        .map(|(_, t)| {
            let m = parsed(t);
            (m.status().unwrap(), m.cseq().unwrap().method)
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (200, Method::Cancel),
            (487, Method::Invite),
            (200, Method::Cancel)
        ]
    );
    assert!(sim.take_events().is_empty());

    // A CANCEL from another sent-by matches nothing.
    let other = their_request(
        "CANCEL",
        "SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKinv8",
        1,
        "CANCEL",
        None,
    );
    sim.recv(other, udp("127.0.0.9:5070"));
    assert!(matches!(
        &sim.take_events()[..],
        [(_, TxEvent::Cancel { invite: None, .. })]
    ));
}

#[test]
fn rfc2543_requests_match_without_the_magic_cookie() {
    let mut sim = Sim::new();
    // An RFC 2543 UA: no branch at all.
    let via = "SIP/2.0/UDP 127.0.0.1:5070";
    let invite = their_request("INVITE", via, 5, "INVITE", None);
    sim.recv(invite.clone(), udp(UA));
    let key = request_key(&sim.take_events());
    sim.recv(invite.clone(), udp(UA));
    assert!(sim.take_events().is_empty(), "retransmission matched");

    // CANCEL matched per §9.2 by URI, tags, Call-ID, CSeq number and Via.
    let cancel = their_request("CANCEL", via, 5, "CANCEL", None);
    sim.recv(cancel, udp(UA));
    assert!(matches!(
        &sim.take_events()[..],
        [(_, TxEvent::Cancel { invite: Some(k), .. })] if *k == key
    ));

    sim.take_sent();
    sim.send_response(&key, Message::response_to(&invite, 404, Some("s9")));
    // The ACK carries the response's To tag and matches the INVITE.
    sim.recv(their_request("ACK", via, 5, "ACK", Some("s9")), udp(UA));
    assert_eq!(sim.layer.state(&key), Some(TxState::Confirmed));
    assert!(sim.take_events().is_empty());

    // Another CSeq is another transaction; a branch without the cookie is 2543 too.
    let other = their_request(
        "INVITE",
        "SIP/2.0/UDP 127.0.0.1:5070;branch=old1",
        6,
        "INVITE",
        None,
    );
    sim.recv(other.clone(), udp(UA));
    let key2 = request_key(&sim.take_events());
    assert_ne!(key2, key);
    sim.recv(other, udp(UA));
    assert!(sim.take_events().is_empty());
}

#[test]
fn responses_follow_received_and_rport() {
    let mut sim = Sim::new();
    let nat = udp("198.51.100.7:40000");
    // rport filled in by our transport, received too.
    let via = "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat1;rport=40000;received=198.51.100.7";
    let req = their_request("OPTIONS", via, 1, "OPTIONS", None);
    sim.recv(req.clone(), nat);
    let key = request_key(&sim.take_events());
    sim.send_response(&key, Message::response_to(&req, 200, None));
    assert_eq!(sim.take_sent()[0].1.to, nat);

    // Neither: the source address and the sent-by port.
    let req = their_request(
        "OPTIONS",
        "SIP/2.0/UDP 10.0.0.5:5080;branch=z9hG4bKnat2",
        1,
        "OPTIONS",
        None,
    );
    assert_eq!(
        response_destination(&req, nat),
        Some(udp("198.51.100.7:5080"))
    );
    // No port anywhere: 5060.
    let req = their_request(
        "OPTIONS",
        "SIP/2.0/UDP host.example.com;branch=z9hG4bKnat3",
        1,
        "OPTIONS",
        None,
    );
    assert_eq!(
        response_destination(&req, nat),
        Some(udp("198.51.100.7:5060"))
    );
    // A bare rport flag: the source port.
    let req = their_request(
        "OPTIONS",
        "SIP/2.0/UDP 10.0.0.5:5080;branch=z9hG4bKnat4;rport",
        1,
        "OPTIONS",
        None,
    );
    assert_eq!(response_destination(&req, nat), Some(nat));
}

#[test]
fn requests_without_a_via_are_dropped() {
    let mut sim = Sim::new();
    let req = sip("OPTIONS sip:alice@127.0.0.1 SIP/2.0
From: <sip:bob@example.com>;tag=1
To: <sip:alice@example.com>
Call-ID: novia
CSeq: 1 OPTIONS
Content-Length: 0

");
    sim.recv(req, udp(UA));
    assert!(sim.take_events().is_empty());
    assert!(sim.layer.is_empty());
}

#[test]
fn branches_are_unique_and_carry_the_cookie() {
    let a = new_branch();
    let b = new_branch();
    assert!(a.starts_with("z9hG4bK") && a.len() >= 7 + 16);
    assert_ne!(a, b);
}

#[test]
fn hundred_thousand_transactions_come_and_go() {
    let mut sim = Sim::new();
    const N: usize = 100_000;
    let mut keys = Vec::with_capacity(N);
    for i in 0..N {
        let req = their_request(
            "OPTIONS",
            &ua_via(&format!("z9hG4bKbulk{i}")),
            1,
            "OPTIONS",
            None,
        );
        sim.layer.handle_message(sim.now, req.clone(), udp(UA));
        let Some(TxEvent::Request { key, .. }) = sim.layer.poll_event() else {
            panic!("no request event");
        };
        sim.layer
            .send_response(sim.now, &key, Message::response_to(&req, 200, Some("t")));
        keys.push(key);
    }
    assert_eq!(sim.layer.len(), N);
    assert_eq!(sim.layer.timer_count(), N);
    let mut sent = 0;
    while sim.layer.poll_transmit().is_some() {
        sent += 1;
    }
    assert_eq!(sent, N);
    sim.now += ms(32_000);
    sim.layer.handle_timeout(sim.now);
    let mut terminated = 0;
    while let Some(e) = sim.layer.poll_event() {
        assert!(matches!(e, TxEvent::Terminated { .. }));
        terminated += 1;
    }
    assert_eq!(terminated, N);
    assert!(sim.layer.is_empty());
    assert_eq!(sim.layer.timer_count(), 0);
    assert_eq!(sim.layer.poll_timeout(), None);
    assert!(keys.windows(2).all(|w| w[0] != w[1]));
}
