//! Our parser against rsip 0.4 as a second opinion: the valid RFC 4475
//! messages rsip accepts, realistic traffic, and generated messages.

use bytes::Bytes;
use proptest::prelude::*;
use sip::parse_message;

#[path = "../../../fuzz/src/sip_targets.rs"]
#[allow(dead_code)]
mod sip_targets;

use sip_targets::{compare, our_fields, rsip_fields, sip_differential};

fn dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/rfc4475"
    ))
}

/// Compares both parsers on one message that both must accept.
fn agree(text: &[u8]) {
    let ours = parse_message(&Bytes::copy_from_slice(text))
        .unwrap_or_else(|e| panic!("we refuse: {e}\n{}", String::from_utf8_lossy(text)));
    let theirs = rsip_fields(text)
        .unwrap_or_else(|| panic!("rsip refuses:\n{}", String::from_utf8_lossy(text)));
    let mine = our_fields(&ours);
    // rsip types these for every realistic message: they must be there.
    assert!(
        theirs.call_id.is_some() && theirs.cseq.is_some() && theirs.via_host.is_some(),
        "rsip left fields untyped: {theirs:?}\n{}",
        String::from_utf8_lossy(text)
    );
    assert!(mine.call_id.is_some() && mine.cseq.is_some() && mine.via_host.is_some());
    compare(&mine, &theirs);
    // Request-URI, From and To URIs as rsip prints them.
    use rsip::prelude::*;
    let m = rsip::SipMessage::try_from(text).unwrap();
    if let rsip::SipMessage::Request(r) = &m {
        let u = ours.request_uri().unwrap();
        assert_eq!(r.uri.host_with_port.host.to_string(), u.host_str());
        assert_eq!(r.uri.user(), u.user_str());
    }
    let from = m.from_header().unwrap().typed().unwrap();
    let our_from = ours.from_hdr().unwrap();
    assert_eq!(from.uri.user(), our_from.uri.user_str());
    assert_eq!(
        from.uri.host_with_port.host.to_string(),
        our_from.uri.host_str()
    );
    let to = m.to_header().unwrap().typed().unwrap();
    let our_to = ours.to_hdr().unwrap();
    assert_eq!(to.uri.user(), our_to.uri.user_str());
    assert_eq!(
        to.uri.host_with_port.host.to_string(),
        our_to.uri.host_str()
    );
}

#[test]
fn valid_rfc4475_messages_rsip_accepts() {
    let valid = [
        "wsinv.dat",
        "intmeth.dat",
        "esc01.dat",
        "escnull.dat",
        "esc02.dat",
        "lwsdisp.dat",
        "longreq.dat",
        "dblreq.dat",
        "semiuri.dat",
        "transports.dat",
        "mpart01.dat",
        "unreason.dat",
        "noreason.dat",
    ];
    let mut compared = 0;
    for name in valid {
        let data = std::fs::read(dir().join(name)).unwrap();
        let ours = parse_message(&Bytes::from(data.clone())).unwrap();
        // Give rsip exactly one message (dblreq carries a second one).
        let exact = ours.to_bytes();
        let Some(theirs) = rsip_fields(&exact) else {
            continue;
        };
        compare(&our_fields(&parse_message(&exact).unwrap()), &theirs);
        sip_differential(&data);
        compared += 1;
    }
    // rsip refuses about half of them (folding, extension methods, long
    // values); at least the plain ones must have been compared.
    assert!(compared >= 5, "only {compared} compared");
}

const REGISTER: &str = "REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a7f2c3d4;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060;rinstance=6f8a1b2c;transport=UDP>\r\n\
To: \"Alice\" <sip:101@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=8a9b0c1d\r\n\
Call-ID: ZGQ4NjBkYmM0YjI0ZjUzMWE4OWE2NzQ5NDJjZDBlNmQ\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
User-Agent: Zoiper rv2.10.20.3\r\n\
Authorization: Digest username=\"101\",realm=\"pbx.example.com\",nonce=\"5f2a8c1e\",uri=\"sip:pbx.example.com\",response=\"0d3e5a7c9b1f2e4d6a8c0b2d4f6e8a0c\",algorithm=MD5\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:102@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-9d8c7b6a;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:101@192.0.2.10:5060>\r\n\
To: <sip:102@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhh\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 130\r\n\r\n\
v=0\r\n\
o=Z 0 1 IN IP4 192.0.2.10\r\n\
s=Z\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

