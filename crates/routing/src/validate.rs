//! Config checks: every reference resolves, names are unique, values make
//! sense. Errors name the item; the config loader adds file and line.

use std::collections::HashSet;

use crate::model::{Destination, Dialplan, Forwarding, Strategy};

/// A problem in the dial plan, naming the item it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{item}: {value:?} is not valid, expected {expected}")]
    BadValue {
        item: String,
        value: String,
        expected: String,
    },
    #[error("{item}: unknown {kind} '{name}'")]
    UnknownReference {
        item: String,
        kind: &'static str,
        name: String,
    },
    #[error("{kind} '{name}' is defined more than once")]
    Duplicate { kind: &'static str, name: String },
    #[error("{item}: {problem}")]
    Invalid { item: String, problem: String },
}

struct Checker<'a> {
    extensions: HashSet<&'a str>,
    groups: HashSet<&'a str>,
    trunks: HashSet<&'a str>,
    hours: HashSet<&'a str>,
    rules: HashSet<&'a str>,
    errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    fn unknown(&mut self, item: &str, kind: &'static str, name: &str) {
        self.errors.push(ConfigError::UnknownReference {
            item: item.to_owned(),
            kind,
            name: name.to_owned(),
        });
    }

    fn invalid(&mut self, item: &str, problem: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            item: item.to_owned(),
            problem: problem.into(),
        });
    }

    fn destination(&mut self, item: &str, dest: &Destination) {
        match dest {
            Destination::Extension(n) if !self.extensions.contains(n.as_str()) => {
                self.unknown(item, "extension", n)
            }
            Destination::RingGroup(n) if !self.groups.contains(n.as_str()) => {
                self.unknown(item, "ring group", n)
            }
            Destination::External(n) if n.trim().is_empty() => {
                self.invalid(item, "external number is empty")
            }
            _ => {}
        }
    }

    fn hours(&mut self, item: &str, name: &Option<String>) {
        if let Some(h) = name {
            if !self.hours.contains(h.as_str()) {
                self.unknown(item, "office hours", h);
            }
        }
    }

    fn forwarding(&mut self, item: &str, fw: &Forwarding) {
        let kinds = [
            ("unconditional", &fw.unconditional),
            ("busy", &fw.busy),
            ("no_answer", &fw.no_answer),
            ("not_registered", &fw.not_registered),
        ];
        for (kind, dest) in kinds {
            if let Some(d) = dest {
                self.destination(&format!("{item}.{kind}"), d);
            }
        }
    }
}

fn unique<'a>(
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
    errors: &mut Vec<ConfigError>,
) -> HashSet<&'a str> {
    let mut set = HashSet::new();
    for name in names {
        if !set.insert(name) {
            errors.push(ConfigError::Duplicate {
                kind,
                name: name.to_owned(),
            });
        }
    }
    set
}

