//! Extensions, forwarding chains and loop protection.

mod common;

use common::*;
use routing::*;

fn router_with(edit: impl FnOnce(&mut Dialplan)) -> Router {
    let mut dp = dialplan();
    edit(&mut dp);
    Router::new(dp)
}

fn ext_mut<'a>(dp: &'a mut Dialplan, n: &str) -> &'a mut Extension {
    dp.extensions.iter_mut().find(|e| e.number == n).unwrap()
}

#[test]
fn extension_without_no_answer_forward_rings_for_the_pbx_ring_timeout() {
    let r = Router::new(dialplan());
    let d = route_at(
        &r,
        &from_ext("1002"),
        "1001",
        open_time(),
        &all_registered(),
    );
    let p = plan(&d);
    assert_eq!(p.steps.len(), 1);
    assert_eq!(names(&p.steps[0]), ["1001"]);
    // No no-answer forward: the step has no timeout of its own.
    assert_eq!(p.steps[0].timeout, None);
    assert_eq!(p.because, "extension 1001");
    assert_eq!(end_code(p.steps[0].next(Failure::NoAnswer)), Some(480));
    assert_eq!(end_code(p.steps[0].next(Failure::Busy)), Some(486));
    assert_eq!(end_code(p.steps[0].next(Failure::Unavailable)), Some(480));
}

/// Each row: how the callee 1001 is set up and what the decision starts with.
#[test]
fn extension_states_table() {
    struct Row {
        name: &'static str,
        forwarding: Forwarding,
        dnd_config: bool,
        dnd_state: bool,
        registered: bool,
        active_calls: u32,
        /// Target names of the first step, or the reject code.
        expect: Result<Vec<&'static str>, u16>,
        because: &'static str,
    }
    let fw = |f: fn(&mut Forwarding)| {
        let mut x = Forwarding::default();
        f(&mut x);
        x
    };
    let rows = [
        Row {
            name: "idle rings",
            forwarding: Forwarding::default(),
            dnd_config: false,
            dnd_state: false,
            registered: true,
            active_calls: 0,
            expect: Ok(vec!["1001"]),
            because: "extension 1001",
        },
        Row {
            name: "unconditional wins over everything",
            forwarding: fw(|f| f.unconditional = Some(ext("1003"))),
            dnd_config: true,
            dnd_state: false,
            registered: false,
            active_calls: 0,
            expect: Ok(vec!["1003"]),
            because: "extension 1001 forward unconditional -> 1003",
        },
        Row {
            name: "dnd in config, busy forward",
            forwarding: fw(|f| f.busy = Some(ext("1003"))),
            dnd_config: true,
            dnd_state: false,
            registered: true,
            active_calls: 0,
            expect: Ok(vec!["1003"]),
            because: "extension 1001 forward busy (dnd) -> 1003",
        },
        Row {
            name: "dnd from the phone, no forward",
            forwarding: Forwarding::default(),
            dnd_config: false,
            dnd_state: true,
            registered: true,
            active_calls: 0,
            expect: Err(486),
            because: "extension 1001 busy (dnd), no forward",
        },
        Row {
            name: "not registered, forward",
            forwarding: fw(|f| f.not_registered = Some(ext("1004"))),
            dnd_config: false,
            dnd_state: false,
            registered: false,
            active_calls: 0,
            expect: Ok(vec!["1004"]),
            because: "extension 1001 forward not_registered -> 1004",
        },
        Row {
            name: "not registered, no forward",
            forwarding: fw(|f| f.busy = Some(ext("1004"))),
            dnd_config: false,
            dnd_state: false,
            registered: false,
            active_calls: 0,
            expect: Err(480),
            because: "extension 1001 not_registered, no forward",
        },
        Row {
            name: "all calls in use, busy forward",
            forwarding: fw(|f| f.busy = Some(ext("1005"))),
            dnd_config: false,
            dnd_state: false,
            registered: true,
            active_calls: 2,
            expect: Ok(vec!["1005"]),
            because: "extension 1001 forward busy -> 1005",
        },
        Row {
            name: "one call of two in use still rings",
            forwarding: fw(|f| f.busy = Some(ext("1005"))),
            dnd_config: false,
            dnd_state: false,
            registered: true,
            active_calls: 1,
            expect: Ok(vec!["1001"]),
            because: "extension 1001",
        },
        Row {
            name: "busy to hangup",
            forwarding: fw(|f| f.busy = Some(Destination::Hangup)),
            dnd_config: false,
            dnd_state: false,
            registered: true,
            active_calls: 2,
            expect: Err(486),
            because: "extension 1001 forward busy -> hangup",
        },
    ];
    for row in rows {
        let r = router_with(|dp| {
            let e = ext_mut(dp, "1001");
            e.forwarding = row.forwarding.clone();
            e.dnd = row.dnd_config;
        });
        let mut st = all_registered();
        if !row.registered {
            st.registered.remove("1001");
        }
        if row.dnd_state {
            st.dnd.insert("1001".into());
        }
        st.active_calls.insert("1001".into(), row.active_calls);
        let d = route_at(&r, &from_ext("1002"), "1001", open_time(), &st);
        match (&row.expect, &d) {
            (Ok(targets), Decision::Plan(p)) => {
                assert_eq!(names(&p.steps[0]), *targets, "{}", row.name)
            }
            (Err(code), Decision::Reject(rj)) => assert_eq!(rj.code, *code, "{}", row.name),
            _ => panic!("{}: unexpected {d:?}", row.name),
        }
        assert_eq!(d.because(), row.because, "{}", row.name);
    }
}

