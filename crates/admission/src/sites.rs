//! Sites (customer locations, each behind one internet link of known
//! capacity) and the lookup of a site by the IP address a phone is seen from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use crate::bandwidth::MIN_FLOOR_KBPS;

/// Name of the site that takes every address no configured site claims.
pub const DEFAULT_SITE_NAME: &str = "default";

/// An IPv4 or IPv6 network: `192.0.2.0/24`, `2001:db8::/32`. A bare address
/// is a host network (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a network could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("empty network")]
    Empty,
    #[error("not an IP address: {0:?}")]
    BadAddress(String),
    #[error("not a prefix length: {0:?}")]
    BadPrefix(String),
    #[error("prefix length /{prefix} is longer than /{max}")]
    PrefixTooLong { prefix: u8, max: u8 },
    #[error("address has bits set beyond the prefix (did you mean {canonical}?)")]
    HostBitsSet { canonical: Cidr },
}

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

impl Cidr {
    /// A network from its address and prefix length; refuses host bits set
    /// beyond the prefix (a likely typo). An IPv4-mapped IPv6 network
    /// (`::ffff:192.0.2.0/120`) becomes the IPv4 network it denotes.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (IpAddr::V6(v6).to_canonical(), prefix - 96)
            }
            other => (other, prefix),
        };
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix, max });
        }
        let canonical = Cidr {
            network: mask(addr, prefix),
            prefix,
        };
        if canonical.network != addr {
            return Err(CidrError::HostBitsSet { canonical });
        }
        Ok(canonical)
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (as a
    /// dual-stack socket reports IPv4 peers) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.range(), ip.to_canonical()) {
            (Range::V4(lo, hi), IpAddr::V4(a)) => (lo..=hi).contains(&u32::from(a)),
            (Range::V6(lo, hi), IpAddr::V6(a)) => (lo..=hi).contains(&u128::from(a)),
            _ => false,
        }
    }

    /// Whether the two networks share at least one address (for CIDRs: one
    /// contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        match (self.range(), other.range()) {
            (Range::V4(a, b), Range::V4(c, d)) => a <= d && c <= b,
            (Range::V6(a, b), Range::V6(c, d)) => a <= d && c <= b,
            _ => false,
        }
    }

    fn range(&self) -> Range {
        match self.network {
            IpAddr::V4(a) => {
                let lo = u32::from(a);
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                Range::V4(lo, lo | host)
            }
            IpAddr::V6(a) => {
                let lo = u128::from(a);
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                Range::V6(lo, lo | host)
            }
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(CidrError::Empty);
        }
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_text.to_owned()))?;
        let prefix = match prefix_text {
            None => max_prefix(addr),
            // Digits only: u8's parser would also take "+24".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| CidrError::BadPrefix(p.to_owned()))?
            }
            Some(p) => return Err(CidrError::BadPrefix(p.to_owned())),
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A customer location: the networks its phones are seen from and the
/// capacity of its internet link (kbps, per direction as seen from the
/// site: `up` leaves the site, `down` arrives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub networks: Vec<Cidr>,
    pub down_kbps: u32,
    pub up_kbps: u32,
    pub max_calls: Option<u32>,
}

/// A site as written in the configuration, networks still text; see
/// [`Sites::from_specs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    pub name: String,
    pub networks: Vec<String>,
    pub down_kbps: u32,
    pub up_kbps: u32,
    pub max_calls: Option<u32>,
}

/// What a site may use; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub up_kbps: Option<u32>,
    pub down_kbps: Option<u32>,
    pub max_calls: Option<u32>,
}

impl Limits {
    /// No limit at all (the default site's default).
    pub const UNLIMITED: Limits = Limits {
        up_kbps: None,
        down_kbps: None,
        max_calls: None,
    };
}

/// The index of a site in its [`Sites`]; configured sites keep their order,
/// the default site comes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(pub u32);

