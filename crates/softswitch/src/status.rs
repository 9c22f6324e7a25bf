//! `softswitch status`: asks the running daemon's admin API and prints
//! what it says, sites first (what an operator checks when calls fail).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};
use pbx::Snapshot;

/// Fetches the snapshot. A plain HTTP/1.0 GET: the admin API is on a local
/// address and answers one small JSON document.
pub fn fetch(addr: SocketAddr) -> anyhow::Result<Snapshot> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
            format!("cannot reach the daemon's admin API at {addr}: is it running?")
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("reading the admin API's answer")?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the admin API's answer has no body")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "the admin API answered: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    serde_json::from_str(body).context("the admin API's answer is not a status document")
}

/// The human view of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    out.push_str(&format!("listening:     {}\n", s.listen.join(", ")));
    out.push_str(&format!("registrations: {}\n", s.registrations));
    out.push_str(&format!(
        "calls:         {} active, {} started, {} answered, {} failed, {} refused for bandwidth\n",
        s.stats.active_calls,
        s.stats.calls_started,
        s.stats.calls_answered,
        s.stats.calls_failed,
        s.stats.admission_refusals
    ));
    out.push_str(&format!(
        "media:         {} sessions, {} ports in use\n",
        s.media_sessions, s.media_ports_in_use
    ));
    out.push_str("\nsites (kbps reserved / capacity, per direction as seen from the site):\n");
    out.push_str(&format!(
        "  {:<20} {:>17} {:>17} {:>9} {:>9}\n",
        "site", "up", "down", "calls", "refusals"
    ));
    let cap = |c: Option<u32>| c.map_or("unlimited".to_string(), |c| c.to_string());
    for site in &s.sites {
        out.push_str(&format!(
            "  {:<20} {:>17} {:>17} {:>9} {:>9}\n",
            site.name,
            format!("{}/{}", site.up_reserved_kbps, cap(site.up_capacity_kbps)),
            format!(
                "{}/{}",
                site.down_reserved_kbps,
                cap(site.down_capacity_kbps)
            ),
            match site.max_calls {
                Some(m) => format!("{}/{}", site.calls, m),
                None => site.calls.to_string(),
            },
            site.refusals
        ));
    }
    if !s.trunks.is_empty() {
        out.push_str("\ntrunks:\n");
        for t in &s.trunks {
            out.push_str(&format!(
                "  {:<20} {:>5} calls   {}\n",
                t.name, t.calls, t.registration
            ));
        }
    }
    out
}
