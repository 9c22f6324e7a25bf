//! Bandwidth admission end to end: the real daemon with `[admission]`,
//! `[[site]]` links and pinned extensions, driven by SIPp, its reservations
//! read back from the admin API (`GET /status`).
//!
//! A G.711 call costs 87.2 kbps + 5% RTCP = 91.6 kbps per direction, raised
//! to the 100 kbps floor; it is reserved on the caller's site and on the
//! callee's (twice on one site when both phones are there).

use std::time::Duration;

use e2e::rtp::{exchange, RtpEndpoint};
use e2e::status::{SiteStatus, Status};
use e2e::{
    alice, bob, parse_media, register, Daemon, DaemonConfig, Extension, Ports, Sipp, SippOutcome,
    SippProcess, TempDir,
};

const LOG_WAIT: Duration = Duration::from_secs(20);
const STATUS_WAIT: Duration = Duration::from_secs(5);
/// What one G.711 call reserves per direction on each of its sites.
const G711_KBPS: u64 = 100;

/// `[admission]` and one `[[site]]` per `(name, networks, up/down kbps)`.
fn sites_toml(sites: &[(&str, &str, u32)]) -> String {
    let mut s = String::from("\n[admission]\nfloor_kbps = 100\n");
    for (name, networks, kbps) in sites {
        s.push_str(&format!(
            "\n[[site]]\nname = \"{name}\"\nnetworks = [\"{networks}\"]\n\
             down_kbps = {kbps}\nup_kbps = {kbps}\n"
        ));
    }
    s
}

/// Networks for sites whose phones are all pinned: documentation ranges
/// that no test phone uses, so only the pins place the calls.
const OFFICE_NET: &str = "192.0.2.0/24";
const DC_NET: &str = "198.51.100.0/24";

fn start(extensions: Vec<Extension>, sites: &[(&str, &str, u32)], ring_timeout: u32) -> Daemon {
    start_with(extensions, sites_toml(sites), ring_timeout)
}

fn start_with(extensions: Vec<Extension>, extra_toml: String, ring_timeout: u32) -> Daemon {
    let mut config = DaemonConfig::new(extensions).with_admin();
    config.ring_timeout = ring_timeout;
    config.extra = extra_toml;
    match Daemon::start(config) {
        Ok(d) => d,
        Err(e) => panic!("daemon did not start: {e}"),
    }
}

/// Phone `number`, for callees of overlapping calls: an extension takes one
/// call at a time (a second one finds it busy), so each call gets its own.
fn phone(number: u32) -> Extension {
    Extension::new(
        &number.to_string(),
        &format!("Phone {number}"),
        // The password policy refuses one that contains the number.
        &format!("Zb5-qWr7-{}", number_as_letters(number)),
    )
}

fn number_as_letters(number: u32) -> String {
    number
        .to_string()
        .bytes()
        .map(|d| char::from(b'k' + (d - b'0')))
        .collect()
}

/// One SIPp `scenario` listening on a port of its own, answering `calls`
/// calls for every extension of `exts` (all registered with it as contact).
fn callee(
    dir: &TempDir,
    d: &Daemon,
    scenario: &str,
    exts: &[Extension],
    calls: u32,
    rtp_port: u16,
) -> SippProcess {
    let port = Ports::sip();
    let mut uas = Sipp::new(dir.path(), scenario, port, None)
        .calls(calls)
        .concurrent(calls.max(1) * 2)
        .key("rtp_port", rtp_port)
        .limit(Duration::from_secs(60))
        .spawn();
    uas.wait_bound(port);
    for ext in exts {
        register(dir.path(), d, ext, port).assert_success();
    }
    uas
}

/// A caller dialling `number` as `ext` with `scenario`, holding answered
/// calls for `hold_ms`.
fn caller(
    dir: &TempDir,
    d: &Daemon,
    scenario: &str,
    ext: &Extension,
    number: &str,
    rtp_port: u16,
    hold_ms: u32,
) -> Sipp {
    Sipp::new(dir.path(), scenario, Ports::sip(), Some(d.sip_addr()))
        .service(number)
        .auth(&ext.number, &ext.password)
        .key("ext", &ext.number)
        .key("rtp_port", rtp_port)
        .arg("-d")
        .arg(hold_ms.to_string())
}

/// A port for SDP that nobody sends to (calls whose media is not checked).
fn idle_rtp_port() -> u16 {
    Ports::rtp_block(2).0
}

