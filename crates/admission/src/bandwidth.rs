//! Per-call bandwidth: from the negotiated media lines to the kbps a call
//! needs in each direction of a site's link.
//!
//! For each active media line the figure is the RTP packet stream as it
//! crosses the link: payload + RTP/UDP/IP headers + layer-2 framing, times
//! the packet rate, per direction. RTCP is then added at 5% of that (RFC 3550
//! section 6.2: the RTCP share is 5% of the session bandwidth, which includes
//! the lower-layer headers). The reservation is the sum over every active
//! line, raised to the per-call floor.
//!
//! The worked figures ([`CodecRate::link_bps`]) are **without RTCP**:
//! G.711 at 20 ms is 64 kbps of payload and (160 + 40 + 18) octets x 50
//! packets/s = 87.2 kbps on Ethernet over IPv4; G.729 at 20 ms is
//! (20 + 40 + 18) x 50 = 31.2 kbps. With RTCP they become 91.56 and 32.76
//! kbps; both are then raised to the 100 kbps floor.

use std::fmt::Write as _;

/// IPv4 header (20) + UDP (8) + RTP (12), in octets.
pub const IPV4_UDP_RTP_OCTETS: u32 = 40;
/// IPv6 header (40) + UDP (8) + RTP (12), in octets.
pub const IPV6_UDP_RTP_OCTETS: u32 = 60;
/// Ethernet II header (14) + frame check sequence (4): what a link's
/// capacity usually counts, and the default.
pub const ETHERNET_OCTETS: u32 = 18;
/// Ethernet as it occupies the wire: header + FCS + preamble (8) + the
/// inter-frame gap (12).
pub const ETHERNET_ON_WIRE_OCTETS: u32 = 38;
/// The smallest per-call floor: a call needs at least 100 kbps each way.
pub const MIN_FLOOR_KBPS: u32 = 100;
/// RTCP share of the session bandwidth (RFC 3550 section 6.2), in percent.
pub const RTCP_PERCENT: u64 = 5;

/// Ptimes outside this range are clamped (a malformed SDP must not make the
/// arithmetic overflow nor divide by zero).
const PTIME_RANGE_MS: (u32, u32) = (1, 1000);
/// Typical RTP payload per video packet, used to estimate the packet rate
/// (and so the header overhead) of a video stream from its bit rate.
const VIDEO_PAYLOAD_OCTETS: u64 = 1200;

/// What a media line carries (`m=audio`, `m=video`, anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// `m=image` (T.38), `m=application`, ...
    Other,
}

/// One `a=rtpmap:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    /// Encoding name as written (`opus`, `PCMU`, `telephone-event`); matched
    /// case-insensitively.
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl From<(u8, String, u32, Option<u8>)> for RtpMap {
    fn from((payload_type, encoding, clock_rate, channels): (u8, String, u32, Option<u8>)) -> Self {
        RtpMap {
            payload_type,
            encoding,
            clock_rate,
            channels,
        }
    }
}

impl From<(u8, &str, u32, Option<u8>)> for RtpMap {
    fn from((payload_type, encoding, clock_rate, channels): (u8, &str, u32, Option<u8>)) -> Self {
        RtpMap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        }
    }
}

/// A negotiated (or offered) media line, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    pub kind: MediaKind,
    /// Port != 0 and direction not `inactive`.
    pub active: bool,
    /// The formats of the `m=` line, in order.
    pub payload_types: Vec<u8>,
    pub rtpmap: Vec<RtpMap>,
    /// `a=ptime`.
    pub ptime_ms: Option<u32>,
    /// `b=AS:` in kbps (includes IP/UDP/RTP headers, RFC 4566 / RFC 3550).
    pub bandwidth_as_kbps: Option<u32>,
    /// `b=TIAS:` in bps (RTP payload only, RFC 3890).
    pub bandwidth_tias_bps: Option<u64>,
}

impl MediaLine {
    /// An active audio line with the given static payload types, no rtpmap,
    /// no ptime, no `b=` lines.
    pub fn audio(payload_types: &[u8]) -> MediaLine {
        MediaLine {
            kind: MediaKind::Audio,
            active: true,
            payload_types: payload_types.to_vec(),
            rtpmap: Vec::new(),
            ptime_ms: None,
            bandwidth_as_kbps: None,
            bandwidth_tias_bps: None,
        }
    }

