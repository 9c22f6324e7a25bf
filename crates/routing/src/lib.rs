//! The dial plan of the softswitch: pure routing, plain data in, a decision
//! out. No I/O and no clock: the time of the call comes in the request.
//!
//! # The model (3CX's concepts under 3CX's names)
//!
//! A [`Dialplan`] is what the config loader fills:
//!
//! - [`Extension`]: a user's number with [`Forwarding`] rules
//!   (unconditional, busy, no answer after N seconds, not registered), each
//!   a [`Destination`] (extension, ring group, external number dialled
//!   through the outbound rules, or hangup). With [`OfficeHours`] it has a
//!   second profile for out of hours. It may be in DND, has a limit of
//!   simultaneous calls, an outbound caller ID, the outbound rules it may
//!   use and whether it may dial international numbers.
//! - [`RingGroup`]: members rung all at once ([`Strategy::RingAll`]), in
//!   order ([`Strategy::Hunt`]) or in turn ([`Strategy::RoundRobin`]),
//!   skipping members in DND, busy or not registered; then its `no_answer`
//!   destination. Members ring directly: their own forwarding is not
//!   followed.
//! - [`Trunk`]: a carrier connection; routing uses its name, call limit,
//!   caller ID [`Presentation`] and main number.
//! - [`InboundRule`]: sends a DID arriving on a trunk somewhere. An exact
//!   DID beats a prefix (`"4122555*"`), a longer prefix a shorter one, a
//!   rule for the arriving trunk a generic one. Office hours choose between
//!   `to` and `out_of_hours`. No rule: 404.
//! - [`OutboundRule`]: the first rule (in order) whose prefix and length
//!   range match the dialled number and that the caller may use picks the
//!   trunks; the number is rewritten (strip, then prepend) and the trunks
//!   are tried in order. Nothing external is dialable unless a rule allows
//!   it (403); international numbers (`00…`, `+…`) need the extension's
//!   permission (403 otherwise: toll fraud is the costliest attack on a
//!   PBX). Emergency numbers always route, through the first rule that has
//!   a trunk, whatever the caller's permissions.
//! - [`OfficeHours`]: a weekly schedule in an IANA time zone, with holidays.
//!
//! # Decisions
//!
//! [`Router::route`] turns a [`RouteRequest`] (who calls, what was dialled,
//! when, and a [`DialState`] view of registrations, calls, DND and the
//! round-robin memory) into a [`Decision`]: either a [`Reject`] or a
//! [`Plan`] of [`Step`]s. Call control rings the targets of `steps[0]` in
//! parallel for its timeout; when the step fails it asks
//! [`Step::next`] with the [`Failure`] kind and goes to the named step,
//! rejects, or relays the far end's own answer. Plans are acyclic, so the
//! walk always ends. Every decision and step carries `because`, the rule
//! that produced it, for the debug log.
//!
//! Forwarding chains are followed with loop protection: each extension and
//! ring group becomes steps at most once per plan, a destination reached
//! again while it is still being resolved ends that branch with 480, and
//! chains stop at [`MAX_FORWARD_DEPTH`].
//!
//! Destinations the administrator wrote (inbound rules, ring groups) may
//! use any outbound rule; an extension's forward to an external number is
//! placed with that extension's own permissions, so a forward cannot be
//! used to reach numbers the user could not dial.
//!
//! [`validate`] checks every reference of a [`Dialplan`] and names the item
//! at fault.

mod hours;
mod model;
mod plan;
mod router;
mod state;
mod validate;

pub use hours::{Interval, OfficeHours};
pub use model::{
    Destination, Dialplan, DidPattern, Extension, Forwarding, InboundRule, NumberRange,
    OutboundPermission, OutboundRule, Presentation, RingGroup, Strategy, Trunk,
};
pub use plan::{Decision, Failure, Next, OnFailure, Plan, Reject, RoundRobinMark, Step, Target};
pub use router::{Caller, RouteRequest, Router, MAX_FORWARD_DEPTH, MAX_STEPS};
pub use state::{DialState, MemoryState};
pub use validate::{validate, ConfigError};

/// Re-exported so callers build [`OfficeHours`] and requests with the same
/// chrono types.
pub use chrono;
pub use chrono_tz;
