//! `[[outbound_rule]]`: which trunks carry a dialled external number, how
//! the number is rewritten, and who may use the rule. The first matching
//! rule, in file order, wins.

use std::collections::HashSet;

use routing::{NumberRange, OutboundRule};
use serde::Deserialize;
use toml::Spanned;

use super::dialplan::{at, int_in, is_external_number, is_name, is_prefix, Anchors, Names, Unique};
use super::error::Diag;
use super::load::Item;

/// Longest number a rule's length range may name.
const MAX_LENGTH: i64 = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutboundRule {
    name: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    min_length: Option<Spanned<i64>>,
    max_length: Option<Spanned<i64>>,
    strip: Option<Spanned<i64>>,
    prepend: Option<Spanned<String>>,
    trunks: Spanned<Vec<Spanned<String>>>,
    extensions: Option<Vec<Spanned<String>>>,
}

impl RawOutboundRule {
    /// The rule's name; `index` counts from 0 over every file's rules.
    pub fn name(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.get_ref().trim().to_owned(),
            None => format!("rule {}", index + 1),
        }
    }
}

pub(crate) fn build(
    items: Vec<Item<RawOutboundRule>>,
    names: &Names,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<OutboundRule> {
    let mut unique = Unique::new("outbound_rule");
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let file = item.file;
        let raw = item.value;
        let errors_before = diag.error_count();
        let name = raw.name(index);
        // An unnamed rule is located by its trunks, the one key it must have.
        let name_at = raw
            .name
            .as_ref()
            .map_or_else(|| at(file, &raw.trunks), |n| at(file, n));
        if !is_name(&name) {
            diag.at(
                &name_at,
                "outbound_rule `name` must be 1 to 64 printable characters on one line",
            );
        } else {
            unique.insert(&name, &name_at, diag);
        }
        anchors.add(
            "outbound_rule",
            &name,
            format!("outbound_rule #{} '{name}'", index + 1),
            name_at,
        );
        let label = format!("outbound_rule `{name}`");

        let digits = |key: &str, v: &Option<Spanned<String>>, diag: &mut Diag| {
            let Some(v) = v else {
                return String::new();
            };
            let s = v.get_ref().trim();
            if !s.is_empty() && !is_prefix(s) {
                diag.at(
                    &at(file, v),
                    format!("{label}: `{key}` `{s}` must be digits with an optional leading +"),
                );
            }
            s.to_owned()
        };
        let prefix = digits("prefix", &raw.prefix, diag);
        let prepend = digits("prepend", &raw.prepend, diag);
        let strip = raw.strip.as_ref().map_or(Some(0), |s| {
            int_in(s, 0..=MAX_LENGTH, &format!("{label}: `strip`"), file, diag)
        });
        let length = |v: &Option<Spanned<i64>>, key: &str, diag: &mut Diag| {
            v.as_ref().map(|v| {
                int_in(v, 1..=MAX_LENGTH, &format!("{label}: `{key}`"), file, diag)
                    .map(|n| n as usize)
            })
        };
        let min_len = length(&raw.min_length, "min_length", diag);
        let max_len = length(&raw.max_length, "max_length", diag);
        if let (Some(Some(min)), Some(Some(max)), Some(m)) = (min_len, max_len, &raw.min_length) {
            if min > max {
                diag.at(
                    &at(file, m),
                    format!("{label}: `min_length` {min} is above `max_length` {max}"),
                );
            }
        }

        let mut trunks = Vec::new();
        if raw.trunks.get_ref().is_empty() {
            diag.at(
                &at(file, &raw.trunks),
                format!("{label}: `trunks` is empty; list the trunks that carry these calls"),
            );
        }
        let mut listed = HashSet::new();
        for t in raw.trunks.get_ref() {
            let trunk = t.get_ref().trim();
            if !names.trunks.contains(trunk) {
                diag.at(
                    &at(file, t),
                    format!("{label}: trunk `{trunk}` is not a [[trunk]] name"),
                );
            } else if !listed.insert(trunk) {
                diag.at(
                    &at(file, t),
                    format!("{label}: trunk `{trunk}` is listed twice"),
                );
            } else {
                trunks.push(trunk.to_owned());
            }
        }

        let mut extensions = Vec::new();
        for e in raw.extensions.iter().flatten() {
            let text = e.get_ref().trim();
            let parsed = text
                .parse::<NumberRange>()
                .ok()
                .filter(|r| is_external_number(&r.first) && !r.first.starts_with('+'));
            match parsed {
                Some(range) => extensions.push(range),
                None => diag.at(
                    &at(file, e),
                    format!("{label}: `extensions` entry `{text}` must be an extension number or a range like \"1001-1099\""),
                ),
            }
        }

        // A bad value was reported above; the rule is then left out.
        if diag.error_count() == errors_before {
            out.push(OutboundRule {
                name,
                prefix,
                min_len: min_len.flatten(),
                max_len: max_len.flatten(),
                extensions,
                strip: strip.unwrap_or(0) as usize,
                prepend,
                trunks,
            });
        }
    }
    out
}
