//! The admin API: a read-only HTTP endpoint on a loopback address that
//! `softswitch status` (and monitoring) reads the running daemon's state from.

use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pbx::Snapshot;
use tokio::sync::watch;

/// Serves `GET /status` (the engine's latest snapshot, as JSON) until the
/// task is dropped.
pub async fn serve(addr: SocketAddr, snapshot: watch::Receiver<Snapshot>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("admin API: cannot listen on {addr}"))?;
    tracing::info!(%addr, "admin API listening");
    let app = Router::new()
        .route("/status", get(status))
        .with_state(snapshot);
    axum::serve(listener, app)
        .await
        .context("admin API stopped")
}

async fn status(State(snapshot): State<watch::Receiver<Snapshot>>) -> Json<Snapshot> {
    Json(snapshot.borrow().clone())
}