fn site<'a>(s: &'a Status, name: &str) -> &'a SiteStatus {
    s.site(name)
        .unwrap_or_else(|| panic!("no site `{name}` in the status: {}", s.raw))
}

/// `(up, down, calls)` of a site.
fn load(s: &Status, name: &str) -> (u64, u64, u64) {
    let x = site(s, name);
    (x.up_reserved_kbps, x.down_reserved_kbps, x.calls)
}

/// Wait until the status satisfies `cond`; fail with `what` and the last
/// status otherwise.
#[track_caller]
fn expect_status(d: &Daemon, what: &str, cond: impl Fn(&Status) -> bool) -> Status {
    d.wait_status(STATUS_WAIT, cond)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Every site back to nothing reserved and no call left.
#[track_caller]
fn expect_all_released(d: &Daemon, after: &str) -> Status {
    expect_status(
        d,
        &format!("after {after} every reservation must be released"),
        |s| s.total_reserved() == (0, 0, 0) && s.stats.active_calls == 0,
    )
}

#[track_caller]
fn wait_line(p: &mut SippProcess, prefix: &str, who: &str) -> String {
    p.wait_log(prefix, LOG_WAIT)
        .unwrap_or_else(|| panic!("{who} never logged {prefix:?}"))
}

/// The Warning of a refusal names RFC 3261's code 370, the cause and the site.
#[track_caller]
fn assert_bandwidth_warning(warning: &str, site: &str) {
    // SIPp keeps the blank after the header's colon.
    let warning = warning.trim();
    assert!(
        warning.starts_with("370 "),
        "Warning must carry code 370: {warning:?}"
    );
    assert!(
        warning.contains("Insufficient bandwidth"),
        "Warning must say why: {warning:?}"
    );
    assert!(
        warning.contains(site),
        "Warning must name site `{site}`: {warning:?}"
    );
}

fn count_lines(text: &str, prefix: &str) -> usize {
    text.lines()
        .filter(|l| l.trim_start().starts_with(prefix))
        .count()
}

#[test]
fn call_within_one_site_reserves_its_link_twice() {
    let office = |e: Extension| e.pinned("office");
    let d = start(
        vec![office(alice()), office(bob())],
        &[("office", OFFICE_NET, 1000)],
        60,
    );
    let dir = TempDir::new("adm-same-site");
    let before = expect_status(&d, "a fresh daemon reserves nothing", |s| {
        s.total_reserved() == (0, 0, 0)
    });
    assert_eq!(site(&before, "office").up_capacity_kbps, Some(1000));
    assert_eq!(site(&before, "office").down_capacity_kbps, Some(1000));

    let mut uas = callee(&dir, &d, "adm_uas_answer.xml", &[bob()], 1, idle_rtp_port());
    let mut uac = caller(
        &dir,
        &d,
        "adm_uac_call.xml",
        &alice(),
        "1002",
        idle_rtp_port(),
        3000,
    )
    .spawn();
    wait_line(&mut uac, "ANSWERED ", "caller");
    wait_line(&mut uas, "INVITE ", "callee");

    let up = expect_status(
        &d,
        "a call between two office phones reserves 2 x 100 kbps each way on office",
        |s| {
            let (u, dn, _) = load(s, "office");
            u == 2 * G711_KBPS && dn == 2 * G711_KBPS
        },
    );
    assert!(
        load(&up, "office").2 >= 1,
        "office counts the call: {}",
        up.raw
    );
    assert_eq!(up.stats.active_calls, 1, "{}", up.raw);
    assert_eq!(
        up.total_reserved().0,
        2 * G711_KBPS,
        "no other site may hold anything: {}",
        up.raw
    );

    uac.wait().assert_success();
    uas.wait().assert_success();
    let after = expect_all_released(&d, "BYE");
    assert_eq!(after.stats.admission_refusals, 0, "{}", after.raw);
}

#[test]
fn fourth_call_over_the_office_link_is_refused_until_one_ends() {
    // Call n dials 200n, pinned to dc.
    let callees: Vec<Extension> = (2001..=2005).map(|n| phone(n).pinned("dc")).collect();
    let mut exts = vec![alice().pinned("office")];
    exts.extend(callees.iter().cloned());
    let d = start(
        exts,
        &[("office", OFFICE_NET, 300), ("dc", DC_NET, 100_000)],
        60,
    );
    let dir = TempDir::new("adm-limit");
    // Calls 1, 2, 3 and 5 reach the callee; call 4 must not.
    let uas = callee(&dir, &d, "adm_uas_answer.xml", &callees, 4, idle_rtp_port());
    let call = |n: u32, hold_ms: u32| {
        caller(
            &dir,
            &d,
            "adm_uac_call.xml",
            &alice(),
            &(2000 + n).to_string(),
            idle_rtp_port(),
            hold_ms,
        )
        .spawn()
    };
    // Call 1 ends first, calls 2 and 3 outlast the refusal and call 5.
    let mut first = call(1, 6000);
    wait_line(&mut first, "ANSWERED ", "call 1");
    let mut others = Vec::new();
    for n in 2..=3 {
        let mut p = call(n, 14000);
        wait_line(&mut p, "ANSWERED ", &format!("call {n}"));
        others.push(p);
    }
    let full = expect_status(&d, "three calls fill office's 300 kbps", |s| {
        load(s, "office") == (3 * G711_KBPS, 3 * G711_KBPS, 3)
    });
    assert_eq!(
        load(&full, "dc"),
        (3 * G711_KBPS, 3 * G711_KBPS, 3),
        "{}",
        full.raw
    );

    let refused = caller(
        &dir,
        &d,
        "adm_uac_refused.xml",
        &alice(),
        "2004",
        idle_rtp_port(),
        0,
    )
    .run();
    refused.assert_success();
    let warning = refused
        .log
        .lines()
        .find_map(|l| l.trim().strip_prefix("WARNING "))
        .unwrap_or_else(|| panic!("no Warning logged\n{}", refused.report()))
        .to_string();
    assert_bandwidth_warning(&warning, "office");
    assert!(
        warning.contains("need 100 kbps up, 0 free"),
        "Warning must say what was missing: {warning:?}"
    );

    let after_refusal = expect_status(&d, "the refusal is counted on office", |s| {
        site(s, "office").refusals >= 1 && s.stats.admission_refusals >= 1
    });
    assert_eq!(
        load(&after_refusal, "office"),
        (3 * G711_KBPS, 3 * G711_KBPS, 3),
        "a refused call reserves nothing: {}",
        after_refusal.raw
    );
    assert_eq!(
        load(&after_refusal, "dc"),
        (3 * G711_KBPS, 3 * G711_KBPS, 3),
        "a refused call reserves nothing on the callee's site either: {}",
        after_refusal.raw
    );
    assert_eq!(after_refusal.stats.active_calls, 3, "{}", after_refusal.raw);

    first.wait().assert_success();
    expect_status(&d, "call 1's hang-up frees 100 kbps on office", |s| {
        load(s, "office") == (2 * G711_KBPS, 2 * G711_KBPS, 2)
    });

    let mut fifth = call(5, 1500);
    wait_line(&mut fifth, "ANSWERED ", "call 5 (after call 1 hung up)");
    expect_status(&d, "call 5 takes the freed room", |s| {
        load(s, "office") == (3 * G711_KBPS, 3 * G711_KBPS, 3)
    });
    fifth.wait().assert_success();
    for p in others {
        p.wait().assert_success();
    }
    let uas = uas.wait();
    uas.assert_success();
    assert_eq!(
        count_lines(&uas.log, "INVITE "),
        4,
        "the refused call must not ring the callee\n{}",
        uas.report()
    );
    let end = expect_all_released(&d, "every call hung up");
    assert_eq!(site(&end, "office").refusals, 1, "{}", end.raw);
    assert_eq!(end.stats.admission_refusals, 1, "{}", end.raw);
}

#[test]
fn reinvite_over_the_limit_is_refused_and_the_call_goes_on() {
    // Room for one G.711 call, not for one with two audio lines (184 kbps).
    let d = start(
        vec![alice().pinned("office"), bob().pinned("dc")],
        &[("office", OFFICE_NET, 150), ("dc", DC_NET, 100_000)],
        60,
    );
    let dir = TempDir::new("adm-reinvite");
    let (a_rtp, b_rtp) = (RtpEndpoint::bind(b'A'), RtpEndpoint::bind(b'B'));
    let mut uas = callee(&dir, &d, "adm_uas_answer.xml", &[bob()], 1, b_rtp.port());
    let mut uac = caller(
        &dir,
        &d,
        "adm_uac_reinvite_refused.xml",
        &alice(),
        "1002",
        a_rtp.port(),
        4000,
    )
    .key("rtp_port2", idle_rtp_port())
    .spawn();
    let a_to = wait_line(&mut uac, "ANSWERED ", "caller");
    let b_to = wait_line(&mut uas, "INVITE ", "callee");
    let (a_to, b_to) = (
        parse_media(&a_to).unwrap_or_else(|| panic!("bad media line {a_to:?}")),
        parse_media(&b_to).unwrap_or_else(|| panic!("bad media line {b_to:?}")),
    );

    let warning = wait_line(&mut uac, "REINVITE_REFUSED ", "caller (re-INVITE)");
    assert_bandwidth_warning(&warning, "office");
    let during = expect_status(&d, "the refused re-offer is counted", |s| {
        site(s, "office").refusals >= 1 && s.stats.admission_refusals >= 1
    });
    assert_eq!(
        load(&during, "office"),
        (G711_KBPS, G711_KBPS, 1),
        "the call keeps its reservation, no more, no less: {}",
        during.raw
    );
    assert_eq!(during.stats.active_calls, 1, "{}", during.raw);

    // The call goes on: media still flows both ways through the relay.
    let x = exchange(&a_rtp, a_to, &b_rtp, b_to, 25, Duration::from_millis(20));
    for (dir, s) in [("caller->callee", &x.a_to_b), ("callee->caller", &x.b_to_a)] {
        assert!(
            s.received >= 15,
            "{dir}: only {} of {} RTP packets crossed the relay after the refused re-INVITE",
            s.received,
            s.sent
        );
    }

    let uac = uac.wait();
    uac.assert_success();
    // The callee never saw the refused re-INVITE (its scenario would fail).
    uas.wait().assert_success();
    assert_eq!(count_lines(&uac.log, "HUNGUP "), 1, "{}", uac.report());
    expect_all_released(&d, "BYE following a refused re-INVITE");
}

/// One caller at office, one callee at dc that rings and never answers.
fn ringing_call(name: &str, caller_scenario: &str, hold_ms: u32) -> (Daemon, SippOutcome) {
    let d = start(
        vec![alice().pinned("office"), bob().pinned("dc")],
        &[("office", OFFICE_NET, 1000), ("dc", DC_NET, 1000)],
        2,
    );
    let dir = TempDir::new(name);
    let uas = callee(&dir, &d, "adm_uas_ring.xml", &[bob()], 1, idle_rtp_port());
    let mut uac = caller(
        &dir,
        &d,
        caller_scenario,
        &alice(),
        "1002",
        idle_rtp_port(),
        hold_ms,
    )
    .spawn();
    wait_line(&mut uac, "RINGING ", "caller");
    let ringing = expect_status(&d, "a ringing call holds its reservation", |s| {
        load(s, "office") == (G711_KBPS, G711_KBPS, 1) && load(s, "dc") == (G711_KBPS, G711_KBPS, 1)
    });
    assert_eq!(ringing.stats.active_calls, 1, "{}", ringing.raw);
    let uac = uac.wait();
    uac.assert_success();
    let uas = uas.wait();
    uas.assert_success();
    assert_eq!(
        count_lines(&uas.log, "CANCELLED "),
        1,
        "the callee's leg must be cancelled\n{}",
        uas.report()
    );
    (d, uac)
}

#[test]
fn cancel_releases_the_reservation() {
    let (d, uac) = ringing_call("adm-cancel", "adm_uac_cancel.xml", 800);
    assert_eq!(count_lines(&uac.log, "CANCELLED "), 1, "{}", uac.report());
    expect_all_released(&d, "CANCEL");
}

#[test]
fn ring_timeout_releases_the_reservation() {
    let (d, uac) = ringing_call("adm-ring-timeout", "adm_uac_ring_timeout.xml", 0);
    assert_eq!(count_lines(&uac.log, "TIMEOUT "), 1, "{}", uac.report());
    expect_all_released(&d, "the ring timeout");
}

#[test]
fn simultaneous_calls_get_exactly_the_room_there_is() {
    const ROOM: usize = 3;
    // Both phones are found at office by their address (no pins): each call
    // reserves office twice, so 600 kbps is room for 3 calls.
    let callees: Vec<Extension> = (1..=2 * ROOM as u32).map(|n| phone(2000 + n)).collect();
    let mut exts = vec![alice()];
    exts.extend(callees.iter().cloned());
    let d = start(exts, &[("office", "127.0.0.0/8", (ROOM as u32) * 200)], 60);
    let dir = TempDir::new("adm-burst");
    let uas = callee(
        &dir,
        &d,
        "adm_uas_answer.xml",
        &callees,
        ROOM as u32,
        idle_rtp_port(),
    );
    let csv = dir.join("callees.csv");
    let mut rows = String::from("SEQUENTIAL\n");
    for c in &callees {
        rows.push_str(&format!("{};\n", c.number));
    }
    std::fs::write(&csv, rows).unwrap();
    let uac = Sipp::new(
        dir.path(),
        "adm_uac_call_or_refused.xml",
        Ports::sip(),
        Some(d.sip_addr()),
    )
    .inf(&csv)
    .auth(&alice().number, &alice().password)
    .key("ext", &alice().number)
    .key("rtp_port", idle_rtp_port())
    .arg("-d")
    .arg("3000")
    .calls(2 * ROOM as u32)
    .concurrent(2 * ROOM as u32)
    .arg("-r")
    .arg("1000")
    .arg("-rp")
    .arg("1000")
    .spawn();
    let log_path = uac.log_path().to_path_buf();
    let decided = e2e::wait_until(LOG_WAIT, || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        count_lines(&log, "ANSWERED ") + count_lines(&log, "REFUSED ") == 2 * ROOM
    });
    let peak = decided.then(|| {
        expect_status(&d, "the admitted calls fill office exactly", |s| {
            let (u, dn, _) = load(s, "office");
            (u, dn) == (ROOM as u64 * 2 * G711_KBPS, ROOM as u64 * 2 * G711_KBPS)
        })
    });
    let uac = uac.wait();
    assert!(decided, "not every call got its answer\n{}", uac.report());
    uac.assert_success();
    let (answered, refused) = (
        count_lines(&uac.log, "ANSWERED "),
        count_lines(&uac.log, "REFUSED "),
    );
    assert_eq!(
        (answered, refused),
        (ROOM, ROOM),
        "exactly {ROOM} calls fit\n{}",
        uac.report()
    );
    for line in uac
        .log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("REFUSED "))
    {
        // "N 370 host \"Insufficient ...\""
        let warning = line.split_once(' ').map_or(line, |(_, w)| w);
        assert_bandwidth_warning(warning, "office");
    }
    if let Some(peak) = peak {
        assert_eq!(peak.stats.active_calls, ROOM as u64, "{}", peak.raw);
    }
    uas.wait().assert_success();
    let end = expect_all_released(&d, "the burst");
    assert_eq!(site(&end, "office").refusals, ROOM as u64, "{}", end.raw);
    assert_eq!(end.stats.admission_refusals, ROOM as u64, "{}", end.raw);
}

