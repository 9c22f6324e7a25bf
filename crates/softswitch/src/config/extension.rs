//! `[[extension]]`: the phones that register, one table per extension.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, Loc};
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
}

/// A validated extension, on its way into [`crate::config::Config`].
pub(crate) struct Built {
    pub extension: Extension,
    /// Where `site =` is, to report a pin to an unknown site.
    pub site_at: Option<Loc>,
}

pub(crate) fn build(items: Vec<Item<RawExtension>>, diag: &mut Diag) -> Vec<Built> {
    let mut seen: HashMap<String, Loc> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let raw = item.value;
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

        if diag.error_count() == errors_before {
            out.push(Built {
                extension: Extension {
                    number,
                    name,
                    password: raw.password.map(Spanned::into_inner),
                    site: raw.site.as_ref().map(|s| s.get_ref().trim().to_owned()),
                },
                site_at: raw.site.as_ref().map(|s| loc(s.span())),
            });
        }
    }
    out
}
