//! `[[site]]`: customer locations, each behind one internet link of known
//! capacity, and the extensions pinned to them.
//!
//! The `admission` crate decides what a valid set of sites is; this module
//! reads what the operator wrote and points each of its complaints at the
//! offending value: the network entry, the capacity, the name.

use std::collections::HashSet;
use std::ops::Range;

use admission::{Cidr, Direction, Limits, SiteError, SiteSpec, Sites, DEFAULT_SITE_NAME};
use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, Loc};
use super::extension::Built as BuiltExtension;
use super::load::Item;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    name: Spanned<String>,
    networks: Spanned<Vec<Spanned<String>>>,
    // Signed so that a negative capacity gets its own message rather than
    // serde's "invalid value: integer `-5`, expected u32".
    down_kbps: Spanned<i64>,
    up_kbps: Spanned<i64>,
    max_calls: Option<Spanned<i64>>,
}

/// The default site's limits (from `[admission]`) and where each was set.
#[derive(Default)]
pub(crate) struct DefaultSite {
    pub limits: Limits,
    pub up: Option<Loc>,
    pub down: Option<Loc>,
    pub max_calls: Option<Loc>,
}

/// The sites, once validated, and the names the config declares (to check
/// extension pins against even when a site was refused).
pub(crate) struct Built {
    pub sites: Option<Sites>,
    pub names: Vec<String>,
}

/// A `[[site]]` entry's positions, to turn a [`SiteError`] into a line.
struct Where {
    name: Loc,
    networks: Loc,
    entries: Vec<(Loc, Option<Cidr>)>,
    down: Loc,
    up: Loc,
    max_calls: Option<Loc>,
}

pub(crate) fn build(
    items: Vec<Item<RawSite>>,
    default: &DefaultSite,
    floor_kbps: Option<u32>,
    diag: &mut Diag,
) -> Built {
    let errors_before = diag.error_count();
    let mut specs = Vec::with_capacity(items.len());
    let mut places = Vec::with_capacity(items.len());
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let file = item.file;
        let raw = item.value;
        let loc = |s: Range<usize>| Loc { file, span: s };
        let name = raw.name.get_ref().trim().to_owned();
        let down = capacity(&name, "down_kbps", &raw.down_kbps, file, diag);
        let up = capacity(&name, "up_kbps", &raw.up_kbps, file, diag);
        let max_calls = raw
            .max_calls
            .as_ref()
            .and_then(|m| max_calls(&name, m, file, diag));
        let entries = raw
            .networks
            .get_ref()
            .iter()
            .map(|n| (loc(n.span()), n.get_ref().parse::<Cidr>().ok()))
            .collect();
        places.push(Where {
            name: loc(raw.name.span()),
            networks: loc(raw.networks.span()),
            entries,
            down: loc(raw.down_kbps.span()),
            up: loc(raw.up_kbps.span()),
            max_calls: raw.max_calls.as_ref().map(|m| loc(m.span())),
        });
        specs.push(SiteSpec {
            name: name.clone(),
            networks: raw
                .networks
                .into_inner()
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            down_kbps: down,
            up_kbps: up,
            max_calls,
        });
        names.push(name);
    }

    let sites = match Sites::from_specs(specs, default.limits) {
        Ok(sites) => Some(sites),
        Err(errors) => {
            for e in &errors {
                report(e, &places, &names, default, diag);
            }
            None
        }
    };
    if let (Some(sites), Some(floor)) = (&sites, floor_kbps) {
        check_floor(sites, floor, &places, default, diag);
    }
    Built {
        sites: sites.filter(|_| diag.error_count() == errors_before),
        names,
    }
}

/// A capacity in kbps. A bad one is reported here and replaced by a value
/// the `admission` crate accepts, so that it is not reported twice.
fn capacity(site: &str, field: &str, value: &Spanned<i64>, file: usize, diag: &mut Diag) -> u32 {
    let kbps = *value.get_ref();
    let at = Loc {
        file,
        span: value.span(),
    };
    if kbps < 0 {
        diag.at(
            &at,
            format!(
                "site `{site}`: `{field}` {kbps} is negative; give the link's capacity in kbps (at least {})",
                admission::MIN_FLOOR_KBPS
            ),
        );
        return u32::MAX;
    }
    u32::try_from(kbps).unwrap_or_else(|_| {
        diag.at(
            &at,
            format!(
                "site `{site}`: `{field}` {kbps} is too large (at most {} kbps)",
                u32::MAX
            ),
        );
        u32::MAX
    })
}

