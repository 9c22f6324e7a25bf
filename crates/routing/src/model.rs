//! The directory and dial plan as plain data, filled by the config loader.

use std::fmt;
use std::str::FromStr;

use crate::hours::OfficeHours;
use crate::ConfigError;

/// Where a call goes when a rule or a forward sends it somewhere.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An extension, by number; its own forwarding applies.
    Extension(String),
    /// A ring group, by number.
    RingGroup(String),
    /// A number outside the PBX, dialled through the outbound rules.
    External(String),
    /// End the call (there is no voicemail).
    Hangup,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Extension(n) => write!(f, "{n}"),
            Destination::RingGroup(n) => write!(f, "group {n}"),
            Destination::External(n) => write!(f, "external {n}"),
            Destination::Hangup => f.write_str("hangup"),
        }
    }
}

/// One forwarding profile of an extension (3CX: "forwarding rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// Forward every call without ringing the extension.
    pub unconditional: Option<Destination>,
    /// The extension is busy (all its calls in use, or DND).
    pub busy: Option<Destination>,
    /// Nobody answered within `no_answer_seconds`.
    pub no_answer: Option<Destination>,
    /// Ring time before the no-answer forward; 0 rings without a limit.
    pub no_answer_seconds: u32,
    /// The extension has no registered device (or it is unreachable).
    pub not_registered: Option<Destination>,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            unconditional: None,
            busy: None,
            no_answer: None,
            no_answer_seconds: 20,
            not_registered: None,
        }
    }
}

/// Which outbound rules an extension may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OutboundPermission {
    /// Every rule (still subject to each rule's own `extensions` list).
    #[default]
    All,
    /// Only the rules with these names.
    Only(Vec<String>),
}

impl OutboundPermission {
    pub fn allows(&self, rule_name: &str) -> bool {
        match self {
            OutboundPermission::All => true,
            OutboundPermission::Only(names) => names.iter().any(|n| n == rule_name),
        }
    }
}

/// A user's extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub number: String,
    pub name: String,
    /// Forwarding in office hours (and always when `office_hours` is unset).
    pub forwarding: Forwarding,
    /// Name of the [`OfficeHours`] that switch between the two profiles.
    pub office_hours: Option<String>,
    /// Forwarding out of office hours; `None` keeps `forwarding`.
    pub out_of_hours_forwarding: Option<Forwarding>,
    /// Do not disturb, as configured (the phone may also set it at run time,
    /// see [`crate::DialState::is_dnd`]).
    pub dnd: bool,
    /// Calls the extension may have at once; 0 means no limit.
    pub max_simultaneous_calls: u32,
    /// Number presented on external calls when the trunk presents the
    /// extension's number.
    pub outbound_caller_id: Option<String>,
    pub outbound_rules: OutboundPermission,
    /// May dial international numbers (`00…`, `+…`).
    pub international: bool,
}

impl Extension {
    /// An extension with default forwarding (none), one call at a time,
    /// every outbound rule, no international calls.
    pub fn new(number: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            name: name.into(),
            forwarding: Forwarding::default(),
            office_hours: None,
            out_of_hours_forwarding: None,
            dnd: false,
            max_simultaneous_calls: 1,
            outbound_caller_id: None,
            outbound_rules: OutboundPermission::All,
            international: false,
        }
    }
}

/// How a ring group rings its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// All available members at once for `ring_seconds`.
    RingAll,
    /// Members one after another in listed order, `ring_seconds` each.
    Hunt,
    /// Like hunt, starting after the member used last.
    RoundRobin,
}

/// A ring group (3CX: "ring group").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingGroup {
    pub number: String,
    pub name: String,
    pub strategy: Strategy,
    /// Extension numbers, in hunt order.
    pub members: Vec<String>,
    /// Whole group for ring-all, per member for hunt and round robin.
    pub ring_seconds: u32,
    /// Where the call goes when no member answered.
    pub no_answer: Destination,
}

/// Caller ID a trunk presents on outgoing calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Presentation {
    /// The calling extension's outbound caller ID (main number if it has none).
    #[default]
    Extension,
    /// The trunk's main number.
    MainNumber,
    /// Withheld: the main number is sent with privacy requested.
    Anonymous,
}

/// A SIP trunk to a carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub main_number: String,
    /// The DIDs the carrier delivers on this trunk.
    pub dids: Vec<String>,
    /// Simultaneous calls; 0 means no limit.
    pub max_calls: u32,
    pub presentation: Presentation,
    /// Codec names (used by media negotiation, not by routing).
    pub codecs: Vec<String>,
}

impl Trunk {
    pub fn new(name: impl Into<String>, main_number: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            main_number: main_number.into(),
            dids: Vec::new(),
            max_calls: 0,
            presentation: Presentation::Extension,
            codecs: Vec::new(),
        }
    }
}

/// The DID pattern of an inbound rule: an exact number or a prefix
/// written with a trailing `*` (`"4122555*"`; `"*"` alone matches any).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DidPattern {
    Exact(String),
    Prefix(String),
}