const OK_SDP: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-9d8c7b6a;rport=5060;received=192.0.2.10\r\n\
Contact: <sip:102@192.0.2.20:5062>\r\n\
To: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhh\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 88\r\n\r\n\
v=0\r\n\
o=- 1 1 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0\r\n";

const RINGING: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-9d8c7b6a;rport=5060\r\n\
To: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhh\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

const BYE: &str = "BYE sip:101@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK77aa\r\n\
Max-Forwards: 70\r\n\
To: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
From: <sip:102@pbx.example.com>;tag=as6f1a2b3c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhh\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";

const CANCEL: &str = "CANCEL sip:102@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-9d8c7b6a\r\n\
Max-Forwards: 70\r\n\
To: <sip:102@pbx.example.com>\r\n\
From: \"Alice\" <sip:101@pbx.example.com>;tag=4f3e2d1c\r\n\
Call-ID: YjA3ZDNmODI5YTFlNGM2ZDhh\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\r\n";

const OPTIONS: &str = "OPTIONS sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5080;branch=z9hG4bK.Kq3fx;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:pbx.example.com>\r\n\
From: <sip:trunk@198.51.100.7>;tag=a1\r\n\
Call-ID: 8e3c@198.51.100.7\r\n\
CSeq: 100 OPTIONS\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n";

const COMPACT: &str = "INVITE sip:102@pbx.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-compact\r\n\
Max-Forwards: 70\r\n\
m: <sip:101@192.0.2.10:5060>\r\n\
t: <sip:102@pbx.example.com>\r\n\
f: <sip:101@pbx.example.com>;tag=cf1\r\n\
i: compact-1@192.0.2.10\r\n\
CSeq: 7 INVITE\r\n\
c: application/sdp\r\n\
l: 10\r\n\r\n\
v=0\r\ns=-\r\n";

#[test]
fn realistic_messages_agree() {
    for m in [
        REGISTER, INVITE, OK_SDP, RINGING, BYE, CANCEL, OPTIONS, COMPACT,
    ] {
        if m == COMPACT {
            // rsip does not know compact header names: it types none of
            // them, so only what it does see is compared.
            let ours = parse_message(&Bytes::from_static(m.as_bytes())).unwrap();
            let theirs = rsip_fields(m.as_bytes()).unwrap();
            assert!(theirs.call_id.is_none() && theirs.via_host.is_none());
            compare(&our_fields(&ours), &theirs);
        } else {
            agree(m.as_bytes());
        }
        sip_differential(m.as_bytes());
        sip_targets::sip_parse(m.as_bytes());
        let ours = parse_message(&Bytes::from_static(m.as_bytes())).unwrap();
        if ours.is_request() {
            assert_eq!(sip::validate::check_request(&ours), Ok(()), "{m}");
        } else {
            assert!(sip::validate::check_response(&ours), "{m}");
        }
    }
}

#[test]
fn compact_forms_map_to_long_names() {
    let m = parse_message(&Bytes::from_static(COMPACT.as_bytes())).unwrap();
    assert_eq!(m.call_id().unwrap().as_ref(), b"compact-1@192.0.2.10");
    assert_eq!(m.to_hdr().unwrap().uri.user_str(), Some("102"));
    assert_eq!(m.from_hdr().unwrap().tag().unwrap().as_ref(), b"cf1");
    assert_eq!(m.contacts().unwrap().unwrap().len(), 1);
    assert_eq!(m.body.as_ref(), b"v=0\r\ns=-\r\n");
    let out = m.to_bytes();
    assert!(out.windows(9).any(|w| w == b"Call-ID: "));
}

