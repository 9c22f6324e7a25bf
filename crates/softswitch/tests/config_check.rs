//! `softswitch check` and `softswitch run` against config folders on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_softswitch");

const SIP: &str = r#"[sip]
listen = ["udp:127.0.0.1:5060"]
domain = "pbx.test"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(dir: &Path) -> Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `check` on a folder expected to be refused and returns stderr.
fn refused(dir: &Path) -> String {
    let out = check(dir);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// Asserts a line `FILE:LINE:COL: ...cause...` is in `err`.
fn assert_error(err: &str, file: &Path, line: usize, col: usize, cause: &str) {
    let prefix = format!("{}:{line}:{col}: ", file.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(cause)),
        "no `{prefix}...{cause}` in:\n{err}"
    );
}

#[test]
fn default_config_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let out = check(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(stdout.starts_with("config OK: 3 extensions"), "{stdout}");
}

#[test]
fn toml_syntax_error_has_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"\ndomain = \"x\"\n",
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 3, 1, "");
    assert!(err.lines().count() >= 2, "{err}");
}

#[test]
fn unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.toml", &format!("{SIP}ring_timout = 30\n"));
    let err = refused(dir.path());
    assert_error(&err, &f, 4, 1, "unknown field `ring_timout`");
}

#[test]
fn unknown_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        &format!("{SIP}[[extensions]]\nnumber = \"1001\"\n"),
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 4, 1, "unknown section `extensions`");
}

#[test]
fn shape_errors_in_several_entries_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        &format!(
            "{SIP}ring_timeout = \"60\"\n\n[[extension]]\nnumber = 1001\n\n\
             [[extension]]\nnumber = \"1002\"\npasword = \"x\"\n\n[[extension]]\nname = \"No Number\"\n"
        ),
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 4, 16, "invalid type: string \"60\", expected u64");
    assert_error(
        &err,
        &f,
        7,
        10,
        "invalid type: integer `1001`, expected a string",
    );
    assert_error(&err, &f, 11, 1, "unknown field `pasword`");
    assert_error(&err, &f, 13, 1, "missing field `number`");
}

#[test]
fn dotted_keys_and_inline_tables_work() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "sip.listen = [\"udp:127.0.0.1:5060\"]\nsip.domain = \"pbx.test\"\n\
         media = { rtp_ports = \"30000-30099\" }\nextension = [{ number = \"1001\" }, { number = \"1002\" }]\n",
    );
    let out = check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout.contains("2 extensions") && stdout.contains("RTP ports 30000-30099"),
        "{stdout}"
    );
}

#[test]
fn duplicate_extension_across_files_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.toml",
        &format!("{SIP}\n[[extension]]\nnumber = \"1001\"\n"),
    );
    let b = write(
        dir.path(),
        "b.toml",
        "# more\n[[extension]]\nnumber = \"1002\"\n[[extension]]\nnumber = \"1001\"\n",
    );
    let err = refused(dir.path());
    let first = format!("first at {}:6:10", a.display());
    assert_error(&err, &b, 5, 10, "extension 1001 is defined twice");
    assert_error(&err, &b, 5, 10, &first);
}

#[test]
fn bad_listen_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        "[sip]\ndomain = \"x\"\nlisten = [\n  \"udp:127.0.0.1:5060\",\n  \"sctp:127.0.0.1:5060\",\n  \"tcp:localhost:5060\",\n]\n",
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 5, 3, "unknown transport `sctp`");
    assert_error(&err, &f, 6, 3, "`localhost:5060` is not an IP address");
}

#[test]
fn missing_or_empty_listen() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.toml", "[sip]\ndomain = \"x\"\n");
    assert_error(&refused(dir.path()), &f, 1, 1, "no `listen` entry");
    write(dir.path(), "a.toml", "[sip]\ndomain = \"x\"\nlisten = []\n");
    assert_error(&refused(dir.path()), &f, 3, 10, "`listen` is empty");
}

#[test]
fn bad_rtp_ranges() {
    let cases = [
        ("\"\"", "is empty"),
        ("\"20000-19999\"", "is reversed"),
        ("\"abc\"", "is not a port range"),
        ("\"20000-20001\"", "holds 1 port pair"),
        ("\"20000-20002\"", "odd number"),
        ("\"20001-20004\"", "starts at an odd port"),
        ("\"80-1999\"", "outside 1024-65535"),
    ];
    for (value, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "a.toml",
            &format!("{SIP}[media]\nrtp_ports = {value}\n"),
        );
        let err = refused(dir.path());
        assert_error(&err, &f, 5, 13, "`rtp_ports`");
        assert_error(&err, &f, 5, 13, cause);
    }
}

