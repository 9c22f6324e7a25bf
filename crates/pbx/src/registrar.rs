//! The registrar (RFC 3261 §10.3): authenticates REGISTER requests with
//! digest auth and keeps the location service. Sans-IO: one request in, the
//! response to send out.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip::{HeaderName, Message, Method, NameAddr, Peer};
use tracing::{debug, info};

use crate::auth::{AuthError, Credentials, DigestAuth};
use crate::location::{Binding, Location};

/// Registrar settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The SIP domain: the digest realm and the host part of every AOR.
    pub domain: String,
    /// Other hosts phones may put in To (e.g. the server's IP address).
    pub aliases: Vec<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Used when a contact gives no expiry, or a malformed one (RFC 3261 §20.10).
    pub default_expires: u32,
    /// Beyond this, the bindings closest to expiry are dropped.
    pub max_contacts_per_aor: usize,
    /// Lifetime of the nonces of the registrar's own [`DigestAuth`].
    pub nonce_ttl: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig::new("localhost")
    }
}

impl RegistrarConfig {
    pub fn new(domain: &str) -> Self {
        RegistrarConfig {
            domain: domain.to_string(),
            aliases: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_aor: 10,
            nonce_ttl: crate::auth::DEFAULT_NONCE_TTL,
        }
    }

    fn serves(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        host.eq_ignore_ascii_case(&self.domain)
            || self.aliases.iter().any(|a| host.eq_ignore_ascii_case(a))
    }
}

/// The registrar: digest auth in front of the location service.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    auth: Arc<DigestAuth>,
    location: Location,
    /// The Date header of the current second: every response carries one.
    date: (u64, Bytes),
}

/// A refusal, before any binding changed.
struct Refusal {
    code: u16,
    reason: Option<&'static str>,
}

fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal {
        code,
        reason: Some(reason),
    }
}

/// One contact of a REGISTER, with its expiry decided.
struct ContactUpdate {
    contact: NameAddr,
    expires: u32,
    instance: Option<String>,
    reg_id: Option<u32>,
    q: Option<u16>,
}

impl Registrar {
    /// With its own [`DigestAuth`] for the realm `config.domain`, keyed by `secret`.
    pub fn new(config: RegistrarConfig, secret: [u8; 32]) -> Self {
        let auth = DigestAuth::new(&config.domain, secret, config.nonce_ttl);
        Registrar::with_auth(config, Arc::new(auth))
    }

