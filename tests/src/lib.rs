//! Harness for the end-to-end tests: start the real `softswitch` daemon on
//! loopback ports with a throw-away config, drive it with SIPp and baresip,
//! and exchange RTP through its relay from sockets the test owns.
//!
//! Locating the daemon: `SOFTSWITCH_BIN` wins when set. Otherwise the harness
//! runs `cargo build -p softswitch` once per test binary into the same target
//! directory the test binary lives in (`<target>/<profile>/deps/<test>`), so
//! `cargo test -p e2e` always runs the current daemon without the e2e package
//! depending on the binary crate.
//!
//! Every child process is killed when its handle is dropped and has a hard
//! deadline, so a hung peer fails the test instead of hanging it.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub mod baresip;
pub mod rtp;
pub mod status;
pub mod wav;

pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Root of the repository (parent of this package).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Folder holding the SIPp scenarios.
pub fn sipp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// Path of the daemon binary, built on first use (see the crate docs).
pub fn softswitch_bin() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(locate_or_build).clone()
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SOFTSWITCH_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("SOFTSWITCH_BIN={} is not a file", bin.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected profile dir {}", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
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
        .env("CARGO_TARGET_DIR", target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running cargo build -p softswitch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p softswitch failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = profile_dir.join(format!("softswitch{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built, but {} is missing", bin.display()))
    }
}

/// A scratch directory removed on drop, kept (and its path printed) when the
/// test is failing so logs can be read afterwards.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join("softswitch-e2e")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("e2e: kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Hands out loopback ports that were free (UDP and TCP) when probed. Each
/// process starts at a pid-dependent offset so concurrent test binaries on the
/// same machine rarely meet; a port is never handed out twice in a process.
pub struct Ports;

static PORT_LOCK: Mutex<()> = Mutex::new(());
static SIP_CURSOR: AtomicU16 = AtomicU16::new(0);
static RTP_CURSOR: AtomicU16 = AtomicU16::new(0);

const SIP_LO: u16 = 20000;
const SIP_HI: u16 = 29990;
const RTP_LO: u16 = 40000;
const RTP_HI: u16 = 49900;

fn free_udp(port: u16) -> bool {
    UdpSocket::bind((LOOPBACK, port)).is_ok()
}

fn free_tcp(port: u16) -> bool {
    TcpListener::bind((LOOPBACK, port)).is_ok()
}

fn take_block(cursor: &AtomicU16, lo: u16, hi: u16, len: u16, tcp: bool) -> u16 {
    let _guard = PORT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if cursor.load(Ordering::Relaxed) == 0 {
        let span = (hi - lo) / 2;
        let start = lo + (std::process::id() % u32::from(span)) as u16 / 10 * 10;
        cursor.store(start, Ordering::Relaxed);
    }
    let span = u32::from(hi - lo);
    let mut base = cursor.load(Ordering::Relaxed);
    for _ in 0..2000 {
        if base + len > hi {
            base = lo;
        }
        let ok = (base..base + len).all(|p| free_udp(p) && (!tcp || free_tcp(p)));
        if ok {
            cursor.store(base + len, Ordering::Relaxed);
            return base;
        }
        base = lo + ((u32::from(base - lo) + u32::from(len)) % span) as u16;
    }
    panic!("no free block of {len} loopback ports in {lo}-{hi}");
}

impl Ports {
    /// `len` consecutive ports free for UDP and TCP (SIP endpoints).
    pub fn sip_block(len: u16) -> u16 {
        take_block(&SIP_CURSOR, SIP_LO, SIP_HI, len, true)
    }

    /// One SIP port.
    pub fn sip() -> u16 {
        Self::sip_block(1)
    }

    /// `len` consecutive UDP ports (an RTP range), starting even.
    pub fn rtp_block(len: u16) -> (u16, u16) {
        let base = take_block(&RTP_CURSOR, RTP_LO, RTP_HI, len + 1, false);
        let base = base + base % 2;
        (base, base + len - 1)
    }
}

