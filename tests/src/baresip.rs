//! A baresip 1.0 softphone driven through its `ctrl_tcp` module: one config
//! directory per instance, audio from a WAV file (`aufile`), no sound card
//! (`alsa,null` player), received audio recorded by `sndfile` so the test can
//! check what really arrived.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, Extension, Ports, TempDir, LOOPBACK};

pub struct Baresip {
    pub name: String,
    pub sip_port: u16,
    dir: TempDir,
    child: ChildGuard,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Every event type seen so far, in order.
    pub events: Vec<String>,
}

impl Baresip {
    /// Start baresip for `ext`, registering to `registrar`, sending `wav`.
    pub fn start(ext: &Extension, registrar: SocketAddr, wav: &Path) -> Result<Baresip, String> {
        let name = format!("baresip-{}", ext.number);
        let dir = TempDir::new(&name);
        // baresip binds SIP on the port (UDP+TCP) and TLS on port+1.
        let sip_port = Ports::sip_block(2);
        let ctrl_port = Ports::sip();
        let (rtp_lo, rtp_hi) = Ports::rtp_block(20);
        let rec = dir.join("rec");
        fs::create_dir_all(&rec).map_err(|e| format!("mkdir: {e}"))?;
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             net_interface\t\t127.0.0.1\n\
             audio_player\t\talsa,null\n\
             audio_alert\t\talsa,null\n\
             audio_source\t\taufile,{wav}\n\
             audio_srate\t\t8000\n\
             audio_channels\t\t1\n\
             rtp_ports\t\t{rtp_lo}-{rtp_hi}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\talsa.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n\
             snd_path\t\t{rec}\n",
            wav = wav.display(),
            rec = rec.display(),
        );
        fs::write(dir.join("config"), config).map_err(|e| format!("write config: {e}"))?;
        let account = format!(
            "<sip:{n}@127.0.0.1:{p}>;auth_user={n};auth_pass={pw};answermode=auto;\
             audio_codecs=PCMU;regint=600\n",
            n = ext.number,
            p = registrar.port(),
            pw = ext.password,
        );
        fs::write(dir.join("accounts"), account).map_err(|e| format!("write accounts: {e}"))?;
        fs::write(dir.join("contacts"), "").map_err(|e| format!("write contacts: {e}"))?;
        let log = fs::File::create(dir.join("baresip.log")).map_err(|e| format!("log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        // Line-buffered output, so the log shows a registration as soon as
        // it happens: its ctrl_tcp event is lost when it completes before
        // our connection is up, and the log is then the only witness.
        let mut cmd = if Path::new("/usr/bin/stdbuf").is_file() {
            let mut c = Command::new("/usr/bin/stdbuf");
            c.args(["-oL", "-eL", "baresip"]);
            c
        } else {
            Command::new("baresip")
        };
        let child = cmd
            .arg("-f")
            .arg(dir.path())
            .arg("-v")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn baresip (is baresip-core installed?): {e}"))?;
        let mut child = ChildGuard::new(&name, child, Duration::from_secs(90));
        let ctrl_addr = SocketAddr::from((LOOPBACK, ctrl_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            if let Ok(s) = TcpStream::connect(ctrl_addr) {
                break s;
            }
            if child.try_wait().is_some() || Instant::now() > deadline {
                return Err(format!(
                    "baresip ctrl_tcp never listened on {ctrl_addr}\n{}",
                    fs::read_to_string(dir.join("baresip.log")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Baresip {
            name,
            sip_port,
            dir,
            child,
            ctrl,
            buf: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Send a ctrl_tcp command (a netstring holding JSON).
    pub fn command(&mut self, command: &str, params: &str) -> std::io::Result<()> {
        let json =
            format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"e2e\"}}");
        let ns = format!("{}:{json},", json.len());
        self.ctrl.write_all(ns.as_bytes())
    }

    /// Wait for an event of `kind` (e.g. `CALL_ESTABLISHED`).
    pub fn wait_event(&mut self, kind: &str, wait: Duration) -> bool {
        let needle = format!("\"type\":\"{kind}\"");
        if self.events.iter().any(|e| e.contains(&needle)) {
            return true;
        }
        // A registration can complete before our ctrl_tcp connection is
        // up, and its event is then never sent to us: the log has it too.
        let registered_in_log =
            |b: &Baresip| kind == "REGISTER_OK" && b.log().contains("200 OK () [");
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            if registered_in_log(self) {
                return true;
            }
            while let Some(msg) = self.next_netstring() {
                let hit = msg.contains(&needle);
                self.events.push(msg);
                if hit {
                    return true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.ctrl.set_read_timeout(Some(
                left.clamp(Duration::from_millis(1), Duration::from_millis(100)),
            ));
            match self.ctrl.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        false
    }

    fn next_netstring(&mut self) -> Option<String> {
        let colon = self.buf.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return None;
        }
        let msg = String::from_utf8_lossy(&self.buf[colon + 1..end]).into_owned();
        self.buf.drain(..=end);
        Some(msg)
    }

    /// The WAV files `sndfile` wrote for received (decoded) audio.
    pub fn received_recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.join("rec"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.contains("dec") && n.ends_with(".wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Quit politely (so recordings are finalized), then make sure it is gone.
    pub fn quit(&mut self) {
        let _ = self.command("quit", "");
        // It may linger unregistering; recordings are closed at call end.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.child.try_wait().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.terminate(Duration::from_secs(2));
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.child.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "---- {} log (last lines) ----\n{}\n---- events ----\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                self.events.join("\n")
            );
        }
    }
}
