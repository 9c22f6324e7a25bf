//! B2BUA call control: an A-leg dialog with the caller, one B-leg per
//! registered contact of the callee (parallel fork), media anchored in the
//! relay. Each call ends exactly once through `finish`, which releases its
//! media session and forgets its dialogs.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sip::transaction::TxKey;
use sip::{HeaderName, Message, Method, Peer, Uri};
use tracing::{debug, info, warn};

use crate::core::{new_tag, Core, CoreEvent, ALLOW};
use crate::dialplan::Caller;
use crate::sdp_glue;

pub type CallId = u64;

/// A call's two sides: `A` faces the caller, `B` the callee (the relay's
/// own naming, so one word serves signalling and media).
pub use media::Side;

/// One dialog as a UA sees it.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    pub call_id: Bytes,
    /// Our From (B-leg) or To (A-leg) value, with our tag.
    pub local_hdr: Bytes,
    /// Their From (A-leg) or To (B-leg) value, with their tag.
    pub remote_hdr: Bytes,
    pub remote_target: Uri,
    /// Route headers for requests we send in this dialog (RFC 3261 §12.2.1.1).
    pub route_set: Vec<Bytes>,
    /// The flow the phone is reachable on (its source address: NAT-safe).
    pub peer: Peer,
    pub local_cseq: u32,
    pub remote_cseq: u32,
}

impl Leg {
    /// Whether a request the phone sent belongs to this dialog: its From
    /// tag is theirs and its To tag ours.
    fn matches(&self, msg: &Message) -> bool {
        let tag_of = |h: &Bytes| sip::NameAddr::parse(h).ok().and_then(|n| n.tag().cloned());
        let to = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        let from = msg.from_hdr().ok().and_then(|f| f.tag().cloned());
        to.is_some() && to == tag_of(&self.local_hdr) && from == tag_of(&self.remote_hdr)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BranchState {
    Calling,
    Ringing,
    Failed,
    Answered,
    Cancelled,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub key: TxKey,
    /// The INVITE as sent, to CANCEL it or answer a challenge; dropped once
    /// the branch has its final answer.
    pub invite: Option<Box<Message>>,
    /// The branch of the INVITE's Via, to recognise it coming back (loops).
    pub via_branch: Bytes,
    pub peer: Peer,
    pub call_id: Bytes,
    pub state: BranchState,
    /// The final status received, to pick the caller's answer when all fail.
    pub final_code: Option<u16>,
    /// A CANCEL waits for a provisional response (RFC 3261 §9.1).
    pub cancel_pending: bool,
    /// The plan step that rang it.
    pub step: usize,
    pub target: BranchTarget,
    /// We answered a trunk's digest challenge already.
    pub auth_tried: bool,
}

/// What a B-leg rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BranchTarget {
    Extension(String),
    Trunk(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    Ringing,
    Answered,
}

/// An ACK we owe one side once the other side ACKs our 2xx.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub side: Side,
    pub cseq: u32,
}

pub(crate) struct Call {
    pub id: CallId,
    pub state: CallState,
    pub caller: Caller,
    pub callee: String,
    pub a: Leg,
    pub a_tag: String,
    pub a_invite_key: TxKey,
    /// The caller's INVITE, to build our responses; dropped once answered.
    pub a_invite: Option<Box<Message>>,
    pub branches: Vec<Branch>,
    pub b: Option<Leg>,
    pub media: Option<media::Session>,
    pub pending_ack: Option<PendingAck>,
    /// The last ACK sent per side (as sent), re-sent when a 2xx is retransmitted.
    pub last_ack: [Option<(Bytes, Peer)>; 2],
    pub started: Instant,
    /// The caller's and the callee's site, and the kbps reserved on each.
    pub sites: [admission::SiteId; 2],
    pub kbps: u32,
    /// What routing decided, and the step ringing now.
    pub plan: routing::Plan,
    pub step: usize,
    /// The caller's offer as B-legs get it (pointing at our relay).
    pub b_offer: Option<Bytes>,
    pub max_forwards: u32,
    /// Extensions this call counts as busy, until it ends.
    pub busy_counted: Vec<String>,
    /// The ring timer of the current step, to cancel it in O(log n).
    pub step_timer: Option<crate::core::TimerKey>,
}

impl Call {
    fn leg(&self, side: Side) -> Option<&Leg> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }

    fn leg_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }
}

/// Why we started a client transaction. The messages are boxed so that the
/// common variants do not pay for them in every slot of the table.
#[derive(Debug)]
pub(crate) enum ClientTx {
    /// A B-leg INVITE of a call.
    BInvite { call: CallId, branch: usize },
    /// A request relayed from one leg to the other; its response goes back
    /// through `origin`, the server transaction of the first leg.
    Relayed {
        call: CallId,
        origin: TxKey,
        origin_msg: Box<Message>,
        to_side: Side,
    },
    /// BYE or CANCEL we sent; the answer needs no action.
    Fire,
    /// A B-leg INVITE whose call is over: a 2xx it still gets is ACKed and BYEd.
    Orphan {
        peer: Peer,
        cancel: Option<Box<Message>>,
    },
    /// An unwanted 2xx was ACKed and BYEd; retransmissions get the ACK again.
    Acked { ack: Box<Message>, peer: Peer },
}