#[test]
fn ipv6_references() {
    // rsip cannot type an IPv6 sent-by, so this one is ours alone.
    let text = CANCEL
        .replace("192.0.2.10:5060", "[2001:db8::10]:5060")
        .replace(
            "sip:102@pbx.example.com SIP",
            "sip:102@[2001:db8::1]:5070;transport=tcp SIP",
        );
    let m = parse_message(&Bytes::from(text)).unwrap();
    let via = m.top_via().unwrap();
    assert_eq!(via.host_str(), "[2001:db8::10]");
    assert_eq!(via.port, Some(5060));
    let u = m.request_uri().unwrap();
    assert_eq!((u.host_str(), u.port), ("[2001:db8::1]", Some(5070)));
    assert_eq!(sip::validate::check_request(&m), Ok(()));
    for bad in ["[2001:db8::zz]", "[2001:db8::1", "[::1]x"] {
        let t = CANCEL.replace("192.0.2.10:5060", bad);
        let m = parse_message(&Bytes::from(t)).unwrap();
        assert!(m.top_via().is_err(), "{bad}");
    }
}

// ----- generated messages -----

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,6}){0,2}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ]
}

fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,10}"
}

prop_compose! {
    fn request()(
        method in prop_oneof![Just("INVITE"), Just("REGISTER"), Just("OPTIONS"), Just("BYE"), Just("MESSAGE")],
        ruser in proptest::option::of(user()),
        rhost in host(),
        rport in proptest::option::of(1u16..),
        vhost in host(),
        vport in proptest::option::of(1u16..),
        transport in prop_oneof![Just("UDP"), Just("TCP"), Just("TLS")],
        branch in "[a-zA-Z0-9]{1,16}",
        fuser in user(),
        fhost in host(),
        ftag in token(),
        tuser in user(),
        thost in host(),
        ttag in proptest::option::of(token()),
        display in proptest::option::of("[A-Za-z][A-Za-z ]{0,10}[A-Za-z]"),
        call_id in "[a-zA-Z0-9.!%*_+-]{1,20}(@[a-z0-9.]{1,12})?",
        seq in 0u32..=2_147_483_647,
        mf in 0u32..=255,
        extra in proptest::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,20}"), 0..4),
        body in "[ -~]{0,40}",
    ) -> String {
        let ruri = match (ruser, rport) {
            (Some(u), Some(p)) => format!("sip:{u}@{rhost}:{p}"),
            (Some(u), None) => format!("sip:{u}@{rhost}"),
            (None, Some(p)) => format!("sip:{rhost}:{p}"),
            (None, None) => format!("sip:{rhost}"),
        };
        let via_port = vport.map(|p| format!(":{p}")).unwrap_or_default();
        let from_display = display.map(|d| format!("\"{d}\" ")).unwrap_or_default();
        let to_tag = ttag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {vhost}{via_port};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: {mf}\r\n\
             From: {from_display}<sip:{fuser}@{fhost}>;tag={ftag}\r\n\
             To: <sip:{tuser}@{thost}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {seq} {method}\r\n"
        );
        for (n, v) in extra {
            s.push_str(&format!("{n}: {}\r\n", v.trim()));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_requests_agree_with_rsip(text in request()) {
        let ours = parse_message(&Bytes::from(text.clone())).unwrap();
        prop_assert_eq!(sip::validate::check_request(&ours), Ok(()));
        if let Some(theirs) = rsip_fields(text.as_bytes()) {
            compare(&our_fields(&ours), &theirs);
        }
        // parse(serialize(parse(x))) is parse(x), and serializing is stable.
        sip_targets::sip_parse(text.as_bytes());
    }

    #[test]
    fn arbitrary_octets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        sip_targets::sip_parse(&data);
        sip_differential(&data);
    }

    #[test]
    fn damaged_requests_never_panic(text in request(), pos in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut d = text.into_bytes();
        let i = pos.index(d.len());
        d[i] = b;
        sip_targets::sip_parse(&d);
        sip_differential(&d);
    }
}
