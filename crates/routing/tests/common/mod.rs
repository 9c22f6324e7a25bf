//! A small office dial plan shared by the table tests.
#![allow(dead_code)]

use std::time::Duration;

use routing::chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use routing::*;

pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Monday 2024-01-08 10:00 UTC (11:00 in Zurich): office open.
pub fn open_time() -> DateTime<Utc> {
    utc(2024, 1, 8, 10, 0)
}

/// Monday 2024-01-08 20:00 UTC: office closed.
pub fn closed_time() -> DateTime<Utc> {
    utc(2024, 1, 8, 20, 0)
}

pub fn weekdays(name: &str, tz: &str, hours: &str) -> OfficeHours {
    let mut h = OfficeHours::new(name, tz).unwrap();
    for d in [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ] {
        h.set_day(d, hours).unwrap();
    }
    h
}

pub fn ext(n: &str) -> Destination {
    Destination::Extension(n.into())
}

pub fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

/// Extensions 1001..=1006, trunks `swisscom` (2 calls), `backup` (main
/// number presentation), `anon` (anonymous); groups 800 (ring all), 801
/// (hunt), 802 (round robin); inbound and outbound rules as below.
pub fn dialplan() -> Dialplan {
    let mut extensions: Vec<Extension> = (1001..=1006)
        .map(|n| Extension::new(n.to_string(), format!("User {n}")))
        .collect();
    extensions[0].international = true;
    extensions[0].outbound_caller_id = Some("+41225550101".into());
    extensions[0].max_simultaneous_calls = 2;

    let mut swisscom = Trunk::new("swisscom", "+41225550100");
    swisscom.max_calls = 2;
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
    let mut e164 = OutboundRule::new("e164-ch", "+41", &["swisscom"]);
    e164.strip = 3;
    e164.prepend = "0".into();
    e164.extensions = vec!["1001-1003".parse().unwrap()];
    let mut premium = OutboundRule::new("premium", "090", &["anon"]);
    premium.extensions = vec!["1004".parse().unwrap()];
    let international = OutboundRule::new("international", "00", &["swisscom", "backup"]);
    let e164_world = OutboundRule::new("e164-world", "+", &["swisscom"]);

    let mut plan = Dialplan {
        extensions,
        ring_groups: vec![
            RingGroup {
                number: "800".into(),
                name: "sales".into(),
                strategy: Strategy::RingAll,
                members: vec!["1001".into(), "1002".into(), "1003".into()],
                ring_seconds: 20,
                no_answer: ext("1004"),
            },
            RingGroup {
                number: "801".into(),
                name: "support".into(),
                strategy: Strategy::Hunt,
                members: vec!["1002".into(), "1003".into(), "1005".into()],
                ring_seconds: 15,
                no_answer: Destination::Hangup,
            },
            RingGroup {
                number: "802".into(),
                name: "desk".into(),
                strategy: Strategy::RoundRobin,
                members: vec!["1001".into(), "1002".into(), "1003".into()],
                ring_seconds: 10,
                no_answer: Destination::External("0791234567".into()),
            },
        ],
        trunks: vec![swisscom, backup, anon],
        inbound_rules: vec![
            InboundRule {
                did: DidPattern::parse("4122555*"),
                trunk: None,
                to: ext("1001"),
                out_of_hours: None,
                office_hours: None,
            },
            InboundRule {
                did: DidPattern::parse("41225550100"),
                trunk: None,
                to: Destination::RingGroup("800".into()),
                out_of_hours: Some(ext("1004")),
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
                to: Destination::External("0049301234567".into()),
                out_of_hours: None,
                office_hours: None,
            },
        ],
        outbound_rules: vec![national, escape, e164, premium, international, e164_world],
        office_hours: vec![weekdays("office", "Europe/Zurich", "09:00-18:00")],
        national_prefixes: vec!["+41".into(), "0041".into()],
        ..Dialplan::default()
    };
    plan.office_hours[0]
        .holidays
        .push(NaiveDate::from_ymd_opt(2024, 12, 25).unwrap());
    plan
}

/// Every extension registered and idle.
pub fn all_registered() -> MemoryState {
    MemoryState::registered((1001..=1006).map(|n| n.to_string()))
}

pub fn route_at(
    router: &Router,
    from: &Caller,
    dialled: &str,
    now: DateTime<Utc>,
    state: &dyn DialState,
) -> Decision {
    router.route(&RouteRequest {
        from,
        dialled,
        now,
        state,
    })
}

pub fn from_ext(n: &str) -> Caller {
    Caller::Extension(n.into())
}

pub fn from_trunk(name: &str) -> Caller {
    Caller::Trunk {
        name: name.into(),
        caller_number: "+41791110000".into(),
    }
}

pub fn plan(d: &Decision) -> &Plan {
    match d {
        Decision::Plan(p) => p,
        Decision::Reject(r) => panic!("expected a plan, got reject {r:?}"),
    }
}

pub fn rejected(d: &Decision) -> &Reject {
    match d {
        Decision::Reject(r) => r,
        Decision::Plan(p) => panic!("expected a reject, got plan {p:#?}"),
    }
}

/// Short names of a step's targets: "1001", or "trunk:number".
pub fn names(step: &Step) -> Vec<String> {
    step.targets
        .iter()
        .map(|t| match t {
            Target::Extension(n) => n.clone(),
            Target::External { trunk, number, .. } => format!("{trunk}:{number}"),
        })
        .collect()
}

/// Walks a plan, failing each step with the given failures in turn (the
/// last one repeats); returns the target names of each step rung and how
/// the walk ended.
pub fn walk(plan: &Plan, failures: &[Failure]) -> (Vec<Vec<String>>, Next) {
    let mut rung = Vec::new();
    let mut i = 0;
    let mut k = 0;
    loop {
        assert!(rung.len() <= plan.steps.len(), "walk does not end");
        let step = &plan.steps[i];
        rung.push(names(step));
        let f = failures[k.min(failures.len() - 1)];
        k += 1;
        match step.next(f) {
            Next::Step(j) => i = *j,
            end => return (rung, end.clone()),
        }
    }
}

pub fn end_code(n: &Next) -> Option<u16> {
    match n {
        Next::Reject(r) => Some(r.code),
        _ => None,
    }
}