#[test]
fn call_limit_of_a_site_refuses_the_next_call() {
    let callees = [phone(2001).pinned("dc"), phone(2002).pinned("dc")];
    let mut exts = vec![alice().pinned("office")];
    exts.extend(callees.iter().cloned());
    // Bandwidth for many calls, but office takes one call at a time.
    let mut toml = sites_toml(&[("dc", DC_NET, 100_000)]);
    toml.push_str(&format!(
        "\n[[site]]\nname = \"office\"\nnetworks = [\"{OFFICE_NET}\"]\n\
         down_kbps = 100000\nup_kbps = 100000\nmax_calls = 1\n"
    ));
    let d = start_with(exts, toml, 60);
    let dir = TempDir::new("adm-max-calls");
    let uas = callee(&dir, &d, "adm_uas_answer.xml", &callees, 1, idle_rtp_port());
    let mut first = caller(
        &dir,
        &d,
        "adm_uac_call.xml",
        &alice(),
        "2001",
        idle_rtp_port(),
        3000,
    )
    .spawn();
    wait_line(&mut first, "ANSWERED ", "call 1");
    let up = expect_status(&d, "call 1 is counted on office", |s| {
        site(s, "office").calls == 1
    });
    assert_eq!(site(&up, "office").max_calls, Some(1), "{}", up.raw);

    let refused = caller(
        &dir,
        &d,
        "adm_uac_refused.xml",
        &alice(),
        "2002",
        idle_rtp_port(),
        0,
    )
    .run();
    refused.assert_success();
    let warning = refused
        .log
        .lines()
        .find_map(|l| l.trim().strip_prefix("WARNING "))
        .unwrap_or_else(|| panic!("no Warning logged\n{}", refused.report()))
        .trim()
        .to_string();
    assert!(warning.starts_with("370 "), "{warning:?}");
    assert!(
        warning.contains("office") && warning.to_lowercase().contains("call limit"),
        "Warning must name the call limit and the site: {warning:?}"
    );
    expect_status(&d, "the refusal is counted on office", |s| {
        site(s, "office").refusals == 1 && site(s, "office").calls == 1
    });

    first.wait().assert_success();
    uas.wait().assert_success();
    expect_all_released(&d, "call 1 hung up");
}
