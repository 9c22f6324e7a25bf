//! Bodies of the SIP fuzz targets. Plain functions over `bytes`, `sip` and
//! `rsip` only, so that the sip crate's tests can include this file and run
//! them over the RFC 4475 corpus with a stable toolchain.

use bytes::Bytes;
use sip::validate::{bad_request_response, check_request, check_response};
use sip::{parse_message, HeaderName, Message};

/// Parse, type, validate, serialize and reparse. Nothing may panic; what we
/// serialize must parse again and agree with the first parse.
pub fn sip_parse(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    let msg = match parse_message(&buf) {
        Ok(m) => m,
        Err(e) => {
            if let Some(resp) = bad_request_response(data, &e) {
                let out = resp.to_bytes();
                let back = parse_message(&out)
                    .unwrap_or_else(|e| panic!("our 400 does not reparse: {e}\n{out:?}"));
                assert_eq!(back.status(), resp.status());
                assert!(
                    back.header(&HeaderName::Via).is_some(),
                    "our 400 has no Via"
                );
            }
            return;
        }
    };
    // Typed access must not panic, whatever it answers.
    let _ = msg.top_via();
    let _ = msg.vias();
    let _ = msg.cseq();
    let _ = msg.call_id();
    let _ = msg.from_hdr();
    let _ = msg.to_hdr();
    let _ = msg.contacts();
    let _ = msg.u32_header(&HeaderName::Expires);
    if msg.is_request() {
        let _ = check_request(&msg);
    } else {
        let _ = check_response(&msg);
    }
    let out = msg.to_bytes();
    let again = parse_message(&out)
        .unwrap_or_else(|e| panic!("our serialization does not reparse: {e}\n{out:?}"));
    assert_same(&msg, &again);
    assert_eq!(again.to_bytes(), out, "serialization is not stable");
}

/// The same message modulo Content-Length, which serialization rewrites.
pub fn assert_same(a: &Message, b: &Message) {
    assert_eq!(a.start, b.start, "start line differs after a round trip");
    let strip = |m: &Message| {
        m.headers
            .iter()
            .filter(|h| h.name != HeaderName::ContentLength)
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a), strip(b), "headers differ after a round trip");
    assert_eq!(a.body, b.body, "body differs after a round trip");
    assert_eq!(a.top_via().ok(), b.top_via().ok());
    assert_eq!(a.cseq().ok(), b.cseq().ok());
    assert_eq!(a.from_hdr().ok(), b.from_hdr().ok());
    assert_eq!(a.to_hdr().ok(), b.to_hdr().ok());
}

/// What both parsers saw, as plain values.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields {
    pub method: Option<String>,
    pub status: Option<u16>,
    pub call_id: Option<String>,
    pub cseq: Option<(u32, String)>,
    pub via_branch: Option<String>,
    pub via_host: Option<String>,
    pub via_port: Option<u16>,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub body: Vec<u8>,
    pub header_count: usize,
    /// Whether our validation accepts the message (`check_request` or
    /// `check_response`); rsip is only compared in detail on those.
    pub valid: bool,
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Our view of the fields compared with rsip.
pub fn our_fields(m: &Message) -> Fields {
    // rsip does not split a Via line on commas: a Via list is left out.
    let via_list = m
        .header(&HeaderName::Via)
        .is_some_and(|v| v.contains(&b','));
    let via = m.top_via().ok().filter(|_| !via_list);
    Fields {
        method: m.method().map(|x| x.as_str().to_string()),
        status: m.status(),
        call_id: m.call_id().ok().map(|c| s(c)),
        cseq: m
            .cseq()
            .ok()
            .map(|c| (c.seq, c.method.as_str().to_string())),
        via_branch: via.as_ref().and_then(|v| v.branch().map(|b| s(b))),
        via_host: via.as_ref().map(|v| {
            // rsip prints IPv6 hosts without brackets.
            v.host_str()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        }),
        via_port: via.as_ref().and_then(|v| v.port),
        from_tag: m.from_hdr().ok().and_then(|f| f.tag().map(|t| s(t))),
        to_tag: m.to_hdr().ok().and_then(|f| f.tag().map(|t| s(t))),
        body: m.body.to_vec(),
        header_count: m.headers.len(),
        valid: if m.is_request() {
            check_request(m).is_ok()
        } else {
            check_response(m)
        },
    }
}

