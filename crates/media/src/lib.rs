//! The RTP/RTCP relay: every call's media is anchored here. A [`Relay`]
//! owns a port pool; each call gets a [`Session`] with a port pair per side
//! (A faces the caller, B the callee), symmetric latching towards each
//! phone, per-direction counters and a shared dead-media sweep.
//! [`Session::set_reservation`] polices a call's bitrate against the
//! bandwidth admission reserved for it ([`PoliceConfig`]).
//! [`rewrite_sdp`] points an SDP at the relay.

mod batch;
mod engine;
mod police;
mod relay;
mod rewrite;
mod track;
#[cfg(target_os = "linux")]
mod uring;

pub use engine::RelayEngine;
pub use police::{PoliceConfig, PoliceStats};
pub use relay::{
    ChannelStats, DirectionStats, MediaError, Relay, RelayConfig, Session, SessionId, SessionStats,
    Side,
};
pub use rewrite::{rewrite_sdp, rewrite_sdp_streams};
