//! The dial plan evaluator: (request, state) -> decision.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Destination, Dialplan, Extension, Presentation, RingGroup, Strategy, Trunk};
use crate::plan::{Decision, Next, OnFailure, Plan, Reject, RoundRobinMark, Step, Target};
use crate::state::DialState;
use crate::OfficeHours;

/// Destinations followed one inside another before routing gives up.
pub const MAX_FORWARD_DEPTH: usize = 10;
/// Steps one plan may hold; past it further branches reject.
pub const MAX_STEPS: usize = 64;

/// Who places the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// One of our extensions (authenticated by call control).
    Extension(String),
    /// A carrier, on one of our trunks; `dialled` is then the DID.
    Trunk { name: String, caller_number: String },
}

/// One call to route.
#[derive(Clone, Copy)]
pub struct RouteRequest<'a> {
    pub from: &'a Caller,
    /// The number dialled (user part of the Request-URI), or the DID.
    pub dialled: &'a str,
    pub now: DateTime<Utc>,
    pub state: &'a dyn DialState,
}

/// A [`Dialplan`] indexed for routing. Build one per loaded config.
#[derive(Clone, Debug)]
pub struct Router {
    dialplan: Dialplan,
    extensions: HashMap<String, usize>,
    groups: HashMap<String, usize>,
    trunks: HashMap<String, usize>,
    hours: HashMap<String, usize>,
}

impl Router {
    /// Indexes the dial plan. Run [`crate::validate`] first: routing copes
    /// with dangling references (they reject or are skipped) but the
    /// operator should hear of them at load time. On duplicates the first
    /// definition wins.
    pub fn new(dialplan: Dialplan) -> Self {
        fn index<T>(items: &[T], key: impl Fn(&T) -> &str) -> HashMap<String, usize> {
            let mut map = HashMap::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                map.entry(key(item).to_owned()).or_insert(i);
            }
            map
        }
        Self {
            extensions: index(&dialplan.extensions, |e| &e.number),
            groups: index(&dialplan.ring_groups, |g| &g.number),
            trunks: index(&dialplan.trunks, |t| &t.name),
            hours: index(&dialplan.office_hours, |h| &h.name),
            dialplan,
        }
    }

    pub fn dialplan(&self) -> &Dialplan {
        &self.dialplan
    }

    pub fn extension(&self, number: &str) -> Option<&Extension> {
        self.extensions
            .get(number)
            .and_then(|&i| self.dialplan.extensions.get(i))
    }

    pub fn ring_group(&self, number: &str) -> Option<&RingGroup> {
        self.groups
            .get(number)
            .and_then(|&i| self.dialplan.ring_groups.get(i))
    }

    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks
            .get(name)
            .and_then(|&i| self.dialplan.trunks.get(i))
    }

    pub fn office_hours(&self, name: &str) -> Option<&OfficeHours> {
        self.hours
            .get(name)
            .and_then(|&i| self.dialplan.office_hours.get(i))
    }

    /// Whether the named office hours are open at `now`; an unknown or
    /// absent profile counts as open.
    pub fn is_open(&self, office_hours: Option<&str>, now: DateTime<Utc>) -> bool {
        office_hours
            .and_then(|name| self.office_hours(name))
            .is_none_or(|h| h.is_open(now))
    }

    /// Decides where the call goes.
    pub fn route(&self, req: &RouteRequest<'_>) -> Decision {
        let mut b = Builder {
            router: self,
            req,
            steps: Vec::new(),
            done: HashMap::new(),
            active: Vec::new(),
        };
        let dialled = req.dialled.trim();
        let entry = match req.from {
            Caller::Trunk { name, .. } => b.inbound(name, dialled),
            Caller::Extension(caller) => b.internal(caller, dialled),
        };
        b.finish(entry)
    }
}

#[derive(Clone, Copy)]
enum Auth<'r> {
    /// A destination the administrator configured (inbound rule, ring
    /// group): any outbound rule that matches the number may carry it.
    Trusted,
    /// Dialled by, or forwarded on behalf of, this extension: its
    /// outbound permissions apply.
    Extension(&'r Extension),
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Node {
    Extension(String),
    Group(String),
}

struct Builder<'r, 'q> {
    router: &'r Router,
    req: &'q RouteRequest<'q>,
    steps: Vec<Step>,
    /// Destinations already turned into steps: reached again, they reuse them.
    done: HashMap<Node, Next>,
    /// Destinations being resolved: reaching one again is a forwarding loop.
    active: Vec<Node>,
}

fn reject(code: u16, reason: &str, because: String) -> Next {
    Next::Reject(Reject {
        code,
        reason: reason.to_owned(),
        because,
    })
}

fn seconds(s: u32) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(u64::from(s)))
}