impl SiteId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The direction of a link, as seen from the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the site to the internet (the phone's media towards the PBX).
    Up,
    /// From the internet to the site.
    Down,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a set of sites. `index` is the position of the site in
/// the input (`None` for the default site), so a config loader can point
/// at the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error("site #{index}: empty name")]
    EmptyName { index: usize },
    #[error("site {site:?}: name may not contain control characters, '\"' or '\\'")]
    BadName { site: String, index: usize },
    #[error("site {site:?}: name already used by site #{first}")]
    DuplicateName {
        site: String,
        index: usize,
        first: usize,
    },
    #[error("site {site:?}: network #{network} {text:?}: {reason}")]
    BadNetwork {
        site: String,
        index: usize,
        network: usize,
        text: String,
        reason: CidrError,
    },
    #[error("site {site:?}: no networks, so no address would ever belong to it")]
    NoNetworks { site: String, index: usize },
    #[error(
        "site {site:?}: network {network} overlaps network {other_network} of site {other_site:?}"
    )]
    Overlap {
        site: String,
        index: usize,
        network: Cidr,
        other_site: String,
        other_network: Cidr,
    },
    #[error("site {site:?}: {direction} capacity is zero")]
    ZeroCapacity {
        site: String,
        index: Option<usize>,
        direction: Direction,
    },
    #[error("site {site:?}: {direction} capacity of {kbps} kbps cannot carry one call ({MIN_FLOOR_KBPS} kbps)")]
    BelowOneCall {
        site: String,
        index: Option<usize>,
        direction: Direction,
        kbps: u32,
    },
    #[error("site {site:?}: max_calls is zero")]
    ZeroMaxCalls { site: String, index: Option<usize> },
}

impl SiteError {
    /// Position of the offending site in the input; `None` for the default
    /// site (and for nothing else).
    pub fn index(&self) -> Option<usize> {
        match self {
            SiteError::EmptyName { index }
            | SiteError::BadName { index, .. }
            | SiteError::DuplicateName { index, .. }
            | SiteError::BadNetwork { index, .. }
            | SiteError::NoNetworks { index, .. }
            | SiteError::Overlap { index, .. } => Some(*index),
            SiteError::ZeroCapacity { index, .. }
            | SiteError::BelowOneCall { index, .. }
            | SiteError::ZeroMaxCalls { index, .. } => *index,
        }
    }
}

/// A validated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteInfo {
    name: Arc<str>,
    networks: Vec<Cidr>,
    limits: Limits,
}

impl SiteInfo {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared (refusals carry it without copying).
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// A validated, immutable set of sites with a default site, and the lookup
/// of an address's site.
///
/// Networks of different sites may not overlap (validation refuses it), so
/// the longest matching prefix is the only match; nested networks within
/// one site are allowed. Lookup is a binary search over disjoint ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sites {
    sites: Vec<SiteInfo>,
    v4: Vec<(u32, u32, SiteId)>,
    v6: Vec<(u128, u128, SiteId)>,
}

impl Sites {
    /// Sites with an unlimited default site.
    pub fn new(sites: Vec<Site>) -> Result<Sites, Vec<SiteError>> {
        Sites::with_default(sites, Limits::UNLIMITED)
    }

    /// Sites whose default site (named [`DEFAULT_SITE_NAME`]) has `default`
    /// limits. Returns every problem found, not just the first.
    pub fn with_default(sites: Vec<Site>, default: Limits) -> Result<Sites, Vec<SiteError>> {
        let mut errors = Vec::new();
        validate(&sites, default, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Sites::build(sites, default))
    }

