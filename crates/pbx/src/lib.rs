//! The engine: the registrar with digest authentication, B2BUA call control,
//! and the wiring of media (and later routing and admission) into calls.
//!
//! `core` is sans-IO (messages and `now` in, transmits out); `server` is the
//! thin tokio shell that drives it.

pub mod auth;
pub mod call;
pub mod core;
mod dialplan;
pub mod location;
pub mod registrar;
mod sdp_glue;
pub mod server;
pub mod settings;
pub mod trunk_reg;

pub use crate::core::{Core, CoreEvent, CoreStats, SiteStatus, TrunkStatus};
pub use server::{start, Running, ServerConfig, ServerError, Snapshot};
pub use settings::{ExtensionInfo, Settings};
