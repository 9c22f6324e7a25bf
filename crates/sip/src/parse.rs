//! The parser: RFC 3261 §7 framing and §25 grammar for the parts we type.
//! Zero-copy: header values are `Bytes` slices of the input, except where
//! line folding forces a copy.

use bytes::Bytes;
use memchr::{memchr, memchr2, memchr3, memmem};
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

/// The largest CSeq sequence number (RFC 3261 §8.1.1.5: less than 2**31).
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

// ----- character classes (RFC 3261 §25.1), as 256-entry tables -----

const fn class(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `token`.
static TOKEN: [bool; 256] = class(b"-.!%*_+`'~", true);
/// `user` (unreserved, user-unreserved, `%` for escapes).
static USER: [bool; 256] = class(b"-_.!~*'()&=+$,;?/%", true);
/// `password`.
static PASSWORD: [bool; 256] = class(b"-_.!~*'()&=+$,%", true);
/// Host names and IPv4 addresses (`_` tolerated: it is common in the field).
static HOST: [bool; 256] = class(b"-._", true);
/// `paramchar` of URI parameters.
static PARAMCHAR: [bool; 256] = class(b"-_.!~*'()[]/:&+$%", true);
/// `hname`/`hvalue` of URI headers, plus their `=` and `&` separators.
static HNV: [bool; 256] = class(b"-_.!~*'()[]/?:+$%=&", true);
/// URI scheme characters after the first letter.
static SCHEME: [bool; 256] = class(b"+-.", true);
/// `word` of Call-ID.
static WORD: [bool; 256] = class(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);

/// RFC 3261 `token` characters.
pub fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

fn all_in(b: &[u8], t: &[bool; 256]) -> bool {
    b.iter().all(|&c| t[c as usize])
}

/// A Call-ID: `word ["@" word]`.
pub fn is_call_id(b: &[u8]) -> bool {
    let (l, r) = match find_byte(b'@', b) {
        Some(at) => (&b[..at], Some(&b[at + 1..])),
        None => (b, None),
    };
    !l.is_empty() && all_in(l, &WORD) && r.is_none_or(|r| !r.is_empty() && all_in(r, &WORD))
}

/// `memchr` for the short spans of a header value or URI, where a plain
/// loop beats the set-up of a vectorised search.
#[inline]
fn find_byte(c: u8, b: &[u8]) -> Option<usize> {
    if b.len() >= 64 {
        return memchr(c, b);
    }
    b.iter().position(|&x| x == c)
}

/// Every `%` starts a two-hex-digit escape.
fn escapes_ok(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = find_byte(b'%', &b[i..]) {
        let p = i + p;
        if p + 2 >= b.len() {
            return false;
        }
        if !(b[p + 1].is_ascii_hexdigit() && b[p + 2].is_ascii_hexdigit()) {
            return false;
        }
        i = p + 3;
    }
    true
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Trims SP, HTAB, CR and LF at both ends.
pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e]
}

/// An unsigned decimal with no sign and no overflow (leading zeros allowed).
pub fn parse_u32(b: &[u8]) -> Option<u32> {
    let b = trim(b);
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let first = b.iter().position(|&c| c != b'0').unwrap_or(b.len());
    let digits = &b[first..];
    if digits.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        n = n * 10 + u64::from(c - b'0');
    }
    u32::try_from(n).ok()
}

// ----- framing -----

/// Parses one message from a datagram or a framed stream chunk. Octets after
/// the body (as given by Content-Length) are ignored (RFC 4475 §3.1.1.8).
#[inline]
pub fn parse_message(buf: &Bytes) -> Result<Message, ParseError> {
    let (msg, _) = parse_message_len(buf)?;
    Ok(msg)
}

/// A header line in the making: offsets into the buffer.
struct Pending {
    start: usize,
    colon: usize,
    end: usize,
    folded: bool,
}

