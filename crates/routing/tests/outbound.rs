//! Outbound rules: matching, permissions, rewrites, fail-over, emergency.

mod common;

use common::*;
use routing::*;

/// Route `dialled` from `caller` on the shared plan at an open time.
fn out(caller: &str, dialled: &str) -> Decision {
    let r = Router::new(dialplan());
    route_at(
        &r,
        &from_ext(caller),
        dialled,
        open_time(),
        &all_registered(),
    )
}

#[test]
fn outbound_table() {
    // (caller, dialled, Ok(first trunk:number) or Err(code), because contains)
    let rows: [(&str, &str, Result<&str, u16>, &str); 16] = [
        (
            "1002",
            "0791234567",
            Ok("swisscom:0791234567"),
            "outbound_rule #1 'national'",
        ),
        // Too short for 'national' (10 digits) and no other rule takes it:
        // no such number for us.
        (
            "1002",
            "079123456",
            Err(404),
            "no outbound_rule matches 079123456",
        ),
        ("1002", "07912345678", Err(404), "no outbound_rule matches"),
        // Escape digit stripped.
        (
            "1002",
            "9555",
            Ok("backup:555"),
            "outbound_rule #2 'escape'",
        ),
        // E.164 national: strip "+41", prepend "0"; range 1001-1003 allowed.
        (
            "1003",
            "+41791234567",
            Ok("swisscom:0791234567"),
            "outbound_rule #3 'e164-ch'",
        ),
        // 1004 is outside 1001-1003: falls to the next rule, e164-world,
        // unrewritten; +41 is national, so no international permission needed.
        (
            "1004",
            "+41791234567",
            Ok("swisscom:+41791234567"),
            "outbound_rule #6 'e164-world'",
        ),
        // Premium rule only for 1004.
        (
            "1004",
            "09012345",
            Ok("anon:09012345"),
            "outbound_rule #4 'premium'",
        ),
        (
            "1002",
            "09012345",
            Err(403),
            "no outbound_rule allows 09012345 for 1002",
        ),
        // International with and without permission.
        (
            "1001",
            "0049301234567",
            Ok("swisscom:0049301234567"),
            "outbound_rule #5 'international'",
        ),
        (
            "1002",
            "0049301234567",
            Err(403),
            "0049301234567 is international, not permitted for 1002",
        ),
        (
            "1001",
            "+4930123456",
            Ok("swisscom:+4930123456"),
            "outbound_rule #6 'e164-world'",
        ),
        ("1002", "+4930123456", Err(403), "not permitted for 1002"),
        // 10 digits starting 00: 'national' matches by length but the number
        // is still international.
        (
            "1002",
            "0049301234",
            Err(403),
            "international, not permitted",
        ),
        // The escape digit cannot hide an international number.
        (
            "1002",
            "90049301234567",
            Err(403),
            "outbound_rule #2 'escape': 90049301234567 is international",
        ),
        (
            "1001",
            "90049301234567",
            Ok("backup:0049301234567"),
            "outbound_rule #2 'escape'",
        ),
        // Not an extension, no rule: 404.
        ("1002", "4711", Err(404), "no outbound_rule matches 4711"),
    ];
    for (caller, dialled, expect, because) in rows {
        let d = out(caller, dialled);
        match (&expect, &d) {
            (Ok(first), Decision::Plan(p)) => {
                assert_eq!(names(&p.steps[0]), [*first], "{caller} -> {dialled}")
            }
            (Err(code), Decision::Reject(r)) => {
                assert_eq!(r.code, *code, "{caller} -> {dialled}")
            }
            _ => panic!("{caller} -> {dialled}: unexpected {d:?}"),
        }
        assert!(
            d.because().contains(because),
            "{caller} -> {dialled}: {:?} lacks {because:?}",
            d.because()
        );
    }
}

#[test]
fn outbound_permission_by_rule_name() {
    let mut dp = dialplan();
    dp.extensions[1].outbound_rules = OutboundPermission::Only(vec!["escape".into()]);
    let r = Router::new(dp);
    let st = all_registered();
    let d = route_at(&r, &from_ext("1002"), "0791234567", open_time(), &st);
    assert_eq!(rejected(&d).code, 403);
    let d = route_at(&r, &from_ext("1002"), "90791234567", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["backup:0791234567"]);
}

