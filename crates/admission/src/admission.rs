//! The admission state: what each site's link has reserved, and the calls
//! holding those reservations.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::sites::{Direction, Limits, SiteId, Sites};

/// Most legs one call may reserve (caller, callee, a few more for
/// conferences); keeps the reservation record inline, without allocation.
pub const MAX_LEGS: usize = 8;

/// One place where a call's media crosses a site's link, with what it needs
/// there per direction (as seen from the site).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leg {
    pub site: SiteId,
    pub up_kbps: u32,
    pub down_kbps: u32,
}

impl Leg {
    /// The same rate each way, as a codec needs.
    pub fn symmetric(site: SiteId, kbps: u32) -> Leg {
        Leg {
            site,
            up_kbps: kbps,
            down_kbps: kbps,
        }
    }
}

/// A call's reservation, as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub call_id: u64,
    /// Sum over the legs.
    pub up_kbps: u64,
    pub down_kbps: u64,
}

/// Why a reservation (or an increase) was not granted. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The link lacks room in one direction.
    #[error("Insufficient bandwidth at site {site}: need {need_kbps} kbps {direction}, {free_kbps} free")]
    Bandwidth {
        site: Arc<str>,
        site_id: SiteId,
        direction: Direction,
        /// What this call needs on that link (both of its legs, if two).
        need_kbps: u64,
        free_kbps: u64,
    },
    /// The site already carries `max_calls` calls.
    #[error("Call limit reached at site {site}: {max_calls} calls in progress")]
    MaxCalls {
        site: Arc<str>,
        site_id: SiteId,
        max_calls: u32,
    },
    #[error("Admission error: unknown site #{}", site_id.0)]
    UnknownSite { site_id: SiteId },
    #[error("Admission error: call {call_id} already has a reservation")]
    DuplicateCall { call_id: u64 },
    #[error("Admission error: call {call_id} has no reservation")]
    UnknownCall { call_id: u64 },
    #[error("Admission error: {legs} legs, at most {MAX_LEGS}")]
    TooManyLegs { legs: usize },
}

impl Refusal {
    /// SIP warn-code for a refusal: 370 Insufficient Bandwidth (RFC 3261).
    pub const WARN_CODE: u16 = 370;

    /// The quoted text of a `Warning: 370 <host> "..."` header, e.g.
    /// `Insufficient bandwidth at site geneva-office: need 100 kbps up, 40 free`.
    /// Site names never contain `"` or `\` (refused by validation).
    pub fn warning_text(&self) -> String {
        self.to_string()
    }

    /// The refusing site, for a capacity refusal.
    pub fn site(&self) -> Option<SiteId> {
        match self {
            Refusal::Bandwidth { site_id, .. } | Refusal::MaxCalls { site_id, .. } => {
                Some(*site_id)
            }
            _ => None,
        }
    }

    /// Whether the link was full (as opposed to a misuse of the API).
    pub fn is_capacity(&self) -> bool {
        self.site().is_some()
    }
}

/// A site's state, for status pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteUsage {
    pub limits: Limits,
    pub up_kbps: u64,
    pub down_kbps: u64,
    /// Calls with at least one leg here.
    pub calls: u32,
    /// Reservations and increases refused here since start.
    pub refusals: u64,
    /// No longer in the configuration; kept until its calls end.
    pub retired: bool,
}

impl SiteUsage {
    pub fn free_up_kbps(&self) -> Option<u64> {
        free(self.limits.up_kbps, self.up_kbps)
    }

    pub fn free_down_kbps(&self) -> Option<u64> {
        free(self.limits.down_kbps, self.down_kbps)
    }
}

fn free(cap: Option<u32>, used: u64) -> Option<u64> {
    cap.map(|c| u64::from(c).saturating_sub(used))
}

#[derive(Debug, Clone)]
struct Link {
    name: Arc<str>,
    usage: SiteUsage,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    legs: [Leg; MAX_LEGS],
    len: u8,
}

impl Record {
    /// `legs.len() <= MAX_LEGS`, checked by the callers.
    fn new(legs: &[Leg]) -> Record {
        let mut record = Record {
            legs: [Leg::symmetric(SiteId(0), 0); MAX_LEGS],
            len: legs.len() as u8,
        };
        record.legs[..legs.len()].copy_from_slice(legs);
        record
    }

