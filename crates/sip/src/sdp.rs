//! SDP (RFC 8866, formerly RFC 4566): parse, inspect, edit, serialize.
//!
//! Zero-copy: every text field is a `Bytes` slice of the parsed buffer.
//! Lines the model does not type (`i=`, `u=`, `e=`, `p=`, `z=`, `k=`, unknown
//! letters) are kept in order and written back in their RFC 8866 §5 slot, so
//! a parse followed by [`Sdp::to_bytes`] reproduces a well-formed body line
//! for line (with CRLF line ends).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Why a body was refused as SDP. `line` counts from 1.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SdpError {
    #[error("missing {0}= line")]
    Missing(char),
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
}

fn err(line: usize, what: &'static str) -> SdpError {
    SdpError::Syntax { line, what }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub username: Bytes,
    pub session_id: Bytes,
    pub session_version: u64,
    pub nettype: Bytes,
    pub addrtype: Bytes,
    pub address: Bytes,
}

/// `c=<nettype> <addrtype> <connection-address>`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub nettype: Bytes,
    pub addrtype: Bytes,
    /// Verbatim: an IP literal, a host name, or a multicast address with `/ttl`.
    pub address: Bytes,
}

impl Connection {
    /// `IN IP4 <ip>` or `IN IP6 <ip>`.
    pub fn new(ip: IpAddr) -> Connection {
        Connection {
            nettype: Bytes::from_static(b"IN"),
            addrtype: Bytes::from_static(addrtype_of(ip)),
            address: Bytes::from(ip.to_string()),
        }
    }

    /// The address as an IP, when it is a literal of the declared family
    /// (a `/ttl` or `/count` suffix is ignored).
    pub fn ip(&self) -> Option<IpAddr> {
        let raw = self.address.split(|&c| c == b'/').next()?;
        let ip: IpAddr = std::str::from_utf8(raw).ok()?.parse().ok()?;
        let family_ok = match ip {
            IpAddr::V4(_) => self.addrtype.eq_ignore_ascii_case(b"IP4"),
            IpAddr::V6(_) => self.addrtype.eq_ignore_ascii_case(b"IP6"),
        };
        family_ok.then_some(ip)
    }
}

fn addrtype_of(ip: IpAddr) -> &'static [u8] {
    match ip {
        IpAddr::V4(_) => b"IP4",
        IpAddr::V6(_) => b"IP6",
    }
}

/// `b=<bwtype>:<bandwidth>` (kbps for `AS`/`CT`, bps for `TIAS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bandwidth {
    pub bwtype: Bytes,
    pub value: u64,
}

/// `t=<start-time> <stop-time>` with its `r=` lines (kept verbatim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Time {
    pub start: u64,
    pub stop: u64,
    pub repeats: Vec<Bytes>,
}

/// `a=<name>` or `a=<name>:<value>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: Bytes,
    pub value: Option<Bytes>,
}

impl Attribute {
    pub fn flag(name: &'static str) -> Attribute {
        Attribute {
            name: Bytes::from_static(name.as_bytes()),
            value: None,
        }
    }

    pub fn new(name: &'static str, value: impl Into<Bytes>) -> Attribute {
        Attribute {
            name: Bytes::from_static(name.as_bytes()),
            value: Some(value.into()),
        }
    }

    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// A line the model does not type, kept for faithful serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub kind: u8,
    pub value: Bytes,
}

/// Media direction (RFC 3264 §5.1, §8.4: hold is `sendonly` or `inactive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_name(n: &[u8]) -> Option<Direction> {
        Some(match n {
            b"sendrecv" => Direction::SendRecv,
            b"sendonly" => Direction::SendOnly,
            b"recvonly" => Direction::RecvOnly,
            b"inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The direction an answer gives to this offered direction (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| {
        a.value
            .is_none()
            .then(|| Direction::from_name(&a.name))
            .flatten()
    })
}

