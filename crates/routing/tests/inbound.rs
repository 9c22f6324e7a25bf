//! Inbound rules and office hours.

mod common;

use common::*;
use routing::chrono::{NaiveDate, Weekday};
use routing::*;

fn inbound(
    trunk: &str,
    did: &str,
    at: routing::chrono::DateTime<routing::chrono::Utc>,
) -> Decision {
    let r = Router::new(dialplan());
    route_at(&r, &from_trunk(trunk), did, at, &all_registered())
}

#[test]
fn inbound_precedence_table() {
    // (trunk, DID, first step targets or reject code, because)
    type Row<'a> = (&'a str, &'a str, Result<&'a [&'a str], u16>, &'a str);
    let rows: [Row; 9] = [
        // Exact beats the prefixes that also match it.
        (
            "swisscom",
            "41225550100",
            Ok(&["1001", "1002", "1003"]),
            "inbound_rule did=41225550100 (in hours)",
        ),
        // A leading + is ignored.
        (
            "swisscom",
            "+41225550100",
            Ok(&["1001", "1002", "1003"]),
            "inbound_rule did=41225550100 (in hours)",
        ),
        // Longest prefix wins: 412255501* over 4122555*.
        (
            "swisscom",
            "41225550123",
            Ok(&["1002"]),
            "inbound_rule did=412255501* -> 1002",
        ),
        (
            "swisscom",
            "41225559999",
            Ok(&["1001"]),
            "inbound_rule did=4122555* -> 1001",
        ),
        // Trunk-restricted rule beats the generic one for the same DID...
        (
            "backup",
            "41225550150",
            Ok(&["1003"]),
            "inbound_rule did=41225550150 trunk='backup' -> 1003",
        ),
        // ...and does not apply to other trunks.
        (
            "swisscom",
            "41225550150",
            Ok(&["1002"]),
            "inbound_rule did=41225550150 -> 1002",
        ),
        // A DID routed back out (administrator's rule: no caller permission).
        (
            "swisscom",
            "41225550170",
            Ok(&["swisscom:0049301234567"]),
            "inbound_rule did=41225550170 -> external 0049301234567",
        ),
        // No rule: 404.
        (
            "swisscom",
            "41449999999",
            Err(404),
            "no inbound_rule for DID 41449999999 on trunk 'swisscom'",
        ),
        ("swisscom", "", Err(404), "no inbound_rule"),
    ];
    for (trunk, did, expect, because) in rows {
        let d = inbound(trunk, did, open_time());
        match (&expect, &d) {
            (Ok(t), Decision::Plan(p)) => assert_eq!(names(&p.steps[0]), *t, "{trunk} {did}"),
            (Err(code), Decision::Reject(r)) => assert_eq!(r.code, *code, "{trunk} {did}"),
            _ => panic!("{trunk} {did}: unexpected {d:?}"),
        }
        assert!(
            d.because().starts_with(because),
            "{trunk} {did}: {:?} does not start with {because:?}",
            d.because()
        );
    }
}

