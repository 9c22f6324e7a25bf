//! Trunk registration in simulated time against a provider whose responses
//! are written as SIP text and whose digest checks are the registrar's own.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pbx::auth::{Algorithm, AuthError, AuthOk, DigestAuth, DEFAULT_NONCE_TTL};
use pbx::trunk_reg::{RegRequestId, TrunkRegConfig, TrunkRegState, TrunkRegistrations};
use sip::{HeaderName, Message, Peer};

const REALM: &str = "sip.voipco.example";
const DOMAIN: &str = "sip.voipco.example";
const USER: &str = "4420777";
const PASSWORD: &str = "Tr0nk-Pa55-word";
const SECRET: [u8; 32] = [42; 32];

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn registrar_peer() -> Peer {
    Peer::udp("127.0.0.1:5080".parse().unwrap())
}

fn local(_: sip::TransportKind) -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

fn config(name: &str) -> TrunkRegConfig {
    TrunkRegConfig::new(name, registrar_peer(), DOMAIN, USER, PASSWORD)
}

/// The provider's registrar: digest checks with `DigestAuth`, responses as text.
struct Provider {
    auth: DigestAuth,
    password: String,
    t0: Instant,
}

impl Provider {
    fn new(t0: Instant, algorithms: &[Algorithm]) -> Self {
        let mut auth = DigestAuth::new(REALM, SECRET, DEFAULT_NONCE_TTL);
        auth.set_algorithms(algorithms);
        Provider {
            auth,
            password: PASSWORD.to_string(),
            t0,
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        UNIX_EPOCH + s(1_700_000_000) + (now - self.t0)
    }

    /// Challenge header lines (`WWW-Authenticate: ...`).
    fn challenge(&self, now: Instant, header: &str, stale: bool) -> Vec<String> {
        self.auth
            .challenge(self.wall(now), stale)
            .into_iter()
            .map(|v| format!("{header}: {v}"))
            .collect()
    }

    /// Checks the request's credentials (in `header`) as the provider does.
    fn verify(
        &self,
        now: Instant,
        req: &Message,
        header: &HeaderName,
    ) -> Result<AuthOk, AuthError> {
        let value = req.header(header).ok_or(AuthError::Missing)?;
        let uri = req.request_uri().unwrap().to_bytes();
        self.auth
            .verify(self.wall(now), "REGISTER", &uri, value, |u| {
                (u == USER || u == "acct-77").then(|| self.password.clone())
            })
    }
}

/// What arrives at the provider: the request as it goes on the wire, parsed back.
fn on_wire(req: &Message) -> Message {
    sip::parse_message(&req.to_bytes()).expect("our REGISTER must parse")
}

fn hdr(m: &Message, name: HeaderName) -> String {
    String::from_utf8(
        m.header(&name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_vec(),
    )
    .unwrap()
}

/// A provider response to `req` written as SIP text, with `extra` header lines.
fn respond(req: &Message, status: &str, extra: &[String]) -> Message {
    let via = hdr(req, HeaderName::Via).replace(";rport", ";rport=5060;received=127.0.0.1");
    let mut text = format!(
        "SIP/2.0 {status}\r\nVia: {via}\r\nFrom: {}\r\nTo: {};tag=as5c0ffee\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        hdr(req, HeaderName::From),
        hdr(req, HeaderName::To),
        hdr(req, HeaderName::CallId),
        hdr(req, HeaderName::CSeq),
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Server: VoipCo SBC 4.2\r\nContent-Length: 0\r\n\r\n");
    sip::parse_message(&Bytes::from(text)).expect("provider response must parse")
}

fn our_contact() -> String {
    format!("<sip:{USER}@127.0.0.1:5060;transport=udp>")
}

fn take(regs: &mut TrunkRegistrations) -> (RegRequestId, Message) {
    let (id, req, peer) = regs.poll_request().expect("a REGISTER to send");
    assert_eq!(peer, registrar_peer());
    (id, on_wire(&req))
}

fn cseq(m: &Message) -> u32 {
    m.cseq().unwrap().seq
}

fn state(regs: &TrunkRegistrations) -> TrunkRegState {
    regs.states()[0].1.clone()
}

fn retry_at(regs: &TrunkRegistrations) -> Instant {
    match state(regs) {
        TrunkRegState::Failed { retry_at, .. } => retry_at,
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Asserts the retry is `base` seconds after `now`, give or take the jitter.
fn assert_backoff(regs: &TrunkRegistrations, now: Instant, base: u64) {
    let d = retry_at(regs) - now;
    assert!(
        d >= s(base) && d <= s(base) + s(base) / 10,
        "retry in {d:?}, expected ~{base} s"
    );
    assert_eq!(regs.poll_timeout(), Some(retry_at(regs)));
}

/// Registers through an MD5 challenge; returns the registrations, the
/// provider and the time of the 200.
fn registered(t0: Instant) -> (TrunkRegistrations, Provider, Instant) {
    let provider = Provider::new(t0, &[Algorithm::Md5]);
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let (id, r1) = take(&mut regs);
    let t = t0 + Duration::from_millis(40);
    regs.on_response(
        t,
        id,
        &respond(
            &r1,
            "401 Unauthorized",
            &provider.challenge(t, "WWW-Authenticate", false),
        ),
    );
    let (id, r2) = take(&mut regs);
    provider.verify(t, &r2, &HeaderName::Authorization).unwrap();
    let t = t + Duration::from_millis(40);
    regs.on_response(
        t,
        id,
        &respond(
            &r2,
            "200 OK",
            &[format!("Contact: {};expires=120", our_contact())],
        ),
    );
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered { until: t + s(120) }
    );
    (regs, provider, t)
}

#[test]
fn registers_through_md5_challenge_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let provider = Provider::new(t0, &[Algorithm::Md5]);
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.set_user_agent("Softswitch/0.1");
    assert_eq!(state(&regs), TrunkRegState::Idle);
    regs.start(t0);
    assert_eq!(state(&regs), TrunkRegState::Registering);

    let (id1, r1) = take(&mut regs);
    assert!(regs.poll_request().is_none());
    assert_eq!(
        r1.request_uri().unwrap().to_string(),
        "sip:sip.voipco.example"
    );
    assert_eq!(hdr(&r1, HeaderName::To), format!("<sip:{USER}@{DOMAIN}>"));
    let from = r1.from_hdr().unwrap();
    assert_eq!(from.uri.to_string(), format!("sip:{USER}@{DOMAIN}"));
    assert!(from.tag().is_some());
    assert_eq!(hdr(&r1, HeaderName::Contact), our_contact());
    assert_eq!(hdr(&r1, HeaderName::Expires), "3600");
    assert_eq!(hdr(&r1, HeaderName::CSeq), "1 REGISTER");
    assert_eq!(hdr(&r1, HeaderName::UserAgent), "Softswitch/0.1");
    assert!(r1.top_via().unwrap().has_rfc3261_branch());
    assert!(r1.header(&HeaderName::Authorization).is_none());
    let call_id = hdr(&r1, HeaderName::CallId);

    // 100 Trying changes nothing.
    regs.on_response(t0, id1, &respond(&r1, "100 Trying", &[]));
    assert!(regs.poll_request().is_none());

    let t = t0 + Duration::from_millis(40);
    let www = provider.challenge(t, "WWW-Authenticate", false);
    assert!(www[0].contains("algorithm=MD5") && www[0].contains("qop=\"auth\""));
    regs.on_response(t, id1, &respond(&r1, "401 Unauthorized", &www));
    let (id2, r2) = take(&mut regs);
    assert_eq!(cseq(&r2), 2);
    assert_eq!(hdr(&r2, HeaderName::CallId), call_id);
    assert_eq!(r2.from_hdr().unwrap().tag(), from.tag());
    assert_ne!(
        r2.top_via().unwrap().branch(),
        r1.top_via().unwrap().branch()
    );
    let authz = hdr(&r2, HeaderName::Authorization);
    assert!(
        authz.contains("qop=auth") && authz.contains("nc=00000001"),
        "{authz}"
    );
    // The provider's own check: right password accepted, a wrong one would not be.
    let mut wrong = Provider::new(t0, &[Algorithm::Md5]);
    wrong.password = "not-the-password".into();
    assert_eq!(
        wrong.verify(t, &r2, &HeaderName::Authorization),
        Err(AuthError::BadResponse)
    );
    let ok = provider.verify(t, &r2, &HeaderName::Authorization).unwrap();
    assert_eq!((ok.user.as_str(), ok.algorithm), (USER, Algorithm::Md5));
    assert_eq!(state(&regs), TrunkRegState::Registering);

    // The AOR has another binding (a second PBX) with its own interval.
    let t1 = t + Duration::from_millis(40);
    let ok = respond(
        &r2,
        "200 OK",
        &[
            "Contact: <sip:4420777@192.0.2.10:5060>;expires=3000".to_string(),
            format!("Contact: {};expires=120", our_contact()),
            "Date: Tue, 14 Nov 2023 22:13:20 GMT".to_string(),
        ],
    );
    regs.on_response(t1, id2, &ok);
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered { until: t1 + s(120) }
    );
    // Refresh at the earlier of 90 % (108 s) and expiry - 30 s (90 s).
    assert_eq!(regs.poll_timeout(), Some(t1 + s(90)));
    // A late copy of the 200 is ignored.
    regs.on_response(t1, id2, &ok);
    regs.handle_timeout(t1 + s(89));
    assert!(regs.poll_request().is_none());

    let t2 = t1 + s(90);
    regs.handle_timeout(t2);
    let (id3, r3) = take(&mut regs);
    assert_eq!(cseq(&r3), 3);
    assert_eq!(hdr(&r3, HeaderName::CallId), call_id);
    assert_eq!(hdr(&r3, HeaderName::Expires), "3600");
    // Credentials reused up front with the next nonce-count.
    assert!(hdr(&r3, HeaderName::Authorization).contains("nc=00000002"));
    provider
        .verify(t2, &r3, &HeaderName::Authorization)
        .unwrap();
    assert!(matches!(state(&regs), TrunkRegState::Registered { .. }));
    assert_eq!(
        regs.poll_timeout(),
        None,
        "no timer while the refresh is pending"
    );

    regs.on_response(
        t2,
        id3,
        &respond(
            &r3,
            "200 OK",
            &[format!("Contact: {};expires=120", our_contact())],
        ),
    );
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered { until: t2 + s(120) }
    );
    assert_eq!(regs.poll_timeout(), Some(t2 + s(90)));
}

#[test]
fn wrong_password_fails_and_retries_after_backoff() {
    let t0 = Instant::now();
    let mut provider = Provider::new(t0, &[Algorithm::Md5]);
    provider.password = "the-provider-changed-it".into();
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);