fn max_calls(site: &str, value: &Spanned<i64>, file: usize, diag: &mut Diag) -> Option<u32> {
    let n = *value.get_ref();
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            diag.at(
                &Loc {
                    file,
                    span: value.span(),
                },
                format!("site `{site}`: `max_calls` {n} must be 1 to {}", u32::MAX),
            );
            None
        }
    }
}

/// One complaint of the `admission` crate, at the value it is about.
fn report(
    e: &SiteError,
    places: &[Where],
    names: &[String],
    default: &DefaultSite,
    diag: &mut Diag,
) {
    let Some(index) = e.index() else {
        return report_default(e, default, diag);
    };
    let Some(place) = places.get(index) else {
        // Every site error names a site of the input; keep it even if not.
        if let Some(first) = places.first() {
            diag.at(&first.name, e.to_string());
        }
        return;
    };
    let name = names.get(index).map_or("", String::as_str);
    match e {
        SiteError::EmptyName { .. } => diag.at(&place.name, "site `name` is empty"),
        SiteError::DuplicateName { first, .. } => {
            let cause = match places.get(*first) {
                Some(other) => {
                    let other_name = names.get(*first).map_or("", String::as_str);
                    let same = if other_name == name {
                        String::new()
                    } else {
                        format!(" as `{other_name}` (names are compared ignoring case)")
                    };
                    format!(
                        "site `{name}` is defined twice: first{same} at {}",
                        diag.describe(&other.name)
                    )
                }
                None => format!(
                    "site name `{name}` is reserved for the default site (the addresses no [[site]] claims)"
                ),
            };
            diag.at(&place.name, cause);
        }
        SiteError::BadNetwork {
            network,
            text,
            reason,
            ..
        } => {
            let at = place
                .entries
                .get(*network)
                .map_or(&place.networks, |n| &n.0);
            diag.at(at, format!("site `{name}`: network `{text}`: {reason}"));
        }
        SiteError::NoNetworks { .. } => diag.at(
            &place.networks,
            format!("site `{name}`: `networks` is empty, so no phone would ever belong to it"),
        ),
        SiteError::Overlap {
            network,
            other_site,
            other_network,
            ..
        } => {
            let at = entry_of(place, network).unwrap_or(&place.networks);
            let other = names
                .iter()
                .zip(places)
                .filter(|(n, _)| *n == other_site)
                .find_map(|(_, p)| entry_of(p, other_network))
                .map(|l| format!(" at {}", diag.describe(l)))
                .unwrap_or_default();
            diag.at(
                at,
                format!(
                    "site `{name}`: network {network} overlaps network {other_network} of site `{other_site}`{other}; an address may belong to one site only"
                ),
            );
        }
        SiteError::ZeroCapacity { direction, .. } | SiteError::BelowOneCall { direction, .. } => {
            let (at, field) = match direction {
                Direction::Up => (&place.up, "up_kbps"),
                Direction::Down => (&place.down, "down_kbps"),
            };
            diag.at(at, capacity_cause(name, field, e));
        }
        SiteError::ZeroMaxCalls { .. } => {
            let at = place.max_calls.as_ref().unwrap_or(&place.name);
            diag.at(
                at,
                format!("site `{name}`: `max_calls` is 0; leave it out for no limit"),
            );
        }
        _ => diag.at(&place.name, e.to_string()),
    }
}

fn report_default(e: &SiteError, default: &DefaultSite, diag: &mut Diag) {
    let (at, field) = match e {
        SiteError::ZeroCapacity { direction, .. } | SiteError::BelowOneCall { direction, .. } => {
            match direction {
                Direction::Up => (&default.up, "default_site_up_kbps"),
                Direction::Down => (&default.down, "default_site_down_kbps"),
            }
        }
        _ => (&default.max_calls, "default_site_max_calls"),
    };
    // The [admission] section checks these values first; this is a fallback.
    if let Some(at) = at {
        diag.at(at, format!("[admission] `{field}`: {e}"));
    }
}

