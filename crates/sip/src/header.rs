//! Typed views of the headers the transaction and dialog layers need.
//! Each parses from a header value (`Bytes`) without copying.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::message::Method;
use crate::parse::ParseError;
use crate::uri::Uri;

/// `;name=value` parameters, in order. A flag parameter has no value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(Bytes, Option<Bytes>)>);

impl Params {
    /// The value of a parameter (names are case-insensitive). `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&Bytes>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_ref())
    }

    pub fn value(&self, name: &str) -> Option<&Bytes> {
        self.get(name).flatten()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let v = value.map(|v| Bytes::copy_from_slice(v.as_bytes()));
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        {
            p.1 = v;
        } else {
            self.0.push((Bytes::copy_from_slice(name.as_bytes()), v));
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// The octets `write_to` produces.
    pub fn wire_len(&self) -> usize {
        self.0
            .iter()
            .map(|(n, v)| 1 + n.len() + v.as_ref().map_or(0, |v| 1 + v.len()))
            .sum()
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        for (n, v) in &self.0 {
            out.put_u8(b';');
            out.put_slice(n);
            if let Some(v) = v {
                out.put_u8(b'=');
                out.put_slice(v);
            }
        }
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The transport token as received (`UDP`, `TCP`, `TLS`, ...), upper-cased on write.
    pub transport: Bytes,
    pub host: Bytes,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(b: &Bytes) -> Result<Via, ParseError> {
        crate::parse::parse_via(b)
    }

    pub fn branch(&self) -> Option<&Bytes> {
        self.params.value("branch")
    }

    /// RFC 3261 branches start with the magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(b"z9hG4bK"))
    }

    pub fn host_str(&self) -> &str {
        std::str::from_utf8(&self.host).unwrap_or("")
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        out.put_slice(b"SIP/2.0/");
        out.put_slice(&self.transport);
        out.put_u8(b' ');
        out.put_slice(&self.host);
        if let Some(p) = self.port {
            out.put_u8(b':');
            let mut b = crate::message::itoa_buf(p as u32);
            out.put_slice(b.as_bytes_mut());
        }
        self.params.write_to(out);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(96);
        self.write_to(&mut out);
        out.freeze()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// `CSeq: 314159 INVITE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(b: &Bytes) -> Result<CSeq, ParseError> {
        crate::parse::parse_cseq(b)
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact,
/// Route, Record-Route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept when it was quoted).
    pub display: Option<Bytes>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    pub fn parse(b: &Bytes) -> Result<NameAddr, ParseError> {
        crate::parse::parse_name_addr(b)
    }

    pub fn tag(&self) -> Option<&Bytes> {
        self.params.value("tag")
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        if let Some(d) = &self.display {
            out.put_slice(d);
            out.put_u8(b' ');
        }
        out.put_u8(b'<');
        self.uri.write_to(out);
        out.put_u8(b'>');
        self.params.write_to(out);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(96);
        self.write_to(&mut out);
        out.freeze()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
