//! The transports over real loopback sockets.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sip::transport::{transport_for_request, Received, TransportConfig, TransportHandle, MAX_HEAD};
use sip::{HeaderName, ListenSpec, ParseError, Peer, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn spec(s: &str) -> ListenSpec {
    s.parse().unwrap()
}

async fn bind(specs: &[&str]) -> (TransportHandle, Receiver<Received>) {
    let specs: Vec<ListenSpec> = specs.iter().map(|s| spec(s)).collect();
    TransportHandle::bind(&specs).await.unwrap()
}

fn addr_of(h: &TransportHandle, kind: TransportKind) -> SocketAddr {
    h.local_addrs()
        .into_iter()
        .find(|s| s.transport == kind)
        .unwrap()
        .addr
}

async fn next(rx: &mut Receiver<Received>) -> Received {
    timeout(WAIT, rx.recv())
        .await
        .expect("nothing received in time")
        .expect("channel closed")
}

async fn next_message(rx: &mut Receiver<Received>) -> sip::transport::Incoming {
    match next(rx).await {
        Received::Message(m) => m,
        Received::Malformed(m) => panic!("malformed: {:?} {:?}", m.error, m.bytes),
    }
}

/// Nothing more arrives within a short while.
async fn assert_quiet(rx: &mut Receiver<Received>) {
    if let Ok(Some(r)) = timeout(Duration::from_millis(200), rx.recv()).await {
        panic!("unexpected {r:?}");
    }
}

fn options(cseq: u32, via: &str, body: &str) -> String {
    format!(
        "OPTIONS sip:100@example.com SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:100@example.com>\r\n\
         From: <sip:200@example.com>;tag=abc\r\n\
         Call-ID: call-{cseq}\r\n\
         CSeq: {cseq} OPTIONS\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn top_via(m: &sip::Message) -> String {
    String::from_utf8(m.header(&HeaderName::Via).unwrap().to_vec()).unwrap()
}

async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(WAIT, s.read(&mut buf))
            .await
            .expect("connection not closed")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn local_addrs_resolve_port_zero_in_spec_order() {
    let (h, _rx) = bind(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]).await;
    let addrs = h.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0].transport, TransportKind::Udp);
    assert_eq!(addrs[1].transport, TransportKind::Tcp);
    assert!(addrs
        .iter()
        .all(|s| s.addr.port() != 0 && s.addr.ip().is_loopback()));
    h.shutdown();
}