/// Parses one message and returns how many octets it used.
pub fn parse_message_len(buf: &Bytes) -> Result<(Message, usize), ParseError> {
    let data: &[u8] = buf;
    // Skip leading CRLFs (keep-alives, RFC 3261 §7.5).
    let mut pos = 0;
    while data[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let line_end = next_line(data, pos)?;
    let start = parse_start_line(buf, pos, line_end)?;

    let mut headers = Vec::with_capacity(16);
    let mut content_length: Option<usize> = None;
    let mut pending: Option<Pending> = None;
    let mut i = line_end + 2;
    let body_start = loop {
        let end = next_line(data, i)?;
        if end == i {
            if let Some(p) = pending.take() {
                finish_header(buf, p, &mut headers, &mut content_length)?;
            }
            break end + 2;
        }
        if is_ws(data[i]) {
            // A continuation line (folding, RFC 3261 §7.3.1).
            match pending.as_mut() {
                Some(p) => {
                    p.end = end;
                    p.folded = true;
                }
                None => return Err(ParseError::HeaderLine),
            }
        } else {
            if let Some(p) = pending.take() {
                finish_header(buf, p, &mut headers, &mut content_length)?;
            }
            let colon = find_byte(b':', &data[i..end]).ok_or(ParseError::HeaderLine)? + i;
            pending = Some(Pending {
                start: i,
                colon,
                end,
                folded: false,
            });
        }
        i = end + 2;
    };

    let avail = data.len() - body_start;
    let body_len = match content_length {
        Some(n) if n > avail => return Err(ParseError::BodyTruncated),
        Some(n) => n,
        None => avail,
    };
    let msg = Message {
        start,
        headers,
        body: buf.slice(body_start..body_start + body_len),
    };
    Ok((msg, body_start + body_len))
}

/// The offset of the CR of the CRLF that ends the line starting at `from`.
/// A bare LF or CR is refused.
fn next_line(data: &[u8], from: usize) -> Result<usize, ParseError> {
    let rest = &data[from..];
    let cr = memchr2(b'\r', b'\n', rest).ok_or(ParseError::Incomplete)?;
    match rest.get(cr..cr + 2) {
        Some(b"\r\n") => Ok(from + cr),
        None if rest[cr] == b'\r' => Err(ParseError::Incomplete),
        _ => Err(ParseError::HeaderLine),
    }
}

fn finish_header(
    buf: &Bytes,
    p: Pending,
    headers: &mut Vec<Header>,
    content_length: &mut Option<usize>,
) -> Result<(), ParseError> {
    let data: &[u8] = buf;
    let mut ne = p.colon;
    while ne > p.start && is_ws(data[ne - 1]) {
        ne -= 1;
    }
    let name_raw = &data[p.start..ne];
    // A known name is a token by construction: check only the others.
    let name = match HeaderName::lookup(name_raw) {
        Some(n) => n,
        None if !name_raw.is_empty() && all_in(name_raw, &TOKEN) => {
            HeaderName::Other(buf.slice(p.start..ne))
        }
        None => return Err(ParseError::HeaderLine),
    };
    let value = if p.folded {
        Bytes::from(unfold(&data[p.colon + 1..p.end]))
    } else {
        let raw = &data[p.colon + 1..p.end];
        let s = skip_ws(raw, 0);
        let mut e = raw.len();
        while e > s && is_ws(raw[e - 1]) {
            e -= 1;
        }
        buf.slice(p.colon + 1 + s..p.colon + 1 + e)
    };
    if name == HeaderName::ContentLength {
        if content_length.is_some() {
            return Err(ParseError::ContentLength);
        }
        let n = parse_u32(&value).ok_or(ParseError::ContentLength)?;
        *content_length = Some(n as usize);
    }
    headers.push(Header { name, value });
    Ok(())
}

/// Replaces each line fold (CRLF and the white space after it) by one SP
/// and trims the ends.
fn unfold(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' {
            i = skip_ws(b, i + 2);
            out.push(b' ');
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let t = trim(&out);
    let (s, e) = (t.as_ptr() as usize - out.as_ptr() as usize, t.len());
    out.drain(..s);
    out.truncate(e);
    out
}

fn parse_start_line(buf: &Bytes, from: usize, to: usize) -> Result<StartLine, ParseError> {
    let line = &buf[from..to];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = find_byte(b' ', line).ok_or(ParseError::StartLine)?;
        if !line[..sp].eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::Version);
        }
        let rest = &line[sp + 1..];
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::StartLine);
        }
        if rest.len() > 3 && rest[3] != b' ' {
            return Err(ParseError::StartLine);
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine);
        }
        let reason = if rest.len() > 4 {
            buf.slice(from + sp + 5..to)
        } else {
            Bytes::new()
        };
        return Ok(StartLine::Response(Response { code, reason }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP
    // between the elements and none after the version.
    let sp1 = find_byte(b' ', line).ok_or(ParseError::StartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::StartLine)?;
    if sp1 == sp2 {
        return Err(ParseError::StartLine);
    }
    let method = &line[..sp1];
    if method.is_empty() || !all_in(method, &TOKEN) {
        return Err(ParseError::StartLine);
    }
    let version = &line[sp2 + 1..];
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(if is_sip_version(version) {
            ParseError::Version
        } else {
            ParseError::StartLine
        });
    }
    let uri = &line[sp1 + 1..sp2];
    if uri.is_empty() || uri[0] == b' ' || uri[uri.len() - 1] == b' ' {
        return Err(ParseError::StartLine);
    }
    let uri =
        parse_uri_in(buf, &buf[from + sp1 + 1..from + sp2]).map_err(|_| ParseError::RequestUri)?;
    // Escaped headers are not allowed in a Request-URI (RFC 3261 §19.1.5).
    if uri.headers.is_some() {
        return Err(ParseError::RequestUri);
    }
    Ok(StartLine::Request(Request {
        method: method_in(buf, method),
        uri,
    }))
}

