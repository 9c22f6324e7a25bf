//! The SIP message model: a start line, an ordered list of headers whose
//! values are `Bytes` slices of the received buffer, and a body.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::header::{CSeq, NameAddr, Via};
use crate::parse::ParseError;
use crate::uri::Uri;

/// A SIP method. Extension methods are kept verbatim (RFC 3261 §25.1 `extension-method`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(Bytes),
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1).
    pub fn from_bytes(b: &[u8]) -> Method {
        Method::from_bytes_known(b).unwrap_or_else(|| Method::Other(Bytes::copy_from_slice(b)))
    }

    /// A standard method, `None` for an extension method.
    pub(crate) fn from_bytes_known(b: &[u8]) -> Option<Method> {
        Some(match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => return None,
        })
    }

    /// Like [`Method::from_bytes`] but keeps a zero-copy slice for extension methods.
    pub fn from_slice(b: &Bytes) -> Method {
        match Method::from_bytes(b) {
            Method::Other(_) => Method::Other(b.clone()),
            m => m,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            // Extension methods are tokens, hence ASCII.
            Method::Other(b) => std::str::from_utf8(b).unwrap_or("UNKNOWN"),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names, with the compact forms of RFC 3261 §7.3.3 folded into the long ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    AcceptEncoding,
    AcceptLanguage,
    Allow,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    MaxForwards,
    MinExpires,
    Privacy,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    Require,
    Route,
    Server,
    Supported,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    /// Any other header, with the name as received (compared case-insensitively).
    Other(Bytes),
}

impl HeaderName {
    /// Header names are case-insensitive (RFC 3261 §7.3.1); compact forms map to long ones.
    pub fn from_bytes(b: &[u8]) -> HeaderName {
        HeaderName::lookup(b).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(b)))
    }

    /// The known or compact header of this name, `None` for an extension
    /// header (the parser then keeps a slice of the input as the name).
    pub(crate) fn lookup(b: &[u8]) -> Option<HeaderName> {
        if b.len() == 1 {
            return Some(match b[0].to_ascii_lowercase() {
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'e' => HeaderName::ContentEncoding,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'f' => HeaderName::From,
                b'k' => HeaderName::Supported,
                b't' => HeaderName::To,
                b'v' => HeaderName::Via,
                b'o' => HeaderName::Event,
                b's' => HeaderName::Other(Bytes::from_static(b"Subject")),
                b'r' => HeaderName::Other(Bytes::from_static(b"Refer-To")),
                b'b' => HeaderName::Other(Bytes::from_static(b"Referred-By")),
                b'x' => HeaderName::Other(Bytes::from_static(b"Session-Expires")),
                b'u' => HeaderName::Other(Bytes::from_static(b"Allow-Events")),
                b'a' => HeaderName::Other(Bytes::from_static(b"Accept-Contact")),
                b'j' => HeaderName::Other(Bytes::from_static(b"Reject-Contact")),
                b'd' => HeaderName::Other(Bytes::from_static(b"Request-Disposition")),
                b'y' => HeaderName::Other(Bytes::from_static(b"Identity")),
                b'n' => HeaderName::Other(Bytes::from_static(b"Identity-Info")),
                _ => return None,
            });
        }
        // Dispatch on length and first letter so that a lookup costs one
        // or two comparisons (and builds no table at run time).
        let first = b.first()?.to_ascii_lowercase();
        let is = |name: &str| eq_fold(b, name.as_bytes());
        Some(match (b.len(), first) {
            (2, b't') if is("to") => HeaderName::To,
            (3, b'v') if is("via") => HeaderName::Via,
            (4, b'f') if is("from") => HeaderName::From,
            (4, b'c') if is("cseq") => HeaderName::CSeq,
            (4, b'd') if is("date") => HeaderName::Date,
            (5, b'r') if is("route") => HeaderName::Route,
            (5, b'a') if is("allow") => HeaderName::Allow,
            (5, b'e') if is("event") => HeaderName::Event,
            (6, b'a') if is("accept") => HeaderName::Accept,
            (6, b's') if is("server") => HeaderName::Server,
            (7, b'c') if is("call-id") => HeaderName::CallId,
            (7, b'c') if is("contact") => HeaderName::Contact,
            (7, b'e') if is("expires") => HeaderName::Expires,
            (7, b'r') if is("require") => HeaderName::Require,
            (7, b'w') if is("warning") => HeaderName::Warning,
            (7, b'p') if is("privacy") => HeaderName::Privacy,
            (9, b's') if is("supported") => HeaderName::Supported,
            (10, b'u') if is("user-agent") => HeaderName::UserAgent,
            (11, b'm') if is("min-expires") => HeaderName::MinExpires,
            (11, b'u') if is("unsupported") => HeaderName::Unsupported,
            (12, b'm') if is("max-forwards") => HeaderName::MaxForwards,
            (12, b'r') if is("record-route") => HeaderName::RecordRoute,
            (12, b'c') if is("content-type") => HeaderName::ContentType,
            (13, b'a') if is("authorization") => HeaderName::Authorization,
            (13, b'p') if is("proxy-require") => HeaderName::ProxyRequire,
            (14, b'c') if is("content-length") => HeaderName::ContentLength,
            (15, b'a') if is("accept-encoding") => HeaderName::AcceptEncoding,
            (15, b'a') if is("accept-language") => HeaderName::AcceptLanguage,
            (16, b'w') if is("www-authenticate") => HeaderName::WwwAuthenticate,
            (16, b'c') if is("content-encoding") => HeaderName::ContentEncoding,
            (18, b'p') if is("proxy-authenticate") => HeaderName::ProxyAuthenticate,
            (19, b'p') if is("proxy-authorization") => HeaderName::ProxyAuthorization,
            (19, b'c') if is("content-disposition") => HeaderName::ContentDisposition,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::Allow => "Allow",
            HeaderName::Authorization => "Authorization",
            HeaderName::CallId => "Call-ID",
            HeaderName::Contact => "Contact",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::Date => "Date",
            HeaderName::Event => "Event",
            HeaderName::Expires => "Expires",
            HeaderName::From => "From",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Privacy => "Privacy",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Require => "Require",
            HeaderName::Route => "Route",
            HeaderName::Server => "Server",
            HeaderName::Supported => "Supported",
            HeaderName::To => "To",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Via => "Via",
            HeaderName::Warning => "Warning",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Other(b) => std::str::from_utf8(b).unwrap_or("X-Invalid"),
        }
    }

    /// The name as written on the wire: [`HeaderName::as_str`] without a
    /// UTF-8 check for the (ASCII token) names the parser produces.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderName::Other(b) if b.is_ascii() => b,
            n => n.as_str().as_bytes(),
        }
    }

    /// True for an extension header with this name (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.as_str().eq_ignore_ascii_case(name)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `b` equals the lower-case `lower` ignoring ASCII case, compared a word at