    fn legs(&self) -> &[Leg] {
        &self.legs[..usize::from(self.len)]
    }
}

/// Call ids are assigned by the engine, not chosen by peers, so a fast
/// multiplicative hash is enough.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Per-site reservations. Single-threaded by design (the engine owns it);
/// it is `Send + Sync`, so a `Mutex<Admission>` shares it if ever needed.
#[derive(Debug, Clone)]
pub struct Admission {
    links: Vec<Link>,
    calls: HashMap<u64, Record, BuildHasherDefault<IdHasher>>,
}

impl Admission {
    pub fn new(sites: &Sites) -> Admission {
        Admission::with_capacity(sites, 0)
    }

    /// Room for `calls` reservations before the call table grows.
    pub fn with_capacity(sites: &Sites, calls: usize) -> Admission {
        Admission {
            links: sites
                .iter()
                .map(|(_, s)| Link {
                    name: s.shared_name().clone(),
                    usage: SiteUsage {
                        limits: s.limits(),
                        up_kbps: 0,
                        down_kbps: 0,
                        calls: 0,
                        refusals: 0,
                        retired: false,
                    },
                })
                .collect(),
            calls: HashMap::with_capacity_and_hasher(calls, Default::default()),
        }
    }

    /// Reserves every leg of a call, all or nothing. Legs on the same site
    /// add up: a call between two phones of one site crosses its link twice.
    pub fn reserve(&mut self, call_id: u64, legs: &[Leg]) -> Result<Reservation, Refusal> {
        if legs.len() > MAX_LEGS {
            return Err(Refusal::TooManyLegs { legs: legs.len() });
        }
        if self.calls.contains_key(&call_id) {
            return Err(Refusal::DuplicateCall { call_id });
        }
        for leg in legs {
            match self.links.get(leg.site.index()) {
                Some(link) if !link.usage.retired => {}
                _ => return Err(Refusal::UnknownSite { site_id: leg.site }),
            }
        }
        for (i, leg) in legs.iter().enumerate() {
            if legs[..i].iter().any(|l| l.site == leg.site) {
                continue;
            }
            let (up, down) = sum(legs, leg.site);
            self.check(leg.site, up, down, true)?;
        }
        self.add_legs(legs);
        self.calls.insert(call_id, Record::new(legs));
        Ok(reservation(call_id, legs))
    }

    /// Replaces a call's legs (new rates after a re-INVITE, or a different
    /// callee site). Decreases always succeed; if anything increases and a
    /// link lacks room, nothing changes.
    pub fn adjust(&mut self, call_id: u64, legs: &[Leg]) -> Result<Reservation, Refusal> {
        if legs.len() > MAX_LEGS {
            return Err(Refusal::TooManyLegs { legs: legs.len() });
        }
        let Some(old) = self.calls.get(&call_id).copied() else {
            return Err(Refusal::UnknownCall { call_id });
        };
        let old_legs = old.legs();
        for leg in legs {
            let known = match self.links.get(leg.site.index()) {
                // A retired site keeps the calls it has, takes no new ones.
                Some(link) => !link.usage.retired || old_legs.iter().any(|l| l.site == leg.site),
                None => false,
            };
            if !known {
                return Err(Refusal::UnknownSite { site_id: leg.site });
            }
        }
        // Check every site whose demand grows, net of what the call frees.
        for (i, leg) in legs.iter().enumerate() {
            if legs[..i].iter().any(|l| l.site == leg.site) {
                continue;
            }
            let (new_up, new_down) = sum(legs, leg.site);
            let (old_up, old_down) = sum(old_legs, leg.site);
            let is_new = !old_legs.iter().any(|l| l.site == leg.site);
            self.check(
                leg.site,
                new_up.saturating_sub(old_up),
                new_down.saturating_sub(old_down),
                is_new,
            )?;
        }
        self.remove_legs(old_legs);
        self.add_legs(legs);
        self.calls.insert(call_id, Record::new(legs));
        Ok(reservation(call_id, legs))
    }

    /// Releases a call's reservation. `false` if the call has none (never
    /// reserved, or already released): releasing twice is harmless.
    pub fn release(&mut self, call_id: u64) -> bool {
        match self.calls.remove(&call_id) {
            Some(record) => {
                self.remove_legs(record.legs());
                true
            }
            None => false,
        }
    }