    /// Parses each site's networks, then validates as
    /// [`Sites::with_default`]; a bad network is reported with its site.
    pub fn from_specs(specs: Vec<SiteSpec>, default: Limits) -> Result<Sites, Vec<SiteError>> {
        let mut errors = Vec::new();
        let mut sites = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let mut networks = Vec::with_capacity(spec.networks.len());
            for (network, text) in spec.networks.iter().enumerate() {
                match text.parse::<Cidr>() {
                    Ok(cidr) => networks.push(cidr),
                    Err(reason) => errors.push(SiteError::BadNetwork {
                        site: spec.name.clone(),
                        index,
                        network,
                        text: text.clone(),
                        reason,
                    }),
                }
            }
            sites.push(Site {
                name: spec.name,
                networks,
                down_kbps: spec.down_kbps,
                up_kbps: spec.up_kbps,
                max_calls: spec.max_calls,
            });
        }
        let parse_failed: Vec<usize> = errors.iter().filter_map(SiteError::index).collect();
        let mut more = Vec::new();
        validate(&sites, default, &mut more);
        // A site whose networks failed to parse is not also "without networks".
        more.retain(
            |e| !matches!(e, SiteError::NoNetworks { index, .. } if parse_failed.contains(index)),
        );
        errors.extend(more);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Sites::build(sites, default))
    }

    fn build(sites: Vec<Site>, default: Limits) -> Sites {
        let mut infos: Vec<SiteInfo> = sites
            .into_iter()
            .map(|s| SiteInfo {
                name: Arc::from(s.name),
                networks: s.networks,
                limits: Limits {
                    up_kbps: Some(s.up_kbps),
                    down_kbps: Some(s.down_kbps),
                    max_calls: s.max_calls,
                },
            })
            .collect();
        infos.push(SiteInfo {
            name: Arc::from(DEFAULT_SITE_NAME),
            networks: Vec::new(),
            limits: default,
        });
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            let id = SiteId(u32::try_from(i).unwrap_or(u32::MAX));
            for net in &info.networks {
                match net.range() {
                    Range::V4(lo, hi) => v4.push((lo, hi, id)),
                    Range::V6(lo, hi) => v6.push((lo, hi, id)),
                }
            }
        }
        Sites {
            sites: infos,
            v4: disjoint(v4),
            v6: disjoint(v6),
        }
    }

    /// The site of an address: the configured site with the longest
    /// matching prefix, else the default site.
    pub fn lookup(&self, ip: IpAddr) -> SiteId {
        let found = match ip.to_canonical() {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        };
        found.unwrap_or_else(|| self.default_site())
    }

    pub fn default_site(&self) -> SiteId {
        SiteId(u32::try_from(self.sites.len() - 1).unwrap_or(u32::MAX))
    }

    pub fn get(&self, id: SiteId) -> Option<&SiteInfo> {
        self.sites.get(id.index())
    }

    pub fn by_name(&self, name: &str) -> Option<SiteId> {
        self.sites
            .iter()
            .position(|s| &*s.name == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(SiteId)
    }

    /// Number of sites, the default site included.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Never true: the default site is always there.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Every site with its id, the default site last.
    pub fn iter(&self) -> impl Iterator<Item = (SiteId, &SiteInfo)> {
        self.sites
            .iter()
            .enumerate()
            .map(|(i, s)| (SiteId(u32::try_from(i).unwrap_or(u32::MAX)), s))
    }
}

/// Sorted ranges with those nested in a range of the same site dropped.
/// Ranges of different sites never overlap here (validated before).
fn disjoint<T: Ord + Copy>(mut ranges: Vec<(T, T, SiteId)>) -> Vec<(T, T, SiteId)> {
    ranges.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<(T, T, SiteId)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last() {
            Some(last) if r.1 <= last.1 => {}
            _ => out.push(r),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T, SiteId)], a: T) -> Option<SiteId> {
    let i = ranges.partition_point(|r| r.0 <= a);
    let r = ranges.get(i.checked_sub(1)?)?;
    (a <= r.1).then_some(r.2)
}

fn validate(sites: &[Site], default: Limits, errors: &mut Vec<SiteError>) {
    for (index, site) in sites.iter().enumerate() {
        let name = site.name.clone();
        if site.name.trim().is_empty() {
            errors.push(SiteError::EmptyName { index });
        } else if site
            .name
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            errors.push(SiteError::BadName {
                site: name.clone(),
                index,
            });
        }
        let same_name = |other: &str| other.eq_ignore_ascii_case(&site.name);
        if let Some(first) = sites[..index].iter().position(|s| same_name(&s.name)) {
            errors.push(SiteError::DuplicateName {
                site: name.clone(),
                index,
                first,
            });
        } else if same_name(DEFAULT_SITE_NAME) {
            errors.push(SiteError::DuplicateName {
                site: name.clone(),
                index,
                first: sites.len(),
            });
        }
        if site.networks.is_empty() {
            errors.push(SiteError::NoNetworks {
                site: name.clone(),
                index,
            });
        }
        check_limits(
            &name,
            Some(index),
            Limits {
                up_kbps: Some(site.up_kbps),
                down_kbps: Some(site.down_kbps),
                max_calls: site.max_calls,
            },
            errors,
        );
    }
    check_limits(DEFAULT_SITE_NAME, None, default, errors);
    check_overlaps(sites, errors);
}