fn side_idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Core {
    pub(crate) fn on_invite(
        &mut self,
        now: Instant,
        wall: std::time::SystemTime,
        key: TxKey,
        msg: Message,
        from: Peer,
    ) {
        // Max-Forwards: we are about to forward (RFC 3261 §16.3 step 3 applies to the B-leg too).
        let max_forwards = msg
            .u32_header(&HeaderName::MaxForwards)
            .ok()
            .flatten()
            .unwrap_or(70);
        if max_forwards == 0 {
            let resp = self.response(&msg, 483);
            self.tx.send_response(now, &key, resp);
            return;
        }
        if self.is_loop(&msg) {
            let resp = self.response(&msg, 482);
            self.tx.send_response(now, &key, resp);
            return;
        }
        if !msg.body.is_empty() && !is_sdp(&msg) {
            let mut resp = self.response(&msg, 415);
            resp.push(HeaderName::Accept, "application/sdp");
            self.tx.send_response(now, &key, resp);
            return;
        }
        // A trunk is known by its address; anyone else proves to be an extension.
        let caller = match self.trunk_of(from) {
            Some(name) => Caller::Trunk {
                name,
                number: msg
                    .from_hdr()
                    .ok()
                    .and_then(|f| f.uri.user_str().map(str::to_string))
                    .unwrap_or_default(),
            },
            None => match self.authenticate_caller(now, wall, &key, &msg, from) {
                Some(ext) => Caller::Extension(ext),
                None => return,
            },
        };
        let a_tag = new_tag();
        let mut trying = Message::response_to(&msg, 100, None);
        trying.push(HeaderName::Server, self.settings.user_agent.clone());
        self.tx.send_response(now, &key, trying);

        let mut dialled = msg
            .request_uri()
            .and_then(|u| u.user_str())
            .map(|u| u.split(';').next().unwrap_or(u).to_string())
            .unwrap_or_default();
        // Providers that deliver to our registered Contact put the DID in To.
        if let Caller::Trunk { name, .. } = &caller {
            let contact_user = self.settings.trunks.get(name).map(|t| t.username.as_str());
            if dialled.is_empty() || Some(dialled.as_str()) == contact_user {
                if let Some(to_user) = msg
                    .to_hdr()
                    .ok()
                    .and_then(|t| t.uri.user_str().map(str::to_string))
                {
                    dialled = to_user;
                }
            }
        }
        let reject = |core: &mut Core, code: u16, why: &str| {
            info!(caller = caller.number(), %dialled, code, why, "call refused");
            core.stats.calls_failed += 1;
            let mut resp = Message::response_to(&msg, code, Some(&a_tag));
            resp.push(HeaderName::Server, core.settings.user_agent.clone());
            if let sip::StartLine::Response(r) = &mut resp.start {
                if !why.is_empty() {
                    r.reason = Bytes::from(why.to_string());
                }
            }
            core.tx.send_response(now, &key, resp);
        };
        let plan = match self.route(now, wall, &caller, &dialled) {
            routing::Decision::Reject(r) => {
                reject(self, r.code, &r.reason);
                return;
            }
            routing::Decision::Plan(p) => p,
        };
        let offer = if msg.body.is_empty() {
            None
        } else {
            match sdp_glue::parse(&msg.body) {
                Ok(s) => Some(s),
                Err(e) => {
                    reject(self, 400, &format!("Bad SDP: {e}"));
                    return;
                }
            }
        };
        // Admission before anything rings: the call's media crosses the
        // caller's link and the callee's (the same link twice when both
        // are at one site, since media is relayed through us).
        let id = self.next_call;
        let kbps = match &offer {
            Some(o) => self
                .settings
                .admission
                .estimator
                .reservation_kbps(&sdp_glue::media_lines(o)),
            None => self.settings.admission.estimator.floor_kbps(),
        };
        let sites = [
            self.site_of(caller.number(), from.addr.ip()),
            self.first_target_site(now, &plan),
        ];
        let legs = [
            admission::Leg::symmetric(sites[0], kbps),
            admission::Leg::symmetric(sites[1], kbps),
        ];
        if let Err(refusal) = self.admission.reserve(id, &legs) {
            let text = refusal.warning_text();
            warn!(caller = caller.number(), callee = %dialled, kbps, "call refused by admission: {text}");
            self.stats.calls_failed += 1;
            self.stats.admission_refusals += 1;
            let mut resp = Message::response_to(&msg, 488, Some(&a_tag));
            resp.push(HeaderName::Server, self.settings.user_agent.clone());
            resp.push(
                HeaderName::Warning,
                warning_370(&self.settings.domain, &text),
            );
            self.tx.send_response(now, &key, resp);
            return;
        }
        let mut session = match self.relay.create_session() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "no media ports for a new call");
                self.admission.release(id);
                reject(self, 503, "No Media Ports");
                return;
            }
        };
        let b_offer = offer
            .as_ref()
            .map(|o| sdp_glue::relay_sdp(&mut session, Side::A, o));
        // Silence while ringing is normal; the dead-media watch starts at answer.
        session.set_dead_media_check(false);
        session.set_reservation(kbps, kbps);

        self.next_call += 1;
        self.stats.calls_started += 1;
        // Copies: once answered the INVITE is dropped, and slices of it
        // would keep its whole datagram for the call's life.
        let a_call_id = msg
            .call_id()
            .map(|c| Bytes::copy_from_slice(c))
            .unwrap_or_default();
        let a = Leg {
            call_id: a_call_id.clone(),
            local_hdr: with_tag(
                msg.header(&HeaderName::To).cloned().unwrap_or_default(),
                &a_tag,
            ),
            remote_hdr: msg
                .header(&HeaderName::From)
                .map(|f| Bytes::copy_from_slice(f))
                .unwrap_or_default(),
            remote_target: first_contact_uri(&msg)
                .map(|u| detached_uri(&u))
                .unwrap_or_else(|| {
                    Uri::sip(
                        Some(caller.number()),
                        &from.addr.ip().to_string(),
                        Some(from.addr.port()),
                    )
                }),
            route_set: msg
                .headers_named(&HeaderName::RecordRoute)
                .map(|r| Bytes::copy_from_slice(r))
                .collect(),
            peer: first_contact_uri(&msg).map_or(from, |c| contact_target(&c, from)),
            local_cseq: rand::random::<u16>() as u32 + 1,
            remote_cseq: msg.cseq().map(|c| c.seq).unwrap_or(0),
        };
        info!(call = id, caller = caller.number(), callee = %dialled, because = %plan.because, "call routed");
        self.media_sessions.insert(session.id(), id);
        self.dialogs.insert(a_call_id, (id, Side::A));
        self.a_invites.insert(key.clone(), id);
        if let Caller::Trunk { name, .. } = &caller {
            *self.trunk_calls.entry(name.clone()).or_default() += 1;
        }
        self.calls.insert(
            id,
            Box::new(Call {
                id,
                state: CallState::Ringing,
                caller,
                callee: dialled,
                a,
                a_tag,
                a_invite_key: key,
                a_invite: Some(Box::new(msg)),
                branches: Vec::new(),
                b: None,
                media: Some(session),
                pending_ack: None,
                last_ack: [None, None],
                started: now,
                sites,
                kbps,
                plan,
                step: 0,
                b_offer,
                max_forwards,
                busy_counted: Vec::new(),
                step_timer: None,
            }),
        );
        self.start_step(now, id, 0);
    }

    /// The site of the first thing a plan rings, for admission.
    fn first_target_site(&self, now: Instant, plan: &routing::Plan) -> admission::SiteId {
        let sites = &self.settings.admission.sites;
        let target = plan.steps.first().and_then(|s| s.targets.first());
        match target {
            Some(routing::Target::Extension(ext)) => {
                let ip = self
                    .registrar
                    .location()
                    .lookup(ext, now)
                    .first()
                    .map(|b| b.source.addr.ip());
                match ip {
                    Some(ip) => self.site_of(ext, ip),
                    None => sites.default_site(),
                }
            }
            Some(routing::Target::External { trunk, .. }) => self
                .settings
                .trunks
                .get(trunk)
                .map(|t| sites.lookup(t.peer.addr.ip()))
                .unwrap_or_else(|| sites.default_site()),
            None => sites.default_site(),
        }
    }

    /// A request of ours came back to us (RFC 3261 §16.3 step 4, as far as a B2BUA can tell).
    fn is_loop(&self, msg: &Message) -> bool {
        let Ok(vias) = msg.vias() else { return false };
        vias.iter().any(|v| {
            let ours = self.settings.advertised.values().any(|a| {
                crate::core::host_is(v.host_str(), a.ip()) && v.port.unwrap_or(5060) == a.port()
            });
            ours && v.branch().is_some_and(|b| self.is_our_invite_branch(b))
        })
    }

    fn is_our_invite_branch(&self, branch: &Bytes) -> bool {
        self.calls
            .values()
            .flat_map(|c| c.branches.iter())
            .any(|b| !b.via_branch.is_empty() && b.via_branch == branch)
    }

    pub(crate) fn on_cancel(
        &mut self,
        now: Instant,
        key: TxKey,
        invite: Option<TxKey>,
        msg: &Message,
    ) {
        let call = invite.as_ref().and_then(|k| self.a_invites.get(k)).copied();
        let Some(call) = call else {
            let resp = self.response(msg, 481);
            self.tx.send_response(now, &key, resp);
            return;
        };
        let resp = self.response(msg, 200);
        self.tx.send_response(now, &key, resp);
        let ringing = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state == CallState::Ringing);
        if ringing {
            info!(call, "caller cancelled");
            self.fail_a(now, call, 487);
            self.cancel_branches(now, call, None);
            self.finish(now, call, "cancelled by caller");
        }
    }

    /// Sends a final non-2xx to the caller's INVITE.
    fn fail_a(&mut self, now: Instant, call: CallId, code: u16) {
        self.fail_a_with(now, call, code, None);
    }

    /// Like `fail_a` with our own reason phrase.
    pub(crate) fn fail_a_with(
        &mut self,
        now: Instant,
        call: CallId,
        code: u16,
        reason: Option<String>,
    ) {
        // Without its INVITE the call was answered: no final response is left to send.
        let Some((c, invite)) = self
            .calls
            .get(&call)
            .and_then(|c| Some((c, c.a_invite.as_deref()?)))
        else {
            return;
        };
        let mut resp = Message::response_to(invite, code, Some(&c.a_tag));
        resp.push(HeaderName::Server, self.settings.user_agent.clone());
        if let (Some(reason), sip::StartLine::Response(r)) = (reason, &mut resp.start) {
            if !reason.is_empty() && !reason.contains(['\r', '\n']) {
                r.reason = Bytes::from(reason);
            }
        }
        let key = c.a_invite_key.clone();
        self.tx.send_response(now, &key, resp);
    }

    /// CANCELs every branch still ringing, except `keep`.
    pub(crate) fn cancel_branches(&mut self, now: Instant, call: CallId, keep: Option<usize>) {
        let keep: Vec<usize> = keep.into_iter().collect();
        self.cancel_branches_except(now, call, &keep);
    }

    /// CANCELs every branch still ringing, except those listed.
    pub(crate) fn cancel_branches_except(&mut self, now: Instant, call: CallId, keep: &[usize]) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut cancels = Vec::new();
        for (i, b) in c.branches.iter_mut().enumerate() {
            if keep.contains(&i) {
                continue;
            }
            match b.state {
                BranchState::Ringing => {
                    b.state = BranchState::Cancelled;
                    if let Some(invite) = b.invite.as_deref() {
                        cancels.push((cancel_for(invite), b.peer));
                    }
                }
                // No provisional yet: the CANCEL must wait for one (RFC 3261 §9.1).
                BranchState::Calling => {
                    b.state = BranchState::Cancelled;
                    b.cancel_pending = true;
                }
                _ => {}
            }
        }
        for (cancel, peer) in cancels {
            let k = self.tx.send_request(now, cancel, peer);
            self.client_txs.insert(k, ClientTx::Fire);
        }
    }

    pub(crate) fn on_ack(&mut self, msg: &Message, _accepted: Option<TxKey>) {
        let Some(&(call, side)) = msg.call_id().ok().and_then(|id| self.dialogs.get(id)) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !c.leg(side).is_some_and(|l| l.matches(msg)) {
            return;
        }
        let Some(p) = c.pending_ack.take() else {
            return;
        };
        if p.side == side {
            // Not the ACK we waited for; keep waiting.
            c.pending_ack = Some(p);
            return;
        }
        let target = p.side;
        let body = if msg.body.is_empty() {
            None
        } else {
            // Late offer: the ACK carries the answer.
            sdp_glue::parse(&msg.body).ok().map(|sdp| {
                if let Some(m) = c.media.as_mut() {
                    sdp_glue::relay_sdp(m, side, &sdp)
                } else {
                    msg.body.clone()
                }
            })
        };
        let Some(leg) = c.leg(target) else { return };
        let mut ack = in_dialog_request(&self.settings, leg, Method::Ack, p.cseq);
        if let Some(b) = body {
            ack.set_body("application/sdp", b);
        }
        let peer = leg.peer;
        let ack = ack.to_bytes();
        self.tx.send_raw(ack.clone(), peer);
        c.last_ack[side_idx(target)] = Some((ack, peer));
    }

    pub(crate) fn on_response(&mut self, now: Instant, key: TxKey, msg: Message) {
        let Some(kind) = self.client_txs.get_mut(&key) else {
            return;
        };
        match kind {
            ClientTx::BInvite { call, branch } => {
                let (call, branch) = (*call, *branch);
                self.on_b_invite_response(now, call, branch, msg);
            }
            ClientTx::Relayed { .. } => self.on_relayed_response(now, &key, msg),
            ClientTx::Orphan { peer, cancel } => {
                let peer = *peer;
                let status = msg.status().unwrap_or(0);
                if status < 200 {
                    if let Some(c) = cancel.take() {
                        let k = self.tx.send_request(now, *c, peer);
                        self.client_txs.insert(k, ClientTx::Fire);
                    }
                } else if status < 300 {
                    self.ack_and_bye_tx(now, &key, &msg, peer);
                }
            }
            ClientTx::Acked { ack, peer } => {
                if msg.status().is_some_and(|s| (200..300).contains(&s)) {
                    let (ack, peer) = (ack.clone(), *peer);
                    self.tx.send_stateless(&ack, peer);
                }
            }
            ClientTx::Fire => {}
        }
    }

    fn on_b_invite_response(&mut self, now: Instant, call: CallId, branch: usize, msg: Message) {
        let Some(code) = msg.status() else { return };
        let contact = self
            .calls
            .get(&call)
            .map(|c| self.our_contact(&c.callee, c.a.peer))
            .unwrap_or_default();
        let Some(c) = self.calls.get_mut(&call) else {
            // The call is gone: a late 2xx still needs ACK and BYE.
            if (200..300).contains(&code) {
                self.ack_and_bye(now, &msg, None);
            }
            return;
        };
        let winner = c
            .branches
            .iter()
            .position(|b| b.state == BranchState::Answered);
        let Some(b) = c.branches.get_mut(branch) else {
            return;
        };
        if code < 200 {
            if b.cancel_pending {
                b.cancel_pending = false;
                if let Some(invite) = b.invite.as_deref() {
                    let (cancel, peer) = (cancel_for(invite), b.peer);
                    let k = self.tx.send_request(now, cancel, peer);
                    self.client_txs.insert(k, ClientTx::Fire);
                }
                return;
            }
            if code == 100 {
                return;
            }
            if b.state == BranchState::Calling {
                b.state = BranchState::Ringing;
            }
            if c.state != CallState::Ringing || b.state == BranchState::Cancelled {
                return;
            }
            // Relay 180/183; early media SDP is rewritten to the relay.
            let Some(invite) = c.a_invite.as_deref() else {
                return;
            };
            let mut resp = Message::response_to(invite, code, Some(&c.a_tag));
            if let sip::StartLine::Response(r) = &mut resp.start {
                if let sip::StartLine::Response(orig) = &msg.start {
                    r.reason = orig.reason.clone();
                }
            }
            resp.push(HeaderName::Contact, contact.clone());
            if !msg.body.is_empty() && is_sdp(&msg) {
                if let (Ok(sdp), Some(m)) = (sdp_glue::parse(&msg.body), c.media.as_mut()) {
                    resp.set_body("application/sdp", sdp_glue::relay_sdp(m, Side::B, &sdp));
                }
            }
            let key = c.a_invite_key.clone();
            self.tx.send_response(now, &key, resp);
            return;
        }
        if (200..300).contains(&code) {
            if c.state == CallState::Answered {
                if winner == Some(branch) {
                    // A retransmitted 2xx: our ACK got lost.
                    if let Some((ack, peer)) = &c.last_ack[side_idx(Side::B)] {
                        let (ack, peer) = (ack.clone(), *peer);
                        self.tx.send_raw(ack, peer);
                    }
                } else {
                    let (key, peer) = (b.key.clone(), b.peer);
                    self.ack_and_bye_tx(now, &key, &msg, peer);
                }
                return;
            }
            if b.state == BranchState::Cancelled {
                // Answered while we cancelled it: the call still rings
                // elsewhere or is over; either way this leg must end.
                let (key, peer) = (b.key.clone(), b.peer);
                self.ack_and_bye_tx(now, &key, &msg, peer);
                return;
            }
            b.state = BranchState::Answered;
            let peer = b.peer;
            let b_call_id = b.call_id.clone();
            let invite = b.invite.take();
            let b_local = invite
                .as_ref()
                .and_then(|i| i.header(&HeaderName::From).cloned())
                .unwrap_or_default();
            // Copies: slices would keep the whole 2xx datagram for the call's life.
            let mut route_set: Vec<Bytes> = msg
                .headers_named(&HeaderName::RecordRoute)
                .map(|r| Bytes::copy_from_slice(r))
                .collect();
            route_set.reverse();
            let remote_target = first_contact_uri(&msg)
                .map(|u| detached_uri(&u))
                .unwrap_or_else(|| {
                    invite
                        .as_ref()
                        .and_then(|i| i.request_uri().cloned())
                        .unwrap_or_else(|| Uri::sip(None, "invalid", None))
                });
            c.b = Some(Leg {
                call_id: b_call_id,
                local_hdr: b_local,
                remote_hdr: msg
                    .header(&HeaderName::To)
                    .map(|t| Bytes::copy_from_slice(t))
                    .unwrap_or_default(),
                remote_target,
                route_set,
                peer,
                local_cseq: 1,
                remote_cseq: 0,
            });
            c.state = CallState::Answered;
            // The plan's steps only say what rings next; an answered call
            // keeps none of them.
            c.plan.steps = Vec::new();
            if let Some(m) = &c.media {
                m.set_dead_media_check(true);
            }
            // The caller's ACK releases ours to the callee (it may carry a late answer).
            c.pending_ack = Some(PendingAck {
                side: Side::B,
                cseq: 1,
            });
            // The caller's INVITE is answered now; the layer keeps the 2xx.
            let Some(a_invite) = c.a_invite.take() else {
                return;
            };
            let mut resp = Message::response_to(&a_invite, 200, Some(&c.a_tag));
            resp.push(HeaderName::Contact, contact.clone());
            resp.push(HeaderName::Allow, ALLOW);
            resp.push(HeaderName::Server, self.settings.user_agent.clone());
            let mut answer_kbps = None;
            if !msg.body.is_empty() {
                if let (Ok(sdp), Some(m)) = (sdp_glue::parse(&msg.body), c.media.as_mut()) {
                    resp.set_body("application/sdp", sdp_glue::relay_sdp(m, Side::B, &sdp));
                    answer_kbps = Some(
                        self.settings
                            .admission
                            .estimator
                            .reservation_kbps(&sdp_glue::media_lines(&sdp)),
                    );
                }
            }
            let key = c.a_invite_key.clone();
            // The reservation was the offer's worst case; the answer says what is used.
            if let Some(kbps) = answer_kbps.filter(|k| *k < c.kbps) {
                let legs = [
                    admission::Leg::symmetric(c.sites[0], kbps),
                    admission::Leg::symmetric(c.sites[1], kbps),
                ];
                if self.admission.adjust(call, &legs).is_ok() {
                    c.kbps = kbps;
                    if let Some(m) = &c.media {
                        m.set_reservation(kbps, kbps);
                    }
                }
            }
            info!(call, caller = c.caller.number(), callee = %c.callee, "call answered");
            // Both ends are busy now (forward-on-busy, ring groups skip them).
            let mut busy: Vec<String> = Vec::new();
            if let Caller::Extension(e) = &c.caller {
                busy.push(e.clone());
            }
            if let Some(BranchTarget::Extension(e)) = c.branches.get(branch).map(|b| &b.target) {
                busy.push(e.clone());
            }
            for e in &busy {
                *self.busy.entry(e.clone()).or_default() += 1;
            }
            c.busy_counted = busy;
            self.stats.calls_answered += 1;
            self.events.push_back(CoreEvent::CallAnswered { call });
            self.tx.send_response(now, &key, resp);
            let timer = self.calls.get_mut(&call).and_then(|c| c.step_timer.take());
            self.cancel_timer(timer);
            self.cancel_branches(now, call, Some(branch));
            return;
        }
        // A trunk asks us to authenticate: once, with its credentials.
        if matches!(code, 401 | 407) && matches!(b.target, BranchTarget::Trunk(_)) && !b.auth_tried
        {
            if self.answer_trunk_challenge(now, call, branch, &msg) {
                return;
            }
            let Some(b) = self
                .calls
                .get_mut(&call)
                .and_then(|c| c.branches.get_mut(branch))
            else {
                return;
            };
            b.state = BranchState::Failed;
            b.final_code = Some(code);
            b.invite = None;
            let id = b.call_id.clone();
            self.dialogs.remove(&id);
            self.branch_done(now, call, code);
            return;
        }
        // A final failure on this branch.
        b.state = if b.state == BranchState::Cancelled {
            BranchState::Cancelled
        } else {
            BranchState::Failed
        };
        b.final_code = Some(code);
        b.invite = None;
        let b_call_id = b.call_id.clone();
        self.dialogs.remove(&b_call_id);
        self.branch_done(now, call, code);
    }

    /// After a branch ended without answer: when none of the current step
    /// is left, the step failed and the plan says what comes next.
    fn branch_done(&mut self, now: Instant, call: CallId, _code: u16) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Ringing {
            return;
        }
        let step = c.step;
        let mut of_step = c.branches.iter().filter(|b| b.step == step);
        if of_step
            .clone()
            .any(|b| matches!(b.state, BranchState::Calling | BranchState::Ringing))
        {
            return;
        }
        let code = best_final(of_step.by_ref().filter_map(|b| b.final_code));
        debug!(call, step, code, "every branch of the step failed");
        self.step_failed(now, call, routing::Failure::from_status(code), code);
    }

    pub(crate) fn on_stray_response(&mut self, now: Instant, msg: &Message, from: Peer) {
        // A 2xx to an INVITE whose transaction is gone: if it is our
        // answered B-leg, re-send the ACK; else ACK and BYE it.
        let Ok(cseq) = msg.cseq() else { return };
        if cseq.method != Method::Invite || !msg.status().is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        if let Some(&(call, side)) = msg.call_id().ok().and_then(|id| self.dialogs.get(id)) {
            if let Some((ack, peer)) = self
                .calls
                .get(&call)
                .and_then(|c| c.last_ack[side_idx(side)].clone())
            {
                self.tx.send_raw(ack, peer);
                return;
            }
            if self
                .calls
                .get(&call)
                .is_some_and(|c| c.pending_ack.is_some())
            {
                return;
            }
        }
        self.ack_and_bye(now, msg, Some(from));
    }

    /// Like `ack_and_bye`, remembering the ACK for the 2xx retransmissions
    /// of client transaction `key`.
    fn ack_and_bye_tx(&mut self, now: Instant, key: &TxKey, msg: &Message, peer: Peer) {
        if let Some(ack) = self.ack_and_bye(now, msg, Some(peer)) {
            self.client_txs.insert(
                key.clone(),
                ClientTx::Acked {
                    ack: Box::new(ack),
                    peer,
                },
            );
        }
    }

    /// ACKs a 2xx that no call wants and sends BYE on its dialog; returns the ACK.
    fn ack_and_bye(&mut self, now: Instant, msg: &Message, peer: Option<Peer>) -> Option<Message> {
        let to = msg.to_hdr().ok()?;
        let peer = peer?;
        let cseq = msg.cseq().ok()?;
        let from = msg.header(&HeaderName::From).cloned()?;
        let to_raw = msg.header(&HeaderName::To).cloned()?;
        let call_id = msg.call_id().ok().cloned()?;
        let target = first_contact_uri(msg).unwrap_or(to.uri);
        let mut route_set: Vec<Bytes> = msg
            .headers_named(&HeaderName::RecordRoute)
            .cloned()
            .collect();
        route_set.reverse();
        let leg = Leg {
            call_id,
            local_hdr: from,
            remote_hdr: to_raw,
            remote_target: target,
            route_set,
            peer,
            local_cseq: cseq.seq,
            remote_cseq: 0,
        };
        let ack = in_dialog_request(&self.settings, &leg, Method::Ack, cseq.seq);
        self.tx.send_stateless(&ack, peer);
        let bye = in_dialog_request(&self.settings, &leg, Method::Bye, cseq.seq + 1);
        let k = self.tx.send_request(now, bye, peer);
        self.client_txs.insert(k, ClientTx::Fire);
        debug!("late 2xx acknowledged and hung up");
        Some(ack)
    }

    pub(crate) fn on_client_timeout(&mut self, now: Instant, key: TxKey) {
        match self.client_txs.remove(&key) {
            Some(ClientTx::BInvite { call, branch }) => {
                if let Some(b) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.branches.get_mut(branch))
                {
                    if matches!(
                        b.state,
                        BranchState::Calling | BranchState::Ringing | BranchState::Cancelled
                    ) {
                        b.state = BranchState::Failed;
                        b.final_code = Some(408);
                        b.invite = None;
                        let id = b.call_id.clone();
                        self.dialogs.remove(&id);
                    }
                }
                self.branch_done(now, call, 408);
            }
            Some(ClientTx::Relayed {
                call,
                origin,
                origin_msg,
                ..
            }) => {
                let resp = self.response(&origin_msg, 408);
                self.tx.send_response(now, &origin, resp);
                // A dialog whose peer stopped answering is over (RFC 3261 §12.2.1.2).
                self.end_call_both(now, call, "in-dialog request timed out");
            }
            Some(ClientTx::Fire | ClientTx::Orphan { .. } | ClientTx::Acked { .. }) | None => {}
        }
    }

    pub(crate) fn on_ack_timeout(&mut self, now: Instant, key: TxKey) {
        if let Some(call) = self.a_invites.remove(&key) {
            if self
                .calls
                .get(&call)
                .is_some_and(|c| c.pending_ack.is_some())
            {
                warn!(
                    call,
                    "caller never acknowledged the answer, ending the call"
                );
                self.end_call_both(now, call, "no ACK");
            }
        }
    }

    /// A plan step rang for its time without an answer.
    pub(crate) fn step_timeout(&mut self, now: Instant, call: CallId, step: usize) {
        let current = self
            .calls
            .get(&call)
            .is_some_and(|c| c.state == CallState::Ringing && c.step == step);
        if current {
            info!(call, step, "no answer within the ring time");
            self.step_failed(now, call, routing::Failure::NoAnswer, 480);
        }
    }

    /// Ends a call on both legs from our side (dead media, shutdown, errors).
    pub(crate) fn end_call_both(&mut self, now: Instant, call: CallId, reason: &str) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match c.state {
            CallState::Ringing => {
                self.fail_a(now, call, if reason == "shutdown" { 503 } else { 500 });
                self.cancel_branches(now, call, None);
            }
            CallState::Answered => {
                self.send_bye(now, call, Side::A);
                self.send_bye(now, call, Side::B);
            }
        }
        self.finish(now, call, reason);
    }

    fn send_bye(&mut self, now: Instant, call: CallId, side: Side) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(leg) = c.leg_mut(side) else { return };
        leg.local_cseq += 1;
        let bye = in_dialog_request(&self.settings, leg, Method::Bye, leg.local_cseq);
        let peer = leg.peer;
        let k = self.tx.send_request(now, bye, peer);
        self.client_txs.insert(k, ClientTx::Fire);
    }

    /// The one place a call ends: media released, dialogs and timers forgotten.
    pub(crate) fn finish(&mut self, now: Instant, call: CallId, reason: &str) {
        let Some(mut c) = self.calls.remove(&call) else {
            return;
        };
        self.admission.release(call);
        if let Some(m) = c.media.take() {
            self.media_sessions.remove(&m.id());
            m.release();
        }
        self.dialogs.remove(&c.a.call_id);
        for b in &c.branches {
            self.dialogs.remove(&b.call_id);
        }
        self.a_invites.remove(&c.a_invite_key);
        // B-leg INVITEs still in flight now only need their final answer absorbed.
        for b in &c.branches {
            if let Some(kind) = self.client_txs.get_mut(&b.key) {
                // A CANCEL still waiting for a provisional goes out when it comes (§9.1).
                let cancel = b
                    .invite
                    .as_deref()
                    .filter(|_| b.cancel_pending)
                    .map(|invite| Box::new(cancel_for(invite)));
                *kind = ClientTx::Orphan {
                    peer: b.peer,
                    cancel,
                };
            }
        }
        self.cancel_timer(c.step_timer.take());
        for ext in &c.busy_counted {
            if let Some(n) = self.busy.get_mut(ext) {
                *n = n.saturating_sub(1);
            }
        }
        let trunks = c
            .branches
            .iter()
            .filter_map(|b| match &b.target {
                BranchTarget::Trunk(t) => Some(t.clone()),
                BranchTarget::Extension(_) => None,
            })
            .chain(match &c.caller {
                Caller::Trunk { name, .. } => Some(name.clone()),
                Caller::Extension(_) => None,
            });
        for t in trunks {
            if let Some(n) = self.trunk_calls.get_mut(&t) {
                *n = n.saturating_sub(1);
            }
        }
        let secs = now.saturating_duration_since(c.started).as_secs();
        info!(call, caller = c.caller.number(), callee = %c.callee, reason, secs, "call ended");
        self.events.push_back(CoreEvent::CallEnded {
            call,
            reason: reason.to_string(),
        });
    }

    /// BYE, re-INVITE, UPDATE, INFO... inside a dialog.
    pub(crate) fn on_in_dialog(
        &mut self,
        now: Instant,
        key: TxKey,
        msg: Message,
        _from: Peer,
        method: Method,
    ) {
        let found = msg
            .call_id()
            .ok()
            .and_then(|id| self.dialogs.get(id))
            .copied();
        let Some((call, side)) = found else {
            let resp = self.response(&msg, 481);
            self.tx.send_response(now, &key, resp);
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            let resp = self.response(&msg, 481);
            self.tx.send_response(now, &key, resp);
            return;
        };
        // A dialog is the Call-ID and both tags (RFC 3261 §12.2.2).
        if !c.leg(side).is_some_and(|l| l.matches(&msg)) {
            let resp = self.response(&msg, 481);
            self.tx.send_response(now, &key, resp);
            return;
        }
        // RFC 3261 §12.2.2: requests out of CSeq order are refused.
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(leg) = c.leg_mut(side) {
            if cseq != 0 && leg.remote_cseq != 0 && cseq < leg.remote_cseq {
                let resp = Message::response_to(&msg, 500, None);
                self.tx.send_response(now, &key, resp);
                return;
            }
            leg.remote_cseq = cseq;
        }
        match method {
            Method::Bye => {
                let resp = Message::response_to(&msg, 200, None);
                self.tx.send_response(now, &key, resp);
                info!(call, ?side, "hang-up");
                if c.state == CallState::Answered {
                    self.send_bye(now, call, side.other());
                } else if side == Side::A {
                    self.fail_a(now, call, 487);
                    self.cancel_branches(now, call, None);
                }
                let who = if side == Side::A {
                    "caller hung up"
                } else {
                    "callee hung up"
                };
                self.finish(now, call, who);
            }
            Method::Options => {
                let mut resp = Message::response_to(&msg, 200, None);
                resp.push(HeaderName::Allow, ALLOW);
                resp.push(HeaderName::Accept, crate::core::ACCEPT);
                self.tx.send_response(now, &key, resp);
            }
            Method::Invite | Method::Update | Method::Info | Method::Notify
                if c.state == CallState::Answered =>
            {
                self.relay_in_dialog(now, call, side, key, msg, method);
            }
            _ => {
                let mut resp = Message::response_to(
                    &msg,
                    if c.state == CallState::Answered {
                        501
                    } else {
                        491
                    },
                    None,
                );
                resp.push(HeaderName::Allow, ALLOW);
                self.tx.send_response(now, &key, resp);
            }
        }
    }

    /// Relays an in-dialog request to the other leg, SDP rewritten.
    fn relay_in_dialog(
        &mut self,
        now: Instant,
        call: CallId,
        side: Side,
        key: TxKey,
        msg: Message,
        method: Method,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let to_side = side.other();
        let mut body = None;
        if !msg.body.is_empty() {
            if matches!(method, Method::Invite | Method::Update) && is_sdp(&msg) {
                let parsed = sdp_glue::parse(&msg.body);
                if let Ok(sdp) = &parsed {
                    // A re-offer that needs more (codec change, a stream
                    // added) is admitted again; refused, the call goes on as it was.
                    let kbps = self
                        .settings
                        .admission
                        .estimator
                        .reservation_kbps(&sdp_glue::media_lines(sdp));
                    if kbps > c.kbps {
                        let legs = [
                            admission::Leg::symmetric(c.sites[0], kbps),
                            admission::Leg::symmetric(c.sites[1], kbps),
                        ];
                        match self.admission.adjust(call, &legs) {
                            Ok(_) => {
                                c.kbps = kbps;
                                if let Some(m) = &c.media {
                                    m.set_reservation(kbps, kbps);
                                }
                            }
                            Err(refusal) => {
                                let text = refusal.warning_text();
                                warn!(call, kbps, "re-offer refused by admission: {text}");
                                self.stats.admission_refusals += 1;
                                let mut resp = Message::response_to(&msg, 488, None);
                                resp.push(
                                    HeaderName::Warning,
                                    warning_370(&self.settings.domain, &text),
                                );
                                self.tx.send_response(now, &key, resp);
                                return;
                            }
                        }
                    }
                }
                match (parsed, c.media.as_mut()) {
                    (Ok(sdp), Some(m)) => {
                        // A new offer re-arms latching: the phone may have moved.
                        body = Some((
                            Bytes::from_static(b"application/sdp"),
                            sdp_glue::relay_sdp(m, side, &sdp),
                        ));
                    }
                    (Err(e), _) => {
                        let mut resp = Message::response_to(&msg, 400, None);
                        if let sip::StartLine::Response(r) = &mut resp.start {
                            r.reason = Bytes::from(format!("Bad SDP: {e}"));
                        }
                        self.tx.send_response(now, &key, resp);
                        return;
                    }
                    _ => {}
                }
            } else {
                let ct = msg
                    .header(&HeaderName::ContentType)
                    .cloned()
                    .unwrap_or_else(|| Bytes::from_static(b"application/octet-stream"));
                body = Some((ct, msg.body.clone()));
            }
        }
        let callee = c.callee.clone();
        let caller = c.caller.number().to_string();
        let Some(leg) = c.leg_mut(to_side) else {
            return;
        };
        leg.local_cseq += 1;
        let mut req = in_dialog_request(&self.settings, leg, method.clone(), leg.local_cseq);
        if matches!(method, Method::Invite | Method::Update) {
            let user = if to_side == Side::B { &caller } else { &callee };
            let contact = format!(
                "<sip:{}@{};transport={}>",
                user,
                self.settings.local_addr(leg.peer.transport),
                leg.peer.transport
            );
            req.push(HeaderName::Contact, contact);
            req.push(HeaderName::Allow, ALLOW);
        }
        for name in ["Info-Package", "Event", "Subscription-State"] {
            if let Some(v) = msg.header_str(name) {
                req.push(
                    HeaderName::Other(Bytes::copy_from_slice(name.as_bytes())),
                    v.clone(),
                );
            }
        }
        if let Some((ct, b)) = body {
            let ct = String::from_utf8_lossy(&ct).into_owned();
            req.set_body(&ct, b);
        }
        let peer = fit_transport(&mut req, leg.peer);
        let k = self.tx.send_request(now, req, peer);
        self.client_txs.insert(
            k,
            ClientTx::Relayed {
                call,
                origin: key,
                origin_msg: Box::new(msg),
                to_side,
            },
        );
    }

    fn on_relayed_response(&mut self, now: Instant, key: &TxKey, msg: Message) {
        let Some(ClientTx::Relayed {
            call,
            origin,
            origin_msg,
            to_side,
        }) = self.client_txs.get(key)
        else {
            return;
        };
        let (call, origin, to_side) = (*call, origin.clone(), *to_side);
        let Some(code) = msg.status() else { return };
        if code == 100 {
            return;
        }
        let is_invite = origin_msg.method() == Some(&Method::Invite);
        let mut resp = Message::response_to(origin_msg, code, None);
        if let (sip::StartLine::Response(r), sip::StartLine::Response(orig)) =
            (&mut resp.start, &msg.start)
        {
            r.reason = orig.reason.clone();
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let from_side = to_side.other();
        if (200..300).contains(&code) {
            let user = if from_side == Side::A {
                c.callee.clone()
            } else {
                c.caller.number().to_string()
            };
            let peer = c.leg(from_side).map(|l| l.peer).unwrap_or(c.a.peer);
            resp.push(
                HeaderName::Contact,
                format!(
                    "<sip:{}@{};transport={}>",
                    user,
                    self.settings.local_addr(peer.transport),
                    peer.transport
                ),
            );
        }
        if !msg.body.is_empty() && is_sdp(&msg) {
            if let (Ok(sdp), Some(m)) = (sdp_glue::parse(&msg.body), c.media.as_mut()) {
                resp.set_body("application/sdp", sdp_glue::relay_sdp(m, to_side, &sdp));
            }
        } else if !msg.body.is_empty() {
            let ct = msg
                .header(&HeaderName::ContentType)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            resp.set_body(&ct, msg.body.clone());
        }
        if is_invite && (200..300).contains(&code) {
            let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
            if let Some(leg) = c.leg_mut(to_side) {
                if let Some(t) = first_contact_uri(&msg) {
                    leg.remote_target = t;
                }
            }
            c.pending_ack = Some(PendingAck {
                side: to_side,
                cseq,
            });
        }
        self.tx.send_response(now, &origin, resp);
    }

    /// Our Contact towards a phone: the extension it talks to, at our address.
    fn our_contact(&self, user: &str, peer: Peer) -> String {
        format!(
            "<sip:{}@{};transport={}>",
            user,
            self.settings.local_addr(peer.transport),
            peer.transport
        )
    }

    /// The ports and counters of a call's media, for status and tests.
    pub fn call_media_stats(&self) -> Vec<(CallId, media::SessionStats)> {
        self.calls
            .values()
            .filter_map(|c| c.media.as_ref().map(|m| (c.id, m.stats())))
            .collect()
    }
}