/// An `a=rtpmap` entry, or the RFC 3551 static assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: Bytes,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    pub connection: Option<Connection>,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `image`, ...
    pub media: Bytes,
    /// 0 means the stream is disabled or rejected.
    pub port: u16,
    pub num_ports: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: Bytes,
    /// Payload type numbers for RTP profiles, format names otherwise.
    pub formats: Vec<Bytes>,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    pub attributes: Vec<Attribute>,
    /// Untyped lines: `i=` goes before `c=`, the others before the `a=` lines.
    pub other: Vec<Line>,
}

impl MediaDescription {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.is(name))
    }

    pub fn attrs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes.iter().filter(move |a| a.is(name))
    }

    pub fn is_rtp(&self) -> bool {
        is_rtp_proto(&self.proto)
    }

    /// The payload types of an RTP stream, in preference order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| parse_num::<u8>(f).filter(|pt| *pt <= 127))
    }

    /// The rtpmap of a payload type: the `a=rtpmap` line, else the static
    /// RFC 3551 assignment for the well-known audio types.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.attrs("rtpmap")
            .find_map(|a| parse_rtpmap(a.value.as_ref()?).filter(|m| m.payload_type == pt))
            .or_else(|| static_rtpmap(pt))
    }

    /// The `a=fmtp` parameters of a payload type (e.g. `0-16` for telephone-event).
    pub fn fmtp(&self, pt: u8) -> Option<Bytes> {
        self.attrs("fmtp").find_map(|a| {
            let v = a.value.as_ref()?;
            let sp = v.iter().position(|&c| c == b' ')?;
            (parse_num::<u8>(&v[..sp]) == Some(pt)).then(|| v.slice(sp + 1..))
        })
    }

    /// The first payload type whose encoding is `name` (case-insensitive).
    pub fn payload_type_of(&self, name: &str) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt)
                .is_some_and(|m| m.encoding.eq_ignore_ascii_case(name.as_bytes()))
        })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attr("ptime")?
            .value
            .as_ref()
            .and_then(|v| parse_num(v))
    }

    /// The media-level direction attribute, if any (see [`Sdp::media_direction`]).
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Replaces any direction attribute by `d`.
    pub fn set_direction(&mut self, d: Direction) {
        let pos = self
            .attributes
            .iter()
            .position(|a| a.value.is_none() && Direction::from_name(&a.name).is_some());
        self.attributes
            .retain(|a| !(a.value.is_none() && Direction::from_name(&a.name).is_some()));
        let at = pos
            .unwrap_or(self.attributes.len())
            .min(self.attributes.len());
        self.attributes.insert(at, Attribute::flag(d.as_str()));
    }

    /// `a=rtcp` (RFC 3605), when present and well-formed.
    pub fn rtcp(&self) -> Option<Rtcp> {
        let v = self.attr("rtcp")?.value.clone()?;
        let mut f = fields(&v);
        let port = parse_num(&f.next()?)?;
        let connection = match (f.next(), f.next(), f.next()) {
            (Some(nettype), Some(addrtype), Some(address)) => Some(Connection {
                nettype,
                addrtype,
                address,
            }),
            _ => None,
        };
        Some(Rtcp { port, connection })
    }

    pub fn rtcp_mux(&self) -> bool {
        self.attr("rtcp-mux").is_some()
    }
}

fn is_rtp_proto(p: &[u8]) -> bool {
    p.windows(4).any(|w| w.eq_ignore_ascii_case(b"RTP/"))
}

fn static_rtpmap(pt: u8) -> Option<RtpMap> {
    let (name, rate): (&'static [u8], u32) = match pt {
        0 => (b"PCMU", 8000),
        3 => (b"GSM", 8000),
        4 => (b"G723", 8000),
        8 => (b"PCMA", 8000),
        9 => (b"G722", 8000),
        13 => (b"CN", 8000),
        18 => (b"G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        payload_type: pt,
        encoding: Bytes::from_static(name),
        clock_rate: rate,
        channels: Some(1),
    })
}