fn check_limits(site: &str, index: Option<usize>, limits: Limits, errors: &mut Vec<SiteError>) {
    for (direction, kbps) in [
        (Direction::Up, limits.up_kbps),
        (Direction::Down, limits.down_kbps),
    ] {
        match kbps {
            Some(0) => errors.push(SiteError::ZeroCapacity {
                site: site.to_owned(),
                index,
                direction,
            }),
            Some(kbps) if kbps < MIN_FLOOR_KBPS => errors.push(SiteError::BelowOneCall {
                site: site.to_owned(),
                index,
                direction,
                kbps,
            }),
            _ => {}
        }
    }
    if limits.max_calls == Some(0) {
        errors.push(SiteError::ZeroMaxCalls {
            site: site.to_owned(),
            index,
        });
    }
}

/// Reports every pair of overlapping networks that belong to different
/// sites: sort by start, then compare each range with the ones starting
/// inside it.
fn check_overlaps(sites: &[Site], errors: &mut Vec<SiteError>) {
    let mut all: Vec<(Range, usize, Cidr)> = sites
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.networks.iter().map(move |n| (n.range(), i, *n)))
        .collect();
    let key = |r: &Range| match *r {
        Range::V4(lo, _) => (0u8, u128::from(lo)),
        Range::V6(lo, _) => (1u8, lo),
    };
    all.sort_by_key(|(r, i, _)| (key(r), *i));
    for (k, (range, site, net)) in all.iter().enumerate() {
        for (other_range, other_site, other_net) in &all[k + 1..] {
            let inside = match (range, other_range) {
                (Range::V4(_, hi), Range::V4(lo, _)) => lo <= hi,
                (Range::V6(_, hi), Range::V6(lo, _)) => lo <= hi,
                _ => false,
            };
            if !inside {
                break;
            }
            if site != other_site {
                // Name the later site in the input; it is the one to fix.
                let (a, an, b, bn) = if other_site > site {
                    (*other_site, *other_net, *site, *net)
                } else {
                    (*site, *net, *other_site, *other_net)
                };
                errors.push(SiteError::Overlap {
                    site: sites[a].name.clone(),
                    index: a,
                    network: an,
                    other_site: sites[b].name.clone(),
                    other_network: bn,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn site(name: &str, nets: &[&str]) -> Site {
        Site {
            name: name.to_owned(),
            networks: nets.iter().map(|n| cidr(n)).collect(),
            down_kbps: 1000,
            up_kbps: 500,
            max_calls: None,
        }
    }

    #[test]
    fn cidr_parse() {
        assert_eq!(cidr("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(cidr(" 2001:db8::/32 ").to_string(), "2001:db8::/32");
        assert_eq!(cidr("192.0.2.7").prefix_len(), 32);
        assert_eq!(cidr("::1").prefix_len(), 128);
        assert_eq!(cidr("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(cidr("::/0").prefix_len(), 0);
        assert_eq!(cidr("::ffff:192.0.2.0/120"), cidr("192.0.2.0/24"));
        assert_eq!("".parse::<Cidr>(), Err(CidrError::Empty));
        assert!(matches!(
            "192.0.2.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        ));
        assert!(matches!(
            "2001:db8::/129".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { .. })
        ));
        for bad in [
            "192.0.2.0/",
            "192.0.2.0/+24",
            "192.0.2.0/abc",
            "192.0.2.0/9999",
        ] {
            assert!(
                matches!(bad.parse::<Cidr>(), Err(CidrError::BadPrefix(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "192.0.2/24".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        let err = "192.0.2.7/24".parse::<Cidr>().unwrap_err();
        assert_eq!(
            err,
            CidrError::HostBitsSet {
                canonical: cidr("192.0.2.0/24")
            }
        );
        assert!(err.to_string().contains("did you mean 192.0.2.0/24"));
    }

    #[test]
    fn cidr_contains() {
        let n = cidr("192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.0")));
        assert!(n.contains(ip("192.0.2.255")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(!n.contains(ip("192.0.1.255")));
        assert!(n.contains(ip("::ffff:192.0.2.9")), "v4-mapped counts");
        assert!(!n.contains(ip("2001:db8::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        let v6 = cidr("2001:db8:10::/48");
        assert!(v6.contains(ip("2001:db8:10:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:11::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("192.0.2.7/32").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7/32").contains(ip("192.0.2.8")));
    }

    #[test]
    fn cidr_overlaps() {
        assert!(cidr("10.0.0.0/8").overlaps(&cidr("10.1.0.0/16")));
        assert!(cidr("10.1.0.0/16").overlaps(&cidr("10.0.0.0/8")));
        assert!(cidr("10.0.0.0/8").overlaps(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.0.0.0/16").overlaps(&cidr("10.1.0.0/16")));
        assert!(!cidr("0.0.0.0/0").overlaps(&cidr("::/0")));
        assert!(cidr("2001:db8::/32").overlaps(&cidr("2001:db8:1::/48")));
        assert!(!cidr("2001:db8::/32").overlaps(&cidr("2001:db9::/32")));
    }

    #[test]
    fn lookup_by_address() {
        let sites = Sites::new(vec![
            site("geneva-office", &["192.0.2.0/24", "2001:db8:1::/48"]),
            site("zurich", &["198.51.100.0/25", "198.51.100.128/25"]),
            site("lab", &["203.0.113.0/24", "203.0.113.64/26"]),
        ])
        .unwrap();
        let geneva = sites.by_name("geneva-office").unwrap();
        let zurich = sites.by_name("zurich").unwrap();
        assert_eq!(geneva, SiteId(0));
        assert_eq!(sites.lookup(ip("192.0.2.200")), geneva);
        assert_eq!(sites.lookup(ip("::ffff:192.0.2.1")), geneva);
        assert_eq!(sites.lookup(ip("2001:db8:1:2::5")), geneva);
        assert_eq!(sites.lookup(ip("198.51.100.1")), zurich);
        assert_eq!(sites.lookup(ip("198.51.100.255")), zurich);
        assert_eq!(sites.lookup(ip("203.0.113.70")), SiteId(2));
        assert_eq!(sites.lookup(ip("203.0.113.255")), SiteId(2));
        let default = sites.default_site();
        assert_eq!(default, SiteId(3));
        assert_eq!(sites.lookup(ip("192.0.3.1")), default);
        assert_eq!(sites.lookup(ip("2001:db8:2::1")), default);
        assert_eq!(sites.lookup(ip("0.0.0.0")), default);
        let info = sites.get(default).unwrap();
        assert_eq!(info.name(), DEFAULT_SITE_NAME);
        assert_eq!(info.limits(), Limits::UNLIMITED);
        assert_eq!(sites.len(), 4);
        assert_eq!(sites.get(geneva).unwrap().limits().up_kbps, Some(500));
    }

    #[test]
    fn lookup_matches_linear_longest_prefix() {
        // Nested networks inside one site, plus neighbours.
        let sites = Sites::new(vec![
            site("a", &["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]),
            site("b", &["11.0.0.0/16", "9.255.255.255/32"]),
        ])
        .unwrap();
        for probe in [
            "9.255.255.254",
            "9.255.255.255",
            "10.0.0.0",
            "10.1.2.3",
            "10.255.255.255",
            "11.0.0.0",
            "11.0.255.255",
            "11.1.0.0",
        ] {
            let a = ip(probe);
            let expected = sites
                .iter()
                .filter_map(|(id, s)| {
                    s.networks()
                        .iter()
                        .filter(|n| n.contains(a))
                        .map(|n| (n.prefix_len(), id))
                        .max()
                })
                .max()
                .map_or(sites.default_site(), |(_, id)| id);
            assert_eq!(sites.lookup(a), expected, "{probe}");
        }
    }

    #[test]
    fn validation_reports_every_problem_by_site() {
        let mut zero = site("zero", &["192.0.2.0/24"]);
        zero.down_kbps = 0;
        zero.max_calls = Some(0);
        let mut thin = site("thin", &["192.0.3.0/24"]);
        thin.up_kbps = 64;
        let errors = Sites::new(vec![
            site("geneva", &["10.0.0.0/8"]),
            site("Geneva", &["172.16.0.0/12"]),
            site("bern", &["10.20.0.0/16"]),
            zero,
            site("empty", &[]),
            site("", &["192.0.4.0/24"]),
            site("default", &["192.0.5.0/24"]),
            site("quo\"te", &["192.0.6.0/24"]),
            thin,
        ])
        .unwrap_err();
        let has = |pred: &dyn Fn(&SiteError) -> bool| errors.iter().any(pred);
        assert!(has(
            &|e| matches!(e, SiteError::DuplicateName { site, index: 1, first: 0 } if site == "Geneva")
        ));
        assert!(has(
            &|e| matches!(e, SiteError::Overlap { site, index: 2, other_site, .. } if site == "bern" && other_site == "geneva")
        ));
        assert!(has(
            &|e| matches!(e, SiteError::ZeroCapacity { site, index: Some(3), direction: Direction::Down } if site == "zero")
        ));
        assert!(has(&|e| matches!(
            e,
            SiteError::ZeroMaxCalls { index: Some(3), .. }
        )));
        assert!(has(&|e| matches!(
            e,
            SiteError::NoNetworks { index: 4, .. }
        )));
        assert!(has(&|e| matches!(e, SiteError::EmptyName { index: 5 })));
        assert!(has(&|e| matches!(
            e,
            SiteError::DuplicateName { index: 6, .. }
        )));
        assert!(has(&|e| matches!(e, SiteError::BadName { index: 7, .. })));
        assert!(has(&|e| matches!(
            e,
            SiteError::BelowOneCall {
                index: Some(8),
                kbps: 64,
                direction: Direction::Up,
                ..
            }
        )));
        assert_eq!(errors.len(), 9, "{errors:#?}");
        let overlap = errors
            .iter()
            .find(|e| matches!(e, SiteError::Overlap { .. }))
            .unwrap();
        assert_eq!(
            overlap.to_string(),
            "site \"bern\": network 10.20.0.0/16 overlaps network 10.0.0.0/8 of site \"geneva\""
        );
    }

    #[test]
    fn overlap_of_identical_and_v6_networks() {
        let errors = Sites::new(vec![
            site("a", &["2001:db8::/32", "192.0.2.0/24"]),
            site("b", &["192.0.2.0/24"]),
            site("c", &["2001:db8:ff::/48"]),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors
            .iter()
            .all(|e| matches!(e, SiteError::Overlap { .. })));
        // Overlap within one site is fine.
        assert!(Sites::new(vec![site("a", &["10.0.0.0/8", "10.0.0.0/8"])]).is_ok());
    }

    #[test]
    fn default_site_limits_are_validated() {
        let errors = Sites::with_default(
            vec![],
            Limits {
                up_kbps: Some(0),
                down_kbps: Some(1000),
                max_calls: Some(0),
            },
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.index().is_none()));
        let sites = Sites::with_default(
            vec![],
            Limits {
                up_kbps: Some(1000),
                down_kbps: None,
                max_calls: Some(3),
            },
        )
        .unwrap();
        assert_eq!(sites.lookup(ip("192.0.2.1")), SiteId(0));
        assert_eq!(sites.get(SiteId(0)).unwrap().limits().max_calls, Some(3));
    }

    #[test]
    fn specs_report_bad_networks_with_their_site() {
        let spec = |name: &str, nets: &[&str]| SiteSpec {
            name: name.to_owned(),
            networks: nets.iter().map(|s| s.to_string()).collect(),
            down_kbps: 1000,
            up_kbps: 1000,
            max_calls: None,
        };
        let errors = Sites::from_specs(
            vec![
                spec("ok", &["192.0.2.0/24"]),
                spec("geneva-office", &["10.0.0.0/8", "10.0.0.300/32"]),
                spec("broken", &["nonsense"]),
            ],
            Limits::UNLIMITED,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(
            errors[0].to_string(),
            "site \"geneva-office\": network #1 \"10.0.0.300/32\": not an IP address: \"10.0.0.300\""
        );
        assert_eq!(errors[1].index(), Some(2));
        let sites =
            Sites::from_specs(vec![spec("ok", &["192.0.2.0/24"])], Limits::UNLIMITED).unwrap();
        assert_eq!(sites.lookup(ip("192.0.2.9")), SiteId(0));
    }
}
