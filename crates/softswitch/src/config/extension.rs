//! `[[extension]]`: the phones that register, one table per extension.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, Loc};
use super::extension_routing::RawExtensionRouting;
use super::load::Item;
use super::password;

/// One extension after validation.
#[derive(Clone, PartialEq, Eq)]
pub struct Extension {
    /// `number`: 2 to 10 digits, unique; the SIP user name phones register
    /// with and the number others dial.
    pub number: String,
    /// `name`: the display name shown to the called party (default: the
    /// number).
    pub name: String,
    /// `password`: the SIP digest password. When the config files give none
    /// it comes from `secrets.toml`, generated there on first `run`. `None`
    /// only from [`crate::config::load`] before that first `run`.
    pub password: Option<String>,
    /// `site`: the `[[site]]` whose link this phone's calls are counted
    /// against wherever it registers from. Default: the site its address
    /// belongs to.
    pub site: Option<String>,
}

/// Keeps passwords out of logs.
impl fmt::Debug for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extension")
            .field("number", &self.number)
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("site", &self.site)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExtension {
    number: Spanned<String>,
    name: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    site: Option<Spanned<String>>,
    // The routing keys, taken out by `extension_routing` and built with the
    // other routing sections.
    pub(super) forward_always: Option<Spanned<String>>,
    pub(super) forward_busy: Option<Spanned<String>>,
    pub(super) forward_no_answer: Option<Spanned<String>>,
    pub(super) forward_no_answer_seconds: Option<Spanned<i64>>,
    pub(super) forward_unregistered: Option<Spanned<String>>,
    pub(super) out_of_hours_forward_always: Option<Spanned<String>>,
    pub(super) out_of_hours_forward_busy: Option<Spanned<String>>,
    pub(super) out_of_hours_forward_no_answer: Option<Spanned<String>>,
    pub(super) out_of_hours_forward_unregistered: Option<Spanned<String>>,
    pub(super) office_hours: Option<Spanned<String>>,
    pub(super) dnd: Option<bool>,
    pub(super) max_calls: Option<Spanned<i64>>,
    pub(super) outbound_caller_id: Option<Spanned<String>>,
    pub(super) outbound_rules: Option<Vec<Spanned<String>>>,
    pub(super) international: Option<bool>,
}

impl RawExtension {
    /// The number as written, to check references before validation.
    pub(crate) fn number(&self) -> &str {
        self.number.get_ref()
    }
}

/// A validated extension, on its way into [`crate::config::Config`].
pub(crate) struct Built {
    pub extension: Extension,
    /// Where `site =` is, to report a pin to an unknown site.
    pub site_at: Option<Loc>,
    /// Forwarding, limits and permissions, checked with the dial plan.
    pub routing: RawExtensionRouting,
}

pub(crate) fn build(items: Vec<Item<RawExtension>>, diag: &mut Diag) -> Vec<Built> {
    let mut seen: HashMap<String, Loc> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let mut raw = item.value;
        let loc = |s: std::ops::Range<usize>| Loc { file, span: s };
        let errors_before = diag.error_count();
        let number = raw.number.get_ref().clone();
        let at = loc(raw.number.span());

        if !(2..=10).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            diag.at(
                &at,
                format!("extension number `{number}` must be 2 to 10 digits"),
            );
        } else if let Some(first) = seen.get(&number) {
            let first = diag.describe(first);
            diag.at(
                &at,
                format!("extension {number} is defined twice: first at {first}"),
            );
        } else {
            seen.insert(number.clone(), at.clone());
        }

        let name = match &raw.name {
            Some(name) => {
                let n = name.get_ref().trim();
                if n.is_empty() || n.chars().any(char::is_control) || n.len() > 64 {
                    diag.at(
                        &loc(name.span()),
                        format!("extension {number}: `name` must be 1 to 64 printable characters on one line"),
                    );
                }
                n.to_owned()
            }
            None => number.clone(),
        };

        if let Some(pw) = &raw.password {
            if let Some(cause) = password::weakness(pw.get_ref(), &number) {
                diag.at(
                    &loc(pw.span()),
                    format!("extension {number}: weak password: {cause}"),
                );
            }
        }

        let routing = RawExtensionRouting::take(file, &at, &mut raw);
        if diag.error_count() == errors_before {
            out.push(Built {
                extension: Extension {
                    number,
                    name,
                    password: raw.password.map(Spanned::into_inner),
                    site: raw.site.as_ref().map(|s| s.get_ref().trim().to_owned()),
                },
                site_at: raw.site.as_ref().map(|s| loc(s.span())),
                routing,
            });
        }
    }
    out
}
