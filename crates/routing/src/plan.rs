//! Routing decisions: a plan of ringing steps that call control walks.

use std::time::Duration;

/// What routing decided for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ring according to the plan, starting with step 0.
    Plan(Plan),
    /// Refuse the call with this final response.
    Reject(Reject),
}

impl Decision {
    /// The rule that produced the decision, for a debug log line.
    pub fn because(&self) -> &str {
        match self {
            Decision::Plan(p) => &p.because,
            Decision::Reject(r) => &r.because,
        }
    }
}

/// A final response to end the call with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// SIP status: 403, 404, 480, 486 or 503.
    pub code: u16,
    /// Reason phrase for the response.
    pub reason: String,
    pub because: String,
}

/// Steps to carry out one after the other, starting at `steps[0]`.
///
/// Every [`Next::Step`] names another step of the same plan, and no chain of
/// them leads back to a step already passed (the plan is acyclic), so a walk
/// always ends in an answer, a [`Next::Reject`] or a [`Next::Relay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The rule that chose the first step.
    pub because: String,
}

/// Ring a set of targets in parallel; on failure, follow `on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub targets: Vec<Target>,
    /// Ring at most this long; then the step fails with [`Failure::NoAnswer`].
    pub timeout: Option<Duration>,
    pub on: OnFailure,
    /// When this step starts ringing, record `member` as the round-robin
    /// group's last used member (see [`crate::DialState::last_member`]).
    pub remember: Option<RoundRobinMark>,
    pub because: String,
}

impl Step {
    /// Where to go after this step failed with `failure`.
    pub fn next(&self, failure: Failure) -> &Next {
        match failure {
            Failure::NoAnswer => &self.on.no_answer,
            Failure::Busy => &self.on.busy,
            Failure::Unavailable => &self.on.unavailable,
            Failure::TrunkFailure => &self.on.trunk_failure,
        }
    }
}

/// The member a round-robin group rang first in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundRobinMark {
    pub group: String,
    pub member: String,
}

/// Something to ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every registered device of this extension.
    Extension(String),
    /// A call out through a trunk.
    External {
        trunk: String,
        /// The number as rewritten by the outbound rule.
        number: String,
        /// Calling number to present; `None` leaves the trunk's default.
        caller_id: Option<String>,
        /// Ask the carrier to withhold the caller ID (RFC 3323 privacy).
        privacy: bool,
    },
}

/// Why a step ended without an answer.
///
/// A step with several targets fails when its timeout fires
/// ([`Failure::NoAnswer`]) or when every target has failed; call control
/// reports [`Failure::Busy`] if every target was busy, else the failure of
/// the last target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The step's timeout fired.
    NoAnswer,
    /// 486, 600 or 603.
    Busy,
    /// Other 4xx and 6xx (404, 480…), or the target could not be reached.
    Unavailable,
    /// 408 or 5xx: the trunk (or device) failed rather than the callee.
    TrunkFailure,
}

impl Failure {
    /// Classifies a final failure response from a target.
    pub fn from_status(code: u16) -> Failure {
        match code {
            486 | 600 | 603 => Failure::Busy,
            408 | 500..=599 => Failure::TrunkFailure,
            _ => Failure::Unavailable,
        }
    }
}

/// What to do after a failed step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Go on with `steps[i]`.
    Step(usize),
    /// End the call with this response.
    Reject(Reject),
    /// End the call with the final response the target gave (a busy or
    /// unknown number far away is the caller's answer, not ours).
    Relay,
}

/// The next move for each kind of failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnFailure {
    pub no_answer: Next,
    pub busy: Next,
    pub unavailable: Next,
    pub trunk_failure: Next,
}

impl OnFailure {
    /// The same next move for every failure.
    pub fn all(next: Next) -> Self {
        Self {
            no_answer: next.clone(),
            busy: next.clone(),
            unavailable: next.clone(),
            trunk_failure: next,
        }
    }
}
