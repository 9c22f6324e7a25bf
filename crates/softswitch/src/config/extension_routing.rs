//! The routing keys of `[[extension]]`: forwarding (in and out of office
//! hours), DND, the call limit, caller ID and outbound permissions.

use routing::{Extension, Forwarding, OutboundPermission};
use toml::Spanned;

use super::dialplan::{at, int_in, is_external_number, Anchors, Names};
use super::error::{Diag, FileId, Loc};
use super::extension::{Built as BuiltExtension, RawExtension};
use super::inbound_rule::office_hours_ref;

pub const DEFAULT_NO_ANSWER_SECONDS: u32 = 20;
/// Calls an extension takes at once unless `max_calls` says otherwise: no
/// limit, so a phone on a call decides itself (call waiting, or busy).
pub const DEFAULT_MAX_CALLS: u32 = 0;

/// The routing keys of one `[[extension]]`, taken out of its raw shape.
#[derive(Default)]
pub(crate) struct RawExtensionRouting {
    file: FileId,
    number_at: Option<Loc>,
    forward_always: Option<Spanned<String>>,
    forward_busy: Option<Spanned<String>>,
    forward_no_answer: Option<Spanned<String>>,
    forward_no_answer_seconds: Option<Spanned<i64>>,
    forward_unregistered: Option<Spanned<String>>,
    out_of_hours_forward_always: Option<Spanned<String>>,
    out_of_hours_forward_busy: Option<Spanned<String>>,
    out_of_hours_forward_no_answer: Option<Spanned<String>>,
    out_of_hours_forward_unregistered: Option<Spanned<String>>,
    office_hours: Option<Spanned<String>>,
    dnd: Option<bool>,
    max_calls: Option<Spanned<i64>>,
    outbound_caller_id: Option<Spanned<String>>,
    outbound_rules: Option<Vec<Spanned<String>>>,
    international: Option<bool>,
}

impl RawExtensionRouting {
    /// Moves the routing keys out of `raw`, whose `number` is at `number_at`.
    pub fn take(file: FileId, number_at: &Loc, raw: &mut RawExtension) -> Self {
        Self {
            file,
            number_at: Some(number_at.clone()),
            forward_always: raw.forward_always.take(),
            forward_busy: raw.forward_busy.take(),
            forward_no_answer: raw.forward_no_answer.take(),
            forward_no_answer_seconds: raw.forward_no_answer_seconds.take(),
            forward_unregistered: raw.forward_unregistered.take(),
            out_of_hours_forward_always: raw.out_of_hours_forward_always.take(),
            out_of_hours_forward_busy: raw.out_of_hours_forward_busy.take(),
            out_of_hours_forward_no_answer: raw.out_of_hours_forward_no_answer.take(),
            out_of_hours_forward_unregistered: raw.out_of_hours_forward_unregistered.take(),
            office_hours: raw.office_hours.take(),
            dnd: raw.dnd.take(),
            max_calls: raw.max_calls.take(),
            outbound_caller_id: raw.outbound_caller_id.take(),
            outbound_rules: raw.outbound_rules.take(),
            international: raw.international.take(),
        }
    }
}