#[test]
fn no_answer_and_busy_forwards_are_later_steps() {
    let r = router_with(|dp| {
        let e = ext_mut(dp, "1001");
        e.forwarding.no_answer_seconds = 12;
        e.forwarding.no_answer = Some(ext("1002"));
        e.forwarding.busy = Some(ext("1003"));
        e.forwarding.not_registered = Some(Destination::Hangup);
    });
    let d = route_at(
        &r,
        &from_ext("1005"),
        "1001",
        open_time(),
        &all_registered(),
    );
    let p = plan(&d);
    let first = &p.steps[0];
    assert_eq!(names(first), ["1001"]);
    assert_eq!(first.timeout, secs(12));
    let Next::Step(na) = first.next(Failure::NoAnswer) else {
        panic!("no answer should go on")
    };
    assert_eq!(names(&p.steps[*na]), ["1002"]);
    assert_eq!(
        p.steps[*na].because,
        "extension 1001 forward no_answer -> 1002"
    );
    let Next::Step(busy) = first.next(Failure::Busy) else {
        panic!("busy should go on")
    };
    assert_eq!(names(&p.steps[*busy]), ["1003"]);
    assert_eq!(
        p.steps[*busy].because,
        "extension 1001 forward busy -> 1003"
    );
    // A 5xx from the phone counts as unreachable: the not-registered forward.
    assert_eq!(end_code(first.next(Failure::TrunkFailure)), Some(480));
    assert_eq!(end_code(first.next(Failure::Unavailable)), Some(480));
}

#[test]
fn no_answer_seconds_zero_rings_without_limit() {
    let r = router_with(|dp| ext_mut(dp, "1002").forwarding.no_answer_seconds = 0);
    let d = route_at(
        &r,
        &from_ext("1001"),
        "1002",
        open_time(),
        &all_registered(),
    );
    assert_eq!(plan(&d).steps[0].timeout, None);
}

#[test]
fn unconditional_forward_loop_rejects() {
    let r = router_with(|dp| {
        ext_mut(dp, "1001").forwarding.unconditional = Some(ext("1002"));
        ext_mut(dp, "1002").forwarding.unconditional = Some(ext("1001"));
    });
    let d = route_at(
        &r,
        &from_ext("1003"),
        "1001",
        open_time(),
        &all_registered(),
    );
    let rj = rejected(&d);
    assert_eq!(rj.code, 480);
    assert!(rj.because.contains("forwarding loop"), "{}", rj.because);
    assert!(rj
        .because
        .contains("extension 1002 forward unconditional -> 1001"));
}

#[test]
fn no_answer_cycle_rings_each_once_then_ends() {
    let r = router_with(|dp| {
        ext_mut(dp, "1001").forwarding.no_answer = Some(ext("1002"));
        ext_mut(dp, "1002").forwarding.no_answer = Some(ext("1003"));
        ext_mut(dp, "1003").forwarding.no_answer = Some(ext("1001"));
    });
    let d = route_at(
        &r,
        &from_ext("1004"),
        "1001",
        open_time(),
        &all_registered(),
    );
    let p = plan(&d);
    let (rung, end) = walk(p, &[Failure::NoAnswer]);
    assert_eq!(rung, [["1001"], ["1002"], ["1003"]]);
    let Next::Reject(rj) = end else {
        panic!("cycle should end in a reject")
    };
    assert_eq!(rj.code, 480);
    assert!(rj.because.contains("forwarding loop"), "{}", rj.because);
}