#[test]
fn relay_workers_and_engine() {
    let cases = [
        ("workers = 65", 11, "`workers` 65 must be 0"),
        ("workers = -1", 11, "`workers` -1 must be 0"),
        ("engine = \"uring\"", 10, "`engine` \"uring\" is not one of"),
    ];
    for (line, col, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "a.toml", &format!("{SIP}[media]\n{line}\n"));
        assert_error(&refused(dir.path()), &f, 5, col, cause);
    }
    for good in [
        "workers = 0\nengine = \"auto\"",
        "workers = 3\nengine = \"poll\"",
        "engine = \"io_uring\"",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            &format!("{SIP}[media]\n{good}\n\n[[extension]]\nnumber = \"1001\"\npassword = \"Kq7-vLm2-Wx9z\"\n"),
        );
        let out = check(dir.path());
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
}

#[test]
fn weak_passwords_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        &format!(
            "{SIP}\n[[extension]]\nnumber = \"1001\"\npassword = \"1234\"\n\n\
             [[extension]]\nnumber = \"1002\"\npassword = \"Xk9-1002-mQpz\"\n\n\
             [[extension]]\nnumber = \"1003\"\npassword = \"Xk9-mQpz-Lw7r\"\n"
        ),
    );
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        7,
        12,
        "extension 1001: weak password: 4 characters, need at least 12",
    );
    assert_error(
        &err,
        &f,
        11,
        12,
        "extension 1002: weak password: contains the extension number",
    );
    assert!(!err.contains("1003"), "strong password refused:\n{err}");
    assert!(
        !err.contains("Xk9"),
        "a password leaked into the output:\n{err}"
    );
}

#[test]
fn sip_defined_in_two_files_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "10-main.toml", SIP);
    let b = write(dir.path(), "20-more.toml", &format!("# extra\n{SIP}"));
    let err = refused(dir.path());
    assert_error(
        &err,
        &b,
        2,
        1,
        &format!("[sip] is already defined in {}:1:1", a.display()),
    );
}

#[test]
fn every_error_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        "[sip]\nlisten = [\"udp:nowhere\"]\ndomain = \"\"\n\n[media]\nrtp_ports = \"30000-20000\"\n\n\
         [[extension]]\nnumber = \"1a\"\n",
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 2, 11, "bad listen address");
    assert_error(&err, &f, 3, 10, "`domain` is empty");
    assert_error(&err, &f, 6, 13, "is reversed");
    assert_error(&err, &f, 9, 10, "must be 2 to 10 digits");
    assert!(err.ends_with("config invalid: 4 errors\n"), "{err}");
}

#[test]
fn secrets_file_is_not_config() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        &format!("{SIP}[[extension]]\nnumber = \"1001\"\n"),
    );
    write(
        dir.path(),
        "secrets.toml",
        "[passwords]\n\"1001\" = \"Xk9-mQpz-Lw7r\"\n",
    );
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // With the password stored, nothing is left to generate.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("no password yet"));
}

#[test]
fn check_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        &format!("{SIP}[[extension]]\nnumber = \"1001\"\n"),
    );
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 extensions have no password yet"));
    assert!(!dir.path().join("secrets.toml").exists());
}

