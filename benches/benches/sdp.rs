//! SDP on the call path: every INVITE's offer and every answer is parsed,
//! pointed at the relay (`media::rewrite_sdp`) and serialized again.
//!
//! `cargo bench -p softswitch-benches --bench sdp`
//!
//! Per iteration, for one typical desk-phone offer (PCMU, PCMA,
//! telephone-event, ptime 20, RTCP port, sendrecv; 13 lines, 245 bytes):
//! - `sdp/parse_offer`: `sip::sdp::Sdp::parse`;
//! - `sdp/rewrite_offer`: `media::rewrite_sdp` of the parsed offer (clone,
//!   addresses and port replaced);
//! - `sdp/to_bytes_offer`: serializing the rewritten offer;
//! - `sdp/parse_rewrite_serialize_offer`: the three in a row, as call
//!   control does for each body.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sip::sdp::Sdp;

const OFFER: &str = "v=0\r\n\
o=- 20518 0 IN IP4 192.168.1.20\r\n\
s=SDP data\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=rtcp:11781\r\n\
a=sendrecv\r\n";

const RELAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
const RELAY_PORT: u16 = 40_000;

fn bench_sdp(c: &mut Criterion) {
    let raw = Bytes::from_static(OFFER.as_bytes());
    let parsed = Sdp::parse(&raw).expect("offer parses");
    let rewritten = media::rewrite_sdp(&parsed, RELAY_IP, RELAY_PORT);
    let text = rewritten.to_bytes();
    let text = std::str::from_utf8(&text).expect("SDP is text");
    assert!(text.contains("c=IN IP4 203.0.113.5\r\n"), "{text}");
    assert!(text.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"), "{text}");
    assert!(text.contains("a=rtcp:40001"), "{text}");

    let mut g = c.benchmark_group("sdp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_offer", |b| b.iter(|| Sdp::parse(black_box(&raw))));
    g.bench_function("rewrite_offer", |b| {
        b.iter(|| media::rewrite_sdp(black_box(&parsed), RELAY_IP, RELAY_PORT))
    });
    g.bench_function("to_bytes_offer", |b| {
        b.iter(|| black_box(&rewritten).to_bytes())
    });
    g.bench_function("parse_rewrite_serialize_offer", |b| {
        b.iter(|| {
            Sdp::parse(black_box(&raw))
                .map(|sdp| media::rewrite_sdp(&sdp, RELAY_IP, RELAY_PORT).to_bytes())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_sdp);
criterion_main!(benches);