/// The best final response to give the caller when every branch failed
/// (RFC 3261 §16.7 step 6, simplified: 6xx first, then busy, then the lowest class).
fn best_final(codes: impl Iterator<Item = u16>) -> u16 {
    let codes: Vec<u16> = codes.collect();
    if let Some(c) = codes.iter().find(|c| **c >= 600) {
        return *c;
    }
    if codes.contains(&486) {
        return 486;
    }
    let c = codes
        .iter()
        .copied()
        .filter(|c| *c != 487 && *c != 408)
        .min()
        .or_else(|| codes.iter().copied().min())
        .unwrap_or(480);
    // A timeout on every branch is "nobody answered", not a server fault.
    if c == 408 {
        480
    } else {
        c
    }
}

pub(crate) fn via_value(t: sip::TransportKind, local: std::net::SocketAddr) -> String {
    format!(
        "SIP/2.0/{} {};branch={};rport",
        t.via_token(),
        local,
        sip::transaction::new_branch()
    )
}

/// A request within a dialog (RFC 3261 §12.2.1.1).
pub(crate) fn in_dialog_request(
    settings: &crate::settings::Settings,
    leg: &Leg,
    method: Method,
    cseq: u32,
) -> Message {
    let local = settings.local_addr(leg.peer.transport);
    let mut req = Message::request(method.clone(), leg.remote_target.clone());
    req.push(HeaderName::Via, via_value(leg.peer.transport, local));
    req.push(HeaderName::MaxForwards, "70");
    req.push(HeaderName::From, leg.local_hdr.clone());
    req.push(HeaderName::To, leg.remote_hdr.clone());
    req.push(HeaderName::CallId, leg.call_id.clone());
    req.push(HeaderName::CSeq, format!("{cseq} {method}"));
    for r in &leg.route_set {
        req.push(HeaderName::Route, r.clone());
    }
    req.push(HeaderName::UserAgent, settings.user_agent.clone());
    req
}

