//! The relay on real loopback UDP. Each test uses its own port sub-range of
//! 31000-31999 so the tests can run in parallel.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use media::{MediaError, Relay, RelayConfig, Session, SessionId, Side};
use rtp::header::{Extension, Header};
use rtp::packet::Packet;
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout, Instant};
use webrtc_util::marshal::Marshal;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn relay(min: u16, max: u16, dead: Duration) -> Relay {
    let mut cfg = RelayConfig::new(LO, LO, min, max);
    cfg.dead_media = dead;
    Relay::new(cfg).unwrap()
}

async fn phone() -> UdpSocket {
    UdpSocket::bind((LO, 0)).await.unwrap()
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn relay_addr(port: u16) -> SocketAddr {
    SocketAddr::new(LO, port)
}

fn rtp(seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    Packet {
        header: Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0x1234_5678,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

/// A receiver report with no blocks (8 octets).
const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];

async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(Duration::from_secs(2), s.recv_from(&mut buf))
        .await
        .expect("no packet within 2 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn nothing(s: &UdpSocket) {
    let mut buf = [0u8; 2048];
    let r = timeout(Duration::from_millis(200), s.recv_from(&mut buf)).await;
    assert!(r.is_err(), "unexpected packet {:?}", r);
}

/// Phones for both sides of a session, announced with their real addresses.
struct Phones {
    a: UdpSocket,
    a_rtcp: UdpSocket,
    b: UdpSocket,
    b_rtcp: UdpSocket,
}

async fn phones(s: &Session) -> Phones {
    let p = Phones {
        a: phone().await,
        a_rtcp: phone().await,
        b: phone().await,
        b_rtcp: phone().await,
    };
    s.set_remote(Side::A, addr(&p.a), Some(addr(&p.a_rtcp)));
    s.set_remote(Side::B, addr(&p.b), Some(addr(&p.b_rtcp)));
    p
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn relays_rtp_and_rtcp_both_ways_byte_identical() {
    let r = relay(31000, 31019, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
    assert_ne!(pa, pb);
    assert!(pa % 2 == 0 && pb % 2 == 0 && (31000..=31018).contains(&pa));
    assert_eq!(s.advertise_ip(), LO);
    let p = phones(&s).await;

    let fwd = rtp(1, 160, 0, &[0xd5; 160]);
    p.a.send_to(&fwd, relay_addr(pa)).await.unwrap();
    assert_eq!(recv(&p.b).await, (fwd.clone(), relay_addr(pb)));

    let back = rtp(9, 320, 8, &[0x55; 160]);
    p.b.send_to(&back, relay_addr(pb)).await.unwrap();
    assert_eq!(recv(&p.a).await, (back.clone(), relay_addr(pa)));

    p.a_rtcp
        .send_to(&RTCP_RR, relay_addr(pa + 1))
        .await
        .unwrap();
    assert_eq!(
        recv(&p.b_rtcp).await,
        (RTCP_RR.to_vec(), relay_addr(pb + 1))
    );
    p.b_rtcp
        .send_to(&RTCP_RR, relay_addr(pb + 1))
        .await
        .unwrap();
    assert_eq!(
        recv(&p.a_rtcp).await,
        (RTCP_RR.to_vec(), relay_addr(pa + 1))
    );

    let st = s.stats();
    assert_eq!(
        (st.a_to_b.rtp.packets, st.a_to_b.rtp.bytes),
        (1, fwd.len() as u64)
    );
    assert_eq!(
        (st.b_to_a.rtp.packets, st.b_to_a.rtp.bytes),
        (1, back.len() as u64)
    );
    assert_eq!((st.a_to_b.rtcp.packets, st.a_to_b.rtcp.bytes), (1, 8));
    assert_eq!(st.b_to_a.rtcp.packets, 1);
    assert!(st.a_to_b.rtp.last_packet.is_some() && st.a_to_b.rtcp.last_packet.is_some());
    assert_eq!(st.a_to_b.lost, 0);
}

#[tokio::test]
async fn latches_to_the_real_source_and_relatches_after_set_remote() {
    let r = relay(31020, 31039, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
    let announced = phone().await; // what A's SDP said
    let behind_nat = phone().await; // where A's packets really come from
    let intruder = phone().await;
    let b = phone().await;
    s.set_remote(Side::A, addr(&announced), None);
    s.set_remote(Side::B, addr(&b), None);

    // Before A has sent anything, B's media goes where A's SDP said.
    let early = rtp(1, 0, 0, b"early");
    b.send_to(&early, relay_addr(pb)).await.unwrap();
    assert_eq!(recv(&announced).await.0, early);

    // A's first packet latches its NAT address; B's media follows it.
    behind_nat
        .send_to(&rtp(1, 0, 0, b"a1"), relay_addr(pa))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(1, 0, 0, b"a1"));
    b.send_to(&rtp(2, 160, 0, b"b2"), relay_addr(pb))
        .await
        .unwrap();
    assert_eq!(recv(&behind_nat).await.0, rtp(2, 160, 0, b"b2"));
    nothing(&announced).await;

    // Another source is dropped and counted once latched.
    intruder
        .send_to(&rtp(50, 0, 0, b"x"), relay_addr(pa))
        .await
        .unwrap();
    nothing(&b).await;
    assert_eq!(s.stats().a_to_b.dropped_source, 1);

    // A re-INVITE re-arms latching: the next source wins.
    s.set_remote(Side::A, addr(&announced), None);
    intruder
        .send_to(&rtp(51, 0, 0, b"y"), relay_addr(pa))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(51, 0, 0, b"y"));
    b.send_to(&rtp(3, 320, 0, b"b3"), relay_addr(pb))
        .await
        .unwrap();
    assert_eq!(recv(&intruder).await.0, rtp(3, 320, 0, b"b3"));
    behind_nat
        .send_to(&rtp(2, 160, 0, b"a2"), relay_addr(pa))
        .await
        .unwrap();
    nothing(&b).await;
    assert_eq!(s.stats().a_to_b.dropped_source, 2);
}

#[tokio::test]
async fn invalid_packets_are_dropped_without_latching() {
    let r = relay(31040, 31059, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
    let p = phones(&s).await;
    let junk = phone().await;
    junk.send_to(b"\x00\x01\x00\x00 not rtp at all", relay_addr(pa))
        .await
        .unwrap();
    junk.send_to(&[0x80, 0, 0, 1, 0, 0], relay_addr(pa))
        .await
        .unwrap(); // v2 but short
    junk.send_to(&[0x40; 20], relay_addr(pa + 1)).await.unwrap(); // version 1 RTCP
    nothing(&p.b).await;
    nothing(&p.b_rtcp).await;
    let st = s.stats().a_to_b;
    assert_eq!(
        (st.dropped_invalid, st.rtp.packets, st.rtcp.packets),
        (3, 0, 0)
    );
    // The announced phone is still the one that latches.
    p.a.send_to(&rtp(1, 0, 0, b"ok"), relay_addr(pa))
        .await
        .unwrap();
    assert_eq!(recv(&p.b).await.0, rtp(1, 0, 0, b"ok"));
    p.b.send_to(&rtp(1, 0, 0, b"back"), relay_addr(pb))
        .await
        .unwrap();
    assert_eq!(recv(&p.a).await.0, rtp(1, 0, 0, b"back"));
    nothing(&junk).await;
}

#[tokio::test]
async fn counts_loss_and_jitter() {
    let r = relay(31060, 31079, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let pa = s.local_port(Side::A);
    let p = phones(&s).await;
    s.set_clock_rate(8000);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    for seq in (0u16..=20).filter(|&q| q != 5) {
        let pkt = rtp(seq, u32::from(seq) * 160, 0, &[0xd5; 160]);
        p.a.send_to(&pkt, relay_addr(pa)).await.unwrap();
        recv(&p.b).await;
        sent += 1;
        bytes += pkt.len() as u64;
        // 20 ms of media sent at 5 or 35 ms intervals.
        sleep(Duration::from_millis(if seq % 2 == 0 { 5 } else { 35 })).await;
    }
    let st = s.stats().a_to_b;
    assert_eq!((st.rtp.packets, st.rtp.bytes), (sent, bytes));
    assert_eq!(st.lost, 1);
    assert!(st.jitter > 40, "jitter {} units", st.jitter);
    assert!((st.jitter_ms - f64::from(st.jitter) / 8.0).abs() < 1e-9);
    assert_eq!(s.stats().b_to_a.rtp.packets, 0);
}

#[tokio::test]
async fn telephone_events_and_header_extensions_pass_untouched() {
    let r = relay(31080, 31099, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    s.set_event_payload_type(Some(101));
    let pa = s.local_port(Side::A);
    let p = phones(&s).await;
    // RFC 4733 event "5", end bit set on the last three, marker on the first.
    for (i, flags) in [0x0a, 0x0a, 0x8a, 0x8a, 0x8a].into_iter().enumerate() {
        let mut pkt = Packet {
            header: Header {
                version: 2,
                marker: i == 0,
                payload_type: 101,
                sequence_number: 100 + i as u16,
                timestamp: 8000,
                ssrc: 42,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(&[5, flags, 0x03, 0x20]),
        };
        if i == 1 {
            pkt.header.csrc = vec![7, 8];
            pkt.header.extension = true;
            pkt.header.extension_profile = 0xbede;
            pkt.header.extensions = vec![Extension {
                id: 1,
                payload: Bytes::from_static(&[0xaa]),
            }];
        }
        let raw = pkt.marshal().unwrap();
        p.a.send_to(&raw, relay_addr(pa)).await.unwrap();
        assert_eq!(recv(&p.b).await.0, raw.to_vec());
    }
    let st = s.stats().a_to_b;
    assert_eq!((st.rtp.packets, st.lost, st.jitter), (5, 0, 0));
}

#[tokio::test]
async fn dead_media_notice_for_silent_sessions_only() {
    let r = relay(31100, 31119, Duration::from_millis(300));
    let mut events = r.dead_media_events();
    let idle = r.create_session().unwrap();
    let busy = r.create_session().unwrap();
    let pa = busy.local_port(Side::A);
    let p = phones(&busy).await;

    // Traffic on `busy` every 50 ms for 900 ms.
    let mut got: Vec<SessionId> = Vec::new();
    let until = Instant::now() + Duration::from_millis(900);
    let mut seq = 0u16;
    while Instant::now() < until {
        p.a.send_to(&rtp(seq, 0, 0, b"x"), relay_addr(pa))
            .await
            .unwrap();
        seq += 1;
        sleep(Duration::from_millis(50)).await;
        while let Ok(id) = events.try_recv() {
            got.push(id);
        }
    }
    assert_eq!(got, vec![idle.id()], "only the idle session is dead, once");

    // Once `busy` falls silent it is reported too.
    let id = timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, busy.id());

    // Turning the check off and on restarts the clock; a second subscriber sees it.
    let mut second = r.dead_media_events();
    idle.set_dead_media_check(false);
    busy.set_dead_media_check(false);
    sleep(Duration::from_millis(500)).await;
    assert!(events.try_recv().is_err());
    idle.set_dead_media_check(true);
    let id = timeout(Duration::from_secs(2), second.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, idle.id());
    assert!(second.try_recv().is_err());
}

#[tokio::test]
async fn ports_return_to_the_pool_and_the_range_runs_out() {
    // Four port pairs: two sessions.
    let r = relay(31200, 31207, Duration::from_secs(60));
    let s1 = r.create_session().unwrap();
    let s2 = r.create_session().unwrap();
    assert_eq!((r.active_sessions(), r.ports_in_use()), (2, 8));
    assert!(matches!(
        r.create_session(),
        Err(MediaError::Exhausted {
            min: 31200,
            max: 31207
        })
    ));
    assert_eq!((r.active_sessions(), r.ports_in_use()), (2, 8));

    let freed = s1.local_port(Side::A);
    s1.close().await;
    assert_eq!((r.active_sessions(), r.ports_in_use()), (1, 4));
    // The ports are really closed: they can be bound again.
    drop(UdpSocket::bind((LO, freed)).await.unwrap());

    drop(s2);
    assert_eq!(r.active_sessions(), 0);
    wait_until("ports back after drop", || r.ports_in_use() == 0).await;

    let s3 = r.create_session().unwrap();
    s3.release();
    assert_eq!(r.active_sessions(), 0);
    wait_until("ports back after release", || r.ports_in_use() == 0).await;
    // And the whole range is usable again.
    let _a = r.create_session().unwrap();
    let _b = r.create_session().unwrap();
    assert_eq!(r.ports_in_use(), 8);
}

#[tokio::test]
async fn ports_held_by_other_programs_are_skipped() {
    let squatter = UdpSocket::bind((LO, 31302)).await.unwrap();
    // Four pairs: 31300, 31302 (taken), 31304, 31306.
    let r = relay(31300, 31307, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let used = [s.local_port(Side::A), s.local_port(Side::B)];
    assert_eq!(used, [31300, 31304]);
    // Only 31306 is left: not enough for a session, and it goes back.
    let t = r.create_session_with(1);
    assert!(matches!(t, Err(MediaError::Exhausted { .. })), "{t:?}");
    assert_eq!(r.ports_in_use(), 4);
    drop(squatter);
    let t = r.create_session().unwrap();
    let mut ports = [t.local_port(Side::A), t.local_port(Side::B)];
    ports.sort();
    assert_eq!(ports, [31302, 31306]);
}

#[tokio::test]
async fn a_second_stream_added_by_reinvite_relays_independently() {
    let r = relay(31400, 31419, Duration::from_secs(60));
    let mut s = r.create_session().unwrap();
    assert_eq!(s.streams(), 1);
    assert_eq!(s.add_stream().unwrap(), 1);
    assert_eq!(r.ports_in_use(), 8);
    let (pa, pb) = (
        s.stream_local_port(1, Side::A).unwrap(),
        s.stream_local_port(1, Side::B).unwrap(),
    );
    assert!(s.stream_local_port(2, Side::A).is_none());
    let (a, b) = (phone().await, phone().await);
    s.set_stream_remote(1, Side::A, addr(&a), None);
    s.set_stream_remote(1, Side::B, addr(&b), None);
    // A stream that does not exist is ignored, not a panic.
    s.set_stream_remote(7, Side::A, addr(&a), None);

    a.send_to(&rtp(1, 0, 0, b"second"), relay_addr(pa))
        .await
        .unwrap();
    assert_eq!(recv(&b).await, (rtp(1, 0, 0, b"second"), relay_addr(pb)));
    assert_eq!(s.stream_stats(1).unwrap().a_to_b.rtp.packets, 1);
    assert_eq!(s.stats().a_to_b.rtp.packets, 0);
    s.close().await;
    assert_eq!(r.ports_in_use(), 0);
}

#[tokio::test]
async fn unannounced_peer_drops_and_hold_address_stops_sending() {
    let r = relay(31500, 31519, Duration::from_secs(60));
    let s = r.create_session().unwrap();
    let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
    let (a, b) = (phone().await, phone().await);
    // B's address is not known yet (the INVITE is still ringing).
    a.send_to(&rtp(1, 0, 0, b"early"), relay_addr(pa))
        .await
        .unwrap();
    wait_until("no-destination drop", || {
        s.stats().a_to_b.dropped_no_destination == 1
    })
    .await;
    // Old-style hold: c=0.0.0.0 means "do not send".
    s.set_remote(Side::B, "0.0.0.0:4000".parse().unwrap(), None);
    a.send_to(&rtp(2, 0, 0, b"held"), relay_addr(pa))
        .await
        .unwrap();
    wait_until("no-destination drop", || {
        s.stats().a_to_b.dropped_no_destination == 2
    })
    .await;
    s.set_remote(Side::B, addr(&b), None);
    a.send_to(&rtp(3, 0, 0, b"resumed"), relay_addr(pa))
        .await
        .unwrap();
    assert_eq!(recv(&b).await.0, rtp(3, 0, 0, b"resumed"));
    b.send_to(&rtp(1, 0, 0, b"reply"), relay_addr(pb))
        .await
        .unwrap();
    assert_eq!(recv(&a).await.0, rtp(1, 0, 0, b"reply"));
}

#[test]
fn relay_outside_a_runtime_and_bad_configs_are_errors() {
    let cfg = RelayConfig::new(LO, LO, 31600, 31609);
    assert!(matches!(
        Relay::new(cfg.clone()),
        Err(MediaError::NoRuntime)
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut bad = cfg.clone();
        bad.port_min = 31610;
        assert!(matches!(Relay::new(bad), Err(MediaError::Config(_))));
        let mut bad = cfg.clone();
        bad.port_max = 31600;
        assert!(matches!(Relay::new(bad), Err(MediaError::Config(_))));
        let mut bad = cfg.clone();
        bad.dead_media = Duration::ZERO;
        assert!(matches!(Relay::new(bad), Err(MediaError::Config(_))));
        // An odd minimum starts at the next even port.
        let mut odd = cfg.clone();
        odd.port_min = 31601;
        let r = Relay::new(odd).unwrap();
        let s = r.create_session().unwrap();
        assert_eq!(s.local_port(Side::A), 31602);
    });
}