#[test]
fn trunks_in_order_are_fail_over_steps() {
    let d = out("1002", "0791234567");
    let p = plan(&d);
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].timeout, None);
    for f in [Failure::TrunkFailure, Failure::NoAnswer] {
        let (rung, end) = walk(p, &[f]);
        assert_eq!(
            rung,
            [["swisscom:0791234567"], ["backup:0791234567"]],
            "{f:?}"
        );
        let Next::Reject(r) = end else { panic!() };
        assert_eq!(r.code, 503);
        assert!(r.because.contains("all trunks failed"));
    }
    // The callee's own busy or unknown number is relayed, not failed over.
    assert_eq!(p.steps[0].next(Failure::Busy), &Next::Relay);
    assert_eq!(p.steps[0].next(Failure::Unavailable), &Next::Relay);
    // Statuses map onto failure kinds as the rule says: 5xx and 408 fail over.
    for (code, f) in [
        (500, Failure::TrunkFailure),
        (503, Failure::TrunkFailure),
        (408, Failure::TrunkFailure),
        (486, Failure::Busy),
        (600, Failure::Busy),
        (603, Failure::Busy),
        (404, Failure::Unavailable),
        (480, Failure::Unavailable),
        (484, Failure::Unavailable),
    ] {
        assert_eq!(Failure::from_status(code), f, "{code}");
    }
    assert!(p.steps[1].because.contains("trunk 'backup' (2 of 2)"));
}

#[test]
fn full_trunks_are_skipped_and_all_full_is_503() {
    let r = Router::new(dialplan());
    let mut st = all_registered();
    st.trunk_calls.insert("swisscom".into(), 2);
    let d = route_at(&r, &from_ext("1002"), "0791234567", open_time(), &st);
    let p = plan(&d);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(names(&p.steps[0]), ["backup:0791234567"]);
    // e164-ch has only swisscom.
    let d = route_at(&r, &from_ext("1002"), "+41791234567", open_time(), &st);
    let rj = rejected(&d);
    assert_eq!(rj.code, 503);
    assert!(rj.because.contains("no trunk available"));
}

#[test]
fn caller_id_follows_trunk_presentation() {
    let ext_target = |d: &Decision| plan(d).steps[0].targets[0].clone();
    // swisscom presents the extension's caller ID, or the main number.
    assert_eq!(
        ext_target(&out("1001", "0791234567")),
        Target::External {
            trunk: "swisscom".into(),
            number: "0791234567".into(),
            caller_id: Some("+41225550101".into()),
            privacy: false
        }
    );
    let Target::External { caller_id, .. } = ext_target(&out("1002", "0791234567")) else {
        panic!()
    };
    assert_eq!(caller_id.as_deref(), Some("+41225550100"));
    // backup: always the main number.
    let Target::External { caller_id, .. } = ext_target(&out("1001", "9555")) else {
        panic!()
    };
    assert_eq!(caller_id.as_deref(), Some("+41225550199"));
    // anon: withheld.
    let Target::External { privacy, .. } = ext_target(&out("1004", "09012345")) else {
        panic!()
    };
    assert!(privacy);
}

