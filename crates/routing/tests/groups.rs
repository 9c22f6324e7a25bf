//! Ring group strategies, member skipping and round-robin memory.

mod common;

use common::*;
use routing::*;

fn route_group(state: &MemoryState, group: &str) -> Decision {
    let r = Router::new(dialplan());
    route_at(&r, &from_ext("1006"), group, open_time(), state)
}

#[test]
fn ring_all_rings_available_members_together_then_no_answer_destination() {
    let d = route_group(&all_registered(), "800");
    let p = plan(&d);
    assert_eq!(names(&p.steps[0]), ["1001", "1002", "1003"]);
    assert_eq!(p.steps[0].timeout, secs(20));
    assert_eq!(p.because, "ring group 800 'sales' ring_all");
    for f in [Failure::NoAnswer, Failure::Busy, Failure::Unavailable] {
        let (rung, _) = walk(p, &[f, Failure::NoAnswer]);
        assert_eq!(rung, [vec!["1001", "1002", "1003"], vec!["1004"]], "{f:?}");
    }
    let Next::Step(i) = p.steps[0].next(Failure::NoAnswer) else {
        panic!()
    };
    assert_eq!(
        p.steps[*i].because,
        "ring group 800 'sales' ring_all no answer -> 1004"
    );
}

#[test]
fn members_in_dnd_busy_or_unregistered_are_skipped() {
    // Table: (what happens to which member, members rung by ring-all 800).
    type Edit = fn(&mut MemoryState);
    let rows: [(&str, Edit, &[&str]); 5] = [
        ("none", |_| {}, &["1001", "1002", "1003"]),
        (
            "1002 dnd",
            |s| {
                s.dnd.insert("1002".into());
            },
            &["1001", "1003"],
        ),
        (
            "1003 on a call (max 1)",
            |s| {
                s.active_calls.insert("1003".into(), 1);
            },
            &["1001", "1002"],
        ),
        (
            "1001 one of two calls",
            |s| {
                s.active_calls.insert("1001".into(), 1);
            },
            &["1001", "1002", "1003"],
        ),
        (
            "1001 unregistered",
            |s| {
                s.registered.remove("1001");
            },
            &["1002", "1003"],
        ),
    ];
    for (name, edit, expect) in rows {
        let mut st = all_registered();
        edit(&mut st);
        let d = route_group(&st, "800");
        assert_eq!(names(&plan(&d).steps[0]), expect, "{name}");
    }
}

#[test]
fn configured_dnd_member_is_skipped() {
    let mut dp = dialplan();
    dp.extensions[1].dnd = true; // 1002
    let r = Router::new(dp);
    let d = route_at(&r, &from_ext("1006"), "801", open_time(), &all_registered());
    let (rung, _) = walk(plan(&d), &[Failure::NoAnswer]);
    assert_eq!(rung, [["1003"], ["1005"]]);
}

#[test]
fn no_member_available_goes_straight_to_no_answer_destination() {
    let st = MemoryState::registered(["1004", "1005", "1006"]);
    let d = route_group(&st, "800");
    let p = plan(&d);
    assert_eq!(names(&p.steps[0]), ["1004"]);
    assert_eq!(
        p.because,
        "ring group 800 'sales' ring_all: no member available -> 1004"
    );
    // Hunt group 801 ends in hangup: with nobody there, 480 at once.
    let st = MemoryState::registered(["1001"]);
    assert_eq!(rejected(&route_group(&st, "801")).code, 480);
}

#[test]
fn hunt_rings_members_in_order_each_for_ring_seconds() {
    let d = route_group(&all_registered(), "801");
    let p = plan(&d);
    assert!(p.steps.iter().all(|s| s.timeout == secs(15)));
    assert!(p.steps.iter().all(|s| s.remember.is_none()));
    // A busy member moves the hunt on just like no answer.
    let (rung, end) = walk(p, &[Failure::NoAnswer, Failure::Busy, Failure::NoAnswer]);
    assert_eq!(rung, [["1002"], ["1003"], ["1005"]]);
    assert_eq!(end_code(&end), Some(480));
    assert_eq!(
        p.steps[1].because,
        "ring group 801 'support' hunt member 1003 (2 of 3)"
    );
}

#[test]
fn round_robin_starts_after_the_member_used_last() {
    // (last member remembered, order rung)
    let rows: [(Option<&str>, [&str; 3]); 5] = [
        (None, ["1001", "1002", "1003"]),
        (Some("1001"), ["1002", "1003", "1001"]),
        (Some("1002"), ["1003", "1001", "1002"]),
        (Some("1003"), ["1001", "1002", "1003"]),
        // A member since removed from the group: start from the top.
        (Some("1999"), ["1001", "1002", "1003"]),
    ];
    for (last, expect) in rows {
        let mut st = all_registered();
        if let Some(l) = last {
            st.last_member.insert("802".into(), l.into());
        }
        let d = route_group(&st, "802");
        let p = plan(&d);
        let (rung, _) = walk(p, &[Failure::NoAnswer]);
        let rung: Vec<String> = rung.into_iter().flatten().take(3).collect();
        assert_eq!(rung, expect, "last {last:?}");
        assert_eq!(p.steps[0].timeout, secs(10));
        // Each step tells call control whom to remember.
        for (i, m) in expect.iter().enumerate() {
            assert_eq!(
                p.steps[i].remember,
                Some(RoundRobinMark {
                    group: "802".into(),
                    member: (*m).into()
                })
            );
        }
    }
}

#[test]
fn round_robin_memory_advances_across_calls_and_skips_busy() {
    let mut st = all_registered();
    st.active_calls.insert("1002".into(), 1); // 1002 busy: never first
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let d = route_group(&st, "802");
        let step = &plan(&d).steps[0];
        let mark = step.remember.clone().unwrap();
        firsts.push(mark.member.clone());
        // Call control records the member once it starts ringing it.
        st.last_member.insert(mark.group, mark.member);
    }
    assert_eq!(firsts, ["1001", "1003", "1001", "1003"]);
}

#[test]
fn round_robin_no_answer_goes_out_through_outbound_rules() {
    let d = route_group(&all_registered(), "802");
    let (rung, end) = walk(plan(&d), &[Failure::NoAnswer]);
    // Three members, then the external destination on both national trunks.
    assert_eq!(rung.len(), 5);
    assert_eq!(rung[3], ["swisscom:0791234567"]);
    assert_eq!(rung[4], ["backup:0791234567"]);
    assert_eq!(end_code(&end), Some(503));
}

#[test]
fn group_cycle_through_no_answer_destination_ends() {
    // Group 800 no answer -> 1004, whose no answer -> group 800 again.
    let mut dp = dialplan();
    dp.extensions[3].forwarding.no_answer = Some(Destination::RingGroup("800".into()));
    let r = Router::new(dp);
    let d = route_at(&r, &from_ext("1006"), "800", open_time(), &all_registered());
    let (rung, end) = walk(plan(&d), &[Failure::NoAnswer]);
    assert_eq!(rung, [vec!["1001", "1002", "1003"], vec!["1004"]]);
    let Next::Reject(rj) = end else { panic!() };
    assert!(rj.because.contains("forwarding loop"), "{}", rj.because);
}
