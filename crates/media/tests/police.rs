//! Bandwidth policing on real loopback UDP. Each test uses its own port
//! sub-range of 31700-31799.
//!
//! Streams are 250-octet datagrams as the relay counts them (210 octets of
//! payload + 12 of RTP + 28 of IPv4/UDP), so one every 10 ms is 200 kbps.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::{PoliceConfig, Relay, RelayConfig, Session, Side};
use rtp::header::Header;
use rtp::packet::Packet;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{interval, sleep, timeout, Instant, MissedTickBehavior};
use webrtc_util::marshal::Marshal;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const RESERVED_KBPS: u32 = 100;
/// 200 kbps, twice the reservation.
const TWICE: Duration = Duration::from_millis(10);
/// 80 kbps, within the reservation.
const WITHIN: Duration = Duration::from_millis(25);
const RTCP_RR: [u8; 8] = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];

fn relay(min: u16, max: u16, drop_excess: bool) -> Relay {
    let mut cfg = RelayConfig::new(LO, LO, min, max);
    cfg.police = PoliceConfig {
        margin_percent: 20,
        window: Duration::from_millis(500),
        drop_excess,
        burst: Duration::from_millis(100),
    };
    Relay::new(cfg).unwrap()
}

fn rtp(seq: u16) -> Vec<u8> {
    let pkt = Packet {
        header: Header {
            version: 2,
            payload_type: 0,
            sequence_number: seq,
            timestamp: u32::from(seq) * 80,
            ssrc: 0x1234_5678,
            ..Default::default()
        },
        payload: Bytes::from_static(&[0xd5; 210]),
    };
    pkt.marshal().unwrap().to_vec()
}

struct Phones {
    a: UdpSocket,
    a_rtcp: UdpSocket,
    b: Arc<UdpSocket>,
    b_rtcp: UdpSocket,
    a_port: u16,
}

async fn phones(s: &Session) -> Phones {
    let bind = || UdpSocket::bind((LO, 0));
    let p = Phones {
        a: bind().await.unwrap(),
        a_rtcp: bind().await.unwrap(),
        b: Arc::new(bind().await.unwrap()),
        b_rtcp: bind().await.unwrap(),
        a_port: s.local_port(Side::A),
    };
    let addr = |u: &UdpSocket| u.local_addr().unwrap();
    s.set_remote(Side::A, addr(&p.a), Some(addr(&p.a_rtcp)));
    s.set_remote(Side::B, addr(&p.b), Some(addr(&p.b_rtcp)));
    p
}

/// Sends one RTP packet from A every `every` for `total`, catching up on
/// late ticks so the mean rate holds; returns the packets sent.
async fn send_from_a(p: &Phones, every: Duration, total: Duration) -> u64 {
    let to = SocketAddr::new(LO, p.a_port);
    let mut tick = interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let end = Instant::now() + total;
    let mut sent = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        p.a.send_to(&rtp(sent as u16), to).await.unwrap();
        sent += 1;
    }
    sent
}

/// Counts what B receives until it has been quiet for 300 ms.
fn count_at_b(p: &Phones) -> JoinHandle<u64> {
    let b = p.b.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok(r) = timeout(Duration::from_millis(300), b.recv_from(&mut buf)).await {
            r.unwrap();
            n += 1;
        }
        n
    })
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_stream_within_its_reservation_is_never_flagged_nor_dropped() {
    let r = relay(31700, 31719, true);
    let s = r.create_session().unwrap();
    s.set_reservation(RESERVED_KBPS, RESERVED_KBPS);
    let p = phones(&s).await;
    let received = count_at_b(&p);
    let sent = send_from_a(&p, WITHIN, Duration::from_millis(1500)).await;
    let st = s.stats().a_to_b;
    assert!(
        (50..=110).contains(&st.measured_kbps),
        "measured {} kbps",
        st.measured_kbps
    );
    assert_eq!(st.reserved_kbps, RESERVED_KBPS);
    assert_eq!(received.await.unwrap(), sent);
    let st = s.stats().a_to_b;
    assert_eq!(
        (st.police_exceeded_episodes, st.police_dropped_packets),
        (0, 0)
    );
    assert_eq!(r.police_stats(), Default::default());
}