/// Free loopback UDP+TCP port pair outside the default RTP range.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if (20000..=29999).contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts `run`, waits for the secrets file to hold `want` entries, stops it.
fn run_until_provisioned(dir: &Path, want: usize) -> String {
    let mut child = Command::new(BIN)
        .args(["--log", "info", "run", "--config"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let secrets = dir.join("secrets.toml");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&secrets).unwrap_or_default();
        if text.matches(" = ").count() >= want {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("run exited {status}: {}", stderr(&out));
        }
        assert!(
            Instant::now() < deadline,
            "secrets.toml never got {want} entries"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the log line time to be written, then stop the daemon.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    stderr(&out)
}

fn stored_passwords(dir: &Path) -> toml::Table {
    let text = std::fs::read_to_string(dir.join("secrets.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["passwords"].as_table().unwrap().clone()
}

#[test]
fn run_provisions_private_secrets_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sip = format!(
        "[sip]\nlisten = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]\ndomain = \"pbx.test\"\n\
         [media]\nbind = \"127.0.0.1\"\n"
    );
    write(
        dir.path(),
        "a.toml",
        &format!("{sip}[[extension]]\nnumber = \"1001\"\n[[extension]]\nnumber = \"1002\"\n"),
    );
    let log = run_until_provisioned(dir.path(), 2);
    let first = stored_passwords(dir.path());
    assert_eq!(first.len(), 2);
    for number in ["1001", "1002"] {
        let pw = first[number].as_str().unwrap();
        assert_eq!(pw.len(), 20);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!log.contains(pw), "a password leaked into the log:\n{log}");
    }
    assert!(
        log.contains("secrets.toml"),
        "the log does not say where the passwords are:\n{log}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A second run with one more extension keeps the stored passwords.
    write(dir.path(), "b.toml", "[[extension]]\nnumber = \"1003\"\n");
    run_until_provisioned(dir.path(), 3);
    let second = stored_passwords(dir.path());
    assert_eq!(second.len(), 3);
    assert_eq!(second["1001"], first["1001"]);
    assert_eq!(second["1002"], first["1002"]);
    assert_ne!(second["1003"], first["1001"]);
}

#[test]
fn run_refuses_a_bad_config_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.toml", "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"\"\n[[extension]]\nnumber = \"1001\"\n");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_error(&stderr(&out), &f, 3, 10, "`domain` is empty");
    assert!(!dir.path().join("secrets.toml").exists());
}

const SITES: &str = r#"[[site]]
name = "geneva-office"
networks = ["192.0.2.0/24"]
down_kbps = 2000
up_kbps = 1000
max_calls = 20

[[site]]
name = "zurich"
networks = ["198.51.100.0/24", "2001:db8:2::/48"]
down_kbps = 500
up_kbps = 300
"#;

/// A folder with [sip] in a.toml and `sites` in sites.toml; returns the
/// path of sites.toml.
fn with_sites(dir: &Path, sites: &str) -> PathBuf {
    write(dir, "a.toml", SIP);
    write(dir, "sites.toml", sites)
}

#[test]
fn sites_admission_and_pins_pass() {
    let dir = tempfile::tempdir().unwrap();
    with_sites(dir.path(), SITES);
    write(
        dir.path(),
        "b.toml",
        "[admission]\nfloor_kbps = 120\nlayer2 = \"ethernet-wire\"\nip = \"ipv6\"\n\
         video_default_kbps = 512\ndefault_site_down_kbps = 10000\n\
         default_site_up_kbps = 10000\ndefault_site_max_calls = 50\n\
         police_margin_percent = 30\npolice_seconds = 3\npolice_drop = true\n\
         [[extension]]\nnumber = \"1001\"\nsite = \"geneva-office\"\n\
         [[extension]]\nnumber = \"1002\"\nsite = \"zurich\"\n\
         [[extension]]\nnumber = \"1003\"\n",
    );
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 extensions"));
}

#[test]
fn floor_below_100_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        &format!("{SIP}\n[admission]\nfloor_kbps = 80\n"),
    );
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        6,
        14,
        "floor_kbps 80 is below the minimum of 100 kbps per call",
    );
}

#[test]
fn overlapping_sites_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = with_sites(
        dir.path(),
        &SITES.replace("\"198.51.100.0/24\"", "\"192.0.2.64/26\""),
    );
    let err = refused(dir.path());
    let cause = format!(
        "site `zurich`: network 192.0.2.64/26 overlaps network 192.0.2.0/24 of site `geneva-office` at {}:3:13",
        f.display()
    );
    assert_error(&err, &f, 10, 13, &cause);
}

#[test]
fn zero_and_negative_capacities_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = with_sites(
        dir.path(),
        &SITES
            .replace("down_kbps = 2000", "down_kbps = 0")
            .replace("up_kbps = 300", "up_kbps = -5"),
    );
    let err = refused(dir.path());
    assert_error(&err, &f, 4, 13, "site `geneva-office`: `down_kbps` is 0");
    assert_error(&err, &f, 12, 11, "site `zurich`: `up_kbps` -5 is negative");
    assert!(err.contains("config invalid: 2 errors"), "{err}");
}

#[test]
fn pin_to_an_unknown_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    with_sites(dir.path(), SITES);
    let f = write(
        dir.path(),
        "ext.toml",
        "[[extension]]\nnumber = \"1001\"\nsite = \"geneva\"\n",
    );
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        3,
        8,
        "extension 1001: site `geneva` is not defined; the sites are: geneva-office, zurich",
    );
}

