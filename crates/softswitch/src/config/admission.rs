//! `[admission]`: how much bandwidth a call is counted for, the default
//! site's limits and the policing of calls that send more than they
//! reserved. The sites themselves are `[[site]]` ([`super::site`]).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use admission::bandwidth::{ETHERNET_OCTETS, ETHERNET_ON_WIRE_OCTETS};
use admission::{
    BandwidthConfig, BandwidthConfigError, Estimator, IpVersion, Limits, Sites, MIN_FLOOR_KBPS,
};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use toml::Spanned;

use super::error::{Diag, FileId, Loc};
use super::load::{Item, Section};
use super::site::{self, DefaultSite, RawSite};

pub const DEFAULT_POLICE_MARGIN_PERCENT: u32 = 20;
pub const DEFAULT_POLICE_SECONDS: u64 = 5;
/// Layer-2 framing of at most this many octets per packet.
const MAX_LAYER2_OCTETS: i64 = 256;
const MAX_VIDEO_KBPS: i64 = 1_000_000;
const MAX_POLICE_MARGIN_PERCENT: i64 = 1000;
const MAX_POLICE_SECONDS: i64 = 3600;

/// `[admission]` and `[[site]]` after validation. Both are optional: with
/// neither, every call is counted at the 100 kbps floor and every phone is
/// in the unlimited default site.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// How a call's media lines become kbps:
    /// - `floor_kbps`: every call reserves at least this much per direction
    ///   (default and minimum 100).
    /// - `layer2`: framing octets added to each packet: `"ethernet"` (18,
    ///   default), `"ethernet-wire"` (38: with preamble and inter-frame
    ///   gap), `"none"` (0: IP only), or a number of octets (0-256).
    /// - `ip`: `"ipv4"` (default) or `"ipv6"`, for the header overhead.
    /// - `video_default_kbps`: a video line without `b=AS`/`b=TIAS` counts
    ///   as this (default 384).
    pub bandwidth: BandwidthConfig,
    /// `[[site]]` in file order, then the default site that takes every
    /// address no site claims. Its limits are `default_site_down_kbps`,
    /// `default_site_up_kbps` and `default_site_max_calls` (each unlimited
    /// unless set).
    pub sites: Sites,
    /// `police_margin_percent`: a call may send this much above what it
    /// reserved before it counts as over (0-1000, default 20).
    pub police_margin_percent: u32,
    /// `police_seconds`: how long a call must stay above its allowed rate
    /// before it counts as over; also the span its rate is measured over
    /// (1-3600, default 5).
    pub police_window: Duration,
    /// `police_drop`: `false` (default) only logs and counts a call over
    /// its reservation; `true` also drops the excess packets.
    pub police_drop: bool,
}

impl AdmissionConfig {
    /// The estimator for [`Self::bandwidth`]. The loader has validated it;
    /// a hand-made config that does not validate gets the default estimator
    /// (the 100 kbps floor) rather than none.
    pub fn estimator(&self) -> Estimator {
        Estimator::new(self.bandwidth.clone()).unwrap_or_default()
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            bandwidth: BandwidthConfig::default(),
            sites: Sites::with_default(Vec::new(), Limits::UNLIMITED)
                .unwrap_or_else(|_| unreachable!("an empty site list is valid")),
            police_margin_percent: DEFAULT_POLICE_MARGIN_PERCENT,
            police_window: Duration::from_secs(DEFAULT_POLICE_SECONDS),
            police_drop: false,
        }
    }
}

// Integers are signed so that a negative value gets a message of its own.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmission {
    floor_kbps: Option<Spanned<i64>>,
    layer2: Option<Spanned<RawLayer2>>,
    ip: Option<Spanned<String>>,
    video_default_kbps: Option<Spanned<i64>>,
    default_site_down_kbps: Option<Spanned<i64>>,
    default_site_up_kbps: Option<Spanned<i64>>,
    default_site_max_calls: Option<Spanned<i64>>,
    police_margin_percent: Option<Spanned<i64>>,
    police_seconds: Option<Spanned<i64>>,
    police_drop: Option<Spanned<bool>>,
}

