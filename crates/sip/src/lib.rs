//! SIP for the softswitch: the message model and its parser (zero-copy over
//! `bytes`), SDP, the RFC 3261 §17 transaction state machines (sans-IO) and
//! the tokio transports that carry them.

pub mod header;
pub mod message;
pub mod parse;
pub mod peer;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;

pub use header::{CSeq, NameAddr, Params, Via};
pub use message::{Header, HeaderName, Message, Method, Request, Response, StartLine};
pub use parse::{parse_message, ParseError};
pub use peer::{ListenSpec, Peer, TransportKind};
pub use uri::Uri;
