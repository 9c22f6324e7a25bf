//! The live facts routing reads: registrations, calls in progress, DND,
//! round-robin memory. The engine implements [`DialState`] over its own
//! tables; [`MemoryState`] is a plain implementation for tests and tools.

use std::collections::{HashMap, HashSet};

/// A snapshot view of the PBX's live state.
pub trait DialState {
    /// The extension has at least one registered, reachable device.
    fn is_registered(&self, extension: &str) -> bool;
    /// Calls the extension has now (ringing or connected).
    fn active_calls(&self, extension: &str) -> u32;
    /// DND set at run time (from the phone or the admin API), on top of
    /// the configured [`crate::Extension::dnd`].
    fn is_dnd(&self, extension: &str) -> bool;
    /// The member a round-robin group used last.
    fn last_member(&self, group: &str) -> Option<String>;
    /// Calls in progress on the trunk.
    fn trunk_calls(&self, trunk: &str) -> u32;
}

/// [`DialState`] held in maps.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    pub registered: HashSet<String>,
    pub active_calls: HashMap<String, u32>,
    pub dnd: HashSet<String>,
    pub last_member: HashMap<String, String>,
    pub trunk_calls: HashMap<String, u32>,
}

impl MemoryState {
    /// A state in which these extensions are registered and idle.
    pub fn registered<I, S>(extensions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            registered: extensions.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

impl DialState for MemoryState {
    fn is_registered(&self, extension: &str) -> bool {
        self.registered.contains(extension)
    }

    fn active_calls(&self, extension: &str) -> u32 {
        self.active_calls.get(extension).copied().unwrap_or(0)
    }

    fn is_dnd(&self, extension: &str) -> bool {
        self.dnd.contains(extension)
    }

    fn last_member(&self, group: &str) -> Option<String> {
        self.last_member.get(group).cloned()
    }

    fn trunk_calls(&self, trunk: &str) -> u32 {
        self.trunk_calls.get(trunk).copied().unwrap_or(0)
    }
}
