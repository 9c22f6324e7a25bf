//! The dial plan end to end: trunk registration at a provider, inbound
//! calls by DID and office hours, outbound calls through trunks with
//! fail-over, ring groups, forwarding, and refusals (403/404).
//!
//! Providers are SIPp on their own loopback addresses (127.0.0.2, 127.0.0.3)
//! because the daemon tells a trunk from a phone (127.0.0.1) by the source
//! address. Scenarios log when things happened (`..._AT`, epoch seconds as
//! the last word) so timing and order across SIPp processes can be checked.
//!
//! The `selftest_*` tests run the scenarios against each other without the
//! daemon, so a failure of a daemon test points at the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use e2e::{
    alice, bob, register, Daemon, DaemonConfig, Extension, Ports, Sipp, SippOutcome, SippProcess,
    TempDir, LOOPBACK,
};

const PROVIDER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const BACKUP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const LOG_WAIT: Duration = Duration::from_secs(20);
const STATUS_WAIT: Duration = Duration::from_secs(5);
const DID: &str = "41225550100";
const DID_CLOSED: &str = "41225550101";
const EXTERNAL_CALLER: &str = "+41791112233";

fn carol() -> Extension {
    Extension::new("1003", "Carol", "Zb5-qWr7-Hnm3")
}

fn dave() -> Extension {
    Extension::new("1009", "Dave", "Gx8-wPe4-Lkd6")
}

/// An extension outside the `1001-1099` range the outbound rules allow.
fn erin() -> Extension {
    Extension::new("2001", "Erin", "Mf6-tYu3-Pqz8")
}

fn start(extensions: Vec<Extension>, extra: String) -> Daemon {
    let mut config = DaemonConfig::new(extensions).with_admin();
    config.extra = extra;
    match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => panic!("daemon did not start: {e}"),
    }
}

/// A `[[trunk]]` at `ip:port`; `more` adds lines to its table.
fn trunk(name: &str, ip: Ipv4Addr, port: u16, user: &str, password: &str, more: &str) -> String {
    format!(
        "\n[[trunk]]\nname = \"{name}\"\nhost = \"{ip}:{port}\"\ntransport = \"udp\"\n\
         username = \"{user}\"\npassword = \"{password}\"\n{more}"
    )
}

/// An outbound rule that takes national numbers (`0...`) to `+41...`, and
/// `[dialplan]` saying `+41`/`0041` are national (otherwise the rewritten
/// `+41...` counts as international and needs the permission).
fn national_rule(trunks: &str) -> String {
    format!(
        "\n[dialplan]\nnational_prefixes = [\"+41\", \"0041\"]\n\
         \n[[outbound_rule]]\nname = \"national\"\nprefix = \"0\"\nstrip = 1\n\
         prepend = \"+41\"\ntrunks = [{trunks}]\nextensions = [\"1001-1099\"]\n"
    )
}

/// A phone: `scenario` listening on its own port, registered as `ext`.
fn phone(dir: &TempDir, d: &Daemon, scenario: &str, ext: &Extension) -> SippProcess {
    let port = Ports::sip();
    let mut uas = Sipp::new(dir.path(), scenario, port, None)
        .key("rtp_port", Ports::rtp_block(2).0)
        .limit(Duration::from_secs(60))
        .spawn();
    uas.wait_bound(port);
    register(dir.path(), d, ext, port).assert_success();
    uas
}

/// A provider's SIPp listening on `ip:port`.
fn provider(
    dir: &TempDir,
    scenario: &str,
    ip: Ipv4Addr,
    port: u16,
    keys: &[(&str, &str)],
) -> SippProcess {
    let mut s = Sipp::new(dir.path(), scenario, port, None)
        .local_ip(ip)
        .key("rtp_port", Ports::rtp_block(2).0)
        .limit(Duration::from_secs(60));
    for (k, v) in keys {
        s = s.key(k, v);
    }
    let mut p = s.spawn();
    p.wait_bound(port);
    p
}

/// `ext` dials `number` with `scenario` (rt_uac_call.xml or rt_uac_refused.xml).
fn dial(dir: &TempDir, d: &Daemon, scenario: &str, ext: &Extension, number: &str) -> SippProcess {
    Sipp::new(dir.path(), scenario, Ports::sip(), Some(d.sip_addr()))
        .service(number)
        .auth(&ext.number, &ext.password)
        .key("ext", &ext.number)
        .key("rtp_port", Ports::rtp_block(2).0)
        .limit(Duration::from_secs(60))
        .spawn()
}

