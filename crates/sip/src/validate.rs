//! What a UAS checks before it processes a request (RFC 3261 §8.2, RFC 4475),
//! what a UAC checks before it accepts a response, and how a `400` is built
//! for a message that did not even parse.
//!
//! Choices where RFC 4475 allows more than one answer:
//! - a bad `Date` is ignored (the header is informational; refusing it would
//!   only break calls from phones with odd clocks);
//! - `Max-Forwards` is required only from senders that claim RFC 3261 (top
//!   Via branch with the `z9hG4bK` cookie): RFC 2543 clients may omit it
//!   (RFC 4475 §3.4.1).

use bytes::{Bytes, BytesMut};

use crate::header::{NameAddr, Via};
use crate::message::{HeaderName, Message, Method};
use crate::parse::{self, ParseError};
use crate::uri::Scheme;

/// Why a request is refused, with the status and reason of the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: 400,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for Rejection {}

/// Headers that may appear at most once (RFC 3261 §7.3.1, §20).
const SINGLE: &[(HeaderName, &str)] = &[
    (HeaderName::From, "From"),
    (HeaderName::To, "To"),
    (HeaderName::CallId, "Call-ID"),
    (HeaderName::CSeq, "CSeq"),
    (HeaderName::MaxForwards, "Max-Forwards"),
    (HeaderName::ContentLength, "Content-Length"),
    (HeaderName::ContentType, "Content-Type"),
];

/// The checks of RFC 3261 §8.2 that come before any processing: the
/// Request-URI scheme (416), required headers present, parseable and not
/// repeated, CSeq matching the method (400). The SIP version was checked by
/// the parser (`ParseError::Version`, answered 505 by
/// [`bad_request_response`]).
pub fn check_request(msg: &Message) -> Result<(), Rejection> {
    let (method, uri) = match &msg.start {
        crate::StartLine::Request(r) => (&r.method, &r.uri),
        crate::StartLine::Response(_) => return Err(Rejection::bad("Not a request")),
    };
    check_common(msg)?;
    let cseq = msg.cseq().map_err(|_| Rejection::bad("Bad CSeq header"))?;
    if &cseq.method != method {
        return Err(Rejection::bad("CSeq method does not match the request"));
    }
    let top_via = msg
        .top_via()
        .map_err(|_| Rejection::bad("Bad Via header"))?;
    match msg.header(&HeaderName::MaxForwards) {
        Some(v) => match parse::parse_u32(v) {
            Some(n) if n <= 255 => {}
            _ => return Err(Rejection::bad("Bad Max-Forwards header")),
        },
        None if top_via.has_rfc3261_branch() => {
            return Err(Rejection::bad("Missing Max-Forwards header"))
        }
        None => {}
    }
    if let Some(v) = msg.header(&HeaderName::Expires) {
        if parse::parse_u32(v).is_none() {
            return Err(Rejection::bad("Bad Expires header"));
        }
    }
    for line in msg.headers_named(&HeaderName::Contact) {
        if line.as_ref() == b"*" {
            if *method != Method::Register {
                return Err(Rejection::bad("Bad Contact header"));
            }
            continue;
        }
        for v in parse::split_comma(line) {
            let c = NameAddr::parse(&v).map_err(|_| Rejection::bad("Bad Contact header"))?;
            if let Some(e) = c.params.get("expires") {
                if e.and_then(|e| parse::parse_u32(e)).is_none() {
                    return Err(Rejection::bad("Bad Contact expires"));
                }
            }
        }
    }
    for (name, text) in [
        (HeaderName::Route, "Bad Route header"),
        (HeaderName::RecordRoute, "Bad Record-Route header"),
    ] {
        for line in msg.headers_named(&name) {
            for v in parse::split_comma(line) {
                NameAddr::parse(&v).map_err(|_| Rejection::bad(text))?;
            }
        }
    }
    // Checked last: a malformed request gets 400 rather than 416.
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return Err(Rejection {
            code: 416,
            reason: "Unsupported URI Scheme".into(),
        });
    }
    Ok(())
}

/// The checks shared by requests and responses: required headers present,
/// single-value ones not repeated, all Vias and the addresses parseable.
fn check_common(msg: &Message) -> Result<(), Rejection> {
    for (name, text) in [
        (HeaderName::Via, "Via"),
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if msg.header(&name).is_none() {
            return Err(Rejection::bad(format!("Missing {text} header")));
        }
    }
    for (name, text) in SINGLE {
        if msg.headers_named(name).nth(1).is_some() {
            return Err(Rejection::bad(format!("Multiple {text} headers")));
        }
    }
    for line in msg.headers_named(&HeaderName::Via) {
        for v in parse::split_comma(line) {
            Via::parse(&v).map_err(|_| Rejection::bad("Bad Via header"))?;
        }
    }
    msg.from_hdr()
        .map_err(|_| Rejection::bad("Bad From header"))?;
    msg.to_hdr().map_err(|_| Rejection::bad("Bad To header"))?;
    let call_id = msg
        .call_id()
        .map_err(|_| Rejection::bad("Missing Call-ID header"))?;
    if !parse::is_call_id(call_id) {
        return Err(Rejection::bad("Bad Call-ID header"));
    }
    msg.cseq().map_err(|_| Rejection::bad("Bad CSeq header"))?;
    Ok(())
}