    /// An active video line with no `b=` line (so it counts as the default).
    pub fn video(payload_types: &[u8]) -> MediaLine {
        MediaLine {
            kind: MediaKind::Video,
            ..MediaLine::audio(payload_types)
        }
    }

    fn rtpmap_of(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmap.iter().find(|m| m.payload_type == pt)
    }
}

/// IP version of the media path (it decides the header overhead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpVersion {
    #[default]
    V4,
    V6,
}

impl IpVersion {
    /// IP + UDP + RTP header octets per packet.
    pub fn header_octets(self) -> u32 {
        match self {
            IpVersion::V4 => IPV4_UDP_RTP_OCTETS,
            IpVersion::V6 => IPV6_UDP_RTP_OCTETS,
        }
    }
}

/// Settings of the bandwidth estimate. `Default` gives IPv4 over Ethernet
/// (18 octets), 384 kbps per video line without `b=`, opus at 40 kbps, and
/// the 100 kbps floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandwidthConfig {
    pub ip: IpVersion,
    /// Layer-2 octets added to every packet: [`ETHERNET_OCTETS`] (default),
    /// [`ETHERNET_ON_WIRE_OCTETS`], 0 to count IP only, or any other framing.
    pub layer2_octets: u32,
    /// A video line without `b=AS`/`b=TIAS` counts as this (IP level, like
    /// `b=AS`).
    pub video_default_kbps: u32,
    /// Opus is variable-rate; its payload is counted at this rate.
    pub opus_kbps: u32,
    /// A codec this module does not know, on a line without `b=`, counts
    /// at this payload rate (G.711's, by default).
    pub unknown_audio_kbps: u32,
    /// A non-audio, non-video line (T.38 fax, ...) without `b=` counts at
    /// this IP-level rate.
    pub other_default_kbps: u32,
    /// Every call reserves at least this much per direction; never below
    /// [`MIN_FLOOR_KBPS`].
    pub floor_kbps: u32,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        BandwidthConfig {
            ip: IpVersion::V4,
            layer2_octets: ETHERNET_OCTETS,
            video_default_kbps: 384,
            opus_kbps: 40,
            unknown_audio_kbps: 64,
            other_default_kbps: 64,
            floor_kbps: MIN_FLOOR_KBPS,
        }
    }
}

/// A bandwidth configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthConfigError {
    #[error("per-call bandwidth floor of {floor_kbps} kbps is below the minimum of {MIN_FLOOR_KBPS} kbps")]
    FloorTooLow { floor_kbps: u32 },
    #[error("{field} must be greater than zero")]
    Zero { field: &'static str },
}

/// How a codec fills its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Constant bit rate at any packet time (G.711, G.722, L16, DVI4, opus
    /// as configured); `header` octets of payload header per packet.
    Cbr { bps: u32, header: u32 },
    /// Whole frames of `frame_ms` per packet (G.729, G.723.1, GSM, AMR).
    Frames {
        frame_ms: u32,
        frame_octets: u32,
        header: u32,
    },
    /// iLBC: 38 octets per 20 ms, or 50 per 30 ms, chosen by the ptime.
    Ilbc,
    /// Comfort noise and telephone-event: they replace audio packets rather
    /// than add to them.
    Replaces,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Codec {
    framing: Framing,
    default_ptime_ms: u32,
}

const fn cbr(bps: u32) -> Codec {
    Codec {
        framing: Framing::Cbr { bps, header: 0 },
        default_ptime_ms: 20,
    }
}

const fn frames(frame_ms: u32, frame_octets: u32, header: u32, default_ptime_ms: u32) -> Codec {
    Codec {
        framing: Framing::Frames {
            frame_ms,
            frame_octets,
            header,
        },
        default_ptime_ms,
    }
}

const REPLACES: Codec = Codec {
    framing: Framing::Replaces,
    default_ptime_ms: 20,
};

/// IMA ADPCM: 4 bits per sample plus a 4-octet state header per packet.
const fn dvi4(clock: u32) -> Codec {
    Codec {
        framing: Framing::Cbr {
            bps: clock * 4,
            header: 4,
        },
        default_ptime_ms: 20,
    }
}