fn parse_rtpmap(v: &Bytes) -> Option<RtpMap> {
    let sp = v.iter().position(|&c| c == b' ')?;
    let payload_type = parse_num(&v[..sp])?;
    let rest = v.slice_ref(trim(&v[sp + 1..]));
    let mut parts = rest.split(|&c| c == b'/');
    let enc = parts.next()?;
    let clock_rate = parse_num(parts.next()?)?;
    let channels = match parts.next() {
        Some(c) => Some(parse_num(c)?),
        None => None,
    };
    Some(RtpMap {
        payload_type,
        encoding: rest.slice_ref(enc),
        clock_rate,
        channels,
    })
}

/// A session description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp {
    pub version: u32,
    pub origin: Origin,
    pub session_name: Bytes,
    pub connection: Option<Connection>,
    pub bandwidths: Vec<Bandwidth>,
    pub times: Vec<Time>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
    /// Untyped session lines: `i= u= e= p=` go before `c=`, the others
    /// (`z= k=`, unknown) after the `t=` lines.
    pub other: Vec<Line>,
}

impl Sdp {
    /// Parses a body. Accepts CRLF or LF line ends and ignores empty lines.
    pub fn parse(b: &Bytes) -> Result<Sdp, SdpError> {
        let mut version = None;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut bandwidths = Vec::new();
        let mut times: Vec<Time> = Vec::new();
        let mut attributes = Vec::new();
        let mut other = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();

        for (idx, raw) in b.split(|&c| c == b'\n').enumerate() {
            let n = idx + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.iter().all(|c| c.is_ascii_whitespace()) {
                continue;
            }
            if raw.len() < 2 || raw[1] != b'=' || !raw[0].is_ascii_lowercase() {
                return Err(err(n, "not a <type>=<value> line"));
            }
            let kind = raw[0];
            let value = b.slice_ref(&raw[2..]);
            if version.is_none() && kind != b'v' {
                return Err(err(n, "the first line must be v="));
            }
            if let Some(m) = media.last_mut() {
                match kind {
                    b'm' => {}
                    b'c' if m.connection.is_some() => return Err(err(n, "second c= line")),
                    b'c' => {
                        m.connection = Some(parse_connection(&value).ok_or(err(n, "bad c= line"))?);
                        continue;
                    }
                    b'b' => {
                        m.bandwidths
                            .push(parse_bandwidth(&value).ok_or(err(n, "bad b= line"))?);
                        continue;
                    }
                    b'a' => {
                        m.attributes
                            .push(parse_attribute(&value).ok_or(err(n, "bad a= line"))?);
                        continue;
                    }
                    b'v' | b'o' | b's' | b't' | b'r' | b'z' => {
                        return Err(err(n, "session-level line inside a media section"))
                    }
                    _ => {
                        m.other.push(Line { kind, value });
                        continue;
                    }
                }
            }
            match kind {
                b'v' => {
                    if version.is_some() {
                        return Err(err(n, "second v= line"));
                    }
                    if &value[..] != b"0" {
                        return Err(err(n, "unsupported SDP version"));
                    }
                    version = Some(0);
                }
                b'o' => {
                    if origin.is_some() {
                        return Err(err(n, "second o= line"));
                    }
                    origin = Some(parse_origin(&value).ok_or(err(n, "bad o= line"))?);
                }
                b's' => {
                    if session_name.is_some() {
                        return Err(err(n, "second s= line"));
                    }
                    session_name = Some(value);
                }
                b'c' => {
                    if connection.is_some() {
                        return Err(err(n, "second c= line"));
                    }
                    connection = Some(parse_connection(&value).ok_or(err(n, "bad c= line"))?);
                }
                b'b' => bandwidths.push(parse_bandwidth(&value).ok_or(err(n, "bad b= line"))?),
                b't' => times.push(parse_time(&value).ok_or(err(n, "bad t= line"))?),
                b'r' => times
                    .last_mut()
                    .ok_or(err(n, "r= line without t="))?
                    .repeats
                    .push(value),
                b'a' => attributes.push(parse_attribute(&value).ok_or(err(n, "bad a= line"))?),
                b'm' => media.push(parse_media(&value).map_err(|what| err(n, what))?),
                _ => other.push(Line { kind, value }),
            }
        }

        Ok(Sdp {
            version: version.ok_or(SdpError::Missing('v'))?,
            origin: origin.ok_or(SdpError::Missing('o'))?,
            session_name: session_name.ok_or(SdpError::Missing('s'))?,
            connection,
            bandwidths,
            times,
            attributes,
            media,
            other,
        })
    }

