//! SIP parse and serialize: our parser (with the headers every layer types:
//! top Via, CSeq, From, To, Call-ID) beside rsip 0.4 as the baseline (parse
//! plus typed Via and CSeq).
//!
//! `cargo bench -p softswitch-benches --bench sip_parse`

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion};
use rsip::prelude::*;
use std::hint::black_box;

const REGISTER: &str = "REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a7f2c3d4e5f60718;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060;rinstance=6f8a1b2c3d4e5f60;transport=UDP>\r\n\
To: \"Alice\" <sip:101@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=8a9b0c1d\r\n\
Call-ID: ZGQ4NjBkYmM0YjI0ZjUzMWE4OWE2NzQ5NDJjZDBlNmQ\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Zoiper rv2.10.20.3\r\n\
Authorization: Digest username=\"101\",realm=\"pbx.example.com\",nonce=\"5f2a8c1e9b7d4a3f\",uri=\"sip:pbx.example.com\",response=\"0d3e5a7c9b1f2e4d6a8c0b2d4f6e8a0c\",cnonce=\"a1b2c3d4\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:102@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---9d8c7b6a5f4e3d2c;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060;transport=UDP>\r\n\
To: <sip:102@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhhOWIwYzFkMmUzZjRhNWI\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n\
User-Agent: Zoiper rv2.10.20.3\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 245\r\n\r\n\
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
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=ssrc:1 cname:x\r\n";

const OK_SDP: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---9d8c7b6a5f4e3d2c;rport=5060;received=192.0.2.10\r\n\
Record-Route: <sip:192.0.2.1;lr>\r\n\
Contact: <sip:102@192.0.2.20:5062>\r\n\
To: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhhOWIwYzFkMmUzZjRhNWI\r\n\
CSeq: 1 INVITE\r\n\
Server: softswitch\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO\r\n\
Supported: replaces, timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 193\r\n\r\n\
v=0\r\n\
o=- 1234 1234 IN IP4 192.0.2.1\r\n\
s=softswitch\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n";

const RINGING: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---9d8c7b6a5f4e3d2c;rport=5060;received=192.0.2.10\r\n\
Contact: <sip:102@192.0.2.20:5062>\r\n\
To: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhhOWIwYzFkMmUzZjRhNWI\r\n\
CSeq: 1 INVITE\r\n\
Server: softswitch\r\n\
Content-Length: 0\r\n\r\n";

const MESSAGES: [(&str, &str); 4] = [
    ("register_auth", REGISTER),
    ("invite_sdp", INVITE),
    ("200_sdp", OK_SDP),
    ("180", RINGING),
];

/// A buffer as a transport hands it over: shared, reference-counted.
fn datagram(s: &str) -> Bytes {
    BytesMut::from(s.as_bytes()).freeze()
}

fn ours(c: &mut Criterion) {
    let mut g = c.benchmark_group("ours");
    for (name, text) in MESSAGES {
        let buf = datagram(text);
        let parsed = sip::parse_message(&buf).expect("bench message parses");
        g.bench_function(format!("parse_typed/{name}"), |b| {
            b.iter(|| {
                let m = sip::parse_message(black_box(&buf)).expect("parses");
                let via = m.top_via().expect("via");
                let cseq = m.cseq().expect("cseq");
                let from = m.from_hdr().expect("from");
                let to = m.to_hdr().expect("to");
                let call_id = m.call_id().expect("call-id").len();
                black_box((via, cseq, from, to, call_id, m))
            })
        });
        g.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| sip::parse_message(black_box(&buf)).expect("parses"))
        });
        g.bench_function(format!("serialize/{name}"), |b| {
            b.iter(|| black_box(&parsed).to_bytes())
        });
    }
    g.finish();
}

fn rsip_baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("rsip");
    for (name, text) in MESSAGES {
        let raw = text.as_bytes();
        let parsed = rsip::SipMessage::try_from(raw).expect("rsip parses the bench message");
        g.bench_function(format!("parse_typed/{name}"), |b| {
            b.iter(|| {
                let m = rsip::SipMessage::try_from(black_box(raw)).expect("parses");
                let via = m.via_header().expect("via").typed().expect("typed via");
                let cseq = m.cseq_header().expect("cseq").typed().expect("typed cseq");
                black_box((via, cseq, m))
            })
        });
        g.bench_function(format!("serialize/{name}"), |b| {
            b.iter(|| black_box(&parsed).to_string())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = ours, rsip_baseline
}
criterion_main!(benches);