    let mut now = t0;
    for (round, base) in [(0u32, 30u64), (1, 60)] {
        let (id, r) = take(&mut regs);
        assert_eq!(cseq(&r), 1 + 2 * round);
        assert!(
            r.header(&HeaderName::Authorization).is_none(),
            "a retry starts afresh"
        );
        regs.on_response(
            now,
            id,
            &respond(
                &r,
                "401 Unauthorized",
                &provider.challenge(now, "WWW-Authenticate", false),
            ),
        );
        let (id, r) = take(&mut regs);
        assert_eq!(
            provider.verify(now, &r, &HeaderName::Authorization),
            Err(AuthError::BadResponse)
        );
        regs.on_response(
            now,
            id,
            &respond(
                &r,
                "401 Unauthorized",
                &provider.challenge(now, "WWW-Authenticate", false),
            ),
        );
        match state(&regs) {
            TrunkRegState::Failed { code, .. } => assert_eq!(code, Some(401)),
            other => panic!("{other:?}"),
        }
        assert!(
            regs.poll_request().is_none(),
            "wrong credentials are not resent"
        );
        assert_backoff(&regs, now, base);
        let at = retry_at(&regs);
        regs.handle_timeout(at - s(1));
        assert!(regs.poll_request().is_none());
        now = at;
        regs.handle_timeout(now);
        assert_eq!(state(&regs), TrunkRegState::Registering);
    }
}