fn capacity_cause(site: &str, field: &str, e: &SiteError) -> String {
    match e {
        SiteError::BelowOneCall { kbps, .. } => format!(
            "site `{site}`: `{field}` {kbps} cannot carry one call; a call needs at least {} kbps each way",
            admission::MIN_FLOOR_KBPS
        ),
        _ => format!(
            "site `{site}`: `{field}` is 0; give the link's capacity in kbps (at least {})",
            admission::MIN_FLOOR_KBPS
        ),
    }
}

fn entry_of<'a>(place: &'a Where, network: &Cidr) -> Option<&'a Loc> {
    place
        .entries
        .iter()
        .find(|(_, n)| n.as_ref() == Some(network))
        .map(|(at, _)| at)
}

/// A raised floor makes any link below it useless: no call would fit.
fn check_floor(
    sites: &Sites,
    floor: u32,
    places: &[Where],
    default: &DefaultSite,
    diag: &mut Diag,
) {
    for (id, info) in sites.iter() {
        let limits = info.limits();
        let place = places.get(id.index());
        for (direction, kbps) in [
            (Direction::Down, limits.down_kbps),
            (Direction::Up, limits.up_kbps),
        ] {
            let Some(kbps) = kbps.filter(|&k| k < floor) else {
                continue;
            };
            let (at, field) = match (place, direction) {
                (Some(p), Direction::Up) => (Some(&p.up), "up_kbps"),
                (Some(p), Direction::Down) => (Some(&p.down), "down_kbps"),
                (None, Direction::Up) => (default.up.as_ref(), "default_site_up_kbps"),
                (None, Direction::Down) => (default.down.as_ref(), "default_site_down_kbps"),
            };
            if let Some(at) = at {
                diag.at(
                    at,
                    format!(
                        "site `{}`: `{field}` {kbps} is below [admission] floor_kbps {floor}: no call would ever fit",
                        info.name()
                    ),
                );
            }
        }
    }
}