#[test]
fn duplicate_site_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = with_sites(
        dir.path(),
        &SITES.replace("\"zurich\"", "\"geneva-office\""),
    );
    let err = refused(dir.path());
    let cause = format!(
        "site `geneva-office` is defined twice: first at {}:2:8",
        f.display()
    );
    assert_error(&err, &f, 9, 8, &cause);
}

#[test]
fn bad_cidr_is_refused_at_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let f = with_sites(dir.path(), &SITES.replace("192.0.2.0/24", "192.0.2.0/33"));
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        3,
        13,
        "site `geneva-office`: network `192.0.2.0/33`: prefix length /33 is longer than /32",
    );
    // The second entry of a list is pointed at, not the list.
    let f = with_sites(
        dir.path(),
        &SITES.replace("2001:db8:2::/48", "2001:db8:2::/48x"),
    );
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        10,
        32,
        "site `zurich`: network `2001:db8:2::/48x`: not a prefix length",
    );
}

// --- The dial plan: ring groups, trunks, rules, office hours, forwarding. ---

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The ```toml blocks of the README's routing subsections.
fn readme_routing_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let routing_headings = [
        "`[[extension]]` forwarding",
        "`[[ring_group]]`",
        "`[[trunk]]`",
        "`[[inbound_rule]]`",
        "`[[outbound_rule]]`",
        "`[[office_hours]]`",
        "`[dialplan]`",
    ];
    let mut blocks = Vec::new();
    let mut in_routing = false;
    let mut block: Option<Vec<&str>> = None;
    for line in readme.lines() {
        if let Some(lines) = &mut block {
            if line == "```" {
                blocks.push(lines.join("\n"));
                block = None;
            } else {
                lines.push(line);
            }
        } else if let Some(heading) = line.strip_prefix("### ") {
            in_routing = routing_headings.iter().any(|h| heading.starts_with(h));
        } else if line.starts_with("## ") {
            in_routing = false;
        } else if line == "```toml" && in_routing {
            block = Some(Vec::new());
        }
    }
    blocks
}

#[test]
fn readme_routing_examples_pass_check() {
    let dir = fixture("routing");
    let out = check(&dir);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let fixture_text = std::fs::read_to_string(dir.join("softswitch.toml")).unwrap();
    let blocks = readme_routing_blocks();
    assert_eq!(blocks.len(), 7, "one example per routing subsection");
    for block in &blocks {
        assert!(
            fixture_text.contains(block.as_str()),
            "README example not in tests/fixtures/routing/softswitch.toml:\n{block}"
        );
    }
}