#[test]
fn emergency_numbers_route_for_callers_without_any_permission() {
    let mut dp = dialplan();
    // 1005 may use no rule at all, and no international.
    dp.extensions[4].outbound_rules = OutboundPermission::Only(vec![]);
    // The first rule with a trunk is one 1005 is not in, and it rewrites.
    let mut first = OutboundRule::new("staff-only", "7", &["anon", "swisscom"]);
    first.extensions = vec!["1001".parse().unwrap()];
    first.strip = 1;
    first.prepend = "0".into();
    dp.outbound_rules
        .insert(0, OutboundRule::new("no-trunk", "", &[]));
    dp.outbound_rules.insert(1, first);
    let r = Router::new(dp);
    let mut st = all_registered();
    // Even a full trunk is tried for an emergency call.
    st.trunk_calls.insert("swisscom".into(), 99);
    for number in ["112", "117", "118", "144"] {
        let d = route_at(&r, &from_ext("1005"), number, open_time(), &st);
        let p = plan(&d);
        assert_eq!(
            p.steps.iter().map(names).collect::<Vec<_>>(),
            [[format!("anon:{number}")], [format!("swisscom:{number}")]],
        );
        // Never anonymous: the emergency service needs the number.
        assert!(matches!(
            &p.steps[0].targets[0],
            Target::External {
                privacy: false,
                caller_id: Some(_),
                ..
            }
        ));
        assert_eq!(
            p.because,
            format!("emergency {number} via outbound_rule #2 'staff-only' trunk 'anon' (1 of 2)")
        );
        let (_, end) = walk(p, &[Failure::TrunkFailure]);
        assert_eq!(end_code(&end), Some(503));
    }
    // Not an emergency number: the same caller is refused.
    let d = route_at(&r, &from_ext("1005"), "0791234567", open_time(), &st);
    assert_eq!(rejected(&d).code, 403);
}

#[test]
fn emergency_numbers_are_configurable_and_unroutable_is_503() {
    let mut dp = dialplan();
    dp.emergency_numbers = vec!["911".into()];
    let r = Router::new(dp.clone());
    let st = all_registered();
    let d = route_at(&r, &from_ext("1002"), "911", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["swisscom:911"]);
    // 112 is no longer special: no rule matches it.
    let d = route_at(&r, &from_ext("1002"), "112", open_time(), &st);
    assert_eq!(rejected(&d).code, 404);
    dp.outbound_rules.clear();
    let r = Router::new(dp);
    let d = route_at(&r, &from_ext("1002"), "911", open_time(), &st);
    assert_eq!(rejected(&d).code, 503);
}

#[test]
fn rewrite_helpers() {
    let mut rule = OutboundRule::new("r", "0", &["t"]);
    rule.strip = 1;
    rule.prepend = "+41".into();
    assert_eq!(rule.rewrite("0791234567"), "+41791234567");
    rule.strip = 20;
    assert_eq!(rule.rewrite("0791234567"), "+41");
    rule.strip = 0;
    rule.prepend.clear();
    assert_eq!(rule.rewrite("0791234567"), "0791234567");
}

#[test]
fn number_ranges() {
    let r: NumberRange = "1001-1099".parse().unwrap();
    for (n, inside) in [
        ("1001", true),
        ("1050", true),
        ("1099", true),
        ("1000", false),
        ("1100", false),
        ("10500", false),
        ("105", false),
        ("10a1", false),
    ] {
        assert_eq!(r.contains(n), inside, "{n}");
    }
    let r: NumberRange = "100-1999".parse().unwrap();
    assert!(r.contains("150") && r.contains("1500") && !r.contains("99"));
    let single: NumberRange = "1004".parse().unwrap();
    assert!(single.contains("1004") && !single.contains("1005"));
    for bad in ["", "1099-1001", "a-b", "1-", "-5"] {
        assert!(bad.parse::<NumberRange>().is_err(), "{bad:?}");
    }
}

#[test]
fn a_prepend_cannot_make_an_international_number_for_the_unpermitted() {
    let mut dp = dialplan();
    let mut eight = OutboundRule::new("eight", "8", &["backup"]);
    eight.strip = 1;
    eight.prepend = "0".into();
    dp.outbound_rules.insert(0, eight);
    // With a national prefix "+41" as a prepend: still national.
    let mut plus = OutboundRule::new("plus", "7", &["backup"]);
    plus.strip = 1;
    plus.prepend = "+41".into();
    dp.outbound_rules.insert(0, plus);
    let r = Router::new(dp);
    let st = all_registered();
    let d = route_at(&r, &from_ext("1002"), "8049301234567", open_time(), &st);
    let rj = rejected(&d);
    assert_eq!(rj.code, 403);
    assert!(rj.because.contains("international"), "{}", rj.because);
    let d = route_at(&r, &from_ext("1002"), "8791234567", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["backup:0791234567"]);
    let d = route_at(&r, &from_ext("1001"), "8049301234567", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["backup:0049301234567"]);
    let d = route_at(&r, &from_ext("1002"), "7791234567", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["backup:+41791234567"]);
}
