//! The forwarding workers on real loopback UDP: batches, several workers,
//! IPv6, and sockets closed when the relay goes. Each test uses its own
//! port sub-range of 31800-31999.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use media::{Relay, RelayConfig, Side};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout, Instant};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn relay(ip: IpAddr, min: u16, max: u16, workers: usize) -> Relay {
    let mut cfg = RelayConfig::new(ip, ip, min, max);
    cfg.workers = workers;
    Relay::new(cfg).unwrap()
}

/// A G.711-sized RTP packet whose payload carries `tag`.
fn rtp(seq: u16, tag: u32) -> Vec<u8> {
    let mut p = vec![0xd5u8; 172];
    p[..12].fill(0);
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    p[12..16].copy_from_slice(&tag.to_be_bytes());
    p
}

async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(Duration::from_secs(2), s.recv_from(&mut buf))
        .await
        .expect("no packet within 2 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_burst_longer_than_a_batch_arrives_whole_and_in_order() {
    let r = relay(LO, 31800, 31819, 1);
    let s = r.create_session().unwrap();
    let a = UdpSocket::bind((LO, 0)).await.unwrap();
    let b = UdpSocket::bind((LO, 0)).await.unwrap();
    s.set_remote(Side::A, a.local_addr().unwrap(), None);
    s.set_remote(Side::B, b.local_addr().unwrap(), None);
    let to = SocketAddr::new(LO, s.local_port(Side::A));
    // 200 packets back to back: the relay reads them in several batches.
    for seq in 0..200u16 {
        a.send_to(&rtp(seq, u32::from(seq)), to).await.unwrap();
    }
    let from_b = SocketAddr::new(LO, s.local_port(Side::B));
    for seq in 0..200u16 {
        assert_eq!(recv(&b).await, (rtp(seq, u32::from(seq)), from_b));
    }
    let st = s.stats().a_to_b;
    assert_eq!((st.rtp.packets, st.rtp.bytes, st.lost), (200, 200 * 172, 0));
    assert_eq!(st.send_errors, 0);
}

#[tokio::test]
async fn sessions_on_several_workers_relay_independently() {
    let r = relay(LO, 31820, 31859, 3);
    let mut calls = Vec::new();
    for _ in 0..6 {
        let s = r.create_session().unwrap();
        let a = UdpSocket::bind((LO, 0)).await.unwrap();
        let b = UdpSocket::bind((LO, 0)).await.unwrap();
        s.set_remote(Side::A, a.local_addr().unwrap(), None);
        s.set_remote(Side::B, b.local_addr().unwrap(), None);
        calls.push((s, a, b));
    }
    for round in 0..3u16 {
        for (i, (s, a, b)) in calls.iter().enumerate() {
            let tag = i as u32 * 100 + u32::from(round);
            let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
            a.send_to(&rtp(round, tag), (LO, pa)).await.unwrap();
            assert_eq!(recv(b).await, (rtp(round, tag), SocketAddr::new(LO, pb)));
            b.send_to(&rtp(round, tag + 50), (LO, pb)).await.unwrap();
            assert_eq!(
                recv(a).await,
                (rtp(round, tag + 50), SocketAddr::new(LO, pa))
            );
        }
    }
    for (s, _, _) in &calls {
        let st = s.stats();
        assert_eq!((st.a_to_b.rtp.packets, st.b_to_a.rtp.packets), (3, 3));
    }
    assert_eq!(r.ports_in_use(), 24);
    for (s, _, _) in calls {
        s.close().await;
    }
    assert_eq!(r.ports_in_use(), 0);
}

#[tokio::test]
async fn relays_over_ipv6() {
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let r = relay(lo6, 31860, 31879, 0);
    let s = r.create_session().unwrap();
    let a = UdpSocket::bind((lo6, 0)).await.unwrap();
    let b = UdpSocket::bind((lo6, 0)).await.unwrap();
    let b_rtcp = UdpSocket::bind((lo6, 0)).await.unwrap();
    s.set_remote(Side::A, a.local_addr().unwrap(), None);
    s.set_remote(
        Side::B,
        b.local_addr().unwrap(),
        Some(b_rtcp.local_addr().unwrap()),
    );
    let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
    a.send_to(&rtp(1, 7), (lo6, pa)).await.unwrap();
    assert_eq!(recv(&b).await, (rtp(1, 7), SocketAddr::new(lo6, pb)));
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    a.send_to(&rr, (lo6, pa + 1)).await.unwrap();
    assert_eq!(
        recv(&b_rtcp).await,
        (rr.to_vec(), SocketAddr::new(lo6, pb + 1))
    );
    b.send_to(&rtp(2, 8), (lo6, pb)).await.unwrap();
    assert_eq!(recv(&a).await, (rtp(2, 8), SocketAddr::new(lo6, pa)));
}

#[tokio::test]
async fn dropping_every_handle_closes_every_socket() {
    let r = relay(LO, 31880, 31899, 2);
    let sessions: Vec<_> = (0..4).map(|_| r.create_session().unwrap()).collect();
    let ports: Vec<u16> = sessions
        .iter()
        .flat_map(|s| [s.local_port(Side::A), s.local_port(Side::B)])
        .flat_map(|p| [p, p + 1])
        .collect();
    assert_eq!(ports.len(), 16);
    drop(sessions);
    drop(r);
    // The workers close the sockets once they see the commands.
    let deadline = Instant::now() + Duration::from_secs(2);
    for p in ports {
        loop {
            match std::net::UdpSocket::bind((LO, p)) {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "port {p} still bound: {e}");
                    sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_released_session_is_gone_before_its_ports_are_reused() {
    // One worker, two pairs: every new session reuses the last one's ports.
    let r = relay(LO, 31900, 31903, 1);
    let b = UdpSocket::bind((LO, 0)).await.unwrap();
    for round in 0..20u16 {
        let s = r.create_session().unwrap();
        let a = UdpSocket::bind((LO, 0)).await.unwrap();
        s.set_remote(Side::A, a.local_addr().unwrap(), None);
        s.set_remote(Side::B, b.local_addr().unwrap(), None);
        a.send_to(&rtp(round, u32::from(round)), (LO, s.local_port(Side::A)))
            .await
            .unwrap();
        assert_eq!(recv(&b).await.0, rtp(round, u32::from(round)));
        assert_eq!(s.stats().a_to_b.rtp.packets, 1);
        s.release();
        wait_until("ports back", || r.ports_in_use() == 0).await;
    }
}