/// a time. `lower` holds lower-case letters and other non-letters (`-`):
/// bit 0x40 marks its letters, whose 0x20 bit is then forced on `b`'s side.
#[inline(always)]
fn eq_fold(b: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if b.len() != n {
        return false;
    }
    if n >= 8 {
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let same = |at: usize| {
            let y = word(lower, at);
            word(b, at) | ((y & 0x4040_4040_4040_4040) >> 1) == y
        };
        let mut at = 0;
        while at + 8 < n {
            if !same(at) {
                return false;
            }
            at += 8;
        }
        same(n - 8)
    } else if n >= 4 {
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_le_bytes(w)
        };
        let same = |at: usize| {
            let y = word(lower, at);
            word(b, at) | ((y & 0x4040_4040) >> 1) == y
        };
        same(0) && same(n - 4)
    } else {
        b.iter()
            .zip(lower)
            .all(|(&x, &y)| x | ((y & 0x40) >> 1) == y)
    }
}

/// One header line. `value` has surrounding whitespace trimmed and folding
/// (RFC 3261 §7.3.1) replaced by a single space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Bytes,
}

// Requests are the common case; boxing the URI would cost an allocation
// per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request(Request),
    Response(Response),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub reason: Bytes,
}

/// A SIP request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Bytes,
}