#[tokio::test]
async fn udp_round_trip_stamps_received_and_rport() {
    let (h, mut rx) = bind(&["udp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Udp);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();

    let req = options(1, "SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bKu1", "");
    phone.send_to(req.as_bytes(), server).await.unwrap();
    let got = next_message(&mut rx).await;
    assert_eq!(got.from, Peer::udp(phone_addr));
    assert_eq!(got.local, server);
    assert_eq!(
        top_via(&got.msg),
        format!(
            "SIP/2.0/UDP 192.0.2.7:5060;rport={};branch=z9hG4bKu1;received=127.0.0.1",
            phone_addr.port()
        )
    );

    // The answer goes back from the listening socket.
    let resp = sip::Message::response_to(&got.msg, 200, Some("t1")).to_bytes();
    h.send_from(got.local, got.from, resp.clone());
    let mut buf = vec![0u8; 65535];
    let (n, src) = timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(src, server);
    assert_eq!(&buf[..n], &resp[..]);
    h.shutdown();
}

#[tokio::test]
async fn udp_responses_are_not_stamped() {
    let (h, mut rx) = bind(&["udp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Udp);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.7;rport;branch=z9hG4bKr\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    phone.send_to(resp.as_bytes(), server).await.unwrap();
    let got = next_message(&mut rx).await;
    assert_eq!(got.msg.status(), Some(200));
    assert_eq!(
        top_via(&got.msg),
        "SIP/2.0/UDP 192.0.2.7;rport;branch=z9hG4bKr"
    );
    h.shutdown();
}

#[tokio::test]
async fn udp_keepalive_skipped_and_malformed_reported() {
    let (h, mut rx) = bind(&["udp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Udp);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();

    phone.send_to(b"\r\n\r\n", server).await.unwrap();
    phone.send_to(b"\r\n", server).await.unwrap();
    phone
        .send_to(b"NOT SIP AT ALL\r\n\r\n", server)
        .await
        .unwrap();
    let req = options(2, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKu2", "");
    phone.send_to(req.as_bytes(), server).await.unwrap();

    match next(&mut rx).await {
        Received::Malformed(m) => {
            assert_eq!(&m.bytes[..], b"NOT SIP AT ALL\r\n\r\n");
            assert_eq!(m.from, Peer::udp(phone_addr));
        }
        other => panic!("expected malformed, got {other:?}"),
    }
    let got = next_message(&mut rx).await;
    assert_eq!(got.msg.call_id().unwrap(), &Bytes::from("call-2"));
    // Same IP, no rport: untouched.
    assert_eq!(top_via(&got.msg), "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKu2");
    assert_quiet(&mut rx).await;
    h.shutdown();
}

#[tokio::test]
async fn udp_many_datagrams_each_delivered_whole() {
    let (h, mut rx) = bind(&["udp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Udp);
    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let body = "x".repeat(40_000);
    for i in 0..20u32 {
        let b = if i % 5 == 0 { body.as_str() } else { "v=0\r\n" };
        let req = options(i, "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKm", b);
        phone.send_to(req.as_bytes(), server).await.unwrap();
        let got = next_message(&mut rx).await;
        assert_eq!(got.msg.cseq().unwrap().seq, i);
        assert_eq!(got.msg.body.len(), b.len());
    }
    h.shutdown();
}

#[tokio::test]
async fn tcp_two_messages_in_one_write() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    let phone_addr = phone.local_addr().unwrap();

    let mut both = options(1, "SIP/2.0/TCP 127.0.0.1;rport;branch=z9hG4bKt1", "v=0\r\n");
    both.push_str(&options(2, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKt2", ""));
    phone.write_all(both.as_bytes()).await.unwrap();

    let first = next_message(&mut rx).await;
    assert_eq!(first.from, Peer::tcp(phone_addr));
    assert_eq!(first.local, server);
    assert_eq!(first.msg.cseq().unwrap().seq, 1);
    assert_eq!(&first.msg.body[..], b"v=0\r\n");
    assert_eq!(
        top_via(&first.msg),
        format!(
            "SIP/2.0/TCP 127.0.0.1;rport={};branch=z9hG4bKt1;received=127.0.0.1",
            phone_addr.port()
        )
    );
    let second = next_message(&mut rx).await;
    assert_eq!(second.msg.cseq().unwrap().seq, 2);
    assert!(second.msg.body.is_empty());
    h.shutdown();
}

#[tokio::test]
async fn tcp_message_split_over_many_writes() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    phone.set_nodelay(true).unwrap();

    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
    let req = options(7, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKs", body);
    for chunk in req.as_bytes().chunks(9) {
        phone.write_all(chunk).await.unwrap();
        phone.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = next_message(&mut rx).await;
    assert_eq!(got.msg.cseq().unwrap().seq, 7);
    assert_eq!(&got.msg.body[..], body.as_bytes());
    assert_quiet(&mut rx).await;
    h.shutdown();
}

#[tokio::test]
async fn tcp_keepalive_ignored_and_ping_answered() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();

    // A lone CRLF before a message is a keep-alive: no answer, no message.
    let mut data = b"\r\n".to_vec();
    data.extend_from_slice(options(1, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKk", "").as_bytes());
    phone.write_all(&data).await.unwrap();
    assert_eq!(next_message(&mut rx).await.msg.cseq().unwrap().seq, 1);

    // A double CRLF is a ping: exactly one CRLF comes back.
    phone.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    timeout(WAIT, phone.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    let mut more = [0u8; 16];
    assert!(
        timeout(Duration::from_millis(200), phone.read(&mut more))
            .await
            .is_err(),
        "more than one pong"
    );

    // The stream is still framed correctly afterwards.
    phone
        .write_all(options(2, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKk2", "").as_bytes())
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await.msg.cseq().unwrap().seq, 2);
    assert_quiet(&mut rx).await;
    h.shutdown();
}

#[tokio::test]
async fn tcp_send_without_connection_opens_one_and_reuses_it() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let phone_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let phone_addr = phone_listener.local_addr().unwrap();

    let req = Bytes::from(options(1, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKo1", ""));
    h.send(Peer::tcp(phone_addr), req.clone());
    let (mut phone, _) = timeout(WAIT, phone_listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = vec![0u8; req.len()];
    timeout(WAIT, phone.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, req.to_vec());
    assert_eq!(h.tcp_connections(), 1);

    // The answer on that connection arrives from the phone's address.
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKo1\r\nTo: <sip:100@example.com>;tag=x\r\nFrom: <sip:200@example.com>;tag=abc\r\nCall-ID: call-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    phone.write_all(resp.as_bytes()).await.unwrap();
    let answer = next_message(&mut rx).await;
    assert_eq!(answer.from, Peer::tcp(phone_addr));
    assert_eq!(answer.msg.status(), Some(200));

    // A second send reuses the connection: no new accept.
    let req2 = Bytes::from(options(2, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKo2", ""));
    h.send(Peer::tcp(phone_addr), req2.clone());
    let mut got = vec![0u8; req2.len()];
    timeout(WAIT, phone.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, req2.to_vec());
    assert!(timeout(Duration::from_millis(200), phone_listener.accept())
        .await
        .is_err());
    assert_eq!(h.tcp_connections(), 1);
    h.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_works_from_a_thread_outside_the_runtime() {
    let (h, _rx) = bind(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]).await;
    let phone_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_to, tcp_to) = (
        Peer::udp(phone_udp.local_addr().unwrap()),
        Peer::tcp(phone_tcp.local_addr().unwrap()),
    );
    let sender = h.clone();
    std::thread::spawn(move || {
        sender.send(udp_to, Bytes::from_static(b"over udp"));
        sender.send(tcp_to, Bytes::from_static(b"over tcp"));
    })
    .join()
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = timeout(WAIT, phone_udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"over udp");
    let (mut s, _) = timeout(WAIT, phone_tcp.accept()).await.unwrap().unwrap();
    let mut got = [0u8; 8];
    timeout(WAIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"over tcp");
    h.shutdown();
}

#[tokio::test]
async fn tcp_connect_failure_is_reported() {
    let (h, _rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let mut errors = h.send_errors();
    // A port that was just free: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let msg = Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    h.send(Peer::tcp(dead), msg.clone());
    let err = timeout(WAIT, errors.recv()).await.unwrap().unwrap();
    assert_eq!(err.to, Peer::tcp(dead));
    assert_eq!(err.bytes, msg);
    assert_eq!(err.kind, std::io::ErrorKind::ConnectionRefused);
    // The failed connection does not linger in the map.
    timeout(WAIT, async {
        while h.tcp_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    h.shutdown();
}

#[tokio::test]
async fn udp_send_without_matching_family_is_reported() {
    let (h, _rx) = bind(&["udp:127.0.0.1:0"]).await;
    let mut errors = h.send_errors();
    let to = Peer::udp("[::1]:5060".parse().unwrap());
    h.send(to, Bytes::from_static(b"x"));
    let err = timeout(WAIT, errors.recv()).await.unwrap().unwrap();
    assert_eq!(err.to, to);
    assert_eq!(err.kind, std::io::ErrorKind::AddrNotAvailable);
    h.shutdown();
}

#[tokio::test]
async fn tcp_oversize_head_closes_the_connection() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    let mut big = b"OPTIONS sip:100@example.com SIP/2.0\r\nX-Pad: ".to_vec();
    big.resize(MAX_HEAD + 1024, b'a');
    // The server may close before taking it all; that is the point.
    let _ = phone.write_all(&big).await;
    let echoed = read_until_closed(&mut phone).await;
    assert!(echoed.is_empty());
    assert_quiet(&mut rx).await;
    h.shutdown();
}

#[tokio::test]
async fn tcp_oversize_body_closes_the_connection() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    let head = format!(
        "MESSAGE sip:100@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKb\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    phone.write_all(head.as_bytes()).await.unwrap();
    read_until_closed(&mut phone).await;
    assert_quiet(&mut rx).await;
    h.shutdown();
}

#[tokio::test]
async fn tcp_missing_content_length_is_reported_then_closed() {
    let (h, mut rx) = bind(&["tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let head = "OPTIONS sip:100@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKn\r\nCSeq: 1 OPTIONS\r\n\r\n";
    phone.write_all(head.as_bytes()).await.unwrap();
    match next(&mut rx).await {
        Received::Malformed(m) => {
            assert_eq!(m.error, ParseError::Missing("Content-Length"));
            assert_eq!(&m.bytes[..], head.as_bytes());
            assert_eq!(m.from, Peer::tcp(phone_addr));
        }
        other => panic!("expected malformed, got {other:?}"),
    }
    // The core's 400 still goes out on the connection before it closes.
    h.send(
        Peer::tcp(phone_addr),
        Bytes::from_static(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    );
    let rest = read_until_closed(&mut phone).await;
    assert!(rest.starts_with(b"SIP/2.0 400 Bad Request"));
    h.shutdown();
}

#[tokio::test]
async fn tcp_idle_connection_is_closed() {
    let config = TransportConfig {
        tcp_idle_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    };
    let (h, _rx) = TransportHandle::bind_with(&[spec("tcp:127.0.0.1:0")], config)
        .await
        .unwrap();
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    let started = tokio::time::Instant::now();
    read_until_closed(&mut phone).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    timeout(WAIT, async {
        while h.tcp_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    h.shutdown();
}

#[tokio::test]
async fn tcp_connections_beyond_the_limit_are_closed() {
    let config = TransportConfig {
        max_tcp_connections: 1,
        ..TransportConfig::default()
    };
    let (h, mut rx) = TransportHandle::bind_with(&[spec("tcp:127.0.0.1:0")], config)
        .await
        .unwrap();
    let server = addr_of(&h, TransportKind::Tcp);
    let mut first = TcpStream::connect(server).await.unwrap();
    timeout(WAIT, async {
        while h.tcp_connections() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let mut second = TcpStream::connect(server).await.unwrap();
    assert!(read_until_closed(&mut second).await.is_empty());
    // The first one still works.
    first
        .write_all(options(1, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKl", "").as_bytes())
        .await
        .unwrap();
    assert_eq!(next_message(&mut rx).await.msg.cseq().unwrap().seq, 1);
    h.shutdown();
}

#[tokio::test]
async fn shutdown_closes_connections_and_the_channel() {
    let (h, mut rx) = bind(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]).await;
    let server = addr_of(&h, TransportKind::Tcp);
    let mut phone = TcpStream::connect(server).await.unwrap();
    phone
        .write_all(options(1, "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKz", "").as_bytes())
        .await
        .unwrap();
    next_message(&mut rx).await;
    h.shutdown();
    read_until_closed(&mut phone).await;
    assert!(timeout(WAIT, rx.recv()).await.unwrap().is_none());
    // The listener is gone: connecting is refused.
    assert!(TcpStream::connect(server).await.is_err());
    // Both ports are free again.
    let udp = addr_of(&h, TransportKind::Udp);
    timeout(WAIT, async {
        while std::net::UdpSocket::bind(udp).is_err()
            || std::net::TcpListener::bind(server).is_err()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("ports still bound after shutdown");
    let mut errors = h.send_errors();
    h.send(Peer::udp(server), Bytes::from_static(b"x"));
    assert_eq!(
        timeout(WAIT, errors.recv()).await.unwrap().unwrap().kind,
        std::io::ErrorKind::NotConnected
    );
}

#[tokio::test]
async fn ipv6_udp_round_trip() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        // No IPv6 loopback on this machine.
        return;
    };
    drop(probe);
    let (h, mut rx) = bind(&["udp:127.0.0.1:0", "udp:[::1]:0"]).await;
    let server6 = h.local_addrs()[1].addr;
    let phone = UdpSocket::bind("[::1]:0").await.unwrap();
    let phone_addr = phone.local_addr().unwrap();
    let req = options(1, "SIP/2.0/UDP [2001:db8::5];rport;branch=z9hG4bK6", "");
    phone.send_to(req.as_bytes(), server6).await.unwrap();
    let got = next_message(&mut rx).await;
    assert_eq!(got.from, Peer::udp(phone_addr));
    assert_eq!(got.local, server6);
    assert_eq!(
        top_via(&got.msg),
        format!(
            "SIP/2.0/UDP [2001:db8::5];rport={};branch=z9hG4bK6;received=::1",
            phone_addr.port()
        )
    );
    // Plain send picks the IPv6 socket for an IPv6 peer.
    h.send(
        got.from,
        Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    );
    let mut buf = [0u8; 1024];
    let (_, src) = timeout(WAIT, phone.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(src, server6);
    h.shutdown();
}

#[test]
fn transport_for_request_threshold() {
    assert_eq!(
        transport_for_request(1300, TransportKind::Udp),
        TransportKind::Udp
    );
    assert_eq!(
        transport_for_request(1301, TransportKind::Udp),
        TransportKind::Tcp
    );
    assert_eq!(
        transport_for_request(100, TransportKind::Tcp),
        TransportKind::Tcp
    );
    assert_eq!(
        transport_for_request(5000, TransportKind::Tcp),
        TransportKind::Tcp
    );
}