/// The static audio payload types of RFC 3551 (table 4).
fn static_codec(pt: u8) -> Option<Codec> {
    Some(match pt {
        0 | 8 => cbr(64_000),        // PCMU, PCMA
        3 => frames(20, 33, 0, 20),  // GSM full rate, 13.2 kbps
        4 => frames(30, 24, 0, 30),  // G.723.1 at 6.3 kbps (the larger rate)
        5 => dvi4(8_000),            // DVI4/8000
        6 => dvi4(16_000),           // DVI4/16000
        7 => cbr(2_400),             // LPC
        9 => cbr(64_000),            // G.722: 16 kHz sampling, 8000 Hz RTP clock
        10 => cbr(44_100 * 16 * 2),  // L16 stereo
        11 => cbr(44_100 * 16),      // L16 mono
        12 => frames(20, 35, 0, 20), // QCELP at full rate
        13 | 19 => REPLACES,         // CN (19: its old number)
        15 => cbr(16_000),           // G.728
        16 => dvi4(11_025),          // DVI4/11025
        17 => dvi4(22_050),          // DVI4/22050
        18 => frames(10, 10, 0, 20), // G.729
        _ => return None,
    })
}

/// Dynamic (and explicitly mapped static) codecs by rtpmap encoding name.
fn named_codec(map: &RtpMap, cfg: &BandwidthConfig) -> Option<Codec> {
    let name = map.encoding.as_str();
    let channels = u32::from(map.channels.unwrap_or(1).max(1));
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    let codec = if is("PCMU") || is("PCMA") || is("G722") {
        cbr(64_000 * channels)
    } else if is("G7221") {
        // G.722.1 at its highest rate: 32 kbps (16 kHz), 48 kbps (Annex C).
        cbr(if map.clock_rate >= 32_000 {
            48_000
        } else {
            32_000
        })
    } else if is("G729") || is("G729A") || is("G729B") || is("G729AB") {
        frames(10, 10, 0, 20)
    } else if is("G729D") {
        frames(10, 8, 0, 20)
    } else if is("G729E") {
        frames(10, 15, 0, 20)
    } else if is("G723") {
        frames(30, 24, 0, 30)
    } else if is("G728") {
        cbr(16_000)
    } else if let Some(rate) = g726_rate(name) {
        cbr(rate)
    } else if is("GSM") {
        frames(20, 33, 0, 20)
    } else if is("GSM-EFR") {
        frames(20, 31, 0, 20)
    } else if is("iLBC") {
        Codec {
            framing: Framing::Ilbc,
            default_ptime_ms: 30,
        }
    } else if is("speex") {
        // Highest mode of each band: 24.6 kbps narrow, 42.2 wide, 44 ultra-wide.
        match map.clock_rate {
            0..=8_000 => frames(20, 62, 0, 20),
            8_001..=16_000 => frames(20, 106, 0, 20),
            _ => frames(20, 110, 0, 20),
        }
    } else if is("AMR") {
        // 12.2 kbps mode, octet-aligned: CMR octet + per frame TOC + 31.
        frames(20, 32, 1, 20)
    } else if is("AMR-WB") {
        // 23.85 kbps mode, octet-aligned: CMR octet + per frame TOC + 60.
        frames(20, 61, 1, 20)
    } else if is("opus") {
        cbr(cfg.opus_kbps.saturating_mul(1000))
    } else if is("L16") {
        cbr(map.clock_rate.saturating_mul(16).saturating_mul(channels))
    } else if is("DVI4") {
        dvi4(map.clock_rate.min(192_000))
    } else if is("telephone-event") || is("CN") || is("tone") {
        REPLACES
    } else {
        return None;
    };
    Some(codec)
}

/// `G726-16` .. `G726-40` and `AAL2-G726-32`.
fn g726_rate(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("AAL2-G726-")
        .or_else(|| upper.strip_prefix("G726-"))?;
    match rest {
        "16" | "24" | "32" | "40" => rest.parse::<u32>().ok().map(|k| k * 1000),
        _ => None,
    }
}

/// The rate of one codec at one packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecRate {
    /// Packet time actually used (whole frames for frame codecs).
    pub ptime_ms: u32,
    /// Payload only, bits per second.
    pub payload_bps: u64,
    /// On the link: payload + IP/UDP/RTP + layer 2, bits per second,
    /// without RTCP.
    pub link_bps: u64,
    /// `link_bps` plus RTCP's 5%.
    pub with_rtcp_bps: u64,
}