impl<'r> Builder<'r, '_> {
    fn finish(self, entry: Next) -> Decision {
        match entry {
            Next::Step(0) => {
                let because = self
                    .steps
                    .first()
                    .map(|s| s.because.clone())
                    .unwrap_or_default();
                Decision::Plan(Plan {
                    steps: self.steps,
                    because,
                })
            }
            Next::Reject(r) => Decision::Reject(r),
            // The entry is always the first step pushed; anything else is a
            // defect here, answered without ringing anyone.
            other => Decision::Reject(Reject {
                code: 503,
                reason: "Service Unavailable".into(),
                because: format!("routing produced no usable entry ({other:?})"),
            }),
        }
    }

    fn push(&mut self, targets: Vec<Target>, timeout: Option<Duration>, because: String) -> usize {
        self.steps.push(Step {
            targets,
            timeout,
            on: OnFailure::all(Next::Relay),
            remember: None,
            because,
        });
        self.steps.len() - 1
    }

    fn internal(&mut self, caller: &str, dialled: &str) -> Next {
        let Some(ext) = self.router.extension(caller) else {
            return reject(
                403,
                "Forbidden",
                format!("caller {caller} is not a known extension"),
            );
        };
        let dialable = !dialled.is_empty()
            && dialled.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_digit() || b == b'*' || b == b'#' || (i == 0 && b == b'+')
            });
        if !dialable {
            return reject(
                404,
                "Not Found",
                format!("{dialled:?} dialled by {caller} is not a dialable number"),
            );
        }
        let auth = Auth::Extension(ext);
        if self.is_emergency(dialled) {
            return self.emergency(dialled, String::new(), Some(ext));
        }
        if self.router.extension(dialled).is_some() {
            let d = Destination::Extension(dialled.to_owned());
            return self.resolve(&d, String::new(), auth, 480);
        }
        if self.router.ring_group(dialled).is_some() {
            let d = Destination::RingGroup(dialled.to_owned());
            return self.resolve(&d, String::new(), auth, 480);
        }
        self.external(dialled, String::new(), auth)
    }

    fn inbound(&mut self, trunk: &str, did: &str) -> Next {
        let rules = &self.router.dialplan.inbound_rules;
        let best = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.did.matches(did) && r.trunk.as_deref().is_none_or(|t| t == trunk))
            // Exact beats prefix, longer prefix beats shorter, a rule for this
            // trunk beats a generic one; on a tie the earlier rule wins.
            .max_by_key(|(i, r)| {
                let (exact, len) = match &r.did {
                    crate::DidPattern::Exact(n) => (true, n.len()),
                    crate::DidPattern::Prefix(p) => (false, p.len()),
                };
                (exact, len, r.trunk.is_some(), std::cmp::Reverse(*i))
            });
        let Some((_, rule)) = best else {
            return reject(
                404,
                "Not Found",
                format!("no inbound_rule for DID {did} on trunk '{trunk}'"),
            );
        };
        let open = self
            .router
            .is_open(rule.office_hours.as_deref(), self.req.now);
        let mut desc = format!("inbound_rule did={}", rule.did);
        if let Some(t) = &rule.trunk {
            desc.push_str(&format!(" trunk='{t}'"));
        }
        if rule.office_hours.is_some() {
            desc.push_str(if open {
                " (in hours)"
            } else {
                " (out of hours)"
            });
        }
        let dest = match (&rule.out_of_hours, open) {
            (Some(ooh), false) => ooh,
            _ => &rule.to,
        };
        self.resolve(dest, format!("{desc} -> {dest}"), Auth::Trusted, 480)
    }

    /// Turns a destination into the next move, following forwards.
    /// `hangup` is the status a [`Destination::Hangup`] ends the call with.
    fn resolve(&mut self, dest: &Destination, why: String, auth: Auth<'r>, hangup: u16) -> Next {
        let node = match dest {
            Destination::Hangup => {
                let reason = if hangup == 486 {
                    "Busy Here"
                } else {
                    "Temporarily Unavailable"
                };
                return reject(hangup, reason, why);
            }
            Destination::External(number) => return self.external(number, why, auth),
            Destination::Extension(n) => Node::Extension(n.clone()),
            Destination::RingGroup(n) => Node::Group(n.clone()),
        };
        if let Some(next) = self.done.get(&node) {
            return next.clone();
        }
        if self.active.contains(&node) {
            return reject(
                480,
                "Temporarily Unavailable",
                format!("{why}: forwarding loop, {dest} already in this plan"),
            );
        }
        if self.active.len() >= MAX_FORWARD_DEPTH || self.steps.len() >= MAX_STEPS {
            return reject(
                480,
                "Temporarily Unavailable",
                format!("{why}: forwarding too deep"),
            );
        }
        self.active.push(node.clone());
        let next = match &node {
            Node::Extension(n) => self.extension(n, why),
            Node::Group(n) => self.group(n, why),
        };
        self.active.pop();
        self.done.insert(node, next.clone());
        next
    }

    fn extension(&mut self, number: &str, why: String) -> Next {
        let Some(ext) = self.router.extension(number) else {
            return reject(404, "Not Found", format!("{why}: no extension {number}"));
        };
        let open = self
            .router
            .is_open(ext.office_hours.as_deref(), self.req.now);
        let fw = match (&ext.out_of_hours_forwarding, open) {
            (Some(ooh), false) => ooh,
            _ => &ext.forwarding,
        };
        let mut label = format!("extension {number}");
        if ext.office_hours.is_some() {
            label.push_str(if open {
                " (in hours)"
            } else {
                " (out of hours)"
            });
        }
        let auth = Auth::Extension(ext);
        let forward = |b: &mut Self, kind: &str, dest: &Option<Destination>, code: u16| match dest {
            Some(d) => b.resolve(d, format!("{label} forward {kind} -> {d}"), auth, code),
            None => {
                let reason = match code {
                    486 => "Busy Here",
                    _ => "Temporarily Unavailable",
                };
                reject(code, reason, format!("{label} {kind}, no forward"))
            }
        };
        if let Some(d) = &fw.unconditional {
            let why = format!("{label} forward unconditional -> {d}");
            return self.resolve(d, why, auth, 480);
        }
        let state = self.req.state;
        if ext.dnd || state.is_dnd(number) {
            return forward(self, "busy (dnd)", &fw.busy, 486);
        }
        if !state.is_registered(number) {
            return forward(self, "not_registered", &fw.not_registered, 480);
        }
        if ext.max_simultaneous_calls > 0
            && state.active_calls(number) >= ext.max_simultaneous_calls
        {
            return forward(self, "busy", &fw.busy, 486);
        }
        let why = if why.is_empty() { label.clone() } else { why };
        // Without a no-answer forward the PBX's ring timeout applies.
        let timeout = fw
            .no_answer
            .as_ref()
            .and_then(|_| seconds(fw.no_answer_seconds));
        let idx = self.push(vec![Target::Extension(number.to_owned())], timeout, why);
        let no_answer = forward(self, "no_answer", &fw.no_answer, 480);
        let busy = forward(self, "busy", &fw.busy, 486);
        let unavailable = forward(self, "not_registered", &fw.not_registered, 480);
        self.steps[idx].on = OnFailure {
            no_answer,
            busy,
            trunk_failure: unavailable.clone(),
            unavailable,
        };
        Next::Step(idx)
    }

    fn member_available(&self, member: &str) -> bool {
        let state = self.req.state;
        self.router.extension(member).is_some_and(|e| {
            !e.dnd
                && !state.is_dnd(member)
                && state.is_registered(member)
                && (e.max_simultaneous_calls == 0
                    || state.active_calls(member) < e.max_simultaneous_calls)
        })
    }

    fn group(&mut self, number: &str, why: String) -> Next {
        let Some(group) = self.router.ring_group(number) else {
            return reject(404, "Not Found", format!("{why}: no ring group {number}"));
        };
        let strategy = match group.strategy {
            Strategy::RingAll => "ring_all",
            Strategy::Hunt => "hunt",
            Strategy::RoundRobin => "round_robin",
        };
        let label = format!("ring group {number} '{}' {strategy}", group.name);
        let prefix = if why.is_empty() {
            label.clone()
        } else {
            format!("{why}: {label}")
        };
        let mut order: Vec<&str> = group.members.iter().map(String::as_str).collect();
        if group.strategy == Strategy::RoundRobin {
            if let Some(last) = self.req.state.last_member(number) {
                if let Some(pos) = order.iter().position(|m| *m == last) {
                    order.rotate_left(pos + 1);
                }
            }
        }
        let mut seen = Vec::with_capacity(order.len());
        let available: Vec<&str> = order
            .into_iter()
            .filter(|m| {
                let first = !seen.contains(m);
                seen.push(*m);
                first && self.member_available(m)
            })
            .collect();
        let dest = &group.no_answer;
        if available.is_empty() {
            let why = format!("{prefix}: no member available -> {dest}");
            return self.resolve(dest, why, Auth::Trusted, 480);
        }
        let timeout = seconds(group.ring_seconds);
        let first = self.steps.len();
        match group.strategy {
            Strategy::RingAll => {
                let targets = available
                    .iter()
                    .map(|m| Target::Extension((*m).to_owned()))
                    .collect();
                self.push(targets, timeout, prefix);
            }
            Strategy::Hunt | Strategy::RoundRobin => {
                let n = available.len();
                for (i, m) in available.iter().enumerate() {
                    let idx = self.push(
                        vec![Target::Extension((*m).to_owned())],
                        timeout,
                        format!("{prefix} member {m} ({} of {n})", i + 1),
                    );
                    if group.strategy == Strategy::RoundRobin {
                        self.steps[idx].remember = Some(RoundRobinMark {
                            group: number.to_owned(),
                            member: (*m).to_owned(),
                        });
                    }
                }
            }
        }
        let last = self.steps.len() - 1;
        let after = self.resolve(
            dest,
            format!("{label} no answer -> {dest}"),
            Auth::Trusted,
            480,
        );
        for i in first..last {
            self.steps[i].on = OnFailure::all(Next::Step(i + 1));
        }
        self.steps[last].on = OnFailure::all(after);
        Next::Step(first)
    }

    fn is_emergency(&self, number: &str) -> bool {
        self.router
            .dialplan
            .emergency_numbers
            .iter()
            .any(|e| e == number)
    }

    fn is_international(&self, number: &str) -> bool {
        let dp = &self.router.dialplan;
        let starts = |prefixes: &[String]| {
            prefixes
                .iter()
                .any(|p| !p.is_empty() && number.starts_with(p.as_str()))
        };
        starts(&dp.international_prefixes) && !starts(&dp.national_prefixes)
    }

    fn caller_id(trunk: &Trunk, on_behalf: Option<&Extension>) -> (Option<String>, bool) {
        match trunk.presentation {
            Presentation::Extension => {
                let own = on_behalf.and_then(|e| e.outbound_caller_id.clone());
                (own.or_else(|| Some(trunk.main_number.clone())), false)
            }
            Presentation::MainNumber => (Some(trunk.main_number.clone()), false),
            Presentation::Anonymous => (Some(trunk.main_number.clone()), true),
        }
    }

    /// Emergency calls leave on the trunks of the first outbound rule that
    /// has one, as dialled (a rewrite meant for other numbers could mangle
    /// them), never anonymous, and whatever the trunks' call counts: the
    /// carrier, not our limit, decides.
    fn emergency(&mut self, number: &str, why: String, on_behalf: Option<&Extension>) -> Next {
        let router = self.router;
        let found = router
            .dialplan
            .outbound_rules
            .iter()
            .enumerate()
            .find_map(|(i, r)| {
                let trunks: Vec<&Trunk> = r.trunks.iter().filter_map(|t| router.trunk(t)).collect();
                (!trunks.is_empty()).then_some((i, r, trunks))
            });
        let mut desc = format!("emergency {number}");
        if !why.is_empty() {
            desc = format!("{why}: {desc}");
        }
        let Some((i, rule, trunks)) = found else {
            return reject(
                503,
                "Service Unavailable",
                format!("{desc}: no outbound rule has a trunk"),
            );
        };
        let first = self.steps.len();
        let n = trunks.len();
        for (k, trunk) in trunks.iter().enumerate() {
            let (caller_id, _) = Self::caller_id(trunk, on_behalf);
            let caller_id = caller_id.or_else(|| Some(trunk.main_number.clone()));
            self.push(
                vec![Target::External {
                    trunk: trunk.name.clone(),
                    number: number.to_owned(),
                    caller_id,
                    privacy: false,
                }],
                None,
                format!(
                    "{desc} via outbound_rule #{} '{}' trunk '{}' ({} of {n})",
                    i + 1,
                    rule.name,
                    trunk.name,
                    k + 1
                ),
            );
        }
        self.chain_trunks(first, &desc);
        Next::Step(first)
    }

    /// Links trunk steps `first..` for fail-over: no answer or a trunk
    /// failure tries the next trunk; the callee's own answer ends the call.
    fn chain_trunks(&mut self, first: usize, desc: &str) {
        let last = self.steps.len() - 1;
        for i in first..=last {
            let next = if i < last {
                Next::Step(i + 1)
            } else {
                reject(
                    503,
                    "Service Unavailable",
                    format!("{desc}: all trunks failed"),
                )
            };
            self.steps[i].on = OnFailure {
                no_answer: next.clone(),
                busy: Next::Relay,
                unavailable: Next::Relay,
                trunk_failure: next,
            };
        }
    }

    fn external(&mut self, number: &str, why: String, auth: Auth<'r>) -> Next {
        let on_behalf = match auth {
            Auth::Extension(e) => Some(e),
            Auth::Trusted => None,
        };
        if self.is_emergency(number) {
            return self.emergency(number, why, on_behalf);
        }
        let who = on_behalf.map_or_else(String::new, |e| format!(" for {}", e.number));
        let desc_of = |what: String| {
            if why.is_empty() {
                what
            } else {
                format!("{why}: {what}")
            }
        };
        let router = self.router;
        let chosen = router
            .dialplan
            .outbound_rules
            .iter()
            .enumerate()
            .find(|(_, r)| {
                r.matches_number(number)
                    && on_behalf.is_none_or(|e| {
                        e.outbound_rules.allows(&r.name) && r.allows_caller(&e.number)
                    })
            });
        let Some((i, rule)) = chosen else {
            // No rule for the number at all: it does not exist for us (404).
            // A rule exists but not for this caller: forbidden (403).
            let any_rule = router
                .dialplan
                .outbound_rules
                .iter()
                .any(|r| r.matches_number(number));
            if !any_rule {
                return reject(
                    404,
                    "Not Found",
                    desc_of(format!("no outbound_rule matches {number}")),
                );
            }
            return reject(
                403,
                "Forbidden",
                desc_of(format!("no outbound_rule allows {number}{who}")),
            );
        };
        let desc = desc_of(format!("outbound_rule #{} '{}'", i + 1, rule.name));
        let rewritten = rule.rewrite(number);
        if let Some(ext) = on_behalf {
            // Checked on what was dialled, on what the rule keeps of it and
            // on what it sends, so neither a stripped escape digit ("900…")
            // nor a prepend ("0" + "049…") can hide an international number.
            if !ext.international
                && [number, rule.stripped(number), &rewritten]
                    .iter()
                    .any(|n| self.is_international(n))
            {
                return reject(
                    403,
                    "Forbidden",
                    format!(
                        "{desc}: {number} is international, not permitted for {}",
                        ext.number
                    ),
                );
            }
        }
        let state = self.req.state;
        let trunks: Vec<&Trunk> = rule
            .trunks
            .iter()
            .filter_map(|t| router.trunk(t))
            .filter(|t| t.max_calls == 0 || state.trunk_calls(&t.name) < t.max_calls)
            .collect();
        if trunks.is_empty() {
            return reject(
                503,
                "Service Unavailable",
                format!("{desc}: no trunk available"),
            );
        }
        let first = self.steps.len();
        let n = trunks.len();
        for (k, trunk) in trunks.iter().enumerate() {
            let (caller_id, privacy) = Self::caller_id(trunk, on_behalf);
            self.push(
                vec![Target::External {
                    trunk: trunk.name.clone(),
                    number: rewritten.clone(),
                    caller_id,
                    privacy,
                }],
                None,
                format!(
                    "{desc} -> {rewritten} trunk '{}' ({} of {n})",
                    trunk.name,
                    k + 1
                ),
            );
        }
        self.chain_trunks(first, &desc);
        Next::Step(first)
    }
}