#[test]
fn shipped_config_examples_pass_when_uncommented() {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/softswitch.toml"),
    )
    .unwrap();
    // `# [[trunk]]`, `# [dialplan]` and `# key = value` become live lines.
    let mut uncommented = String::new();
    for line in shipped.lines() {
        let live = match line.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
            {
                rest
            }
            _ => line,
        };
        uncommented.push_str(live);
        uncommented.push('\n');
    }
    for section in [
        "[[ring_group]]",
        "[[trunk]]",
        "[[inbound_rule]]",
        "[[outbound_rule]]",
        "[[office_hours]]",
        "[dialplan]",
    ] {
        assert!(
            uncommented.lines().any(|l| l == section),
            "no commented {section} example in config/softswitch.toml"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "softswitch.toml", &uncommented);
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

/// A dial plan every case below adds one mistake to.
const PLAN: &str = r#"[[extension]]
number = "1001"

[[extension]]
number = "1002"

[[trunk]]
name = "provider"
host = "sip.provider.example"

[[office_hours]]
name = "office"
time_zone = "Europe/Zurich"
monday = "08:00-17:00"

[[outbound_rule]]
name = "national"
prefix = "0"
trunks = ["provider"]
"#;

/// Line and column (from 1) of the `nth` occurrence of `needle` in `text`.
fn position(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} not in the case"))
        .0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn bad_routing_values_are_refused_at_their_position() {
    // (what the operator added, the value pointed at, its occurrence, the cause)
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "[[ring_group]]\nnumber = \"800\"\nmembers = [\"1001\", \"9999\"]\n",
            "\"9999\"",
            0,
            "ring group 800: member `9999` is not an extension",
        ),
        (
            "[[ring_group]]\nnumber = \"800\"\nmembers = [\"1001\", \"801\"]\n\
             [[ring_group]]\nnumber = \"801\"\nmembers = [\"1002\"]\n",
            "\"801\"",
            0,
            "member 801 is a ring group; members must be extensions",
        ),
        (
            "[[ring_group]]\nnumber = \"1002\"\nmembers = [\"1001\"]\n",
            "\"1002\"",
            1,
            "ring group number 1002 is also an extension number",
        ),
        (
            "[[ring_group]]\nnumber = \"800\"\nmembers = [\"1001\"]\n\
             [[ring_group]]\nnumber = \"800\"\nmembers = [\"1002\"]\n",
            "\"800\"",
            1,
            "ring group `800` is defined twice",
        ),
        (
            "[[outbound_rule]]\nprefix = \"00\"\ntrunks = [\"provider\", \"backup\"]\n",
            "\"backup\"",
            0,
            "outbound_rule `rule 2`: trunk `backup` is not a [[trunk]] name",
        ),
        (
            "[[inbound_rule]]\ndid = \"41225550100\"\ntrunk = \"carrier\"\nto = \"1001\"\n",
            "\"carrier\"",
            0,
            "inbound_rule `41225550100`: `trunk` `carrier` is not a [[trunk]] name",
        ),
        (
            "[[inbound_rule]]\ndid = \"41225550100\"\nto = \"1001\"\n\
             [[inbound_rule]]\ndid = \"+41225550100\"\nto = \"1002\"\n",
            "\"+41225550100\"",
            0,
            "DID 41225550100 already has an inbound rule at",
        ),
        (
            "[[inbound_rule]]\ndid = \"41225550100\"\nto = \"1001\"\noffice_hours = \"weekend\"\nout_of_hours = \"1002\"\n",
            "\"weekend\"",
            0,
            "`office_hours` `weekend` is not an [[office_hours]] name",
        ),
        (
            "[[inbound_rule]]\ndid = \"41225550100\"\nto = \"reception\"\n",
            "\"reception\"",
            0,
            "`to`: `reception` is not an extension, a ring group, an external number",
        ),
        (
            "[[extension]]\nnumber = \"1003\"\noffice_hours = \"weekend\"\n",
            "\"weekend\"",
            0,
            "extension 1003: `office_hours` `weekend` is not an [[office_hours]] name",
        ),
        (
            "[[extension]]\nnumber = \"1003\"\nforward_busy = \"voicemail\"\n",
            "\"voicemail\"",
            0,
            "extension 1003: `forward_busy`: `voicemail` is not an extension",
        ),
        (
            "[[extension]]\nnumber = \"1003\"\nforward_no_answer = \"1003\"\n",
            "\"1003\"",
            1,
            "`forward_no_answer` forwards the extension to itself",
        ),
        (
            "[[extension]]\nnumber = \"1003\"\nout_of_hours_forward_always = \"1001\"\n",
            "\"1001\"",
            1,
            "the out_of_hours_forward_* keys need `office_hours`",
        ),
        (
            "[[extension]]\nnumber = \"1003\"\noutbound_rules = [\"national\", \"mobile\"]\n",
            "\"mobile\"",
            0,
            "`outbound_rules` entry `mobile` is not an [[outbound_rule]] name",
        ),
        (
            "[[extension]]\nnumber = \"112\"\n",
            "\"112\"",
            0,
            "extension number 112 is an emergency number",
        ),
        (
            "[[office_hours]]\nname = \"shop\"\ntime_zone = \"Europe/Genf\"\n",
            "\"Europe/Genf\"",
            0,
            "office_hours `shop`: time zone `Europe/Genf` is unknown",
        ),
        (
            "[[office_hours]]\nname = \"shop\"\ntime_zone = \"UTC\"\ntuesday = \"08:00-12:00, 25:00-26:00\"\n",
            "\"08:00-12:00, 25:00-26:00\"",
            0,
            "office_hours `shop`: `tuesday` `08:00-12:00, 25:00-26:00` must be intervals",
        ),
        (
            "[[office_hours]]\nname = \"shop\"\ntime_zone = \"UTC\"\nholidays = [\"2026-02-30\"]\n",
            "\"2026-02-30\"",
            0,
            "holiday `2026-02-30` must be a date",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example\"\ntransport = \"tls\"\n",
            "\"tls\"",
            0,
            "trunk `backup`: `transport` `tls` must be \"udp\" or \"tcp\"",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example:70000\"\n",
            "\"sip.backup.example:70000\"",
            0,
            "trunk `backup`: `host` `sip.backup.example:70000` must be host[:port]",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example\"\nusername = \"u1\"\nregister = true\n",
            "true",
            0,
            "trunk `backup`: `register = true` needs password",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example\"\npassword = \"\"\n",
            "\"\"",
            0,
            "trunk `backup`: `password` must be 1 to 128 characters",
        ),
        (
            "[[trunk]]\nname = \"provider\"\nhost = \"sip.backup.example\"\n",
            "\"provider\"",
            2,
            "trunk `provider` is defined twice",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example\"\nallowed_ips = [\"203.0.113.300\"]\n",
            "\"203.0.113.300\"",
            0,
            "`allowed_ips` entry `203.0.113.300` must be an IPv4 or IPv6 address",
        ),
        (
            "[[outbound_rule]]\nname = \"long\"\nmin_length = 31\nmax_length = 30\ntrunks = [\"provider\"]\n",
            "31",
            0,
            "outbound_rule `long`: `min_length` 31 is above `max_length` 30",
        ),
        (
            "[[outbound_rule]]\nname = \"national\"\ntrunks = [\"provider\"]\n",
            "\"national\"",
            1,
            "outbound_rule `national` is defined twice",
        ),
        (
            "[dialplan]\nemergency_numbers = [\"112\", \"11 7\"]\n",
            "\"11 7\"",
            0,
            "emergency number `11 7` must be 1 to 10 digits",
        ),
        (
            "[[ring_group]]\nnumber = \"800\"\nmembers = [\"1001\"]\nstrategy = \"random\"\n",
            "\"random\"",
            0,
            "`strategy` `random` must be \"ring_all\", \"hunt\" or \"round_robin\"",
        ),
        (
            "[[outbound_rule]]\nname = \"staff\"\ntrunks = [\"provider\"]\nextensions = [\"1001-99\"]\n",
            "\"1001-99\"",
            0,
            "`extensions` entry `1001-99` must be an extension number or a range",
        ),
        (
            "[[trunk]]\nname = \"backup\"\nhost = \"sip.backup.example\"\ndids = [\"41 22 555 01 00\"]\n",
            "\"41 22 555 01 00\"",
            0,
            "trunk `backup`: DID `41 22 555 01 00` must be digits",
        ),
    ];
    for (added, needle, nth, cause) in cases {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{SIP}\n{PLAN}\n{added}");
        let f = write(dir.path(), "a.toml", &text);
        let err = refused(dir.path());
        let (line, col) = position(&text, needle, *nth);
        assert_error(&err, &f, line, col, cause);
        assert_eq!(
            err.lines().count(),
            2,
            "one error and the summary for:\n{added}\n{err}"
        );
    }
}

