//! `[[office_hours]]`: named weekly schedules in a time zone, with holidays,
//! that switch extensions and inbound rules to their out-of-hours
//! destinations.

use routing::chrono::{NaiveDate, Weekday};
use routing::OfficeHours;
use serde::Deserialize;
use toml::Spanned;

use super::dialplan::{at, is_name, Anchors, Unique};
use super::error::Diag;
use super::load::Item;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOfficeHours {
    name: Spanned<String>,
    time_zone: Spanned<String>,
    monday: Option<Spanned<String>>,
    tuesday: Option<Spanned<String>>,
    wednesday: Option<Spanned<String>>,
    thursday: Option<Spanned<String>>,
    friday: Option<Spanned<String>>,
    saturday: Option<Spanned<String>>,
    sunday: Option<Spanned<String>>,
    holidays: Option<Vec<Spanned<String>>>,
}

impl RawOfficeHours {
    pub fn name(&self) -> String {
        self.name.get_ref().trim().to_owned()
    }
}

pub(crate) fn build(
    items: Vec<Item<RawOfficeHours>>,
    anchors: &mut Anchors,
    diag: &mut Diag,
) -> Vec<OfficeHours> {
    let mut unique = Unique::new("office_hours");
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let raw = item.value;
        let errors_before = diag.error_count();
        let name = raw.name();
        let name_at = at(file, &raw.name);
        if !is_name(&name) {
            diag.at(
                &name_at,
                "office_hours `name` must be 1 to 64 printable characters on one line",
            );
        } else {
            unique.insert(&name, &name_at, diag);
        }
        anchors.add(
            "office hours",
            &name,
            format!("office hours {name}"),
            name_at,
        );

        let Ok(mut hours) = OfficeHours::new(name.clone(), raw.time_zone.get_ref()) else {
            diag.at(
                &at(file, &raw.time_zone),
                format!(
                    "office_hours `{name}`: time zone `{}` is unknown; write an IANA name like \"Europe/Zurich\" or \"UTC\"",
                    raw.time_zone.get_ref()
                ),
            );
            continue;
        };
        let days = [
            (Weekday::Mon, "monday", &raw.monday),
            (Weekday::Tue, "tuesday", &raw.tuesday),
            (Weekday::Wed, "wednesday", &raw.wednesday),
            (Weekday::Thu, "thursday", &raw.thursday),
            (Weekday::Fri, "friday", &raw.friday),
            (Weekday::Sat, "saturday", &raw.saturday),
            (Weekday::Sun, "sunday", &raw.sunday),
        ];
        for (day, key, text) in days {
            let Some(text) = text else { continue };
            if hours.set_day(day, text.get_ref()).is_err() {
                diag.at(
                    &at(file, text),
                    format!(
                        "office_hours `{name}`: `{key}` `{}` must be intervals like \"08:00-12:00, 13:00-17:30\" (00:00 to 24:00; empty for closed)",
                        text.get_ref()
                    ),
                );
            }
        }
        for day in raw.holidays.iter().flatten() {
            match NaiveDate::parse_from_str(day.get_ref().trim(), "%Y-%m-%d") {
                Ok(date) => hours.holidays.push(date),
                Err(_) => diag.at(
                    &at(file, day),
                    format!(
                        "office_hours `{name}`: holiday `{}` must be a date like \"2026-12-25\"",
                        day.get_ref()
                    ),
                ),
            }
        }
        if diag.error_count() == errors_before {
            out.push(hours);
        }
    }
    out
}