pub(crate) fn build(
    extensions: &[BuiltExtension],
    names: &Names,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<Extension> {
    let mut out = Vec::with_capacity(extensions.len());
    for built in extensions {
        let ext = &built.extension;
        let raw = &built.routing;
        let file = raw.file;
        let errors_before = diag.error_count();
        if let Some(number_at) = &raw.number_at {
            anchors.add(
                "extension",
                &ext.number,
                format!("extension {}", ext.number),
                number_at.clone(),
            );
            if names.emergency_numbers.contains(&ext.number) {
                diag.at(
                    number_at,
                    format!(
                        "extension number {} is an emergency number (see [dialplan] emergency_numbers)",
                        ext.number
                    ),
                );
            }
        }
        let label = format!("extension {}", ext.number);

        let no_answer_seconds = match &raw.forward_no_answer_seconds {
            None => DEFAULT_NO_ANSWER_SECONDS,
            Some(s) => int_in(
                s,
                1..=3600,
                &format!("{label}: `forward_no_answer_seconds`"),
                file,
                diag,
            )
            .unwrap_or(DEFAULT_NO_ANSWER_SECONDS),
        };
        let dest = |key: &str, v: &Option<Spanned<String>>, diag: &mut Diag| {
            let v = v.as_ref()?;
            if v.get_ref().trim() == ext.number {
                diag.at(
                    &at(file, v),
                    format!("{label}: `{key}` forwards the extension to itself"),
                );
                return None;
            }
            names.destination(v, file, &format!("{label}: `{key}`"), diag)
        };
        let forwarding = Forwarding {
            unconditional: dest("forward_always", &raw.forward_always, diag),
            busy: dest("forward_busy", &raw.forward_busy, diag),
            no_answer: dest("forward_no_answer", &raw.forward_no_answer, diag),
            no_answer_seconds,
            not_registered: dest("forward_unregistered", &raw.forward_unregistered, diag),
        };
        let out_of_hours_keys = [
            &raw.out_of_hours_forward_always,
            &raw.out_of_hours_forward_busy,
            &raw.out_of_hours_forward_no_answer,
            &raw.out_of_hours_forward_unregistered,
        ];
        let first_out_of_hours = out_of_hours_keys.iter().find_map(|k| k.as_ref());
        let out_of_hours_forwarding = first_out_of_hours.map(|_| Forwarding {
            unconditional: dest(
                "out_of_hours_forward_always",
                &raw.out_of_hours_forward_always,
                diag,
            ),
            busy: dest(
                "out_of_hours_forward_busy",
                &raw.out_of_hours_forward_busy,
                diag,
            ),
            no_answer: dest(
                "out_of_hours_forward_no_answer",
                &raw.out_of_hours_forward_no_answer,
                diag,
            ),
            no_answer_seconds,
            not_registered: dest(
                "out_of_hours_forward_unregistered",
                &raw.out_of_hours_forward_unregistered,
                diag,
            ),
        });
        if let (Some(first), None) = (first_out_of_hours, &raw.office_hours) {
            diag.at(
                &at(file, first),
                format!("{label}: the out_of_hours_forward_* keys need `office_hours` (the schedule that says when the office is closed)"),
            );
        }
        let office_hours = raw
            .office_hours
            .as_ref()
            .map(|h| office_hours_ref(h, names, file, &label, diag));

        let max_simultaneous_calls = match &raw.max_calls {
            None => DEFAULT_MAX_CALLS,
            Some(m) => int_in(m, 0..=1000, &format!("{label}: `max_calls`"), file, diag)
                .unwrap_or(DEFAULT_MAX_CALLS),
        };
        let outbound_caller_id = raw.outbound_caller_id.as_ref().map(|c| {
            let s = c.get_ref().trim();
            if !is_external_number(s) {
                diag.at(
                    &at(file, c),
                    format!("{label}: `outbound_caller_id` `{s}` must be digits with an optional leading +"),
                );
            }
            s.to_owned()
        });
        let outbound_rules = match &raw.outbound_rules {
            None => OutboundPermission::All,
            Some(list) => OutboundPermission::Only(
                list.iter()
                    .map(|r| {
                        let name = r.get_ref().trim();
                        if !names.outbound_rules.contains(name) {
                            diag.at(
                                &at(file, r),
                                format!("{label}: `outbound_rules` entry `{name}` is not an [[outbound_rule]] name (unnamed rules are \"rule 1\", \"rule 2\", ... in file order)"),
                            );
                        }
                        name.to_owned()
                    })
                    .collect(),
            ),
        };

        if diag.error_count() == errors_before {
            out.push(Extension {
                number: ext.number.clone(),
                name: ext.name.clone(),
                forwarding,
                office_hours,
                out_of_hours_forwarding,
                dnd: raw.dnd.unwrap_or(false),
                max_simultaneous_calls,
                outbound_caller_id,
                outbound_rules,
                international: raw.international.unwrap_or(false),
            });
        }
    }
    out
}
