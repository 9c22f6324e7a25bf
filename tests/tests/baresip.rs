//! Two real softphones (baresip) register to the daemon; Alice calls Bob,
//! who answers automatically; each sends its own tone for about 3 s and
//! records what it receives. The recordings must hold the other side's tone
//! for at least 2 s, so audio crossed the relay both ways.

use std::time::Duration;

use e2e::baresip::Baresip;
use e2e::wav::{read_pcm16, write_sine};
use e2e::{alice, bob, Daemon, DaemonConfig, TempDir};

/// Dominant frequency estimated from zero crossings of the loud part.
fn tone_hz(samples: &[i16], rate: f64) -> f64 {
    let loud: Vec<i16> = samples
        .iter()
        .copied()
        .skip_while(|s| s.unsigned_abs() < 2000)
        .collect();
    if loud.len() < 800 {
        return 0.0;
    }
    let crossings = loud.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (loud.len() as f64 / rate)
}

/// Seconds of received audio that carry a tone (louder than background).
fn loud_seconds(samples: &[i16], rate: f64) -> f64 {
    // A 0.5 FS sine spends 2/3 of its time above 0.25 FS; count 20 ms frames
    // whose peak is well above silence.
    samples
        .chunks(160)
        .filter(|f| f.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) > 4000)
        .count() as f64
        * 160.0
        / rate
}

/// Alice dials `target(bob)`, both talk for 3 s, Alice hangs up; each must
/// have received the other's tone for at least 2 s.
fn call_and_check(
    registrar: std::net::SocketAddr,
    register: bool,
    target: impl Fn(&Baresip) -> String,
) {
    let dir = TempDir::new("baresip-audio");
    let (wav_a, wav_b) = (dir.join("alice.wav"), dir.join("bob.wav"));
    write_sine(&wav_a, 8000, 440.0, 20.0).unwrap();
    write_sine(&wav_b, 8000, 1000.0, 20.0).unwrap();

    let mut b = Baresip::start(&bob(), registrar, &wav_b).unwrap();
    let mut a = Baresip::start(&alice(), registrar, &wav_a).unwrap();
    if register {
        assert!(
            b.wait_event("REGISTER_OK", Duration::from_secs(10)),
            "Bob did not register"
        );
        assert!(
            a.wait_event("REGISTER_OK", Duration::from_secs(10)),
            "Alice did not register"
        );
    }

    a.command("dial", &target(&b)).unwrap();
    assert!(
        a.wait_event("CALL_ESTABLISHED", Duration::from_secs(15)),
        "Alice's call was not established"
    );
    assert!(
        b.wait_event("CALL_ESTABLISHED", Duration::from_secs(5)),
        "Bob's call was not established"
    );
    std::thread::sleep(Duration::from_secs(3));
    a.command("hangup", "").unwrap();
    assert!(
        a.wait_event("CALL_CLOSED", Duration::from_secs(10)),
        "Alice's call did not close"
    );
    assert!(
        b.wait_event("CALL_CLOSED", Duration::from_secs(10)),
        "Bob did not see the BYE"
    );
    a.quit();
    b.quit();

    for (who, phone, expect_hz) in [("Alice", &a, 1000.0), ("Bob", &b, 440.0)] {
        let recs = phone.received_recordings();
        assert!(!recs.is_empty(), "{who}: no recording of received audio");
        let samples: Vec<i16> = recs
            .iter()
            .flat_map(|p| read_pcm16(p).unwrap_or_default())
            .collect();
        let secs = loud_seconds(&samples, 8000.0);
        assert!(secs >= 2.0, "{who} received only {secs:.2} s of audio");
        let hz = tone_hz(&samples, 8000.0);
        assert!(
            (hz - expect_hz).abs() < expect_hz * 0.1,
            "{who} received a {hz:.0} Hz tone, expected the other side's {expect_hz} Hz"
        );
    }
}

#[test]
fn two_softphones_call_each_other_through_the_relay() {
    let d = Daemon::start(DaemonConfig::new(vec![alice(), bob()]))
        .unwrap_or_else(|e| panic!("daemon did not start: {e}"));
    let port = d.sip_addr().port();
    call_and_check(d.sip_addr(), true, |_| format!("sip:1002@127.0.0.1:{port}"));
}

/// The harness itself (config, ctrl_tcp, recordings, tone check) on a
/// direct call between the two phones, without the daemon.
#[test]
fn softphones_call_directly_without_the_daemon() {
    let nowhere = std::net::SocketAddr::from((e2e::LOOPBACK, e2e::Ports::sip()));
    call_and_check(nowhere, false, |b| {
        format!("sip:1002@127.0.0.1:{}", b.sip_port)
    });
}
