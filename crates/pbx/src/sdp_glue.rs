//! What call control does with SDP: learn where a phone wants media, and
//! point its peer at our relay instead.

use std::net::IpAddr;

use bytes::Bytes;
use sip::sdp::{Sdp, SdpError};

pub(crate) fn parse(body: &Bytes) -> Result<Sdp, SdpError> {
    Sdp::parse(body)
}

/// The first active RTP stream is the one the relay carries.
fn relayed_stream(sdp: &Sdp) -> Option<usize> {
    sdp.media.iter().position(|m| m.port != 0 && m.is_rtp())
}

/// Tells the relay where this side's phone said it receives media. The
/// relay still latches onto the address packets really come from.
pub(crate) fn learn_remote(session: &media::Session, side: media::Side, sdp: &Sdp) {
    let Some(i) = relayed_stream(sdp) else { return };
    let m = &sdp.media[i];
    if let Some(rtp) = sdp.rtp_addr(m) {
        session.set_remote(side, rtp, sdp.rtcp_addr(m));
    }
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

/// The SDP the other side sees: media addressed to our relay port. A
/// session carries one stream; further active streams are refused with
/// port 0 (RFC 3264 §6), which keeps the m= line count the offer had.
pub(crate) fn rewrite(sdp: &Sdp, ip: IpAddr, port: u16) -> Bytes {
    let mut sdp = sdp.clone();
    if let Some(first) = relayed_stream(&sdp) {
        for (i, m) in sdp.media.iter_mut().enumerate() {
            if i != first && m.port != 0 {
                m.port = 0;
            }
        }
    }
    media::rewrite_sdp(&sdp, ip, port).to_bytes()
}