impl DidPattern {
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        match s.strip_suffix('*') {
            Some(p) => DidPattern::Prefix(strip_plus(p).to_owned()),
            None => DidPattern::Exact(strip_plus(s).to_owned()),
        }
    }

    /// Whether `did` matches; a leading `+` is ignored on both sides.
    pub fn matches(&self, did: &str) -> bool {
        let did = strip_plus(did);
        match self {
            DidPattern::Exact(n) => did == n,
            DidPattern::Prefix(p) => did.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for DidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DidPattern::Exact(n) => f.write_str(n),
            DidPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

fn strip_plus(s: &str) -> &str {
    s.strip_prefix('+').unwrap_or(s)
}

/// Sends calls arriving on a DID somewhere (3CX: "inbound rule").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRule {
    pub did: DidPattern,
    /// Only for calls from this trunk; `None` for any trunk.
    pub trunk: Option<String>,
    /// Destination in office hours (always, without `office_hours`).
    pub to: Destination,
    /// Destination out of office hours; `None` keeps `to`.
    pub out_of_hours: Option<Destination>,
    /// Name of the [`OfficeHours`] that choose between `to` and `out_of_hours`.
    pub office_hours: Option<String>,
}

/// An inclusive range of extension numbers, `"1001-1099"`, or one number.
///
/// Numbers compare by length first, then digit by digit, so `"100-199"`
/// does not contain `"1500"` nor `"0150"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberRange {
    pub first: String,
    pub last: String,
}

impl NumberRange {
    pub fn single(n: impl Into<String>) -> Self {
        let n = n.into();
        Self {
            first: n.clone(),
            last: n,
        }
    }

    pub fn contains(&self, number: &str) -> bool {
        let key = |s: &str| (s.len(), s.to_owned());
        if self.first == self.last {
            return number == self.first;
        }
        if !is_digits(number) {
            return false;
        }
        key(&self.first) <= key(number) && key(number) <= key(&self.last)
    }
}

impl FromStr for NumberRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadValue {
            item: "extension range".into(),
            value: s.into(),
            expected: "a number or a range like 1001-1099".into(),
        };
        let s = s.trim();
        match s.split_once('-') {
            None if !s.is_empty() => Ok(NumberRange::single(s)),
            None => Err(bad()),
            Some((a, b)) => {
                let (a, b) = (a.trim(), b.trim());
                if !is_digits(a) || !is_digits(b) || (a.len(), a) > (b.len(), b) {
                    return Err(bad());
                }
                Ok(NumberRange {
                    first: a.into(),
                    last: b.into(),
                })
            }
        }
    }
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            f.write_str(&self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Picks trunks for a dialled external number (3CX: "outbound rule").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRule {
    pub name: String,
    /// The dialled number starts with this (empty matches any).
    pub prefix: String,
    /// Length range of the dialled number, inclusive.
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
    /// Callers allowed to use the rule; empty allows every extension.
    pub extensions: Vec<NumberRange>,
    /// Digits removed from the front of the dialled number...
    pub strip: usize,
    /// ...then this is put in front.
    pub prepend: String,
    /// Trunk names, tried in order: fail-over on 5xx, 408 or no answer.
    pub trunks: Vec<String>,
}

impl OutboundRule {
    pub fn new(name: impl Into<String>, prefix: impl Into<String>, trunks: &[&str]) -> Self {
        Self {
            name: name.into(),
            prefix: prefix.into(),
            min_len: None,
            max_len: None,
            extensions: Vec::new(),
            strip: 0,
            prepend: String::new(),
            trunks: trunks.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    /// Whether the rule applies to this dialled number (prefix and length).
    pub fn matches_number(&self, dialled: &str) -> bool {
        let len = dialled.chars().count();
        dialled.starts_with(self.prefix.as_str())
            && self.min_len.is_none_or(|m| len >= m)
            && self.max_len.is_none_or(|m| len <= m)
    }

    /// Whether `caller` is in the rule's extension list.
    pub fn allows_caller(&self, caller: &str) -> bool {
        self.extensions.is_empty() || self.extensions.iter().any(|r| r.contains(caller))
    }

    /// The dialled number with `strip` digits removed (before prepending).
    pub fn stripped<'d>(&self, dialled: &'d str) -> &'d str {
        let cut = dialled
            .char_indices()
            .nth(self.strip)
            .map_or(dialled.len(), |(i, _)| i);
        &dialled[cut..]
    }

    /// The number sent to the trunk.
    pub fn rewrite(&self, dialled: &str) -> String {
        format!("{}{}", self.prepend, self.stripped(dialled))
    }
}

/// The whole dial plan: what the config loader produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialplan {
    pub extensions: Vec<Extension>,
    pub ring_groups: Vec<RingGroup>,
    pub trunks: Vec<Trunk>,
    pub inbound_rules: Vec<InboundRule>,
    /// In priority order: the first matching rule wins.
    pub outbound_rules: Vec<OutboundRule>,
    pub office_hours: Vec<OfficeHours>,
    /// Always routed, whatever the caller's permissions.
    pub emergency_numbers: Vec<String>,
    /// Dialled prefixes that make a number international.
    pub international_prefixes: Vec<String>,
    /// Prefixes of numbers written in international form that are still
    /// national (the own country code, e.g. `"+41"`, `"0041"`): they need no
    /// international permission.
    pub national_prefixes: Vec<String>,
}

impl Default for Dialplan {
    fn default() -> Self {
        Self {
            extensions: Vec::new(),
            ring_groups: Vec::new(),
            trunks: Vec::new(),
            inbound_rules: Vec::new(),
            outbound_rules: Vec::new(),
            office_hours: Vec::new(),
            emergency_numbers: ["112", "117", "118", "144"].map(String::from).to_vec(),
            international_prefixes: ["00", "+"].map(String::from).to_vec(),
            // Switzerland, like the default emergency numbers: +41 is a
            // national call, not a toll-fraud risk.
            national_prefixes: ["+41", "0041"].map(String::from).to_vec(),
        }
    }
}
