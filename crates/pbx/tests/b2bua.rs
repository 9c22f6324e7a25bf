//! The B2BUA end to end through the sans-IO core: fake phones register,
//! call, answer, hang up, in simulated time. Every path that ends a call
//! must give the relay its ports back.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use pbx::auth::{Algorithm, Challenge};
use pbx::CoreEvent;
use sip::HeaderName;

const RELAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// A call that is up: both phones' dialogs and the relay ports each side saw.
struct Up {
    a: Dialog,
    b: Dialog,
    /// The relay port in the SDP the callee got (B side).
    b_side_port: u16,
    /// The relay port in the SDP the caller got (A side).
    a_side_port: u16,
}

/// Places a call from `a` to `b` and answers it; asserts the usual flow.
fn call_up(net: &mut Net, a: &Phone, b: &Phone) -> Up {
    let (mut ad, a_invite) = a.start_call(net, &b.user);
    let b_invite = b.expect_request(net, "INVITE");
    let b_tag = new_tag();
    b.respond(net, &b_invite, 180, &b_tag, None);
    a.expect_response(net, 180);
    let b_ok = b.respond(net, &b_invite, 200, &b_tag, Some(b.sdp("sendrecv")));
    let a_ok = a.expect_response(net, 200);
    a.confirm(&mut ad, &a_ok);
    let cseq = a_invite.cseq().unwrap().seq;
    a.send(net, &a.ack_2xx(&ad, cseq));
    b.expect_request(net, "ACK");
    a.assert_idle(net);
    b.assert_idle(net);
    let _ = b_ok;
    Up {
        b: b.accept_dialog(&b_invite, &b_tag),
        a: ad,
        b_side_port: sdp_addr(&b_invite).port(),
        a_side_port: sdp_addr(&a_ok).port(),
    }
}

/// The caller hangs up; both BYEs are answered.
fn hang_up_a(net: &mut Net, a: &Phone, b: &Phone, up: &mut Up) {
    let bye = a.in_dialog(&mut up.a, "BYE", None, &[]);
    a.send(net, &bye);
    a.expect_response(net, 200);
    let b_bye = b.expect_request(net, "BYE");
    b.respond(net, &b_bye, 200, "x", None);
}

fn registered(net: &mut Net, user: &str, host: u8, port: u16) -> Phone {
    let mut p = Phone::new(user, host, port);
    p.register(net);
    p
}