/// Checks the dial plan; returns every problem found, not just the first.
pub fn validate(dp: &Dialplan) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let extensions = unique(
        "extension",
        dp.extensions.iter().map(|e| e.number.as_str()),
        &mut errors,
    );
    let groups = unique(
        "ring group",
        dp.ring_groups.iter().map(|g| g.number.as_str()),
        &mut errors,
    );
    let trunks = unique(
        "trunk",
        dp.trunks.iter().map(|t| t.name.as_str()),
        &mut errors,
    );
    let hours = unique(
        "office hours",
        dp.office_hours.iter().map(|h| h.name.as_str()),
        &mut errors,
    );
    let rules = unique(
        "outbound_rule",
        dp.outbound_rules.iter().map(|r| r.name.as_str()),
        &mut errors,
    );
    let mut c = Checker {
        extensions,
        groups,
        trunks,
        hours,
        rules,
        errors,
    };

    for g in &dp.ring_groups {
        if c.extensions.contains(g.number.as_str()) {
            c.invalid(
                &format!("ring group {}", g.number),
                "number is also an extension",
            );
        }
    }
    for e in &dp.extensions {
        let item = format!("extension {}", e.number);
        if e.number.is_empty() || !e.number.bytes().all(|b| b.is_ascii_digit()) {
            c.invalid(&item, "number must be digits");
        }
        if dp.emergency_numbers.contains(&e.number) {
            c.invalid(&item, "number is an emergency number");
        }
        c.forwarding(&format!("{item} forwarding"), &e.forwarding);
        if let Some(fw) = &e.out_of_hours_forwarding {
            c.forwarding(&format!("{item} out_of_hours_forwarding"), fw);
            if e.office_hours.is_none() {
                c.invalid(&item, "out_of_hours_forwarding needs office_hours");
            }
        }
        c.hours(&format!("{item} office_hours"), &e.office_hours);
        if let crate::OutboundPermission::Only(names) = &e.outbound_rules {
            for n in names {
                if !c.rules.contains(n.as_str()) {
                    c.unknown(&format!("{item} outbound_rules"), "outbound_rule", n);
                }
            }
        }
    }
    for g in &dp.ring_groups {
        let item = format!("ring group {}", g.number);
        if g.members.is_empty() {
            c.invalid(&item, "has no members");
        }
        for m in &g.members {
            if !c.extensions.contains(m.as_str()) {
                c.unknown(&format!("{item} member"), "extension", m);
            }
        }
        if g.ring_seconds == 0 && g.strategy != Strategy::RingAll {
            c.invalid(
                &item,
                "ring_seconds must be above 0 for hunt and round_robin",
            );
        }
        c.destination(&format!("{item} no_answer"), &g.no_answer);
    }
    for r in &dp.inbound_rules {
        let mut item = format!("inbound_rule did={}", r.did);
        if let Some(t) = &r.trunk {
            item.push_str(&format!(" trunk='{t}'"));
            if !c.trunks.contains(t.as_str()) {
                c.unknown(&item, "trunk", t);
            }
        }
        c.destination(&format!("{item} to"), &r.to);
        if let Some(d) = &r.out_of_hours {
            c.destination(&format!("{item} out_of_hours"), d);
            if r.office_hours.is_none() {
                c.invalid(&item, "out_of_hours needs office_hours");
            }
        }
        c.hours(&format!("{item} office_hours"), &r.office_hours);
    }
    let mut seen_inbound = HashSet::new();
    for r in &dp.inbound_rules {
        if !seen_inbound.insert((&r.did, &r.trunk)) {
            c.duplicate_inbound(r);
        }
    }
    for (i, r) in dp.outbound_rules.iter().enumerate() {
        let item = format!("outbound_rule #{} '{}'", i + 1, r.name);
        if r.trunks.is_empty() {
            c.invalid(&item, "has no trunk");
        }
        for t in &r.trunks {
            if !c.trunks.contains(t.as_str()) {
                c.unknown(&item, "trunk", t);
            }
        }
        if let (Some(min), Some(max)) = (r.min_len, r.max_len) {
            if min > max {
                c.invalid(&item, format!("min_len {min} is above max_len {max}"));
            }
        }
    }
    let routable = dp
        .outbound_rules
        .iter()
        .any(|r| r.trunks.iter().any(|t| c.trunks.contains(t.as_str())));
    if !dp.trunks.is_empty() && !dp.emergency_numbers.is_empty() && !routable {
        c.invalid(
            "emergency_numbers",
            "no outbound rule has a trunk to carry emergency calls",
        );
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

impl Checker<'_> {
    fn duplicate_inbound(&mut self, r: &crate::InboundRule) {
        let name = match &r.trunk {
            Some(t) => format!("did={} trunk='{t}'", r.did),
            None => format!("did={}", r.did),
        };
        self.errors.push(ConfigError::Duplicate {
            kind: "inbound_rule",
            name,
        });
    }
}
