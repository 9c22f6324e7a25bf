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
use std::ops::{Range, RangeInclusive};
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

pub(crate) fn loc(file: FileId, span: Range<usize>) -> Loc {
    Loc { file, span }
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
}
