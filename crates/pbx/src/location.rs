//! The location service: the contacts each address-of-record (extension)
//! registered, where from, and until when. Plain data, sans-IO: expiry is
//! judged against the `now` the caller passes.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use sip::uri::Scheme;
use sip::{Peer, Uri};

/// One registered contact of an AOR.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The AOR this binding belongs to (the extension number).
    pub aor: String,
    /// The contact URI as the phone gave it (escaped user and `?headers` kept).
    pub contact: Uri,
    /// Where the REGISTER came from: requests for this contact go there
    /// (the phone is usually behind NAT).
    pub source: Peer,
    pub call_id: Bytes,
    pub cseq: u32,
    pub expires_at: Instant,
    /// The `q` parameter in thousandths (0..=1000), when given.
    pub q: Option<u16>,
    /// `+sip.instance` as given (quotes and angle brackets kept).
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), when given along with `+sip.instance`.
    pub reg_id: Option<u32>,
    pub user_agent: Option<String>,
}

impl Binding {
    /// Whole seconds left before expiry (0 once expired).
    pub fn remaining_secs(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }

    /// Whether a contact in a REGISTER designates this binding: the same
    /// instance and reg-id (RFC 5626 §6), else the same URI (RFC 3261 §10.3).
    pub fn matches(&self, uri: &Uri, instance: Option<&str>, reg_id: Option<u32>) -> bool {
        match (self.instance.as_deref(), self.reg_id, instance, reg_id) {
            (Some(a), Some(ra), Some(b), Some(rb)) => a == b && ra == rb,
            _ => same_contact(&self.contact, uri),
        }
    }
}

/// URI equality of RFC 3261 §19.1.4, as far as contacts need it: scheme,
/// user (case-sensitive), host (case-insensitive), port, and the
/// `transport`, `user`, `maddr`, `method`, `ttl` parameters when either side has them.
pub fn same_contact(a: &Uri, b: &Uri) -> bool {
    if a.scheme != b.scheme {
        return false;
    }
    if !matches!(a.scheme, Scheme::Sip | Scheme::Sips) {
        return a.opaque() == b.opaque();
    }
    if a.user != b.user
        || a.password() != b.password()
        || !a.host.eq_ignore_ascii_case(&b.host)
        || a.port != b.port
    {
        return false;
    }
    ["transport", "user", "maddr", "method", "ttl"]
        .iter()
        .all(|p| match (a.params.get(p), b.params.get(p)) {
            (None, None) => true,
            (Some(Some(x)), Some(Some(y))) => x.eq_ignore_ascii_case(y),
            (Some(None), Some(None)) => true,
            _ => false,
        })
}

/// Bindings per AOR.
#[derive(Debug, Default)]
pub struct Location {
    aors: HashMap<String, Vec<Binding>>,
    total: usize,
    /// No binding expires before this (it may be earlier than the true
    /// earliest after removals): lets [`Location::remove_expired`], called on
    /// every timer of the core, return at once instead of walking every AOR.
    earliest: Option<Instant>,
}

impl Location {
    pub fn new() -> Self {
        Location::default()
    }