/// What a set of media lines needs per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBandwidth {
    /// RTP on the link, all active lines, bits per second.
    pub media_bps: u64,
    /// RTCP: 5% of `media_bps`.
    pub rtcp_bps: u64,
    /// `media_bps + rtcp_bps` in kbps, rounded up.
    pub computed_kbps: u32,
    /// What to reserve per direction: `computed_kbps` raised to the floor.
    pub reservation_kbps: u32,
}

/// Turns media lines into kbps under a [`BandwidthConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Estimator {
    cfg: BandwidthConfig,
}

impl Estimator {
    /// Refuses a floor below [`MIN_FLOOR_KBPS`] and zero default rates.
    pub fn new(cfg: BandwidthConfig) -> Result<Estimator, BandwidthConfigError> {
        if cfg.floor_kbps < MIN_FLOOR_KBPS {
            return Err(BandwidthConfigError::FloorTooLow {
                floor_kbps: cfg.floor_kbps,
            });
        }
        for (field, value) in [
            ("video_default_kbps", cfg.video_default_kbps),
            ("opus_kbps", cfg.opus_kbps),
            ("unknown_audio_kbps", cfg.unknown_audio_kbps),
            ("other_default_kbps", cfg.other_default_kbps),
        ] {
            if value == 0 {
                return Err(BandwidthConfigError::Zero { field });
            }
        }
        Ok(Estimator { cfg })
    }

    pub fn config(&self) -> &BandwidthConfig {
        &self.cfg
    }

    /// The per-call floor in kbps.
    pub fn floor_kbps(&self) -> u32 {
        self.cfg.floor_kbps
    }

    /// Per-direction bandwidth of a call whose media are `lines` (an offer
    /// or an answer). Each active line counts; for a line offering several
    /// codecs the most expensive one counts.
    pub fn call_bandwidth(&self, lines: &[MediaLine]) -> CallBandwidth {
        let media_bps = lines
            .iter()
            .filter(|l| l.active)
            .map(|l| self.line_bps(l))
            .fold(0u64, u64::saturating_add);
        let rtcp_bps = rtcp_of(media_bps);
        let computed_kbps = kbps_ceil(media_bps.saturating_add(rtcp_bps));
        CallBandwidth {
            media_bps,
            rtcp_bps,
            computed_kbps,
            reservation_kbps: computed_kbps.max(self.cfg.floor_kbps),
        }
    }

    /// Shorthand for `call_bandwidth(lines).reservation_kbps`.
    pub fn reservation_kbps(&self, lines: &[MediaLine]) -> u32 {
        self.call_bandwidth(lines).reservation_kbps
    }

    /// RTP bandwidth of one line on the link (no RTCP), active or not.
    pub fn line_bps(&self, line: &MediaLine) -> u64 {
        match line.kind {
            MediaKind::Audio => self.audio_line_bps(line),
            MediaKind::Video => self.stated_line_bps(line, self.cfg.video_default_kbps),
            MediaKind::Other => self.stated_line_bps(line, self.cfg.other_default_kbps),
        }
    }

    /// The rate of a static payload type or a named codec at `ptime_ms`
    /// (`None`: the codec's default). `None` if the codec is unknown or
    /// carries no bandwidth of its own (CN, telephone-event).
    pub fn codec_rate(
        &self,
        pt: u8,
        rtpmap: Option<&RtpMap>,
        ptime_ms: Option<u32>,
    ) -> Option<CodecRate> {
        let codec = self.codec(pt, rtpmap)?;
        self.rate(codec, ptime_ms)
    }

    fn codec(&self, pt: u8, rtpmap: Option<&RtpMap>) -> Option<Codec> {
        match rtpmap {
            Some(map) => named_codec(map, &self.cfg),
            // An rtpmap is optional for static types only.
            None if pt < 96 => static_codec(pt),
            None => None,
        }
    }

    fn per_packet_overhead(&self) -> u64 {
        u64::from(self.cfg.ip.header_octets()) + u64::from(self.cfg.layer2_octets)
    }

