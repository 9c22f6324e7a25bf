//! The parser: RFC 3261 §7 framing and §25 grammar for the parts we type.
//! Zero-copy: header values are `Bytes` slices of the input, except where
//! line folding forces a copy.

use bytes::Bytes;
use memchr::{memchr, memchr3, memmem};
use thiserror::Error;

use crate::header::{CSeq, NameAddr, Params, Via};
use crate::message::{Header, HeaderName, Message, Method, Request, Response, StartLine};
use crate::uri::{Scheme, Uri, UriExtra};

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

/// `t` less the octet `c`.
const fn without(mut t: [bool; 256], c: u8) -> [bool; 256] {
    t[c as usize] = false;
    t
}

/// `token`.
static TOKEN: [bool; 256] = class(b"-.!%*_+`'~", true);
/// `user` (unreserved, user-unreserved, `%` for escapes).
static USER: [bool; 256] = class(b"-_.!~*'()&=+$,;?/%", true);
/// `user` without `%`: a run of it needs no escape check.
static USER_PLAIN: [bool; 256] = without(USER, b'%');
/// `password`.
static PASSWORD: [bool; 256] = class(b"-_.!~*'()&=+$,%", true);
/// Host names and IPv4 addresses (`_` tolerated: it is common in the field).
static HOST: [bool; 256] = class(b"-._", true);
/// `paramchar` of URI parameters.
static PARAMCHAR: [bool; 256] = class(b"-_.!~*'()[]/:&+$%", true);
/// `paramchar` without `%`.
static PARAMCHAR_PLAIN: [bool; 256] = without(PARAMCHAR, b'%');
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

