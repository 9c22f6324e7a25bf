//! SDP rewriting: make each side's phone send its media to the relay.

use std::net::IpAddr;

use bytes::Bytes;
use sip::sdp::{Attribute, Connection, Sdp};

/// ICE lines point at the phone's own addresses; the relay answers no
/// connectivity checks, so they must not reach the other side.
const ICE_ATTRIBUTES: &[&str] = &[
    "candidate",
    "remote-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "end-of-candidates",
];

/// Rewrites an SDP so that media comes to the relay: connection and origin
/// addresses become `ip`, the first active RTP m= line gets `rtp_port` (its
/// `a=rtcp` becomes `rtp_port + 1`), ICE attributes are dropped. Codecs,
/// directions and telephone-event are kept. Disabled streams (port 0) stay 0;
/// other active m= lines are disabled too, since one port pair carries one
/// RTP stream (use [`rewrite_sdp_streams`] with a port per line to relay them).
pub fn rewrite_sdp(sdp: &Sdp, ip: IpAddr, rtp_port: u16) -> Sdp {
    let mut assigned = false;
    let ports: Vec<u16> = sdp
        .media
        .iter()
        .map(|m| {
            if m.port == 0 || !m.is_rtp() || assigned {
                0
            } else {
                assigned = true;
                rtp_port
            }
        })
        .collect();
    rewrite_sdp_streams(sdp, ip, &ports)
}

/// Like [`rewrite_sdp`] with one relay port per m= line: line `i` gets
/// `ports[i]`; a line that is disabled, has no entry or whose entry is 0 is
/// sent with port 0.
pub fn rewrite_sdp_streams(sdp: &Sdp, ip: IpAddr, ports: &[u16]) -> Sdp {
    let mut out = sdp.clone();
    let ours = Connection::new(ip);
    // Old-style hold (c=0.0.0.0) keeps its meaning for the other side.
    let keep_hold = |c: &Connection| c.ip().is_some_and(|a| a.is_unspecified());

    out.origin.addrtype = ours.addrtype.clone();
    out.origin.address = ours.address.clone();
    if let Some(c) = &mut out.connection {
        if !keep_hold(c) {
            *c = ours.clone();
        }
    }
    out.attributes.retain(|a| !is_ice(a));
    let session_has_c = out.connection.is_some();

    for (i, m) in out.media.iter_mut().enumerate() {
        let port = if m.port == 0 {
            0
        } else {
            ports.get(i).copied().unwrap_or(0)
        };
        m.port = port;
        m.attributes.retain(|a| !is_ice(a));
        match &mut m.connection {
            Some(c) if !keep_hold(c) => *c = ours.clone(),
            Some(_) => {}
            None if !session_has_c && port != 0 => m.connection = Some(ours.clone()),
            None => {}
        }
        if port == 0 {
            continue;
        }
        let had_rtcp = m.rtcp();
        m.attributes
            .iter_mut()
            .filter(|a| a.name.eq_ignore_ascii_case(b"rtcp"))
            .for_each(|a| {
                let rtcp_port = u32::from(port) + 1;
                let value = match &had_rtcp {
                    Some(r) if r.connection.is_some() => {
                        format!("{rtcp_port} IN {} {}", as_str(&ours.addrtype), ip)
                    }
                    _ => rtcp_port.to_string(),
                };
                *a = Attribute::new("rtcp", Bytes::from(value));
            });
    }
    out
}

fn is_ice(a: &Attribute) -> bool {
    ICE_ATTRIBUTES
        .iter()
        .any(|n| a.name.eq_ignore_ascii_case(n.as_bytes()))
}

fn as_str(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap_or("IP4")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Sdp {
        Sdp::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn text(sdp: &Sdp) -> String {
        String::from_utf8(sdp.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn points_media_at_the_relay_and_keeps_the_rest() {
        let offer = parse(
            "v=0\r\no=alice 1 2 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n\
a=ice-ufrag:abcd\r\n\
m=audio 49170 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
a=rtcp:49171 IN IP4 192.168.1.20\r\na=candidate:1 1 UDP 2130706431 192.168.1.20 49170 typ host\r\n\
a=sendonly\r\n\
m=video 0 RTP/AVP 96\r\n\
m=audio 50000 RTP/AVP 0\r\nc=IN IP4 192.168.1.21\r\n",
        );
        let fax_first = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=image 4000 udptl t38\r\nm=audio 4002 RTP/AVP 0\r\n");
        let out = rewrite_sdp(&fax_first, "10.9.9.9".parse().unwrap(), 30000);
        assert_eq!(
            out.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            vec![0, 30000]
        );
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let out = rewrite_sdp(&offer, ip, 30000);
        assert_eq!(
            text(&out),
            "v=0\r\no=alice 1 2 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 0 8 18 101\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
a=rtcp:30001 IN IP4 203.0.113.5\r\n\
a=sendonly\r\n\
m=video 0 RTP/AVP 96\r\n\
m=audio 0 RTP/AVP 0\r\nc=IN IP4 203.0.113.5\r\n"
        );
        // With a port per line, the second audio stream is relayed too.
        let both = rewrite_sdp_streams(&offer, ip, &[30000, 30004, 30008]);
        assert_eq!(
            both.media.iter().map(|m| m.port).collect::<Vec<_>>(),
            vec![30000, 0, 30008]
        );
        assert_eq!(
            both.rtp_addr(&both.media[2]),
            Some("203.0.113.5:30008".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_media_level_connection_and_hold_address() {
        let answer = parse(
            "v=0\r\no=- 5 5 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8\r\na=rtcp:4001\r\n",
        );
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let out = rewrite_sdp(&answer, ip, 31000);
        // Old-style hold stays on hold; the origin no longer shows the phone.
        assert_eq!(out.connection.as_ref().unwrap().address, "0.0.0.0");
        assert_eq!(out.origin.addrtype, "IP6");
        assert_eq!(out.media[0].port, 31000);
        assert_eq!(out.media[0].rtcp().unwrap().port, 31001);

        let no_session_c = parse("v=0\r\no=- 5 5 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 10.0.0.1\r\n");
        let out = rewrite_sdp(&no_session_c, ip, 31000);
        assert_eq!(
            out.rtp_addr(&out.media[0]),
            Some("[2001:db8::1]:31000".parse().unwrap())
        );
        assert_eq!(out.media[0].connection.as_ref().unwrap().addrtype, "IP6");
    }
}
