//! Starts the real daemon on private loopback ports and runs `loadgen smoke`
//! against it: every registration and call must succeed, with RTP both ways.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Kq7-vLm2-Wx9z";

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the daemon into this test's target dir (same profile).
fn softswitch_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("SOFTSWITCH_BIN") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap();
    let release = profile_dir.file_name().unwrap() == "release";
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "softswitch",
            "--bin",
            "softswitch",
        ])
        .env("CARGO_TARGET_DIR", target);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().unwrap();
    assert!(st.success(), "cargo build -p softswitch failed");
    profile_dir.join("softswitch")
}

/// A free UDP port and an even-aligned free block for media, chosen by
/// binding port 0 and probing the neighbours.
fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rtp_block(len: u16) -> (u16, u16) {
    let base = 43000 + (std::process::id() % 500) as u16 * 20;
    for start in (base..60000).step_by(len as usize) {
        let start = start & !1;
        if (start..start + len).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return (start, start + len - 1);
        }
    }
    panic!("no free media block");
}

fn options_ok(port: u16) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{port}\r\n\
         From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe-{port}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _ = s.send_to(msg.as_bytes(), ("127.0.0.1", port));
    let mut buf = [0u8; 2048];
    matches!(s.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 200"))
}

#[test]
fn smoke_against_the_daemon() {
    let bin = softswitch_bin();
    let dir = std::env::temp_dir().join(format!("loadgen-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (lo, hi) = rtp_block(200);
    // The config refuses a SIP port inside the RTP range: pick one outside.
    let sip = std::iter::repeat_with(free_udp)
        .find(|p| !(lo..=hi).contains(p))
        .expect("a free UDP port");
    let mut toml = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{sip}\"]\ndomain = \"127.0.0.1\"\n\n\
         [media]\nrtp_ports = \"{lo}-{hi}\"\nbind = \"127.0.0.1\"\nadvertise = \"127.0.0.1\"\n"
    );
    for n in (1001..=1005).chain(2001..=2005) {
        toml.push_str(&format!(
            "\n[[extension]]\nnumber = \"{n}\"\nname = \"u{n}\"\npassword = \"{PASSWORD}\"\n"
        ));
    }
    std::fs::write(dir.join("softswitch.toml"), toml).unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let daemon = Kill(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !options_ok(sip) {
        assert!(Instant::now() < deadline, "daemon did not answer OPTIONS");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "smoke",
            "--server",
            &format!("127.0.0.1:{sip}"),
            "--password",
            PASSWORD,
        ])
        .args([
            "--local-ips",
            "127.0.0.1-127.0.0.3",
            "--timeout",
            "5",
            "--json",
        ])
        .args(["--pid", &daemon.0.id().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "smoke failed: {}\n{stdout}\n{}\n--- daemon log tail ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        log.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let reg = &lines[0]["registrations"];
    assert!(reg["ok"].as_u64().unwrap() >= 50, "{reg}");
    assert_eq!(reg["failed"].as_object().unwrap().len(), 0);
    let calls = &lines[1]["calls"];
    assert_eq!(calls["completed"].as_u64(), Some(5), "{calls}");
    assert_eq!(calls["failed"].as_object().unwrap().len(), 0);
    let rtp = &lines[1]["rtp"];
    assert!(
        rtp["caller_to_callee"]["received"].as_u64().unwrap() > 0,
        "{rtp}"
    );
    assert!(
        rtp["callee_to_caller"]["received"].as_u64().unwrap() > 0,
        "{rtp}"
    );
    // The server's cost was sampled from /proc.
    assert!(lines[1]["server_cost"]["pids"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
