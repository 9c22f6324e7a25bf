//! `[[ring_group]]`: a number that rings several extensions at once, in
//! order, or in turn, then goes to its `no_answer` destination.

use std::collections::HashSet;

use routing::{Destination, RingGroup, Strategy};
use serde::Deserialize;
use toml::Spanned;

use super::dialplan::{at, int_in, is_digits, is_name, Anchors, Names, Unique};
use super::error::Diag;
use super::load::Item;

pub const DEFAULT_RING_SECONDS: u32 = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRingGroup {
    number: Spanned<String>,
    name: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    members: Spanned<Vec<Spanned<String>>>,
    ring_seconds: Option<Spanned<i64>>,
    no_answer: Option<Spanned<String>>,
}

impl RawRingGroup {
    pub fn number(&self) -> String {
        self.number.get_ref().trim().to_owned()
    }
}

pub(crate) fn build(
    items: Vec<Item<RawRingGroup>>,
    names: &Names,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<RingGroup> {
    let mut unique = Unique::new("ring group");
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let raw = item.value;
        let errors_before = diag.error_count();
        let number = raw.number();
        let number_at = at(file, &raw.number);
        if !is_digits(&number, 2..=10) {
            diag.at(
                &number_at,
                format!("ring group number `{number}` must be 2 to 10 digits"),
            );
        } else if names.extensions.contains(&number) {
            diag.at(
                &number_at,
                format!("ring group number {number} is also an extension number"),
            );
        } else if names.emergency_numbers.contains(&number) {
            diag.at(
                &number_at,
                format!("ring group number {number} is an emergency number"),
            );
        } else {
            unique.insert(&number, &number_at, diag);
        }
        anchors.add(
            "ring group",
            &number,
            format!("ring group {number}"),
            number_at,
        );
        let item_name = format!("ring group {number}");

        let name = match &raw.name {
            Some(n) => {
                let s = n.get_ref().trim();
                if !is_name(s) {
                    diag.at(
                        &at(file, n),
                        format!(
                            "{item_name}: `name` must be 1 to 64 printable characters on one line"
                        ),
                    );
                }
                s.to_owned()
            }
            None => number.clone(),
        };
        let strategy = match &raw.strategy {
            None => Some(Strategy::RingAll),
            Some(s) => match s.get_ref().trim() {
                "ring_all" => Some(Strategy::RingAll),
                "hunt" => Some(Strategy::Hunt),
                "round_robin" => Some(Strategy::RoundRobin),
                other => {
                    diag.at(
                        &at(file, s),
                        format!("{item_name}: `strategy` `{other}` must be \"ring_all\", \"hunt\" or \"round_robin\""),
                    );
                    None
                }
            },
        };

        let mut members = Vec::new();
        let mut listed = HashSet::new();
        if raw.members.get_ref().is_empty() {
            diag.at(
                &at(file, &raw.members),
                format!("{item_name}: `members` is empty; list the extensions it rings"),
            );
        }
        for m in raw.members.get_ref() {
            let member = m.get_ref().trim();
            let cause = if names.extensions.contains(member) {
                if listed.insert(member.to_owned()) {
                    members.push(member.to_owned());
                    continue;
                }
                format!("{item_name}: member {member} is listed twice")
            } else if names.ring_groups.contains(member) {
                format!("{item_name}: member {member} is a ring group; members must be extensions")
            } else {
                format!("{item_name}: member `{member}` is not an extension")
            };
            diag.at(&at(file, m), cause);
        }

        let ring_seconds = match &raw.ring_seconds {
            None => Some(DEFAULT_RING_SECONDS),
            Some(s) => int_in(
                s,
                1..=3600,
                &format!("{item_name}: `ring_seconds`"),
                file,
                diag,
            ),
        };
        let no_answer = match &raw.no_answer {
            None => Some(Destination::Hangup),
            Some(d) => {
                if d.get_ref().trim() == number {
                    diag.at(
                        &at(file, d),
                        format!("{item_name}: `no_answer` sends the call back to the group itself"),
                    );
                    None
                } else {
                    names.destination(d, file, &format!("{item_name}: `no_answer`"), diag)
                }
            }
        };

        if let (Some(strategy), Some(ring_seconds), Some(no_answer), true) = (
            strategy,
            ring_seconds,
            no_answer,
            diag.error_count() == errors_before,
        ) {
            out.push(RingGroup {
                number,
                name,
                strategy,
                members,
                ring_seconds,
                no_answer,
            });
        }
    }
    out
}
