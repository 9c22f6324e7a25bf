//! The daemon's admin API as the tests see it: `GET /status` over plain
//! HTTP/1.0 and a small JSON reader, so the harness keeps its promise of no
//! dependencies. Fields the tests rely on are required: a status document
//! whose shape changed fails the test with the document in the message.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed JSON value (numbers kept as f64: counters stay far below 2^53).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Json::Number(n) if n >= 0.0 && n.fract() == 0.0 => Some(n as u64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected `{}`", b as char))
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.err("expected a value"),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.eat(b'{')?;
        let mut m = BTreeMap::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Object(m));
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.eat(b':')?;
            let v = self.value()?;
            m.insert(k, v);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Object(m));
                }
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.eat(b'[')?;
        let mut a = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Array(a));
        }
        loop {
            a.push(self.value()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(a));
                }
                _ => return self.err("expected `,` or `]`"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let esc = self.s.get(self.i + 1).copied();
                    self.i += 2;
                    let c = match esc {
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            self.i += 4;
                            // Surrogate pairs are not needed for status documents.
                            hex.and_then(char::from_u32).unwrap_or('\u{fffd}')
                        }
                        Some(c @ (b'"' | b'\\' | b'/')) => c as char,
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(&b) => {
                    out.push(b);
                    self.i += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Json::Number)
            .map_or_else(|| self.err("bad number"), Ok)
    }
}

/// The engine's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub calls_started: u64,
    pub calls_answered: u64,
    pub calls_failed: u64,
    pub active_calls: u64,
    pub admission_refusals: u64,
}

/// One site's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteStatus {
    pub name: String,
    pub up_capacity_kbps: Option<u64>,
    pub down_capacity_kbps: Option<u64>,
    pub max_calls: Option<u64>,
    pub up_reserved_kbps: u64,
    pub down_reserved_kbps: u64,
    pub calls: u64,
    pub refusals: u64,
}

/// One SIP trunk: its registration at the provider and its calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkStatus {
    pub name: String,
    /// `registered (N s left)`, `registering`, `failed ...`, or `not
    /// registering (IP authentication)`.
    pub registration: String,
    pub calls: u64,
}

/// What `GET /status` answered.
#[derive(Clone, Debug)]
pub struct Status {
    pub stats: Stats,
    pub registrations: u64,
    pub media_sessions: u64,
    pub media_ports_in_use: u64,
    pub sites: Vec<SiteStatus>,
    /// Empty when the document has no `trunks` (a daemon without any).
    pub trunks: Vec<TrunkStatus>,
    /// The document as received, for assertion messages.
    pub raw: String,
}

