//! SIPp scenarios against the real daemon on loopback. Each test starts its
//! own daemon on its own ports; RTP is sent and counted by sockets the test
//! owns (the SDP of each SIPp peer points at them), so "media flowed through
//! the relay" is checked packet by packet.

use std::net::SocketAddr;
use std::time::Duration;

use e2e::rtp::{exchange, Exchange, RtpEndpoint};
use e2e::{
    alice, bob, parse_media, register, Daemon, DaemonConfig, Extension, Ports, Sipp, SippProcess,
    TempDir,
};

const LOG_WAIT: Duration = Duration::from_secs(20);

fn daemon(exts: Vec<Extension>) -> Daemon {
    daemon_with(DaemonConfig::new(exts))
}

fn daemon_with(config: DaemonConfig) -> Daemon {
    match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => panic!("daemon did not start: {e}"),
    }
}

/// Start a callee UAS with `scenario`, wait until it listens, then register
/// Bob with that UAS as his contact.
fn callee(dir: &TempDir, d: &Daemon, scenario: &str, media: &RtpEndpoint) -> SippProcess {
    let port = Ports::sip();
    let mut uas = Sipp::new(dir.path(), scenario, port, None)
        .key("rtp_port", media.port())
        .spawn();
    uas.wait_bound(port);
    register(dir.path(), d, &bob(), port).assert_success();
    uas
}

/// A caller (Alice, registered first) dialling `number` with `scenario`.
fn caller(
    dir: &TempDir,
    d: &Daemon,
    scenario: &str,
    number: &str,
    media: &RtpEndpoint,
) -> SippProcess {
    let port = Ports::sip();
    let a = alice();
    register(dir.path(), d, &a, port).assert_success();
    Sipp::new(dir.path(), scenario, port, Some(d.sip_addr()))
        .service(number)
        .auth(&a.number, &a.password)
        .key("ext", &a.number)
        .key("rtp_port", media.port())
        .spawn()
}

#[track_caller]
fn media_of(p: &mut SippProcess, prefix: &str, who: &str) -> SocketAddr {
    let line = p
        .wait_log(prefix, LOG_WAIT)
        .unwrap_or_else(|| panic!("{who} never logged its {prefix}line (no SDP received)"));
    parse_media(&line).unwrap_or_else(|| panic!("{who}: bad {prefix}line {line:?}"))
}

#[track_caller]
fn assert_relay_addr(d: &Daemon, addr: SocketAddr, who: &str) {
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.1",
        "{who}: c= must be the relay address"
    );
    assert!(
        d.config.in_rtp_range(addr.port()),
        "{who}: m= port {} is not a relay port ({}-{})",
        addr.port(),
        d.config.rtp_ports.0,
        d.config.rtp_ports.1
    );
}

#[track_caller]
fn assert_media_flowed(d: &Daemon, x: &Exchange, min: u32) {
    for (dir, s) in [("caller->callee", &x.a_to_b), ("callee->caller", &x.b_to_a)] {
        assert!(
            s.received >= min,
            "{dir}: only {} of {} RTP packets arrived through the relay ({:?})",
            s.received,
            s.sent,
            s
        );
        for src in &s.sources {
            assert!(
                src.ip().is_loopback() && d.config.in_rtp_range(src.port()),
                "{dir}: RTP came from {src}, not from a relay port"
            );
        }
    }
}

#[test]
fn register_with_digest_auth() {
    let d = daemon(vec![alice()]);
    let dir = TempDir::new("register");
    let contact = Ports::sip();
    let out = register(dir.path(), &d, &alice(), contact);
    out.assert_success();
    assert!(
        out.log.contains(&format!("127.0.0.1:{contact}")),
        "the 200 must list the binding just made\n{}",
        out.report()
    );
}

#[test]
fn register_over_tcp() {
    let d = daemon(vec![alice()]);
    let dir = TempDir::new("register-tcp");
    let a = alice();
    let contact = Ports::sip();
    Sipp::new(dir.path(), "register.xml", Ports::sip(), Some(d.sip_addr()))
        .arg("-t")
        .arg("t1")
        .service(&a.number)
        .auth(&a.number, &a.password)
        .key("contact_port", contact)
        .run()
        .assert_success();
}

fn challenge_without_nonce(log: &str) -> String {
    let line = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("CHALLENGE "))
        .unwrap_or_default();
    line.split(',')
        .map(str::trim)
        .filter(|p| !p.starts_with("nonce=") && !p.starts_with("opaque="))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn register_wrong_password_and_unknown_user_get_the_same_401() {
    let d = daemon(vec![alice()]);
    let dir = TempDir::new("register-fail");
    let wrong = Sipp::new(
        dir.path(),
        "register_fail.xml",
        Ports::sip(),
        Some(d.sip_addr()),
    )
    .service("1001")
    .auth("1001", "Wrong-Pass-9x!")
    .key("contact_port", Ports::sip())
    .run();
    wrong.assert_success();
    let unknown = Sipp::new(
        dir.path(),
        "register_fail.xml",
        Ports::sip(),
        Some(d.sip_addr()),
    )
    .service("1999")
    .auth("1999", "Some-Pass-7y!")
    .key("contact_port", Ports::sip())
    .run();
    unknown.assert_success();
    let (a, b) = (
        challenge_without_nonce(&wrong.log),
        challenge_without_nonce(&unknown.log),
    );
    assert!(!a.is_empty(), "no challenge logged\n{}", wrong.report());
    assert_eq!(
        a, b,
        "an unknown user must be challenged exactly like a known one"
    );
}