/// Value of the scenario log line `prefix` (the scenario has ended).
#[track_caller]
fn logged(out: &SippOutcome, prefix: &str) -> String {
    out.log
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("{} never logged {prefix:?}\n{}", out.name, out.report()))
}

/// Epoch seconds of a `..._AT` line (SIPp's `[timestamp]` ends with them).
#[track_caller]
fn at(out: &SippOutcome, prefix: &str) -> f64 {
    let line = logged(out, prefix);
    line.split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{}: no epoch seconds in {prefix}{line:?}", out.name))
}

#[track_caller]
fn assert_between(what: &str, secs: f64, lo: f64, hi: f64) {
    assert!(
        (lo..=hi).contains(&secs),
        "{what}: {secs:.2} s, expected {lo}-{hi} s"
    );
}

/// A phone that must not have been called: stop it and check.
#[track_caller]
fn assert_not_called(p: SippProcess, who: &str) {
    let out = p.stop();
    assert!(
        !out.log.contains("INVITE_AT") && !out.messages.contains("INVITE sip:"),
        "{who} must not have been called\n{}",
        out.report()
    );
}

#[track_caller]
fn expect_idle(d: &Daemon) {
    d.wait_status(STATUS_WAIT, |s| s.stats.active_calls == 0)
        .unwrap_or_else(|e| panic!("every call must have ended: {e}"));
}

// ---------------------------------------------------------------- daemon

#[test]
fn trunk_registers_with_digest_and_refreshes() {
    let dir = TempDir::new("rt-trunk-register");
    let port = Ports::sip();
    let mut registrar = provider(
        &dir,
        "rt_provider_registrar.xml",
        PROVIDER,
        port,
        &[("trunk_user", "pbxuser"), ("trunk_pass", "provider-secret")],
    );
    let d = start(
        vec![alice()],
        trunk(
            "provider",
            PROVIDER,
            port,
            "pbxuser",
            "provider-secret",
            "register = true\nexpires = 60\n",
        ) + &national_rule("\"provider\""),
    );
    let registered = registrar.wait_log("REGISTERED_AT", LOG_WAIT).is_some();
    let status = d.wait_status(STATUS_WAIT, |s| {
        s.trunk("provider")
            .is_some_and(|t| t.registration.starts_with("registered ("))
    });
    let out = registrar.wait();
    out.assert_success();
    assert!(registered, "the trunk never registered\n{}", out.report());
    let status = status.unwrap_or_else(|e| panic!("status must show the trunk registered: {e}"));
    let left = &status.trunk("provider").map(|t| t.registration.clone());
    assert!(
        left.as_deref().is_some_and(|r| r.ends_with(" s left)")),
        "registration: {left:?}"
    );

    assert_eq!(logged(&out, "FIRST_EXPIRES"), "60", "requested interval");
    let to = logged(&out, "FIRST_TO");
    assert!(
        to.contains(&format!("sip:pbxuser@{PROVIDER}")),
        "To must be the trunk's AOR: {to}"
    );
    let cseqs: Vec<u32> = out
        .log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CSEQ "))
        .map(|c| c.trim().parse().unwrap())
        .collect();
    assert_eq!(cseqs.len(), 3, "three REGISTERs: {cseqs:?}");
    assert!(
        cseqs.windows(2).all(|w| w[0] < w[1]),
        "CSeq must grow within the registration's Call-ID: {cseqs:?}"
    );
    // Granted 10 s: refreshed before it runs out, not right away.
    let refresh = at(&out, "REFRESH_AT") - at(&out, "REGISTERED_AT");
    assert_between("refresh after a 10 s grant", refresh, 2.0, 10.0);

    // The refresh was granted 10 s again: still registered.
    let after = d.status().unwrap();
    let t = after.trunk("provider").unwrap();
    assert!(
        t.registration.starts_with("registered ("),
        "after the refresh: {}",
        after.raw
    );
    assert_eq!(t.calls, 0);
}