/// Whether a UAC (or the transaction layer) may accept this response.
/// `false` means drop it silently (RFC 4475 §3.1.2.5, §3.1.2.19).
pub fn check_response(msg: &Message) -> bool {
    match msg.start {
        crate::StartLine::Response(ref r) if (100..=699).contains(&r.code) => {}
        _ => return false,
    }
    check_common(msg).is_ok()
}

/// Whether a `Date` value is an RFC 1123 date in GMT, as RFC 3261 §20.17
/// requires (`Sat, 13 Nov 2010 23:29:00 GMT`). Informational: the UAS ignores
/// a bad Date rather than refusing the request.
pub fn valid_date(v: &[u8]) -> bool {
    let v = parse::trim(v);
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let parts: Vec<&str> = s.split(' ').collect();
    let [wkday, day, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    const WKDAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|c| c.is_ascii_digit());
    let t: Vec<&str> = time.split(':').collect();
    WKDAYS.contains(wkday)
        && digits(day, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && t.len() == 3
        && t.iter().all(|p| digits(p, 2))
        && *zone == "GMT"
}

/// Builds the response to a request that failed to parse: `505` for an
/// unsupported version, else `400` with the error as reason. The Via, From,
/// To, Call-ID and CSeq lines are salvaged from the raw octets. `None` when
/// no response can be formed: the message is a response or an ACK, or it
/// has no usable Via, From, To, Call-ID or CSeq to route and match it by.
pub fn bad_request_response(raw: &[u8], err: &ParseError) -> Option<Message> {
    let mut pos = 0;
    while raw[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let raw = &raw[pos..];
    let head_end = parse::find(raw, b"\r\n\r\n").map_or(raw.len(), |e| e + 2);
    let head = &raw[..head_end];
    let mut lines = LogicalLines::new(head);
    let start = lines.next()?;
    if start.len() >= 4 && start[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    if start.starts_with(b"ACK ") {
        return None;
    }
    let (code, reason) = match err {
        ParseError::Version => (505, "Version Not Supported".to_string()),
        e => (400, capitalize(&e.to_string())),
    };
    let mut resp = Message::response(code, Some(&reason));
    let mut to_value: Option<Vec<u8>> = None;
    let (mut vias, mut from, mut call_id, mut cseq) = (0, false, false, false);
    for line in lines {
        let Some(colon) = memchr::memchr(b':', &line) else {
            continue;
        };
        let name = parse::trim(&line[..colon]);
        let value = parse::trim(&line[colon + 1..]);
        if value.is_empty() || value.iter().any(|&c| c == b'\r' || c == b'\n') {
            continue;
        }
        let v = Bytes::copy_from_slice(value);
        match HeaderName::from_bytes(name) {
            HeaderName::Via => {
                if vias == 0 && !routable_via(&v) {
                    return None;
                }
                vias += 1;
                resp.push(HeaderName::Via, v);
            }
            HeaderName::From if !from => {
                from = true;
                resp.push(HeaderName::From, v);
            }
            HeaderName::To if to_value.is_none() => to_value = Some(value.to_vec()),
            HeaderName::CallId if !call_id => {
                call_id = true;
                resp.push(HeaderName::CallId, v);
            }
            HeaderName::CSeq if !cseq => {
                cseq = true;
                resp.push(HeaderName::CSeq, v);
            }
            _ => {}
        }
    }
    let to = to_value?;
    if vias == 0 || !from || !call_id || !cseq {
        return None;
    }
    // The response carries a To tag (RFC 3261 §8.2.6.2); derived from the
    // request so that a retransmission gets the same one.
    let mut to_out = BytesMut::from(&to[..]);
    let has_tag = NameAddr::parse(&Bytes::from(to.clone()))
        .map(|na| na.tag().is_some())
        .unwrap_or(false);
    if !has_tag {
        to_out.extend_from_slice(format!(";tag={:08x}", fnv1a(head)).as_bytes());
    }
    resp.push(HeaderName::To, to_out.freeze());
    Some(resp)
}

/// Whether the top Via value has a sent-by to answer to; the protocol
/// version is not checked, so that a 505 can be sent.
fn routable_via(v: &Bytes) -> bool {
    let Some(top) = parse::split_comma(v).next() else {
        return false;
    };
    if Via::parse(&top).is_ok() {
        return true;
    }
    // `SIP/x.y/T` -> `SIP/2.0/T`.
    let mut parts = top.splitn(3, |&c| c == b'/');
    let (Some(name), Some(_), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let mut fixed = Vec::with_capacity(top.len());
    fixed.extend_from_slice(name);
    fixed.extend_from_slice(b"/2.0/");
    fixed.extend_from_slice(rest);
    Via::parse(&Bytes::from(fixed)).is_ok()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| {
        (h ^ u32::from(c)).wrapping_mul(0x0100_0193)
    })
}

/// Lines of a message head with continuation lines joined by one SP;
/// tolerant of bare LF, for salvaging broken messages.
struct LogicalLines<'a> {
    lines: std::iter::Peekable<PhysicalLines<'a>>,
}

type PhysicalLines<'a> = std::slice::Split<'a, u8, fn(&u8) -> bool>;

impl<'a> LogicalLines<'a> {
    fn new(head: &'a [u8]) -> Self {
        let is_lf: fn(&u8) -> bool = |c| *c == b'\n';
        LogicalLines {
            lines: head.split(is_lf).peekable(),
        }
    }
}

impl Iterator for LogicalLines<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let strip = |l: &[u8]| -> Vec<u8> { l.strip_suffix(b"\r").unwrap_or(l).to_vec() };
        let mut line = strip(self.lines.next()?);
        while let Some(next) = self.lines.peek() {
            if !next.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                break;
            }
            line.push(b' ');
            line.extend_from_slice(parse::trim(next));
            self.lines.next();
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Message {
        parse::parse_message(&Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const OK: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        To: <sip:bob@example.com>\r\n\
        Call-ID: abc@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn accepts_a_plain_request() {
        assert_eq!(check_request(&msg(OK)), Ok(()));
    }

    #[test]
    fn refuses_overlarge_max_forwards_and_expires() {
        let m = msg(&OK.replace("Max-Forwards: 70", "Max-Forwards: 256"));
        assert_eq!(check_request(&m).unwrap_err().code, 400);
        let m = msg(&OK.replace(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nExpires: 4294967296",
        ));
        assert_eq!(check_request(&m).unwrap_err().reason, "Bad Expires header");
        let m = msg(&OK.replace(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nExpires: 4294967295",
        ));
        assert_eq!(check_request(&m), Ok(()));
    }

    #[test]
    fn refuses_cseq_over_two_to_the_31() {
        let m = msg(&OK.replace("CSeq: 1 INVITE", "CSeq: 2147483648 INVITE"));
        assert_eq!(check_request(&m).unwrap_err().reason, "Bad CSeq header");
        let m = msg(&OK.replace("CSeq: 1 INVITE", "CSeq: 2147483647 INVITE"));
        assert_eq!(check_request(&m), Ok(()));
    }

    #[test]
    fn wildcard_contact_only_in_register() {
        let m = msg(&OK.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nContact: *"));
        assert_eq!(check_request(&m).unwrap_err().reason, "Bad Contact header");
    }

    #[test]
    fn date_format() {
        assert!(valid_date(b"Sat, 13 Nov 2010 23:29:00 GMT"));
        assert!(!valid_date(b"Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!valid_date(b"yesterday"));
    }

    #[test]
    fn salvages_a_400_with_a_stable_to_tag() {
        let raw = OK.replace("Content-Length: 0", "Content-Length: -1");
        let err = parse::parse_message(&Bytes::from(raw.clone())).unwrap_err();
        let r = bad_request_response(raw.as_bytes(), &err).unwrap();
        assert_eq!(r.status(), Some(400));
        assert_eq!(r.to_hdr().unwrap().tag().map(|t| t.len()), Some(8));
        let again = bad_request_response(raw.as_bytes(), &err).unwrap();
        assert_eq!(r.to_bytes(), again.to_bytes());
        assert_eq!(r.top_via().unwrap().branch().unwrap().as_ref(), b"z9hG4bK1");
        // The response reparses.
        let back = parse::parse_message(&r.to_bytes()).unwrap();
        assert!(check_response(&back));
    }

    #[test]
    fn no_response_without_via_or_to_an_ack() {
        let raw = OK.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n", "");
        assert!(bad_request_response(raw.as_bytes(), &ParseError::StartLine).is_none());
        let raw = OK.replace("INVITE sip", "ACK sip");
        assert!(bad_request_response(raw.as_bytes(), &ParseError::StartLine).is_none());
    }
}