    fn rate(&self, codec: Codec, ptime_ms: Option<u32>) -> Option<CodecRate> {
        let ptime = ptime_ms
            .filter(|&p| p > 0)
            .unwrap_or(codec.default_ptime_ms)
            .clamp(PTIME_RANGE_MS.0, PTIME_RANGE_MS.1);
        // (interval in ms, payload octets per packet)
        let (interval, octets): (u64, u64) = match codec.framing {
            Framing::Replaces => return None,
            Framing::Cbr { bps, header } => (
                u64::from(ptime),
                div_ceil(u64::from(bps) * u64::from(ptime), 8000) + u64::from(header),
            ),
            Framing::Frames {
                frame_ms,
                frame_octets,
                header,
            } => {
                // Round down to whole frames (at least one): more packets
                // per second is the worse case.
                let n = (ptime / frame_ms).max(1);
                (
                    u64::from(n * frame_ms),
                    u64::from(n * frame_octets + header),
                )
            }
            Framing::Ilbc => {
                if ptime % 30 == 0 {
                    let n = u64::from(ptime / 30);
                    (n * 30, n * 50)
                } else {
                    let n = u64::from((ptime / 20).max(1));
                    (n * 20, n * 38)
                }
            }
        };
        let payload_bps = div_ceil(octets * 8 * 1000, interval);
        let link_bps = div_ceil((octets + self.per_packet_overhead()) * 8 * 1000, interval);
        Some(CodecRate {
            ptime_ms: u32::try_from(interval).unwrap_or(u32::MAX),
            payload_bps,
            link_bps,
            with_rtcp_bps: link_bps + rtcp_of(link_bps),
        })
    }

    fn audio_line_bps(&self, line: &MediaLine) -> u64 {
        let mut worst: Option<u64> = None;
        let mut unknown = false;
        for &pt in &line.payload_types {
            match self.codec(pt, line.rtpmap_of(pt)) {
                Some(codec) => {
                    if let Some(rate) = self.rate(codec, line.ptime_ms) {
                        worst = Some(worst.map_or(rate.link_bps, |w| w.max(rate.link_bps)));
                    }
                }
                None => unknown = true,
            }
        }
        if unknown {
            let fallback = self.unknown_audio_bps(line);
            worst = Some(worst.map_or(fallback, |w| w.max(fallback)));
        }
        // A line of only CN / telephone-event carries no audio of its own.
        worst.unwrap_or(0)
    }

    /// An audio codec we cannot size: trust the line's `b=`, else count it
    /// at the configured rate with a 20 ms packet time.
    fn unknown_audio_bps(&self, line: &MediaLine) -> u64 {
        if line.bandwidth_tias_bps.is_some() || line.bandwidth_as_kbps.is_some() {
            return self.stated_line_bps(line, self.cfg.unknown_audio_kbps);
        }
        let codec = cbr(self.cfg.unknown_audio_kbps.saturating_mul(1000));
        self.rate(codec, line.ptime_ms).map_or(0, |r| r.link_bps)
    }

    /// A line sized by its `b=` lines: TIAS (payload) plus estimated headers,
    /// else AS (IP level) plus estimated layer 2, else `default_kbps` as AS.
    fn stated_line_bps(&self, line: &MediaLine, default_kbps: u32) -> u64 {
        let l2 = u64::from(self.cfg.layer2_octets);
        if let Some(tias) = line.bandwidth_tias_bps.filter(|&t| t > 0) {
            let pps = div_ceil(tias, VIDEO_PAYLOAD_OCTETS * 8);
            return tias.saturating_add(pps.saturating_mul(self.per_packet_overhead() * 8));
        }
        let as_kbps = line
            .bandwidth_as_kbps
            .filter(|&a| a > 0)
            .unwrap_or(default_kbps);
        let ip_bps = u64::from(as_kbps) * 1000;
        let packet = VIDEO_PAYLOAD_OCTETS + u64::from(self.cfg.ip.header_octets());
        let pps = div_ceil(ip_bps, packet * 8);
        ip_bps + pps * l2 * 8
    }

