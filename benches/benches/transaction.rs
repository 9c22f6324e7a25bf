//! The sans-IO transaction layer (`sip::transaction::TransactionLayer`) as
//! a UDP server sees it, in simulated time.
//!
//! `cargo bench -p softswitch-benches --bench transaction`
//!
//! Per iteration, one whole server transaction:
//! - `transaction/non_invite_server`: a REGISTER in (`handle_message`),
//!   its `Request` event taken, a 200 sent (`send_response`, which
//!   serializes it), `poll_transmit` drained, and the transaction's end
//!   when Timer J fires (`handle_timeout`, `Terminated` event drained).
//! - `transaction/invite_server_happy_path`: an INVITE in, 100, 180 and 200
//!   sent (each serialized), the ACK for the 200 in (matched to the
//!   transaction in the RFC 6026 Accepted state), transmits and events
//!   drained, and the end when Timer L fires.
//!
//! The `_preparsed` ids EXCLUDE parsing: the requests are parsed before the
//! timed section (one template, cloned with a unique branch and Call-ID
//! per transaction) and the responses built from them (`response_to`).
//! The `_with_parse` ids INCLUDE it: each request is parsed from its bytes
//! (`sip::parse_message`) and each response built with `response_to`
//! inside the timed section. Responses are serialized by the layer in both.
//!
//! Transactions are run in chunks of 1000 with one clock value; the
//! simulated clock then jumps past Timers J and L, so up to 1000
//! transactions are alive at once and the timer expiry is counted in.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sip::message::HeaderName;
use sip::transaction::{TimerConfig, TransactionLayer, TxEvent};
use sip::{parse_message, Message, Peer, TransportKind};

/// Transactions per chunk: prepared untimed, run, then expired.
const CHUNK: u64 = 1_000;
/// Past Timers J and L (64*T1 = 32 s) and every retransmission timer.
const EXPIRY: Duration = Duration::from_secs(40);

const REGISTER: &str = "REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-BRANCH;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060;rinstance=6f8a1b2c3d4e5f60;transport=UDP>\r\n\
To: \"Alice\" <sip:101@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=8a9b0c1d\r\n\
Call-ID: CALLID\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n\
User-Agent: Zoiper rv2.10.20.3\r\n\
Authorization: Digest username=\"101\",realm=\"pbx.example.com\",nonce=\"5f2a8c1e9b7d4a3f\",uri=\"sip:pbx.example.com\",response=\"0d3e5a7c9b1f2e4d6a8c0b2d4f6e8a0c\",cnonce=\"a1b2c3d4\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:102@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-BRANCH;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060;transport=UDP>\r\n\
To: <sip:102@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: CALLID\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n\
User-Agent: Zoiper rv2.10.20.3\r\n\
Content-Length: 215\r\n\r\n\
v=0\r\n\
o=Z 0 1 IN IP4 192.0.2.10\r\n\
s=Z\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The ACK for the 2xx: a transaction of its own (new branch), the To tag
/// of the 200.
const ACK: &str = "ACK sip:102@192.0.2.20:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-BRANCH-ack;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: CALLID\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n";

const TO_TAG: &str = "as6f1a2b3c";

fn phone() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: SocketAddr::from(([192, 0, 2, 10], 5060)),
    }
}

/// `template` with a branch and Call-ID of its own for transaction `i`.
fn text(template: &str, i: u64) -> Bytes {
    Bytes::from(
        template
            .replace("BRANCH", &format!("{i:016x}"))
            .replace("CALLID", &format!("c{i:016x}@192.0.2.10")),
    )
}

fn parse(b: &Bytes) -> Message {
    parse_message(b).expect("bench message parses")
}

/// One transaction's messages, parsed and built untimed.
struct PreparsedNonInvite {
    request: Message,
    ok: Message,
}

struct PreparsedInvite {
    invite: Message,
    trying: Message,
    ringing: Message,
    ok: Message,
    ack: Message,
}

/// Parsed templates cloned per transaction with a unique branch and Call-ID
/// (a header replaced, no re-parse).
fn with_ids(template: &Message, i: u64, ack: bool) -> Message {
    let mut m = template.clone();
    let suffix = if ack { "-ack" } else { "" };
    m.set(
        HeaderName::Via,
        format!("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{i:016x}{suffix};rport"),
    );
    m.set(HeaderName::CallId, format!("c{i:016x}@192.0.2.10"));
    m
}

/// Takes the `Request` event of the message just handled.
fn request_key(layer: &mut TransactionLayer) -> sip::transaction::TxKey {
    match layer.poll_event() {
        Some(TxEvent::Request { key, .. }) => key,
        other => panic!("expected a new request, got {other:?}"),
    }
}