#[test]
fn failures_back_off_doubling_up_to_the_cap_and_reset_on_success() {
    let t0 = Instant::now();
    // A provider authenticating by source address: no challenge.
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let mut now = t0;
    for (n, base) in [30u64, 60, 120, 240, 480, 600, 600].into_iter().enumerate() {
        let (id, r) = take(&mut regs);
        assert_eq!(cseq(&r), n as u32 + 1);
        if n % 2 == 0 {
            regs.on_response(now, id, &respond(&r, "503 Service Unavailable", &[]));
            assert!(
                matches!(state(&regs), TrunkRegState::Failed { code: Some(503), ref reason, .. } if reason == "Service Unavailable")
            );
        } else {
            // Timer F or an ICMP error.
            regs.on_failure(now + s(32), id);
            now += s(32);
            assert!(matches!(
                state(&regs),
                TrunkRegState::Failed { code: None, .. }
            ));
        }
        assert_backoff(&regs, now, base);
        now = retry_at(&regs);
        regs.handle_timeout(now);
    }
    let (id, r) = take(&mut regs);
    // No expires on the Contact: the Expires header counts.
    regs.on_response(
        now,
        id,
        &respond(
            &r,
            "200 OK",
            &[format!("Contact: {}", our_contact()), "Expires: 300".into()],
        ),
    );
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered {
            until: now + s(300)
        }
    );
    assert_eq!(regs.poll_timeout(), Some(now + s(270)));
    now += s(270);
    regs.handle_timeout(now);
    let (id, r) = take(&mut regs);
    regs.on_response(now, id, &respond(&r, "500 Server Internal Error", &[]));
    assert_backoff(&regs, now, 30);
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let t0 = Instant::now();
    let mut cfg = config("voipco");
    cfg.expires = 60;
    let mut regs = TrunkRegistrations::new(vec![cfg], local);
    regs.start(t0);
    let (id, r1) = take(&mut regs);
    assert_eq!(hdr(&r1, HeaderName::Expires), "60");
    regs.on_response(
        t0,
        id,
        &respond(&r1, "423 Interval Too Brief", &["Min-Expires: 600".into()]),
    );
    let (id, r2) = take(&mut regs);
    assert_eq!(hdr(&r2, HeaderName::Expires), "600");
    assert_eq!(cseq(&r2), 2);
    assert_eq!(state(&regs), TrunkRegState::Registering);
    // Neither a Contact expires nor an Expires header: what we asked.
    regs.on_response(t0, id, &respond(&r2, "200 OK", &[]));
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered { until: t0 + s(600) }
    );
    regs.handle_timeout(t0 + s(540));
    let (_, r3) = take(&mut regs);
    assert_eq!(
        hdr(&r3, HeaderName::Expires),
        "600",
        "the raised interval sticks"
    );

    // A 423 without a usable Min-Expires is a failure, not a loop.
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let (id, r) = take(&mut regs);
    regs.on_response(
        t0,
        id,
        &respond(&r, "423 Interval Too Brief", &["Min-Expires: 60".into()]),
    );
    assert!(regs.poll_request().is_none());
    assert!(matches!(
        state(&regs),
        TrunkRegState::Failed {
            code: Some(423),
            ..
        }
    ));
}

