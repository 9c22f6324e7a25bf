//! Routing decisions (`routing::Router::route`) on a realistic office dial
//! plan: 100 extensions (1001-1100) forwarding on no answer and on busy,
//! three ring groups, three trunks, 56 inbound rules and six outbound
//! rules, office hours in Europe/Zurich.
//!
//! `cargo bench -p softswitch-benches --bench routing`
//!
//! Per iteration, one `Router::route` call producing the whole plan:
//! - `routing/extension_to_extension`: 1002 dials 1042 (rings 1042, then
//!   its no-answer forward to 1100, its busy forward to ring group 800);
//! - `routing/ring_group_hunt`: 1006 dials ring group 801, hunt over five
//!   members (one a step each, then the group's no-answer destination);
//! - `routing/outbound_rewrite`: 1003 dials +41791234567; the e164-ch rule
//!   strips +41 and prepends 0, trunk swisscom with caller ID;
//! - `routing/inbound_did`: a call from trunk swisscom to DID 41225550100
//!   in office hours (exact DID among prefix rules, ring-all group 800).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use routing::chrono::{DateTime, TimeZone, Utc, Weekday};
use routing::{
    Caller, Decision, Destination, Dialplan, DidPattern, Extension, Forwarding, InboundRule,
    MemoryState, OfficeHours, OutboundRule, Presentation, RingGroup, RouteRequest, Router,
    Strategy, Target, Trunk,
};

fn ext(n: &str) -> Destination {
    Destination::Extension(n.into())
}

fn office_hours() -> OfficeHours {
    let mut h = OfficeHours::new("office", "Europe/Zurich").expect("known zone");
    for d in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ] {
        h.set_day(d, "08:30-12:00, 13:30-18:00")
            .expect("valid hours");
    }
    h
}

fn dialplan() -> Dialplan {
    let mut extensions: Vec<Extension> = (1001..=1100)
        .map(|n| {
            let mut e = Extension::new(n.to_string(), format!("User {n}"));
            e.max_simultaneous_calls = 2;
            e.outbound_caller_id = Some(format!("+4122555{n:04}"));
            if n != 1100 {
                e.forwarding = Forwarding {
                    no_answer: Some(ext("1100")),
                    no_answer_seconds: 20,
                    busy: Some(Destination::RingGroup("800".into())),
                    ..Forwarding::default()
                };
            }
            e
        })
        .collect();
    extensions[0].international = true;

    let mut swisscom = Trunk::new("swisscom", "+41225550100");
    swisscom.max_calls = 30;
    swisscom.dids = vec!["41225550100".into()];
    let mut backup = Trunk::new("backup", "+41225550199");
    backup.presentation = Presentation::MainNumber;
    let mut anon = Trunk::new("anon", "+41225550177");
    anon.presentation = Presentation::Anonymous;

    let mut national = OutboundRule::new("national", "0", &["swisscom", "backup"]);
    national.min_len = Some(10);
    national.max_len = Some(10);
    let mut escape = OutboundRule::new("escape", "9", &["backup"]);
    escape.strip = 1;
    let mut e164 = OutboundRule::new("e164-ch", "+41", &["swisscom", "backup"]);
    e164.strip = 3;
    e164.prepend = "0".into();
    e164.extensions = vec!["1001-1099".parse().expect("valid range")];
    let mut premium = OutboundRule::new("premium", "090", &["anon"]);
    premium.extensions = vec!["1004".parse().expect("valid range")];
    let international = OutboundRule::new("international", "00", &["swisscom", "backup"]);
    let e164_world = OutboundRule::new("e164-world", "+", &["swisscom"]);

    // One direct DID per extension 1001-1050, then the main number and prefixes.
    let mut inbound_rules: Vec<InboundRule> = (1001..=1050)
        .map(|n| InboundRule {
            did: DidPattern::parse(&format!("4122556{n:04}")),
            trunk: None,
            to: ext(&n.to_string()),
            out_of_hours: None,
            office_hours: None,
        })
        .collect();
    inbound_rules.extend([
        InboundRule {
            did: DidPattern::parse("4122555*"),
            trunk: None,
            to: ext("1100"),
            out_of_hours: None,
            office_hours: None,
        },
        InboundRule {
            did: DidPattern::parse("41225550100"),
            trunk: None,
            to: Destination::RingGroup("800".into()),
            out_of_hours: Some(ext("1100")),
            office_hours: Some("office".into()),
        },
        InboundRule {
            did: DidPattern::parse("412255501*"),
            trunk: None,
            to: ext("1002"),
            out_of_hours: None,
            office_hours: None,
        },
        InboundRule {
            did: DidPattern::parse("41225550150"),
            trunk: Some("backup".into()),
            to: ext("1003"),
            out_of_hours: None,
            office_hours: None,
        },
        InboundRule {
            did: DidPattern::parse("41225550160"),
            trunk: None,
            to: Destination::External("0791234567".into()),
            out_of_hours: None,
            office_hours: None,
        },
        InboundRule {
            did: DidPattern::parse("41225550170"),
            trunk: None,
            to: Destination::RingGroup("802".into()),
            out_of_hours: None,
            office_hours: None,
        },
    ]);

    Dialplan {
        extensions,
        ring_groups: vec![
            RingGroup {
                number: "800".into(),
                name: "sales".into(),
                strategy: Strategy::RingAll,
                members: (1001..=1008).map(|n| n.to_string()).collect(),
                ring_seconds: 20,
                no_answer: ext("1100"),
            },
            RingGroup {
                number: "801".into(),
                name: "support".into(),
                strategy: Strategy::Hunt,
                members: ["1010", "1011", "1012", "1013", "1014"]
                    .map(String::from)
                    .to_vec(),
                ring_seconds: 15,
                no_answer: Destination::RingGroup("800".into()),
            },
            RingGroup {
                number: "802".into(),
                name: "desk".into(),
                strategy: Strategy::RoundRobin,
                members: (1020..=1025).map(|n| n.to_string()).collect(),
                ring_seconds: 10,
                no_answer: Destination::External("0791234567".into()),
            },
        ],
        trunks: vec![swisscom, backup, anon],
        inbound_rules,
        outbound_rules: vec![national, escape, e164, premium, international, e164_world],
        office_hours: vec![office_hours()],
        national_prefixes: vec!["+41".into(), "0041".into()],
        emergency_numbers: vec!["112".into(), "117".into(), "118".into(), "144".into()],
        ..Dialplan::default()
    }
}

