//! The SIPp scenarios checked against each other, without the daemon: each
//! caller scenario runs against a mock in tests/sipp/mock that plays the
//! daemon's side of the flow (challenge, answer, ...), each callee scenario
//! against a mock B-leg. This keeps the scenarios known good, so a failure
//! of tests/sipp.rs points at the daemon, not at the scenario.

use std::time::Duration;

use e2e::{Ports, Sipp, SippOutcome, TempDir, LOOPBACK};

/// Run `server` (listening) and `client` (sending to it) and return both.
fn pair(
    server: &str,
    server_keys: &[(&str, &str)],
    client: &str,
    client_keys: &[(&str, &str)],
) -> (SippOutcome, SippOutcome) {
    let dir = TempDir::new("selftest");
    let port = Ports::sip();
    let mut s = Sipp::new(dir.path(), server, port, None).limit(Duration::from_secs(30));
    for (k, v) in server_keys {
        s = s.key(k, v);
    }
    let mut s = s.spawn();
    s.wait_bound(port);
    let mut c = Sipp::new(
        dir.path(),
        client,
        Ports::sip(),
        Some((LOOPBACK, port).into()),
    )
    .limit(Duration::from_secs(30));
    for (k, v) in client_keys {
        c = c.key(k, v);
    }
    let c = c.run();
    (s.wait(), c)
}

const CALLER: &[(&str, &str)] = &[("ext", "1001"), ("rtp_port", "40100")];
const CALLEE: &[(&str, &str)] = &[("rtp_port", "40200")];

fn caller_against(mock: &str, scenario: &str) -> (SippOutcome, SippOutcome) {
    let dir = TempDir::new("selftest-caller");
    let port = Ports::sip();
    let mut m = Sipp::new(dir.path(), mock, port, None).spawn();
    m.wait_bound(port);
    let mut c = Sipp::new(
        dir.path(),
        scenario,
        Ports::sip(),
        Some((LOOPBACK, port).into()),
    )
    .service("1002")
    .auth("1001", "Kq7-vLm2-Wx9z");
    for (k, v) in CALLER {
        c = c.key(k, v);
    }
    let c = c.run();
    (m.wait(), c)
}

#[track_caller]
fn both_pass((a, b): (SippOutcome, SippOutcome)) {
    a.assert_success();
    b.assert_success();
}

#[test]
fn register_against_mock_registrar() {
    let keys: &[(&str, &str)] = &[("contact_port", "25999")];
    let dir = TempDir::new("selftest-register");
    for (mock, scenario, ok) in [
        ("mock/mock_registrar_ok.xml", "register.xml", true),
        ("mock/mock_registrar_fail.xml", "register_fail.xml", true),
        // A registrar that keeps refusing must fail register.xml.
        ("mock/mock_registrar_fail.xml", "register.xml", false),
    ] {
        let port = Ports::sip();
        let mut m = Sipp::new(dir.path(), mock, port, None).spawn();
        m.wait_bound(port);
        let mut c = Sipp::new(
            dir.path(),
            scenario,
            Ports::sip(),
            Some((LOOPBACK, port).into()),
        )
        .service("1002")
        .auth("1002", "Rt4-pNs8-Yh3c");
        for (k, v) in keys {
            c = c.key(k, v);
        }
        let c = c.run();
        let _ = m.wait();
        if ok {
            c.assert_success();
        } else {
            c.assert_failure();
        }
    }
}

#[test]
fn uac_call_against_mock() {
    let (m, c) = caller_against("mock/mock_pbx_call.xml", "uac_call.xml");
    m.assert_success();
    c.assert_success();
    assert!(c.log.contains("MEDIA 127.0.0.1 40666"), "{}", c.report());
}

#[test]
fn uac_cancel_against_mock() {
    both_pass(caller_against("mock/mock_pbx_cancel.xml", "uac_cancel.xml"));
}

#[test]
fn uac_final_answers_against_mocks() {
    both_pass(caller_against("mock/mock_pbx_486.xml", "uac_busy.xml"));
    both_pass(caller_against("mock/mock_pbx_404.xml", "uac_unknown.xml"));
    both_pass(caller_against(
        "mock/mock_pbx_480.xml",
        "uac_unavailable.xml",
    ));
    // The wrong final answer must fail the scenario.
    let (_, c) = caller_against("mock/mock_pbx_480.xml", "uac_busy.xml");
    c.assert_failure();
}

#[test]
fn uac_hold_against_mock() {
    both_pass(caller_against(
        "mock/mock_pbx_reinvite.xml",
        "uac_reinvite_hold.xml",
    ));
}

#[test]
fn uas_scenarios_against_mock_b_legs() {
    both_pass(pair(
        "uas_answer.xml",
        CALLEE,
        "mock/mock_uac_plain.xml",
        &[],
    ));
    both_pass(pair("uas_bye.xml", CALLEE, "mock/mock_uac_bye.xml", &[]));
    both_pass(pair("uas_busy.xml", CALLEE, "mock/mock_uac_486.xml", &[]));
    both_pass(pair(
        "uas_ring_cancel.xml",
        CALLEE,
        "mock/mock_uac_cancel.xml",
        &[],
    ));
    let (s, c) = pair(
        "uas_reinvite.xml",
        CALLEE,
        "mock/mock_uac_reinvite.xml",
        &[],
    );
    s.assert_success();
    c.assert_success();
    assert!(s.log.contains("HOLDDIR sendonly"), "{}", s.report());
    // A callee that wants 486 acknowledged must fail when the call is answered.
    let (s, _) = pair("uas_answer.xml", CALLEE, "mock/mock_uac_486.xml", &[]);
    s.assert_failure();
}
