//! The parser: RFC 3261 §7 framing and §25 grammar for the parts we type.
//! Zero-copy: header values are `Bytes` slices of the input, except where
//! line folding forces a copy.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::header::{CSeq, NameAddr, Params, Via};
use crate::message::{Header, HeaderName, Message, Method, Request, Response, StartLine};
use crate::uri::{Scheme, Uri};

/// Why a message was refused. The text goes into the 400's reason phrase.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("incomplete message")]
    Incomplete,
    #[error("bad start line")]
    StartLine,
    #[error("unsupported SIP version")]
    Version,
    #[error("bad header line")]
    HeaderLine,
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("bad {0} header")]
    Invalid(String),
    #[error("bad Request-URI")]
    RequestUri,
    #[error("bad URI")]
    Uri,
    #[error("bad Content-Length")]
    ContentLength,
    #[error("body shorter than Content-Length")]
    BodyTruncated,
}

/// Parses one message from a datagram or a framed stream chunk. Octets after
/// the body (as given by Content-Length) are ignored (RFC 4475 §3.1.1.8).
pub fn parse_message(buf: &Bytes) -> Result<Message, ParseError> {
    let (msg, _) = parse_message_len(buf)?;
    Ok(msg)
}

/// Parses one message and returns how many octets it used.
pub fn parse_message_len(buf: &Bytes) -> Result<(Message, usize), ParseError> {
    // Skip leading CRLFs (keep-alives, RFC 3261 §7.5).
    let mut pos = 0;
    while pos + 1 < buf.len() && &buf[pos..pos + 2] == b"\r\n" {
        pos += 2;
    }
    let head_end = find(&buf[pos..], b"\r\n\r\n").ok_or(ParseError::Incomplete)? + pos;
    let line_end = find(&buf[pos..head_end + 2], b"\r\n").ok_or(ParseError::Incomplete)? + pos;
    let start = parse_start_line(&buf.slice(pos..line_end))?;

    let mut headers = Vec::with_capacity(16);
    let mut i = line_end + 2;
    while i < head_end + 2 {
        let mut end = find(&buf[i..head_end + 2], b"\r\n").ok_or(ParseError::HeaderLine)? + i;
        let mut folded = false;
        // Continuation lines start with SP or HTAB.
        while end + 2 < head_end + 2 && matches!(buf[end + 2], b' ' | b'\t') {
            folded = true;
            end = find(&buf[end + 2..head_end + 2], b"\r\n").ok_or(ParseError::HeaderLine)? + end + 2;
        }
        let line = &buf[i..end];
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or(ParseError::HeaderLine)?;
        let name_raw = trim(&line[..colon]);
        if name_raw.is_empty() || !name_raw.iter().all(|&c| is_token(c)) {
            return Err(ParseError::HeaderLine);
        }
        let name = HeaderName::from_bytes(name_raw);
        let name = match name {
            HeaderName::Other(_) => {
                HeaderName::Other(buf.slice_ref(name_raw))
            }
            n => n,
        };
        let value = if folded {
            Bytes::from(unfold(&line[colon + 1..]))
        } else {
            buf.slice_ref(trim(&line[colon + 1..]))
        };
        headers.push(Header { name, value });
        i = end + 2;
    }

    let body_start = head_end + 4;
    let mut msg = Message {
        start,
        headers,
        body: Bytes::new(),
    };
    let cl = {
        let mut it = msg.headers_named(&HeaderName::ContentLength);
        let first = it.next();
        if it.next().is_some() {
            return Err(ParseError::ContentLength);
        }
        match first {
            Some(v) => Some(parse_u32(v).ok_or(ParseError::ContentLength)? as usize),
            None => None,
        }
    };
    let body_len = cl.unwrap_or(buf.len() - body_start);
    if body_start + body_len > buf.len() {
        return Err(ParseError::BodyTruncated);
    }
    msg.body = buf.slice(body_start..body_start + body_len);
    Ok((msg, body_start + body_len))
}

fn parse_start_line(line: &Bytes) -> Result<StartLine, ParseError> {
    if line.starts_with(b"SIP/") {
        let rest = line
            .strip_prefix(b"SIP/2.0 ")
            .ok_or(ParseError::Version)?;
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::StartLine);
        }
        if rest.len() > 3 && rest[3] != b' ' {
            return Err(ParseError::StartLine);
        }
        let code = (rest[0] - b'0') as u16 * 100 + (rest[1] - b'0') as u16 * 10 + (rest[2] - b'0') as u16;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine);
        }
        let reason = if rest.len() > 4 {
            line.slice_ref(&rest[4..])
        } else {
            Bytes::new()
        };
        return Ok(StartLine::Response(Response { code, reason }));
    }
    let sp1 = line.iter().position(|&c| c == b' ').ok_or(ParseError::StartLine)?;
    let sp2 = line.iter().rposition(|&c| c == b' ').ok_or(ParseError::StartLine)?;
    if sp1 == sp2 {
        return Err(ParseError::StartLine);
    }
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&c| is_token(c)) {
        return Err(ParseError::StartLine);
    }
    let version = &line[sp2 + 1..];
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::Version);
    }
    let uri = line.slice(sp1 + 1..sp2);
    if uri.is_empty() || uri.iter().any(|&c| c == b' ' || c == b'\t' || c == b'<' || c == b'>') {
        return Err(ParseError::RequestUri);
    }
    let uri = parse_uri(&uri).map_err(|_| ParseError::RequestUri)?;
    Ok(StartLine::Request(Request {
        method: Method::from_slice(&line.slice(..sp1)),
        uri,
    }))
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let s = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(s, |e| e + 1);
    &b[s..e]
}