/// Drains transmits; returns how many there were.
fn drain_transmits(layer: &mut TransactionLayer) -> u64 {
    let mut n = 0;
    while let Some(t) = layer.poll_transmit() {
        black_box(t);
        n += 1;
    }
    n
}

fn drain_events(layer: &mut TransactionLayer) -> u64 {
    let mut n = 0;
    while let Some(e) = layer.poll_event() {
        black_box(e);
        n += 1;
    }
    n
}

/// Ends the chunk: Timers J/L fire, every transaction terminates.
fn expire(layer: &mut TransactionLayer, now: &mut Instant, n: u64) {
    *now += EXPIRY;
    layer.handle_timeout(*now);
    drain_transmits(layer);
    let ended = drain_events(layer);
    assert_eq!(ended, n, "every transaction ended");
    assert!(layer.is_empty() && layer.timer_count() == 0);
}

/// Runs `iters` transactions in chunks: `prepare` (untimed) makes a chunk's
/// input, `run` (timed) carries one transaction through the layer.
fn run_chunks<T>(
    iters: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut run: impl FnMut(&mut TransactionLayer, Instant, T),
) -> Duration {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let mut now = Instant::now();
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK);
        let input: Vec<T> = (done..done + n).map(&mut prepare).collect();
        let start = Instant::now();
        for t in input {
            run(&mut layer, now, t);
        }
        expire(&mut layer, &mut now, n);
        total += start.elapsed();
        done += n;
    }
    total
}

fn non_invite(layer: &mut TransactionLayer, now: Instant, request: Message, ok: Option<Message>) {
    let ok = ok.unwrap_or_else(|| Message::response_to(&request, 200, Some(TO_TAG)));
    layer.handle_message(now, request, phone());
    let key = request_key(layer);
    layer.send_response(now, &key, ok);
    assert_eq!(drain_transmits(layer), 1);
}

fn invite(
    layer: &mut TransactionLayer,
    now: Instant,
    invite: Message,
    responses: Option<[Message; 3]>,
    ack: Message,
) {
    let [trying, ringing, ok] = responses.unwrap_or_else(|| {
        [
            Message::response_to(&invite, 100, None),
            Message::response_to(&invite, 180, Some(TO_TAG)),
            Message::response_to(&invite, 200, Some(TO_TAG)),
        ]
    });
    layer.handle_message(now, invite, phone());
    let key = request_key(layer);
    layer.send_response(now, &key, trying);
    layer.send_response(now, &key, ringing);
    layer.send_response(now, &key, ok);
    layer.handle_message(now, ack, phone());
    match layer.poll_event() {
        Some(TxEvent::Ack {
            accepted: Some(k), ..
        }) if k == key => {}
        other => panic!("expected the ACK of the 200, got {other:?}"),
    }
    assert_eq!(drain_transmits(layer), 3);
}

fn bench_transactions(c: &mut Criterion) {
    let register = parse(&text(REGISTER, 0));
    let invite_t = parse(&text(INVITE, 0));
    let ack_t = parse(&text(ACK, 0));

    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));

    g.bench_function("non_invite_server_preparsed", |b| {
        b.iter_custom(|iters| {
            run_chunks(
                iters,
                |i| {
                    let request = with_ids(&register, i, false);
                    let ok = Message::response_to(&request, 200, Some(TO_TAG));
                    PreparsedNonInvite { request, ok }
                },
                |layer, now, t| non_invite(layer, now, t.request, Some(t.ok)),
            )
        })
    });

    g.bench_function("non_invite_server_with_parse", |b| {
        b.iter_custom(|iters| {
            run_chunks(
                iters,
                |i| text(REGISTER, i),
                |layer, now, raw| non_invite(layer, now, parse(&raw), None),
            )
        })
    });

    g.bench_function("invite_server_happy_path_preparsed", |b| {
        b.iter_custom(|iters| {
            run_chunks(
                iters,
                |i| {
                    let invite = with_ids(&invite_t, i, false);
                    PreparsedInvite {
                        trying: Message::response_to(&invite, 100, None),
                        ringing: Message::response_to(&invite, 180, Some(TO_TAG)),
                        ok: Message::response_to(&invite, 200, Some(TO_TAG)),
                        ack: with_ids(&ack_t, i, true),
                        invite,
                    }
                },
                |layer, now, t| {
                    invite(
                        layer,
                        now,
                        t.invite,
                        Some([t.trying, t.ringing, t.ok]),
                        t.ack,
                    )
                },
            )
        })
    });

    g.bench_function("invite_server_happy_path_with_parse", |b| {
        b.iter_custom(|iters| {
            run_chunks(
                iters,
                |i| (text(INVITE, i), text(ACK, i)),
                |layer, now, (inv, ack)| invite(layer, now, parse(&inv), None, parse(&ack)),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_transactions);
criterion_main!(benches);