#[test]
fn trunk_specific_prefix_beats_generic_prefix_of_same_length() {
    let mut dp = dialplan();
    dp.inbound_rules.push(InboundRule {
        did: DidPattern::parse("4122555*"),
        trunk: Some("anon".into()),
        to: ext("1006"),
        out_of_hours: None,
        office_hours: None,
    });
    let r = Router::new(dp);
    let st = all_registered();
    let d = route_at(&r, &from_trunk("anon"), "41225559999", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1006"]);
    let d = route_at(&r, &from_trunk("swisscom"), "41225559999", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1001"]);
    // Catch-all "*" only when nothing longer matches.
    let mut dp = dialplan();
    dp.inbound_rules.push(InboundRule {
        did: DidPattern::parse("*"),
        trunk: None,
        to: ext("1005"),
        out_of_hours: None,
        office_hours: None,
    });
    let r = Router::new(dp);
    let d = route_at(&r, &from_trunk("swisscom"), "41449999999", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1005"]);
    let d = route_at(&r, &from_trunk("swisscom"), "41225559999", open_time(), &st);
    assert_eq!(names(&plan(&d).steps[0]), ["1001"]);
}

#[test]
fn office_hours_choose_to_or_out_of_hours_at_the_boundaries() {
    // Zurich is UTC+1 in January: 09:00-18:00 local is 08:00-17:00 UTC.
    let rows = [
        (utc(2024, 1, 8, 7, 59), false, "08:59 local"),
        (utc(2024, 1, 8, 8, 0), true, "09:00 local"),
        (utc(2024, 1, 8, 16, 59), true, "17:59 local"),
        (utc(2024, 1, 8, 17, 0), false, "18:00 local"),
        // Saturday: closed all day.
        (utc(2024, 1, 13, 10, 0), false, "Saturday"),
        // Christmas (a Wednesday) is a holiday; the 24th is not.
        (utc(2024, 12, 25, 10, 0), false, "holiday"),
        (utc(2024, 12, 24, 10, 0), true, "day before the holiday"),
    ];
    for (at, open, what) in rows {
        let d = inbound("swisscom", "41225550100", at);
        let p = plan(&d);
        if open {
            assert_eq!(names(&p.steps[0]), ["1001", "1002", "1003"], "{what}");
            assert!(p.because.contains("(in hours)"), "{what}: {}", p.because);
        } else {
            assert_eq!(names(&p.steps[0]), ["1004"], "{what}");
            assert!(
                p.because.contains("(out of hours)"),
                "{what}: {}",
                p.because
            );
        }
    }
}

#[test]
fn same_instant_differs_between_zurich_and_utc() {
    let zurich = weekdays("z", "Europe/Zurich", "09:00-18:00");
    let utc_hours = weekdays("u", "UTC", "09:00-18:00");
    // (instant, open in Zurich, open in UTC)
    let rows = [
        // Winter, UTC+1.
        (utc(2024, 1, 8, 8, 30), true, false),
        (utc(2024, 1, 8, 17, 30), false, true),
        // Summer, UTC+2: 07:00 UTC is 09:00 in Zurich.
        (utc(2024, 7, 8, 6, 59), false, false),
        (utc(2024, 7, 8, 7, 0), true, false),
        (utc(2024, 7, 8, 15, 59), true, true),
        (utc(2024, 7, 8, 16, 0), false, true),
        // Monday 00:30 in Zurich is still Sunday 23:30 UTC.
        (utc(2024, 7, 7, 23, 30), false, false),
    ];
    for (at, z, u) in rows {
        assert_eq!(zurich.is_open(at), z, "Zurich at {at}");
        assert_eq!(utc_hours.is_open(at), u, "UTC at {at}");
    }
}

#[test]
fn dst_change_days_shift_opening_in_utc() {
    let mut h = OfficeHours::new("weekend", "Europe/Zurich").unwrap();
    h.set_day(Weekday::Sat, "09:00-12:00").unwrap();
    h.set_day(Weekday::Sun, "09:00-12:00").unwrap();
    let rows = [
        // Saturday 2024-03-30, CET (UTC+1).
        (utc(2024, 3, 30, 7, 59), false),
        (utc(2024, 3, 30, 8, 0), true),
        // Sunday 2024-03-31: clocks went 02:00 -> 03:00, now CEST (UTC+2).
        (utc(2024, 3, 31, 6, 59), false),
        (utc(2024, 3, 31, 7, 0), true),
        (utc(2024, 3, 31, 9, 59), true),
        (utc(2024, 3, 31, 10, 0), false),
        // Sunday 2024-10-27: back to CET.
        (utc(2024, 10, 26, 6, 59), false),
        (utc(2024, 10, 26, 7, 0), true),
        (utc(2024, 10, 27, 7, 59), false),
        (utc(2024, 10, 27, 8, 0), true),
    ];
    for (at, open) in rows {
        assert_eq!(h.is_open(at), open, "{at}");
    }
}

#[test]
fn overnight_intervals_and_split_days() {
    let mut h = OfficeHours::new("night", "UTC").unwrap();
    h.set_day(Weekday::Mon, "08:00-12:00, 13:00-17:00").unwrap();
    h.set_day(Weekday::Fri, "22:00-06:00").unwrap();
    h.holidays
        .push(NaiveDate::from_ymd_opt(2024, 1, 20).unwrap()); // a Saturday
    let rows = [
        (utc(2024, 1, 8, 11, 59), true),
        (utc(2024, 1, 8, 12, 30), false),
        (utc(2024, 1, 8, 13, 0), true),
        (utc(2024, 1, 12, 21, 59), false),
        (utc(2024, 1, 12, 22, 0), true),
        (utc(2024, 1, 13, 5, 59), true),
        (utc(2024, 1, 13, 6, 0), false),
        // The night into a holiday is closed from midnight.
        (utc(2024, 1, 19, 23, 0), true),
        (utc(2024, 1, 20, 1, 0), false),
    ];
    for (at, open) in rows {
        assert_eq!(h.is_open(at), open, "{at}");
    }
    // "24:00" ends at midnight.
    let mut late = OfficeHours::new("late", "UTC").unwrap();
    late.set_day(Weekday::Mon, "18:00-24:00").unwrap();
    assert!(late.is_open(utc(2024, 1, 8, 23, 59)));
    assert!(!late.is_open(utc(2024, 1, 9, 0, 0)));
}

#[test]
fn rule_without_office_hours_ignores_time() {
    for at in [open_time(), closed_time(), utc(2024, 12, 25, 3, 0)] {
        let d = inbound("swisscom", "41225559999", at);
        assert_eq!(names(&plan(&d).steps[0]), ["1001"]);
        assert!(!d.because().contains("hours"));
    }
}

#[test]
fn holidays_are_local_dates() {
    let mut h = OfficeHours::new("always", "Europe/Zurich").unwrap();
    for d in [Weekday::Tue, Weekday::Wed, Weekday::Thu] {
        h.set_day(d, "00:00-24:00").unwrap();
    }
    h.holidays
        .push(NaiveDate::from_ymd_opt(2024, 12, 25).unwrap());
    // 22:59 UTC on the 24th is 23:59 on the 24th in Zurich: open.
    assert!(h.is_open(utc(2024, 12, 24, 22, 59)));
    // 23:00 UTC on the 24th is midnight on the 25th in Zurich: holiday.
    assert!(!h.is_open(utc(2024, 12, 24, 23, 0)));
    assert!(!h.is_open(utc(2024, 12, 25, 22, 59)));
    assert!(h.is_open(utc(2024, 12, 25, 23, 0)));
}
