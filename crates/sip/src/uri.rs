//! SIP and SIPS URIs (RFC 3261 §19.1), kept as slices of the message buffer.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::header::Params;
use crate::parse::ParseError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other absolute URI scheme (answered 416 by a UAS).
    Other(Bytes),
}

/// A URI. For `sip:`/`sips:` the parts are split out; for other schemes only
/// `scheme` and `opaque` (everything after the colon) are set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// The user part, still %-escaped as received.
    pub user: Option<Bytes>,
    /// Host name or IP literal (IPv6 with its brackets).
    pub host: Bytes,
    pub port: Option<u16>,
    pub params: Params,
    /// Password, `?headers` and opaque part: rare, so boxed to keep `Uri`
    /// (moved by value through every parse) small. `None` when all are absent.
    pub extra: Option<Box<UriExtra>>,
}

/// The rarely present parts of a [`Uri`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UriExtra {
    pub password: Option<Bytes>,
    /// The `?headers` part, without the `?`.
    pub headers: Option<Bytes>,
    /// For non-SIP schemes: everything after `scheme:`.
    pub opaque: Option<Bytes>,
}

impl UriExtra {
    /// Boxed, or `None` when no part is present (so equal URIs compare equal).
    pub fn boxed(self) -> Option<Box<UriExtra>> {
        (self != UriExtra::default()).then(|| Box::new(self))
    }
}

impl Uri {
    /// A `sip:user@host:port` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(|u| Bytes::copy_from_slice(u.as_bytes())),
            host: Bytes::copy_from_slice(host.as_bytes()),
            port,
            params: Params::default(),
            extra: None,
        }
    }

    pub fn parse(b: &Bytes) -> Result<Uri, ParseError> {
        crate::parse::parse_uri(b)
    }

    pub fn password(&self) -> Option<&Bytes> {
        self.extra.as_ref().and_then(|e| e.password.as_ref())
    }

    /// The `?headers` part, without the `?`.
    pub fn headers(&self) -> Option<&Bytes> {
        self.extra.as_ref().and_then(|e| e.headers.as_ref())
    }

    /// For non-SIP schemes: everything after `scheme:`.
    pub fn opaque(&self) -> Option<&Bytes> {
        self.extra.as_ref().and_then(|e| e.opaque.as_ref())
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    pub fn user_str(&self) -> Option<&str> {
        self.user.as_ref().and_then(|u| std::str::from_utf8(u).ok())
    }

    pub fn host_str(&self) -> &str {
        std::str::from_utf8(&self.host).unwrap_or("")
    }

    /// The octets `write_to` produces, without writing them.
    pub fn wire_len(&self) -> usize {
        let scheme = match &self.scheme {
            Scheme::Sip => 4,
            Scheme::Sips => 5,
            Scheme::Tel => 4,
            Scheme::Other(s) => s.len() + 1,
        };
        if let Some(o) = self.opaque() {
            return scheme + o.len();
        }
        let user = self.user.as_ref().map_or(0, |u| {
            u.len() + 1 + self.password().map_or(0, |p| 1 + p.len())
        });
        let port = self.port.map_or(0, |p| 1 + digits(p as u32));
        let headers = self.headers().map_or(0, |h| 1 + h.len());
        scheme + user + self.host.len() + port + self.params.wire_len() + headers
    }

    pub fn write_to(&self, out: &mut BytesMut) {
        match &self.scheme {
            Scheme::Sip => out.put_slice(b"sip:"),
            Scheme::Sips => out.put_slice(b"sips:"),
            Scheme::Tel => out.put_slice(b"tel:"),
            Scheme::Other(s) => {
                out.put_slice(s);
                out.put_u8(b':');
            }
        }
        if let Some(o) = self.opaque() {
            out.put_slice(o);
            return;
        }
        if let Some(u) = &self.user {
            out.put_slice(u);
            if let Some(p) = self.password() {
                out.put_u8(b':');
                out.put_slice(p);
            }
            out.put_u8(b'@');
        }
        out.put_slice(&self.host);
        if let Some(p) = self.port {
            out.put_u8(b':');
            let mut b = crate::message::itoa_buf(p as u32);
            out.put_slice(b.as_bytes_mut());
        }
        self.params.write_to(out);
        if let Some(h) = self.headers() {
            out.put_u8(b'?');
            out.put_slice(h);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        self.write_to(&mut out);
        out.freeze()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// How many decimal digits `n` takes.
pub(crate) fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}
