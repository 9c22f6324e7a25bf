//! Properties over random dial plans and states: routing never panics,
//! plans are well formed and acyclic, and no unpermitted international
//! number leaves.

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::strategy::Strategy;
use routing::chrono::{DateTime, TimeZone, Utc};
use routing::*;

const NUMBERS: [&str; 8] = [
    "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007",
];
const EXTERNAL: [&str; 6] = [
    "0791234567",
    "0049301234567",
    "+4930123",
    "9004930",
    "112",
    "555",
];

fn destination(external: bool) -> impl Strategy<Value = Destination> {
    let n = prop::sample::select(&NUMBERS[..]).prop_map(|n| Destination::Extension(n.into()));
    let g = prop::sample::select(&["800", "801", "802", "899"][..])
        .prop_map(|g| Destination::RingGroup(g.into()));
    let x = prop::sample::select(&EXTERNAL[..]).prop_map(|n| Destination::External(n.into()));
    if external {
        prop_oneof![4 => n, 2 => g, 1 => x, 1 => Just(Destination::Hangup)].boxed()
    } else {
        prop_oneof![4 => n, 2 => g, 1 => Just(Destination::Hangup)].boxed()
    }
}

fn forwarding() -> impl Strategy<Value = Forwarding> {
    (
        prop::option::weighted(0.15, destination(true)),
        prop::option::weighted(0.5, destination(true)),
        prop::option::weighted(0.5, destination(true)),
        0u32..30,
        prop::option::weighted(0.5, destination(true)),
    )
        .prop_map(
            |(unconditional, busy, no_answer, secs, not_registered)| Forwarding {
                unconditional,
                busy,
                no_answer,
                no_answer_seconds: secs,
                not_registered,
            },
        )
}

fn extension(number: &'static str) -> impl Strategy<Value = Extension> {
    (
        forwarding(),
        prop::option::of(forwarding()),
        any::<bool>(),
        any::<bool>(),
        0u32..3,
    )
        .prop_map(move |(fw, ooh, hours, dnd, max)| {
            let mut e = Extension::new(number, "x");
            e.forwarding = fw;
            e.office_hours = hours.then(|| "h".to_owned());
            e.out_of_hours_forwarding = ooh;
            e.dnd = dnd;
            e.max_simultaneous_calls = max;
            e
        })
}

fn group(number: &'static str) -> impl Strategy<Value = RingGroup> {
    (
        prop::sample::select(vec![
            routing::Strategy::RingAll,
            routing::Strategy::Hunt,
            routing::Strategy::RoundRobin,
        ]),
        prop::collection::vec(prop::sample::select(&NUMBERS[..]), 0..5),
        0u32..30,
        destination(false),
    )
        .prop_map(
            move |(strategy, members, ring_seconds, no_answer)| RingGroup {
                number: number.into(),
                name: "g".into(),
                strategy,
                members: members.into_iter().map(String::from).collect(),
                ring_seconds,
                no_answer,
            },
        )
}

fn outbound_rule() -> impl Strategy<Value = OutboundRule> {
    (
        prop::sample::select(&["", "0", "00", "9", "+", "1"][..]),
        0usize..3,
        prop::sample::select(&["", "0", "00", "+"][..]),
        prop::collection::vec(prop::sample::select(&["t0", "t1", "tx"][..]), 0..3),
        prop::option::of(prop::sample::select(
            &["1001-1003", "1004", "1000-1009"][..],
        )),
        prop::option::of(0usize..12),
    )
        .prop_map(|(prefix, strip, prepend, trunks, range, max_len)| {
            let mut r = OutboundRule::new(format!("r{prefix}{strip}{prepend}"), prefix, &trunks);
            r.strip = strip;
            r.prepend = prepend.into();
            r.extensions = range.into_iter().map(|s| s.parse().unwrap()).collect();
            r.max_len = max_len;
            r
        })
}

fn dialplan() -> impl Strategy<Value = Dialplan> {
    (
        (
            extension("1001"),
            extension("1002"),
            extension("1003"),
            extension("1004"),
            extension("1005"),
        ),
        (group("800"), group("801"), group("802")),
        prop::collection::vec(outbound_rule(), 0..5),
        0u32..3,
    )
        .prop_map(
            |((a, b, c, d, e), (g0, g1, g2), outbound_rules, max_calls)| {
                let mut t0 = Trunk::new("t0", "+41225550100");
                t0.max_calls = max_calls;
                let mut t1 = Trunk::new("t1", "+41225550199");
                t1.presentation = Presentation::Anonymous;
                let mut hours = OfficeHours::new("h", "Europe/Zurich").unwrap();
                for day in [routing::chrono::Weekday::Mon, routing::chrono::Weekday::Tue] {
                    hours.set_day(day, "09:00-18:00").unwrap();
                }
                Dialplan {
                    extensions: vec![a, b, c, d, e],
                    ring_groups: vec![g0, g1, g2],
                    trunks: vec![t0, t1],
                    outbound_rules,
                    office_hours: vec![hours],
                    ..Dialplan::default()
                }
            },
        )
}