impl Message {
    /// A new request with no headers.
    pub fn request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request(Request { method, uri }),
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// A new response with no headers; `reason` defaults to the RFC 3261 phrase.
    pub fn response(code: u16, reason: Option<&str>) -> Message {
        let reason = reason.unwrap_or_else(|| reason_phrase(code));
        Message {
            start: StartLine::Response(Response {
                code,
                reason: Bytes::copy_from_slice(reason.as_bytes()),
            }),
            headers: Vec::with_capacity(10),
            body: Bytes::new(),
        }
    }

    /// A response to `req` as RFC 3261 §8.2.6.2 builds it: Via (all), From,
    /// To, Call-ID and CSeq copied; a To tag added when `to_tag` is given and
    /// the To has none yet.
    pub fn response_to(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
        let mut resp = Message::response(code, None);
        for h in &req.headers {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    resp.headers.push(h.clone())
                }
                HeaderName::To => {
                    let value = match to_tag {
                        Some(tag) if !has_tag(&h.value) => {
                            let mut v = BytesMut::with_capacity(h.value.len() + tag.len() + 5);
                            v.extend_from_slice(&h.value);
                            v.extend_from_slice(b";tag=");
                            v.extend_from_slice(tag.as_bytes());
                            v.freeze()
                        }
                        _ => h.value.clone(),
                    };
                    resp.headers.push(Header {
                        name: HeaderName::To,
                        value,
                    });
                }
                _ => {}
            }
        }
        resp
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request(r) => Some(&r.method),
            StartLine::Response(_) => None,
        }
    }

    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request(r) => Some(&r.uri),
            StartLine::Response(_) => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response(r) => Some(r.code),
            StartLine::Request(_) => None,
        }
    }

    /// The first header with this name.
    #[inline]
    pub fn header(&self, name: &HeaderName) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| &h.name == name)
            .map(|h| &h.value)
    }

    /// Every header line with this name, in order (a line may hold a comma list).
    pub fn headers_named<'a>(
        &'a self,
        name: &'a HeaderName,
    ) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.headers
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    /// The first extension header of this name (case-insensitive).
    pub fn header_str(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name.is(name))
            .map(|h| &h.value)
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) -> &mut Self {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
        self
    }

    /// Inserts before the first header (a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) -> &mut Self {
        self.headers.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
        self
    }

    /// Replaces every header of this name with one line.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) -> &mut Self {
        let value = value.into();
        if let Some(i) = self.headers.iter().position(|h| h.name == name) {
            self.headers[i].value = value;
            let mut seen = false;
            self.headers.retain(|h| {
                if h.name != name {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        } else {
            self.headers.push(Header { name, value });
        }
        self
    }

    pub fn remove(&mut self, name: &HeaderName) -> &mut Self {
        self.headers.retain(|h| &h.name != name);
        self
    }

    /// Sets the body and its Content-Type (Content-Length is written on serialize).
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) -> &mut Self {
        self.body = body.into();
        if self.body.is_empty() {
            self.remove(&HeaderName::ContentType);
        } else {
            self.set(
                HeaderName::ContentType,
                Bytes::copy_from_slice(content_type.as_bytes()),
            );
        }
        self
    }

    // ----- typed access to the headers every layer needs -----

    /// The topmost Via (the first value of the first Via line).
    #[inline]
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let line = self
            .header(&HeaderName::Via)
            .ok_or(ParseError::Missing("Via"))?;
        if memchr::memchr(b',', line).is_none() {
            return Via::parse(line);
        }
        let first = crate::parse::split_comma(line)
            .next()
            .ok_or(ParseError::Missing("Via"))?;
        Via::parse(&first)
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for line in self.headers_named(&HeaderName::Via) {
            for v in crate::parse::split_comma(line) {
                out.push(Via::parse(&v)?);
            }
        }
        Ok(out)
    }

    #[inline]
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(
            self.header(&HeaderName::CSeq)
                .ok_or(ParseError::Missing("CSeq"))?,
        )
    }

    #[inline]
    pub fn call_id(&self) -> Result<&Bytes, ParseError> {
        self.header(&HeaderName::CallId)
            .ok_or(ParseError::Missing("Call-ID"))
    }

    #[inline]
    pub fn from_hdr(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.header(&HeaderName::From)
                .ok_or(ParseError::Missing("From"))?,
        )
    }

    #[inline]
    pub fn to_hdr(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.header(&HeaderName::To)
                .ok_or(ParseError::Missing("To"))?,
        )
    }

    /// Every Contact value. `Ok(None)` means the wildcard `*` (REGISTER removal).
    pub fn contacts(&self) -> Result<Option<Vec<NameAddr>>, ParseError> {
        let mut out = Vec::new();
        for line in self.headers_named(&HeaderName::Contact) {
            if line.as_ref() == b"*" {
                return Ok(None);
            }
            for v in crate::parse::split_comma(line) {
                out.push(NameAddr::parse(&v)?);
            }
        }
        Ok(Some(out))
    }

    /// A header holding one unsigned integer (Expires, Max-Forwards, Min-Expires...).
    pub fn u32_header(&self, name: &HeaderName) -> Result<Option<u32>, ParseError> {
        match self.header(name) {
            None => Ok(None),
            Some(v) => crate::parse::parse_u32(v)
                .map(Some)
                .ok_or(ParseError::Invalid(name.as_str().to_string())),
        }
    }

    // ----- serialize -----

    /// Writes the message as it goes on the wire. Content-Length is always
    /// written from the body (any stale header is skipped).
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.estimated_len());
        self.write_reserved(out);
    }

    /// [`Message::write_to`] once `out` has room.
    fn write_reserved(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request(r) => {
                out.put_slice(r.method.as_str().as_bytes());
                out.put_u8(b' ');
                r.uri.write_to(out);
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response(r) => {
                out.put_slice(b"SIP/2.0 ");
                let mut buf = itoa_buf(r.code as u32);
                out.put_slice(buf.as_bytes_mut());
                out.put_u8(b' ');
                out.put_slice(&r.reason);
                out.put_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            if h.name == HeaderName::ContentLength {
                continue;
            }
            out.put_slice(h.name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(&h.value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Length: ");
        let mut buf = itoa_buf(self.body.len() as u32);
        out.put_slice(buf.as_bytes_mut());
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&self.body);
    }

    /// The octets `to_bytes` produces, computed without serializing (to
    /// choose a transport by size, RFC 3261 §18.1.1).
    pub fn wire_len(&self) -> usize {
        let start = match &self.start {
            StartLine::Request(r) => r.method.as_str().len() + 1 + r.uri.wire_len() + 10,
            StartLine::Response(r) => 8 + 3 + 1 + r.reason.len() + 2,
        };
        let headers: usize = self
            .headers
            .iter()
            .filter(|h| h.name != HeaderName::ContentLength)
            .map(|h| h.name.as_bytes().len() + 2 + h.value.len() + 2)
            .sum();
        let content_length = 16 + crate::uri::digits(self.body.len() as u32) + 4;
        start + headers + content_length + self.body.len()
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.estimated_len());
        self.write_reserved(&mut out);
        out.freeze()
    }

    fn estimated_len(&self) -> usize {
        let mut n = 64 + self.body.len();
        for h in &self.headers {
            n += h.name.as_bytes().len() + h.value.len() + 4;
        }
        n
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

fn has_tag(to: &[u8]) -> bool {
    // The tag is a header parameter: after the closing '>' when there is one.
    let params = match to.iter().rposition(|&c| c == b'>') {
        Some(i) => &to[i..],
        None => to,
    };
    params.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag="))
}

/// A tiny stack buffer for writing integers without allocating.
pub(crate) struct ItoaBuf {
    buf: [u8; 10],
    start: usize,
}

impl ItoaBuf {
    pub(crate) fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

pub(crate) fn itoa_buf(mut n: u32) -> ItoaBuf {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    ItoaBuf { buf, start: i }
}

/// The reason phrases of RFC 3261 §21 (and a few from later RFCs).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