    /// The bandwidth-per-codec table as Markdown, under this configuration.
    pub fn codec_table_markdown(&self) -> String {
        let ip = match self.cfg.ip {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        };
        let mut out = String::new();
        let l2 = match self.cfg.layer2_octets {
            0 => String::new(),
            ETHERNET_OCTETS => " + Ethernet".to_owned(),
            ETHERNET_ON_WIRE_OCTETS => " + Ethernet on the wire".to_owned(),
            n => format!(" + {n} octets of layer 2"),
        };
        let _ = writeln!(
            out,
            "| Codec | ptime (ms) | Payload (kbps) | {ip}{l2} (kbps) | With RTCP (kbps) | Reserved (kbps) |",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        for row in TABLE_ROWS {
            let map = row.rtpmap.map(|(name, clock)| RtpMap {
                payload_type: row.pt,
                encoding: name.to_owned(),
                clock_rate: clock,
                channels: None,
            });
            let Some(rate) = self.codec_rate(row.pt, map.as_ref(), row.ptime) else {
                continue;
            };
            let reserved = kbps_ceil(rate.with_rtcp_bps).max(self.cfg.floor_kbps);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                row.label,
                rate.ptime_ms,
                fmt_kbps(rate.payload_bps),
                fmt_kbps(rate.link_bps),
                fmt_kbps(rate.with_rtcp_bps),
                reserved,
            );
        }
        out
    }
}