/// A method from a part of `src`, sliced only for extension methods.
fn method_in(src: &Bytes, m: &[u8]) -> Method {
    match Method::from_bytes_known(m) {
        Some(k) => k,
        None => Method::Other(src.slice_ref(m)),
    }
}

/// `SIP/1*DIGIT.1*DIGIT`.
fn is_sip_version(v: &[u8]) -> bool {
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    match find_byte(b'.', rest) {
        Some(dot) => {
            dot > 0
                && dot + 1 < rest.len()
                && rest[..dot].iter().all(u8::is_ascii_digit)
                && rest[dot + 1..].iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memmem::find(hay, needle)
}

/// Splits a header value on commas that are outside quotes and angle
/// brackets. Empty elements (`a,,b`, a trailing comma) are yielded as empty
/// values so that the typed parsers refuse them.
pub fn split_comma(v: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    let mut angle = false;
    let mut done = v.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < v.len() {
            match v[i] {
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
        Some(v.slice_ref(trim(&v[start.min(v.len())..])))
    })
}

// ----- header parameters -----

/// The end (exclusive) of the quoted string starting at `b[start] == '"'`.
fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // quoted-pair excludes CR and LF.
                if i + 1 >= b.len() || b[i + 1] == b'\r' || b[i + 1] == b'\n' {
                    return None;
                }
                i += 2;
            }
            b'"' => return Some(i + 1),
            b'\r' | b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// A `Bytes` for a common parameter name or transport without touching the
/// buffer's reference count (static `Bytes` cost nothing to clone or drop);
/// the content is the same octets as received.
#[inline]
fn common_or_slice(src: &Bytes, b: &[u8]) -> Bytes {
    let s: &'static [u8] = match b {
        b"branch" => b"branch",
        b"tag" => b"tag",
        b"rport" => b"rport",
        b"received" => b"received",
        b"transport" => b"transport",
        b"lr" => b"lr",
        b"maddr" => b"maddr",
        b"ttl" => b"ttl",
        b"user" => b"user",
        b"expires" => b"expires",
        b"q" => b"q",
        b"ob" => b"ob",
        b"UDP" => b"UDP",
        b"TCP" => b"TCP",
        b"TLS" => b"TLS",
        b"WS" => b"WS",
        b"WSS" => b"WSS",
        b"udp" => b"udp",
        b"tcp" => b"tcp",
        b"tls" => b"tls",
        b"phone" => b"phone",
        _ => return src.slice_ref(b),
    };
    Bytes::from_static(s)
}

