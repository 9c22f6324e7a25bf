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

/// The offer limited to the codecs a trunk allows (by encoding name,
/// case-insensitive; telephone-event and comfort noise always stay). `None`
/// when no audio codec is left, so the trunk cannot take the call.
pub(crate) fn restrict_codecs(body: &Bytes, allowed: &[String]) -> Option<Bytes> {
    if allowed.is_empty() {
        return Some(body.clone());
    }
    let mut sdp = Sdp::parse(body).ok()?;
    let mut usable = false;
    for m in sdp.media.iter_mut().filter(|m| m.port != 0 && m.is_rtp()) {
        let keep: Vec<u8> = m
            .payload_types()
            .filter(|&pt| {
                m.rtpmap(pt).is_some_and(|r| {
                    let name = String::from_utf8_lossy(&r.encoding);
                    allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
                        || name.eq_ignore_ascii_case("telephone-event")
                        || name.eq_ignore_ascii_case("CN")
                })
            })
            .collect();
        let audio_left = keep.iter().any(|&pt| {
            m.rtpmap(pt).is_some_and(|r| {
                let name = String::from_utf8_lossy(&r.encoding);
                !name.eq_ignore_ascii_case("telephone-event") && !name.eq_ignore_ascii_case("CN")
            })
        });
        usable |= audio_left;
        m.formats = keep.iter().map(|pt| Bytes::from(pt.to_string())).collect();
        // rtpmap/fmtp lines of dropped payload types go with them.
        m.attributes.retain(|a| {
            let n = a.name.as_ref();
            if !(n.eq_ignore_ascii_case(b"rtpmap") || n.eq_ignore_ascii_case(b"fmtp")) {
                return true;
            }
            let pt = a
                .value
                .as_ref()
                .and_then(|v| v.split(|&c| c == b' ').next())
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse::<u8>().ok());
            pt.is_some_and(|pt| keep.contains(&pt))
        });
        if !audio_left {
            m.port = 0;
        }
    }
    usable.then(|| sdp.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

    #[test]
    fn trunk_codecs_restrict_the_offer_and_keep_dtmf() {
        let body = Bytes::from_static(OFFER.as_bytes());
        let out = restrict_codecs(&body, &["PCMA".to_string()]).expect("PCMA is offered");
        let sdp = Sdp::parse(&out).expect("valid SDP");
        let pts: Vec<u8> = sdp.media[0].payload_types().collect();
        assert_eq!(pts, vec![8, 101]);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("G722") && !text.contains("PCMU"), "{text}");
        assert!(text.contains("a=fmtp:101 0-16"), "{text}");
        assert_eq!(restrict_codecs(&body, &["G729".to_string()]), None);
        assert_eq!(restrict_codecs(&body, &[]), Some(body.clone()));
    }
}
