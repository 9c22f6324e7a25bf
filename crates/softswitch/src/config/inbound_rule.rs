//! `[[inbound_rule]]`: where calls to a DID go, in and out of office hours.

use std::collections::HashMap;

use routing::{DidPattern, InboundRule};
use serde::Deserialize;
use toml::Spanned;

use super::dialplan::{at, is_external_number, Anchors, Names};
use super::error::{Diag, Loc};
use super::load::Item;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInboundRule {
    did: Spanned<String>,
    trunk: Option<Spanned<String>>,
    to: Spanned<String>,
    out_of_hours: Option<Spanned<String>>,
    office_hours: Option<Spanned<String>>,
}

pub(crate) fn build(
    items: Vec<Item<RawInboundRule>>,
    names: &Names,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<InboundRule> {
    let mut seen: HashMap<(DidPattern, Option<String>), Loc> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let raw = item.value;
        let errors_before = diag.error_count();
        let did_text = raw.did.get_ref().trim();
        let did_at = at(file, &raw.did);
        let valid_did = match did_text.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => is_external_number(prefix),
            None => is_external_number(did_text),
        };
        let did = DidPattern::parse(did_text);
        let trunk = raw.trunk.as_ref().map(|t| t.get_ref().trim().to_owned());
        let mut item_name = format!("inbound_rule did={did}");
        if let Some(t) = &trunk {
            item_name.push_str(&format!(" trunk='{t}'"));
        }
        anchors.add(
            "inbound_rule",
            item_name.trim_start_matches("inbound_rule "),
            item_name.clone(),
            did_at.clone(),
        );
        let label = format!("inbound_rule `{did_text}`");

        if !valid_did {
            diag.at(
                &did_at,
                format!("{label}: `did` must be digits with an optional leading +, a prefix ending in * (\"4122555*\"), or \"*\" for any"),
            );
        } else {
            let key = (did.clone(), trunk.clone());
            if let Some(first) = seen.get(&key) {
                let first = diag.describe(first);
                let on = trunk
                    .as_ref()
                    .map(|t| format!(" on trunk `{t}`"))
                    .unwrap_or_default();
                diag.at(
                    &did_at,
                    format!("{label}: DID {did}{on} already has an inbound rule at {first}"),
                );
            } else {
                seen.insert(key, did_at.clone());
            }
        }
        if let (Some(t), Some(name)) = (&raw.trunk, &trunk) {
            if !names.trunks.contains(name) {
                diag.at(
                    &at(file, t),
                    format!("{label}: `trunk` `{name}` is not a [[trunk]] name"),
                );
            }
        }
        let to = names.destination(&raw.to, file, &format!("{label}: `to`"), diag);
        let out_of_hours = raw
            .out_of_hours
            .as_ref()
            .and_then(|d| names.destination(d, file, &format!("{label}: `out_of_hours`"), diag));
        let office_hours = raw
            .office_hours
            .as_ref()
            .map(|h| office_hours_ref(h, names, file, &label, diag));
        if let (Some(d), None) = (&raw.out_of_hours, &raw.office_hours) {
            diag.at(
                &at(file, d),
                format!("{label}: `out_of_hours` needs `office_hours` (the schedule that says when the office is closed)"),
            );
        }

        if let (Some(to), true) = (to, diag.error_count() == errors_before) {
            out.push(InboundRule {
                did,
                trunk,
                to,
                out_of_hours,
                office_hours,
            });
        }
    }
    out
}

/// A reference to an `[[office_hours]]` by name, reported where it is unknown.
pub(crate) fn office_hours_ref(
    value: &Spanned<String>,
    names: &Names,
    file: usize,
    label: &str,
    diag: &mut Diag,
) -> String {
    let name = value.get_ref().trim();
    if !names.office_hours.contains(name) {
        diag.at(
            &at(file, value),
            format!("{label}: `office_hours` `{name}` is not an [[office_hours]] name"),
        );
    }
    name.to_owned()
}