#[test]
fn inbound_did_reaches_its_extension_and_out_of_hours_goes_elsewhere() {
    let dir = TempDir::new("rt-inbound");
    let trunk_port = Ports::sip();
    let hours: String = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .map(|day| format!("{day} = \"00:00-24:00\"\n"))
    .collect();
    let extra = format!(
        "{}\n[[office_hours]]\nname = \"always\"\ntime_zone = \"Europe/Zurich\"\n{hours}\
         \n[[office_hours]]\nname = \"never\"\ntime_zone = \"Europe/Zurich\"\n\
         \n[[inbound_rule]]\ndid = \"{DID}\"\nto = \"1001\"\nout_of_hours = \"1002\"\noffice_hours = \"always\"\n\
         \n[[inbound_rule]]\ndid = \"{DID_CLOSED}\"\nto = \"1001\"\nout_of_hours = \"1002\"\noffice_hours = \"never\"\n",
        trunk(
            "provider",
            PROVIDER,
            trunk_port,
            "pbxuser",
            "provider-secret",
            &format!("dids = [\"{DID}\", \"{DID_CLOSED}\"]\n"),
        ) + &national_rule("\"provider\""),
    );
    let d = start(vec![alice(), bob()], extra);
    let a = phone(&dir, &d, "rt_uas_answer.xml", &alice());
    let mut b = phone(&dir, &d, "rt_uas_answer.xml", &bob());

    let call = |did: &str| {
        Sipp::new(
            dir.path(),
            "rt_provider_uac_call.xml",
            Ports::sip(),
            Some(d.sip_addr()),
        )
        .local_ip(PROVIDER)
        .service(did)
        .key("caller", EXTERNAL_CALLER)
        .key("rtp_port", Ports::rtp_block(2).0)
        .run()
    };

    // Open: the DID rings 1001, without a digest challenge for the trunk.
    let open = call(DID);
    open.assert_success();
    let a = a.wait();
    a.assert_success();
    assert_eq!(logged(&a, "RURI"), "1001");
    let from = logged(&a, "FROM");
    assert!(
        from.contains(EXTERNAL_CALLER),
        "the extension must see the external caller: {from}"
    );
    assert!(
        b.wait_log("INVITE_AT", Duration::ZERO).is_none(),
        "1002 rang for an in-hours call"
    );

    // Closed: the other DID goes to its out-of-hours destination, 1002.
    let closed = call(DID_CLOSED);
    closed.assert_success();
    let b = b.wait();
    b.assert_success();
    assert_eq!(logged(&b, "RURI"), "1002");

    // The same INVITE from a phone's address is not the trunk's: it must be
    // challenged or refused, not routed.
    let stranger = Sipp::new(
        dir.path(),
        "rt_provider_uac_call.xml",
        Ports::sip(),
        Some(d.sip_addr()),
    )
    .service(DID)
    .key("caller", EXTERNAL_CALLER)
    .key("rtp_port", Ports::rtp_block(2).0)
    .arg("-timeout")
    .arg("5s")
    .run();
    assert!(
        ["401", "403", "407"]
            .iter()
            .any(|c| stranger.messages.contains(&format!("SIP/2.0 {c} "))),
        "an INVITE to the DID from outside the trunk must not go through unchallenged\n{}",
        stranger.report()
    );
    stranger.assert_failure();
    expect_idle(&d);
}

#[test]
fn outbound_call_fails_over_to_the_next_trunk() {
    let dir = TempDir::new("rt-outbound");
    let (p1_port, p2_port) = (Ports::sip(), Ports::sip());
    let p1 = provider(&dir, "rt_provider_uas_503.xml", PROVIDER, p1_port, &[]);
    let p2 = provider(
        &dir,
        "rt_provider_uas_auth_answer.xml",
        BACKUP,
        p2_port,
        &[("trunk_user", "pbxuser2"), ("trunk_pass", "backup-secret")],
    );
    let extra = format!(
        "{}{}{}",
        trunk(
            "provider",
            PROVIDER,
            p1_port,
            "pbxuser",
            "provider-secret",
            ""
        ),
        trunk("backup", BACKUP, p2_port, "pbxuser2", "backup-secret", ""),
        national_rule("\"provider\", \"backup\""),
    );
    let d = start(vec![alice()], extra);
    let caller = dial(&dir, &d, "rt_uac_call.xml", &alice(), "0791234567");
    let (caller, p1, p2) = (caller.wait(), p1.wait(), p2.wait());
    p1.assert_success();
    p2.assert_success();
    caller.assert_success();

    for (p, who) in [(&p1, "provider"), (&p2, "backup")] {
        assert_eq!(
            logged(p, "RURI"),
            "+41791234567",
            "{who}: the number rewritten by the rule"
        );
    }
    assert!(
        p2.log.contains("AUTH_OK"),
        "backup: digest\n{}",
        p2.report()
    );
    assert!(
        at(&p2, "INVITE_AT") >= at(&p1, "INVITE_AT"),
        "the backup trunk must be tried after the first one"
    );
    expect_idle(&d);
    // No caller ID configured (no main_number, no DID): the extension's number.
    for (p, who) in [(&p1, "provider"), (&p2, "backup")] {
        let from = logged(p, "FROM");
        assert!(
            from.contains("<sip:1001@"),
            "{who}: From must be the calling extension: {from}"
        );
    }
}