/// Every `site =` of an extension must name a `[[site]]` (or the default
/// site).
pub(crate) fn check_pins(names: &[String], extensions: &[BuiltExtension], diag: &mut Diag) {
    let known: HashSet<&str> = names
        .iter()
        .map(String::as_str)
        .chain([DEFAULT_SITE_NAME])
        .collect();
    for built in extensions {
        let (Some(site), Some(at)) = (&built.extension.site, &built.site_at) else {
            continue;
        };
        if known.contains(site.as_str()) {
            continue;
        }
        let number = &built.extension.number;
        let hint = match names.iter().find(|n| n.eq_ignore_ascii_case(site)) {
            Some(n) => format!("did you mean `{n}`? (site names are matched exactly)"),
            None if names.is_empty() => "no [[site]] is defined".to_owned(),
            None => format!("the sites are: {}", names.join(", ")),
        };
        diag.at(
            at,
            format!("extension {number}: site `{site}` is not defined; {hint}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load, Config, ConfigErrors};
    use admission::{Limits, SiteId};

    const SIP: &str = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"pbx.test\"\n";

    const TWO_SITES: &str = "\
[[site]]
name = \"geneva-office\"
networks = [\"192.0.2.0/24\", \"2001:db8:1::/48\"]
down_kbps = 2000
up_kbps = 1000
max_calls = 20

[[site]]
name = \"zurich\"
networks = [\"198.51.100.0/24\"]
down_kbps = 500
up_kbps = 300
";

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load_with(text: &str) -> Result<Config, ConfigErrors> {
        let dir = folder(&[("a.toml", &format!("{SIP}{text}"))]);
        load(dir.path())
    }

    /// The errors of `text`, each as `line:col: cause`.
    fn errors(text: &str) -> Vec<String> {
        load_with(text)
            .unwrap_err()
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.column, e.cause))
            .collect()
    }

    fn has(errors: &[String], want: &str) -> bool {
        errors.iter().any(|e| e.starts_with(want))
    }

    #[test]
    fn two_sites_and_pins_load() {
        let config = load_with(&format!(
            "{TWO_SITES}\n[[extension]]\nnumber = \"1001\"\nsite = \" geneva-office\"\n\
             [[extension]]\nnumber = \"1002\"\n\
             [[extension]]\nnumber = \"1003\"\nsite = \"default\"\n"
        ))
        .unwrap();
        let sites = &config.admission.sites;
        assert_eq!(sites.len(), 3);
        let geneva = sites.by_name("geneva-office").unwrap();
        let zurich = sites.by_name("zurich").unwrap();
        assert_eq!((geneva, zurich), (SiteId(0), SiteId(1)));
        assert_eq!(sites.lookup("192.0.2.77".parse().unwrap()), geneva);
        assert_eq!(sites.lookup("2001:db8:1::9".parse().unwrap()), geneva);
        assert_eq!(sites.lookup("198.51.100.1".parse().unwrap()), zurich);
        assert_eq!(
            sites.lookup("203.0.113.1".parse().unwrap()),
            sites.default_site()
        );
        assert_eq!(
            sites.get(geneva).unwrap().limits(),
            Limits {
                down_kbps: Some(2000),
                up_kbps: Some(1000),
                max_calls: Some(20),
            }
        );
        assert_eq!(
            sites.get(zurich).unwrap().limits(),
            Limits {
                down_kbps: Some(500),
                up_kbps: Some(300),
                max_calls: None,
            }
        );
        let pins: Vec<Option<&str>> = config
            .extensions
            .iter()
            .map(|e| e.site.as_deref())
            .collect();
        assert_eq!(pins, [Some("geneva-office"), None, Some("default")]);
    }

    #[test]
    fn sites_may_have_their_own_file() {
        let dir = folder(&[
            ("a.toml", SIP),
            ("sites.toml", TWO_SITES),
            (
                "z.toml",
                "[[extension]]\nnumber = \"1001\"\nsite = \"zurich\"\n",
            ),
        ]);
        let config = load(dir.path()).unwrap();
        assert_eq!(config.admission.sites.len(), 3);
        assert_eq!(config.extensions[0].site.as_deref(), Some("zurich"));

        // An error in sites.toml names that file.
        std::fs::write(
            dir.path().join("sites.toml"),
            TWO_SITES.replace("up_kbps = 300", "up_kbps = 0"),
        )
        .unwrap();
        let errors = load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        let e = &errors.0[0];
        assert_eq!(e.file, dir.path().join("sites.toml"));
        assert_eq!((e.line, e.column), (12, 11));
        assert!(e.cause.starts_with("site `zurich`: `up_kbps` is 0"), "{e}");
    }

    #[test]
    fn capacities_must_carry_a_call() {
        let errs = errors(&TWO_SITES.replace("down_kbps = 2000", "down_kbps = 0"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            has(&errs, "7:13: site `geneva-office`: `down_kbps` is 0"),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("up_kbps = 300", "up_kbps = -5"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            has(&errs, "15:11: site `zurich`: `up_kbps` -5 is negative"),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("up_kbps = 300", "up_kbps = 64"));
        assert!(
            has(
                &errs,
                "15:11: site `zurich`: `up_kbps` 64 cannot carry one call"
            ),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("max_calls = 20", "max_calls = 0"));
        assert!(
            has(&errs, "9:13: site `geneva-office`: `max_calls` is 0"),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("max_calls = 20", "max_calls = -2"));
        assert!(
            has(
                &errs,
                "9:13: site `geneva-office`: `max_calls` -2 must be 1 to"
            ),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("down_kbps = 500", "down_kbps = 99999999999"));
        assert!(
            has(
                &errs,
                "14:13: site `zurich`: `down_kbps` 99999999999 is too large"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn a_raised_floor_must_fit_every_link() {
        let errs = errors(&format!(
            "[admission]\nfloor_kbps = 600\ndefault_site_up_kbps = 350\n{TWO_SITES}"
        ));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            has(&errs, "6:24: site `default`: `default_site_up_kbps` 350 is below [admission] floor_kbps 600"),
            "{errs:?}"
        );
        assert!(
            has(&errs, "17:13: site `zurich`: `down_kbps` 500"),
            "{errs:?}"
        );
        assert!(
            has(&errs, "18:11: site `zurich`: `up_kbps` 300"),
            "{errs:?}"
        );
    }

    #[test]
    fn networks_are_checked_per_entry() {
        let errs = errors(&TWO_SITES.replace(
            "[\"198.51.100.0/24\"]",
            "[\"198.51.100.0/24\", \"192.0.2.0/33\", \"198.51.100.7/24\"]",
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            has(&errs, "13:32: site `zurich`: network `192.0.2.0/33`: prefix length /33 is longer than /32"),
            "{errs:?}"
        );
        assert!(
            has(&errs, "13:48: site `zurich`: network `198.51.100.7/24`: address has bits set beyond the prefix (did you mean 198.51.100.0/24?)"),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("[\"198.51.100.0/24\"]", "[]"));
        assert!(
            has(&errs, "13:12: site `zurich`: `networks` is empty"),
            "{errs:?}"
        );
    }

    #[test]
    fn overlap_points_at_both_networks() {
        let errs = errors(&TWO_SITES.replace("198.51.100.0/24", "192.0.2.128/25"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "13:13: site `zurich`: network 192.0.2.128/25 overlaps network 192.0.2.0/24 of site `geneva-office` at "
            ),
            "{errs:?}"
        );
        assert!(
            errs[0].ends_with("a.toml:6:13; an address may belong to one site only"),
            "{errs:?}"
        );
    }

    #[test]
    fn names_are_unique_and_default_is_reserved() {
        let errs = errors(&TWO_SITES.replace("\"zurich\"", "\"Geneva-Office\""));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            has(&errs, "12:8: site `Geneva-Office` is defined twice: first as `geneva-office` (names are compared ignoring case) at "),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("\"zurich\"", "\"geneva-office\""));
        assert!(
            has(
                &errs,
                "12:8: site `geneva-office` is defined twice: first at "
            ),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("\"zurich\"", "\"default\""));
        assert!(
            has(
                &errs,
                "12:8: site name `default` is reserved for the default site"
            ),
            "{errs:?}"
        );
        let errs = errors(&TWO_SITES.replace("\"zurich\"", "\"  \""));
        assert!(has(&errs, "12:8: site `name` is empty"), "{errs:?}");
    }

    #[test]
    fn pins_must_name_a_site() {
        let ext = |site: &str| format!("[[extension]]\nnumber = \"1001\"\nsite = \"{site}\"\n");
        let errs = errors(&format!("{TWO_SITES}{}", ext("geneva")));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0],
            "18:8: extension 1001: site `geneva` is not defined; the sites are: geneva-office, zurich"
        );
        let errs = errors(&format!("{TWO_SITES}{}", ext("Zurich")));
        assert!(
            has(
                &errs,
                "18:8: extension 1001: site `Zurich` is not defined; did you mean `zurich`?"
            ),
            "{errs:?}"
        );
        let errs = errors(&ext("zurich"));
        assert!(
            has(
                &errs,
                "6:8: extension 1001: site `zurich` is not defined; no [[site]] is defined"
            ),
            "{errs:?}"
        );
        // A pin to a site refused for another reason is not reported again.
        let errs = errors(&format!(
            "{}{}",
            TWO_SITES.replace("up_kbps = 300", "up_kbps = 0"),
            ext("zurich")
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn missing_and_unknown_fields_are_shape_errors() {
        let errs = errors("[[site]]\nname = \"x\"\nnetworks = [\"192.0.2.0/24\"]\nup_kbps = 100\n");
        assert!(has(&errs, "4:1: missing field `down_kbps`"), "{errs:?}");
        let errs = errors(&TWO_SITES.replace("max_calls", "max_call"));
        assert!(has(&errs, "9:1: unknown field `max_call`"), "{errs:?}");
        let dir = folder(&[("a.toml", &format!("site = 3\n{SIP}"))]);
        let errs = load(dir.path()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs}");
        let e = &errs.0[0];
        assert_eq!((e.line, e.column), (1, 8), "{e}");
        assert!(
            e.cause.starts_with("`site` must be an array of tables"),
            "{e}"
        );
    }
}
