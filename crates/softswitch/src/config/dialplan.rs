//! The dial plan: `[dialplan]` and the routing sections (`[[ring_group]]`,
//! `[[trunk]]`, `[[inbound_rule]]`, `[[outbound_rule]]`, `[[office_hours]]`,
//! and the routing keys of `[[extension]]`), assembled into one
//! [`routing::Dialplan`].
//!
//! Every section is checked here against the names the others declare, so
//! each bad reference is reported at the value that holds it.
//! [`routing::validate`] runs last, as a backstop for rules of the routing
//! crate this module does not repeat; what it finds is placed at the entry
//! it names.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::Path;

use routing::{ConfigError as RoutingError, Destination, Dialplan};
use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, FileId, Loc};
use super::extension::Built as BuiltExtension;
use super::extension_routing;
use super::inbound_rule::{self, RawInboundRule};
use super::load::{Item, Section};
use super::office_hours::{self, RawOfficeHours};
use super::outbound_rule::{self, RawOutboundRule};
use super::ring_group::{self, RawRingGroup};
use super::trunk::{self, RawTrunk, TrunkConfig};

/// Longest external number accepted (E.164 allows 15 digits; carriers'
/// dialling prefixes come on top).
const MAX_EXTERNAL_DIGITS: usize = 24;

/// `[dialplan]`: numbering that is not one entry's business.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDialplan {
    emergency_numbers: Option<Spanned<Vec<Spanned<String>>>>,
    international_prefixes: Option<Spanned<Vec<Spanned<String>>>>,
    national_prefixes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The routing sections of every file, merged by the loader.
#[derive(Default)]
pub(crate) struct Sections {
    pub dialplan: Option<Section<RawDialplan>>,
    pub ring_groups: Vec<Item<RawRingGroup>>,
    pub trunks: Vec<Item<RawTrunk>>,
    pub inbound_rules: Vec<Item<RawInboundRule>>,
    pub outbound_rules: Vec<Item<RawOutboundRule>>,
    pub office_hours: Vec<Item<RawOfficeHours>>,
}

/// The names each section declares, gathered before any section is built so
/// that references are checked against what the operator wrote, even where
/// the entry itself has an error of its own (no cascade of "unknown ...").
pub(crate) struct Names {
    pub extensions: HashSet<String>,
    pub ring_groups: HashSet<String>,
    pub trunks: HashSet<String>,
    pub office_hours: HashSet<String>,
    pub outbound_rules: HashSet<String>,
    pub emergency_numbers: Vec<String>,
}

impl Names {
    /// Resolves a destination the operator wrote: `"hangup"`, else an
    /// extension, else a ring group, else an external number (digits with an
    /// optional leading `+`). Anything else is reported at `value`.
    pub fn destination(
        &self,
        value: &Spanned<String>,
        file: FileId,
        what: &str,
        diag: &mut Diag,
    ) -> Option<Destination> {
        let text = value.get_ref().trim();
        if text.eq_ignore_ascii_case("hangup") {
            return Some(Destination::Hangup);
        }
        if self.extensions.contains(text) {
            return Some(Destination::Extension(text.to_owned()));
        }
        if self.ring_groups.contains(text) {
            return Some(Destination::RingGroup(text.to_owned()));
        }
        if is_external_number(text) {
            return Some(Destination::External(text.to_owned()));
        }
        diag.at(
            &at(file, value),
            format!(
                "{what}: `{text}` is not an extension, a ring group, an external number (digits, optional leading +) or \"hangup\""
            ),
        );
        None
    }
}

/// What the routing sections become.
pub(crate) struct Built {
    pub dialplan: Dialplan,
    pub trunks: Vec<TrunkConfig>,
}

/// Where each entry is, to place what [`routing::validate`] reports.
#[derive(Default)]
pub(crate) struct Anchors {
    /// Item prefixes as the routing crate writes them (`"extension 1001"`,
    /// `"ring group 800"`, ...) and the entry's position.
    pub items: Vec<(String, Loc)>,
    /// `(kind, name)` of named entries, for duplicates.
    pub names: Vec<(&'static str, String, Loc)>,
}

impl Anchors {
    pub fn add(&mut self, kind: &'static str, name: &str, item: String, loc: Loc) {
        self.names.push((kind, name.to_owned(), loc.clone()));
        self.items.push((item, loc));
    }

    fn find(&self, e: &RoutingError) -> Option<&Loc> {
        match e {
            RoutingError::Duplicate { kind, name } => self
                .names
                .iter()
                .filter(|(k, n, _)| k == kind && n == name)
                .map(|(_, _, l)| l)
                .nth(1),
            RoutingError::BadValue { item, .. }
            | RoutingError::UnknownReference { item, .. }
            | RoutingError::Invalid { item, .. } => self
                .items
                .iter()
                .filter(|(prefix, _)| item.starts_with(prefix.as_str()))
                // The first entry of the longest prefix (`max_by_key` keeps the last).
                .rev()
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, l)| l),
        }
    }
}