fn hunt_group(no_answer: &str) -> String {
    format!(
        "\n[[ring_group]]\nnumber = \"800\"\nstrategy = \"hunt\"\nmembers = [\"1001\", \"1002\"]\n\
         ring_seconds = 2\nno_answer = \"{no_answer}\"\n"
    )
}

#[test]
fn ring_group_hunts_to_the_next_member() {
    let dir = TempDir::new("rt-hunt");
    let d = start(vec![alice(), bob(), carol(), dave()], hunt_group("1003"));
    let first = phone(&dir, &d, "rt_uas_ring_cancel.xml", &alice());
    let second = phone(&dir, &d, "rt_uas_answer.xml", &bob());
    let fallback = phone(&dir, &d, "rt_uas_answer.xml", &carol());
    let caller = dial(&dir, &d, "rt_uac_call.xml", &dave(), "800");
    let (caller, first, second) = (caller.wait(), first.wait(), second.wait());
    first.assert_success();
    second.assert_success();
    caller.assert_success();
    assert_not_called(fallback, "the no-answer destination 1003");

    let rang = at(&first, "CANCEL_AT") - at(&first, "INVITE_AT");
    assert_between("1001 rang", rang, 1.5, 3.5);
    let next = at(&second, "INVITE_AT") - at(&first, "INVITE_AT");
    assert_between("1002 rang after 1001", next, 1.5, 3.5);
    expect_idle(&d);
}

#[test]
fn ring_group_without_answer_goes_to_its_no_answer_destination() {
    let dir = TempDir::new("rt-hunt-none");
    let d = start(vec![alice(), bob(), carol(), dave()], hunt_group("1003"));
    let first = phone(&dir, &d, "rt_uas_ring_cancel.xml", &alice());
    let second = phone(&dir, &d, "rt_uas_ring_cancel.xml", &bob());
    let fallback = phone(&dir, &d, "rt_uas_answer.xml", &carol());
    let caller = dial(&dir, &d, "rt_uac_call.xml", &dave(), "800");
    let (caller, first, second, fallback) =
        (caller.wait(), first.wait(), second.wait(), fallback.wait());
    first.assert_success();
    second.assert_success();
    fallback.assert_success();
    caller.assert_success();

    assert_eq!(logged(&fallback, "RURI"), "1003");
    let t1 = at(&first, "INVITE_AT");
    let t2 = at(&second, "INVITE_AT");
    let t3 = at(&fallback, "INVITE_AT");
    assert_between("1001 rang", at(&first, "CANCEL_AT") - t1, 1.5, 3.5);
    assert_between("1002 rang", at(&second, "CANCEL_AT") - t2, 1.5, 3.5);
    assert_between("1002 after 1001", t2 - t1, 1.5, 3.5);
    assert_between("1003 after 1002", t3 - t2, 1.5, 3.5);
    expect_idle(&d);
}

#[test]
fn busy_extension_forwards_to_its_busy_destination() {
    let dir = TempDir::new("rt-fwd-busy");
    let a = alice().with("forward_busy", "\"1003\"");
    let d = start(vec![a.clone(), bob(), carol()], String::new());
    let busy = phone(&dir, &d, "uas_busy.xml", &a);
    let target = phone(&dir, &d, "rt_uas_answer.xml", &carol());
    let caller = dial(&dir, &d, "rt_uac_call.xml", &bob(), "1001");
    let (caller, busy, target) = (caller.wait(), busy.wait(), target.wait());
    busy.assert_success();
    target.assert_success();
    caller.assert_success();
    assert_eq!(logged(&target, "RURI"), "1003");
    let from = logged(&target, "FROM");
    assert!(
        from.contains("sip:1002@"),
        "the forward keeps the caller: {from}"
    );
    expect_idle(&d);
}