/// The CANCEL of an INVITE we sent (RFC 3261 §9.1).
fn cancel_for(invite: &Message) -> Message {
    let uri = invite
        .request_uri()
        .cloned()
        .unwrap_or_else(|| Uri::sip(None, "invalid", None));
    let mut c = Message::request(Method::Cancel, uri);
    if let Some(v) = invite.header(&HeaderName::Via) {
        c.push(HeaderName::Via, v.clone());
    }
    c.push(HeaderName::MaxForwards, "70");
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        if let Some(v) = invite.header(&name) {
            c.push(name, v.clone());
        }
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    c.push(HeaderName::CSeq, format!("{seq} CANCEL"));
    for r in invite.headers_named(&HeaderName::Route) {
        c.push(HeaderName::Route, r.clone());
    }
    c
}

/// RFC 3261 §18.1.1: a request too big for a UDP datagram on a 1500-octet
/// path goes over TCP to the same address, its Via saying so.
pub(crate) fn fit_transport(msg: &mut Message, peer: Peer) -> Peer {
    if peer.transport != sip::TransportKind::Udp {
        return peer;
    }
    let len = msg.wire_len();
    let t = sip::transport::transport_for_request(len, peer.transport);
    if t == peer.transport {
        return peer;
    }
    if let Some(h) = msg.headers.iter_mut().find(|h| h.name == HeaderName::Via) {
        let v = String::from_utf8_lossy(&h.value).replacen("SIP/2.0/UDP", "SIP/2.0/TCP", 1);
        h.value = Bytes::from(v);
    }
    Peer {
        transport: t,
        addr: peer.addr,
    }
}