    /// The unexpired bindings of an AOR, highest q first (no q counts as 1.0).
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let mut out: Vec<Binding> = self
            .aors
            .get(aor)
            .map(|v| v.iter().filter(|b| !b.is_expired(now)).cloned().collect())
            .unwrap_or_default();
        out.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
        out
    }

    /// Every stored binding of an AOR, expired ones included until removed.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.aors.get(aor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Replaces all bindings of an AOR (an empty list removes the AOR).
    pub fn set(&mut self, aor: &str, bindings: Vec<Binding>) {
        if let Some(first) = bindings.iter().map(|b| b.expires_at).min() {
            self.earliest = Some(self.earliest.map_or(first, |e| e.min(first)));
        }
        let old_len = if bindings.is_empty() {
            self.aors.remove(aor).map_or(0, |v| v.len())
        } else {
            self.total += bindings.len();
            match self.aors.get_mut(aor) {
                // A refresh: keep the key, no new String.
                Some(slot) => std::mem::replace(slot, bindings).len(),
                None => {
                    self.aors.insert(aor.to_string(), bindings);
                    0
                }
            }
        };
        self.total -= old_len;
    }

    /// Drops expired bindings; returns how many.
    pub fn remove_expired(&mut self, now: Instant) -> usize {
        match self.earliest {
            Some(e) if e <= now => {}
            _ => return 0,
        }
        let before = self.total;
        let mut earliest: Option<Instant> = None;
        self.aors.retain(|_, v| {
            v.retain(|b| !b.is_expired(now));
            if let Some(first) = v.iter().map(|b| b.expires_at).min() {
                earliest = Some(earliest.map_or(first, |e| e.min(first)));
            }
            !v.is_empty()
        });
        self.earliest = earliest;
        self.total = self.aors.values().map(Vec::len).sum();
        before - self.total
    }

    /// The bindings stored (expired ones count until [`Location::remove_expired`]).
    pub fn count(&self) -> usize {
        self.total
    }

    /// How many AORs have at least one stored binding.
    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }

    /// When the next binding expires: the shell arms a timer for it.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.aors.values().flatten().map(|b| b.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn uri(s: &str) -> Uri {
        Uri::parse(&Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn binding(aor: &str, contact: &str, expires_at: Instant, q: Option<u16>) -> Binding {
        Binding {
            aor: aor.into(),
            contact: uri(contact),
            source: Peer::udp("127.0.0.1:5062".parse().unwrap()),
            call_id: Bytes::from_static(b"c1"),
            cseq: 1,
            expires_at,
            q,
            instance: None,
            reg_id: None,
            user_agent: None,
        }
    }

    #[test]
    fn contact_equality_follows_rfc3261() {
        assert!(same_contact(
            &uri("sip:101@192.0.2.1:5062"),
            &uri("SIP:101@192.0.2.1:5062;ob")
        ));
        assert!(same_contact(
            &uri("sip:101@Phone.Example.com"),
            &uri("sip:101@phone.example.com")
        ));
        assert!(!same_contact(&uri("sip:101@h"), &uri("sip:102@h")));
        assert!(!same_contact(&uri("sip:101@h:5060"), &uri("sip:101@h")));
        assert!(!same_contact(&uri("sip:101@h"), &uri("sips:101@h")));
        assert!(!same_contact(
            &uri("sip:101@h;transport=tcp"),
            &uri("sip:101@h")
        ));
        assert!(same_contact(
            &uri("sip:101@h;transport=TCP"),
            &uri("sip:101@h;transport=tcp")
        ));
    }

    #[test]
    fn lookup_skips_expired_and_orders_by_q() {
        let t0 = Instant::now();
        let mut loc = Location::new();
        loc.set(
            "101",
            vec![
                binding("101", "sip:101@a", t0 + Duration::from_secs(10), Some(500)),
                binding("101", "sip:101@b", t0 + Duration::from_secs(100), None),
                binding("101", "sip:101@c", t0 + Duration::from_secs(100), Some(900)),
            ],
        );
        loc.set(
            "102",
            vec![binding(
                "102",
                "sip:102@d",
                t0 + Duration::from_secs(5),
                None,
            )],
        );
        assert_eq!(loc.count(), 4);
        assert_eq!(loc.aor_count(), 2);
        assert_eq!(loc.next_expiry(), Some(t0 + Duration::from_secs(5)));

        let hosts: Vec<_> = loc
            .lookup("101", t0)
            .iter()
            .map(|b| b.contact.host_str().to_string())
            .collect();
        assert_eq!(hosts, ["b", "c", "a"]);
        assert_eq!(loc.lookup("101", t0 + Duration::from_secs(10)).len(), 2);
        assert!(loc.lookup("nobody", t0).is_empty());

        assert_eq!(loc.remove_expired(t0 + Duration::from_secs(10)), 2);
        assert_eq!(loc.count(), 2);
        assert_eq!(loc.aor_count(), 1);
        assert!(loc.bindings("102").is_empty());

        loc.set("101", Vec::new());
        assert_eq!(loc.count(), 0);
        assert_eq!(loc.next_expiry(), None);
    }

    #[test]
    fn expiry_is_tracked_across_refreshes() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut loc = Location::new();
        loc.set("101", vec![binding("101", "sip:101@a", at(10), None)]);
        loc.set("102", vec![binding("102", "sip:102@b", at(20), None)]);
        assert_eq!(loc.remove_expired(at(5)), 0);
        // A refresh moves 101 past 102.
        loc.set("101", vec![binding("101", "sip:101@a", at(30), None)]);
        assert_eq!(loc.count(), 2);
        assert_eq!(loc.remove_expired(at(15)), 0);
        assert_eq!(loc.remove_expired(at(20)), 1);
        assert!(loc.bindings("102").is_empty());
        assert_eq!(loc.remove_expired(at(29)), 0);
        assert_eq!(loc.remove_expired(at(30)), 1);
        assert_eq!((loc.count(), loc.aor_count()), (0, 0));
        // A new binding after everything expired is found again.
        loc.set("103", vec![binding("103", "sip:103@c", at(40), None)]);
        assert_eq!(loc.remove_expired(at(41)), 1);
    }

    #[test]
    fn instance_and_reg_id_designate_a_binding() {
        let t0 = Instant::now();
        let mut b = binding("101", "sip:101@192.0.2.1:5062", t0, None);
        b.instance = Some("\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"".into());
        b.reg_id = Some(1);
        let inst = b.instance.clone();
        // A new NAT port with the same instance and reg-id is the same binding.
        assert!(b.matches(&uri("sip:101@192.0.2.1:6000"), inst.as_deref(), Some(1)));
        assert!(!b.matches(&uri("sip:101@192.0.2.1:6000"), inst.as_deref(), Some(2)));
        // Without reg-id the URI decides.
        assert!(!b.matches(&uri("sip:101@192.0.2.1:6000"), inst.as_deref(), None));
        assert!(b.matches(&uri("sip:101@192.0.2.1:5062"), None, None));
    }
}
