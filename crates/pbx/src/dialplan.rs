//! Carrying out routing decisions: the routing crate says what to ring and
//! what to do on each kind of failure; this walks that plan step by step,
//! creating the B-legs (to extensions' phones or through trunks).

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use routing::{DialState, Failure, Next, Target};
use sip::{HeaderName, Message, Method, Peer, Uri};
use tracing::{debug, info, warn};

use crate::call::{
    contact_target, fit_transport, via_value, Branch, BranchState, BranchTarget, CallId, CallState,
    ClientTx, Side,
};
use crate::core::{Core, CoreTimer, ALLOW};
use crate::sdp_glue;

/// Who placed a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// An extension, authenticated by digest.
    Extension(String),
    /// A trunk, recognised by the request's source address.
    Trunk { name: String, number: String },
}

impl Caller {
    pub(crate) fn as_routing(&self) -> routing::Caller {
        match self {
            Caller::Extension(n) => routing::Caller::Extension(n.clone()),
            Caller::Trunk { name, number } => routing::Caller::Trunk {
                name: name.clone(),
                caller_number: number.clone(),
            },
        }
    }

    /// The calling number shown to the callee.
    pub(crate) fn number(&self) -> &str {
        match self {
            Caller::Extension(n) => n,
            Caller::Trunk { number, .. } => number,
        }
    }
}

/// One B-leg to start.
pub(crate) struct BranchSpec {
    pub ruri: Uri,
    pub to_hdr: String,
    pub peer: Peer,
    pub target: BranchTarget,
    /// The calling number to present instead of the caller's.
    pub caller_id: Option<String>,
    /// Withhold the caller's identity (RFC 3323).
    pub privacy: bool,
    /// The offer for this leg when it differs from the call's (a trunk's codecs).
    pub offer: Option<Bytes>,
}

/// What routing may know of the engine's state, borrowed for one decision.
pub(crate) struct EngineState<'a> {
    pub core: &'a Core,
    pub now: Instant,
}

impl DialState for EngineState<'_> {
    fn is_registered(&self, ext: &str) -> bool {
        !self
            .core
            .registrar
            .location()
            .lookup(ext, self.now)
            .is_empty()
    }

    fn active_calls(&self, ext: &str) -> u32 {
        self.core.busy.get(ext).copied().unwrap_or(0)
    }

    fn is_dnd(&self, ext: &str) -> bool {
        self.core
            .settings
            .router
            .extension(ext)
            .is_some_and(|e| e.dnd)
    }

    fn last_member(&self, group: &str) -> Option<String> {
        self.core.last_member.get(group).cloned()
    }

    fn trunk_calls(&self, trunk: &str) -> u32 {
        self.core.trunk_calls.get(trunk).copied().unwrap_or(0)
    }
}

impl Core {
    /// The trunk an unauthenticated request comes from, by source address.
    pub(crate) fn trunk_of(&self, from: Peer) -> Option<String> {
        self.settings
            .trunks
            .values()
            .find(|t| t.addresses.contains(&from.addr.ip()))
            .map(|t| t.name.clone())
    }

    pub(crate) fn route(
        &self,
        now: Instant,
        wall: SystemTime,
        caller: &Caller,
        dialled: &str,
    ) -> routing::Decision {
        let state = EngineState { core: self, now };
        let from = caller.as_routing();
        let req = routing::RouteRequest {
            from: &from,
            dialled,
            now: routing::chrono::DateTime::<routing::chrono::Utc>::from(wall),
            state: &state,
        };
        let decision = self.settings.router.route(&req);
        debug!(
            caller = caller.number(),
            dialled,
            because = decision.because(),
            "routing decision"
        );
        decision
    }