    /// `auth` may be shared with call control, so that a phone can reuse the
    /// nonce of its registration on its INVITEs. Its realm should be the domain.
    pub fn with_auth(config: RegistrarConfig, auth: Arc<DigestAuth>) -> Self {
        Registrar {
            config,
            auth,
            location: Location::new(),
            date: (u64::MAX, Bytes::new()),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    pub fn auth(&self) -> &Arc<DigestAuth> {
        &self.auth
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.location
    }

    /// Drops expired bindings; returns how many.
    pub fn remove_expired(&mut self, now: Instant) -> usize {
        self.location.remove_expired(now)
    }

    /// Handles a REGISTER from `from` and returns the response to send.
    /// `now` drives binding expiry, `wall` the nonces and the Date header;
    /// `password_of` gives the SIP password of an auth username (None when unknown).
    pub fn handle(
        &mut self,
        now: Instant,
        wall: SystemTime,
        req: &Message,
        from: Peer,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Message {
        let tag = crate::auth::hex(&rand::random::<[u8; 8]>());
        let mut resp = match self.process(now, wall, req, from, password_of) {
            Ok(aor) => {
                let mut resp = Message::response_to(req, 200, Some(&tag));
                // As `Location::lookup` orders them, without copying the bindings.
                let mut live: Vec<&Binding> = self
                    .location
                    .bindings(&aor)
                    .iter()
                    .filter(|b| !b.is_expired(now))
                    .collect();
                live.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
                for b in live {
                    resp.push(HeaderName::Contact, contact_value(b, now));
                }
                resp
            }
            Err(Reply::Refused(r)) => {
                let mut resp = Message::response_to(req, r.code, Some(&tag));
                if let Some(reason) = r.reason {
                    set_reason(&mut resp, reason);
                }
                if r.code == 423 {
                    resp.push(HeaderName::MinExpires, self.config.min_expires.to_string());
                }
                if r.code == 405 {
                    resp.push(HeaderName::Allow, Bytes::from_static(b"REGISTER"));
                }
                resp
            }
            Err(Reply::Challenge { stale }) => {
                let mut resp = Message::response_to(req, 401, Some(&tag));
                for c in self.auth.challenge(wall, stale) {
                    resp.push(HeaderName::WwwAuthenticate, c);
                }
                resp
            }
            Err(Reply::BadExtension(ext)) => {
                let mut resp = Message::response_to(req, 420, Some(&tag));
                resp.push(HeaderName::Unsupported, ext);
                resp
            }
        };
        let secs = crate::auth::unix_secs(wall);
        if self.date.0 != secs {
            self.date = (secs, Bytes::from(http_date(wall)));
        }
        resp.push(HeaderName::Date, self.date.1.clone());
        resp
    }

    /// Returns the AOR whose bindings go into the 200.
    fn process(
        &mut self,
        now: Instant,
        wall: SystemTime,
        req: &Message,
        from: Peer,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<String, Reply> {
        if req.method() != Some(&Method::Register) {
            return Err(refuse(405, "Method Not Allowed").into());
        }
        // §10.3 step 2: we support no extension a REGISTER could require.
        if let Some(ext) = req.header(&HeaderName::Require) {
            return Err(Reply::BadExtension(ext.clone()));
        }
        let user = self.authenticate(wall, req, from, password_of)?;

        let to = req.to_hdr().map_err(|_| refuse(400, "Bad To"))?;
        let to_user = to.uri.user.as_deref().map(percent_decode);
        if to_user.as_deref() != Some(user.as_str()) {
            info!(%user, source = %from, to = %to.uri, "REGISTER for another user refused");
            return Err(refuse(403, "Forbidden").into());
        }
        if !to.uri.is_sip() || !self.config.serves(to.uri.host_str()) {
            return Err(refuse(404, "Not Found").into());
        }
        let aor = user;
        let call_id = req
            .call_id()
            .map_err(|_| refuse(400, "Missing Call-ID"))?
            .clone();
        let cseq = req.cseq().map_err(|_| refuse(400, "Bad CSeq"))?.seq;
        let contact_lines = req.headers_named(&HeaderName::Contact).count();
        let contacts = req.contacts().map_err(|_| refuse(400, "Bad Contact"))?;
        let header_expires = req
            .header(&HeaderName::Expires)
            .map(|v| self.parse_expires(v));

        let mut current: Vec<Binding> = self
            .location
            .bindings(&aor)
            .iter()
            .filter(|b| !b.is_expired(now))
            .cloned()
            .collect();

        let Some(contacts) = contacts else {
            // `Contact: *` (§10.3 step 6): alone, and only with Expires: 0.
            if contact_lines != 1 || header_expires != Some(0) {
                return Err(refuse(400, "Invalid Wildcard Contact").into());
            }
            if current
                .iter()
                .any(|b| b.call_id == call_id && cseq <= b.cseq)
            {
                return Err(refuse(500, "Out Of Order CSeq").into());
            }
            self.location.set(&aor, Vec::new());
            info!(%aor, source = %from, "all bindings removed");
            return Ok(aor);
        };
        if contacts.is_empty() {
            // A query: the current bindings, unchanged.
            return Ok(aor);
        }

        let updates = self.contact_updates(contacts, header_expires)?;
        let user_agent = req.header(&HeaderName::UserAgent).map(|v| {
            let s = String::from_utf8_lossy(v);
            s.chars().take(256).collect::<String>()
        });
        // §10.3 step 7, applied to a copy so a refusal changes nothing.
        for u in updates {
            let pos = current
                .iter()
                .position(|b| b.matches(&u.contact.uri, u.instance.as_deref(), u.reg_id));
            if let Some(i) = pos {
                let b = &current[i];
                if b.call_id == call_id && cseq <= b.cseq {
                    return Err(refuse(500, "Out Of Order CSeq").into());
                }
                if u.expires == 0 {
                    current.remove(i);
                    continue;
                }
            } else if u.expires == 0 {
                continue;
            }
            let binding = Binding {
                aor: aor.clone(),
                contact: owned_uri(&u.contact.uri),
                source: from,
                call_id: Bytes::copy_from_slice(&call_id),
                cseq,
                expires_at: now + Duration::from_secs(u.expires.into()),
                q: u.q,
                instance: u.instance,
                reg_id: u.reg_id,
                user_agent: user_agent.clone(),
            };
            match pos {
                Some(i) => current[i] = binding,
                None => current.push(binding),
            }
        }
        if current.len() > self.config.max_contacts_per_aor {
            // Keep the freshest: a phone that changes its contact on every
            // NAT rebinding must not lock itself out.
            current.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
            current.truncate(self.config.max_contacts_per_aor);
            debug!(%aor, "too many contacts, oldest dropped");
        }
        debug!(%aor, source = %from, contacts = current.len(), "registered");
        self.location.set(&aor, current);
        Ok(aor)
    }

    /// Returns the authenticated username, or the reply refusing the request.
    fn authenticate(
        &self,
        wall: SystemTime,
        req: &Message,
        from: Peer,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<String, Reply> {
        let realm = self.auth.realm();
        let mut first_err = None;
        let mut creds = None;
        for value in req.headers_named(&HeaderName::Authorization) {
            match Credentials::parse(value) {
                Ok(c) if c.realm == realm => {
                    creds = Some(c);
                    break;
                }
                Ok(_) => {
                    first_err.get_or_insert(AuthError::WrongRealm);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let result = match creds {
            Some(c) => {
                let uri = req.request_uri().map(|u| u.to_bytes()).unwrap_or_default();
                self.auth
                    .verify_credentials(wall, "REGISTER", &uri, &c, password_of)
                    .map(|ok| ok.user)
                    .map_err(|e| (Some(c.username), e))
            }
            None => match first_err {
                None => {
                    debug!(source = %from, "REGISTER without credentials, challenged");
                    return Err(Reply::Challenge { stale: false });
                }
                Some(e) => Err((None, e)),
            },
        };
        let (user, err) = match result {
            Ok(user) => return Ok(user),
            Err(x) => x,
        };
        let user = user.as_deref().unwrap_or("");
        match err {
            AuthError::Stale => {
                debug!(%user, source = %from, "stale nonce, challenged again");
                Err(Reply::Challenge { stale: true })
            }
            AuthError::Malformed(_) | AuthError::UriMismatch => {
                info!(%user, source = %from, error = %err, "REGISTER authentication failed");
                Err(refuse(400, "Bad Authorization").into())
            }
            e => {
                info!(%user, source = %from, error = %e, "REGISTER authentication failed");
                Err(Reply::Challenge {
                    stale: e.is_stale(),
                })
            }
        }
    }

    /// Decides each contact's expiry (§10.3 step 7); 423 for too brief a one.
    fn contact_updates(
        &self,
        contacts: Vec<NameAddr>,
        header_expires: Option<u32>,
    ) -> Result<Vec<ContactUpdate>, Reply> {
        let mut out: Vec<ContactUpdate> = Vec::with_capacity(contacts.len());
        if contacts.len() > self.config.max_contacts_per_aor.max(1) * 2 {
            return Err(refuse(403, "Too Many Contacts").into());
        }
        for contact in contacts {
            if !contact.uri.is_sip() {
                return Err(refuse(400, "Unsupported Contact URI").into());
            }
            let expires = match contact.params.get("expires") {
                Some(Some(v)) => self.parse_expires(v),
                Some(None) => self.config.default_expires,
                None => header_expires.unwrap_or(self.config.default_expires),
            };
            if expires != 0 && expires < self.config.min_expires {
                return Err(refuse(423, "Interval Too Brief").into());
            }
            let expires = expires.min(self.config.max_expires);
            let instance = contact
                .params
                .value("+sip.instance")
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let reg_id = contact
                .params
                .value("reg-id")
                .and_then(|v| sip::parse::parse_u32(v));
            let q = contact.params.value("q").and_then(|v| parse_q(v));
            let update = ContactUpdate {
                contact,
                expires,
                instance,
                reg_id,
                q,
            };
            // The same contact twice in one request: the last one counts.
            out.retain(|u| {
                !(crate::location::same_contact(&u.contact.uri, &update.contact.uri)
                    && u.instance == update.instance
                    && u.reg_id == update.reg_id)
            });
            out.push(update);
        }
        Ok(out)
    }

    /// delta-seconds; a malformed value counts as the default (RFC 3261
    /// §20.10, §20.19), a huge one as the maximum.
    fn parse_expires(&self, v: &[u8]) -> u32 {
        let v = v.trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return self.config.default_expires;
        }
        v.iter().fold(0u32, |n, d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        })
    }
}

enum Reply {
    Refused(Refusal),
    Challenge { stale: bool },
    BadExtension(Bytes),
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        Reply::Refused(r)
    }
}

fn set_reason(resp: &mut Message, reason: &str) {
    if let sip::StartLine::Response(r) = &mut resp.start {
        r.reason = Bytes::copy_from_slice(reason.as_bytes());
    }
}

/// A copy of the URI that does not keep the request's buffer alive.
fn owned_uri(uri: &sip::Uri) -> sip::Uri {
    let bytes = uri.to_bytes();
    sip::Uri::parse(&Bytes::copy_from_slice(&bytes)).unwrap_or_else(|_| uri.clone())
}

/// `<uri>;expires=N` with q and instance echoed, for the 200.
fn contact_value(b: &Binding, now: Instant) -> String {
    let mut v = format!("<{}>;expires={}", b.contact, b.remaining_secs(now));
    if let Some(q) = b.q {
        v.push_str(";q=");
        v.push_str(&format_q(q));
    }
    if let Some(i) = &b.instance {
        v.push_str(";+sip.instance=");
        v.push_str(i);
        if let Some(r) = b.reg_id {
            v.push_str(&format!(";reg-id={r}"));
        }
    }
    v
}

/// `qvalue` (RFC 3261 §25.1) in thousandths.
fn parse_q(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, c) in frac.bytes().enumerate() {
        thousandths += u16::from(c - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn format_q(q: u16) -> String {
    if q >= 1000 {
        return "1".into();
    }
    let s = format!("0.{q:03}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok());
            if let Some(c) = h {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`), as SIP's Date wants.
pub fn http_date(t: SystemTime) -> String {
    let secs = crate::auth::unix_secs(t);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days since 1970-01-01 to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[(days % 7) as usize],
        day,
        MON[(month - 1) as usize],
        year,
        h,
        m,
        s
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Algorithm, Challenge, DEFAULT_NONCE_TTL};
    use std::time::UNIX_EPOCH;

    const DOMAIN: &str = "pbx.example.com";
    const UA: &str = "Yealink SIP-T46S 66.86.0.15";

    fn passwords(user: &str) -> Option<String> {
        match user {
            "101" => Some("Ext101-pass".into()),
            "102" => Some("Ext102-pass".into()),
            "user" => Some("user-pass".into()),
            _ => None,
        }
    }

    struct Harness {
        reg: Registrar,
        t0: Instant,
        wall0: SystemTime,
    }

    impl Harness {
        fn new() -> Self {
            Self::with_domain(DOMAIN)
        }

        fn with_domain(domain: &str) -> Self {
            Harness {
                reg: Registrar::new(RegistrarConfig::new(domain), [42; 32]),
                t0: Instant::now(),
                wall0: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            }
        }

        fn now(&self, at: u64) -> Instant {
            self.t0 + Duration::from_secs(at)
        }

        fn send(&mut self, at: u64, text: &str, from: Peer) -> Message {
            let req = sip::parse_message(&Bytes::copy_from_slice(text.as_bytes())).unwrap();
            let resp = self.reg.handle(
                self.now(at),
                self.wall0 + Duration::from_secs(at),
                &req,
                from,
                passwords,
            );
            // What goes on the wire must parse back.
            sip::parse_message(&resp.to_bytes()).unwrap()
        }

        fn lookup(&self, aor: &str, at: u64) -> Vec<Binding> {
            self.reg.location().lookup(aor, self.now(at))
        }
    }

    /// A phone: builds REGISTERs as text and answers challenges.
    struct Phone {
        user: String,
        to_user: String,
        password: String,
        call_id: String,
        cseq: u32,
        from: Peer,
        challenge: Option<Challenge>,
        nc: u32,
    }

    impl Phone {
        fn new(user: &str, port: u16) -> Self {
            Phone {
                user: user.into(),
                to_user: user.into(),
                password: passwords(user).unwrap_or_else(|| "whatever".into()),
                call_id: format!("{user}-{port}@127.0.0.1"),
                cseq: 0,
                from: Peer::udp(format!("127.0.0.1:{port}").parse().unwrap()),
                challenge: None,
                nc: 0,
            }
        }

        fn text(&mut self, extra: &[&str]) -> String {
            self.cseq += 1;
            let mut t = format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {addr};branch=z9hG4bK-{cseq}-{port};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: \"Ext {user}\" <sip:{user}@{DOMAIN}>;tag=f{port}\r\n\
                 To: \"Ext {user}\" <sip:{to}@{DOMAIN}>\r\n\
                 Call-ID: {cid}\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 User-Agent: {UA}\r\n",
                addr = self.from.addr,
                port = self.from.addr.port(),
                user = self.user,
                to = self.to_user,
                cid = self.call_id,
                cseq = self.cseq,
            );
            if let Some(ch) = &self.challenge {
                self.nc += 1;
                let a = ch.authorization(
                    "REGISTER",
                    &format!("sip:{DOMAIN}"),
                    &self.user,
                    &self.password,
                    "c0ffee",
                    self.nc,
                );
                t.push_str(&format!("Authorization: {a}\r\n"));
            }
            for h in extra {
                t.push_str(h);
                t.push_str("\r\n");
            }
            t.push_str("Content-Length: 0\r\n\r\n");
            t
        }

        fn learn(&mut self, resp: &Message) -> bool {
            if resp.status() != Some(401) {
                return false;
            }
            let v = resp.header(&HeaderName::WwwAuthenticate).unwrap();
            self.challenge = Some(Challenge::parse(v).unwrap());
            self.nc = 0;
            true
        }

        /// Sends, answers up to one challenge, returns every response.
        fn register(&mut self, h: &mut Harness, at: u64, extra: &[&str]) -> Vec<Message> {
            let mut out = Vec::new();
            let t = self.text(extra);
            let r = h.send(at, &t, self.from);
            let again = self.learn(&r);
            out.push(r);
            if again {
                let t = self.text(extra);
                out.push(h.send(at, &t, self.from));
            }
            out
        }

        fn contact(&self) -> String {
            format!(
                "Contact: <sip:{}@{};transport=udp>",
                self.user, self.from.addr
            )
        }
    }

    fn contacts_of(resp: &Message) -> Vec<String> {
        resp.headers_named(&HeaderName::Contact)
            .flat_map(|v| sip::parse::split_comma(v).collect::<Vec<_>>())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect()
    }

    fn last(resps: &[Message]) -> &Message {
        resps.last().unwrap()
    }

    #[test]
    fn challenge_then_register() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let contact = p.contact();
        let rs = p.register(&mut h, 0, &[&contact]);
        assert_eq!(rs.len(), 2);

        let ch = &rs[0];
        assert_eq!(ch.status(), Some(401));
        let www: Vec<_> = ch.headers_named(&HeaderName::WwwAuthenticate).collect();
        assert_eq!(www.len(), 2);
        let c0 = Challenge::parse(www[0]).unwrap();
        let c1 = Challenge::parse(www[1]).unwrap();
        assert_eq!(
            (c0.algorithm, c1.algorithm),
            (Algorithm::Sha256, Algorithm::Md5)
        );
        assert_eq!(c0.nonce, c1.nonce);
        assert_eq!(c0.realm, DOMAIN);
        assert!(!c0.stale);
        assert!(ch.to_hdr().unwrap().tag().is_some());
        assert_eq!(
            ch.header(&HeaderName::Date).unwrap().as_ref(),
            b"Tue, 14 Nov 2023 22:13:20 GMT"
        );
        let ok = &rs[1];
        assert_eq!(ok.status(), Some(200));
        assert_eq!(
            contacts_of(ok),
            ["<sip:101@127.0.0.1:5062;transport=udp>;expires=3600"]
        );
        assert!(ok.header(&HeaderName::Date).is_some());
        assert!(ok.header(&HeaderName::Supported).is_none());
        assert_eq!(ok.cseq().unwrap().seq, 2);

        let b = h.lookup("101", 0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].source, p.from);
        assert_eq!(b[0].call_id.as_ref(), p.call_id.as_bytes());
        assert_eq!(b[0].cseq, 2);
        assert_eq!(b[0].user_agent.as_deref(), Some(UA));
        assert_eq!(b[0].remaining_secs(h.now(0)), 3600);
    }

    #[test]
    fn md5_phone_registers_too() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let contact = p.contact();
        let t = p.text(&[&contact]);
        let r = h.send(0, &t, p.from);
        let md5 = r
            .headers_named(&HeaderName::WwwAuthenticate)
            .nth(1)
            .unwrap();
        p.challenge = Some(Challenge::parse(md5).unwrap());
        let t = p.text(&[&contact]);
        assert!(t.contains("algorithm=MD5"));
        assert_eq!(h.send(0, &t, p.from).status(), Some(200));
    }

    /// Normalizes what must differ between two challenges: nonce and tag.
    fn shape(resp: &Message) -> String {
        let mut text = resp.to_string();
        let nonce = Challenge::parse(resp.header(&HeaderName::WwwAuthenticate).unwrap())
            .unwrap()
            .nonce;
        text = text.replace(&nonce, "NONCE");
        let tag = resp.to_hdr().unwrap().tag().unwrap().clone();
        text.replace(std::str::from_utf8(&tag).unwrap(), "TAG")
    }

    #[test]
    fn unknown_user_gets_the_same_401_as_a_wrong_password() {
        let mut h = Harness::new();
        let mut known = Phone::new("101", 5062);
        known.password = "wrong".into();
        let mut unknown = Phone::new("999", 5062);
        unknown.password = "wrong".into();
        // Same Call-ID so that only the user differs in the requests.
        known.call_id = "shared@127.0.0.1".into();
        unknown.call_id = known.call_id.clone();

        let rk = known.register(&mut h, 0, &[]);
        let ru = unknown.register(&mut h, 0, &[]);
        assert_eq!(rk.len(), 2);
        assert_eq!(ru.len(), 2);
        assert_eq!(rk[1].status(), Some(401));
        assert_eq!(ru[1].status(), Some(401));
        let (sk, su) = (shape(&rk[1]), shape(&ru[1]));
        // Only the user name in From/To differs (it is in the request).
        assert_eq!(sk.replace("101", "999"), su);
        assert_eq!(shape(&rk[0]).replace("101", "999"), shape(&ru[0]));
        assert!(!sk.contains("stale"));
        assert_eq!(h.reg.location().count(), 0);
    }

    #[test]
    fn refresh_within_and_after_nonce_lifetime() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let contact = p.contact();
        let expires = "Expires: 600";
        assert_eq!(
            last(&p.register(&mut h, 0, &[&contact, expires])).status(),
            Some(200)
        );

        // Within the nonce lifetime: the next nonce-count is accepted directly.
        let rs = p.register(&mut h, 100, &[&contact, expires]);
        assert_eq!(rs.len(), 1);
        assert_eq!(
            contacts_of(&rs[0]),
            [format!("{}>;expires=600", &contact[9..contact.len() - 1])]
        );
        assert_eq!(h.lookup("101", 100)[0].remaining_secs(h.now(100)), 600);

        // Later: stale nonce, silently renewed.
        let rs = p.register(&mut h, 500, &[&contact, expires]);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].status(), Some(401));
        assert!(
            Challenge::parse(rs[0].header(&HeaderName::WwwAuthenticate).unwrap())
                .unwrap()
                .stale
        );
        assert_eq!(rs[1].status(), Some(200));
        let b = h.lookup("101", 500);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].remaining_secs(h.now(500)), 600);
        assert_eq!(b[0].cseq, p.cseq);
    }

    #[test]
    fn nonce_from_before_a_restart_is_renewed_silently() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let c = p.contact();
        p.register(&mut h, 0, &[&c]);
        // A new process: another random secret, empty location.
        let auth = DigestAuth::new(DOMAIN, [43; 32], DEFAULT_NONCE_TTL);
        h.reg = Registrar::with_auth(RegistrarConfig::new(DOMAIN), Arc::new(auth));
        let rs = p.register(&mut h, 10, &[&c]);
        assert_eq!(rs.len(), 2);
        assert!(
            Challenge::parse(rs[0].header(&HeaderName::WwwAuthenticate).unwrap())
                .unwrap()
                .stale
        );
        assert_eq!(rs[1].status(), Some(200));
        // With a wrong password the old nonce gets a plain challenge.
        let mut q = Phone::new("102", 5070);
        q.challenge = p.challenge.clone();
        q.password = "wrong".into();
        let rs = q.register(&mut h, 10, &[]);
        assert!(
            !Challenge::parse(rs[0].header(&HeaderName::WwwAuthenticate).unwrap())
                .unwrap()
                .stale
        );
    }

    #[test]
    fn replayed_request_is_challenged_stale_and_changes_nothing() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let contact = p.contact();
        p.register(&mut h, 0, &[&contact]);
        let ok = p.text(&[&contact, "Expires: 120"]);
        assert_eq!(h.send(1, &ok, p.from).status(), Some(200));
        // The same bytes again (a captured request): nc is not above the last.
        let r = h.send(2, &ok, p.from);
        assert_eq!(r.status(), Some(401));
        assert!(
            Challenge::parse(r.header(&HeaderName::WwwAuthenticate).unwrap())
                .unwrap()
                .stale
        );
    }

    #[test]
    fn several_contacts_and_query() {
        let mut h = Harness::new();
        let mut desk = Phone::new("101", 5062);
        let rs = desk.register(
            &mut h,
            0,
            &[
                "Contact: <sip:101@127.0.0.1:5062>;q=0.5, <sip:101@127.0.0.1:5064>;expires=120",
                "Contact: \"Desk\" <sip:101@127.0.0.1:5066>;q=1.0",
                "Expires: 1800",
            ],
        );
        let ok = last(&rs);
        assert_eq!(ok.status(), Some(200));
        let mut got = contacts_of(ok);
        got.sort();
        assert_eq!(
            got,
            [
                "<sip:101@127.0.0.1:5062>;expires=1800;q=0.5",
                "<sip:101@127.0.0.1:5064>;expires=120",
                "<sip:101@127.0.0.1:5066>;expires=1800;q=1",
            ]
        );
        // A second device of the same extension adds its own binding.
        let mut soft = Phone::new("101", 6000);
        let c = soft.contact();
        assert_eq!(last(&soft.register(&mut h, 10, &[&c])).status(), Some(200));
        let b = h.lookup("101", 10);
        assert_eq!(b.len(), 4);
        assert_eq!(b.last().unwrap().q, Some(500), "lowest q last");
        assert_eq!(h.reg.location().count(), 4);

        // A query (no Contact) lists them all and changes nothing.
        let q = soft.register(&mut h, 20, &[]);
        assert_eq!(q.len(), 1);
        assert_eq!(contacts_of(&q[0]).len(), 4);
        assert!(contacts_of(&q[0]).contains(&"<sip:101@127.0.0.1:5064>;expires=100".to_string()));
        assert_eq!(h.reg.location().count(), 4);
    }

    #[test]
    fn expires_zero_and_wildcard() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        p.register(
            &mut h,
            0,
            &["Contact: <sip:101@127.0.0.1:5062>, <sip:101@127.0.0.1:5064>"],
        );
        assert_eq!(h.lookup("101", 0).len(), 2);

        // One contact removed by its expires parameter.
        let r = p.register(&mut h, 1, &["Contact: <sip:101@127.0.0.1:5064>;expires=0"]);
        assert_eq!(
            contacts_of(last(&r)),
            ["<sip:101@127.0.0.1:5062>;expires=3599"]
        );

        // Wildcard without Expires: 0, or with other contacts: 400, nothing removed.
        for extra in [
            &["Contact: *"][..],
            &["Contact: *", "Expires: 60"],
            &[
                "Contact: *",
                "Contact: <sip:101@127.0.0.1:5062>",
                "Expires: 0",
            ],
        ] {
            let r = p.register(&mut h, 2, extra);
            assert_eq!(last(&r).status(), Some(400), "{extra:?}");
        }
        assert_eq!(h.lookup("101", 2).len(), 1);

        let r = p.register(&mut h, 3, &["Contact: *", "Expires: 0"]);
        assert_eq!(last(&r).status(), Some(200));
        assert!(contacts_of(last(&r)).is_empty());
        assert_eq!(h.reg.location().count(), 0);

        // Expires header 0 removes the listed contact.
        p.register(&mut h, 4, &["Contact: <sip:101@127.0.0.1:5062>"]);
        let r = p.register(
            &mut h,
            5,
            &["Contact: <sip:101@127.0.0.1:5062>", "Expires: 0"],
        );
        assert_eq!(last(&r).status(), Some(200));
        assert_eq!(h.reg.location().count(), 0);
    }

    #[test]
    fn interval_too_brief_and_clamping() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let c = p.contact();
        let r = p.register(&mut h, 0, &[&c, "Expires: 30"]);
        let r = last(&r);
        assert_eq!(r.status(), Some(423));
        assert_eq!(r.u32_header(&HeaderName::MinExpires).unwrap(), Some(60));
        assert_eq!(h.reg.location().count(), 0);

        let r = p.register(&mut h, 0, &["Contact: <sip:101@127.0.0.1:5062>;expires=59"]);
        assert_eq!(last(&r).status(), Some(423));

        let r = p.register(&mut h, 0, &[&c, "Expires: 99999999999"]);
        assert_eq!(
            contacts_of(last(&r)),
            ["<sip:101@127.0.0.1:5062;transport=udp>;expires=3600"]
        );
        // A malformed value counts as the default.
        let r = p.register(
            &mut h,
            0,
            &[
                "Contact: <sip:101@127.0.0.1:5062;transport=udp>;expires=soon",
                "Expires: 120",
            ],
        );
        assert_eq!(
            contacts_of(last(&r)),
            ["<sip:101@127.0.0.1:5062;transport=udp>;expires=3600"]
        );
    }

    #[test]
    fn to_user_must_be_the_authenticated_user() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        p.to_user = "102".into();
        let c = p.contact();
        let r = p.register(&mut h, 0, &[&c]);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].status(), Some(403));
        assert_eq!(h.reg.location().count(), 0);
        // An escaped To user names the same extension.
        p.to_user = "%31%30%31".into();
        assert_eq!(last(&p.register(&mut h, 0, &[&c])).status(), Some(200));
        assert_eq!(h.lookup("101", 0).len(), 1);
    }

    #[test]
    fn foreign_domain_is_not_found() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let c = p.contact();
        let t = p.text(&[&c]).replace(
            &format!("To: \"Ext 101\" <sip:101@{DOMAIN}>"),
            "To: <sip:101@elsewhere.example.net>",
        );
        let r = h.send(0, &t, p.from);
        p.learn(&r);
        let t = p.text(&[&c]).replace(
            &format!("To: \"Ext 101\" <sip:101@{DOMAIN}>"),
            "To: <sip:101@elsewhere.example.net>",
        );
        assert_eq!(h.send(0, &t, p.from).status(), Some(404));
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let c = p.contact();
        p.register(&mut h, 0, &[&c, "Expires: 600"]);
        let newer = p.text(&[&c, "Expires: 900"]);
        let older = p
            .text(&[&c, "Expires: 0"])
            .replace(&format!("CSeq: {} REGISTER", p.cseq), "CSeq: 1 REGISTER");
        assert_eq!(h.send(1, &newer, p.from).status(), Some(200));
        let r = h.send(1, &older, p.from);
        assert_eq!(r.status(), Some(500));
        let b = h.lookup("101", 1);
        assert_eq!(b.len(), 1, "the delayed removal changed nothing");
        assert_eq!(b[0].remaining_secs(h.now(1)), 900);

        // A new Call-ID (the phone rebooted) may use any CSeq.
        p.call_id = "rebooted@127.0.0.1".into();
        p.cseq = 0;
        let t = p.text(&[&c, "Expires: 300"]);
        assert_eq!(h.send(2, &t, p.from).status(), Some(200));
        assert_eq!(h.lookup("101", 2)[0].remaining_secs(h.now(2)), 300);
    }

    #[test]
    fn bindings_expire_over_time() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let mut q = Phone::new("102", 5070);
        let (cp, cq) = (p.contact(), q.contact());
        p.register(&mut h, 0, &[&cp, "Expires: 120"]);
        q.register(&mut h, 0, &[&cq, "Expires: 3600"]);
        assert_eq!(h.reg.location().next_expiry(), Some(h.now(120)));
        assert_eq!(h.lookup("101", 119).len(), 1);
        assert!(h.lookup("101", 120).is_empty());
        assert_eq!(h.reg.location().count(), 2);
        assert_eq!(h.reg.remove_expired(h.now(121)), 1);
        assert_eq!(h.reg.location().count(), 1);
        // A query after expiry lists nothing for 101.
        let r = p.register(&mut h, 200, &[]);
        assert_eq!(last(&r).status(), Some(200));
        assert!(contacts_of(last(&r)).is_empty());
    }

    #[test]
    fn same_instance_and_reg_id_replace_the_binding() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let inst = "+sip.instance=\"<urn:uuid:0c6bd16d-1e7d-4bd5-9d2e-3f2a7b1d33aa>\";reg-id=1";
        let c1 = format!("Contact: <sip:101@127.0.0.1:5062;ob>;{inst}");
        p.register(&mut h, 0, &[&c1]);
        p.from = Peer::udp("127.0.0.1:40000".parse().unwrap());
        let c2 = format!("Contact: <sip:101@127.0.0.1:40000;ob>;{inst}");
        let r = p.register(&mut h, 10, &[&c2]);
        assert_eq!(
            contacts_of(last(&r)),
            [format!("<sip:101@127.0.0.1:40000;ob>;expires=3600;{inst}")]
        );
        let b = h.lookup("101", 10);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].source, p.from);
        assert_eq!(
            b[0].instance.as_deref(),
            Some("\"<urn:uuid:0c6bd16d-1e7d-4bd5-9d2e-3f2a7b1d33aa>\"")
        );
    }

    #[test]
    fn contacts_per_aor_are_capped() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        for port in 0..12u16 {
            let c = format!("Contact: <sip:101@127.0.0.1:{}>", 7000 + port);
            assert_eq!(
                last(&p.register(&mut h, port.into(), &[&c])).status(),
                Some(200)
            );
        }
        let b = h.lookup("101", 12);
        assert_eq!(b.len(), 10);
        // The two oldest went.
        assert!(b.iter().all(|b| b.contact.port.unwrap() >= 7002));
    }

    #[test]
    fn rfc4475_escaped_contact_is_kept() {
        let mut h = Harness::with_domain("example.com");
        // RFC 4475 §3.1.2.6 (regescrt).
        let base = "REGISTER sip:example.com SIP/2.0\r\n\
            To: sip:user@example.com\r\n\
            From: sip:user@example.com;tag=8\r\n\
            Max-Forwards: 70\r\n\
            Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\r\n\
            CSeq: 14398234 REGISTER\r\n\
            Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n\
            M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n";
        let from = Peer::udp("127.0.0.1:5080".parse().unwrap());
        let r = h.send(0, &format!("{base}L:0\r\n\r\n"), from);
        assert_eq!(r.status(), Some(401));
        let ch = Challenge::parse(r.header(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
        let a = ch.authorization("REGISTER", "sip:example.com", "user", "user-pass", "x", 1);
        let t = format!("{base}Authorization: {a}\r\nL:0\r\n\r\n")
            .replace("CSeq: 14398234", "CSeq: 14398235");
        let r = h.send(0, &t, from);
        assert_eq!(r.status(), Some(200));
        assert_eq!(
            contacts_of(&r),
            ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]
        );
        assert_eq!(
            h.lookup("user", 0)[0].contact.headers().map(|h| h.as_ref()),
            Some(&b"Route=%3Csip:sip.example.com%3E"[..])
        );
    }

    #[test]
    fn bad_requests_get_clear_answers() {
        let mut h = Harness::new();
        let mut p = Phone::new("101", 5062);
        let c = p.contact();
        // A required extension we do not support.
        let r = p.register(&mut h, 0, &[&c, "Require: path"]);
        assert_eq!(r[0].status(), Some(420));
        assert_eq!(
            r[0].header(&HeaderName::Unsupported).unwrap().as_ref(),
            b"path"
        );
        // A digest uri that is not the Request-URI.
        p.register(&mut h, 0, &[]);
        let t = p.text(&[&c]).replace(
            &format!("uri=\"sip:{DOMAIN}\""),
            "uri=\"sip:x.example.com\"",
        );
        assert_eq!(h.send(0, &t, p.from).status(), Some(400));
        // Garbage credentials.
        let t = p.text(&[&c]);
        let start = t.find("Authorization:").unwrap();
        let end = start + t[start..].find("\r\n").unwrap();
        let garbage = format!(
            "{}Authorization: Digest username=\"101\"{}",
            &t[..start],
            &t[end..]
        );
        assert_eq!(h.send(0, &garbage, p.from).status(), Some(400));
        // Another scheme: challenged.
        let basic = format!("{}Authorization: Basic MTAxOnB3{}", &t[..start], &t[end..]);
        assert_eq!(h.send(0, &basic, p.from).status(), Some(401));
        assert_eq!(h.reg.location().count(), 0);
    }

    #[test]
    fn dates_and_q_values() {
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"1.5"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert_eq!(format_q(500), "0.5");
        assert_eq!(format_q(125), "0.125");
        assert_eq!(format_q(1000), "1");
        assert_eq!(format_q(0), "0");
        assert_eq!(percent_decode(b"%31%30%31"), "101");
        assert_eq!(percent_decode(b"10%"), "10%");
        assert_eq!(percent_decode(b"%zz1"), "%zz1");
    }
}