#[test]
fn stale_nonce_is_answered_at_once_with_the_new_nonce() {
    let t0 = Instant::now();
    let provider = Provider::new(t0, &[Algorithm::Md5]);
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let (id, r1) = take(&mut regs);
    regs.on_response(
        t0,
        id,
        &respond(
            &r1,
            "401 Unauthorized",
            &provider.challenge(t0, "WWW-Authenticate", false),
        ),
    );
    let (id, r2) = take(&mut regs);
    let first_nonce = pbx::auth::Credentials::parse(r2.header(&HeaderName::Authorization).unwrap())
        .unwrap()
        .nonce;
    // The provider restarted: the right password on a nonce it no longer knows.
    let t = t0 + s(1);
    regs.on_response(
        t,
        id,
        &respond(
            &r2,
            "401 Unauthorized",
            &provider.challenge(t, "WWW-Authenticate", true),
        ),
    );
    assert_eq!(state(&regs), TrunkRegState::Registering);
    let (id, r3) = take(&mut regs);
    let creds =
        pbx::auth::Credentials::parse(r3.header(&HeaderName::Authorization).unwrap()).unwrap();
    assert_ne!(creds.nonce, first_nonce);
    assert_eq!(
        creds.nc.as_deref(),
        Some("00000001"),
        "nc restarts with a new nonce"
    );
    provider.verify(t, &r3, &HeaderName::Authorization).unwrap();
    regs.on_response(
        t,
        id,
        &respond(
            &r3,
            "200 OK",
            &[format!("Contact: {};expires=600", our_contact())],
        ),
    );
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered { until: t + s(600) }
    );

    // A registrar answering stale=true for ever is given up on.
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let (id, r) = take(&mut regs);
    regs.on_response(
        t0,
        id,
        &respond(
            &r,
            "401 Unauthorized",
            &provider.challenge(t0, "WWW-Authenticate", false),
        ),
    );
    let mut sent = 0;
    while let Some((id, r, _)) = regs.poll_request() {
        sent += 1;
        assert!(sent < 10, "stale loop");
        regs.on_response(
            t0,
            id,
            &respond(
                &r,
                "401 Unauthorized",
                &provider.challenge(t0, "WWW-Authenticate", true),
            ),
        );
    }
    assert!(matches!(
        state(&regs),
        TrunkRegState::Failed {
            code: Some(401),
            ..
        }
    ));
}

