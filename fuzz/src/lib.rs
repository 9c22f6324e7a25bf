//! The bodies of the fuzz targets, as plain functions so that ordinary
//! tests can run them over a corpus without libFuzzer (see the tests in
//! `crates/sip/tests/` and `tests/corpus.rs` here).

pub mod sdp_target;
pub mod sip_targets;

pub use sdp_target::sdp_parse;
pub use sip_targets::{sip_differential, sip_parse};