#[test]
fn call_relays_rtp_both_ways_then_caller_hangs_up() {
    let mut d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("call");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let mut uas = callee(&dir, &d, "uas_answer.xml", &b_rtp);
    let mut uac = caller(&dir, &d, "uac_call.xml", "1002", &a_rtp);

    let b_to = media_of(&mut uas, "MEDIA ", "callee");
    let a_to = media_of(&mut uac, "MEDIA ", "caller");
    assert_relay_addr(&d, a_to, "200 OK to the caller");
    assert_relay_addr(&d, b_to, "INVITE to the callee");
    assert_ne!(a_to, b_to, "each leg needs its own relay port");

    let x = exchange(&a_rtp, a_to, &b_rtp, b_to, 50, Duration::from_millis(20));

    let ruri = uas.wait_log("RURI ", LOG_WAIT).unwrap_or_default();
    let from = uas.wait_log("FROM ", LOG_WAIT).unwrap_or_default();
    let b_callid = uas.wait_log("CALLID ", LOG_WAIT).unwrap_or_default();
    let a_callid = uac.wait_log("CALLID ", LOG_WAIT).unwrap_or_default();
    let (uac, uas) = (uac.wait(), uas.wait());
    uac.assert_success();
    uas.assert_success();

    assert_media_flowed(&d, &x, 40);
    assert_eq!(ruri, "1002", "B-leg Request-URI user");
    assert!(
        from.contains("sip:1001@"),
        "B-leg From must be the caller: {from}"
    );
    assert!(
        !b_callid.is_empty() && b_callid != a_callid,
        "B-leg Call-ID must differ: {b_callid}"
    );
    assert!(d.is_running(), "daemon died");
}

#[test]
fn callee_hangs_up() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("callee-bye");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let uas = callee(&dir, &d, "uas_bye.xml", &b_rtp);
    let uac = caller(&dir, &d, "uac_callee_hangup.xml", "1002", &a_rtp);
    let (uac, uas) = (uac.wait(), uas.wait());
    uas.assert_success();
    uac.assert_success();
}

#[test]
fn cancel_before_answer() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("cancel");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let uas = callee(&dir, &d, "uas_ring_cancel.xml", &b_rtp);
    let uac = caller(&dir, &d, "uac_cancel.xml", "1002", &a_rtp);
    let (uac, uas) = (uac.wait(), uas.wait());
    uac.assert_success();
    uas.assert_success();
}

#[test]
fn busy_callee_is_relayed_as_486() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("busy");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let uas = callee(&dir, &d, "uas_busy.xml", &b_rtp);
    let uac = caller(&dir, &d, "uac_busy.xml", "1002", &a_rtp);
    let (uac, uas) = (uac.wait(), uas.wait());
    uac.assert_success();
    uas.assert_success();
}

#[test]
fn unknown_number_gets_404() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("unknown");
    let a_rtp = RtpEndpoint::bind(b'A');
    caller(&dir, &d, "uac_unknown.xml", "1999", &a_rtp)
        .wait()
        .assert_success();
}

#[test]
fn unregistered_extension_gets_480() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("unavailable");
    let a_rtp = RtpEndpoint::bind(b'A');
    caller(&dir, &d, "uac_unavailable.xml", "1002", &a_rtp)
        .wait()
        .assert_success();
}

#[test]
fn hold_and_resume_are_relayed_with_rewritten_sdp() {
    let d = daemon(vec![alice(), bob()]);
    let dir = TempDir::new("hold");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let mut uas = callee(&dir, &d, "uas_reinvite.xml", &b_rtp);
    let mut uac = caller(&dir, &d, "uac_reinvite_hold.xml", "1002", &a_rtp);
    let checks = [
        (&mut uas, "HOLDMEDIA ", "re-INVITE (hold) to the callee"),
        (&mut uac, "HOLDMEDIA ", "200 to the hold re-INVITE"),
    ];
    let mut seen = Vec::new();
    for (p, prefix, who) in checks {
        seen.push((media_of(p, prefix, who), who));
    }
    for (p, prefix, who) in [
        (&mut uas, "RESUMEMEDIA ", "re-INVITE (resume) to the callee"),
        (&mut uac, "RESUMEMEDIA ", "200 to the resume re-INVITE"),
    ] {
        seen.push((media_of(p, prefix, who), who));
    }
    for (addr, who) in &seen {
        assert_relay_addr(&d, *addr, who);
    }
    let (uac, uas) = (uac.wait(), uas.wait());
    uac.assert_success();
    uas.assert_success();
}

#[test]
fn daemon_answers_options() {
    let d = daemon(vec![alice()]);
    assert_eq!(
        e2e::sip_options(d.sip_addr(), Duration::from_secs(2)),
        Some(200)
    );
}