#[test]
fn proxy_challenge_sha256_and_auth_username() {
    let t0 = Instant::now();
    // Offers SHA-256 first, then MD5 (RFC 8760 order).
    let provider = Provider::new(t0, &[Algorithm::Sha256, Algorithm::Md5]);
    let mut cfg = config("voipco");
    cfg.auth_username = Some("acct-77".into());
    cfg.contact_user = "442077700".into();
    let mut regs = TrunkRegistrations::new(vec![cfg], local);
    regs.start(t0);
    let (id, r1) = take(&mut regs);
    assert_eq!(
        hdr(&r1, HeaderName::Contact),
        "<sip:442077700@127.0.0.1:5060;transport=udp>"
    );
    regs.on_response(
        t0,
        id,
        &respond(
            &r1,
            "407 Proxy Authentication Required",
            &provider.challenge(t0, "Proxy-Authenticate", false),
        ),
    );
    let (id, r2) = take(&mut regs);
    assert!(r2.header(&HeaderName::Authorization).is_none());
    let ok = provider
        .verify(t0, &r2, &HeaderName::ProxyAuthorization)
        .unwrap();
    assert_eq!(
        (ok.user.as_str(), ok.algorithm),
        ("acct-77", Algorithm::Sha256)
    );
    // The AOR keeps the username.
    assert_eq!(hdr(&r2, HeaderName::To), format!("<sip:{USER}@{DOMAIN}>"));
    regs.on_response(
        t0,
        id,
        &respond(
            &r2,
            "200 OK",
            &["Contact: <sip:442077700@127.0.0.1:5060;transport=udp>;expires=1800".into()],
        ),
    );
    assert_eq!(
        state(&regs),
        TrunkRegState::Registered {
            until: t0 + s(1800)
        }
    );
}

#[test]
fn unregister_all_sends_expires_zero_for_registered_trunks() {
    let t0 = Instant::now();
    let (mut regs, provider, t) = registered(t0);
    regs.handle_timeout(t + s(90));
    let (id, refresh) = take(&mut regs);
    let t = t + s(90);
    regs.on_response(
        t,
        id,
        &respond(
            &refresh,
            "200 OK",
            &[format!("Contact: {};expires=120", our_contact())],
        ),
    );

    regs.unregister_all(t + s(10));
    let (id, un) = take(&mut regs);
    assert!(regs.poll_request().is_none());
    assert_eq!(hdr(&un, HeaderName::Expires), "0");
    assert_eq!(hdr(&un, HeaderName::Contact), our_contact());
    assert_eq!(cseq(&un), cseq(&refresh) + 1);
    assert_eq!(
        hdr(&un, HeaderName::CallId),
        hdr(&refresh, HeaderName::CallId)
    );
    provider
        .verify(t + s(10), &un, &HeaderName::Authorization)
        .unwrap();
    assert_eq!(regs.pending(), 1);
    assert_eq!(regs.poll_timeout(), None, "no refresh while shutting down");
    regs.on_response(t + s(10), id, &respond(&un, "200 OK", &[]));
    assert_eq!(state(&regs), TrunkRegState::Idle);
    assert_eq!(regs.pending(), 0);
    regs.handle_timeout(t + s(10_000));
    assert!(regs.poll_request().is_none());
    assert_eq!(regs.poll_timeout(), None);
}

