//! Config validation names the item at fault.

mod common;

use common::*;
use routing::*;

fn errors(dp: &Dialplan) -> Vec<String> {
    match validate(dp) {
        Ok(()) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_shared_plan_is_valid() {
    assert_eq!(errors(&dialplan()), Vec::<String>::new());
}

#[test]
fn each_broken_reference_is_named() {
    type Edit = fn(&mut Dialplan);
    let rows: Vec<(Edit, &str)> = vec![
        (
            |dp| dp.ring_groups[0].members.push("1999".into()),
            "ring group 800 member: unknown extension '1999'",
        ),
        (
            |dp| dp.ring_groups[1].no_answer = Destination::RingGroup("899".into()),
            "ring group 801 no_answer: unknown ring group '899'",
        ),
        (
            |dp| dp.extensions[1].forwarding.busy = Some(ext("1999")),
            "extension 1002 forwarding.busy: unknown extension '1999'",
        ),
        (
            |dp| {
                dp.extensions[2].office_hours = Some("office".into());
                dp.extensions[2].out_of_hours_forwarding = Some(Forwarding {
                    no_answer: Some(Destination::RingGroup("898".into())),
                    ..Forwarding::default()
                });
            },
            "extension 1003 out_of_hours_forwarding.no_answer: unknown ring group '898'",
        ),
        (
            |dp| dp.extensions[3].out_of_hours_forwarding = Some(Forwarding::default()),
            "extension 1004: out_of_hours_forwarding needs office_hours",
        ),
        (
            |dp| dp.extensions[3].office_hours = Some("night".into()),
            "extension 1004 office_hours: unknown office hours 'night'",
        ),
        (
            |dp| dp.extensions[4].outbound_rules = OutboundPermission::Only(vec!["intl".into()]),
            "extension 1005 outbound_rules: unknown outbound_rule 'intl'",
        ),
        (
            |dp| dp.outbound_rules[0].trunks.push("sunrise".into()),
            "outbound_rule #1 'national': unknown trunk 'sunrise'",
        ),
        (
            |dp| dp.outbound_rules[1].trunks.clear(),
            "outbound_rule #2 'escape': has no trunk",
        ),
        (
            |dp| dp.outbound_rules[0].min_len = Some(12),
            "outbound_rule #1 'national': min_len 12 is above max_len 10",
        ),
        (
            |dp| dp.inbound_rules[4].trunk = Some("sunrise".into()),
            "inbound_rule did=41225550150 trunk='sunrise': unknown trunk 'sunrise'",
        ),
        (
            |dp| dp.inbound_rules[0].to = ext("1999"),
            "inbound_rule did=4122555* to: unknown extension '1999'",
        ),
        (
            |dp| dp.inbound_rules[1].out_of_hours = Some(Destination::RingGroup("1".into())),
            "inbound_rule did=41225550100 out_of_hours: unknown ring group '1'",
        ),
        (
            |dp| dp.inbound_rules[2].out_of_hours = Some(ext("1001")),
            "inbound_rule did=412255501*: out_of_hours needs office_hours",
        ),
        (
            |dp| dp.inbound_rules[1].office_hours = Some("xmas".into()),
            "inbound_rule did=41225550100 office_hours: unknown office hours 'xmas'",
        ),
        (
            |dp| dp.extensions.push(Extension::new("1001", "again")),
            "extension '1001' is defined more than once",
        ),
        (
            |dp| dp.trunks.push(Trunk::new("backup", "1")),
            "trunk 'backup' is defined more than once",
        ),
        (
            |dp| dp.inbound_rules.push(dp.inbound_rules[0].clone()),
            "inbound_rule 'did=4122555*' is defined more than once",
        ),
        (
            |dp| dp.ring_groups[0].number = "1001".into(),
            "ring group 1001: number is also an extension",
        ),
        (
            |dp| dp.ring_groups[1].ring_seconds = 0,
            "ring group 801: ring_seconds must be above 0 for hunt and round_robin",
        ),
        (
            |dp| dp.ring_groups[1].members.clear(),
            "ring group 801: has no members",
        ),
        (
            |dp| dp.extensions.push(Extension::new("112", "oops")),
            "extension 112: number is an emergency number",
        ),
        (
            |dp| dp.extensions.push(Extension::new("10a", "oops")),
            "extension 10a: number must be digits",
        ),
        (
            |dp| dp.ring_groups[2].no_answer = Destination::External(" ".into()),
            "ring group 802 no_answer: external number is empty",
        ),
        (
            |dp| {
                for r in &mut dp.outbound_rules {
                    r.trunks.clear();
                }
            },
            "emergency_numbers: no outbound rule has a trunk to carry emergency calls",
        ),
    ];
    for (edit, expect) in rows {
        let mut dp = dialplan();
        edit(&mut dp);
        let errs = errors(&dp);
        assert!(
            errs.iter().any(|e| e == expect),
            "expected {expect:?} among {errs:#?}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut dp = dialplan();
    dp.ring_groups[0].members.push("1998".into());
    dp.ring_groups[0].members.push("1999".into());
    dp.outbound_rules[0].trunks.push("sunrise".into());
    assert_eq!(validate(&dp).unwrap_err().len(), 3);
}

#[test]
fn dangling_references_do_not_panic_the_router() {
    // Routing copes with a plan that failed validation.
    let mut dp = dialplan();
    dp.ring_groups[0].members.push("1999".into());
    dp.outbound_rules[0].trunks.insert(0, "sunrise".into());
    dp.extensions[0].office_hours = Some("nowhere".into());
    let r = Router::new(dp);
    let st = all_registered();
    let d = route_at(&r, &from_ext("1002"), "800", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1001", "1002", "1003"]);
    let d = route_at(&r, &from_ext("1002"), "0791234567", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["swisscom:0791234567"]);
    let d = route_at(&r, &from_ext("1002"), "1001", closed_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1001"]);
}