/// The end of the run of `t` octets in `b` from `from`, four octets per
/// step with one bounds check.
#[inline(always)]
fn run(b: &[u8], from: usize, t: &[bool; 256]) -> usize {
    let mut i = from;
    while let Some(w) = b.get(i..i + 4) {
        if !t[w[0] as usize] {
            return i;
        }
        if !t[w[1] as usize] {
            return i + 1;
        }
        if !t[w[2] as usize] {
            return i + 2;
        }
        if !t[w[3] as usize] {
            return i + 3;
        }
        i += 4;
    }
    while i < b.len() && t[b[i] as usize] {
        i += 1;
    }
    i
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
pub fn parse_message(buf: &Bytes) -> Result<Message, ParseError> {
    parse_message_inner(buf).map(|(msg, _)| msg)
}

/// A header line in the making: offsets into the buffer.
struct Pending {
    start: usize,
    /// End of the name (a token), valid when `name_ok`.
    name_end: usize,
    /// False when the text before the colon is not a token: refused once the
    /// header is complete, as every other header error.
    name_ok: bool,
    colon: usize,
    end: usize,
    folded: bool,
}

/// Parses one message and returns how many octets it used.
pub fn parse_message_len(buf: &Bytes) -> Result<(Message, usize), ParseError> {
    parse_message_inner(buf)
}

#[inline(always)]
fn parse_message_inner(buf: &Bytes) -> Result<(Message, usize), ParseError> {
    let data: &[u8] = buf;
    // Skip leading CRLFs (keep-alives, RFC 3261 §7.5).
    let mut pos = 0;
    while data[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let line_end = next_line(data, pos)?;
    let start = parse_start_line(buf, pos, line_end)?;

    // 14 headers cover common requests and keep the allocation (14 x 72
    // octets) within the allocator's small-size fast path.
    let mut headers = Vec::with_capacity(14);
    let mut content_length: Option<usize> = None;
    let mut pending: Option<Pending> = None;
    let mut i = line_end + 2;
    let body_start = loop {
        // A header line starts with `token *WSP ":"`: scanned first, so that
        // the search for the line end starts after the colon.
        let ne = run(data, i, &TOKEN);
        let colon = skip_ws(data, ne);
        let name_ok = ne > i && data.get(colon) == Some(&b':');
        let end = next_line(data, if name_ok { colon + 1 } else { i })?;
        if end != i && is_ws(data[i]) {
            // A continuation line (folding, RFC 3261 §7.3.1).
            match pending.as_mut() {
                Some(p) => {
                    p.end = end;
                    p.folded = true;
                }
                None => return Err(ParseError::HeaderLine),
            }
        } else {
            // A new line or the empty one: the header before it is complete.
            if let Some(p) = pending.take() {
                finish_header(buf, p, &mut headers, &mut content_length)?;
            }
            if end == i {
                break end + 2;
            }
            // Without a token name this is still a header line if it has a
            // colon (refused when complete, as other bad headers).
            let colon = if name_ok {
                colon
            } else {
                find_byte(b':', &data[i..end]).ok_or(ParseError::HeaderLine)? + i
            };
            pending = Some(Pending {
                start: i,
                name_end: ne,
                name_ok,
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
#[inline]
fn next_line(data: &[u8], from: usize) -> Result<usize, ParseError> {
    let rest = &data[from..];
    let cr = find_cr_or_lf(rest).ok_or(ParseError::Incomplete)?;
    match rest.get(cr..cr + 2) {
        Some(b"\r\n") => Ok(from + cr),
        None if rest[cr] == b'\r' => Err(ParseError::Incomplete),
        _ => Err(ParseError::HeaderLine),
    }
}

/// The first CR or LF. Header lines are a few dozen octets, too short for
/// `memchr2`'s dispatch and alignment set-up to pay off: a plain loop over
/// 16-octet blocks (SSE2, part of the x86-64 baseline) does better.
#[cfg(target_arch = "x86_64")]
#[inline]
fn find_cr_or_lf(b: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut chunks = b.chunks_exact(16);
    let mut off = 0;
    // SAFETY: SSE2 is enabled on every x86-64 target; each load reads the 16
    // octets of one chunk and has no alignment requirement.
    unsafe {
        let cr = _mm_set1_epi8(b'\r' as i8);
        let lf = _mm_set1_epi8(b'\n' as i8);
        for c in &mut chunks {
            let v = _mm_loadu_si128(c.as_ptr().cast::<__m128i>());
            let hits =
                _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
            if hits != 0 {
                return Some(off + hits.trailing_zeros() as usize);
            }
            off += 16;
        }
    }
    eol_in_tail(chunks.remainder(), off)
}

/// The first CR or LF in the last, shorter-than-a-block octets at `off`.
#[inline]
fn eol_in_tail(rest: &[u8], off: usize) -> Option<usize> {
    rest.iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .map(|p| off + p)
}

#[cfg(not(target_arch = "x86_64"))]
use find_cr_or_lf_swar as find_cr_or_lf;

/// The first CR or LF, eight octets at a time: the portable version (other
/// targets, and a reference for the tests).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
fn find_cr_or_lf_swar(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    // Has-zero-byte test: exact for the lowest matching octet, which is all
    // we read (higher bits may be false positives after a borrow).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let eol = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_le_bytes(w);
        zero(v ^ CRS) | zero(v ^ LFS)
    };
    let mut chunks = b.chunks_exact(16);
    let mut off = 0;
    for c in &mut chunks {
        let (lo, hi) = (eol(&c[..8]), eol(&c[8..]));
        if lo | hi != 0 {
            let at = if lo != 0 {
                lo.trailing_zeros()
            } else {
                64 + hi.trailing_zeros()
            };
            return Some(off + (at / 8) as usize);
        }
        off += 16;
    }
    eol_in_tail(chunks.remainder(), off)
}

#[inline(always)]
fn finish_header(
    buf: &Bytes,
    p: Pending,
    headers: &mut Vec<Header>,
    content_length: &mut Option<usize>,
) -> Result<(), ParseError> {
    if !p.name_ok {
        return Err(ParseError::HeaderLine);
    }
    let data: &[u8] = buf;
    let name = match HeaderName::lookup(&data[p.start..p.name_end]) {
        Some(n) => n,
        None => HeaderName::Other(common_name_or_slice(buf, p.start, p.name_end)),
    };
    let value = if p.folded {
        Bytes::from(unfold(&data[p.colon + 1..p.end]))
    } else {
        let s = skip_ws(&data[..p.end], p.colon + 1);
        let mut e = p.end;
        while e > s && is_ws(data[e - 1]) {
            e -= 1;
        }
        buf.slice(s..e)
    };
    if matches!(name, HeaderName::ContentLength) {
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
    let u = &buf[from + sp1 + 1..from + sp2];
    // The URI is parsed straight into the request: moved through a `Result`
    // on the way, it would be copied once more.
    Ok(StartLine::Request(Request {
        method: method_in(buf, method),
        uri: match simple_sip_uri(buf, u) {
            Some(uri) => uri,
            None => match parse_uri_general(buf, u) {
                // Escaped headers are not allowed in a Request-URI (RFC 3261 §19.1.5).
                Ok(uri) if uri.headers().is_none() => uri,
                _ => return Err(ParseError::RequestUri),
            },
        },
    }))
}

/// `src.slice_ref(part)` without its bounds re-check: `part` is always a
/// part of `src` here (a debug build still checks).
#[inline]
fn sub(src: &Bytes, part: &[u8]) -> Bytes {
    let start = part.as_ptr() as usize - src.as_ptr() as usize;
    debug_assert!(start + part.len() <= src.len());
    src.slice(start..start + part.len())
}

/// A method from a part of `src`, sliced only for extension methods.
fn method_in(src: &Bytes, m: &[u8]) -> Method {
    match Method::from_bytes_known(m) {
        Some(k) => k,
        None => Method::Other(sub(src, m)),
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
        _ => return sub(src, b),
    };
    Bytes::from_static(s)
}

/// An extension header name: a static `Bytes` (no reference count to touch)
/// when it is, octet for octet, one that phones send on every request.
#[inline]
fn common_name_or_slice(buf: &Bytes, start: usize, end: usize) -> Bytes {
    let s: &'static [u8] = match &buf[start..end] {
        b"Allow-Events" => b"Allow-Events",
        b"Session-Expires" => b"Session-Expires",
        b"Min-SE" => b"Min-SE",
        b"P-Asserted-Identity" => b"P-Asserted-Identity",
        b"P-Preferred-Identity" => b"P-Preferred-Identity",
        b"Remote-Party-ID" => b"Remote-Party-ID",
        b"Subject" => b"Subject",
        b"Reason" => b"Reason",
        b"Refer-To" => b"Refer-To",
        b"Referred-By" => b"Referred-By",
        b"Replaces" => b"Replaces",
        b"Diversion" => b"Diversion",
        b"Retry-After" => b"Retry-After",
        b"Call-Info" => b"Call-Info",
        b"Alert-Info" => b"Alert-Info",
        b"Organization" => b"Organization",
        b"Path" => b"Path",
        b"RSeq" => b"RSeq",
        b"RAck" => b"RAck",
        _ => return buf.slice(start..end),
    };
    Bytes::from_static(s)
}

/// Parses `*(SEMI generic-param)` with LWS allowed around `;` and `=`;
/// values are tokens, hosts or quoted strings (quotes kept).
pub(crate) fn parse_params(src: &Bytes, b: &[u8]) -> Result<Params, ParseError> {
    // Room for the usual few parameters up front, not grown one by one.
    let mut out = if b.is_empty() {
        Vec::new()
    } else {
        Vec::with_capacity(4)
    };
    let mut i = skip_ws(b, 0);
    while i < b.len() {
        if b[i] != b';' {
            return Err(ParseError::Uri);
        }
        i = skip_ws(b, i + 1);
        let ns = i;
        i = run(b, i, &TOKEN);
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
                i = run(b, i, &TOKEN);
                if vs == i {
                    return Err(ParseError::Uri);
                }
            }
            value = Some(sub(src, &b[vs..i]));
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
    match simple_sip_uri(src, b) {
        Some(uri) => Ok(uri),
        None => parse_uri_general(src, b),
    }
}

/// [`parse_uri_in`] as an `Option`: the simple shape's `Uri` then goes
/// straight into the caller's struct instead of through a `Result` (each
/// such move copies 150 octets).
#[inline(always)]
fn uri_of(src: &Bytes, b: &[u8]) -> Option<Uri> {
    match simple_sip_uri(src, b) {
        Some(uri) => Some(uri),
        None => parse_uri_general(src, b).ok(),
    }
}

/// The common shape `sip:[user@]host[:port][;name[=value]]*`, in one pass:
/// lower-case scheme, no escapes, no password, no IPv6 reference, no
/// `?headers`. `None` hands anything else (valid or not) to
/// [`parse_uri_general`], so the two always agree.
#[inline(always)]
fn simple_sip_uri(src: &Bytes, b: &[u8]) -> Option<Uri> {
    let rest = b.strip_prefix(b"sip:")?;
    // Userinfo: `user` characters up to the first '@' (USER without '%',
    // so no escape needs checking; a ':' means a password or a port).
    let u = run(rest, 0, &USER_PLAIN);
    let (user, hp) = if rest.get(u) == Some(&b'@') {
        if u == 0 {
            return None;
        }
        (Some(&rest[..u]), &rest[u + 1..])
    } else if find_byte(b'@', &rest[u..]).is_some() {
        return None;
    } else {
        (None, rest)
    };
    let h = run(hp, 0, &HOST);
    if h == 0 {
        return None;
    }
    let mut i = h;
    let mut port = None;
    if hp.get(i) == Some(&b':') {
        let ps = i + 1;
        i = ps;
        while i < hp.len() && hp[i].is_ascii_digit() {
            i += 1;
        }
        port = Some(parse_port(&hp[ps..i])?);
    }
    let params = &hp[i..];
    let mut list = Vec::new();
    if !params.is_empty() {
        list.reserve_exact(4);
        // `;name[=value]` with PARAMCHAR names and values, none empty.
        let mut j = 0;
        while j < params.len() {
            if params[j] != b';' {
                return None;
            }
            let ns = j + 1;
            j = ns + paramchars(&params[ns..]);
            if j == ns {
                return None;
            }
            let name = common_or_slice(src, &params[ns..j]);
            let value = if params.get(j) == Some(&b'=') {
                let vs = j + 1;
                j = vs + paramchars(&params[vs..]);
                if j == vs {
                    return None;
                }
                Some(common_or_slice(src, &params[vs..j]))
            } else {
                None
            };
            list.push((name, value));
        }
    }
    Some(Uri {
        scheme: Scheme::Sip,
        user: user.map(|u| sub(src, u)),
        host: sub(src, &hp[..h]),
        port,
        params: Params(list),
        extra: None,
    })
}

/// The length of the run of PARAMCHAR octets (escapes excluded) at the start of `b`.
#[inline]
fn paramchars(b: &[u8]) -> usize {
    run(b, 0, &PARAMCHAR_PLAIN)
}

/// Any URI, to the full grammar (see [`parse_uri`]).
fn parse_uri_general(src: &Bytes, b: &[u8]) -> Result<Uri, ParseError> {
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
        Scheme::Other(sub(src, &b[..colon]))
    };
    let rest = &b[colon + 1..];
    if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
        if rest.is_empty() || rest.iter().any(|&c| c <= b' ' || b"<>\"\x7f".contains(&c)) {
            return Err(ParseError::Uri);
        }
        return Ok(Uri {
            scheme,
            user: None,
            host: Bytes::new(),
            port: None,
            params: Params::default(),
            extra: Some(Box::new(UriExtra {
                opaque: Some(sub(src, rest)),
                ..UriExtra::default()
            })),
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
            (Some(sub(src, u)), p.map(|p| sub(src, p)), &rest[at + 1..])
        }
        None => (None, None, rest),
    };
    let (hp, headers) = match find_byte(b'?', hp) {
        Some(q) => {
            let h = &hp[q + 1..];
            if h.is_empty() || !all_in(h, &HNV) || !escapes_ok(h) {
                return Err(ParseError::Uri);
            }
            (&hp[..q], Some(sub(src, h)))
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
        host: sub(src, host),
        port,
        params: parse_uri_params(src, params)?,
        extra: UriExtra {
            password,
            headers,
            opaque: None,
        }
        .boxed(),
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
    if p.is_empty() || p.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &c in p {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    u16::try_from(n).ok()
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

fn token_at(b: &[u8], i: usize) -> (usize, usize) {
    (i, run(b, i, &TOKEN))
}

/// One Via value: `sent-protocol LWS sent-by *(SEMI via-params)`, with LWS
/// allowed around `/` and `:`.
#[inline]
pub fn parse_via(b: &Bytes) -> Result<Via, ParseError> {
    match simple_via(b) {
        Some(via) => via,
        None => parse_via_general(b),
    }
}

/// The usual `SIP/2.0/UDP host[:port][;params]` in one pass. `None` hands
/// any other spacing or an IPv6 sent-by to [`parse_via_general`].
#[inline]
fn simple_via(b: &Bytes) -> Option<Result<Via, ParseError>> {
    let t: &[u8] = b;
    let rest = t.strip_prefix(b"SIP/2.0/")?;
    let ts = 8;
    let te = ts + run(rest, 0, &TOKEN);
    if te == ts || t.get(te) != Some(&b' ') {
        return None;
    }
    let hs = te + 1;
    let he = run(t, hs, &HOST);
    if he == hs {
        return None;
    }
    let mut i = he;
    let mut port = None;
    if t.get(i) == Some(&b':') {
        let ps = i + 1;
        i = ps
            + t[ps..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(t.len() - ps);
        port = Some(parse_port(&t[ps..i])?);
    }
    if !matches!(t.get(i), None | Some(b';')) {
        return None;
    }
    Some(match parse_params(b, &t[i..]) {
        Ok(params) => Ok(Via {
            transport: common_or_slice(b, &t[ts..te]),
            host: b.slice(hs..he),
            port,
            params,
        }),
        Err(_) => Err(ParseError::Invalid("Via".into())),
    })
}

/// [`parse_via`] to the full grammar.
fn parse_via_general(b: &Bytes) -> Result<Via, ParseError> {
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
        i = run(t, i, &HOST);
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
    let mut seq: u32 = 0;
    while i < t.len() && t[i].is_ascii_digit() {
        // Leading zeros are allowed; the value may not pass MAX_CSEQ
        // (checked on each digit, so the u64 never overflows).
        let n = u64::from(seq) * 10 + u64::from(t[i] - b'0');
        seq = match u32::try_from(n) {
            Ok(n) if n <= MAX_CSEQ => n,
            _ => return Err(bad()),
        };
        i += 1;
    }
    if i == s {
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
            // Parameters first: the URI, the largest part, is then built
            // straight into the result.
            let params = parse_params(b, &t[gt + 1..]).map_err(|_| bad())?;
            Ok(NameAddr {
                display,
                uri: uri_of(b, &t[lt + 1..gt]).ok_or_else(bad)?,
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
                uri: uri_of(b, u).ok_or_else(bad)?,
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
            u("sips:a@b?x=1&y=2").unwrap().headers().unwrap().as_ref(),
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
    fn runs_agree_with_the_tables() {
        for t in [&TOKEN, &HOST, &USER_PLAIN, &PARAMCHAR_PLAIN, &WORD] {
            for len in 0..40 {
                let mut v: Vec<u8> = (0..len).map(|k| b"aZ09-.x"[k % 7]).collect();
                assert_eq!(run(&v, 0, t), len);
                for at in 0..len {
                    let keep = v[at];
                    for c in 0..=255u8 {
                        v[at] = c;
                        let want = if t[c as usize] { len } else { at };
                        assert_eq!(run(&v, 0, t), want, "{len} {at} {c}");
                        if at > 0 {
                            assert_eq!(run(&v, 1, t), want, "{len} {at} {c}");
                        }
                    }
                    v[at] = keep;
                }
            }
        }
    }

    #[test]
    fn line_end_search_finds_the_first_cr_or_lf() {
        for len in 0..40 {
            assert_eq!(find_cr_or_lf(&vec![b'a'; len]), None, "{len}");
            assert_eq!(find_cr_or_lf_swar(&vec![b'a'; len]), None, "{len}");
            for at in 0..len {
                for eol in [b'\r', b'\n'] {
                    let mut v = vec![b'a'; len];
                    // Octets one bit away from CR/LF must not match.
                    for (k, c) in v.iter_mut().enumerate() {
                        *c = [b'\x0c', b'\x0e', b'\x8d', b'\x0b', b'a'][k % 5];
                    }
                    v[at] = eol;
                    if at + 1 < len {
                        v[len - 1] = b'\r';
                    }
                    assert_eq!(find_cr_or_lf(&v), Some(at), "{len} {at}");
                    assert_eq!(find_cr_or_lf_swar(&v), Some(at), "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn header_names_fold_the_case_of_letters_only() {
        assert_eq!(HeaderName::from_bytes(b"VIA"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"content-LENGTH"),
            HeaderName::ContentLength
        );
        assert_eq!(
            HeaderName::from_bytes(b"Proxy-Authorization"),
            HeaderName::ProxyAuthorization
        );
        for other in [
            &b"Content\rLength"[..],
            b"Content_Length",
            b"Call\x0dID",
            b"Cseq ",
            b"Viaa",
        ] {
            assert!(
                matches!(HeaderName::from_bytes(other), HeaderName::Other(_)),
                "{other:?}"
            );
        }
        // A common extension name keeps its octets (from a static buffer).
        let m = req(
            "OPTIONS sip:b@example.com SIP/2.0",
            "Allow-Events: talk\r\nallow-events: hold\r\n",
            "",
        )
        .unwrap();
        let names: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
        assert!(
            names.ends_with(&["Allow-Events", "allow-events"]),
            "{names:?}"
        );
    }

    #[test]
    fn one_pass_uris_agree_with_the_full_grammar() {
        let mut simple = 0;
        for s in [
            "sip:a@b",
            "sip:101@pbx.example.com",
            "sip:192.0.2.1:5060;lr",
            "sip:h:65535",
            "sip:h:00080;transport=udp;x",
            "sip:a.b-c_d@h;p=1;q",
            "sip:a;b=c@h",
            "sip:h:65536",
            "sip:h:",
            "sip:h:123456",
            "sip:@h",
            "sip:a@",
            "sip:a@h;",
            "sip:a@h;;x",
            "sip:a@h;=1",
            "sip:a@h;x=",
            "sip:a@h;x=1=2",
            "sip:a@h?x=1",
            "sip:a:pw@h",
            "sip:%41@h",
            "sip:a@h;x=%41",
            "sip:a@[::1]:5060",
            "sip:a@h x",
            "sip:a@h@i",
            "SIP:a@h",
        ] {
            let b = Bytes::from_static(s.as_bytes());
            let full = parse_uri_general(&b, &b);
            if let Some(u) = simple_sip_uri(&b, &b) {
                simple += 1;
                assert_eq!(Ok(u), full, "{s}");
            }
            assert_eq!(parse_uri(&b), full, "{s}");
        }
        assert_eq!(simple, 7);
    }

    #[test]
    fn one_pass_vias_agree_with_the_full_grammar() {
        let mut simple = 0;
        for s in [
            "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport",
            "SIP/2.0/TCP host",
            "SIP/2.0/TLS h:5061;received=[::1]",
            "SIP/2.0/UDP h:65536",
            "SIP/2.0/UDP h:",
            "SIP/2.0/UDP h;",
            "SIP/2.0/UDP h ;branch=x",
            "SIP/2.0/UDP h: 5060",
            "SIP/2.0/UDP [::1]:5060",
            "SIP/2.0/UDP  h",
            "SIP/2.0/ h",
            "SIP/2.0/UDP h;branch=a]b",
            "sip/2.0/UDP h",
        ] {
            let b = Bytes::from_static(s.as_bytes());
            let full = parse_via_general(&b);
            if let Some(v) = simple_via(&b) {
                simple += 1;
                assert_eq!(v, full, "{s}");
            }
            assert_eq!(parse_via(&b), full, "{s}");
        }
        assert_eq!(simple, 5);
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