/// One extension of the test directory.
#[derive(Clone, Debug)]
pub struct Extension {
    pub number: String,
    pub name: String,
    pub password: String,
    /// `site = NAME`: the `[[site]]` this extension's calls count against.
    pub site: Option<String>,
    /// More `key = value` lines of its `[[extension]]` table (forwarding,
    /// permissions), the value already in TOML syntax.
    pub options: Vec<(String, String)>,
}

impl Extension {
    pub fn new(number: &str, name: &str, password: &str) -> Extension {
        Extension {
            number: number.into(),
            name: name.into(),
            password: password.into(),
            site: None,
            options: Vec::new(),
        }
    }

    /// Add `key = value` to its table; `value` is TOML (`"\"1003\""`, `3`, `true`).
    pub fn with(mut self, key: &str, value: impl ToString) -> Extension {
        self.options.push((key.into(), value.to_string()));
        self
    }

    /// Pin the extension to a site (`site = NAME`).
    pub fn pinned(mut self, site: &str) -> Extension {
        self.site = Some(site.into());
        self
    }
}

/// The usual pair: 1001 Alice calls 1002 Bob (passwords satisfy the policy).
pub fn alice() -> Extension {
    Extension::new("1001", "Alice", "Kq7-vLm2-Wx9z")
}

pub fn bob() -> Extension {
    Extension::new("1002", "Bob", "Rt4-pNs8-Yh3c")
}

/// Config of one daemon instance; every port is private to the test.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub sip_port: u16,
    pub rtp_ports: (u16, u16),
    pub ring_timeout: u32,
    pub dead_media_seconds: u32,
    pub extensions: Vec<Extension>,
    /// `[admin] listen = 127.0.0.1:PORT` when set (see [`DaemonConfig::with_admin`]).
    pub admin_port: Option<u16>,
    /// Extra TOML appended verbatim to `softswitch.toml`.
    pub extra: String,
}

impl DaemonConfig {
    pub fn new(extensions: Vec<Extension>) -> DaemonConfig {
        DaemonConfig {
            sip_port: Ports::sip(),
            rtp_ports: Ports::rtp_block(100),
            ring_timeout: 60,
            dead_media_seconds: 60,
            extensions,
            admin_port: None,
            extra: String::new(),
        }
    }