    /// Current state of a site; `None` for an id this admission never had.
    pub fn usage(&self, site: SiteId) -> Option<SiteUsage> {
        self.links.get(site.index()).map(|l| l.usage)
    }

    /// Every site (retired ones last) with its name and state.
    pub fn usages(&self) -> impl Iterator<Item = (SiteId, &str, SiteUsage)> + '_ {
        self.links
            .iter()
            .enumerate()
            .map(|(i, l)| (SiteId(i as u32), &*l.name, l.usage))
    }

    /// The legs a call holds, if it holds a reservation.
    pub fn legs(&self, call_id: u64) -> Option<&[Leg]> {
        self.calls.get(&call_id).map(Record::legs)
    }

    /// Calls holding a reservation.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Takes a new configuration: sites keep their usage by name, take the
    /// new limits and the new ids of `sites`. A site that disappeared while
    /// it still carries calls is kept, retired, after the new sites until
    /// those calls end. A link may then be over its new capacity: new calls
    /// there are refused until enough have ended.
    pub fn reconfigure(&mut self, sites: &Sites) {
        let mut links: Vec<Link> = sites
            .iter()
            .map(|(_, s)| Link {
                name: s.shared_name().clone(),
                usage: SiteUsage {
                    limits: s.limits(),
                    up_kbps: 0,
                    down_kbps: 0,
                    calls: 0,
                    refusals: 0,
                    retired: false,
                },
            })
            .collect();
        let mut moved = Vec::with_capacity(self.links.len());
        for old in &self.links {
            let new_index = match sites.by_name(&old.name) {
                Some(id) => {
                    let u = &mut links[id.index()].usage;
                    u.up_kbps += old.usage.up_kbps;
                    u.down_kbps += old.usage.down_kbps;
                    u.calls += old.usage.calls;
                    u.refusals += old.usage.refusals;
                    id.0
                }
                None if old.usage.calls > 0 => {
                    links.push(Link {
                        name: old.name.clone(),
                        usage: SiteUsage {
                            retired: true,
                            ..old.usage
                        },
                    });
                    (links.len() - 1) as u32
                }
                // Unused and gone: no call refers to it.
                None => u32::MAX,
            };
            moved.push(new_index);
        }
        for record in self.calls.values_mut() {
            let len = usize::from(record.len);
            for leg in &mut record.legs[..len] {
                leg.site = SiteId(moved[leg.site.index()]);
            }
        }
        self.links = links;
    }

    /// Whether `site` can take `up`/`down` more kbps (and one more call if
    /// `new_call`); counts a refusal there if not.
    fn check(&mut self, site: SiteId, up: u64, down: u64, new_call: bool) -> Result<(), Refusal> {
        let link = &mut self.links[site.index()];
        let u = &mut link.usage;
        if new_call {
            if let Some(max) = u.limits.max_calls {
                if u.calls >= max {
                    u.refusals += 1;
                    return Err(Refusal::MaxCalls {
                        site: link.name.clone(),
                        site_id: site,
                        max_calls: max,
                    });
                }
            }
        }
        for (direction, need, cap, used) in [
            (Direction::Up, up, u.limits.up_kbps, u.up_kbps),
            (Direction::Down, down, u.limits.down_kbps, u.down_kbps),
        ] {
            let Some(cap) = cap else { continue };
            let free_kbps = u64::from(cap).saturating_sub(used);
            if need > free_kbps {
                u.refusals += 1;
                return Err(Refusal::Bandwidth {
                    site: link.name.clone(),
                    site_id: site,
                    direction,
                    need_kbps: need,
                    free_kbps,
                });
            }
        }
        Ok(())
    }

    fn add_legs(&mut self, legs: &[Leg]) {
        for (i, leg) in legs.iter().enumerate() {
            let first = !legs[..i].iter().any(|l| l.site == leg.site);
            let u = &mut self.links[leg.site.index()].usage;
            u.up_kbps += u64::from(leg.up_kbps);
            u.down_kbps += u64::from(leg.down_kbps);
            if first {
                u.calls += 1;
            }
        }
    }

    fn remove_legs(&mut self, legs: &[Leg]) {
        for (i, leg) in legs.iter().enumerate() {
            let first = !legs[..i].iter().any(|l| l.site == leg.site);
            let Some(link) = self.links.get_mut(leg.site.index()) else {
                continue;
            };
            let u = &mut link.usage;
            // Never below zero, even if the books were wrong.
            debug_assert!(u.up_kbps >= u64::from(leg.up_kbps));
            debug_assert!(u.down_kbps >= u64::from(leg.down_kbps));
            u.up_kbps = u.up_kbps.saturating_sub(u64::from(leg.up_kbps));
            u.down_kbps = u.down_kbps.saturating_sub(u64::from(leg.down_kbps));
            if first {
                u.calls = u.calls.saturating_sub(1);
            }
        }
    }
}

