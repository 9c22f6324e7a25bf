//! What the engine needs to know from the operator's config, as plain data.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sip::TransportKind;

pub use crate::auth::Algorithm;

#[derive(Clone, Debug)]
pub struct ExtensionInfo {
    pub number: String,
    pub name: String,
    pub password: String,
    /// The site this extension's phones are at, whatever their address.
    pub site: Option<String>,
}

/// Bandwidth admission: what a call costs and where the links are.
#[derive(Clone, Debug)]
pub struct AdmissionSettings {
    pub estimator: admission::Estimator,
    pub sites: admission::Sites,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            estimator: admission::Estimator::default(),
            // No sites: every phone is in the unlimited default site.
            sites: admission::Sites::with_default(Vec::new(), admission::Limits::UNLIMITED)
                .unwrap_or_else(|_| unreachable!("an empty site list is valid")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The SIP domain and digest realm.
    pub domain: String,
    pub user_agent: String,
    /// How long B-legs ring before the caller gets 480 (default 60 s).
    pub ring_timeout: Duration,
    pub min_expires: u32,
    pub max_expires: u32,
    pub extensions: HashMap<String, ExtensionInfo>,
    /// Our address per transport as we put it in Via and Contact.
    pub advertised: HashMap<TransportKind, SocketAddr>,
    /// Digest algorithms offered, one challenge each, in this order. Many
    /// phones (and SIPp) answer the first challenge only, so MD5 leads by
    /// default; SHA-256 first is stronger where every phone supports it.
    pub auth_algorithms: Vec<Algorithm>,
    pub admission: AdmissionSettings,
    /// The dial plan: every routing decision comes from it.
    pub router: std::sync::Arc<routing::Router>,
    /// SIP trunks to providers, by name.
    pub trunks: HashMap<String, TrunkInfo>,
}

/// A trunk as call control and registration need it.
#[derive(Clone, Debug)]
pub struct TrunkInfo {
    pub name: String,
    /// Where requests to the provider go (its registrar/proxy, resolved).
    pub peer: sip::Peer,
    /// The provider's host as configured: Request-URI and AOR host.
    pub domain: String,
    pub username: String,
    /// The digest user name when it differs from `username`.
    pub auth_username: Option<String>,
    pub password: String,
    /// Registration interval asked for.
    pub expires: u32,
    /// Register to the provider (else it authenticates us by IP).
    pub register: bool,
    /// Source addresses whose requests are accepted as this trunk's.
    pub addresses: Vec<std::net::IpAddr>,
}

impl Settings {
    /// A dial plan of plain extensions (no groups, trunks or rules).
    pub fn extensions_only_router(extensions: &HashMap<String, ExtensionInfo>) -> routing::Router {
        let dialplan = routing::Dialplan {
            extensions: extensions
                .values()
                .map(|e| routing::Extension {
                    // Phones say busy themselves (call waiting is theirs to offer).
                    max_simultaneous_calls: 0,
                    ..routing::Extension::new(&e.number, &e.name)
                })
                .collect(),
            ..routing::Dialplan::default()
        };
        routing::Router::new(dialplan)
    }
}

impl Settings {
    pub fn password_of(&self, user: &str) -> Option<String> {
        self.extensions.get(user).map(|e| e.password.clone())
    }

    /// Our address for a transport, falling back to any we have.
    pub fn local_addr(&self, t: TransportKind) -> SocketAddr {
        self.advertised
            .get(&t)
            .or_else(|| self.advertised.values().next())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }
}