#[test]
fn unanswered_extension_forwards_after_its_no_answer_time() {
    let dir = TempDir::new("rt-fwd-noanswer");
    let a = alice()
        .with("forward_no_answer", "\"1003\"")
        .with("forward_no_answer_seconds", 3);
    let d = start(vec![a.clone(), bob(), carol()], String::new());
    let ringing = phone(&dir, &d, "rt_uas_ring_cancel.xml", &a);
    let target = phone(&dir, &d, "rt_uas_answer.xml", &carol());
    let caller = dial(&dir, &d, "rt_uac_call.xml", &bob(), "1001");
    let (caller, ringing, target) = (caller.wait(), ringing.wait(), target.wait());
    ringing.assert_success();
    target.assert_success();
    caller.assert_success();
    assert_eq!(logged(&target, "RURI"), "1003");
    let rang = at(&ringing, "CANCEL_AT") - at(&ringing, "INVITE_AT");
    assert_between("1001 rang", rang, 2.5, 4.5);
    let forwarded = at(&target, "INVITE_AT") - at(&ringing, "INVITE_AT");
    assert_between("1003 called after 1001 gave up", forwarded, 2.5, 4.5);
    expect_idle(&d);
}

#[test]
fn forbidden_and_unknown_numbers_are_refused() {
    let dir = TempDir::new("rt-refused");
    let trunk_port = Ports::sip();
    let sentinel = provider(&dir, "rt_provider_uas_503.xml", PROVIDER, trunk_port, &[]);
    let extra = format!(
        "{}\n[[outbound_rule]]\nname = \"international\"\nprefix = \"00\"\n\
         trunks = [\"provider\"]\nextensions = [\"1001-1099\"]\n{}",
        trunk(
            "provider",
            PROVIDER,
            trunk_port,
            "pbxuser",
            "provider-secret",
            ""
        ),
        national_rule("\"provider\""),
    );
    let a = alice().with("international", false);
    let d = start(vec![a.clone(), erin()], extra);
    for (ext, number, code, why) in [
        (
            &a,
            "0049301234567",
            "403",
            "international without permission",
        ),
        (&a, "555", "404", "a number no rule matches"),
        (
            &erin(),
            "0791234567",
            "403",
            "an extension the rule does not list",
        ),
    ] {
        let out = dial(&dir, &d, "rt_uac_refused.xml", ext, number).wait();
        out.assert_success();
        assert_eq!(
            logged(&out, "FINAL"),
            code,
            "{} dialling {number}: {why}",
            ext.number
        );
    }
    assert_not_called(sentinel, "the provider");
    let s = d.status().unwrap();
    assert_eq!(s.stats.active_calls, 0, "{}", s.raw);
}

// -------------------------------------------------- scenarios against each other

/// Run `server` (listening on `ip:port`) and `client` (sending to it).
fn pair(server: Sipp, ip: Ipv4Addr, port: u16, client: Sipp) -> (SippOutcome, SippOutcome) {
    let mut s = server.local_ip(ip).spawn();
    s.wait_bound(port);
    let c = client.run();
    (s.wait_or_stop(Duration::from_secs(10)), c)
}

fn sipp(dir: &Path, scenario: &str, port: u16, remote: Option<SocketAddr>) -> Sipp {
    Sipp::new(dir, scenario, port, remote)
        .key("rtp_port", Ports::rtp_block(2).0)
        .limit(Duration::from_secs(30))
}

#[test]
fn selftest_provider_registrar_checks_the_digest() {
    let dir = TempDir::new("rt-self-registrar");
    for (password, ok) in [("provider-secret", true), ("not-the-secret", false)] {
        let port = Ports::sip();
        let server = sipp(dir.path(), "rt_provider_registrar.xml", port, None)
            .key("trunk_user", "pbxuser")
            .key("trunk_pass", "provider-secret");
        let client = sipp(
            dir.path(),
            "mock/rt_mock_trunk_register.xml",
            Ports::sip(),
            Some((PROVIDER, port).into()),
        )
        .service("pbxuser")
        .auth("pbxuser", password)
        .arg("-timeout")
        .arg("8s");
        let (registrar, pbx) = pair(server, PROVIDER, port, client);
        if ok {
            registrar.assert_success();
            pbx.assert_success();
            let refresh = at(&registrar, "REFRESH_AT") - at(&registrar, "REGISTERED_AT");
            assert_between("mock refresh", refresh, 2.5, 4.0);
        } else {
            assert!(registrar.log.contains("AUTH_BAD"), "{}", registrar.report());
            registrar.assert_failure();
        }
    }
}