/// Parses `*(SEMI generic-param)` with LWS allowed around `;` and `=`;
/// values are tokens, hosts or quoted strings (quotes kept).
pub(crate) fn parse_params(src: &Bytes, b: &[u8]) -> Result<Params, ParseError> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, 0);
    while i < b.len() {
        if b[i] != b';' {
            return Err(ParseError::Uri);
        }
        i = skip_ws(b, i + 1);
        let ns = i;
        while i < b.len() && TOKEN[b[i] as usize] {
            i += 1;
        }
        if ns == i {
            return Err(ParseError::Uri);
        }
        let name = common_or_slice(src, &b[ns..i]);
        i = skip_ws(b, i);
        let mut value = None;
        if i < b.len() && b[i] == b'=' {
            i = skip_ws(b, i + 1);
            let vs = i;
            if i < b.len() && b[i] == b'"' {
                i = quoted_end(b, i).ok_or(ParseError::Uri)?;
            } else if i < b.len() && b[i] == b'[' {
                // An IPv6 reference (`received`, `maddr`).
                i = find_byte(b']', &b[i..]).ok_or(ParseError::Uri)? + i + 1;
                if !valid_host(&b[vs..i]) {
                    return Err(ParseError::Uri);
                }
            } else {
                while i < b.len() && TOKEN[b[i] as usize] {
                    i += 1;
                }
                if vs == i {
                    return Err(ParseError::Uri);
                }
            }
            value = Some(src.slice_ref(&b[vs..i]));
            i = skip_ws(b, i);
        }
        out.push((name, value));
    }
    Ok(Params(out))
}

/// URI parameters: `*(";" pname ["=" pvalue])`, no LWS, no empty ones.
fn parse_uri_params(src: &Bytes, b: &[u8]) -> Result<Params, ParseError> {
    let mut out = Vec::new();
    if b.is_empty() {
        return Ok(Params(out));
    }
    for part in b[1..].split(|&c| c == b';') {
        let (n, v) = match find_byte(b'=', part) {
            Some(eq) => (&part[..eq], Some(&part[eq + 1..])),
            None => (part, None),
        };
        if n.is_empty() || !all_in(n, &PARAMCHAR) || !escapes_ok(n) {
            return Err(ParseError::Uri);
        }
        if let Some(v) = v {
            if v.is_empty() || !all_in(v, &PARAMCHAR) || !escapes_ok(v) {
                return Err(ParseError::Uri);
            }
        }
        out.push((common_or_slice(src, n), v.map(|v| common_or_slice(src, v))));
    }
    Ok(Params(out))
}

// ----- URIs -----

/// Parses a URI: `sip:`/`sips:` to RFC 3261 §25.1, any other scheme as an
/// opaque absolute URI.
pub fn parse_uri(b: &Bytes) -> Result<Uri, ParseError> {
    parse_uri_in(b, b)
}

/// [`parse_uri`] over `b`, a part of `src`: the URI's parts become slices
/// of `src` without an intermediate `Bytes` for the URI itself.
#[inline]
fn parse_uri_in(src: &Bytes, b: &[u8]) -> Result<Uri, ParseError> {
    let colon = find_byte(b':', b).ok_or(ParseError::Uri)?;
    let scheme_raw = &b[..colon];
    if scheme_raw.is_empty() || !scheme_raw[0].is_ascii_alphabetic() || !all_in(scheme_raw, &SCHEME)
    {
        return Err(ParseError::Uri);
    }
    let scheme = if scheme_raw.eq_ignore_ascii_case(b"sip") {
        Scheme::Sip
    } else if scheme_raw.eq_ignore_ascii_case(b"sips") {
        Scheme::Sips
    } else if scheme_raw.eq_ignore_ascii_case(b"tel") {
        Scheme::Tel
    } else {
        Scheme::Other(src.slice_ref(&b[..colon]))
    };
    let rest = &b[colon + 1..];
    if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
        if rest.is_empty() || rest.iter().any(|&c| c <= b' ' || b"<>\"\x7f".contains(&c)) {
            return Err(ParseError::Uri);
        }
        return Ok(Uri {
            scheme,
            user: None,
            password: None,
            host: Bytes::new(),
            port: None,
            params: Params::default(),
            headers: None,
            opaque: Some(src.slice_ref(rest)),
        });
    }
    // No '@' may appear outside the userinfo, so the first one ends it.
    let (user, password, hp) = match find_byte(b'@', rest) {
        Some(at) => {
            let ui = &rest[..at];
            let (u, p) = match find_byte(b':', ui) {
                Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                None => (ui, None),
            };
            if u.is_empty() || !all_in(u, &USER) || !escapes_ok(u) {
                return Err(ParseError::Uri);
            }
            if let Some(p) = p {
                if !all_in(p, &PASSWORD) || !escapes_ok(p) {
                    return Err(ParseError::Uri);
                }
            }
            (
                Some(src.slice_ref(u)),
                p.map(|p| src.slice_ref(p)),
                &rest[at + 1..],
            )
        }
        None => (None, None, rest),
    };
    let (hp, headers) = match find_byte(b'?', hp) {
        Some(q) => {
            let h = &hp[q + 1..];
            if h.is_empty() || !all_in(h, &HNV) || !escapes_ok(h) {
                return Err(ParseError::Uri);
            }
            (&hp[..q], Some(src.slice_ref(h)))
        }
        None => (hp, None),
    };
    let (hostport, params) = match find_byte(b';', hp) {
        Some(s) => (&hp[..s], &hp[s..]),
        None => (hp, &hp[hp.len()..]),
    };
    let (host, port) = split_host_port(hostport).ok_or(ParseError::Uri)?;
    Ok(Uri {
        scheme,
        user,
        password,
        host: src.slice_ref(host),
        port,
        params: parse_uri_params(src, params)?,
        headers,
        opaque: None,
    })
}