fn unfold(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut in_ws = false;
    for &c in trim(b) {
        if c == b'\r' || c == b'\n' || c == b' ' || c == b'\t' {
            if !in_ws {
                out.push(b' ');
            }
            in_ws = true;
        } else {
            in_ws = false;
            out.push(c);
        }
    }
    out
}

/// RFC 3261 `token` characters.
pub fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

pub fn parse_u32(b: &[u8]) -> Option<u32> {
    let b = trim(b);
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        n = n * 10 + (c - b'0') as u64;
    }
    u32::try_from(n).ok()
}

/// Splits a header value on commas that are outside quotes and angle brackets.
pub fn split_comma(v: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    let mut angle = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < v.len() {
            let c = v[i];
            match c {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => {
                    let part = v.slice_ref(trim(&v[start..i]));
                    i += 1;
                    start = i;
                    return Some(part);
                }
                _ => {}
            }
            i += 1;
        }
        done = true;
        let part = v.slice_ref(trim(&v[start.min(v.len())..]));
        if part.is_empty() {
            None
        } else {
            Some(part)
        }
    })
}

/// Parses `;a=b;c` into params (the input starts at the first `;`).
pub(crate) fn parse_params(src: &Bytes, b: &[u8]) -> Result<Params, ParseError> {
    let mut out = Vec::new();
    for part in b.split(|&c| c == b';') {
        let part = trim(part);
        if part.is_empty() {
            continue;
        }
        match part.iter().position(|&c| c == b'=') {
            Some(eq) => {
                let n = trim(&part[..eq]);
                let v = trim(&part[eq + 1..]);
                out.push((src.slice_ref(n), Some(src.slice_ref(v))));
            }
            None => out.push((src.slice_ref(part), None)),
        }
    }
    Ok(Params(out))
}

pub fn parse_uri(b: &Bytes) -> Result<Uri, ParseError> {
    let colon = b.iter().position(|&c| c == b':').ok_or(ParseError::Uri)?;
    let scheme_raw = &b[..colon];
    if scheme_raw.is_empty() || !scheme_raw[0].is_ascii_alphabetic() {
        return Err(ParseError::Uri);
    }
    let scheme = if scheme_raw.eq_ignore_ascii_case(b"sip") {
        Scheme::Sip
    } else if scheme_raw.eq_ignore_ascii_case(b"sips") {
        Scheme::Sips
    } else if scheme_raw.eq_ignore_ascii_case(b"tel") {
        Scheme::Tel
    } else {
        Scheme::Other(b.slice(..colon))
    };
    let rest = &b[colon + 1..];
    if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
        return Ok(Uri {
            scheme,
            user: None,
            password: None,
            host: Bytes::new(),
            port: None,
            params: Params::default(),
            headers: None,
            opaque: Some(b.slice_ref(rest)),
        });
    }
    let (rest, headers) = match rest.iter().position(|&c| c == b'?') {
        Some(q) => (&rest[..q], Some(b.slice_ref(&rest[q + 1..]))),
        None => (rest, None),
    };
    let (userinfo, hostport_params) = match rest.iter().rposition(|&c| c == b'@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => match ui.iter().position(|&c| c == b':') {
            Some(c) => (Some(b.slice_ref(&ui[..c])), Some(b.slice_ref(&ui[c + 1..]))),
            None => (Some(b.slice_ref(ui)), None),
        },
        None => (None, None),
    };
    let (hostport, params) = match hostport_params.iter().position(|&c| c == b';') {
        Some(s) => (&hostport_params[..s], &hostport_params[s..]),
        None => (hostport_params, &hostport_params[hostport_params.len()..]),
    };
    let (host, port) = split_host_port(hostport).ok_or(ParseError::Uri)?;
    Ok(Uri {
        scheme,
        user,
        password,
        host: b.slice_ref(host),
        port,
        params: parse_params(b, params)?,
        headers,
        opaque: None,
    })
}

