//! The running daemon: turns the validated config into the engine's
//! settings, starts the server and stops it cleanly on SIGINT/SIGTERM.

use std::collections::HashMap;

use anyhow::Context;
use pbx::settings::TrunkInfo;
use pbx::{ExtensionInfo, ServerConfig, Settings};

use crate::config::{advertised_ip, Config};

pub fn run(config: Config) -> anyhow::Result<()> {
    // Signalling is one sans-IO core driven by one task, and media runs on
    // the relay's own threads: a single-threaded runtime saves the
    // cross-thread wake-ups a work-stealing pool would add per message.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

/// The engine's settings from `config`; its dial plan is moved into the
/// router (left empty in `config`), the rest is copied.
pub fn server_config(config: &mut Config) -> ServerConfig {
    let extensions: HashMap<String, ExtensionInfo> = config
        .extensions
        .iter()
        .map(|e| {
            (
                e.number.clone(),
                ExtensionInfo {
                    number: e.number.clone(),
                    name: e.name.clone(),
                    // `run` provisions every missing password before we get here.
                    password: e.password.clone().unwrap_or_default(),
                    site: e.site.clone(),
                },
            )
        })
        .filter(|(_, e)| !e.password.is_empty())
        .collect();
    let sip_bound = config
        .sip
        .listen
        .first()
        .map(|l| l.addr.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let media_advertise = advertised_ip(
        config.media.advertise.or(config.sip.advertise),
        config.media.bind,
    );
    ServerConfig {
        settings: Settings {
            domain: config.sip.domain.clone(),
            user_agent: config.sip.user_agent.clone(),
            ring_timeout: config.sip.ring_timeout,
            min_expires: config.sip.min_expires,
            max_expires: config.sip.max_expires,
            extensions: extensions.clone(),
            advertised: HashMap::new(),
            auth_algorithms: config.sip.auth_algorithms.clone(),
            admission: pbx::settings::AdmissionSettings {
                estimator: config.admission.estimator(),
                sites: config.admission.sites.clone(),
            },
            router: std::sync::Arc::new(routing::Router::new(std::mem::take(&mut config.dialplan))),
            trunks: HashMap::new(),
        },
        listen: config.sip.listen.clone(),
        advertise: Some(advertised_ip(config.sip.advertise, sip_bound)),
        relay: media::RelayConfig {
            bind_ip: config.media.bind,
            advertise_ip: media_advertise,
            port_min: config.media.port_min,
            port_max: config.media.port_max,
            dead_media: config.media.dead_media,
            police: media::PoliceConfig {
                margin_percent: config.admission.police_margin_percent,
                window: config.admission.police_window,
                drop_excess: config.admission.police_drop,
                ..media::PoliceConfig::default()
            },
            workers: config.media.workers,
            engine: config.media.engine,
        },
    }
}

/// The trunks with their hosts resolved. A trunk whose host does not
/// resolve is left out (logged): calls through it fail over to the next.
pub async fn resolve_trunks(config: &Config) -> HashMap<String, TrunkInfo> {
    let mut out = HashMap::new();
    for t in &config.trunks {
        let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((
            t.host.as_str(),
            t.port,
        ))
        .await
        {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::error!(trunk = %t.name, host = %t.host, error = %e, "cannot resolve the trunk's host; trunk disabled");
                continue;
            }
        };
        let Some(first) = addrs.first().copied() else {
            tracing::error!(trunk = %t.name, host = %t.host, "the trunk's host has no address; trunk disabled");
            continue;
        };
        let mut addresses: Vec<std::net::IpAddr> = addrs.iter().map(|a| a.ip()).collect();
        addresses.extend(t.allowed_ips.iter().copied());
        addresses.sort();
        addresses.dedup();
        out.insert(
            t.name.clone(),
            TrunkInfo {
                name: t.name.clone(),
                peer: sip::Peer {
                    transport: t.transport,
                    addr: first,
                },
                domain: t.domain.clone(),
                username: t.username.clone().unwrap_or_default(),
                auth_username: t.auth_username.clone(),
                password: t.password.clone().unwrap_or_default(),
                expires: t.expires,
                register: t.register,
                addresses,
            },
        );
    }
    out
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let mut cfg = server_config(&mut config);
    cfg.settings.trunks = resolve_trunks(&config).await;
    let (admin_addr, extensions, domain) = (
        config.admin.listen,
        config.extensions.len(),
        config.sip.domain.clone(),
    );
    // The engine has its own copy of everything it needs from here on.
    drop(config);
    let running = pbx::start(cfg, shutdown_signal())
        .await
        .context("starting the softswitch")?;
    crate::config::release_freed_heap();
    tracing::info!(
        extensions,
        %domain,
        "softswitch running; SIGINT or SIGTERM ends calls and stops"
    );
    // The PBX keeps working without its admin API; say loudly that it is missing.
    let snapshot = running.snapshot.clone();
    let admin = tokio::spawn(async move {
        if let Err(e) = crate::admin::serve(admin_addr, snapshot).await {
            tracing::error!("{e:#}");
        }
    });
    running.task.await.context("the engine task failed")?;
    admin.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C, and on SIGTERM where there is such a thing.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