fn state() -> impl Strategy<Value = MemoryState> {
    (
        prop::collection::hash_set(prop::sample::select(&NUMBERS[..]), 0..8),
        prop::collection::hash_set(prop::sample::select(&NUMBERS[..]), 0..3),
        prop::collection::vec((prop::sample::select(&NUMBERS[..]), 0u32..3), 0..4),
        prop::option::of(prop::sample::select(&NUMBERS[..])),
        0u32..3,
    )
        .prop_map(|(registered, dnd, calls, last, trunk_calls)| {
            let mut s = MemoryState::registered(registered);
            s.dnd = dnd.into_iter().map(String::from).collect();
            s.active_calls = calls.into_iter().map(|(n, c)| (n.to_owned(), c)).collect();
            if let Some(l) = last {
                s.last_member.insert("802".into(), l.into());
            }
            s.trunk_calls.insert("t0".into(), trunk_calls);
            s
        })
}

fn dialled() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&NUMBERS[..]).prop_map(String::from),
        prop::sample::select(&["800", "801", "802", "899"][..]).prop_map(String::from),
        prop::sample::select(&EXTERNAL[..]).prop_map(String::from),
        "[0-9+*#a ]{0,14}",
    ]
}

fn now() -> impl Strategy<Value = DateTime<Utc>> {
    // A week around a DST change.
    (0i64..7 * 24 * 60).prop_map(|m| {
        Utc.with_ymd_and_hms(2024, 3, 28, 0, 0, 0).unwrap() + routing::chrono::Duration::minutes(m)
    })
}

/// Every step index is valid and no chain of steps comes back to itself.
fn assert_acyclic(plan: &Plan) {
    fn visit(plan: &Plan, i: usize, on_path: &mut Vec<usize>, done: &mut HashSet<usize>) {
        assert!(i < plan.steps.len(), "step {i} out of range");
        assert!(!on_path.contains(&i), "cycle through step {i}: {plan:#?}");
        if !done.insert(i) {
            return;
        }
        on_path.push(i);
        let on = &plan.steps[i].on;
        for next in [&on.no_answer, &on.busy, &on.unavailable, &on.trunk_failure] {
            if let Next::Step(j) = next {
                visit(plan, *j, on_path, done);
            }
        }
        on_path.pop();
    }
    visit(plan, 0, &mut Vec::new(), &mut HashSet::new());
}

fn check_reject(r: &Reject) {
    assert!([403, 404, 480, 486, 503].contains(&r.code), "{r:?}");
    assert!(!r.because.is_empty(), "{r:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plans_are_well_formed(
        dp in dialplan(),
        st in state(),
        caller in prop::sample::select(&NUMBERS[..]),
        dialled in dialled(),
        now in now(),
    ) {
        let router = Router::new(dp);
        let from = Caller::Extension(caller.into());
        let d = router.route(&RouteRequest { from: &from, dialled: &dialled, now, state: &st });
        match &d {
            Decision::Reject(r) => check_reject(r),
            Decision::Plan(p) => {
                prop_assert!(!p.steps.is_empty());
                prop_assert!(!p.because.is_empty());
                prop_assert!(p.steps.len() <= MAX_STEPS + 8, "{} steps", p.steps.len());
                assert_acyclic(p);
                for s in &p.steps {
                    prop_assert!(!s.targets.is_empty());
                    prop_assert!(!s.because.is_empty());
                    let on = &s.on;
                    for next in [&on.no_answer, &on.busy, &on.unavailable, &on.trunk_failure] {
                        if let Next::Reject(r) = next {
                            check_reject(r);
                        }
                    }
                    for t in &s.targets {
                        match t {
                            Target::Extension(n) => {
                                prop_assert!(router.extension(n).is_some(), "{n}")
                            }
                            Target::External { trunk, number, .. } => {
                                prop_assert!(router.trunk(trunk).is_some());
                                // No extension here may dial international
                                // and groups never forward out: nothing
                                // international may leave.
                                prop_assert!(
                                    !number.starts_with("00") && !number.starts_with('+'),
                                    "{number} left via {}", s.because
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn inbound_never_panics(
        dp in dialplan(),
        st in state(),
        did in "[+]?[0-9*]{0,12}",
        rules in prop::collection::vec(("[0-9]{0,6}[*]?", prop::option::of(prop::sample::select(&["t0", "t1"][..])), destination(true)), 0..6),
        trunk in prop::sample::select(&["t0", "t1", "t9"][..]),
        now in now(),
    ) {
        let mut dp = dp;
        dp.inbound_rules = rules
            .into_iter()
            .map(|(did, trunk, to)| InboundRule {
                did: DidPattern::parse(&did),
                trunk: trunk.map(String::from),
                to,
                out_of_hours: Some(Destination::Hangup),
                office_hours: Some("h".into()),
            })
            .collect();
        let router = Router::new(dp);
        let from = Caller::Trunk { name: trunk.into(), caller_number: "1".into() };
        match router.route(&RouteRequest { from: &from, dialled: &did, now, state: &st }) {
            Decision::Reject(r) => check_reject(&r),
            Decision::Plan(p) => assert_acyclic(&p),
        }
    }
}
