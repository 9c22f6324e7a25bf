//! The async shell around [`Core`]: binds the transports and the relay,
//! feeds the core what arrives and when its timers are due, and sends what
//! it returns. All protocol decisions live in the core.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sip::transport::TransportHandle;
use sip::ListenSpec;
use tokio::sync::watch;
use tracing::info;

use crate::core::{Core, CoreStats, SiteStatus, TrunkStatus};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {spec}: {source}")]
    Bind {
        spec: String,
        source: std::io::Error,
    },
    #[error("cannot start the media relay: {0}")]
    Media(#[from] media::MediaError),
}

pub struct ServerConfig {
    pub settings: Settings,
    pub listen: Vec<ListenSpec>,
    /// The address we put in Via/Contact when a listener is bound to 0.0.0.0 / [::].
    pub advertise: Option<IpAddr>,
    pub relay: media::RelayConfig,
}

/// What the running server shows to the outside (`softswitch status`, tests).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub stats: CoreStats,
    pub registrations: usize,
    pub media_sessions: usize,
    pub media_ports_in_use: usize,
    /// The SIP sockets, as `udp:IP:PORT`.
    pub listen: Vec<String>,
    pub sites: Vec<SiteStatus>,
    pub trunks: Vec<TrunkStatus>,
}

/// A started server: its bound addresses and a view of its state.
pub struct Running {
    pub local: Vec<ListenSpec>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds everything, then runs until `shutdown` completes; on shutdown every
/// call is ended with BYE (or a final response) before the task returns.
pub async fn start(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServerError> {
    let (transport, mut rx) =
        TransportHandle::bind(&cfg.listen)
            .await
            .map_err(|source| ServerError::Bind {
                spec: cfg
                    .listen
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })?;
    let local = transport.local_addrs();
    let mut settings = cfg.settings;
    for spec in &local {
        let ip = if spec.addr.ip().is_unspecified() {
            cfg.advertise.unwrap_or(IpAddr::from([127, 0, 0, 1]))
        } else {
            spec.addr.ip()
        };
        settings
            .advertised
            .entry(spec.transport)
            .or_insert(SocketAddr::new(ip, spec.addr.port()));
    }
    for spec in &local {
        info!(listen = %spec, "SIP listening");
    }
    let relay = media::Relay::new(cfg.relay)?;
    let mut dead = relay.dead_media_events();
    let secret: [u8; 32] = rand::random();
    let mut core = Core::new(settings, relay, secret);
    core.start(Instant::now());
    let listen: Vec<String> = local.iter().map(|l| l.to_string()).collect();
    let (snap_tx, snap_rx) = watch::channel(Snapshot {
        listen: listen.clone(),
        sites: core.site_status(),
        ..Snapshot::default()
    });
    let local_out = listen;
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut last_snapshot = Instant::now();
        // The status view is refreshed at least this often, even when idle.
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer, moved only when the core's next deadline changes (new
        // transactions mostly add later deadlines): re-registering a fresh
        // sleep on every message cost a timer-wheel insert and removal each.
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut out = Vec::new();
        loop {
            let deadline = core.poll_timeout();
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    // One clock reading serves the burst: it is handled within microseconds.
                    let (now, wall) = (Instant::now(), SystemTime::now());
                    core.handle_received(now, wall, msg);
                    // Take what else is already queued before flushing.
                    for _ in 0..64 {
                        match rx.try_recv() {
                            Ok(m) => core.handle_received(now, wall, m),
                            Err(_) => break,
                        }
                    }
                }
                _ = &mut sleep, if armed.is_some() => {
                    // A fired sleep stays ready: re-arm from the next deadline.
                    armed = None;
                    core.handle_timeout(Instant::now(), SystemTime::now());
                }
                _ = tick.tick() => {
                    last_snapshot = Instant::now();
                    publish(&core, &snap_tx, &local_out);
                    continue;
                }
                Some(id) = dead.recv() => core.handle_dead_media(Instant::now(), SystemTime::now(), id),
                _ = &mut shutdown => {
                    info!(calls = core.stats().active_calls, "shutting down: ending calls");
                    core.shutdown(Instant::now(), SystemTime::now());
                    flush(&mut core, &transport, &mut out);
                    // Let the BYEs leave and their answers arrive.
                    let until = Instant::now() + std::time::Duration::from_millis(500);
                    while Instant::now() < until {
                        tokio::select! {
                            Some(m) = rx.recv() => core.handle_received(Instant::now(), SystemTime::now(), m),
                            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                        }
                        flush(&mut core, &transport, &mut out);
                    }
                    transport.shutdown();
                    break;
                }
            }
            flush(&mut core, &transport, &mut out);
            if last_snapshot.elapsed() >= std::time::Duration::from_millis(200) {
                last_snapshot = Instant::now();
                publish(&core, &snap_tx, &local_out);
            }
        }
        publish(&core, &snap_tx, &local_out);
    });
    Ok(Running {
        local,
        snapshot: snap_rx,
        task,
    })
}

/// Sends what the core produced; what a burst of received messages produced
/// leaves together (one `sendmmsg` per socket where the platform has it).
fn flush(core: &mut Core, transport: &TransportHandle, out: &mut Vec<(sip::Peer, Bytes)>) {
    while let Some(t) = core.poll_transmit() {
        out.push((t.to, t.bytes));
    }
    transport.send_all(out);
}

fn publish(core: &Core, tx: &watch::Sender<Snapshot>, listen: &[String]) {
    let snap = Snapshot {
        stats: core.stats(),
        registrations: core.registrar().location().count(),
        media_sessions: core.relay().active_sessions(),
        media_ports_in_use: core.relay().ports_in_use(),
        listen: listen.to_vec(),
        sites: core.site_status(),
        trunks: core.trunk_status(Instant::now()),
    };
    let _ = tx.send(snap);
}

/// Shared so the binary can hold it without knowing the core.
pub type SharedSnapshot = Arc<watch::Receiver<Snapshot>>;