    /// Serializes with CRLF line ends.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256 + 160 * self.media.len());
        let _ = write!(out, "v={}\r\n", self.version);
        let o = &self.origin;
        line(
            &mut out,
            b'o',
            &[
                &o.username,
                &o.session_id,
                o.session_version.to_string().as_bytes(),
                &o.nettype,
                &o.addrtype,
                &o.address,
            ],
        );
        line(&mut out, b's', &[&self.session_name]);
        let head = |l: &&Line| matches!(l.kind, b'i' | b'u' | b'e' | b'p');
        for l in self.other.iter().filter(head) {
            line(&mut out, l.kind, &[&l.value]);
        }
        if let Some(c) = &self.connection {
            write_connection(&mut out, c);
        }
        for b in &self.bandwidths {
            write_bandwidth(&mut out, b);
        }
        for t in &self.times {
            let _ = write!(out, "t={} {}\r\n", t.start, t.stop);
            for r in &t.repeats {
                line(&mut out, b'r', &[r]);
            }
        }
        for l in self.other.iter().filter(|l| !head(l)) {
            line(&mut out, l.kind, &[&l.value]);
        }
        for a in &self.attributes {
            write_attribute(&mut out, a);
        }
        for m in &self.media {
            out.put_slice(b"m=");
            out.put_slice(&m.media);
            let _ = write!(out, " {}", m.port);
            if let Some(n) = m.num_ports {
                let _ = write!(out, "/{n}");
            }
            out.put_u8(b' ');
            out.put_slice(&m.proto);
            for f in &m.formats {
                out.put_u8(b' ');
                out.put_slice(f);
            }
            out.put_slice(b"\r\n");
            for l in m.other.iter().filter(|l| l.kind == b'i') {
                line(&mut out, l.kind, &[&l.value]);
            }
            if let Some(c) = &m.connection {
                write_connection(&mut out, c);
            }
            for b in &m.bandwidths {
                write_bandwidth(&mut out, b);
            }
            for l in m.other.iter().filter(|l| l.kind != b'i') {
                line(&mut out, l.kind, &[&l.value]);
            }
            for a in &m.attributes {
                write_attribute(&mut out, a);
            }
        }
        out.freeze()
    }

    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.is(name))
    }

    /// The session-level direction (`sendrecv` when none is given).
    pub fn direction(&self) -> Direction {
        direction_of(&self.attributes).unwrap_or(Direction::SendRecv)
    }

    /// The direction in force for a media section: its own attribute, else
    /// the session-level one, else `sendrecv`.
    pub fn media_direction(&self, m: &MediaDescription) -> Direction {
        m.direction().unwrap_or_else(|| self.direction())
    }

    /// The connection data for a media section: its own `c=`, else the session's.
    pub fn connection_for<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    /// Where the owner of this SDP wants RTP for a media section; `None` for
    /// a disabled stream (port 0) or a connection address that is not an IP.
    pub fn rtp_addr(&self, m: &MediaDescription) -> Option<SocketAddr> {
        if m.port == 0 {
            return None;
        }
        Some(SocketAddr::new(self.connection_for(m)?.ip()?, m.port))
    }

    /// Where RTCP goes when `a=rtcp` says so; `None` means the default (RTP port + 1).
    pub fn rtcp_addr(&self, m: &MediaDescription) -> Option<SocketAddr> {
        let r = m.rtcp()?;
        let ip = match &r.connection {
            Some(c) => c.ip()?,
            None => self.connection_for(m)?.ip()?,
        };
        Some(SocketAddr::new(ip, r.port))
    }
}