#[test]
fn shared_destination_is_reused_not_duplicated() {
    // Both busy and no-answer go to 1003: one step for 1003.
    let r = router_with(|dp| {
        let e = ext_mut(dp, "1001");
        e.forwarding.no_answer = Some(ext("1003"));
        e.forwarding.busy = Some(ext("1003"));
    });
    let d = route_at(
        &r,
        &from_ext("1004"),
        "1001",
        open_time(),
        &all_registered(),
    );
    let p = plan(&d);
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].next(Failure::NoAnswer), &Next::Step(1));
    assert_eq!(p.steps[0].next(Failure::Busy), &Next::Step(1));
}

#[test]
fn long_unconditional_chain_stops_at_depth_limit() {
    // 2001 -> 2002 -> ... -> 2030, each forwarding unconditionally.
    let r = router_with(|dp| {
        for n in 2001..=2030 {
            let mut e = Extension::new(n.to_string(), "chain");
            e.forwarding.unconditional = Some(ext(&(n + 1).to_string()));
            dp.extensions.push(e);
        }
    });
    let d = route_at(
        &r,
        &from_ext("1001"),
        "2001",
        open_time(),
        &all_registered(),
    );
    let rj = rejected(&d);
    assert_eq!(rj.code, 480);
    assert!(rj.because.contains("too deep"), "{}", rj.because);
    assert!(rj.because.contains(&format!("20{:02}", MAX_FORWARD_DEPTH)));
}

#[test]
fn forward_to_unknown_extension_is_404() {
    let r = router_with(|dp| ext_mut(dp, "1001").forwarding.unconditional = Some(ext("4040")));
    let d = route_at(
        &r,
        &from_ext("1002"),
        "1001",
        open_time(),
        &all_registered(),
    );
    assert_eq!(rejected(&d).code, 404);
}

#[test]
fn office_hours_switch_forwarding_profile() {
    let r = router_with(|dp| {
        let e = ext_mut(dp, "1002");
        e.office_hours = Some("office".into());
        e.out_of_hours_forwarding = Some(Forwarding {
            unconditional: Some(ext("1005")),
            ..Forwarding::default()
        });
    });
    let st = all_registered();
    let d = route_at(&r, &from_ext("1001"), "1002", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1002"]);
    assert_eq!(d.because(), "extension 1002 (in hours)");
    let d = route_at(&r, &from_ext("1001"), "1002", closed_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1005"]);
    assert_eq!(
        d.because(),
        "extension 1002 (out of hours) forward unconditional -> 1005"
    );
}

#[test]
fn forward_to_external_uses_the_forwarding_extensions_permissions() {
    // 1002 may not dial international; its forward to a German number is
    // refused even though the caller (1001) may.
    let r = router_with(|dp| {
        ext_mut(dp, "1002").forwarding.unconditional =
            Some(Destination::External("0049301234567".into()));
        ext_mut(dp, "1001").forwarding.unconditional =
            Some(Destination::External("0049301234567".into()));
    });
    let st = all_registered();
    let d = route_at(&r, &from_ext("1001"), "1002", open_time(), &st);
    let rj = rejected(&d);
    assert_eq!(rj.code, 403);
    assert!(
        rj.because.contains("not permitted for 1002"),
        "{}",
        rj.because
    );
    // 1001 may, and presents its own caller ID on the forwarded leg.
    let d = route_at(&r, &from_ext("1002"), "1001", open_time(), &st);
    let p = plan(&d);
    assert_eq!(names(&p.steps[0]), ["swisscom:0049301234567"]);
    assert!(matches!(
        &p.steps[0].targets[0],
        Target::External { caller_id: Some(c), privacy: false, .. } if c == "+41225550101"
    ));
}

#[test]
fn unknown_caller_and_undialable_numbers() {
    let r = Router::new(dialplan());
    let st = all_registered();
    assert_eq!(
        rejected(&route_at(&r, &from_ext("9999"), "1001", open_time(), &st)).code,
        403
    );
    for bad in ["", "   ", "10a1", "1+1", "sip:1001@x", "++41"] {
        let d = route_at(&r, &from_ext("1001"), bad, open_time(), &st);
        assert_eq!(rejected(&d).code, 404, "{bad:?}");
    }
}