#[test]
fn routing_errors_across_files_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", &format!("{SIP}\n{PLAN}"));
    let b = write(
        dir.path(),
        "b.toml",
        "[[ring_group]]\nnumber = \"800\"\nmembers = [\"1009\"]\nno_answer = \"1001\"\n\n\
         [[inbound_rule]]\ndid = \"4122*\"\ntrunk = \"nobody\"\nto = \"800\"\n",
    );
    let err = refused(dir.path());
    assert_error(&err, &b, 3, 12, "member `1009` is not an extension");
    assert_error(&err, &b, 8, 9, "`trunk` `nobody` is not a [[trunk]] name");
    assert_eq!(err.lines().count(), 3, "{err}");
}

#[test]
fn trunk_passwords_follow_the_provider_not_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        &format!(
            "{SIP}\n{PLAN}\n[[trunk]]\nname = \"backup\"\nhost = \"[2001:db8::5]:5080\"\n\
             transport = \"tcp\"\nusername = \"1234\"\npassword = \"1234\"\nregister = true\n"
        ),
    );
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

#[test]
fn a_trunk_without_any_outbound_rule_is_refused_for_emergency_calls() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "a.toml",
        &format!("{SIP}\n[[trunk]]\nname = \"provider\"\nhost = \"sip.provider.example\"\n"),
    );
    let err = refused(dir.path());
    assert_error(
        &err,
        &f,
        6,
        8,
        "trunk `provider`: no [[outbound_rule]] sends calls to a trunk, so emergency numbers (112, 117, 118, 144) cannot be dialled",
    );
    // Without emergency numbers there is nothing to carry.
    write(dir.path(), "b.toml", "[dialplan]\nemergency_numbers = []\n");
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}
