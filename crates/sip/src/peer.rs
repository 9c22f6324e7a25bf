//! Where a message came from or goes to: a transport and a socket address.

use std::fmt;
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }

    /// Reliable transports need no retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        })
    }
}

/// The far end of a hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: TransportKind::Udp,
            addr,
        }
    }

    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            transport: TransportKind::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// A listening socket as the config writes it: `udp:0.0.0.0:5060`, `tcp:[::1]:5060`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    pub transport: TransportKind,
    pub addr: SocketAddr,
}

impl std::str::FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, addr) = s.split_once(':').ok_or_else(|| {
            format!("`{s}`: expected TRANSPORT:ADDRESS:PORT, e.g. udp:0.0.0.0:5060")
        })?;
        let transport = match kind.to_ascii_lowercase().as_str() {
            "udp" => TransportKind::Udp,
            "tcp" => TransportKind::Tcp,
            other => return Err(format!("`{s}`: unknown transport `{other}` (udp or tcp)")),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| {
            format!("`{s}`: `{addr}` is not an IP address and port (IPv6 in brackets)")
        })?;
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}