#[test]
fn selftest_provider_checks_the_call_digest() {
    let dir = TempDir::new("rt-self-provider-auth");
    for (password, ok) in [("backup-secret", true), ("not-the-secret", false)] {
        let port = Ports::sip();
        let server = sipp(dir.path(), "rt_provider_uas_auth_answer.xml", port, None)
            .key("trunk_user", "pbxuser2")
            .key("trunk_pass", "backup-secret");
        let client = sipp(
            dir.path(),
            "rt_uac_call.xml",
            Ports::sip(),
            Some((BACKUP, port).into()),
        )
        .service("+41791234567")
        .auth("pbxuser2", password)
        .key("ext", "1001")
        .arg("-timeout")
        .arg("8s");
        let (p, c) = pair(server, BACKUP, port, client);
        if ok {
            p.assert_success();
            c.assert_success();
            assert_eq!(logged(&p, "RURI"), "+41791234567");
            assert!(p.log.contains("AUTH_OK"), "{}", p.report());
        } else {
            assert!(p.log.contains("AUTH_BAD"), "{}", p.report());
            p.assert_failure();
        }
    }
}

#[test]
fn selftest_phone_and_provider_scenarios() {
    let dir = TempDir::new("rt-self-calls");
    let d = dir.path();
    let to = |port| Some(SocketAddr::from((LOOPBACK, port)));
    let to_provider = |port| Some(SocketAddr::from((PROVIDER, port)));

    // A provider's call answered by a phone.
    let port = Ports::sip();
    let (phone, prov) = pair(
        sipp(d, "rt_uas_answer.xml", port, None),
        LOOPBACK,
        port,
        sipp(d, "rt_provider_uac_call.xml", Ports::sip(), to(port))
            .local_ip(PROVIDER)
            .service(DID)
            .key("caller", EXTERNAL_CALLER),
    );
    phone.assert_success();
    prov.assert_success();
    assert!(logged(&phone, "FROM").contains(EXTERNAL_CALLER));

    // A ringing phone cancelled.
    let port = Ports::sip();
    let (phone, pbx) = pair(
        sipp(d, "rt_uas_ring_cancel.xml", port, None),
        LOOPBACK,
        port,
        sipp(d, "mock/mock_uac_cancel.xml", Ports::sip(), to(port)),
    );
    phone.assert_success();
    pbx.assert_success();
    assert!(at(&phone, "CANCEL_AT") >= at(&phone, "INVITE_AT"));

    // A provider out of service.
    let port = Ports::sip();
    let (prov, pbx) = pair(
        sipp(d, "rt_provider_uas_503.xml", port, None),
        PROVIDER,
        port,
        sipp(
            d,
            "mock/rt_mock_uac_503.xml",
            Ports::sip(),
            to_provider(port),
        ),
    );
    prov.assert_success();
    pbx.assert_success();
    assert_eq!(logged(&prov, "RURI"), "+41791234567");
}

#[test]
fn selftest_caller_scenarios() {
    let dir = TempDir::new("rt-self-callers");
    let d = dir.path();
    let caller = |scenario: &str, port: u16| {
        sipp(d, scenario, Ports::sip(), Some((LOOPBACK, port).into()))
            .service("0791234567")
            .auth("1001", "Kq7-vLm2-Wx9z")
            .key("ext", "1001")
            .arg("-timeout")
            .arg("10s")
    };
    for (mock, scenario, final_code) in [
        (
            "mock/rt_mock_pbx_403.xml",
            "rt_uac_refused.xml",
            Some("403"),
        ),
        ("mock/mock_pbx_404.xml", "rt_uac_refused.xml", Some("404")),
        ("mock/mock_pbx_call.xml", "rt_uac_call.xml", None),
    ] {
        let port = Ports::sip();
        let (m, c) = pair(
            sipp(d, mock, port, None),
            LOOPBACK,
            port,
            caller(scenario, port),
        );
        m.assert_success();
        c.assert_success();
        if let Some(code) = final_code {
            assert_eq!(logged(&c, "FINAL"), code);
        }
    }
    // A refusal scenario must not accept an answered call.
    let port = Ports::sip();
    let (_, c) = pair(
        sipp(d, "mock/mock_pbx_call.xml", port, None),
        LOOPBACK,
        port,
        caller("rt_uac_refused.xml", port),
    );
    c.assert_failure();
}