pub(crate) fn build(
    sections: Sections,
    extensions: &[BuiltExtension],
    declared_extensions: HashSet<String>,
    dir: &Path,
    diag: &mut Diag,
) -> Option<Built> {
    let errors_before = diag.error_count();
    let mut dialplan = Dialplan::default();
    if let Some(section) = &sections.dialplan {
        numbering(section, &mut dialplan, diag);
    }

    let names = Names {
        extensions: declared_extensions,
        ring_groups: sections
            .ring_groups
            .iter()
            .map(|i| i.value.number())
            .collect(),
        trunks: sections.trunks.iter().map(|i| i.value.name()).collect(),
        office_hours: sections
            .office_hours
            .iter()
            .map(|i| i.value.name())
            .collect(),
        outbound_rules: sections
            .outbound_rules
            .iter()
            .enumerate()
            .map(|(n, i)| i.value.name(n))
            .collect(),
        emergency_numbers: dialplan.emergency_numbers.clone(),
    };

    let mut anchors = Anchors::default();
    dialplan.office_hours = office_hours::build(sections.office_hours, &mut anchors, diag);
    let trunks = trunk::build(sections.trunks, &mut anchors, diag);
    dialplan.ring_groups = ring_group::build(sections.ring_groups, &names, &mut anchors, diag);
    dialplan.inbound_rules =
        inbound_rule::build(sections.inbound_rules, &names, &mut anchors, diag);
    dialplan.outbound_rules =
        outbound_rule::build(sections.outbound_rules, &names, &mut anchors, diag);
    dialplan.extensions = extension_routing::build(extensions, &names, &mut anchors, diag);
    let (routing_trunks, trunk_configs): (Vec<_>, Vec<_>) =
        trunks.into_iter().map(|t| (t.trunk, t.config)).unzip();
    dialplan.trunks = routing_trunks;

    // Emergency calls go out through the first outbound rule; a PBX with a
    // trunk and no rule could not place them.
    if names.outbound_rules.is_empty() && !dialplan.emergency_numbers.is_empty() {
        if let Some((_, trunk, first)) = anchors.names.iter().find(|(k, _, _)| *k == "trunk") {
            diag.at(
                first,
                format!(
                    "trunk `{trunk}`: no [[outbound_rule]] sends calls to a trunk, so emergency numbers ({}) cannot be dialled; add a rule",
                    dialplan.emergency_numbers.join(", ")
                ),
            );
        }
    }

    if diag.error_count() != errors_before {
        return None;
    }
    if let Err(errors) = routing::validate(&dialplan) {
        for e in &errors {
            match anchors.find(e) {
                Some(loc) => diag.at(loc, e.to_string()),
                None => diag.whole(dir, e.to_string()),
            }
        }
        return None;
    }
    Some(Built {
        dialplan,
        trunks: trunk_configs,
    })
}

/// `[dialplan]`'s lists, each replacing its default when given.
fn numbering(section: &Section<RawDialplan>, dialplan: &mut Dialplan, diag: &mut Diag) {
    let file = section.file;
    let raw = &section.value;
    if let Some(list) = &raw.emergency_numbers {
        dialplan.emergency_numbers = list
            .get_ref()
            .iter()
            .filter_map(|n| {
                let text = n.get_ref().trim();
                if is_digits(text, 1..=10) {
                    Some(text.to_owned())
                } else {
                    diag.at(
                        &at(file, n),
                        format!("[dialplan] emergency number `{text}` must be 1 to 10 digits"),
                    );
                    None
                }
            })
            .collect();
    }
    for (key, list, out) in [
        (
            "international_prefixes",
            &raw.international_prefixes,
            &mut dialplan.international_prefixes,
        ),
        (
            "national_prefixes",
            &raw.national_prefixes,
            &mut dialplan.national_prefixes,
        ),
    ] {
        let Some(list) = list else { continue };
        *out = list
            .get_ref()
            .iter()
            .filter_map(|p| {
                let text = p.get_ref().trim();
                if is_prefix(text) {
                    Some(text.to_owned())
                } else {
                    diag.at(
                        &at(file, p),
                        format!("[dialplan] `{key}`: `{text}` must be digits with an optional leading +"),
                    );
                    None
                }
            })
            .collect();
    }
}

/// The position of a spanned value in `file`.
pub(crate) fn at<T>(file: FileId, value: &Spanned<T>) -> Loc {
    Loc {
        file,
        span: value.span(),
    }
}

