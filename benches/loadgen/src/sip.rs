//! Just enough SIP for a user agent under load: a zero-copy view of one
//! message, digest answers, and SDP's connection address.

use md5::{Digest, Md5};
use std::net::{IpAddr, SocketAddr};

/// A parsed datagram: start line, headers as (name, value), body.
pub struct Msg<'a> {
    /// Status code for responses, None for requests.
    pub status: Option<u16>,
    /// Method of a request.
    pub method: &'a str,
    pub request_uri: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    pub body: &'a str,
}

fn canonical(name: &str) -> &str {
    match name {
        "v" | "V" => "via",
        "i" | "I" => "call-id",
        "f" | "F" => "from",
        "t" | "T" => "to",
        "m" | "M" => "contact",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        _ => name,
    }
}

impl<'a> Msg<'a> {
    /// None when the datagram is not a well-formed SIP message.
    pub fn parse(data: &'a [u8]) -> Option<Msg<'a>> {
        let text = std::str::from_utf8(data).ok()?;
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => (text, ""),
        };
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let mut parts = first.splitn(3, ' ');
        let a = parts.next()?;
        let b = parts.next()?;
        let (status, method, request_uri) = if a == "SIP/2.0" {
            (Some(b.parse().ok()?), "", "")
        } else {
            (None, a, b)
        };
        let mut headers = Vec::with_capacity(16);
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // Folded continuation: rare, and never in the headers we read.
                continue;
            }
            let (n, v) = line.split_once(':')?;
            headers.push((canonical(n.trim()), v.trim()));
        }
        Some(Msg {
            status,
            method,
            request_uri,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn headers(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn call_id(&self) -> Option<&'a str> {
        self.header("call-id")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &'a str)> {
        let v = self.header("cseq")?;
        let (n, m) = v.split_once(' ')?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// The `tag` parameter of To.
    pub fn to_tag(&self) -> Option<&'a str> {
        tag_of(self.header("to")?)
    }

    /// The URI inside the first Contact.
    pub fn contact_uri(&self) -> Option<&'a str> {
        angle_uri(self.header("contact")?)
    }

    /// Record-Route entries in order (comma-joined values split).
    pub fn record_routes(&self) -> Vec<&'a str> {
        self.headers("record-route")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

pub fn tag_of(v: &str) -> Option<&str> {
    let i = v.find(";tag=")?;
    let t = &v[i + 5..];
    Some(t.split([';', ',', ' ', '>']).next().unwrap_or(t))
}

/// `<sip:x@y>;params` -> `sip:x@y`; a bare URI stops at its parameters.
pub fn angle_uri(v: &str) -> Option<&str> {
    if let Some(s) = v.find('<') {
        let e = v[s..].find('>')? + s;
        Some(&v[s + 1..e])
    } else {
        Some(v.split(';').next().unwrap_or(v).trim())
    }
}

/// The user part of a SIP URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let at = rest.find('@')?;
    Some(&rest[..at])
}

fn hex_md5(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A Digest challenge (`WWW-Authenticate` / `Proxy-Authenticate`), MD5 only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub qop_auth: bool,
}

impl Challenge {
    pub fn parse(v: &str) -> Option<Challenge> {
        let rest = v.trim().strip_prefix("Digest")?.trim();
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut qop_auth = false;
        let mut algorithm_ok = true;
        for (k, val) in digest_params(rest) {
            match k.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "qop" => {
                    qop_auth = val
                        .split(',')
                        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                }
                "algorithm" => algorithm_ok = val.eq_ignore_ascii_case("MD5"),
                _ => {}
            }
        }
        if !algorithm_ok {
            return None;
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            opaque,
            qop_auth,
        })
    }

    /// The credentials answering this challenge (RFC 2617 with qop=auth when offered).
    pub fn answer(
        &self,
        method: &str,
        uri: &str,
        user: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let ha1 = hex_md5(&[user, &self.realm, password]);
        let ha2 = hex_md5(&[method, uri]);
        let mut out;
        if self.qop_auth {
            let nc = format!("{nc:08x}");
            let resp = hex_md5(&[&ha1, &self.nonce, &nc, cnonce, "auth", &ha2]);
            out = format!(
                "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
                self.realm, self.nonce
            );
        } else {
            let resp = hex_md5(&[&ha1, &self.nonce, &ha2]);
            out = format!(
                "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5",
                self.realm, self.nonce
            );
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

/// `k=v, k="v, w"` pairs; quoted values keep their commas.
fn digest_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_string();
        if i >= b.len() || b[i] == b',' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let v = s[vs..i.min(b.len())].to_string();
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s[vs..i].trim().to_string()
        };
        if !key.is_empty() {
            out.push((key, val));
        }
    }
    out
}

/// The RTP address an SDP body offers for audio (c= plus the audio m= port).
pub fn sdp_audio_addr(body: &str) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in body.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=IN ") {
            let addr = c.split_whitespace().nth(1)?;
            let addr = addr.split('/').next()?;
            if ip.is_none() || port.is_none() {
                ip = addr.parse().ok();
            }
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = m.split_whitespace().next()?.parse().ok();
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// A G.711 µ-law offer/answer for `addr`.
pub fn sdp_body(addr: SocketAddr, session: u64) -> String {
    let ip = addr.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=loadgen {session} {session} IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n",
        addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_response_and_challenge() {
        let raw = b"SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1\r\n\
i: abc@h\r\nCSeq: 1 INVITE\r\nTo: <sip:2001@h>;tag=xyz\r\n\
Proxy-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n,1\", qop=\"auth,auth-int\", algorithm=MD5, opaque=\"o\"\r\n\r\n";
        let m = Msg::parse(raw).unwrap();
        assert_eq!(m.status, Some(407));
        assert_eq!(m.call_id(), Some("abc@h"));
        assert_eq!(m.cseq(), Some((1, "INVITE")));
        assert_eq!(m.to_tag(), Some("xyz"));
        let c = Challenge::parse(m.header("proxy-authenticate").unwrap()).unwrap();
        assert_eq!(c.nonce, "n,1");
        assert!(c.qop_auth);
        assert_eq!(c.opaque.as_deref(), Some("o"));
    }

    #[test]
    fn digest_matches_rfc2617_example() {
        // RFC 2617 §3.5 (same computation, method GET).
        let c = Challenge {
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            opaque: None,
            qop_auth: true,
        };
        let a = c.answer(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("nc=00000001"));
    }

    #[test]
    fn sdp_address() {
        let body = sdp_body("127.0.0.9:40002".parse().unwrap(), 7);
        assert_eq!(
            sdp_audio_addr(&body),
            Some("127.0.0.9:40002".parse().unwrap())
        );
        assert_eq!(sdp_audio_addr("v=0\r\n"), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Msg::parse(b"\xff\xfe").is_none());
        assert!(Msg::parse(b"HELLO").is_none());
        assert!(Msg::parse(b"SIP/2.0 abc OK\r\n\r\n").is_none());
    }
}