fn sum(legs: &[Leg], site: SiteId) -> (u64, u64) {
    legs.iter()
        .filter(|l| l.site == site)
        .fold((0, 0), |(u, d), l| {
            (u + u64::from(l.up_kbps), d + u64::from(l.down_kbps))
        })
}

fn reservation(call_id: u64, legs: &[Leg]) -> Reservation {
    let (up_kbps, down_kbps) = legs.iter().fold((0, 0), |(u, d), l| {
        (u + u64::from(l.up_kbps), d + u64::from(l.down_kbps))
    });
    Reservation {
        call_id,
        up_kbps,
        down_kbps,
    }
}

impl fmt::Display for SiteUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cap = |c: Option<u32>| c.map_or_else(|| "unlimited".to_owned(), |c| c.to_string());
        write!(
            f,
            "up {}/{} kbps, down {}/{} kbps, {} calls",
            self.up_kbps,
            cap(self.limits.up_kbps),
            self.down_kbps,
            cap(self.limits.down_kbps),
            self.calls,
        )?;
        if let Some(max) = self.limits.max_calls {
            write!(f, " (max {max})")?;
        }
        write!(f, ", {} refused", self.refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::Site;

    fn site(name: &str, net: &str, up: u32, down: u32, max_calls: Option<u32>) -> Site {
        Site {
            name: name.to_owned(),
            networks: vec![net.parse().unwrap()],
            down_kbps: down,
            up_kbps: up,
            max_calls,
        }
    }

    fn two_sites() -> (Sites, SiteId, SiteId) {
        let sites = Sites::new(vec![
            site("geneva-office", "192.0.2.0/24", 1000, 1000, None),
            site("bern", "198.51.100.0/24", 300, 300, Some(2)),
        ])
        .unwrap();
        (sites, SiteId(0), SiteId(1))
    }

    fn used(a: &Admission, s: SiteId) -> (u64, u64, u32) {
        let u = a.usage(s).unwrap();
        (u.up_kbps, u.down_kbps, u.calls)
    }

    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Admission>();
        assert_send_sync::<Refusal>();
    }

    #[test]
    fn same_site_call_crosses_the_link_twice() {
        let (sites, geneva, _) = two_sites();
        let mut a = Admission::new(&sites);
        let legs = [Leg::symmetric(geneva, 100), Leg::symmetric(geneva, 100)];
        let r = a.reserve(7, &legs).unwrap();
        assert_eq!((r.call_id, r.up_kbps, r.down_kbps), (7, 200, 200));
        assert_eq!(used(&a, geneva), (200, 200, 1), "one call, two crossings");
        assert!(a.release(7));
        assert_eq!(used(&a, geneva), (0, 0, 0));
    }

    #[test]
    fn refusal_names_site_direction_need_and_free() {
        let sites =
            Sites::new(vec![site("geneva-office", "192.0.2.0/24", 140, 1000, None)]).unwrap();
        let g = SiteId(0);
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(g, 100)]).unwrap();
        let refusal = a.reserve(2, &[Leg::symmetric(g, 100)]).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Bandwidth {
                site: Arc::from("geneva-office"),
                site_id: g,
                direction: Direction::Up,
                need_kbps: 100,
                free_kbps: 40,
            }
        );
        assert_eq!(
            refusal.warning_text(),
            "Insufficient bandwidth at site geneva-office: need 100 kbps up, 40 free"
        );
        assert_eq!(Refusal::WARN_CODE, 370);
        assert!(refusal.is_capacity());
        assert_eq!(a.usage(g).unwrap().refusals, 1);
        assert_eq!(used(&a, g), (100, 100, 1));
        assert_eq!(a.legs(2), None);
    }

    #[test]
    fn all_or_nothing_across_sites() {
        let (sites, geneva, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(bern, 250)]).unwrap();
        let err = a
            .reserve(2, &[Leg::symmetric(geneva, 100), Leg::symmetric(bern, 100)])
            .unwrap_err();
        assert_eq!(err.site(), Some(bern));
        assert_eq!(used(&a, geneva), (0, 0, 0), "nothing kept at geneva");
        assert_eq!(a.usage(geneva).unwrap().refusals, 0);
        assert_eq!(a.usage(bern).unwrap().refusals, 1);
        // Down direction alone can refuse too.
        let leg = Leg {
            site: bern,
            up_kbps: 10,
            down_kbps: 60,
        };
        assert!(matches!(
            a.reserve(3, &[leg]),
            Err(Refusal::Bandwidth {
                direction: Direction::Down,
                need_kbps: 60,
                free_kbps: 50,
                ..
            })
        ));
    }

    #[test]
    fn max_calls_is_enforced() {
        let (sites, _, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(bern, 10)]).unwrap();
        // Two legs at one site are still one call.
        a.reserve(2, &[Leg::symmetric(bern, 10), Leg::symmetric(bern, 10)])
            .unwrap();
        let err = a.reserve(3, &[Leg::symmetric(bern, 10)]).unwrap_err();
        assert_eq!(
            err.warning_text(),
            "Call limit reached at site bern: 2 calls in progress"
        );
        assert_eq!(used(&a, bern), (30, 30, 2));
        a.release(1);
        a.reserve(3, &[Leg::symmetric(bern, 10)]).unwrap();
    }

    #[test]
    fn adjust_down_always_up_all_or_nothing() {
        let (sites, geneva, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(geneva, 100), Leg::symmetric(bern, 100)])
            .unwrap();
        a.reserve(2, &[Leg::symmetric(bern, 150)]).unwrap();
        // Up at bern: 100 -> 200 needs 100 more, only 50 free: unchanged.
        let err = a
            .adjust(1, &[Leg::symmetric(geneva, 50), Leg::symmetric(bern, 200)])
            .unwrap_err();
        assert!(matches!(
            err,
            Refusal::Bandwidth {
                need_kbps: 100,
                free_kbps: 50,
                ..
            }
        ));
        assert_eq!(used(&a, geneva), (100, 100, 1));
        assert_eq!(used(&a, bern), (250, 250, 2));
        assert_eq!(a.legs(1).unwrap()[1], Leg::symmetric(bern, 100));
        // Up by exactly what is free passes.
        a.adjust(1, &[Leg::symmetric(geneva, 100), Leg::symmetric(bern, 150)])
            .unwrap();
        assert_eq!(used(&a, bern), (300, 300, 2));
        // Down passes; moving the call off bern frees a call slot there.
        a.adjust(1, &[Leg::symmetric(geneva, 120)]).unwrap();
        assert_eq!(used(&a, bern), (150, 150, 1));
        assert_eq!(used(&a, geneva), (120, 120, 1));
        assert!(matches!(
            a.adjust(9, &[]),
            Err(Refusal::UnknownCall { call_id: 9 })
        ));
        assert!(a.release(1));
        assert!(a.release(2));
        assert_eq!(used(&a, geneva), (0, 0, 0));
        assert_eq!(used(&a, bern), (0, 0, 0));
    }

    #[test]
    fn adjust_onto_a_full_site_checks_max_calls() {
        let (sites, geneva, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(bern, 10)]).unwrap();
        a.reserve(2, &[Leg::symmetric(bern, 10)]).unwrap();
        a.reserve(3, &[Leg::symmetric(geneva, 10)]).unwrap();
        let err = a
            .adjust(3, &[Leg::symmetric(geneva, 10), Leg::symmetric(bern, 1)])
            .unwrap_err();
        assert!(matches!(err, Refusal::MaxCalls { max_calls: 2, .. }));
        // A call already at bern may grow a second leg there.
        a.adjust(1, &[Leg::symmetric(bern, 10), Leg::symmetric(bern, 10)])
            .unwrap();
        assert_eq!(used(&a, bern), (30, 30, 2));
    }

    #[test]
    fn release_is_exactly_once() {
        let (sites, geneva, _) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(geneva, 100)]).unwrap();
        assert!(a.release(1));
        assert!(!a.release(1));
        assert!(!a.release(42));
        assert_eq!(used(&a, geneva), (0, 0, 0));
        assert_eq!(a.active_calls(), 0);
    }

    #[test]
    fn misuse_is_refused_without_change() {
        let (sites, geneva, _) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(geneva, 100)]).unwrap();
        assert_eq!(
            a.reserve(1, &[Leg::symmetric(geneva, 1)]),
            Err(Refusal::DuplicateCall { call_id: 1 })
        );
        assert_eq!(
            a.reserve(
                2,
                &[Leg::symmetric(geneva, 1), Leg::symmetric(SiteId(99), 1)]
            ),
            Err(Refusal::UnknownSite {
                site_id: SiteId(99)
            })
        );
        let many = [Leg::symmetric(geneva, 1); MAX_LEGS + 1];
        assert_eq!(
            a.reserve(3, &many),
            Err(Refusal::TooManyLegs { legs: MAX_LEGS + 1 })
        );
        assert!(a.reserve(3, &many[..MAX_LEGS]).is_ok());
        assert_eq!(used(&a, geneva), (108, 108, 2));
        assert_eq!(a.usage(geneva).unwrap().refusals, 0);
        assert_eq!(a.usage(SiteId(99)), None);
    }

    #[test]
    fn default_site_is_unlimited() {
        let (sites, _, _) = two_sites();
        let default = sites.default_site();
        let mut a = Admission::with_capacity(&sites, 16);
        for call in 0..1000 {
            a.reserve(call, &[Leg::symmetric(default, 100_000)])
                .unwrap();
        }
        let u = a.usage(default).unwrap();
        assert_eq!((u.up_kbps, u.calls), (100_000_000, 1000));
        assert_eq!(u.free_up_kbps(), None);
    }

    #[test]
    fn reconfigure_keeps_usage_by_name() {
        let (sites, geneva, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(geneva, 100), Leg::symmetric(bern, 100)])
            .unwrap();
        a.reserve(2, &[Leg::symmetric(geneva, 100)]).unwrap();
        // Bern goes away; geneva moves to index 1 and shrinks below usage.
        let new_sites = Sites::new(vec![
            site("zurich", "203.0.113.0/24", 500, 500, None),
            site("geneva-office", "192.0.2.0/24", 150, 1000, None),
        ])
        .unwrap();
        a.reconfigure(&new_sites);
        let geneva2 = new_sites.by_name("geneva-office").unwrap();
        assert_eq!(geneva2, SiteId(1));
        assert_eq!(used(&a, geneva2), (200, 200, 2));
        assert_eq!(used(&a, SiteId(0)), (0, 0, 0));
        let (retired_id, name, retired) = a.usages().nth(3).unwrap();
        assert_eq!((name, retired.retired, retired.calls), ("bern", true, 1));
        assert_eq!(a.legs(1).unwrap()[1].site, retired_id);
        // Over capacity now: new calls refused, decreases pass.
        assert!(a.reserve(3, &[Leg::symmetric(geneva2, 1)]).is_err());
        assert!(a.reserve(3, &[Leg::symmetric(retired_id, 1)]).is_err());
        a.adjust(2, &[Leg::symmetric(geneva2, 40)]).unwrap();
        assert!(a.release(1));
        assert!(a.release(2));
        assert_eq!(used(&a, geneva2), (0, 0, 0));
        assert_eq!(used(&a, retired_id), (0, 0, 0));
        // Reconfiguring again drops the idle retired site.
        a.reconfigure(&new_sites);
        assert_eq!(a.usages().count(), new_sites.len());
    }

    #[test]
    fn usage_display() {
        let (sites, _, bern) = two_sites();
        let mut a = Admission::new(&sites);
        a.reserve(1, &[Leg::symmetric(bern, 100)]).unwrap();
        assert_eq!(
            a.usage(bern).unwrap().to_string(),
            "up 100/300 kbps, down 100/300 kbps, 1 calls (max 2), 0 refused"
        );
    }
}