fn ended_reasons(net: &Net) -> Vec<String> {
    net.events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::CallEnded { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Registration
// ---------------------------------------------------------------------------

/// What a 401 looks like, with the nonce left out: what must not tell a
/// known user from an unknown one.
fn challenge_shape(resp: &sip::Message) -> (u16, String, Vec<String>, Vec<String>, bool) {
    let names = resp
        .headers
        .iter()
        .map(|h| h.name.as_str().to_ascii_lowercase())
        .collect();
    let challenges = resp
        .headers_named(&HeaderName::WwwAuthenticate)
        .map(|v| {
            let c = Challenge::parse(v).expect("challenge parses");
            format!(
                "realm={} alg={:?} qop={} opaque={} stale={} nonce_len={}",
                c.realm,
                c.algorithm,
                c.qop_auth,
                c.opaque.is_some(),
                c.stale,
                c.nonce.len()
            )
        })
        .collect();
    (
        resp.status().unwrap_or(0),
        reason(resp),
        names,
        challenges,
        to_tag(resp).is_some(),
    )
}

#[tokio::test]
async fn register_is_challenged_then_accepted_and_unknown_users_look_the_same() {
    let mut net = Net::new(1);
    let mut a = Phone::new("1001", 2, 5062);

    let req = a.register_request(None);
    a.send(&mut net, &req);
    let first = a.expect_response(&mut net, 401);
    let challenges: Vec<Challenge> = first
        .headers_named(&HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .collect();
    assert!(challenges.iter().any(|c| c.algorithm == Algorithm::Md5));
    assert!(challenges.iter().all(|c| c.realm == DOMAIN && c.qop_auth));
    assert_eq!(call_id(&first), call_id(&req));

    let auth = a.answer_challenge(
        first.headers_named(&HeaderName::WwwAuthenticate),
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        &password_of("1001"),
    );
    let req = a.register_request(Some(auth));
    a.send(&mut net, &req);
    let ok = a.expect_response(&mut net, 200);
    let contact = hdr(&ok, HeaderName::Contact).expect("200 lists the binding");
    assert!(contact.contains(&a.addr.to_string()), "{contact}");
    assert!(contact.contains("expires="), "{contact}");
    let bindings = net.core.registrar().location().lookup("1001", net.now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source.addr, a.addr);

    // A known user with a wrong password and an unknown user with any
    // password get the same answer, first without and then with credentials.
    let mut known = Phone::new("1002", 3, 5060);
    let mut unknown = Phone::new("1999", 4, 5060);
    let mut shapes = Vec::new();
    for p in [&mut known, &mut unknown] {
        let req = p.register_request(None);
        p.send(&mut net, &req);
        let bare = p.expect_response(&mut net, 401);
        let auth = p.answer_challenge(
            bare.headers_named(&HeaderName::WwwAuthenticate),
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            "wrong-password-123",
        );
        let req = p.register_request(Some(auth));
        p.send(&mut net, &req);
        let refused = p.expect_response(&mut net, 401);
        shapes.push((challenge_shape(&bare), challenge_shape(&refused)));
    }
    assert_eq!(
        shapes[0], shapes[1],
        "a known user's 401 differs from an unknown one's"
    );
    assert_eq!(challenge_shape(&first), shapes[0].0);
    assert!(net
        .core
        .registrar()
        .location()
        .lookup("1002", net.now)
        .is_empty());
    assert!(net
        .core
        .registrar()
        .location()
        .lookup("1999", net.now)
        .is_empty());
    net.settle();
}

// ---------------------------------------------------------------------------
// 2. A basic call, step by step
// ---------------------------------------------------------------------------

#[tokio::test]
async fn basic_call_flows_through_both_legs_and_releases_media() {
    let mut net = Net::new(2);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);

    // INVITE without credentials: 407, ACKed on the same transaction.
    let mut ad = a.new_dialog("1002");
    let first = a.invite_request(&ad, "1002", None, true);
    a.send(&mut net, &first);
    let challenge = a.expect_response(&mut net, 407);
    assert!(challenge.header(&HeaderName::ProxyAuthenticate).is_some());
    assert!(to_tag(&challenge).is_some());
    a.send(&mut net, &a.ack_failure(&first, &challenge));
    a.assert_idle(&mut net);
    b.assert_idle(&mut net);
    assert_eq!(
        net.core.relay().ports_in_use(),
        0,
        "no media before authentication"
    );

    ad.cseq += 1;
    let auth = a.answer_challenge(
        challenge.headers_named(&HeaderName::ProxyAuthenticate),
        "INVITE",
        &format!("sip:1002@{DOMAIN}"),
        &a.password,
    );
    let a_invite = a.invite_request(&ad, "1002", Some(auth), true);
    a.send(&mut net, &a_invite);
    a.expect_response(&mut net, 100);

    // The B-leg: a new dialog, SDP pointing at the relay.
    let b_invite = b.expect_request(&mut net, "INVITE");
    assert_ne!(
        call_id(&b_invite),
        call_id(&a_invite),
        "B-leg must have its own Call-ID"
    );
    assert_eq!(
        b_invite.u32_header(&HeaderName::MaxForwards).unwrap(),
        Some(69)
    );
    assert_eq!(b_invite.from_hdr().unwrap().uri.user_str(), Some("1001"));
    assert!(b_invite.from_hdr().unwrap().tag().is_some());
    assert!(to_tag(&b_invite).is_none());
    assert!(
        b_invite.header(&HeaderName::ProxyAuthorization).is_none(),
        "credentials leaked to the callee"
    );
    let b_saw = sdp_addr(&b_invite);
    assert_eq!(b_saw.ip(), RELAY_IP);
    assert!(
        net.in_range(b_saw.port()),
        "B-side port {} not in the relay range",
        b_saw.port()
    );
    assert_eq!(net.core.relay().active_sessions(), 1);
    assert_eq!(
        net.core.relay().ports_in_use(),
        4,
        "one RTP/RTCP pair per side"
    );

    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    let ringing = a.expect_response(&mut net, 180);
    assert_eq!(call_id(&ringing), call_id(&a_invite));
    let a_tag = to_tag(&ringing).expect("180 has the A-leg tag");

    b.respond(&mut net, &b_invite, 200, &b_tag, Some(b.sdp("sendrecv")));
    let a_ok = a.expect_response(&mut net, 200);
    assert_eq!(
        to_tag(&a_ok).as_deref(),
        Some(a_tag.as_str()),
        "same A-leg tag in 180 and 200"
    );
    assert_ne!(
        to_tag(&a_ok).as_deref(),
        Some(b_tag.as_str()),
        "B's tag leaked to the caller"
    );
    let a_saw = sdp_addr(&a_ok);
    assert_eq!(a_saw.ip(), RELAY_IP);
    assert!(net.in_range(a_saw.port()));
    assert_ne!(
        a_saw.port(),
        b_saw.port(),
        "each side has its own relay port"
    );
    let contact = hdr(&a_ok, HeaderName::Contact).expect("200 has a Contact");
    assert!(
        !contact.contains(&b.addr.to_string()),
        "callee address leaked: {contact}"
    );
    assert!(net.events.contains(&CoreEvent::CallAnswered { call: 1 }));

    // ACK from A releases the ACK to B.
    b.assert_idle(&mut net);
    a.confirm(&mut ad, &a_ok);
    a.send(&mut net, &a.ack_2xx(&ad, ad.cseq));
    let b_ack = b.expect_request(&mut net, "ACK");
    assert_eq!(call_id(&b_ack), call_id(&b_invite));
    assert_eq!(b_ack.cseq().unwrap().seq, b_invite.cseq().unwrap().seq);
    assert_eq!(to_tag(&b_ack).as_deref(), Some(b_tag.as_str()));
    assert_eq!(net.core.stats().active_calls, 1);

    // BYE from A.
    let bye = a.in_dialog(&mut ad, "BYE", None, &[]);
    a.send(&mut net, &bye);
    a.expect_response(&mut net, 200);
    let b_bye = b.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&b_bye), call_id(&b_invite));
    assert_eq!(to_tag(&b_bye).as_deref(), Some(b_tag.as_str()));
    assert!(b_bye.cseq().unwrap().seq > b_invite.cseq().unwrap().seq);
    b.respond(&mut net, &b_bye, 200, &b_tag, None);
    assert_eq!(net.core.stats().active_calls, 0);
    assert_eq!(ended_reasons(&net), vec!["caller hung up".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 3. BYE from the callee
// ---------------------------------------------------------------------------

#[tokio::test]
async fn callee_hangs_up() {
    let mut net = Net::new(3);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let mut up = call_up(&mut net, &a, &b);

    let bye = b.in_dialog(&mut up.b, "BYE", None, &[]);
    b.send(&mut net, &bye);
    b.expect_response(&mut net, 200);
    let a_bye = a.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&a_bye), up.a.call_id);
    // In the A-leg, From is the caller's To (with our tag) and To the caller's From.
    assert_eq!(hdr(&a_bye, HeaderName::From).unwrap(), up.a.remote);
    assert_eq!(hdr(&a_bye, HeaderName::To).unwrap(), up.a.local);
    assert_eq!(
        a_bye.request_uri().unwrap().to_bytes(),
        Bytes::from(format!("sip:1001@{}", a.addr)),
        "BYE goes to the caller's Contact"
    );
    a.respond(&mut net, &a_bye, 200, "x", None);
    assert_eq!(ended_reasons(&net), vec!["callee hung up".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 4. CANCEL before answer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn caller_cancels_while_ringing() {
    let mut net = Net::new(4);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");
    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    a.expect_response(&mut net, 180);

    a.send(&mut net, &a.cancel_request(&a_invite));
    let cancel_ok = a.expect_response(&mut net, 200);
    assert_eq!(cancel_ok.cseq().unwrap().method, sip::Method::Cancel);
    let terminated = a.expect_response(&mut net, 487);
    assert_eq!(terminated.cseq().unwrap().method, sip::Method::Invite);
    a.send(&mut net, &a.ack_failure(&a_invite, &terminated));

    let b_cancel = b.expect_request(&mut net, "CANCEL");
    assert_eq!(
        b_cancel.top_via().unwrap().branch(),
        b_invite.top_via().unwrap().branch()
    );
    assert_eq!(b_cancel.cseq().unwrap().seq, b_invite.cseq().unwrap().seq);
    b.respond(&mut net, &b_cancel, 200, &b_tag, None);
    b.respond(&mut net, &b_invite, 487, &b_tag, None);
    let b_ack = b.expect_request(&mut net, "ACK");
    assert_eq!(
        b_ack.top_via().unwrap().branch(),
        b_invite.top_via().unwrap().branch(),
        "ACK of a non-2xx reuses the INVITE branch"
    );
    a.assert_idle(&mut net);
    assert_eq!(ended_reasons(&net), vec!["cancelled by caller".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 5. Busy
// ---------------------------------------------------------------------------

#[tokio::test]
async fn callee_busy() {
    let mut net = Net::new(5);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");
    b.respond(&mut net, &b_invite, 486, &new_tag(), None);
    b.expect_request(&mut net, "ACK");
    let busy = a.expect_response(&mut net, 486);
    a.send(&mut net, &a.ack_failure(&a_invite, &busy));
    assert_eq!(net.core.stats().calls_failed, 1);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 6. Unknown number, extension registered nowhere
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_number_and_unregistered_extension() {
    let mut net = Net::new(6);
    let a = registered(&mut net, "1001", 2, 5062);
    for (ext, code) in [("1999", 404), ("1003", 480)] {
        let (_d, invite) = a.start_call(&mut net, ext);
        let resp = a.expect_response(&mut net, code);
        // Checked at once: a session released now would still hold its
        // ports until the runtime's next turn.
        assert_eq!(net.core.relay().ports_in_use(), 0, "{ext}: media allocated");
        assert_eq!(net.core.relay().active_sessions(), 0);
        a.send(&mut net, &a.ack_failure(&invite, &resp));
        a.assert_idle(&mut net);
    }
    assert_eq!(net.core.stats().active_calls, 0);
    net.settle();
}

// ---------------------------------------------------------------------------
// 7. Ring timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ring_timeout_gives_480_and_cancels_the_callee() {
    let mut net = Net::with_ring_timeout(7, Duration::from_secs(5));
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");
    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    a.expect_response(&mut net, 180);

    net.advance(Duration::from_millis(4900));
    a.assert_idle(&mut net);
    b.assert_idle(&mut net);
    net.advance(Duration::from_millis(200));
    let timeout = a.expect_response(&mut net, 480);
    a.send(&mut net, &a.ack_failure(&a_invite, &timeout));
    let b_cancel = b.expect_request(&mut net, "CANCEL");
    b.respond(&mut net, &b_cancel, 200, &b_tag, None);
    b.respond(&mut net, &b_invite, 487, &b_tag, None);
    b.expect_request(&mut net, "ACK");
    assert_eq!(ended_reasons(&net), vec!["ring timeout".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 8. Parallel fork
// ---------------------------------------------------------------------------

#[tokio::test]
async fn parallel_fork_first_answer_wins_and_a_late_answer_is_hung_up() {
    let mut net = Net::new(8);
    let a = registered(&mut net, "1001", 2, 5062);
    let b1 = registered(&mut net, "1002", 3, 5060);
    let b2 = registered(&mut net, "1002", 4, 5060);
    assert_eq!(
        net.core
            .registrar()
            .location()
            .lookup("1002", net.now)
            .len(),
        2
    );

    let (mut ad, a_invite) = a.start_call(&mut net, "1002");
    let inv1 = b1.expect_request(&mut net, "INVITE");
    let inv2 = b2.expect_request(&mut net, "INVITE");
    assert_ne!(call_id(&inv1), call_id(&inv2));
    assert_ne!(call_id(&inv1), call_id(&a_invite));
    assert_eq!(
        sdp_addr(&inv1),
        sdp_addr(&inv2),
        "both branches see the same relay port"
    );
    let (t1, t2) = (new_tag(), new_tag());
    b1.respond(&mut net, &inv1, 180, &t1, None);
    a.expect_response(&mut net, 180);
    b2.respond(&mut net, &inv2, 180, &t2, None);
    a.expect_response(&mut net, 180);

    b1.respond(&mut net, &inv1, 200, &t1, Some(b1.sdp("sendrecv")));
    let a_ok = a.expect_response(&mut net, 200);
    let cancel = b2.expect_request(&mut net, "CANCEL");
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        inv2.top_via().unwrap().branch()
    );
    b2.respond(&mut net, &cancel, 200, &t2, None);
    // The race: b2 answered before it saw the CANCEL.
    b2.respond(&mut net, &inv2, 200, &t2, Some(b2.sdp("sendrecv")));
    let late_ack = b2.expect_request(&mut net, "ACK");
    assert_eq!(call_id(&late_ack), call_id(&inv2));
    assert_eq!(to_tag(&late_ack).as_deref(), Some(t2.as_str()));
    let late_bye = b2.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&late_bye), call_id(&inv2));
    assert_eq!(to_tag(&late_bye).as_deref(), Some(t2.as_str()));
    b2.respond(&mut net, &late_bye, 200, &t2, None);
    a.assert_idle(&mut net);

    a.confirm(&mut ad, &a_ok);
    a.send(&mut net, &a.ack_2xx(&ad, ad.cseq));
    let ack1 = b1.expect_request(&mut net, "ACK");
    assert_eq!(call_id(&ack1), call_id(&inv1));
    b2.assert_idle(&mut net);

    let mut up = Up {
        a: ad,
        b: b1.accept_dialog(&inv1, &t1),
        b_side_port: 0,
        a_side_port: 0,
    };
    hang_up_a(&mut net, &a, &b1, &mut up);
    b2.assert_idle(&mut net);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 9. Mid-call requests: hold, INFO, UPDATE
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reinvite_info_and_update_are_relayed() {
    let mut net = Net::new(9);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let mut up = call_up(&mut net, &a, &b);

    // Hold from A.
    let hold_sdp = a.sdp("sendonly");
    let reinvite = a.in_dialog(
        &mut up.a,
        "INVITE",
        Some(("application/sdp", &hold_sdp)),
        &[],
    );
    a.send(&mut net, &reinvite);
    let b_re = b.expect_request(&mut net, "INVITE");
    assert_eq!(call_id(&b_re), up.b.call_id);
    assert_eq!(
        hdr(&b_re, HeaderName::From).unwrap(),
        up.b.remote,
        "B-leg From keeps its tag"
    );
    assert_eq!(
        hdr(&b_re, HeaderName::To).unwrap(),
        up.b.local,
        "B-leg To keeps B's tag"
    );
    assert_eq!(
        sdp_addr(&b_re),
        SocketAddr::new(RELAY_IP, up.b_side_port),
        "SDP rewritten to B's relay port"
    );
    assert_eq!(sdp_direction(&b_re).as_deref(), Some("sendonly"));
    let held = b.respond(
        &mut net,
        &b_re,
        200,
        &to_tag(&b_re).unwrap_or_default(),
        Some(b.sdp("recvonly")),
    );
    let _ = held;
    let a_ok = a.expect_response(&mut net, 200);
    assert_eq!(a_ok.cseq().unwrap().seq, up.a.cseq);
    assert_eq!(sdp_addr(&a_ok), SocketAddr::new(RELAY_IP, up.a_side_port));
    assert_eq!(sdp_direction(&a_ok).as_deref(), Some("recvonly"));
    b.assert_idle(&mut net);
    a.send(&mut net, &a.ack_2xx(&up.a, up.a.cseq));
    let b_ack = b.expect_request(&mut net, "ACK");
    assert_eq!(b_ack.cseq().unwrap().seq, b_re.cseq().unwrap().seq);

    // Hold from B.
    let hold_sdp = b.sdp("sendonly");
    let reinvite = b.in_dialog(
        &mut up.b,
        "INVITE",
        Some(("application/sdp", &hold_sdp)),
        &[],
    );
    b.send(&mut net, &reinvite);
    let a_re = a.expect_request(&mut net, "INVITE");
    assert_eq!(call_id(&a_re), up.a.call_id);
    assert_eq!(hdr(&a_re, HeaderName::From).unwrap(), up.a.remote);
    assert_eq!(hdr(&a_re, HeaderName::To).unwrap(), up.a.local);
    assert_eq!(sdp_addr(&a_re), SocketAddr::new(RELAY_IP, up.a_side_port));
    assert_eq!(sdp_direction(&a_re).as_deref(), Some("sendonly"));
    let a_local_tag = up.a.local.rsplit("tag=").next().unwrap().to_string();
    a.respond(&mut net, &a_re, 200, &a_local_tag, Some(a.sdp("recvonly")));
    let b_ok = b.expect_response(&mut net, 200);
    assert_eq!(sdp_addr(&b_ok), SocketAddr::new(RELAY_IP, up.b_side_port));
    assert_eq!(sdp_direction(&b_ok).as_deref(), Some("recvonly"));
    b.send(&mut net, &b.ack_2xx(&up.b, up.b.cseq));
    let a_ack = a.expect_request(&mut net, "ACK");
    assert_eq!(a_ack.cseq().unwrap().seq, a_re.cseq().unwrap().seq);
    assert_eq!(call_id(&a_ack), up.a.call_id);

    // INFO: body untouched.
    let dtmf = "Signal=5\r\nDuration=160\r\n";
    let info = a.in_dialog(
        &mut up.a,
        "INFO",
        Some(("application/dtmf-relay", dtmf)),
        &[],
    );
    a.send(&mut net, &info);
    let b_info = b.expect_request(&mut net, "INFO");
    assert_eq!(b_info.body, Bytes::from(dtmf));
    assert_eq!(
        hdr(&b_info, HeaderName::ContentType).as_deref(),
        Some("application/dtmf-relay")
    );
    b.respond(&mut net, &b_info, 200, "x", None);
    let info_ok = a.expect_response(&mut net, 200);
    assert_eq!(info_ok.cseq().unwrap().method, sip::Method::Info);

    // UPDATE with SDP from B.
    let upd_sdp = b.sdp("sendrecv");
    let update = b.in_dialog(
        &mut up.b,
        "UPDATE",
        Some(("application/sdp", &upd_sdp)),
        &[],
    );
    b.send(&mut net, &update);
    let a_upd = a.expect_request(&mut net, "UPDATE");
    assert_eq!(call_id(&a_upd), up.a.call_id);
    assert_eq!(sdp_addr(&a_upd), SocketAddr::new(RELAY_IP, up.a_side_port));
    a.respond(&mut net, &a_upd, 200, &a_local_tag, Some(a.sdp("sendrecv")));
    let upd_ok = b.expect_response(&mut net, 200);
    assert_eq!(upd_ok.cseq().unwrap().method, sip::Method::Update);
    assert_eq!(sdp_addr(&upd_ok), SocketAddr::new(RELAY_IP, up.b_side_port));

    a.assert_idle(&mut net);
    b.assert_idle(&mut net);
    hang_up_a(&mut net, &a, &b, &mut up);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 10. Requests answered in place
// ---------------------------------------------------------------------------

fn out_of_dialog(p: &Phone, method: &str, uri: &str, extra: &[(&str, String)]) -> sip::Message {
    let mut h = vec![
        ("Via", p.via(&new_branch())),
        ("Max-Forwards", "70".to_string()),
        ("From", format!("<{}>;tag={}", p.aor(), new_tag())),
        ("To", format!("<{uri}>")),
        ("Call-ID", format!("{:016x}@test", rand::random::<u64>())),
        ("CSeq", format!("1 {method}")),
    ];
    for (n, v) in extra {
        if let Some(slot) = h.iter_mut().find(|(k, _)| k == n) {
            slot.1 = v.clone();
        } else {
            h.push((n, v.clone()));
        }
    }
    build(&format!("{method} {uri} SIP/2.0"), &h, None)
}

#[tokio::test]
async fn options_max_forwards_unknown_method_and_require() {
    let mut net = Net::new(10);
    let a = Phone::new("1001", 2, 5062);
    let uri = format!("sip:1002@{DOMAIN}");

    a.send(&mut net, &out_of_dialog(&a, "OPTIONS", &uri, &[]));
    let ok = a.expect_response(&mut net, 200);
    let allow = hdr(&ok, HeaderName::Allow).expect("Allow");
    for m in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"] {
        assert!(allow.contains(m), "Allow lacks {m}: {allow}");
    }
    assert!(hdr(&ok, HeaderName::Accept)
        .expect("Accept")
        .contains("application/sdp"));

    let invite = out_of_dialog(
        &a,
        "INVITE",
        &uri,
        &[("Max-Forwards", "0".to_string()), ("Contact", a.contact())],
    );
    a.send(&mut net, &invite);
    let too_many = a.expect_response(&mut net, 483);
    a.send(&mut net, &a.ack_failure(&invite, &too_many));

    a.send(&mut net, &out_of_dialog(&a, "FOO", &uri, &[]));
    let not_impl = a.expect_response(&mut net, 501);
    assert!(
        hdr(&not_impl, HeaderName::Allow).is_some(),
        "501 should list Allow"
    );

    a.send(
        &mut net,
        &out_of_dialog(&a, "OPTIONS", &uri, &[("Require", "foo".to_string())]),
    );
    let bad_ext = a.expect_response(&mut net, 420);
    assert_eq!(
        hdr(&bad_ext, HeaderName::Unsupported).as_deref(),
        Some("foo")
    );

    a.assert_idle(&mut net);
    assert_eq!(net.core.relay().ports_in_use(), 0);
    net.settle();
}

// ---------------------------------------------------------------------------
// 11. Dead media
// ---------------------------------------------------------------------------

#[tokio::test]
async fn dead_media_ends_the_call_on_both_legs() {
    let mut net = Net::new(11);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let up = call_up(&mut net, &a, &b);
    assert_eq!(net.core.call_media_stats().len(), 1);

    // A session the core does not know changes nothing.
    let (now, wall) = (net.now, net.wall());
    net.core
        .handle_dead_media(now, wall, media::SessionId(9999));
    net.pump();
    net.assert_quiet();
    assert_eq!(net.core.stats().active_calls, 1);

    // Sessions are numbered from 1 per relay; this test's relay made one.
    net.core.handle_dead_media(now, wall, media::SessionId(1));
    net.pump();
    let a_bye = a.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&a_bye), up.a.call_id);
    a.respond(&mut net, &a_bye, 200, "x", None);
    let b_bye = b.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&b_bye), up.b.call_id);
    b.respond(&mut net, &b_bye, 200, "x", None);
    assert_eq!(ended_reasons(&net), vec!["dead media".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 12. Shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_hangs_up_calls_in_progress() {
    let mut net = Net::new(12);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let up = call_up(&mut net, &a, &b);

    let (now, wall) = (net.now, net.wall());
    net.core.shutdown(now, wall);
    net.pump();
    let a_bye = a.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&a_bye), up.a.call_id);
    a.respond(&mut net, &a_bye, 200, "x", None);
    let b_bye = b.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&b_bye), up.b.call_id);
    b.respond(&mut net, &b_bye, 200, "x", None);
    assert_eq!(ended_reasons(&net), vec!["shutdown".to_string()]);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 13. Retransmissions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn retransmitted_invite_and_200_are_absorbed() {
    let mut net = Net::new(13);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (mut ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");

    // The caller did not see the 100 and sends the INVITE again.
    a.send(&mut net, &a_invite);
    while let Some(m) = net.take(a.addr) {
        assert_eq!(
            m.status(),
            Some(100),
            "only the provisional is repeated:\n{}",
            text(&m)
        );
    }
    b.assert_idle(&mut net);
    assert_eq!(net.core.stats().calls_started, 1);
    assert_eq!(net.core.relay().active_sessions(), 1);

    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    a.expect_response(&mut net, 180);
    let b_ok = b.respond(&mut net, &b_invite, 200, &b_tag, Some(b.sdp("sendrecv")));
    let a_ok = a.expect_response(&mut net, 200);

    // B repeats its 200 before the caller ACKed: nothing new for A, no ACK yet for B.
    b.send(&mut net, &b_ok);
    a.assert_idle(&mut net);
    b.assert_idle(&mut net);

    a.confirm(&mut ad, &a_ok);
    a.send(&mut net, &a.ack_2xx(&ad, ad.cseq));
    let ack = b.expect_request(&mut net, "ACK");

    // Our ACK was lost: B repeats its 200 and gets the same ACK again.
    b.send(&mut net, &b_ok);
    let again = b.expect_request(&mut net, "ACK");
    assert_eq!(again.cseq().unwrap(), ack.cseq().unwrap());
    assert_eq!(call_id(&again), call_id(&ack));
    a.assert_idle(&mut net);
    b.assert_idle(&mut net);
    assert_eq!(net.core.stats().calls_answered, 1);

    // And once more after the client transaction is long gone.
    net.advance(Duration::from_secs(40));
    net.assert_quiet();
    b.send(&mut net, &b_ok);
    let late = b.expect_request(&mut net, "ACK");
    assert_eq!(late.cseq().unwrap(), ack.cseq().unwrap());
    a.assert_idle(&mut net);
    b.assert_idle(&mut net);

    let mut up = Up {
        a: ad,
        b: b.accept_dialog(&b_invite, &b_tag),
        b_side_port: 0,
        a_side_port: 0,
    };
    hang_up_a(&mut net, &a, &b, &mut up);
    net.assert_media_released().await;
    net.settle();
}

// ---------------------------------------------------------------------------
// 14. RFC 4475 application-layer rows through the whole core
// ---------------------------------------------------------------------------

fn rfc4475(name: &str) -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/rfc4475/"
    );
    Bytes::from(std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}")))
}

const TORTURER: &str = "127.0.0.9:5060";

/// Delivers a file as one datagram and returns everything the core sent.
fn torture(net: &mut Net, name: &str) -> Vec<(SocketAddr, sip::Message)> {
    net.deliver(TORTURER.parse().unwrap(), rfc4475(name));
    net.take_all()
}

fn only_response(net: &mut Net, name: &str) -> sip::Message {
    let mut out = torture(net, name);
    assert_eq!(
        out.len(),
        1,
        "{name}: expected one response, got {}:\n{}",
        out.len(),
        out.iter()
            .map(|(_, m)| text(m))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (to, m) = out.remove(0);
    assert_eq!(
        to.ip(),
        TORTURER.parse::<SocketAddr>().unwrap().ip(),
        "{name}: response sent elsewhere"
    );
    m
}

#[tokio::test]
async fn rfc4475_application_layer() {
    let mut net = Net::new(14);
    let rows: &[(&str, u16)] = &[
        ("unkscm.dat", 416),
        ("novelsc.dat", 416),
        ("bext01.dat", 420),
        ("invut.dat", 415),
        ("regaut01.dat", 401),
        ("zeromf.dat", 200),
        ("insuf.dat", 400),
        ("multi01.dat", 400),
        ("mcl01.dat", 400),
        ("badvers.dat", 505),
    ];
    let mut failures = Vec::new();
    for (name, code) in rows {
        let m = only_response(&mut net, name);
        if m.status() != Some(*code) {
            failures.push(format!(
                "{name}: expected {code}, got {}",
                m.status().unwrap_or(0)
            ));
            continue;
        }
        match *name {
            "bext01.dat" => {
                let u = hdr(&m, HeaderName::Unsupported).unwrap_or_default();
                if !(u.contains("nothingSupportsThis") && u.contains("nothingSupportsThisEither")) {
                    failures.push(format!("bext01.dat: Unsupported is {u:?}"));
                }
            }
            "invut.dat" => {
                let accept = hdr(&m, HeaderName::Accept).unwrap_or_default();
                if !accept.contains("application/sdp") {
                    failures.push(format!("invut.dat: Accept is {accept:?}"));
                }
            }
            "regaut01.dat" => {
                let ok = m
                    .headers_named(&HeaderName::WwwAuthenticate)
                    .any(|v| Challenge::parse(v).is_ok_and(|c| c.realm == DOMAIN));
                if !ok {
                    failures.push("regaut01.dat: no Digest challenge".to_string());
                }
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(net.core.relay().ports_in_use(), 0);
}

#[tokio::test]
async fn rfc4475_malformed_datagram_gets_400_through_the_malformed_path() {
    let mut net = Net::new(15);
    for name in ["ncl.dat", "badinv01.dat", "quotbal.dat"] {
        let raw = rfc4475(name);
        if sip::parse_message(&raw).is_ok() {
            // Refused after parsing instead; the other rows cover that path.
            continue;
        }
        let before = net.core.stats().bad_requests;
        let m = only_response(&mut net, name);
        assert_eq!(m.status(), Some(400), "{name}:\n{}", text(&m));
        assert_eq!(
            net.core.stats().bad_requests,
            before + 1,
            "{name}: not counted as malformed"
        );
        return;
    }
    panic!("none of the chosen rows fails to parse; pick another");
}

#[tokio::test]
async fn rfc4475_every_message_is_survived() {
    let mut net = Net::new(16);
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/rfc4475/"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 49);
    let torturer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    let mut wrong = Vec::new();
    for name in &names {
        let sent = torture(&mut net, name);
        let summary: Vec<String> = sent
            .iter()
            .map(|(_, m)| {
                m.status()
                    .map_or_else(|| method_of(m).unwrap_or_default(), |c| c.to_string())
            })
            .collect();
        eprintln!("{name}: {summary:?}");
        for (to, m) in sent {
            if to.ip() != torturer {
                wrong.push(format!("{name}: sent to {to}:\n{}", text(&m)));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Responses (unreason, noreason, scalarlg, bigcode, bcast) match nothing and are dropped.
    net.advance(Duration::from_secs(40));
    let late = net.take_all();
    assert!(late
        .iter()
        .all(|(to, _)| to.ip() == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))));
    assert_eq!(net.core.stats().active_calls, 0);
    assert_eq!(net.core.relay().ports_in_use(), 0);
}

// ---------------------------------------------------------------------------
// Races around CANCEL and stray answers
// ---------------------------------------------------------------------------

/// RFC 3261 §9.1: a CANCEL for a branch that has sent no provisional yet
/// waits for one; it must still go out once the callee rings.
#[tokio::test]
async fn cancel_before_the_callee_rings_reaches_it_once_it_does() {
    let mut net = Net::new(17);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");

    a.send(&mut net, &a.cancel_request(&a_invite));
    a.expect_response(&mut net, 200);
    let terminated = a.expect_response(&mut net, 487);
    a.send(&mut net, &a.ack_failure(&a_invite, &terminated));
    b.assert_idle(&mut net);
    net.assert_media_released().await;

    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    a.assert_idle(&mut net);
    let b_cancel = b.expect_request(&mut net, "CANCEL");
    assert_eq!(
        b_cancel.top_via().unwrap().branch(),
        b_invite.top_via().unwrap().branch()
    );
    b.respond(&mut net, &b_cancel, 200, &b_tag, None);
    b.respond(&mut net, &b_invite, 487, &b_tag, None);
    b.expect_request(&mut net, "ACK");
    net.settle();
}

/// RFC 3261 §15: the callee's 200 crossed the caller's CANCEL. The call is
/// over for the caller, so the callee's dialog must be ACKed and hung up.
#[tokio::test]
async fn callee_answer_crossing_the_cancel_is_acked_and_hung_up() {
    let mut net = Net::new(18);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, a_invite) = a.start_call(&mut net, "1002");
    let b_invite = b.expect_request(&mut net, "INVITE");
    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 180, &b_tag, None);
    a.expect_response(&mut net, 180);

    a.send(&mut net, &a.cancel_request(&a_invite));
    a.expect_response(&mut net, 200);
    let terminated = a.expect_response(&mut net, 487);
    a.send(&mut net, &a.ack_failure(&a_invite, &terminated));
    let b_cancel = b.expect_request(&mut net, "CANCEL");
    // B had already answered; the CANCEL finds a completed transaction.
    b.respond(&mut net, &b_invite, 200, &b_tag, Some(b.sdp("sendrecv")));
    b.respond(&mut net, &b_cancel, 200, &b_tag, None);
    let ack = b.expect_request(&mut net, "ACK");
    assert_eq!(call_id(&ack), call_id(&b_invite));
    assert_eq!(to_tag(&ack).as_deref(), Some(b_tag.as_str()));
    let bye = b.expect_request(&mut net, "BYE");
    assert_eq!(call_id(&bye), call_id(&b_invite));
    b.respond(&mut net, &bye, 200, &b_tag, None);
    a.assert_idle(&mut net);
    net.assert_media_released().await;
    net.settle();
}

/// RFC 3261 §18.1.2: a response whose top Via was not put there by us is
/// discarded. RFC 4475 §3.3.10 and §3.1.1.12 send such 200s to INVITEs.
#[tokio::test]
async fn stray_2xx_with_a_foreign_via_is_discarded() {
    let mut net = Net::new(19);
    for name in ["bcast.dat", "unreason.dat"] {
        let sent = torture(&mut net, name);
        assert!(
            sent.is_empty(),
            "{name}: the core answered a response that is not for it:\n{}",
            sent.iter()
                .map(|(to, m)| format!("to {to}:\n{}", text(m)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    net.advance(Duration::from_secs(40));
    net.assert_quiet();
}

// ---------------------------------------------------------------------------
// Late offer and dialog matching
// ---------------------------------------------------------------------------

/// An INVITE without SDP: the callee's 200 carries the offer, the caller's
/// ACK the answer; both are pointed at the relay.
#[tokio::test]
async fn late_offer_answer_travels_in_the_ack() {
    let mut net = Net::new(20);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let mut ad = a.new_dialog("1002");
    let first = a.invite_request(&ad, "1002", None, false);
    a.send(&mut net, &first);
    let challenge = a.expect_response(&mut net, 407);
    a.send(&mut net, &a.ack_failure(&first, &challenge));
    ad.cseq += 1;
    let auth = a.answer_challenge(
        challenge.headers_named(&HeaderName::ProxyAuthenticate),
        "INVITE",
        &format!("sip:1002@{DOMAIN}"),
        &a.password,
    );
    let invite = a.invite_request(&ad, "1002", Some(auth), false);
    a.send(&mut net, &invite);
    a.expect_response(&mut net, 100);
    let b_invite = b.expect_request(&mut net, "INVITE");
    assert!(b_invite.body.is_empty(), "no offer to relay");

    let b_tag = new_tag();
    b.respond(&mut net, &b_invite, 200, &b_tag, Some(b.sdp("sendrecv")));
    let a_ok = a.expect_response(&mut net, 200);
    let a_side = sdp_addr(&a_ok);
    assert_eq!(a_side.ip(), RELAY_IP);
    assert!(net.in_range(a_side.port()));

    a.confirm(&mut ad, &a_ok);
    let answer = a.sdp("sendrecv");
    let mut ack = a.ack_2xx(&ad, ad.cseq);
    ack.set_body("application/sdp", Bytes::from(answer));
    a.send(&mut net, &ack);
    let b_ack = b.expect_request(&mut net, "ACK");
    let b_side = sdp_addr(&b_ack);
    assert_eq!(b_side.ip(), RELAY_IP);
    assert!(net.in_range(b_side.port()));
    assert_ne!(b_side.port(), a_side.port());

    let mut up = Up {
        a: ad,
        b: b.accept_dialog(&b_invite, &b_tag),
        b_side_port: b_side.port(),
        a_side_port: a_side.port(),
    };
    hang_up_a(&mut net, &a, &b, &mut up);
    net.assert_media_released().await;
    net.settle();
}

/// RFC 3261 §12.2.2: a dialog is Call-ID plus both tags. A BYE with the
/// right Call-ID but a To tag that is not ours matches no dialog (481) and
/// must not end the call.
#[tokio::test]
async fn bye_with_a_foreign_tag_gets_481_and_the_call_stays_up() {
    let mut net = Net::new(21);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let mut up = call_up(&mut net, &a, &b);

    let mut forged = up.a.clone();
    forged.remote = format!("<sip:1002@{DOMAIN}>;tag=not-ours");
    let bye = a.in_dialog(&mut forged, "BYE", None, &[]);
    a.send(&mut net, &bye);
    a.expect_response(&mut net, 481);
    b.assert_idle(&mut net);
    assert_eq!(
        net.core.stats().active_calls,
        1,
        "a BYE for another dialog ended the call"
    );

    up.a.cseq = forged.cseq;
    hang_up_a(&mut net, &a, &b, &mut up);
    net.assert_media_released().await;
    net.settle();
}

/// The harness itself: the media check must notice a call still holding ports.
#[tokio::test]
#[should_panic(expected = "media sessions left")]
async fn media_check_notices_a_call_still_up() {
    let mut net = Net::new(22);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let _up = call_up(&mut net, &a, &b);
    net.assert_media_released().await;
}

#[tokio::test]
async fn our_invite_coming_back_is_refused_as_a_loop() {
    let mut net = Net::new(23);
    let a = registered(&mut net, "1001", 2, 5062);
    let b = registered(&mut net, "1002", 3, 5060);
    let (_ad, _a_invite) = a.start_call(&mut net, "1002");
    let mut b_invite = b.expect_request(&mut net, "INVITE");

    // A proxy at the callee's address sends our own INVITE back to us.
    b_invite.push_front(HeaderName::Via, b.via(&new_branch()));
    b.send(&mut net, &b_invite);
    let refused = b.expect_response(&mut net, 482);
    assert_eq!(call_id(&refused), call_id(&b_invite));
    b.assert_idle(&mut net);
    assert_eq!(net.core.stats().calls_started, 1);
}