fn line(out: &mut BytesMut, kind: u8, parts: &[&[u8]]) {
    out.put_u8(kind);
    out.put_u8(b'=');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(p);
    }
    out.put_slice(b"\r\n");
}

fn write_connection(out: &mut BytesMut, c: &Connection) {
    line(out, b'c', &[&c.nettype, &c.addrtype, &c.address]);
}

fn write_bandwidth(out: &mut BytesMut, b: &Bandwidth) {
    out.put_slice(b"b=");
    out.put_slice(&b.bwtype);
    let _ = write!(out, ":{}\r\n", b.value);
}

fn write_attribute(out: &mut BytesMut, a: &Attribute) {
    out.put_slice(b"a=");
    out.put_slice(&a.name);
    if let Some(v) = &a.value {
        out.put_u8(b':');
        out.put_slice(v);
    }
    out.put_slice(b"\r\n");
}

/// Space-separated fields (runs of spaces tolerated), as slices of `v`.
fn fields(v: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    v.split(|&c| c == b' ' || c == b'\t')
        .filter(|f| !f.is_empty())
        .map(|f| v.slice_ref(f))
}

fn trim(b: &[u8]) -> &[u8] {
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

fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn parse_origin(v: &Bytes) -> Option<Origin> {
    let f: Vec<Bytes> = fields(v).collect();
    let [username, session_id, version, nettype, addrtype, address] =
        <[Bytes; 6]>::try_from(f).ok()?;
    Some(Origin {
        username,
        session_id,
        session_version: parse_num(&version)?,
        nettype,
        addrtype,
        address,
    })
}

fn parse_connection(v: &Bytes) -> Option<Connection> {
    let mut f = fields(v);
    let c = Connection {
        nettype: f.next()?,
        addrtype: f.next()?,
        address: f.next()?,
    };
    f.next().is_none().then_some(c)
}

fn parse_bandwidth(v: &Bytes) -> Option<Bandwidth> {
    let colon = v.iter().position(|&c| c == b':')?;
    let bwtype = v.slice_ref(trim(&v[..colon]));
    if bwtype.is_empty() {
        return None;
    }
    Some(Bandwidth {
        bwtype,
        value: parse_num(trim(&v[colon + 1..]))?,
    })
}

fn parse_time(v: &Bytes) -> Option<Time> {
    let mut f = fields(v);
    let t = Time {
        start: parse_num(&f.next()?)?,
        stop: parse_num(&f.next()?)?,
        repeats: Vec::new(),
    };
    f.next().is_none().then_some(t)
}

fn parse_attribute(v: &Bytes) -> Option<Attribute> {
    let (name, value) = match v.iter().position(|&c| c == b':') {
        Some(i) => (v.slice(..i), Some(v.slice(i + 1..))),
        None => (v.clone(), None),
    };
    if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    Some(Attribute { name, value })
}

fn parse_media(v: &Bytes) -> Result<MediaDescription, &'static str> {
    let mut f = fields(v);
    let media = f.next().ok_or("m= line without media type")?;
    let port_field = f.next().ok_or("m= line without port")?;
    let proto = f.next().ok_or("m= line without protocol")?;
    let (port, num_ports) = match port_field.iter().position(|&c| c == b'/') {
        Some(i) => (
            parse_num(&port_field[..i]).ok_or("bad m= port")?,
            Some(parse_num(&port_field[i + 1..]).ok_or("bad m= port count")?),
        ),
        None => (parse_num(&port_field).ok_or("bad m= port")?, None),
    };
    let formats: Vec<Bytes> = f.collect();
    if is_rtp_proto(&proto)
        && !formats
            .iter()
            .all(|f| parse_num::<u8>(f).is_some_and(|pt| pt <= 127))
    {
        return Err("bad RTP payload type in m= line");
    }
    Ok(MediaDescription {
        media,
        port,
        num_ports,
        proto,
        formats,
        connection: None,
        bandwidths: Vec::new(),
        attributes: Vec::new(),
        other: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

    fn parse(s: &str) -> Sdp {
        Sdp::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn round_trip(s: &str) {
        let sdp = parse(s);
        assert_eq!(sdp.to_bytes(), Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(Sdp::parse(&sdp.to_bytes()).unwrap(), sdp);
    }

    #[test]
    fn typical_offer() {
        let sdp = parse(OFFER);
        assert_eq!(sdp.origin.session_version, 2890844526);
        assert_eq!(sdp.origin.address, "192.0.2.10");
        assert_eq!(sdp.session_name, "-");
        assert_eq!(
            sdp.times,
            vec![Time {
                start: 0,
                stop: 0,
                repeats: vec![]
            }]
        );
        assert_eq!(sdp.media.len(), 1);
        let m = &sdp.media[0];
        assert_eq!(m.media, "audio");
        assert_eq!(m.port, 49170);
        assert_eq!(m.proto, "RTP/AVP");
        assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 8, 18, 101]);
        let te = m.rtpmap(101).unwrap();
        assert_eq!(
            (te.encoding.as_ref(), te.clock_rate, te.channels),
            (&b"telephone-event"[..], 8000, None)
        );
        assert_eq!(m.rtpmap(18).unwrap().encoding, "G729");
        assert_eq!(m.fmtp(101).unwrap(), "0-16");
        assert_eq!(m.fmtp(18).unwrap(), "annexb=no");
        assert_eq!(m.fmtp(0), None);
        assert_eq!(m.payload_type_of("TELEPHONE-EVENT"), Some(101));
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(sdp.media_direction(m), Direction::SendRecv);
        assert_eq!(sdp.rtp_addr(m), Some("192.0.2.10:49170".parse().unwrap()));
        assert_eq!(sdp.rtcp_addr(m), None);
        round_trip(OFFER);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let sdp = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns= \r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 9\r\n");
        let m = &sdp.media[0];
        assert_eq!(m.rtpmap(8).unwrap().encoding, "PCMA");
        assert_eq!(m.rtpmap(9).unwrap().clock_rate, 8000);
        assert_eq!(m.rtpmap(96), None);
        assert_eq!(m.ptime(), None);
        assert_eq!(m.direction(), None);
    }

    #[test]
    fn lf_line_ends_and_blank_lines_are_accepted() {
        let lf = OFFER.replace("\r\n", "\n") + "\n\n";
        let sdp = parse(&lf);
        assert_eq!(sdp, parse(OFFER));
        assert_eq!(sdp.to_bytes(), Bytes::copy_from_slice(OFFER.as_bytes()));
    }

    #[test]
    fn hold_directions() {
        let sendonly = OFFER.replace("a=sendrecv", "a=sendonly");
        let sdp = parse(&sendonly);
        assert_eq!(sdp.media_direction(&sdp.media[0]), Direction::SendOnly);
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        round_trip(&sendonly);

        // Session-level inactive applies to a media section without its own attribute.
        let inactive = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n";
        let sdp = parse(inactive);
        assert_eq!(sdp.direction(), Direction::Inactive);
        assert_eq!(sdp.media_direction(&sdp.media[0]), Direction::Inactive);
        round_trip(inactive);

        let mut sdp = parse(OFFER);
        sdp.media[0].set_direction(Direction::Inactive);
        assert_eq!(sdp.media[0].direction(), Some(Direction::Inactive));
        assert_eq!(sdp.media[0].attrs("sendrecv").count(), 0);
        let text = String::from_utf8(sdp.to_bytes().to_vec()).unwrap();
        assert!(text.ends_with("a=ptime:20\r\na=inactive\r\n"), "{text}");
    }

    #[test]
    fn two_media_lines_ipv6_and_rtcp() {
        let s = "v=0\r\n\
o=bob 1 7 IN IP6 2001:db8::2\r\n\
s=call\r\n\
i=a call\r\n\
c=IN IP6 2001:db8::2\r\n\
b=AS:256\r\n\
t=0 0\r\n\
a=tool:x\r\n\
m=audio 5004 RTP/AVP 8 101\r\n\
b=TIAS:64000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp:5005\r\n\
m=audio 6000 RTP/SAVP 0\r\n\
c=IN IP4 198.51.100.7\r\n\
a=rtcp:6009 IN IP4 198.51.100.8\r\n\
a=recvonly\r\n\
m=video 0 RTP/AVP 31\r\n";
        let sdp = parse(s);
        assert_eq!(sdp.media.len(), 3);
        let (a, b, v) = (&sdp.media[0], &sdp.media[1], &sdp.media[2]);
        assert_eq!(sdp.rtp_addr(a), Some("[2001:db8::2]:5004".parse().unwrap()));
        assert_eq!(
            sdp.rtcp_addr(a),
            Some("[2001:db8::2]:5005".parse().unwrap())
        );
        assert_eq!(sdp.bandwidths[0].value, 256);
        assert_eq!(a.bandwidths[0].bwtype, "TIAS");
        assert_eq!(sdp.rtp_addr(b), Some("198.51.100.7:6000".parse().unwrap()));
        assert_eq!(sdp.rtcp_addr(b), Some("198.51.100.8:6009".parse().unwrap()));
        assert_eq!(sdp.media_direction(b), Direction::RecvOnly);
        assert_eq!(sdp.rtp_addr(v), None);
        assert_eq!(v.media, "video");
        assert_eq!(
            sdp.other,
            vec![Line {
                kind: b'i',
                value: Bytes::from_static(b"a call")
            }]
        );
        round_trip(s);
    }

    #[test]
    fn unknown_lines_keep_their_place() {
        let s = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nu=http://x\r\ne=a@b\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nr=7d 1h 0 25h\r\nz=0 0\r\nk=prompt\r\na=x\r\nm=audio 1 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 10.0.0.2\r\nk=clear:x\r\nq=unknown\r\na=y:1\r\n";
        let sdp = parse(s);
        assert_eq!(sdp.times[0].repeats.len(), 1);
        assert_eq!(sdp.media[0].other.len(), 3);
        round_trip(s);
    }

    #[test]
    fn multicast_and_hostname_connections_are_kept_verbatim() {
        let s = "v=0\r\no=- 1 1 IN IP4 host.example\r\ns=-\r\nc=IN IP4 224.2.1.1/127\r\nt=0 0\r\nm=audio 4000/2 RTP/AVP 0\r\nc=IN IP4 pbx.example\r\nm=image 4100 udptl t38\r\n";
        let sdp = parse(s);
        assert_eq!(
            sdp.connection.as_ref().unwrap().ip(),
            Some("224.2.1.1".parse().unwrap())
        );
        assert_eq!(sdp.media[0].num_ports, Some(2));
        assert_eq!(sdp.rtp_addr(&sdp.media[0]), None);
        assert_eq!(sdp.media[1].formats, vec![Bytes::from_static(b"t38")]);
        assert!(!sdp.media[1].is_rtp());
        round_trip(s);
    }

    #[test]
    fn address_family_mismatch_is_not_an_ip() {
        let c = Connection {
            nettype: Bytes::from_static(b"IN"),
            addrtype: Bytes::from_static(b"IP4"),
            address: Bytes::from_static(b"::1"),
        };
        assert_eq!(c.ip(), None);
        assert_eq!(
            Connection::new("::1".parse().unwrap()).ip(),
            Some("::1".parse().unwrap())
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let base = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        let cases: &[(String, SdpError)] = &[
            (String::new(), SdpError::Missing('v')),
            ("\r\n\r\n".into(), SdpError::Missing('v')),
            (
                "o=- 1 1 IN IP4 x\r\n".into(),
                err(1, "the first line must be v="),
            ),
            ("v=1\r\n".into(), err(1, "unsupported SDP version")),
            ("v=0\r\ns=-\r\n".into(), SdpError::Missing('o')),
            ("v=0\r\no=- 1 1 IN IP4 x\r\n".into(), SdpError::Missing('s')),
            (
                "v=0\r\no=- 1 x IN IP4 x\r\ns=-\r\n".into(),
                err(2, "bad o= line"),
            ),
            (
                "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n".into(),
                err(2, "bad o= line"),
            ),
            (
                format!("{base}m=audio 70000 RTP/AVP 0\r\n"),
                err(6, "bad m= port"),
            ),
            (
                format!("{base}m=audio -1 RTP/AVP 0\r\n"),
                err(6, "bad m= port"),
            ),
            (
                format!("{base}m=audio abc RTP/AVP 0\r\n"),
                err(6, "bad m= port"),
            ),
            (
                format!("{base}m=audio 4000/x RTP/AVP 0\r\n"),
                err(6, "bad m= port count"),
            ),
            (
                format!("{base}m=audio 4000\r\n"),
                err(6, "m= line without protocol"),
            ),
            (
                format!("{base}m=audio 4000 RTP/AVP 0 128\r\n"),
                err(6, "bad RTP payload type in m= line"),
            ),
            (
                format!("{base}m=audio 4000 RTP/AVP PCMU\r\n"),
                err(6, "bad RTP payload type in m= line"),
            ),
            (format!("{base}b=AS\r\n"), err(6, "bad b= line")),
            (format!("{base}b=AS:lots\r\n"), err(6, "bad b= line")),
            (format!("{base}t=now 0\r\n"), err(6, "bad t= line")),
            (format!("{base}c=IN IP4\r\n"), err(6, "second c= line")),
            (
                "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4\r\n".into(),
                err(4, "bad c= line"),
            ),
            (format!("{base}a=\r\n"), err(6, "bad a= line")),
            (
                format!("{base}garbage\r\n"),
                err(6, "not a <type>=<value> line"),
            ),
            (
                format!("{base}A=x\r\n"),
                err(6, "not a <type>=<value> line"),
            ),
            (
                format!("{base}m=audio 1 RTP/AVP 0\r\nt=0 0\r\n"),
                err(7, "session-level line inside a media section"),
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nr=1 2 3\r\n".into(),
                err(4, "r= line without t="),
            ),
        ];
        for (input, want) in cases {
            let got = Sdp::parse(&Bytes::copy_from_slice(input.as_bytes()));
            assert_eq!(got.as_ref().err(), Some(want), "input {input:?}");
        }
        // Non-UTF-8 octets in free text are carried, not refused.
        let mut raw = base.as_bytes().to_vec();
        raw.extend_from_slice(b"i=\xff\xfe\r\n");
        assert!(Sdp::parse(&Bytes::from(raw)).is_ok());
    }

    #[test]
    fn mutated_inputs_never_panic_and_reparse_the_same() {
        // Deterministic xorshift: flip, drop and duplicate octets of an offer.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b" =:/\r\n0123456789amvcotsbIPN-";
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut v = OFFER.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % v.len();
                match next() % 3 {
                    0 => v[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        v.remove(i);
                    }
                    _ => v.insert(i, v[i]),
                }
            }
            if let Ok(sdp) = Sdp::parse(&Bytes::from(v)) {
                accepted += 1;
                assert_eq!(Sdp::parse(&sdp.to_bytes()).as_ref(), Ok(&sdp));
            }
        }
        assert!(accepted > 100, "only {accepted} mutants parsed");
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let full = OFFER.as_bytes();
        for i in 0..full.len() {
            let _ = Sdp::parse(&Bytes::copy_from_slice(&full[..i]));
        }
    }
}