    /// Give the daemon's admin API a private loopback port.
    pub fn with_admin(mut self) -> DaemonConfig {
        self.admin_port = Some(Ports::sip());
        self
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_port.map(|p| SocketAddr::from((LOOPBACK, p)))
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let p = self.sip_port;
        let _ = write!(
            s,
            "[sip]\nlisten = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\"]\n\
             domain = \"127.0.0.1\"\nring_timeout = {}\n\n\
             [media]\nrtp_ports = \"{}-{}\"\nbind = \"127.0.0.1\"\n\
             advertise = \"127.0.0.1\"\ndead_media_seconds = {}\n",
            self.ring_timeout, self.rtp_ports.0, self.rtp_ports.1, self.dead_media_seconds
        );
        if let Some(port) = self.admin_port {
            let _ = write!(s, "\n[admin]\nlisten = \"127.0.0.1:{port}\"\n");
        }
        for e in &self.extensions {
            let _ = write!(
                s,
                "\n[[extension]]\nnumber = \"{}\"\nname = \"{}\"\npassword = \"{}\"\n",
                e.number, e.name, e.password
            );
            if let Some(site) = &e.site {
                let _ = writeln!(s, "site = \"{site}\"");
            }
            for (k, v) in &e.options {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        s.push_str(&self.extra);
        s
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((LOOPBACK, self.sip_port))
    }

    pub fn in_rtp_range(&self, port: u16) -> bool {
        (self.rtp_ports.0..=self.rtp_ports.1).contains(&port)
    }
}

/// A running daemon. Killed on drop; its log is printed when the test fails.
pub struct Daemon {
    pub config: DaemonConfig,
    child: ChildGuard,
    log: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    /// Write the config, start `softswitch run --config DIR` and wait until
    /// it answers an OPTIONS on its UDP port with 200.
    pub fn start(config: DaemonConfig) -> Result<Daemon, String> {
        let bin = softswitch_bin()?;
        let dir = TempDir::new("daemon");
        let conf_dir = dir.join("config");
        fs::create_dir_all(&conf_dir).map_err(|e| format!("mkdir: {e}"))?;
        fs::write(conf_dir.join("softswitch.toml"), config.to_toml())
            .map_err(|e| format!("write config: {e}"))?;
        let log = dir.join("softswitch.log");
        let log_file = fs::File::create(&log).map_err(|e| format!("create log: {e}"))?;
        let out_file = log_file
            .try_clone()
            .map_err(|e| format!("clone log: {e}"))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&conf_dir)
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(log_file);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "debug");
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut daemon = Daemon {
            config,
            child: ChildGuard::new("softswitch", child, Duration::from_secs(600)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = daemon.child.try_wait() {
                return Err(format!(
                    "softswitch exited before answering OPTIONS ({status})\n{}",
                    daemon.log_tail(200)
                ));
            }
            if let Some(200) = sip_options(daemon.config.sip_addr(), Duration::from_millis(200)) {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "softswitch did not answer OPTIONS with 200 on {} within 20 s\n{}",
                    daemon.config.sip_addr(),
                    daemon.log_tail(200)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip_addr()
    }

    /// The daemon's log, without terminal colour codes.
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(n);
        format!(
            "---- softswitch log (last {} lines) ----\n{}\n---- end of softswitch log ----",
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// The admin API's `GET /status` (the config needs [`DaemonConfig::with_admin`]).
    pub fn status(&self) -> Result<status::Status, String> {
        let addr = self
            .config
            .admin_addr()
            .ok_or("this daemon was started without an admin port")?;
        status::fetch(addr)
    }

    /// Poll the status until `cond` holds; the last status (or error) otherwise.
    pub fn wait_status(
        &self,
        wait: Duration,
        mut cond: impl FnMut(&status::Status) -> bool,
    ) -> Result<status::Status, String> {
        let deadline = Instant::now() + wait;
        loop {
            let last = self.status();
            if let Ok(s) = &last {
                if cond(s) {
                    return last;
                }
            }
            if Instant::now() > deadline {
                return Err(match last {
                    Ok(s) => format!("condition not met within {wait:?}; last status: {}", s.raw),
                    Err(e) => e,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running (it must survive every test).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.kill();
        if thread::panicking() {
            eprintln!("{}", self.log_tail(300));
        }
    }
}

/// Send one OPTIONS over UDP and return the status code of the answer.
pub fn sip_options(to: SocketAddr, wait: Duration) -> Option<u16> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let sock = UdpSocket::bind((LOOPBACK, 0)).ok()?;
    let local = sock.local_addr().ok()?;
    let msg = format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-e2e-{pid}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=e2e{n}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: e2e-probe-{pid}-{n}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        pid = std::process::id()
    );
    sock.send_to(msg.as_bytes(), to).ok()?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (len, _) = sock.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..len]);
        let mut parts = text.split_whitespace();
        if parts.next() != Some("SIP/2.0") {
            continue;
        }
        let code: u16 = parts.next()?.parse().ok()?;
        if code >= 200 {
            return Some(code);
        }
    }
}

/// A child process with a hard deadline, killed on drop.
pub struct ChildGuard {
    name: String,
    child: Child,
    deadline: Instant,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    pub fn new(name: &str, child: Child, limit: Duration) -> ChildGuard {
        ChildGuard {
            name: name.into(),
            child,
            deadline: Instant::now() + limit,
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Wait for exit; past the deadline kill it and return `None`.
    pub fn wait(&mut self) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= self.deadline {
                eprintln!("e2e: {} exceeded its deadline, killing it", self.name);
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ask politely first (SIGTERM lets baresip/sipp flush logs), then kill.
    pub fn terminate(&mut self, grace: Duration) {
        if self.try_wait().is_some() {
            return;
        }
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let until = Instant::now() + grace;
            while Instant::now() < until {
                if self.try_wait().is_some() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        #[cfg(not(unix))]
        let _ = grace;
        self.kill();
    }

    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Builder for one `sipp` run.
pub struct Sipp {
    name: String,
    dir: PathBuf,
    args: Vec<OsString>,
    limit: Duration,
    ip: Ipv4Addr,
}

impl Sipp {
    /// A sipp process running `scenario` (a file in tests/sipp), bound to
    /// 127.0.0.1:`local_port`, writing its logs into `dir`. `remote` is the
    /// peer for a UAC; `None` makes a UAS that waits for calls.
    pub fn new(dir: &Path, scenario: &str, local_port: u16, remote: Option<SocketAddr>) -> Sipp {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let stem = Path::new(scenario)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sipp");
        let name = format!("{stem}-{local_port}-{n}");
        let media_port = Ports::rtp_block(4).0;
        let mut args: Vec<OsString> = vec![
            "-sf".into(),
            sipp_dir().join(scenario).into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-p".into(),
            local_port.to_string().into(),
            "-mp".into(),
            media_port.to_string().into(),
            "-t".into(),
            "u1".into(),
            "-m".into(),
            "1".into(),
            "-l".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-timeout_error".into(),
            "-nostdin".into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join(format!("{name}.errors.log")).into(),
            "-trace_msg".into(),
            "-message_file".into(),
            dir.join(format!("{name}.messages.log")).into(),
            "-trace_logs".into(),
            "-log_file".into(),
            dir.join(format!("{name}.log")).into(),
        ];
        if let Some(remote) = remote {
            args.push(remote.to_string().into());
        }
        Sipp {
            name,
            dir: dir.to_path_buf(),
            args,
            limit: Duration::from_secs(45),
            ip: LOOPBACK,
        }
    }

    /// `-i/-mi`: bind SIP and media to another loopback address (a provider
    /// is told apart from the phones on 127.0.0.1 by its source address).
    pub fn local_ip(mut self, ip: Ipv4Addr) -> Sipp {
        for flag in ["-i", "-mi"] {
            if let Some(i) = self.args.iter().position(|a| a == flag) {
                self.args[i + 1] = ip.to_string().into();
            }
        }
        self.ip = ip;
        self
    }

    /// `-s`: the user part of the Request-URI (the number dialled).
    pub fn service(self, s: &str) -> Sipp {
        self.arg("-s").arg(s)
    }

    /// `-au/-ap`: digest credentials.
    pub fn auth(self, user: &str, password: &str) -> Sipp {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }

    /// `-key K V`: defines the scenario keyword `[K]`.
    pub fn key(self, k: &str, v: impl ToString) -> Sipp {
        self.arg("-key").arg(k).arg(v.to_string())
    }

    /// `-inf FILE`: injection CSV.
    pub fn inf(self, file: &Path) -> Sipp {
        self.arg("-inf").arg(file.as_os_str())
    }

    /// `-m N`: number of calls before exiting.
    pub fn calls(mut self, n: u32) -> Sipp {
        if let Some(i) = self.args.iter().position(|a| a == "-m") {
            self.args[i + 1] = n.to_string().into();
        }
        self
    }

    /// `-l N`: how many calls may be open at once (a UAS answering
    /// overlapping calls needs more than the default 1).
    pub fn concurrent(mut self, n: u32) -> Sipp {
        if let Some(i) = self.args.iter().position(|a| a == "-l") {
            self.args[i + 1] = n.to_string().into();
        }
        self
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Sipp {
        self.args.push(a.into());
        self
    }

    /// Hard wall-clock limit after which the process is killed.
    pub fn limit(mut self, limit: Duration) -> Sipp {
        self.limit = limit;
        self
    }

    pub fn spawn(self) -> SippProcess {
        let stdout = self.dir.join(format!("{}.stdout", self.name));
        let out = fs::File::create(&stdout).unwrap_or_else(|e| panic!("create stdout: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("clone stdout: {e}"));
        let child = Command::new("sipp")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sipp (is sip-tester installed?): {e}"));
        SippProcess {
            child: ChildGuard::new(&self.name, child, self.limit),
            ip: self.ip,
            command: format!("sipp {}", join_args(&self.args)),
            log: self.dir.join(format!("{}.log", self.name)),
            errors: self.dir.join(format!("{}.errors.log", self.name)),
            messages: self.dir.join(format!("{}.messages.log", self.name)),
            stdout,
            name: self.name,
        }
    }

    /// Run to completion.
    pub fn run(self) -> SippOutcome {
        self.spawn().wait()
    }
}

fn join_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running sipp.
pub struct SippProcess {
    name: String,
    command: String,
    child: ChildGuard,
    ip: Ipv4Addr,
    log: PathBuf,
    errors: PathBuf,
    messages: PathBuf,
    stdout: PathBuf,
}

impl SippProcess {
    /// Path of the `<log>` action output of the scenario.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Wait until the scenario's `<log>` output has a line starting with
    /// `prefix` and return the rest of that line.
    pub fn wait_log(&mut self, prefix: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(rest) = find_line(&self.log, prefix) {
                return Some(rest);
            }
            if self.child.try_wait().is_some() || Instant::now() > deadline {
                return find_line(&self.log, prefix);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Block until the port is bound by this sipp (so a UAS is ready).
    pub fn wait_bound(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind((self.ip, port)).is_ok()
            && Instant::now() < deadline
            && self.child.try_wait().is_none()
        {
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait(mut self) -> SippOutcome {
        let status = self.child.wait();
        SippOutcome {
            name: self.name.clone(),
            command: self.command.clone(),
            status,
            stdout: read_lossy(&self.stdout),
            errors: read_lossy(&self.errors),
            messages: read_lossy(&self.messages),
            log: read_lossy(&self.log),
        }
    }

    /// Wait up to `wait` for it to finish, then stop it (a peer that failed
    /// may leave it waiting for a message that never comes).
    pub fn wait_or_stop(mut self, wait: Duration) -> SippOutcome {
        let deadline = Instant::now() + wait;
        while self.child.try_wait().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.stop()
    }

    /// Stop it now (used for UAS processes that are not expected to finish).
    pub fn stop(mut self) -> SippOutcome {
        self.child.kill();
        self.wait()
    }
}

fn find_line(path: &Path, prefix: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// What a sipp run ended with.
#[derive(Debug)]
pub struct SippOutcome {
    pub name: String,
    pub command: String,
    /// `None` when it was killed at its hard deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub errors: String,
    pub messages: String,
    pub log: String,
}

impl SippOutcome {
    /// sipp exits 0 only when every call passed its scenario.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Human-readable report for assertion messages.
    pub fn report(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed at its hard deadline".into(),
        };
        format!(
            "sipp {} ended with {status}\ncommand: {}\n---- errors ----\n{}\n\
             ---- messages (last 6000 chars) ----\n{}\n---- output (last 2000 chars) ----\n{}",
            self.name,
            self.command,
            self.errors.trim(),
            tail_chars(&self.messages, 6000),
            tail_chars(&self.stdout, 2000),
        )
    }

    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.success(), "{}", self.report());
    }

    #[track_caller]
    pub fn assert_failure(&self) {
        assert!(
            self.status.is_some() && !self.success(),
            "expected sipp {} to fail its scenario\n{}",
            self.name,
            self.report()
        );
    }
}

fn tail_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Whether a tool is on PATH (tests that need one fail with a clear message).
pub fn have_tool(name: &str) -> bool {
    Command::new(name)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Poll `cond` until true or the deadline passes.
pub fn wait_until(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Read errors from `io` into a message with context.
pub fn ctx<T>(r: io::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Register `ext` with the daemon through sipp, binding `contact_port`.
pub fn register(dir: &Path, daemon: &Daemon, ext: &Extension, contact_port: u16) -> SippOutcome {
    Sipp::new(dir, "register.xml", Ports::sip(), Some(daemon.sip_addr()))
        .service(&ext.number)
        .auth(&ext.number, &ext.password)
        .key("contact_port", contact_port)
        .run()
}

/// Parse a `<ip> <port>` pair logged by a scenario (MEDIA lines).
pub fn parse_media(line: &str) -> Option<SocketAddr> {
    let mut it = line.split_whitespace();
    let ip: std::net::IpAddr = it.next()?.parse().ok()?;
    let port: u16 = it.next()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Remove ANSI escape sequences (tracing colours its output).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte(0x40..=0x7e)
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