#[test]
fn unregister_answers_a_challenge_and_skips_failed_trunks() {
    let t0 = Instant::now();
    let provider = Provider::new(t0, &[Algorithm::Md5]);
    let mut regs = TrunkRegistrations::new(vec![config("voipco"), config("backup")], local);
    regs.start(t0);
    let (a, ra) = take(&mut regs);
    let (b, rb) = take(&mut regs);
    assert_eq!(regs.trunk_of(a), Some("voipco"));
    assert_eq!(regs.trunk_of(b), Some("backup"));
    assert_ne!(hdr(&ra, HeaderName::CallId), hdr(&rb, HeaderName::CallId));
    regs.on_response(t0, a, &respond(&ra, "200 OK", &["Expires: 600".into()]));
    regs.on_response(t0, b, &respond(&rb, "403 Forbidden", &[]));
    assert!(matches!(
        regs.states()[1].1,
        TrunkRegState::Failed {
            code: Some(403),
            ..
        }
    ));

    regs.unregister_all(t0 + s(5));
    let (id, un) = take(&mut regs);
    assert!(
        regs.poll_request().is_none(),
        "the failed trunk has nothing to remove"
    );
    assert_eq!(regs.states()[1].1, TrunkRegState::Idle);
    assert_eq!(hdr(&un, HeaderName::Expires), "0");
    regs.on_response(
        t0 + s(5),
        id,
        &respond(
            &un,
            "401 Unauthorized",
            &provider.challenge(t0, "WWW-Authenticate", false),
        ),
    );
    let (id, un2) = take(&mut regs);
    assert_eq!(hdr(&un2, HeaderName::Expires), "0");
    provider
        .verify(t0 + s(5), &un2, &HeaderName::Authorization)
        .unwrap();
    // Refused: give up quietly, no retry at shutdown.
    regs.on_response(
        t0 + s(5),
        id,
        &respond(&un2, "500 Server Internal Error", &[]),
    );
    assert_eq!(state(&regs), TrunkRegState::Idle);
    assert_eq!(regs.poll_timeout(), None);
}

#[test]
fn stray_and_malformed_responses_do_no_harm() {
    let t0 = Instant::now();
    let mut regs = TrunkRegistrations::new(vec![config("voipco")], local);
    regs.start(t0);
    let (id, r1) = take(&mut regs);
    // An answer under an id we never handed out.
    let mut other = TrunkRegistrations::new(vec![config("x"), config("y")], local);
    other.start(t0);
    let _ = other.poll_request();
    let (foreign, _, _) = other.poll_request().unwrap();
    regs.on_response(t0, foreign, &respond(&r1, "200 OK", &[]));
    regs.on_failure(t0, foreign);
    assert_eq!(state(&regs), TrunkRegState::Registering);
    assert_eq!(regs.pending(), 1);

    // A 401 without a challenge, then one with a challenge we cannot parse.
    regs.on_response(t0, id, &respond(&r1, "401 Unauthorized", &[]));
    assert!(matches!(
        state(&regs),
        TrunkRegState::Failed {
            code: Some(401),
            ..
        }
    ));
    regs.handle_timeout(retry_at(&regs));
    let (id, r2) = take(&mut regs);
    regs.on_response(
        t0,
        id,
        &respond(
            &r2,
            "401 Unauthorized",
            &["WWW-Authenticate: Digest realm=\"x\", algorithm=SHA-512-256, nonce=\"n\"".into()],
        ),
    );
    assert!(matches!(
        state(&regs),
        TrunkRegState::Failed {
            code: Some(401),
            ..
        }
    ));
    assert!(regs.poll_request().is_none());
    // The answer to a request that already failed is ignored.
    regs.on_response(t0, id, &respond(&r2, "200 OK", &[]));
    assert!(matches!(state(&regs), TrunkRegState::Failed { .. }));
}