/// A host name, IPv4 address or bracketed IPv6 reference.
fn valid_host(h: &[u8]) -> bool {
    match h {
        [b'[', inner @ .., b']'] => std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some(),
        _ => !h.is_empty() && all_in(h, &HOST),
    }
}

fn parse_port(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    u16::try_from(parse_u32(p)?).ok()
}

/// `host [":" port]` with no white space.
fn split_host_port(hp: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, port) = if hp.first() == Some(&b'[') {
        let end = find_byte(b']', hp)?;
        match &hp[end + 1..] {
            [] => (&hp[..=end], None),
            [b':', p @ ..] => (&hp[..=end], Some(p)),
            _ => return None,
        }
    } else {
        match find_byte(b':', hp) {
            Some(c) => (&hp[..c], Some(&hp[c + 1..])),
            None => (hp, None),
        }
    };
    if !valid_host(host) {
        return None;
    }
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Some((host, port))
}

// ----- typed headers -----

fn token_at(b: &[u8], mut i: usize) -> (usize, usize) {
    let s = i;
    while i < b.len() && TOKEN[b[i] as usize] {
        i += 1;
    }
    (s, i)
}

/// One Via value: `sent-protocol LWS sent-by *(SEMI via-params)`, with LWS
/// allowed around `/` and `:`.
#[inline]
pub fn parse_via(b: &Bytes) -> Result<Via, ParseError> {
    let bad = || ParseError::Invalid("Via".into());
    let t: &[u8] = b;
    let mut i = skip_ws(t, 0);
    let (ns, ne) = token_at(t, i);
    if !t[ns..ne].eq_ignore_ascii_case(b"SIP") {
        return Err(bad());
    }
    i = skip_ws(t, ne);
    if t.get(i) != Some(&b'/') {
        return Err(bad());
    }
    i = skip_ws(t, i + 1);
    let (vs, ve) = token_at(t, i);
    if &t[vs..ve] != b"2.0" {
        return Err(bad());
    }
    i = skip_ws(t, ve);
    if t.get(i) != Some(&b'/') {
        return Err(bad());
    }
    i = skip_ws(t, i + 1);
    let (ts, te) = token_at(t, i);
    if ts == te {
        return Err(bad());
    }
    i = skip_ws(t, te);
    if i == te {
        return Err(bad());
    }
    // sent-by: host, then optional port with LWS around the colon.
    let hs = i;
    if t.get(i) == Some(&b'[') {
        i = find_byte(b']', &t[i..]).ok_or_else(bad)? + i + 1;
    } else {
        while i < t.len() && HOST[t[i] as usize] {
            i += 1;
        }
    }
    let he = i;
    if !valid_host(&t[hs..he]) {
        return Err(bad());
    }
    let mut port = None;
    let j = skip_ws(t, i);
    if t.get(j) == Some(&b':') {
        let ps = skip_ws(t, j + 1);
        let mut pe = ps;
        while pe < t.len() && t[pe].is_ascii_digit() {
            pe += 1;
        }
        port = Some(parse_port(&t[ps..pe]).ok_or_else(bad)?);
        i = pe;
    }
    Ok(Via {
        transport: common_or_slice(b, &t[ts..te]),
        host: b.slice(hs..he),
        port,
        params: parse_params(b, &t[i..]).map_err(|_| bad())?,
    })
}