fn split_host_port(hp: &[u8]) -> Option<(&[u8], Option<u16>)> {
    if hp.is_empty() {
        return None;
    }
    let (host, port) = if hp[0] == b'[' {
        let end = hp.iter().position(|&c| c == b']')?;
        let host = &hp[..=end];
        let rest = &hp[end + 1..];
        if rest.is_empty() {
            (host, None)
        } else if rest[0] == b':' {
            (host, Some(&rest[1..]))
        } else {
            return None;
        }
    } else {
        match hp.iter().position(|&c| c == b':') {
            Some(c) => (&hp[..c], Some(&hp[c + 1..])),
            None => (hp, None),
        }
    };
    if host.is_empty()
        || !host
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"-.[]:_".contains(&c))
    {
        return None;
    }
    let port = match port {
        Some(p) => {
            let n = parse_u32(p)?;
            Some(u16::try_from(n).ok()?)
        }
        None => None,
    };
    Some((host, port))
}

pub fn parse_via(b: &Bytes) -> Result<Via, ParseError> {
    let bad = || ParseError::Invalid("Via".into());
    // sent-protocol: SIP / 2.0 / transport, with optional LWS around the slashes.
    let mut parts = b.splitn(3, |&c| c == b'/');
    let name = trim(parts.next().ok_or_else(bad)?);
    let ver = trim(parts.next().ok_or_else(bad)?);
    let rest = trim(parts.next().ok_or_else(bad)?);
    if !name.eq_ignore_ascii_case(b"SIP") || ver != b"2.0" {
        return Err(bad());
    }
    let sp = rest
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .ok_or_else(bad)?;
    let transport = &rest[..sp];
    if transport.is_empty() || !transport.iter().all(|&c| is_token(c)) {
        return Err(bad());
    }
    let sent_by_params = trim(&rest[sp..]);
    let (sent_by, params) = match sent_by_params.iter().position(|&c| c == b';') {
        Some(s) => (trim(&sent_by_params[..s]), &sent_by_params[s..]),
        None => (sent_by_params, &sent_by_params[sent_by_params.len()..]),
    };
    // LWS is allowed around the colon of sent-by.
    let (host, port) = split_host_port(sent_by).ok_or_else(bad)?;
    Ok(Via {
        transport: b.slice_ref(transport),
        host: b.slice_ref(host),
        port,
        params: parse_params(b, params)?,
    })
}

pub fn parse_cseq(b: &Bytes) -> Result<CSeq, ParseError> {
    let bad = || ParseError::Invalid("CSeq".into());
    let t = trim(b);
    let sp = t.iter().position(|c| c.is_ascii_whitespace()).ok_or_else(bad)?;
    let seq = parse_u32(&t[..sp]).ok_or_else(bad)?;
    let m = trim(&t[sp..]);
    if m.is_empty() || !m.iter().all(|&c| is_token(c)) {
        return Err(bad());
    }
    Ok(CSeq {
        seq,
        method: Method::from_slice(&b.slice_ref(m)),
    })
}

pub fn parse_name_addr(b: &Bytes) -> Result<NameAddr, ParseError> {
    let bad = || ParseError::Invalid("address".into());
    let t = trim(b);
    if let Some(lt) = find_unquoted(t, b'<') {
        let display = trim(&t[..lt]);
        if display.starts_with(b"\"") && (display.len() < 2 || !display.ends_with(b"\"")) {
            return Err(bad());
        }
        let gt = t[lt..].iter().position(|&c| c == b'>').ok_or_else(bad)? + lt;
        let uri = parse_uri(&b.slice_ref(&t[lt + 1..gt]))?;
        let params = parse_params(b, &t[gt + 1..])?;
        Ok(NameAddr {
            display: if display.is_empty() {
                None
            } else {
                Some(b.slice_ref(display))
            },
            uri,
            params,
        })
    } else {
        if t.starts_with(b"\"") {
            return Err(bad());
        }
        // addr-spec: parameters after the URI belong to the header (RFC 3261 §20).
        let (u, p) = match t.iter().position(|&c| c == b';') {
            Some(s) => (&t[..s], &t[s..]),
            None => (t, &t[t.len()..]),
        };
        if u.iter().any(|c| c.is_ascii_whitespace()) {
            return Err(bad());
        }
        Ok(NameAddr {
            display: None,
            uri: parse_uri(&b.slice_ref(u))?,
            params: parse_params(b, p)?,
        })
    }
}

fn find_unquoted(t: &[u8], needle: u8) -> Option<usize> {
    let mut quoted = false;
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Framing for stream transports: how long the next message is, once its
/// head is complete. `None` means more octets are needed.
pub fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &buf[..head_end + 2];
    let mut cl: Option<usize> = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let line = trim(line);
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let name = trim(&line[..colon]);
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                cl = Some(parse_u32(&line[colon + 1..]).ok_or(ParseError::ContentLength)? as usize);
            }
        }
    }
    // Over a stream, Content-Length is mandatory (RFC 3261 §18.3).
    let cl = cl.ok_or(ParseError::Missing("Content-Length"))?;
    let total = head_end + 4 + cl;
    Ok(if buf.len() >= total { Some(total) } else { None })
}

#[allow(dead_code)]
fn _assert_bytesmut(_: BytesMut) {}