#[test]
fn unregister_covers_a_live_binding_whose_refresh_failed() {
    let t0 = Instant::now();
    let (mut regs, _provider, t) = registered(t0);
    let t = t + s(90);
    regs.handle_timeout(t);
    let (id, _) = take(&mut regs);
    regs.on_failure(t + s(32), id);
    assert!(matches!(
        state(&regs),
        TrunkRegState::Failed { code: None, .. }
    ));
    // The 120 s binding still runs until t + 30 s: remove it.
    regs.unregister_all(t + s(20));
    let (_, un) = take(&mut regs);
    assert_eq!(hdr(&un, HeaderName::Expires), "0");
    // Past its end there is nothing to remove.
    let (mut regs, _provider, t) = registered(t0);
    regs.handle_timeout(t + s(90));
    let (id, _) = take(&mut regs);
    regs.on_failure(t + s(122), id);
    regs.unregister_all(t + s(125));
    assert!(regs.poll_request().is_none());
    assert_eq!(state(&regs), TrunkRegState::Idle);
}

#[test]
fn reconfigure_keeps_changes_and_removes_trunks() {
    let t0 = Instant::now();
    let provider = Provider::new(t0, &[Algorithm::Md5]);
    let mut regs = TrunkRegistrations::new(vec![config("voipco"), config("old")], local);
    // Before start nothing is sent, even for new trunks.
    regs.reconfigure(t0, vec![config("voipco"), config("old"), config("early")]);
    assert!(regs.poll_request().is_none());
    regs.start(t0);
    let mut call_ids = std::collections::HashMap::new();
    while let Some((id, r, _)) = regs.poll_request() {
        let name = regs.trunk_of(id).unwrap().to_string();
        call_ids.insert(name, hdr(&r, HeaderName::CallId));
        regs.on_response(t0, id, &respond(&r, "200 OK", &["Expires: 600".into()]));
    }
    assert_eq!(call_ids.len(), 3);

    // Unchanged: nothing happens.
    regs.reconfigure(
        t0 + s(1),
        vec![config("voipco"), config("old"), config("early")],
    );
    assert!(regs.poll_request().is_none());

    // "voipco" gets a new password, "old" goes, "new" comes.
    let mut changed = config("voipco");
    changed.password = "n3w-Passw0rd".into();
    let t = t0 + s(2);
    regs.reconfigure(t, vec![changed, config("early"), config("new")]);
    let names: Vec<String> = regs.states().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["voipco", "early", "new"]);
    let mut sent = Vec::new();
    while let Some((id, r, _)) = regs.poll_request() {
        sent.push((regs.trunk_of(id).unwrap().to_string(), id, r));
    }
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = sent.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["new", "old", "voipco"]);
    let (_, old_id, old_req) = &sent[1];
    assert_eq!(hdr(old_req, HeaderName::Expires), "0");
    assert_eq!(&hdr(old_req, HeaderName::CallId), &call_ids["old"]);
    let (_, v_id, v_req) = &sent[2];
    assert_eq!(hdr(v_req, HeaderName::Expires), "3600");
    assert_eq!(
        &hdr(v_req, HeaderName::CallId),
        &call_ids["voipco"],
        "same binding, same Call-ID"
    );
    // The new password answers the next challenge.
    regs.on_response(
        t,
        *v_id,
        &respond(
            v_req,
            "401 Unauthorized",
            &provider.challenge(t, "WWW-Authenticate", false),
        ),
    );
    let (_, r) = take(&mut regs);
    let mut p2 = Provider::new(t0, &[Algorithm::Md5]);
    p2.password = "n3w-Passw0rd".into();
    p2.verify(t, &r, &HeaderName::Authorization).unwrap();

    assert_eq!(regs.pending(), 3);
    regs.on_response(t, *old_id, &respond(old_req, "200 OK", &[]));
    assert_eq!(regs.pending(), 2);
    assert_eq!(regs.trunk_of(*old_id), None);
    assert_eq!(regs.states().len(), 3);
}