struct TableRow {
    label: &'static str,
    pt: u8,
    rtpmap: Option<(&'static str, u32)>,
    ptime: Option<u32>,
}

const TABLE_ROWS: &[TableRow] = &[
    row("G.711 (PCMU/PCMA)", 0, None, Some(20)),
    row("G.711 (PCMU/PCMA)", 0, None, Some(30)),
    row("G.722", 9, None, Some(20)),
    row("G.729", 18, None, Some(20)),
    row("G.729", 18, None, Some(30)),
    row("G.723.1 (6.3 kbps mode)", 4, None, Some(30)),
    row("GSM", 3, None, Some(20)),
    row("iLBC", 97, Some(("iLBC", 8000)), Some(20)),
    row("iLBC", 97, Some(("iLBC", 8000)), Some(30)),
    row(
        "opus (configured rate)",
        111,
        Some(("opus", 48000)),
        Some(20),
    ),
    row(
        "speex narrow-band (max)",
        97,
        Some(("speex", 8000)),
        Some(20),
    ),
    row(
        "speex wide-band (max)",
        97,
        Some(("speex", 16000)),
        Some(20),
    ),
    row("AMR 12.2", 97, Some(("AMR", 8000)), Some(20)),
    row("AMR-WB 23.85", 97, Some(("AMR-WB", 16000)), Some(20)),
];

const fn row(
    label: &'static str,
    pt: u8,
    rtpmap: Option<(&'static str, u32)>,
    ptime: Option<u32>,
) -> TableRow {
    TableRow {
        label,
        pt,
        rtpmap,
        ptime,
    }
}

fn fmt_kbps(bps: u64) -> String {
    // Rounded to two decimals, trailing zeros dropped: 87.2, 91.56, 64.
    let hundredths = (bps + 5) / 10;
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    match frac {
        0 => format!("{whole}"),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

fn rtcp_of(bps: u64) -> u64 {
    div_ceil(bps.saturating_mul(RTCP_PERCENT), 100)
}

fn kbps_ceil(bps: u64) -> u32 {
    u32::try_from(div_ceil(bps, 1000)).unwrap_or(u32::MAX)
}

fn div_ceil(a: u64, b: u64) -> u64 {
    if b == 0 {
        return a;
    }
    a.div_ceil(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> Estimator {
        Estimator::default()
    }

    fn rate(pt: u8, ptime: Option<u32>) -> CodecRate {
        est().codec_rate(pt, None, ptime).unwrap()
    }

    #[test]
    fn defaults() {
        let cfg = BandwidthConfig::default();
        assert_eq!(cfg.ip, IpVersion::V4);
        assert_eq!(cfg.ip.header_octets(), 40);
        assert_eq!(IpVersion::V6.header_octets(), 60);
        assert_eq!(cfg.layer2_octets, 18);
        assert_eq!(cfg.video_default_kbps, 384);
        assert_eq!(cfg.floor_kbps, 100);
        assert_eq!(Estimator::new(cfg.clone()).unwrap(), Estimator::default());
        assert_eq!(Estimator::default().config(), &cfg);
        // No media at all still reserves the floor.
        let none = est().call_bandwidth(&[]);
        assert_eq!((none.computed_kbps, none.reservation_kbps), (0, 100));
    }

    #[test]
    fn g711_20ms_worked_figure() {
        let r = rate(0, Some(20));
        assert_eq!(r.payload_bps, 64_000);
        assert_eq!(r.link_bps, 87_200); // 218 octets x 50 pps
        assert_eq!(r.with_rtcp_bps, 91_560);
        assert_eq!(rate(8, None), r, "PCMA, default ptime 20");
    }

    #[test]
    fn g729_20ms_worked_figure() {
        let r = rate(18, Some(20));
        assert_eq!(r.payload_bps, 8_000);
        assert_eq!(r.link_bps, 31_200); // 78 octets x 50 pps
        assert_eq!(r.with_rtcp_bps, 32_760);
        assert_eq!(rate(18, None), r);
    }

    #[test]
    fn default_ptimes() {
        assert_eq!(rate(4, None).ptime_ms, 30, "G.723.1");
        assert_eq!(rate(0, None).ptime_ms, 20);
        assert_eq!(rate(3, None).ptime_ms, 20);
        let ilbc = RtpMap::from((97, "iLBC", 8000, None));
        let r = est().codec_rate(97, Some(&ilbc), None).unwrap();
        assert_eq!(r.ptime_ms, 30);
        assert_eq!(r.payload_bps, 13_334); // 50 octets / 30 ms, rounded up
        let r20 = est().codec_rate(97, Some(&ilbc), Some(20)).unwrap();
        assert_eq!(r20.payload_bps, 15_200);
        assert_eq!(r.ptime_ms, 30);
        // ptime=0 is malformed: the default applies.
        assert_eq!(rate(0, Some(0)).ptime_ms, 20);
    }

    #[test]
    fn other_codec_figures() {
        assert_eq!(rate(9, Some(20)).link_bps, 87_200, "G.722 like G.711");
        assert_eq!(rate(0, Some(30)).link_bps, (240 + 58) * 8 * 1000 / 30 + 1);
        assert_eq!(rate(3, Some(20)).link_bps, (33 + 58) * 8 * 50);
        assert_eq!(rate(4, None).payload_bps, 6_400); // 24 octets / 30 ms
                                                      // G.729 with ptime 25 packs 2 frames (the worse case), 20 ms.
        assert_eq!(rate(18, Some(25)).ptime_ms, 20);
        let opus = RtpMap::from((111, "opus", 48000, Some(2)));
        let r = est().codec_rate(111, Some(&opus), None).unwrap();
        assert_eq!(r.payload_bps, 40_000);
        assert_eq!(r.link_bps, 40_000 + 58 * 8 * 50);
    }

    #[test]
    fn ipv6_and_layer2_options() {
        let v6 = Estimator::new(BandwidthConfig {
            ip: IpVersion::V6,
            ..Default::default()
        })
        .unwrap();
        let r = v6.codec_rate(0, None, Some(20)).unwrap();
        assert_eq!(r.link_bps, (160 + 60 + 18) * 8 * 50);
        let wire = Estimator::new(BandwidthConfig {
            layer2_octets: ETHERNET_ON_WIRE_OCTETS,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            wire.codec_rate(0, None, Some(20)).unwrap().link_bps,
            (160 + 40 + 38) * 8 * 50
        );
        let ip_only = Estimator::new(BandwidthConfig {
            layer2_octets: 0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            ip_only.codec_rate(0, None, Some(20)).unwrap().link_bps,
            80_000
        );
    }

    #[test]
    fn telephone_event_and_cn_do_not_count() {
        let mut line = MediaLine::audio(&[18, 101, 13]);
        line.rtpmap
            .push(RtpMap::from((101, "telephone-event", 8000, None)));
        let b = est().call_bandwidth(&[line]);
        assert_eq!(b.media_bps, 31_200);
        assert_eq!(b.rtcp_bps, 1_560);
        assert_eq!(b.computed_kbps, 33);
        assert_eq!(b.reservation_kbps, 100);
    }

    #[test]
    fn offer_counts_worst_codec() {
        let line = MediaLine::audio(&[18, 0, 8]);
        let b = est().call_bandwidth(&[line]);
        assert_eq!(b.media_bps, 87_200);
        assert_eq!(b.computed_kbps, 92);
        assert_eq!(b.reservation_kbps, 100);
    }

    #[test]
    fn every_active_line_counts() {
        let audio = MediaLine::audio(&[0]);
        let video = MediaLine::video(&[96]);
        let b = est().call_bandwidth(&[audio.clone(), video.clone()]);
        // 384 kbps IP level in packets of 1240 octets: 39 pps x 18 octets.
        let video_bps = 384_000 + 39 * 18 * 8;
        assert_eq!(b.media_bps, 87_200 + video_bps);
        // (87 200 + 389 616) + 5% RTCP = 500 657 bps.
        assert_eq!(b.computed_kbps, 501);
        assert_eq!(b.reservation_kbps, 501);
        let inactive = MediaLine {
            active: false,
            ..video
        };
        assert_eq!(est().call_bandwidth(&[audio, inactive]).media_bps, 87_200);
    }

    #[test]
    fn video_by_b_lines() {
        let mut v = MediaLine::video(&[96]);
        v.bandwidth_as_kbps = Some(1000);
        let as_bps = est().line_bps(&v);
        assert_eq!(as_bps, 1_000_000 + 101 * 18 * 8); // 101 packets of 1240
        v.bandwidth_tias_bps = Some(960_000);
        // TIAS wins: 100 packets of 1200 payload + 58 octets each.
        assert_eq!(est().line_bps(&v), 960_000 + 100 * 58 * 8);
    }

    #[test]
    fn unknown_codec_falls_back() {
        let mut line = MediaLine::audio(&[120]);
        line.rtpmap
            .push(RtpMap::from((120, "X-MYSTERY", 8000, None)));
        assert_eq!(est().line_bps(&line), 87_200, "counted like G.711");
        line.bandwidth_as_kbps = Some(200);
        assert!(est().line_bps(&line) >= 200_000);
        // No rtpmap for a dynamic type: unknown too.
        assert_eq!(est().line_bps(&MediaLine::audio(&[99])), 87_200);
    }

    #[test]
    fn floor_cannot_go_below_100() {
        let err = Estimator::new(BandwidthConfig {
            floor_kbps: 99,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err, BandwidthConfigError::FloorTooLow { floor_kbps: 99 });
        assert!(err.to_string().contains("below the minimum of 100 kbps"));
        let high = Estimator::new(BandwidthConfig {
            floor_kbps: 150,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(high.reservation_kbps(&[MediaLine::audio(&[0])]), 150);
        assert_eq!(Estimator::default().floor_kbps(), 100);
        assert!(matches!(
            Estimator::new(BandwidthConfig {
                video_default_kbps: 0,
                ..Default::default()
            }),
            Err(BandwidthConfigError::Zero { .. })
        ));
    }

    #[test]
    fn large_call_exceeds_floor() {
        let mut l16 = MediaLine::audio(&[10]);
        l16.ptime_ms = Some(20);
        let b = est().call_bandwidth(&[l16]);
        assert!(b.reservation_kbps > 1411, "{b:?}");
        assert_eq!(b.reservation_kbps, b.computed_kbps);
    }

    #[test]
    fn malformed_values_do_not_panic() {
        let mut line = MediaLine::audio(&[0, 10, 18, 4, 96]);
        line.ptime_ms = Some(u32::MAX);
        line.rtpmap
            .push(RtpMap::from((96, "L16", u32::MAX, Some(u8::MAX))));
        line.bandwidth_tias_bps = Some(u64::MAX);
        line.bandwidth_as_kbps = Some(u32::MAX);
        let mut video = MediaLine::video(&[97]);
        video.bandwidth_tias_bps = Some(u64::MAX);
        let b = est().call_bandwidth(&[line, video]);
        assert!(b.reservation_kbps >= 100);
    }

    #[test]
    fn markdown_table_lists_worked_figures() {
        let table = est().codec_table_markdown();
        assert!(table.starts_with(
            "| Codec | ptime (ms) | Payload (kbps) | IPv4 + Ethernet (kbps) | With RTCP (kbps) |"
        ));
        assert!(
            table.contains("| G.711 (PCMU/PCMA) | 20 | 64 | 87.2 | 91.56 | 100 |"),
            "{table}"
        );
        assert!(
            table.contains("| G.729 | 20 | 8 | 31.2 | 32.76 | 100 |"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 2 + TABLE_ROWS.len());
    }

    #[test]
    fn kbps_formatting() {
        assert_eq!(fmt_kbps(87_200), "87.2");
        assert_eq!(fmt_kbps(64_000), "64");
        assert_eq!(fmt_kbps(91_560), "91.56");
        assert_eq!(fmt_kbps(13_334), "13.33");
        assert_eq!(fmt_kbps(79_467), "79.47");
    }
}