#[tokio::test]
async fn twice_the_reservation_beyond_the_window_is_flagged_once() {
    let r = relay(31720, 31739, false);
    let s = r.create_session().unwrap();
    s.set_reservation(RESERVED_KBPS, RESERVED_KBPS);
    let p = phones(&s).await;
    let received = count_at_b(&p);
    let sent = send_from_a(&p, TWICE, Duration::from_millis(1500)).await;
    let st = s.stats();
    assert!(
        (150..=260).contains(&st.a_to_b.measured_kbps),
        "measured {} kbps",
        st.a_to_b.measured_kbps
    );
    assert_eq!(st.a_to_b.police_exceeded_episodes, 1);
    assert_eq!(st.b_to_a.police_exceeded_episodes, 0);
    assert_eq!(r.police_stats().exceeding_now, 1);
    // Without drop_excess everything is relayed.
    assert_eq!(received.await.unwrap(), sent);
    assert_eq!(s.stats().a_to_b.police_dropped_packets, 0);

    // Once silent the episode ends; the count stays.
    wait_until("episode end", || r.police_stats().exceeding_now == 0).await;
    let totals = r.police_stats();
    assert_eq!((totals.exceeded_episodes, totals.dropped_packets), (1, 0));
    assert_eq!(s.stats().a_to_b.police_exceeded_episodes, 1);
}

#[tokio::test]
async fn drop_excess_limits_the_forwarded_rate_but_never_rtcp() {
    let r = relay(31740, 31759, true);
    let s = r.create_session().unwrap();
    s.set_reservation(RESERVED_KBPS, 0);
    let p = phones(&s).await;
    let received = count_at_b(&p);
    let sent = send_from_a(&p, TWICE, Duration::from_secs(2)).await;
    // The bucket is empty now; RTCP is charged to it but still relayed.
    let rtcp_to = SocketAddr::new(LO, p.a_port + 1);
    for _ in 0..5 {
        p.a_rtcp.send_to(&RTCP_RR, rtcp_to).await.unwrap();
    }
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        let got = timeout(Duration::from_secs(2), p.b_rtcp.recv_from(&mut buf)).await;
        assert_eq!(got.unwrap().unwrap().0, RTCP_RR.len());
    }

    let forwarded = received.await.unwrap();
    // Allowed: 120 kbps, 60% of what is sent, plus a 100 ms burst.
    assert!(
        forwarded * 100 < sent * 75 && forwarded * 100 > sent * 40,
        "{forwarded} of {sent} forwarded"
    );
    let st = s.stats().a_to_b;
    assert_eq!(st.police_dropped_packets, sent - forwarded);
    assert_eq!(st.rtp.packets, sent, "dropped packets still count as sent");
    assert_eq!(st.police_exceeded_episodes, 1);
    assert_eq!(r.police_stats().dropped_packets, sent - forwarded);
}

#[tokio::test]
async fn no_reservation_means_no_policing() {
    let r = relay(31760, 31779, true);
    let s = r.create_session().unwrap();
    // Reserved, then taken back (a re-INVITE to a codec not policed).
    s.set_reservation(RESERVED_KBPS, RESERVED_KBPS);
    s.set_reservation(0, 0);
    let p = phones(&s).await;
    let received = count_at_b(&p);
    // 400 kbps.
    let sent = send_from_a(&p, Duration::from_millis(5), Duration::from_millis(1200)).await;
    let st = s.stats().a_to_b;
    assert!(st.measured_kbps > 250, "measured {} kbps", st.measured_kbps);
    assert_eq!(received.await.unwrap(), sent);
    let st = s.stats().a_to_b;
    assert_eq!(
        (
            st.reserved_kbps,
            st.police_exceeded_episodes,
            st.police_dropped_packets
        ),
        (0, 0, 0)
    );
    assert_eq!(r.police_stats(), Default::default());
}

#[test]
fn a_zero_police_window_is_a_config_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut cfg = RelayConfig::new(LO, LO, 31780, 31789);
        assert_eq!(cfg.police, PoliceConfig::default());
        cfg.police.window = Duration::ZERO;
        assert!(matches!(Relay::new(cfg), Err(media::MediaError::Config(_))));
    });
}