/// rsip's view of the same fields; `None` when rsip refuses the message.
pub fn rsip_fields(data: &[u8]) -> Option<Fields> {
    use rsip::prelude::*;
    let m = rsip::SipMessage::try_from(data).ok()?;
    let via = m.via_header().ok().and_then(|v| v.typed().ok());
    let (method, status) = match &m {
        rsip::SipMessage::Request(r) => (Some(r.method.to_string()), None),
        rsip::SipMessage::Response(r) => (None, Some(r.status_code.code())),
    };
    Some(Fields {
        method,
        status,
        call_id: m
            .call_id_header()
            .ok()
            .map(|c| c.value().trim().to_string()),
        cseq: m
            .cseq_header()
            .ok()
            .and_then(|c| c.typed().ok())
            .map(|c| (c.seq, c.method.to_string())),
        via_branch: via.as_ref().and_then(|v| v.branch().map(|b| b.to_string())),
        via_host: via
            .as_ref()
            .map(|v| v.uri.host_with_port.host.to_string().to_ascii_lowercase()),
        via_port: via.as_ref().and_then(|v| {
            v.uri
                .host_with_port
                .port
                .as_ref()
                .and_then(|p| p.to_string().parse().ok())
        }),
        from_tag: m
            .from_header()
            .ok()
            .and_then(|f| f.tag().ok().flatten())
            .map(|t| t.to_string()),
        to_tag: m
            .to_header()
            .ok()
            .and_then(|f| f.tag().ok().flatten())
            .map(|t| t.to_string()),
        body: m.body().clone(),
        header_count: m.headers().iter().count(),
        valid: true,
    })
}

/// Where both parsers accept the message, the fields they can both type
/// must agree. Known rsip laxness, not compared: rsip accepts messages we
/// refuse (malformed start lines, bad Content-Length, escaped headers in
/// the Request-URI) and leaves fields it cannot type empty, so a field is
/// compared only when rsip typed it.
pub fn sip_differential(data: &[u8]) {
    let Ok(ours) = parse_message(&Bytes::copy_from_slice(data)) else {
        return;
    };
    // rsip does not skip leading CRLFs and has no notion of trailing octets
    // after Content-Length: give it exactly the message we parsed.
    let exact = ours.to_bytes();
    let Ok(ours) = parse_message(&exact) else {
        panic!("our serialization does not reparse: {exact:?}");
    };
    if let Some(theirs) = rsip_fields(&exact) {
        compare(&our_fields(&ours), &theirs);
    }
}

/// Compares two views field by field, skipping fields rsip left untyped.
pub fn compare(ours: &Fields, theirs: &Fields) {
    // rsip reads method names case-insensitively (RFC 3261 §7.1 says they
    // are case-sensitive): "INVITe" is INVITE to rsip, an extension to us.
    let upper = |m: &Option<String>| m.as_ref().map(|m| m.to_ascii_uppercase());
    assert_eq!(upper(&ours.method), upper(&theirs.method), "method");
    assert_eq!(ours.status, theirs.status, "status");
    // rsip splits head and body on a CRLFCRLF found inside the body too.
    if !ours.body.windows(4).any(|w| w == b"\r\n\r\n") {
        assert_eq!(ours.body, theirs.body, "body");
    }
    // On a message our validation refuses (repeated single-value headers
    // and the like) the parsers legitimately pick different lines, and rsip
    // merges or drops some: the header fields are compared on valid ones.
    if !ours.valid {
        return;
    }
    assert_eq!(ours.header_count, theirs.header_count, "header count");
    if theirs.call_id.is_some() && ours.call_id.is_some() {
        assert_eq!(ours.call_id, theirs.call_id, "Call-ID");
    }
    if theirs.cseq.is_some() && ours.cseq.is_some() {
        let upper =
            |c: &Option<(u32, String)>| c.as_ref().map(|(n, m)| (*n, m.to_ascii_uppercase()));
        assert_eq!(upper(&ours.cseq), upper(&theirs.cseq), "CSeq");
    }
    if theirs.via_host.is_some() && ours.via_host.is_some() {
        assert_eq!(ours.via_host, theirs.via_host, "Via host");
        assert_eq!(ours.via_port, theirs.via_port, "Via port");
        // rsip reads `branch= value` (LWS after `=`, which RFC 3261
        // allows) as an empty branch.
        if theirs.via_branch.as_deref() != Some("") {
            assert_eq!(ours.via_branch, theirs.via_branch, "Via branch");
        }
    }
    // rsip finds a tag even in a From/To it cannot otherwise parse; a
    // tag is compared only where both parsers typed the header.
    // As for the branch, rsip reads `tag= value` as an empty tag.
    if theirs.from_tag.as_deref().is_some_and(|t| !t.is_empty()) && ours.from_tag.is_some() {
        assert_eq!(ours.from_tag, theirs.from_tag, "From tag");
    }
    if theirs.to_tag.as_deref().is_some_and(|t| !t.is_empty()) && ours.to_tag.is_some() {
        assert_eq!(ours.to_tag, theirs.to_tag, "To tag");
    }
}