/// `CSeq: 1*DIGIT LWS Method`, the number below 2**31.
pub fn parse_cseq(b: &Bytes) -> Result<CSeq, ParseError> {
    let bad = || ParseError::Invalid("CSeq".into());
    let t: &[u8] = b;
    let s = skip_ws(t, 0);
    let mut i = s;
    while i < t.len() && t[i].is_ascii_digit() {
        i += 1;
    }
    let seq = parse_u32(&t[s..i]).ok_or_else(bad)?;
    if seq > MAX_CSEQ {
        return Err(bad());
    }
    let ms = skip_ws(t, i);
    if ms == i {
        return Err(bad());
    }
    let (ms, me) = token_at(t, ms);
    if ms == me || skip_ws(t, me) != t.len() {
        return Err(bad());
    }
    Ok(CSeq {
        seq,
        method: method_in(b, &t[ms..me]),
    })
}

/// `name-addr / addr-spec` followed by header parameters (From, To,
/// Contact, Route, Record-Route). Parameters after an addr-spec belong to
/// the header; an addr-spec holding `,`, `;` or `?` must be in `<>`.
#[inline]
pub fn parse_name_addr(b: &Bytes) -> Result<NameAddr, ParseError> {
    let bad = || ParseError::Invalid("address".into());
    let t: &[u8] = b;
    let s = skip_ws(t, 0);
    let mut e = t.len();
    while e > s && is_ws(t[e - 1]) {
        e -= 1;
    }
    let t = &t[..e];
    let (display, lt) = if t.get(s) == Some(&b'"') {
        let qe = quoted_end(t, s).ok_or_else(bad)?;
        let lt = skip_ws(t, qe);
        if t.get(lt) != Some(&b'<') {
            return Err(bad());
        }
        (Some(b.slice(s..qe)), Some(lt))
    } else {
        match find_byte(b'<', &t[s..]) {
            Some(lt) => {
                let lt = s + lt;
                let d = &t[s..lt];
                let mut de = d.len();
                while de > 0 && is_ws(d[de - 1]) {
                    de -= 1;
                }
                // display-name = *(token LWS): tokens and white space only.
                if !d.iter().all(|&c| TOKEN[c as usize] || is_ws(c)) {
                    return Err(bad());
                }
                let display = (de > 0).then(|| b.slice(s..s + de));
                (display, Some(lt))
            }
            None => (None, None),
        }
    };
    match lt {
        Some(lt) => {
            let gt = find_byte(b'>', &t[lt..]).ok_or_else(bad)? + lt;
            let uri = parse_uri_in(b, &t[lt + 1..gt]).map_err(|_| bad())?;
            let params = parse_params(b, &t[gt + 1..]).map_err(|_| bad())?;
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        }
        None => {
            let ue = find_byte(b';', &t[s..]).map_or(t.len(), |p| p + s);
            let mut uend = ue;
            while uend > s && is_ws(t[uend - 1]) {
                uend -= 1;
            }
            let u = &t[s..uend];
            if u.is_empty()
                || memchr3(b',', b'?', b' ', u).is_some()
                || find_byte(b'\t', u).is_some()
            {
                return Err(bad());
            }
            Ok(NameAddr {
                display: None,
                uri: parse_uri_in(b, u).map_err(|_| bad())?,
                params: parse_params(b, &t[ue..]).map_err(|_| bad())?,
            })
        }
    }
}

