//! `[media]`: the RTP relay's ports and addresses.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, Loc};
use super::load::Section;
use super::sip::not_advertisable;

pub const DEFAULT_RTP_PORTS: (u16, u16) = (20000, 29999);
pub const DEFAULT_DEAD_MEDIA_SECONDS: u64 = 60;

/// `[media]` after validation. The whole section is optional.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaConfig {
    /// `rtp_ports = "START-END"`: the relay's UDP ports, inclusive. RTP takes
    /// the even port of each pair and RTCP the odd one, so START is even,
    /// END is odd, and the range holds at least 2 pairs; ports 1024-65535
    /// (default "20000-29999": 5000 pairs, one per call leg).
    pub port_min: u16,
    pub port_max: u16,
    /// `bind`: the IP the relay's sockets bind to (default 0.0.0.0).
    pub bind: IpAddr,
    /// `advertise`: the IP written into SDP for the relay. Default: `bind`,
    /// or when that is unspecified the address chosen for `[sip] advertise`.
    pub advertise: Option<IpAddr>,
    /// `dead_media_seconds`: a call whose legs send no RTP for this long is
    /// ended (5-86400, default 60).
    pub dead_media: Duration,
    /// `workers`: relay threads, 0 = one per core (0-64, default 0).
    pub workers: usize,
    /// `engine`: `"auto"` (today the polling engine), `"io_uring"` (refuse
    /// to start without it) or `"poll"` (readiness polling).
    pub engine: media::RelayEngine,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            port_min: DEFAULT_RTP_PORTS.0,
            port_max: DEFAULT_RTP_PORTS.1,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            advertise: None,
            dead_media: Duration::from_secs(DEFAULT_DEAD_MEDIA_SECONDS),
            workers: 0,
            engine: media::RelayEngine::Auto,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMedia {
    rtp_ports: Option<Spanned<String>>,
    bind: Option<Spanned<IpAddr>>,
    advertise: Option<Spanned<IpAddr>>,
    dead_media_seconds: Option<Spanned<u64>>,
    workers: Option<Spanned<i64>>,
    engine: Option<Spanned<String>>,
}

pub(crate) fn build(section: Option<Section<RawMedia>>, diag: &mut Diag) -> Option<MediaConfig> {
    let mut config = MediaConfig::default();
    let Some(section) = section else {
        return Some(config);
    };
    let file = section.file;
    let raw = section.value;
    let loc = |s: std::ops::Range<usize>| Loc { file, span: s };
    let errors_before = diag.error_count();

    if let Some(ports) = &raw.rtp_ports {
        match parse_port_range(ports.get_ref()) {
            Ok((min, max)) => {
                config.port_min = min;
                config.port_max = max;
            }
            Err(cause) => diag.at(&loc(ports.span()), format!("`rtp_ports` {cause}")),
        }
    }
    if let Some(bind) = &raw.bind {
        config.bind = *bind.get_ref();
        if bind.get_ref().is_multicast() {
            diag.at(
                &loc(bind.span()),
                "`bind` is a multicast address; give this host's IP or 0.0.0.0",
            );
        }
    }
    if let Some(adv) = &raw.advertise {
        config.advertise = Some(*adv.get_ref());
        if let Some(cause) = not_advertisable(*adv.get_ref()) {
            diag.at(&loc(adv.span()), format!("`advertise` {cause}"));
        }
    }
    if let Some(dead) = &raw.dead_media_seconds {
        let secs = *dead.get_ref();
        config.dead_media = Duration::from_secs(secs);
        if !(5..=86_400).contains(&secs) {
            diag.at(
                &loc(dead.span()),
                format!("`dead_media_seconds` {secs} must be 5 to 86400 seconds"),
            );
        }
    }
    if let Some(w) = &raw.workers {
        match usize::try_from(*w.get_ref()) {
            Ok(n) if n <= 64 => config.workers = n,
            _ => diag.at(
                &loc(w.span()),
                format!("`workers` {} must be 0 (one per core) to 64", w.get_ref()),
            ),
        }
    }
    if let Some(e) = &raw.engine {
        match e.get_ref().as_str() {
            "auto" => config.engine = media::RelayEngine::Auto,
            "io_uring" => config.engine = media::RelayEngine::IoUring,
            "poll" => config.engine = media::RelayEngine::Poll,
            other => diag.at(
                &loc(e.span()),
                format!("`engine` \"{other}\" is not one of \"auto\", \"io_uring\", \"poll\""),
            ),
        }
    }
    (diag.error_count() == errors_before).then_some(config)
}

/// `"20000-29999"` into its bounds, or what is wrong with it.
pub(crate) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("is empty; write START-END, e.g. \"20000-29999\"".to_owned());
    }
    let parsed = s
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)));
    let Some((start, end)) = parsed else {
        return Err(format!(
            "`{s}` is not a port range; write START-END, e.g. \"20000-29999\""
        ));
    };
    for port in [start, end] {
        if !(1024..=65535).contains(&port) {
            return Err(format!("`{s}`: port {port} is outside 1024-65535"));
        }
    }
    if start > end {
        return Err(format!("`{s}` is reversed: the start is above the end"));
    }
    if start % 2 != 0 {
        return Err(format!(
            "`{s}` starts at an odd port; RTP takes even ports, start at {}",
            start + 1
        ));
    }
    let count = end - start + 1;
    if count % 2 != 0 {
        return Err(format!(
            "`{s}` holds {count} ports, an odd number; RTP/RTCP use port pairs, end at an odd port such as {}",
            end - 1
        ));
    }
    if count / 2 < 2 {
        return Err(format!(
            "`{s}` holds {} port pair; the relay needs at least 2 (one per call leg)",
            count / 2
        ));
    }
    // Both fit: checked against 65535 above.
    Ok((start as u16, end as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ranges() {
        assert_eq!(parse_port_range("20000-29999"), Ok((20000, 29999)));
        assert_eq!(parse_port_range(" 1024 - 1027 "), Ok((1024, 1027)));
        assert_eq!(parse_port_range("65532-65535"), Ok((65532, 65535)));
    }

    #[test]
    fn bad_ranges_say_why() {
        let cases = [
            ("", "is empty"),
            ("abc", "is not a port range"),
            ("20000", "is not a port range"),
            ("20000-19999", "is reversed"),
            ("80-1999", "port 80 is outside 1024-65535"),
            ("20000-70001", "port 70001 is outside"),
            ("20001-20004", "starts at an odd port"),
            ("20000-20002", "odd number"),
            ("20000-20001", "holds 1 port pair"),
            ("20000-20000", "odd number"),
        ];
        for (input, want) in cases {
            let err = parse_port_range(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }
}
