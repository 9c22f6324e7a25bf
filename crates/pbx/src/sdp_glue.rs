//! What call control does with SDP: learn where a phone wants media, point
//! its peer at our relay instead, and tell admission what the media costs.

use bytes::Bytes;
use sip::sdp::{Direction, Sdp, SdpError};
use tracing::warn;

/// m= lines relayed per call; further active lines are refused (port 0).
pub(crate) const MAX_STREAMS: usize = 4;

pub(crate) fn parse(body: &Bytes) -> Result<Sdp, SdpError> {
    Sdp::parse(body)
}

/// Relays the SDP one side sent: learns where that side's phone receives
/// each stream (the relay still latches onto where packets really come
/// from), adds relay streams for new m= lines, and returns the SDP the
/// other side gets, addressed to our ports on that side.
pub(crate) fn relay_sdp(session: &mut media::Session, from: media::Side, sdp: &Sdp) -> Bytes {
    let relayed: Vec<usize> = sdp
        .media
        .iter()
        .enumerate()
        .filter(|(i, m)| *i < MAX_STREAMS && m.port != 0 && m.is_rtp())
        .map(|(i, _)| i)
        .collect();
    if let Some(&last) = relayed.last() {
        while session.streams() <= last {
            if let Err(e) = session.add_stream() {
                warn!(error = %e, "no relay ports for another media stream");
                break;
            }
        }
    }
    for &i in &relayed {
        let m = &sdp.media[i];
        if let Some(rtp) = sdp.rtp_addr(m) {
            session.set_stream_remote(i, from, rtp, sdp.rtcp_addr(m));
        }
    }
    if let Some(m) = relayed.first().map(|&i| &sdp.media[i]) {
        // Jitter is measured in the clock of the codec in use, DTMF events aside.
        if let Some(clock) = m
            .payload_types()
            .next()
            .and_then(|pt| m.rtpmap(pt))
            .map(|r| r.clock_rate)
        {
            session.set_clock_rate(clock);
        }
        session.set_event_payload_type(m.payload_type_of("telephone-event"));
    }
    let to = from.other();
    let ports: Vec<u16> = (0..sdp.media.len())
        .map(|i| {
            if relayed.contains(&i) {
                session.stream_local_port(i, to).unwrap_or(0)
            } else {
                0
            }
        })
        .collect();
    media::rewrite_sdp_streams(sdp, session.advertise_ip(), &ports).to_bytes()
}

/// The media lines of an SDP as admission counts them.
pub(crate) fn media_lines(sdp: &Sdp) -> Vec<admission::MediaLine> {
    sdp.media
        .iter()
        .map(|m| {
            let kind = match m.media.as_ref() {
                b"audio" => admission::MediaKind::Audio,
                b"video" => admission::MediaKind::Video,
                _ => admission::MediaKind::Other,
            };
            let payload_types: Vec<u8> = m.payload_types().collect();
            let rtpmap = payload_types
                .iter()
                .filter_map(|&pt| m.rtpmap(pt))
                .map(|r| admission::RtpMap {
                    payload_type: r.payload_type,
                    encoding: String::from_utf8_lossy(&r.encoding).into_owned(),
                    clock_rate: r.clock_rate,
                    channels: r.channels.and_then(|c| u8::try_from(c).ok()),
                })
                .collect();
            let bw = |kind: &[u8]| {
                m.bandwidths
                    .iter()
                    .find(|b| b.bwtype.eq_ignore_ascii_case(kind))
                    .map(|b| b.value)
            };
            admission::MediaLine {
                kind,
                active: m.port != 0 && sdp.media_direction(m) != Direction::Inactive,
                payload_types,
                rtpmap,
                ptime_ms: m.ptime(),
                bandwidth_as_kbps: bw(b"AS").and_then(|v| u32::try_from(v).ok()),
                bandwidth_tias_bps: bw(b"TIAS"),
            }
        })
        .collect()
}