/// An integer setting within `range`, reported at its position otherwise.
pub(crate) fn int_in(
    value: &Spanned<i64>,
    range: RangeInclusive<i64>,
    what: &str,
    file: FileId,
    diag: &mut Diag,
) -> Option<u32> {
    let n = *value.get_ref();
    match u32::try_from(n) {
        Ok(v) if range.contains(&n) => Some(v),
        _ => {
            diag.at(
                &at(file, value),
                format!("{what} {n} must be {} to {}", range.start(), range.end()),
            );
            None
        }
    }
}

/// Reports the second and later occurrences of a name within one section.
pub(crate) struct Unique {
    kind: &'static str,
    seen: HashMap<String, Loc>,
}

impl Unique {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            seen: HashMap::new(),
        }
    }

    /// Whether `name` is new; reports it at `loc` otherwise.
    pub fn insert(&mut self, name: &str, loc: &Loc, diag: &mut Diag) -> bool {
        if let Some(first) = self.seen.get(name) {
            let first = diag.describe(first);
            diag.at(
                loc,
                format!("{} `{name}` is defined twice: first at {first}", self.kind),
            );
            return false;
        }
        self.seen.insert(name.to_owned(), loc.clone());
        true
    }
}

/// `len` ASCII digits.
pub(crate) fn is_digits(s: &str, len: RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A number outside the PBX: digits with an optional leading `+`.
pub(crate) fn is_external_number(s: &str) -> bool {
    is_digits(s.strip_prefix('+').unwrap_or(s), 1..=MAX_EXTERNAL_DIGITS)
}

/// A dialling prefix: digits with an optional leading `+`, or `+` alone.
pub(crate) fn is_prefix(s: &str) -> bool {
    s == "+" || is_external_number(s)
}

/// A name of a trunk, rule or schedule: printable, on one line, 1 to 64
/// characters.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;
    use std::path::Path;

    fn loc(file: FileId, span: Range<usize>) -> Loc {
        Loc { file, span }
    }

    #[test]
    fn number_shapes() {
        assert!(is_external_number("+41225550100"));
        assert!(is_external_number("0041225550100"));
        assert!(!is_external_number("+"));
        assert!(!is_external_number("12a"));
        assert!(!is_external_number("++41"));
        assert!(is_prefix("+") && is_prefix("00") && !is_prefix("") && !is_prefix("0x"));
        assert!(is_digits("112", 1..=10) && !is_digits("", 1..=10));
    }

    #[test]
    fn anchors_find_the_longest_item_prefix_and_the_second_duplicate() {
        let mut anchors = Anchors::default();
        anchors.add("extension", "100", "extension 100".into(), loc(0, 1..2));
        anchors.add("extension", "1001", "extension 1001".into(), loc(0, 5..6));
        anchors.add("extension", "1001", "extension 1001".into(), loc(0, 9..10));
        let e = RoutingError::Invalid {
            item: "extension 1001 forwarding.busy".into(),
            problem: "x".into(),
        };
        assert_eq!(anchors.find(&e).map(|l| l.span.clone()), Some(5..6));
        let d = RoutingError::Duplicate {
            kind: "extension",
            name: "1001".into(),
        };
        assert_eq!(anchors.find(&d).map(|l| l.span.clone()), Some(9..10));
        let none = RoutingError::Invalid {
            item: "emergency_numbers".into(),
            problem: "x".into(),
        };
        assert!(anchors.find(&none).is_none());
    }

    fn fixture() -> crate::config::Config {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/routing");
        crate::config::load(&dir).unwrap()
    }

    #[test]
    fn readme_example_builds_the_whole_dialplan() {
        use routing::{OutboundPermission, Presentation, Strategy};
        let config = fixture();
        let dp = &config.dialplan;

        let alice = &dp.extensions[0];
        assert_eq!(
            (alice.number.as_str(), alice.name.as_str()),
            ("1001", "Alice")
        );
        let fw = &alice.forwarding;
        assert_eq!(fw.unconditional, None);
        assert_eq!(fw.busy, Some(Destination::RingGroup("800".into())));
        assert_eq!(fw.no_answer, Some(Destination::Extension("1002".into())));
        assert_eq!(fw.no_answer_seconds, 15);
        assert_eq!(
            fw.not_registered,
            Some(Destination::External("+41795550123".into()))
        );
        assert_eq!(alice.office_hours.as_deref(), Some("office"));
        let ooh = alice.out_of_hours_forwarding.as_ref().unwrap();
        assert_eq!(ooh.unconditional, Some(Destination::Hangup));
        assert_eq!((ooh.busy.as_ref(), ooh.no_answer_seconds), (None, 15));
        assert_eq!(alice.max_simultaneous_calls, 2);
        assert_eq!(alice.outbound_caller_id.as_deref(), Some("+41225550101"));
        assert_eq!(
            alice.outbound_rules,
            OutboundPermission::Only(vec!["national".into(), "international".into()])
        );
        assert!(alice.international && !alice.dnd);
        let bob = &dp.extensions[1];
        assert_eq!(bob.forwarding, routing::Forwarding::default());
        assert_eq!(bob.out_of_hours_forwarding, None);
        assert_eq!(bob.max_simultaneous_calls, 0);
        assert_eq!(bob.outbound_rules, OutboundPermission::All);
        assert!(!bob.international);
        assert!(bob.dnd && !dp.extensions[2].dnd);

        let group = &dp.ring_groups[0];
        assert_eq!(group.name, "Reception");
        assert_eq!(group.strategy, Strategy::Hunt);
        assert_eq!(group.members, ["1001", "1002"]);
        assert_eq!(group.ring_seconds, 20);
        assert_eq!(group.no_answer, Destination::Extension("1003".into()));

        let (provider, backup) = (&dp.trunks[0], &dp.trunks[1]);
        assert_eq!(provider.dids, ["41225550100", "41225550101"]);
        assert_eq!(
            (provider.max_calls, provider.presentation),
            (10, Presentation::Extension)
        );
        assert_eq!(provider.codecs, ["PCMA", "G722"]);
        assert_eq!(backup.presentation, Presentation::MainNumber);
        assert_eq!(backup.main_number, "+41225550100");

        let tc = &config.trunks[0];
        assert_eq!((tc.host.as_str(), tc.port), ("sip.provider.example", 5060));
        assert_eq!(tc.transport, sip::TransportKind::Udp);
        assert_eq!(tc.domain, "sip.provider.example");
        assert_eq!(tc.username.as_deref(), Some("41225550100"));
        assert_eq!(tc.password.as_deref(), Some("given-by-the-provider"));
        assert!(tc.register);
        assert_eq!((tc.expires, tc.auth_username.as_deref()), (3600, None));
        let tb = &config.trunks[1];
        assert_eq!(
            tb.allowed_ips,
            ["203.0.113.21".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(!tb.register && tb.password.is_none());
        assert!(
            !format!("{tc:?}").contains("given-by"),
            "Debug shows a password"
        );

        let inbound = &dp.inbound_rules[0];
        assert_eq!(inbound.to, Destination::RingGroup("800".into()));
        assert_eq!(
            inbound.out_of_hours,
            Some(Destination::Extension("1003".into()))
        );
        assert_eq!(inbound.office_hours.as_deref(), Some("office"));
        assert_eq!(dp.inbound_rules[1].trunk.as_deref(), Some("provider"));

        let national = &dp.outbound_rules[0];
        assert_eq!(
            (national.name.as_str(), national.prefix.as_str()),
            ("national", "0")
        );
        assert_eq!((national.min_len, national.max_len), (Some(10), Some(10)));
        assert_eq!((national.strip, national.prepend.as_str()), (1, "+41"));
        assert_eq!(national.trunks, ["provider", "backup"]);
        assert_eq!(national.extensions[0].to_string(), "1001-1099");

        let office = &dp.office_hours[0];
        assert_eq!(office.time_zone, routing::chrono_tz::Europe::Zurich);
        assert_eq!(office.week[0].len(), 2);
        assert_eq!(office.week[4][1].to_string(), "13:00-16:00");
        assert!(office.week[5].is_empty() && office.week[6].is_empty());
        assert_eq!(office.holidays.len(), 3);
        assert_eq!(dp.national_prefixes, ["+41", "0041"]);
        assert_eq!(dp.emergency_numbers, ["112", "117", "118", "144"]);
    }

    #[test]
    fn readme_example_routes_as_documented() {
        use routing::chrono::{TimeZone, Utc};
        use routing::{Caller, Decision, MemoryState, RouteRequest, Router, Target};
        let router = Router::new(fixture().dialplan);
        let state = MemoryState::registered(["1001", "1002", "1003"]);
        // Monday 2026-03-02, 10:00 in Zurich (09:00 UTC): open; 20:00: closed.
        let open = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let closed = Utc.with_ymd_and_hms(2026, 3, 2, 19, 0, 0).unwrap();
        let caller = Caller::Trunk {
            name: "provider".into(),
            caller_number: "+41795550000".into(),
        };
        let targets = |now| {
            let req = RouteRequest {
                from: &caller,
                dialled: "41225550100",
                now,
                state: &state,
            };
            match router.route(&req) {
                Decision::Plan(plan) => plan.steps[0].targets.clone(),
                other => panic!("{other:?}"),
            }
        };
        // In hours the hunt group rings Alice first; out of hours Carol.
        assert_eq!(targets(open), [Target::Extension("1001".into())]);
        assert_eq!(targets(closed), [Target::Extension("1003".into())]);
    }
}