/// Monday 2024-01-08 10:00 UTC: 11:00 in Zurich, office open.
fn open_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 8, 10, 0, 0)
        .single()
        .expect("valid time")
}

/// Short names of the first step's targets: "1001" or "trunk:number".
fn first_targets(d: &Decision) -> Vec<String> {
    let Decision::Plan(p) = d else {
        panic!("expected a plan, got {d:?}");
    };
    p.steps[0]
        .targets
        .iter()
        .map(|t| match t {
            Target::Extension(n) => n.clone(),
            Target::External { trunk, number, .. } => format!("{trunk}:{number}"),
        })
        .collect()
}

fn steps(d: &Decision) -> usize {
    match d {
        Decision::Plan(p) => p.steps.len(),
        Decision::Reject(_) => 0,
    }
}

fn bench_routing(c: &mut Criterion) {
    let plan = dialplan();
    let problems = routing::validate(&plan);
    assert!(problems.is_ok(), "dial plan is valid: {problems:?}");
    let router = Router::new(plan);
    let mut state = MemoryState::registered((1001..=1100).map(|n| n.to_string()));
    // A few members of the hunt group are busy or away, as in real life.
    state.active_calls.insert("1010".into(), 2);
    state.dnd.insert("1012".into());
    state.trunk_calls.insert("swisscom".into(), 7);
    let now = open_time();

    let from_1002 = Caller::Extension("1002".into());
    let from_1006 = Caller::Extension("1006".into());
    let from_1003 = Caller::Extension("1003".into());
    let from_trunk = Caller::Trunk {
        name: "swisscom".into(),
        caller_number: "+41791110000".into(),
    };
    let cases: [(&str, &Caller, &str, &[&str]); 4] = [
        ("extension_to_extension", &from_1002, "1042", &["1042"]),
        ("ring_group_hunt", &from_1006, "801", &["1011"]),
        (
            "outbound_rewrite",
            &from_1003,
            "+41791234567",
            &["swisscom:0791234567"],
        ),
        ("inbound_did", &from_trunk, "41225550100", &[]),
    ];

    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    for (id, from, dialled, expect) in cases {
        let req = RouteRequest {
            from,
            dialled,
            now,
            state: &state,
        };
        let d = router.route(&req);
        let first = first_targets(&d);
        if expect.is_empty() {
            // The ring-all group 800: its eight members at once.
            assert_eq!(first.len(), 8, "{id}: {d:?}");
        } else {
            assert_eq!(first, expect, "{id}: {d:?}");
        }
        assert!(steps(&d) >= 2, "{id}: a plan with fail-over: {d:?}");
        g.bench_function(id, |b| b.iter(|| router.route(black_box(&req))));
    }
    g.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
