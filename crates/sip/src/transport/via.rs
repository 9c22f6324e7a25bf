//! Stamping the top Via of a received request with where it really came
//! from (RFC 3261 §18.2.1, RFC 3581 §4), so responses find their way back
//! through NATs.

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;

use crate::header::Via;
use crate::message::{HeaderName, Message};
use crate::parse::split_comma;

/// Adds `received=<source ip>` to the top Via when its sent-by host is not
/// the source IP (a domain name or another address), and fills an empty
/// `rport` with the source port (then `received` is always added). Only the
/// first value of the first Via line is rewritten; the other values are kept
/// as they are. A missing or unparsable Via is left alone for the core to
/// refuse.
pub fn stamp_via(msg: &mut Message, from: SocketAddr) {
    let Some(idx) = msg.headers.iter().position(|h| h.name == HeaderName::Via) else {
        return;
    };
    let line = msg.headers[idx].value.clone();
    let Some(first) = split_comma(&line).next() else {
        return;
    };
    let Ok(mut via) = Via::parse(&first) else {
        return;
    };
    let ip = from.ip().to_canonical();
    let rport_empty = matches!(via.params.get("rport"), Some(None));
    let host_differs = sent_by_ip(&via) != Some(ip);
    if !rport_empty && !host_differs {
        return;
    }
    via.params.set("received", Some(&ip.to_string()));
    if rport_empty {
        via.params.set("rport", Some(&from.port().to_string()));
    }

    // `first` is a slice of `line`: whatever follows it (", <next Via>...")
    // is copied unchanged.
    let tail = (first.as_ptr() as usize)
        .checked_sub(line.as_ptr() as usize)
        .map(|off| off + first.len())
        .and_then(|end| line.get(end..))
        .unwrap_or_default();
    let mut out = BytesMut::with_capacity(line.len() + 40);
    via.write_to(&mut out);
    out.extend_from_slice(tail);
    msg.headers[idx].value = out.freeze();
}

/// The sent-by host as an IP address, if it is one (IPv6 in brackets).
fn sent_by_ip(via: &Via) -> Option<IpAddr> {
    let host = via.host_str();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_message;
    use bytes::Bytes;

    fn request(via: &str) -> Message {
        let raw = format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: {via}\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        parse_message(&Bytes::from(raw)).unwrap()
    }

    fn top(msg: &Message) -> String {
        String::from_utf8(msg.header(&HeaderName::Via).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn same_ip_without_rport_is_untouched() {
        let mut m = request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
        stamp_via(&mut m, "192.0.2.1:5060".parse().unwrap());
        assert_eq!(top(&m), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
    }

    #[test]
    fn other_ip_gets_received() {
        let mut m = request("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1");
        stamp_via(&mut m, "192.0.2.1:4000".parse().unwrap());
        assert_eq!(
            top(&m),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.1"
        );
    }

    #[test]
    fn domain_gets_received() {
        let mut m = request("SIP/2.0/TCP pc.example.com;branch=z9hG4bK1");
        stamp_via(&mut m, "192.0.2.1:4000".parse().unwrap());
        assert_eq!(
            top(&m),
            "SIP/2.0/TCP pc.example.com;branch=z9hG4bK1;received=192.0.2.1"
        );
    }

    #[test]
    fn empty_rport_is_filled_and_received_always_added() {
        let mut m = request("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP p.example.com;branch=z9hG4bK0");
        stamp_via(&mut m, "192.0.2.1:4000".parse().unwrap());
        assert_eq!(
            top(&m),
            "SIP/2.0/UDP 192.0.2.1:5060;rport=4000;branch=z9hG4bK1;received=192.0.2.1, SIP/2.0/UDP p.example.com;branch=z9hG4bK0"
        );
    }

    #[test]
    fn ipv6_and_mapped_sources() {
        let mut m = request("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1");
        stamp_via(&mut m, "[2001:db8::1]:5060".parse().unwrap());
        assert_eq!(top(&m), "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1");
        stamp_via(&mut m, "[2001:db8::2]:5060".parse().unwrap());
        assert_eq!(
            top(&m),
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=2001:db8::2"
        );

        let mut m = request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
        stamp_via(&mut m, "[::ffff:192.0.2.1]:5060".parse().unwrap());
        assert_eq!(top(&m), "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
    }

    #[test]
    fn later_via_lines_are_kept() {
        let raw = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h1;rport;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP h2;rport;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n";
        let mut m = parse_message(&Bytes::from(raw)).unwrap();
        stamp_via(&mut m, "192.0.2.9:7".parse().unwrap());
        let lines: Vec<_> = m.headers_named(&HeaderName::Via).cloned().collect();
        assert_eq!(
            lines,
            vec![
                Bytes::from("SIP/2.0/UDP h1;rport=7;branch=z9hG4bK1;received=192.0.2.9"),
                Bytes::from("SIP/2.0/UDP h2;rport;branch=z9hG4bK2"),
            ]
        );
    }

    #[test]
    fn bad_or_missing_via_is_left_alone() {
        let mut m = request("garbage");
        stamp_via(&mut m, "192.0.2.9:7".parse().unwrap());
        assert_eq!(top(&m), "garbage");
        m.remove(&HeaderName::Via);
        stamp_via(&mut m, "192.0.2.9:7".parse().unwrap());
        assert!(m.header(&HeaderName::Via).is_none());
    }
}