    /// Rings the targets of step `idx` of a call's plan. A step with
    /// nothing to ring fails at once as "unavailable".
    pub(crate) fn start_step(&mut self, now: Instant, call: CallId, idx: usize) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(step) = c.plan.steps.get(idx).cloned() else {
            warn!(call, idx, "plan step out of range");
            return;
        };
        c.step = idx;
        // Most steps ring one phone: a vector's first growth would make room
        // for four branches of a few hundred bytes each.
        c.branches.reserve_exact(step.targets.len());
        debug!(call, step = idx, because = %step.because, "plan step");
        if let Some(mark) = &step.remember {
            self.last_member
                .insert(mark.group.clone(), mark.member.clone());
        }
        let mut started = 0;
        for target in &step.targets {
            started += match target {
                Target::Extension(ext) => self.ring_extension(now, call, idx, ext),
                Target::External {
                    trunk,
                    number,
                    caller_id,
                    privacy,
                } => self.ring_trunk(
                    now,
                    call,
                    idx,
                    trunk,
                    number,
                    caller_id.as_deref(),
                    *privacy,
                ),
            };
        }
        if started == 0 {
            self.step_failed(now, call, Failure::Unavailable, 480);
            return;
        }
        let ring = step.timeout.unwrap_or(self.settings.ring_timeout);
        let key = self.add_timer(now + ring, CoreTimer::StepTimeout(call, idx));
        if let Some(c) = self.calls.get_mut(&call) {
            c.step_timer = Some(key);
        }
    }

    /// The current step ended without an answer: go where the plan says.
    pub(crate) fn step_failed(&mut self, now: Instant, call: CallId, failure: Failure, code: u16) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Ringing {
            return;
        }
        let idx = c.step;
        let next = c
            .plan
            .steps
            .get(idx)
            .map(|s| s.next(failure).clone())
            .unwrap_or(Next::Relay);
        let timer = self.calls.get_mut(&call).and_then(|c| c.step_timer.take());
        self.cancel_timer(timer);
        debug!(call, step = idx, ?failure, code, ?next, "plan step failed");
        match next {
            Next::Step(j) if j != idx => {
                // Whatever of this step still rings is given up first.
                self.cancel_step_branches(now, call, idx);
                self.start_step(now, call, j);
            }
            Next::Step(_) | Next::Relay => self.fail_call(now, call, code, None, failure),
            Next::Reject(r) => self.fail_call(now, call, r.code, Some(r.reason), failure),
        }
    }

    /// Ends a ringing call with a final failure to the caller.
    fn fail_call(
        &mut self,
        now: Instant,
        call: CallId,
        code: u16,
        reason: Option<String>,
        why: Failure,
    ) {
        info!(
            call,
            code,
            reason = reason.as_deref().unwrap_or(""),
            "call failed"
        );
        self.stats.calls_failed += 1;
        self.fail_a_with(now, call, code, reason);
        self.cancel_branches(now, call, None);
        let end = match why {
            Failure::NoAnswer => "ring timeout".to_string(),
            _ => format!("failed with {code}"),
        };
        self.finish(now, call, &end);
    }

    fn cancel_step_branches(&mut self, now: Instant, call: CallId, step: usize) {
        let keep: Vec<usize> = self
            .calls
            .get(&call)
            .map(|c| {
                c.branches
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.step != step)
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        self.cancel_branches_except(now, call, &keep);
    }

    /// B-legs to every registered contact of an extension; how many started.
    fn ring_extension(&mut self, now: Instant, call: CallId, step: usize, ext: &str) -> usize {
        let contacts = self.registrar.location().lookup(ext, now);
        let mut n = 0;
        for binding in contacts {
            let peer = contact_target(&binding.contact, binding.source);
            let to = format!("<sip:{}@{}>", ext, self.settings.domain);
            let spec = BranchSpec {
                ruri: binding.contact.clone(),
                to_hdr: to,
                peer,
                target: BranchTarget::Extension(ext.to_string()),
                caller_id: None,
                privacy: false,
                offer: None,
            };
            if self.start_branch(now, call, step, spec).is_some() {
                n += 1;
            }
        }
        n
    }

    /// A B-leg out through a trunk; 1 if it started.
    #[allow(clippy::too_many_arguments)]
    fn ring_trunk(
        &mut self,
        now: Instant,
        call: CallId,
        step: usize,
        trunk: &str,
        number: &str,
        caller_id: Option<&str>,
        privacy: bool,
    ) -> usize {
        let Some(t) = self.settings.trunks.get(trunk).cloned() else {
            warn!(call, trunk, "plan names a trunk that is not configured");
            return 0;
        };
        // The provider takes only the codecs the trunk allows.
        let codecs = self
            .settings
            .router
            .trunk(trunk)
            .map(|r| r.codecs.clone())
            .unwrap_or_default();
        let offer = match self.calls.get(&call).and_then(|c| c.b_offer.clone()) {
            Some(body) => match sdp_glue::restrict_codecs(&body, &codecs) {
                Some(b) => Some(b),
                None => {
                    info!(
                        call,
                        trunk, "none of the offered codecs is allowed on this trunk"
                    );
                    return 0;
                }
            },
            None => None,
        };
        let uri = Uri::sip(Some(number), &t.domain, None);
        let to = format!("<sip:{}@{}>", number, t.domain);
        let spec = BranchSpec {
            ruri: uri,
            to_hdr: to,
            peer: t.peer,
            target: BranchTarget::Trunk(t.name.clone()),
            caller_id: caller_id.map(str::to_string),
            privacy,
            offer,
        };
        usize::from(self.start_branch(now, call, step, spec).is_some())
    }

    /// Sends one B-leg INVITE and records it as a branch of the call.
    fn start_branch(
        &mut self,
        now: Instant,
        call: CallId,
        step: usize,
        spec: BranchSpec,
    ) -> Option<usize> {
        let BranchSpec {
            ruri,
            to_hdr,
            peer,
            target,
            caller_id,
            privacy,
            offer,
        } = spec;
        let c = self.calls.get(&call)?;
        let idx = c.branches.len();
        let call_id = Bytes::from(format!(
            "{:016x}{:04x}@{}",
            rand::random::<u64>(),
            idx,
            self.settings.domain
        ));
        let local = self.settings.local_addr(peer.transport);
        // An empty caller ID (a trunk without a main number) means "none".
        let number = caller_id
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| c.caller.number().to_string());
        let host = match &target {
            BranchTarget::Trunk(t) => self
                .settings
                .trunks
                .get(t)
                .map(|t| t.domain.clone())
                .unwrap_or_else(|| self.settings.domain.clone()),
            BranchTarget::Extension(_) => self.settings.domain.clone(),
        };
        let display = match &c.caller {
            crate::dialplan::Caller::Extension(n) => self
                .settings
                .extensions
                .get(n)
                .map(|e| e.name.replace(['"', '\\'], ""))
                .unwrap_or_default(),
            crate::dialplan::Caller::Trunk { .. } => String::new(),
        };
        let from_hdr = if privacy {
            format!(
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag={}",
                crate::core::new_tag()
            )
        } else if display.is_empty() {
            format!("<sip:{}@{}>;tag={}", number, host, crate::core::new_tag())
        } else {
            format!(
                "\"{}\" <sip:{}@{}>;tag={}",
                display,
                number,
                host,
                crate::core::new_tag()
            )
        };
        let mut inv = Message::request(Method::Invite, ruri);
        inv.push(HeaderName::Via, via_value(peer.transport, local));
        inv.push(
            HeaderName::MaxForwards,
            c.max_forwards.saturating_sub(1).max(1).to_string(),
        );
        inv.push(HeaderName::From, from_hdr);
        inv.push(HeaderName::To, to_hdr);
        inv.push(HeaderName::CallId, call_id.clone());
        inv.push(HeaderName::CSeq, "1 INVITE");
        inv.push(
            HeaderName::Contact,
            format!("<sip:{}@{};transport={}>", number, local, peer.transport),
        );
        if privacy {
            // RFC 3323/3325: the carrier knows who calls, the callee does not.
            inv.push(HeaderName::Privacy, "id");
            inv.push(
                HeaderName::Other(Bytes::from_static(b"P-Asserted-Identity")),
                format!("<sip:{}@{}>", number, host),
            );
        }
        inv.push(HeaderName::Allow, ALLOW);
        inv.push(HeaderName::UserAgent, self.settings.user_agent.clone());
        let offer = offer.or_else(|| c.b_offer.clone());
        if let Some(body) = &offer {
            inv.set_body("application/sdp", body.clone());
        }
        let peer = fit_transport(&mut inv, peer);
        let via_branch = top_branch(&inv);
        let key = self.tx.send_request(now, inv.clone(), peer);
        self.client_txs
            .insert(key.clone(), ClientTx::BInvite { call, branch: idx });
        self.dialogs.insert(call_id.clone(), (call, Side::B));
        if let BranchTarget::Trunk(t) = &target {
            *self.trunk_calls.entry(t.clone()).or_default() += 1;
        }
        let c = self.calls.get_mut(&call)?;
        c.branches.push(Branch {
            key,
            invite: Some(Box::new(inv)),
            via_branch,
            peer,
            call_id,
            state: BranchState::Calling,
            final_code: None,
            cancel_pending: false,
            step,
            target,
            auth_tried: false,
        });
        Some(idx)
    }

    /// A trunk challenged our INVITE (401/407): send it again with
    /// credentials, once. Returns false when that cannot be done.
    pub(crate) fn answer_trunk_challenge(
        &mut self,
        now: Instant,
        call: CallId,
        branch: usize,
        resp: &Message,
    ) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(b) = c.branches.get_mut(branch) else {
            return false;
        };
        let BranchTarget::Trunk(trunk) = &b.target else {
            return false;
        };
        if b.auth_tried {
            return false;
        }
        let Some(t) = self.settings.trunks.get(trunk) else {
            return false;
        };
        let (challenge_hdr, auth_hdr) = if resp.status() == Some(407) {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let Some(challenge) = resp
            .headers_named(&challenge_hdr)
            .find_map(|v| crate::auth::Challenge::parse(v).ok())
        else {
            return false;
        };
        let Some(invite) = b.invite.as_deref() else {
            return false;
        };
        let uri = invite
            .request_uri()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let credentials =
            challenge.authorization("INVITE", &uri, &t.username, &t.password, &cnonce, 1);
        let mut inv = invite.clone();
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1) + 1;
        inv.set(HeaderName::CSeq, format!("{seq} INVITE"));
        inv.remove(&auth_hdr);
        inv.push(auth_hdr, credentials);
        let local = self.settings.local_addr(b.peer.transport);
        inv.set(HeaderName::Via, via_value(b.peer.transport, local));
        b.via_branch = top_branch(&inv);
        let key = self.tx.send_request(now, inv.clone(), b.peer);
        self.client_txs.remove(&b.key);
        self.client_txs
            .insert(key.clone(), ClientTx::BInvite { call, branch });
        b.key = key;
        b.invite = Some(Box::new(inv));
        b.auth_tried = true;
        b.state = BranchState::Calling;
        true
    }
}

/// The branch parameter of a request's top Via (empty when it has none).
fn top_branch(msg: &Message) -> Bytes {
    msg.top_via()
        .ok()
        .and_then(|v| v.branch().cloned())
        .unwrap_or_default()
}