/// Where to send requests for a phone: to its Contact when the phone is
/// where it says it is (same IP as the packets' source), else to the source
/// address (it is behind NAT and its Contact is unreachable). Connection-
/// oriented phones are reached on the flow they opened.
pub(crate) fn contact_target(contact: &Uri, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    let Ok(ip) = contact
        .host_str()
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    else {
        return source;
    };
    if ip != source.addr.ip() {
        return source;
    }
    Peer {
        transport: source.transport,
        addr: std::net::SocketAddr::new(ip, contact.port.unwrap_or(5060)),
    }
}

/// `Warning: 370 host "text"` (RFC 3261 §20.43: insufficient bandwidth).
pub(crate) fn warning_370(host: &str, text: &str) -> String {
    format!("370 {} \"{}\"", host, text.replace(['"', '\\'], "'"))
}

fn with_tag(hdr: Bytes, tag: &str) -> Bytes {
    let mut v = BytesMut::with_capacity(hdr.len() + tag.len() + 5);
    v.extend_from_slice(&hdr);
    v.extend_from_slice(b";tag=");
    v.extend_from_slice(tag.as_bytes());
    v.freeze()
}

/// A copy of `uri` that shares no buffer with the message it came from.
fn detached_uri(uri: &Uri) -> Uri {
    Uri::parse(&uri.to_bytes()).unwrap_or_else(|_| uri.clone())
}

fn first_contact_uri(msg: &Message) -> Option<Uri> {
    msg.contacts()
        .ok()
        .flatten()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.uri)
}

pub(crate) fn is_sdp(msg: &Message) -> bool {
    msg.header(&HeaderName::ContentType)
        .map(|ct| {
            let ct = ct.split(|&c| c == b';').next().unwrap_or(ct);
            String::from_utf8_lossy(ct)
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        })
        .unwrap_or(true)
}