/// `layer2 = "ethernet"` or `layer2 = 22`.
enum RawLayer2 {
    Name(String),
    Octets(i64),
}

impl<'de> Deserialize<'de> for RawLayer2 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Layer2Visitor;
        impl Visitor<'_> for Layer2Visitor {
            type Value = RawLayer2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"ethernet\", \"ethernet-wire\", \"none\" or a number of octets")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawLayer2, E> {
                Ok(RawLayer2::Name(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawLayer2, E> {
                Ok(RawLayer2::Octets(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawLayer2, E> {
                Ok(RawLayer2::Octets(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(Layer2Visitor)
    }
}

/// Validates `[admission]` and `[[site]]` together: the default site's
/// limits and the floor are checked against the sites. Returns the config
/// when both are valid, and the declared site names either way (for
/// [`site::check_pins`]).
pub(crate) fn build(
    section: Option<Section<RawAdmission>>,
    sites: Vec<Item<RawSite>>,
    diag: &mut Diag,
) -> (Option<AdmissionConfig>, Vec<String>) {
    let errors_before = diag.error_count();
    let mut config = AdmissionConfig::default();
    let mut default = DefaultSite::default();
    let mut floor_ok = true;

    if let Some(section) = section {
        let file = section.file;
        let raw = section.value;
        let mut field = Field { file, diag };

        if let Some(v) = &raw.floor_kbps {
            let kbps = *v.get_ref();
            if kbps < i64::from(MIN_FLOOR_KBPS) {
                field.error(
                    v,
                    format!(
                        "floor_kbps {kbps} is below the minimum of {MIN_FLOOR_KBPS} kbps per call"
                    ),
                );
                floor_ok = false;
            } else if let Some(k) = field.int(v, "floor_kbps", 100..=i64::from(u32::MAX), "kbps") {
                config.bandwidth.floor_kbps = k;
            } else {
                floor_ok = false;
            }
        }
        if let Some(v) = &raw.layer2 {
            if let Some(octets) = field.layer2(v) {
                config.bandwidth.layer2_octets = octets;
            }
        }
        if let Some(v) = &raw.ip {
            match v.get_ref().to_ascii_lowercase().as_str() {
                "ipv4" => config.bandwidth.ip = IpVersion::V4,
                "ipv6" => config.bandwidth.ip = IpVersion::V6,
                other => field.error(
                    v,
                    format!("`ip` `{other}` is not an IP version; write \"ipv4\" or \"ipv6\""),
                ),
            }
        }
        if let Some(v) = &raw.video_default_kbps {
            if let Some(k) = field.int(v, "video_default_kbps", 1..=MAX_VIDEO_KBPS, "kbps") {
                config.bandwidth.video_default_kbps = k;
            }
        }
        let capacity = 100..=i64::from(u32::MAX);
        if let Some(v) = &raw.default_site_down_kbps {
            default.down = Some(field.loc(v));
            default.limits.down_kbps =
                field.int(v, "default_site_down_kbps", capacity.clone(), "kbps");
        }
        if let Some(v) = &raw.default_site_up_kbps {
            default.up = Some(field.loc(v));
            default.limits.up_kbps = field.int(v, "default_site_up_kbps", capacity, "kbps");
        }
        if let Some(v) = &raw.default_site_max_calls {
            default.max_calls = Some(field.loc(v));
            default.limits.max_calls = field.int(
                v,
                "default_site_max_calls",
                1..=i64::from(u32::MAX),
                "calls",
            );
        }
        if let Some(v) = &raw.police_margin_percent {
            if let Some(p) = field.int(
                v,
                "police_margin_percent",
                0..=MAX_POLICE_MARGIN_PERCENT,
                "percent",
            ) {
                config.police_margin_percent = p;
            }
        }
        if let Some(v) = &raw.police_seconds {
            if let Some(s) = field.int(v, "police_seconds", 1..=MAX_POLICE_SECONDS, "seconds") {
                config.police_window = Duration::from_secs(u64::from(s));
            }
        }
        if let Some(v) = &raw.police_drop {
            config.police_drop = *v.get_ref();
        }

        // The admission crate has the last word on the estimate's settings.
        if diag.error_count() == errors_before {
            if let Err(e) = Estimator::new(config.bandwidth.clone()) {
                let at = match e {
                    BandwidthConfigError::FloorTooLow { .. } => raw.floor_kbps.as_ref(),
                    BandwidthConfigError::Zero { .. } => raw.video_default_kbps.as_ref(),
                }
                .map_or(section.header.clone(), |v| Loc {
                    file,
                    span: v.span(),
                });
                diag.at(&at, format!("[admission]: {e}"));
            }
        }
    }

    let floor = floor_ok.then_some(config.bandwidth.floor_kbps);
    let built = site::build(sites, &default, floor, diag);
    let config = match built.sites {
        Some(sites) if diag.error_count() == errors_before => {
            Some(AdmissionConfig { sites, ..config })
        }
        _ => None,
    };
    (config, built.names)
}

/// Reports problems with one `[admission]` value at its position.
struct Field<'a> {
    file: FileId,
    diag: &'a mut Diag,
}

impl Field<'_> {
    fn loc<T>(&self, v: &Spanned<T>) -> Loc {
        Loc {
            file: self.file,
            span: v.span(),
        }
    }

    fn error<T>(&mut self, v: &Spanned<T>, cause: String) {
        let at = self.loc(v);
        self.diag.at(&at, cause);
    }

    fn int(
        &mut self,
        v: &Spanned<i64>,
        name: &str,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> Option<u32> {
        let n = *v.get_ref();
        if range.contains(&n) {
            if let Ok(n) = u32::try_from(n) {
                return Some(n);
            }
        }
        self.error(
            v,
            format!(
                "`{name}` {n} must be {} to {} {unit}",
                range.start(),
                range.end()
            ),
        );
        None
    }

    fn layer2(&mut self, v: &Spanned<RawLayer2>) -> Option<u32> {
        let octets = match v.get_ref() {
            RawLayer2::Name(name) => match name.to_ascii_lowercase().as_str() {
                "ethernet" => return Some(ETHERNET_OCTETS),
                "ethernet-wire" => return Some(ETHERNET_ON_WIRE_OCTETS),
                "none" => return Some(0),
                _ => {
                    self.error(
                        v,
                        format!(
                            "`layer2` `{name}` is not a known framing; write \"ethernet\" ({ETHERNET_OCTETS} octets), \"ethernet-wire\" ({ETHERNET_ON_WIRE_OCTETS}), \"none\" (0) or a number of octets"
                        ),
                    );
                    return None;
                }
            },
            RawLayer2::Octets(n) => *n,
        };
        match u32::try_from(octets) {
            Ok(o) if octets <= MAX_LAYER2_OCTETS => Some(o),
            _ => {
                self.error(
                    v,
                    format!("`layer2` {octets} must be 0 to {MAX_LAYER2_OCTETS} octets per packet"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, ConfigErrors};

    const SIP: &str = "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"pbx.test\"\n";

    fn load_with(text: &str) -> Result<crate::config::Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), format!("{SIP}{text}")).unwrap();
        load(dir.path())
    }

    /// The one error of `text`, as `line:col: cause`.
    fn only_error(text: &str) -> String {
        let errors = load_with(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        let e = &errors.0[0];
        format!("{}:{}: {}", e.line, e.column, e.cause)
    }

    #[test]
    fn absent_section_gives_defaults() {
        let config = load_with("").unwrap();
        assert_eq!(config.admission, AdmissionConfig::default());
        let a = &config.admission;
        assert_eq!(a.bandwidth.floor_kbps, 100);
        assert_eq!(a.bandwidth.layer2_octets, 18);
        assert_eq!(a.bandwidth.ip, IpVersion::V4);
        assert_eq!(a.bandwidth.video_default_kbps, 384);
        assert_eq!(a.police_margin_percent, 20);
        assert_eq!(a.police_window, Duration::from_secs(5));
        assert!(!a.police_drop);
        assert_eq!(a.sites.len(), 1);
        let default = a.sites.get(a.sites.default_site()).unwrap();
        assert_eq!(default.limits(), Limits::UNLIMITED);
        assert_eq!(a.estimator().floor_kbps(), 100);
    }

    #[test]
    fn shipped_config_documents_the_defaults() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let config = load(&dir).unwrap();
        assert_eq!(config.admission, AdmissionConfig::default());
        assert!(config.extensions.iter().all(|e| e.site.is_none()));
    }

    #[test]
    fn every_setting_is_read() {
        let config = load_with(
            "[admission]\nfloor_kbps = 150\nlayer2 = \"ethernet-wire\"\nip = \"ipv6\"\n\
             video_default_kbps = 1000\ndefault_site_down_kbps = 5000\n\
             default_site_up_kbps = 2000\ndefault_site_max_calls = 7\n\
             police_margin_percent = 50\npolice_seconds = 10\npolice_drop = true\n",
        )
        .unwrap();
        let a = &config.admission;
        assert_eq!(a.bandwidth.floor_kbps, 150);
        assert_eq!(a.bandwidth.layer2_octets, 38);
        assert_eq!(a.bandwidth.ip, IpVersion::V6);
        assert_eq!(a.bandwidth.video_default_kbps, 1000);
        assert_eq!(a.police_margin_percent, 50);
        assert_eq!(a.police_window, Duration::from_secs(10));
        assert!(a.police_drop);
        assert_eq!(a.estimator().floor_kbps(), 150);
        let default = a.sites.get(a.sites.default_site()).unwrap();
        assert_eq!(
            default.limits(),
            Limits {
                down_kbps: Some(5000),
                up_kbps: Some(2000),
                max_calls: Some(7),
            }
        );
    }

    #[test]
    fn layer2_takes_names_and_octets() {
        for (value, octets) in [
            ("\"ethernet\"", 18),
            ("\"Ethernet-Wire\"", 38),
            ("\"none\"", 0),
            ("22", 22),
            ("0", 0),
        ] {
            let config = load_with(&format!("[admission]\nlayer2 = {value}\n")).unwrap();
            assert_eq!(config.admission.bandwidth.layer2_octets, octets, "{value}");
        }
    }

    #[test]
    fn bad_values_are_refused_at_their_position() {
        let cases = [
            (
                "floor_kbps = 80",
                "5:14: floor_kbps 80 is below the minimum of 100 kbps per call",
            ),
            (
                "floor_kbps = -1",
                "5:14: floor_kbps -1 is below the minimum of 100 kbps per call",
            ),
            ("layer2 = \"token-ring\"", "5:10: `layer2` `token-ring` is not a known framing"),
            ("layer2 = -4", "5:10: `layer2` -4 must be 0 to 256 octets"),
            ("layer2 = 300", "5:10: `layer2` 300 must be 0 to 256 octets"),
            (
                "layer2 = true",
                "5:10: invalid type: boolean `true`, expected \"ethernet\", \"ethernet-wire\", \"none\" or a number of octets",
            ),
            ("ip = \"ipv5\"", "5:6: `ip` `ipv5` is not an IP version"),
            ("video_default_kbps = 0", "5:22: `video_default_kbps` 0 must be 1 to"),
            (
                "default_site_down_kbps = 50",
                "5:26: `default_site_down_kbps` 50 must be 100 to",
            ),
            (
                "default_site_up_kbps = -5",
                "5:24: `default_site_up_kbps` -5 must be 100 to",
            ),
            ("default_site_max_calls = 0", "5:26: `default_site_max_calls` 0 must be 1 to"),
            ("police_margin_percent = -1", "5:25: `police_margin_percent` -1 must be 0 to 1000"),
            ("police_seconds = 0", "5:18: `police_seconds` 0 must be 1 to 3600 seconds"),
            ("police_drop = \"yes\"", "5:15: invalid type: string \"yes\", expected a boolean"),
            ("police_window = 5", "5:1: unknown field `police_window`"),
        ];
        for (line, want) in cases {
            let got = only_error(&format!("[admission]\n{line}\n"));
            assert!(got.starts_with(want), "{line}: got `{got}`, want `{want}`");
        }
    }

    #[test]
    fn admission_in_two_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), format!("{SIP}[admission]\n")).unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "[admission]\npolice_drop = true\n",
        )
        .unwrap();
        let errors = load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(
            errors.0[0].cause.contains("[admission] is already defined"),
            "{errors}"
        );
    }
}