/// Framing for stream transports: how long the next message is, once its
/// head is complete. `None` means more octets are needed.
pub fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut pos = 0;
    while buf[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let Some(head_end) = find(&buf[pos..], b"\r\n\r\n").map(|e| e + pos) else {
        return Ok(None);
    };
    let head = &buf[pos..head_end + 2];
    let mut cl: Option<usize> = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        if line.first().is_some_and(|&c| is_ws(c)) {
            continue;
        }
        if let Some(colon) = find_byte(b':', line) {
            let name = trim(&line[..colon]);
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                if cl.is_some() {
                    return Err(ParseError::ContentLength);
                }
                cl = Some(parse_u32(&line[colon + 1..]).ok_or(ParseError::ContentLength)? as usize);
            }
        }
    }
    // Over a stream, Content-Length is mandatory (RFC 3261 §18.3).
    let cl = cl.ok_or(ParseError::Missing("Content-Length"))?;
    let total = head_end + 4 + cl;
    Ok(if buf.len() >= total {
        Some(total)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
        Call-ID: x@y\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

    fn req(start: &str, extra: &str, body: &str) -> Result<Message, ParseError> {
        let s = format!("{start}\r\n{HEAD}{extra}\r\n{body}");
        parse_message(&Bytes::from(s))
    }

    #[test]
    fn request_line_needs_exactly_one_sp() {
        assert!(req("OPTIONS sip:b@example.com SIP/2.0", "", "").is_ok());
        for bad in [
            "OPTIONS  sip:b@example.com SIP/2.0",
            "OPTIONS sip:b@example.com  SIP/2.0",
            "OPTIONS sip:b@example.com SIP/2.0 ",
            "OPTIONS sip:b@example.com",
        ] {
            assert_eq!(
                req(bad, "", "").unwrap_err(),
                ParseError::StartLine,
                "{bad}"
            );
        }
        assert_eq!(
            req("OPTIONS sip:b@example.com SIP/3.0", "", "").unwrap_err(),
            ParseError::Version
        );
    }

    #[test]
    fn status_line() {
        let ok = |s: &str| parse_message(&Bytes::from(format!("{s}\r\n{HEAD}\r\n")));
        assert_eq!(ok("SIP/2.0 180 Ringing").unwrap().status(), Some(180));
        assert_eq!(ok("SIP/2.0 100").unwrap().status(), Some(100));
        assert_eq!(ok("SIP/2.0 700 Nope").unwrap_err(), ParseError::StartLine);
        assert_eq!(ok("SIP/2.0 099 Nope").unwrap_err(), ParseError::StartLine);
        assert_eq!(ok("SIP/2.0 1800 Nope").unwrap_err(), ParseError::StartLine);
        assert_eq!(ok("SIP/1.0 200 OK").unwrap_err(), ParseError::Version);
    }

    #[test]
    fn extension_methods_parse() {
        let m = req("FOO sip:b@example.com SIP/2.0", "", "").unwrap();
        assert_eq!(m.method().unwrap().as_str(), "FOO");
        assert!(matches!(m.method(), Some(Method::Other(_))));
    }

    #[test]
    fn content_length_rules() {
        let start = "OPTIONS sip:b@example.com SIP/2.0";
        assert_eq!(
            req(start, "Content-Length: 3\r\n", "abcdef")
                .unwrap()
                .body
                .as_ref(),
            b"abc"
        );
        assert!(req(start, "", "abc").unwrap().body.as_ref() == b"abc");
        for bad in ["-1", "4294967296", "1 2", "x", ""] {
            let e = req(start, &format!("Content-Length: {bad}\r\n"), "abc").unwrap_err();
            assert_eq!(e, ParseError::ContentLength, "{bad}");
        }
        let e = req(start, "Content-Length: 1\r\nl: 1\r\n", "a").unwrap_err();
        assert_eq!(e, ParseError::ContentLength);
        let e = req(start, "Content-Length: 9\r\n", "abc").unwrap_err();
        assert_eq!(e, ParseError::BodyTruncated);
    }

    #[test]
    fn folding_copies_once_and_joins_with_one_sp() {
        let m = req(
            "OPTIONS sip:b@example.com SIP/2.0",
            "Subject: a\r\n \t b\r\n\tc\r\n",
            "",
        )
        .unwrap();
        assert_eq!(m.header_str("Subject").unwrap().as_ref(), b"a b c");
        // A continuation right after the start line is refused.
        let s = format!("OPTIONS sip:b@example.com SIP/2.0\r\n x\r\n{HEAD}\r\n");
        assert_eq!(
            parse_message(&Bytes::from(s)).unwrap_err(),
            ParseError::HeaderLine
        );
    }

    #[test]
    fn values_are_slices_of_the_input() {
        let buf = Bytes::from(format!("OPTIONS sip:b@example.com SIP/2.0\r\n{HEAD}\r\n"));
        let m = parse_message(&buf).unwrap();
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        for h in &m.headers {
            assert!(range.contains(&(h.value.as_ptr() as usize)), "{}", h.name);
        }
    }

    #[test]
    fn uris() {
        let u = |s: &'static str| parse_uri(&Bytes::from_static(s.as_bytes()));
        assert_eq!(u("sip:[2001:db8::1]:5060").unwrap().port, Some(5060));
        assert!(u("sip:[2001:db8::g]").is_err());
        assert!(u("sip:[::1").is_err());
        assert!(u("sip:a%2@b").is_err());
        assert!(u("sip:a%zz@b").is_err());
        assert!(u("sip:a%41@b").is_ok());
        assert!(u("sip:a@b:").is_err());
        assert!(u("sip:a@b:65536").is_err());
        assert!(u("sip:a@b;;x").is_err());
        assert!(u("sip:a@b c").is_err());
        assert!(u("sip:a@@b").is_err());
        assert_eq!(
            u("sips:a@b?x=1&y=2").unwrap().headers.unwrap().as_ref(),
            b"x=1&y=2"
        );
        assert!(matches!(u("tel:+1-555").unwrap().scheme, Scheme::Tel));
        assert!(u("tel:").is_err());
        // Escaped headers are refused in a Request-URI only.
        let e = req("OPTIONS sip:b@example.com?x=1 SIP/2.0", "", "").unwrap_err();
        assert_eq!(e, ParseError::RequestUri);
    }

    #[test]
    fn name_addr_forms() {
        let na = |s: &'static str| parse_name_addr(&Bytes::from_static(s.as_bytes()));
        // addr-spec: params belong to the header.
        let a = na("sip:a@b;tag=1").unwrap();
        assert!(a.uri.params.0.is_empty());
        assert_eq!(a.tag().unwrap().as_ref(), b"1");
        // name-addr: params inside <> belong to the URI.
        let a = na("<sip:a@b;lr>;tag=2").unwrap();
        assert!(a.uri.params.has("lr"));
        assert_eq!(a.tag().unwrap().as_ref(), b"2");
        assert_eq!(
            na(r#""a \"q\" \\ b" <sip:a@b>"#)
                .unwrap()
                .display
                .unwrap()
                .as_ref(),
            br#""a \"q\" \\ b""#
        );
        for bad in [
            "sip:a@b?x=1",
            "sip:a@b,sip:c@d",
            r#""open <sip:a@b>"#,
            "Bell, A <sip:a@b>",
            "< sip:a@b>",
            "<sip:a@b>;",
            "<sip:a@b>;;tag=1",
            "<sip:a@b> junk",
            "<sip:a@b",
        ] {
            assert!(na(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cseq_and_via_scalars() {
        let c = |s: &'static str| parse_cseq(&Bytes::from_static(s.as_bytes()));
        assert_eq!(c("2147483647 INVITE").unwrap().seq, MAX_CSEQ);
        assert!(c("2147483648 INVITE").is_err());
        assert!(c("00000000000000000001 INVITE").is_ok());
        assert!(c("1INVITE").is_err());
        assert!(c("1 INVITE x").is_err());
        let v = |s: &'static str| parse_via(&Bytes::from_static(s.as_bytes()));
        let via = v("SIP / 2.0 / TCP host : 5061 ; branch = z9hG4bKx ; received=[::1]").unwrap();
        assert_eq!(via.port, Some(5061));
        assert_eq!(via.branch().unwrap().as_ref(), b"z9hG4bKx");
        assert!(v("SIP/2.0/UDP host:99999").is_err());
        assert!(v("SIP/2.0/UDP host;branch=a]b").is_err());
        assert!(v("SIP/2.0/UDPhost").is_err());
        assert!(v("SIP/3.0/UDP host").is_err());
    }

    #[test]
    fn stream_framing() {
        let head = format!("OPTIONS sip:b@example.com SIP/2.0\r\n{HEAD}");
        let full = format!("{head}Content-Length: 2\r\n\r\nab");
        assert_eq!(
            stream_message_len(full.as_bytes()).unwrap(),
            Some(full.len())
        );
        assert_eq!(
            stream_message_len(&full.as_bytes()[..full.len() - 1]).unwrap(),
            None
        );
        let no_cl = format!("{head}\r\n");
        assert!(stream_message_len(no_cl.as_bytes()).is_err());
        let two = format!("{head}Content-Length: 2\r\nl: 2\r\n\r\nab");
        assert_eq!(
            stream_message_len(two.as_bytes()),
            Err(ParseError::ContentLength)
        );
    }
}