impl Status {
    pub fn parse(raw: &str) -> Result<Status, String> {
        let doc = Json::parse(raw).map_err(|e| format!("status is not JSON ({e}): {raw}"))?;
        let field = |v: &Json, k: &str| -> Result<u64, String> {
            v.get(k)
                .and_then(Json::as_u64)
                .ok_or_else(|| format!("status: `{k}` missing or not a count in {raw}"))
        };
        let optional = |v: &Json, k: &str| -> Result<Option<u64>, String> {
            match v.get(k) {
                Some(Json::Null) => Ok(None),
                Some(n) => n
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("status: `{k}` is not a count or null in {raw}")),
                None => Err(format!("status: `{k}` missing in {raw}")),
            }
        };
        let stats = doc
            .get("stats")
            .ok_or_else(|| format!("status: `stats` missing in {raw}"))?;
        let sites = doc
            .get("sites")
            .and_then(Json::as_array)
            .ok_or_else(|| format!("status: `sites` missing in {raw}"))?
            .iter()
            .map(|s| {
                Ok(SiteStatus {
                    name: s
                        .get("name")
                        .and_then(Json::as_str)
                        .ok_or_else(|| format!("status: a site without `name` in {raw}"))?
                        .to_string(),
                    up_capacity_kbps: optional(s, "up_capacity_kbps")?,
                    down_capacity_kbps: optional(s, "down_capacity_kbps")?,
                    max_calls: optional(s, "max_calls")?,
                    up_reserved_kbps: field(s, "up_reserved_kbps")?,
                    down_reserved_kbps: field(s, "down_reserved_kbps")?,
                    calls: field(s, "calls")?,
                    refusals: field(s, "refusals")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let trunks = match doc.get("trunks") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .ok_or_else(|| format!("status: `trunks` is not a list in {raw}"))?
                .iter()
                .map(|t| {
                    let text = |k: &str| {
                        t.get(k)
                            .and_then(Json::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| format!("status: a trunk without `{k}` in {raw}"))
                    };
                    Ok(TrunkStatus {
                        name: text("name")?,
                        registration: text("registration")?,
                        calls: field(t, "calls")?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        };
        Ok(Status {
            stats: Stats {
                calls_started: field(stats, "calls_started")?,
                calls_answered: field(stats, "calls_answered")?,
                calls_failed: field(stats, "calls_failed")?,
                active_calls: field(stats, "active_calls")?,
                admission_refusals: field(stats, "admission_refusals")?,
            },
            registrations: field(&doc, "registrations")?,
            media_sessions: field(&doc, "media_sessions")?,
            media_ports_in_use: field(&doc, "media_ports_in_use")?,
            sites,
            trunks,
            raw: raw.to_string(),
        })
    }

    pub fn site(&self, name: &str) -> Option<&SiteStatus> {
        self.sites.iter().find(|s| s.name == name)
    }

    pub fn trunk(&self, name: &str) -> Option<&TrunkStatus> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// Sum of the reservations of every site, both directions, and calls.
    pub fn total_reserved(&self) -> (u64, u64, u64) {
        self.sites.iter().fold((0, 0, 0), |(u, d, c), s| {
            (
                u + s.up_reserved_kbps,
                d + s.down_reserved_kbps,
                c + s.calls,
            )
        })
    }
}

/// `GET http://addr/status`, parsed.
pub fn fetch(addr: SocketAddr) -> Result<Status, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("admin API {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("admin API {addr}: {e}"))?;
    write!(
        stream,
        "GET /status HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("admin API {addr}: sending: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("admin API {addr}: reading: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("admin API {addr}: answer without a body: {text}"))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("admin API {addr} answered {status_line:?}"));
    }
    Status::parse(body.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_status_document() {
        let raw = r#"{"stats":{"calls_started":3,"calls_answered":2,"calls_failed":1,
            "active_calls":1,"bad_requests":0,"admission_refusals":1},
            "registrations":2,"media_sessions":1,"media_ports_in_use":4,
            "listen":["udp:127.0.0.1:5060"],
            "sites":[{"name":"office","up_capacity_kbps":300,"down_capacity_kbps":300,
              "max_calls":null,"up_reserved_kbps":200,"down_reserved_kbps":200,
              "calls":2,"refusals":0},
             {"name":"d\u00e9fault \"x\"","up_capacity_kbps":null,"down_capacity_kbps":null,
              "max_calls":5,"up_reserved_kbps":0,"down_reserved_kbps":0,"calls":0,"refusals":1e0}]}"#;
        let s = Status::parse(raw).unwrap();
        assert_eq!(s.stats.admission_refusals, 1);
        assert_eq!(s.stats.active_calls, 1);
        let office = s.site("office").unwrap();
        assert_eq!(office.up_capacity_kbps, Some(300));
        assert_eq!(office.max_calls, None);
        assert_eq!(office.up_reserved_kbps, 200);
        let other = s.site("d\u{e9}fault \"x\"").unwrap();
        assert_eq!(other.max_calls, Some(5));
        assert_eq!(other.refusals, 1);
        assert_eq!(s.total_reserved(), (200, 200, 2));
        assert!(s.trunks.is_empty());
    }

    #[test]
    fn parses_trunks() {
        let raw = r#"{"stats":{"calls_started":0,"calls_answered":0,"calls_failed":0,
            "active_calls":0,"admission_refusals":0},"registrations":0,
            "media_sessions":0,"media_ports_in_use":0,"sites":[],
            "trunks":[{"name":"provider","registration":"registered (54 s left)","calls":1}]}"#;
        let s = Status::parse(raw).unwrap();
        let t = s.trunk("provider").unwrap();
        assert_eq!(t.registration, "registered (54 s left)");
        assert_eq!(t.calls, 1);
        assert!(s.trunk("backup").is_none());
        let bad = raw.replace(r#""calls":1"#, r#""calls":"x""#);
        assert!(Status::parse(&bad).is_err());
    }

    #[test]
    fn refuses_documents_of_another_shape() {
        assert!(Status::parse("{}").is_err());
        assert!(Status::parse("[1,2").is_err());
        assert!(Status::parse(r#"{"stats":{}}"#).is_err());
        assert!(Json::parse(r#"{"a":[1,true,null,"x"]} x"#).is_err());
    }
}
