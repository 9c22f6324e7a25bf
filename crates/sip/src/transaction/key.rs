//! Transaction identities: the opaque [`TxKey`] handed to the TU and the
//! matching keys of RFC 3261 §17.1.3 and §17.2.3 used to find a transaction
//! from a message in O(1).

use bytes::Bytes;
use std::fmt;

use crate::header::Via;
use crate::message::{HeaderName, Message, Method};

/// The opaque id of one transaction. Ids are never reused within a layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxKey(pub(crate) u64);

impl TxKey {
    /// A number unique within the layer, for logs.
    pub fn id(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for TxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx#{}", self.0)
    }
}

/// §17.1.3: a response matches a client transaction by the branch of its
/// top Via and the method of its CSeq (a CANCEL shares its INVITE's branch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) branch: Bytes,
    pub(crate) method: Method,
}

/// §17.2.3: how a request finds its server transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// Branch with the magic cookie, sent-by and method (ACK counts as INVITE).
    Rfc3261 {
        branch: Bytes,
        host: Bytes,
        port: Option<u16>,
        method: Method,
    },
    /// The RFC 2543 fallback (boxed: rare, and large enough to bloat every key).
    Rfc2543(Box<Rfc2543Key>),
}

/// RFC 2543 matching: Request-URI, tags, Call-ID, CSeq and top Via.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rfc2543Key {
    uri: Bytes,
    to_tag: Option<Bytes>,
    from_tag: Option<Bytes>,
    call_id: Bytes,
    cseq: u32,
    method: Method,
    via: Bytes,
}

impl ServerKey {
    /// The key of `req` (whose parsed top Via is `via`) for a transaction
    /// created by `method`: pass `Method::Invite` to look up the INVITE an
    /// ACK or a CANCEL refers to.
    pub(crate) fn for_request(req: &Message, via: &Via, method: Method) -> ServerKey {
        if let (true, Some(branch)) = (via.has_rfc3261_branch(), via.branch()) {
            let [branch, host] = detached([branch, &via.host]);
            return ServerKey::Rfc3261 {
                branch,
                host: lowercase(&host),
                port: via.port,
                method,
            };
        }
        ServerKey::Rfc2543(Box::new(Rfc2543Key {
            uri: req.request_uri().map(|u| u.to_bytes()).unwrap_or_default(),
            to_tag: req.to_hdr().ok().and_then(|t| t.tag().cloned()),
            from_tag: req.from_hdr().ok().and_then(|f| f.tag().cloned()),
            call_id: req.call_id().cloned().unwrap_or_default(),
            cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
            method,
            via: via.to_bytes(),
        }))
    }

    /// The same key for another method (a CANCEL's key -> its INVITE's key).
    pub(crate) fn with_method(&self, m: Method) -> ServerKey {
        let mut k = self.clone();
        match &mut k {
            ServerKey::Rfc3261 { method, .. } => *method = m,
            ServerKey::Rfc2543(k) => k.method = m,
        }
        k
    }

    /// For an RFC 2543 INVITE: the key its ACK will carry once a final
    /// response with To tag `tag` was sent (the ACK's To holds that tag).
    pub(crate) fn ack_key(&self, tag: Option<Bytes>) -> Option<ServerKey> {
        match self {
            ServerKey::Rfc3261 { .. } => None,
            ServerKey::Rfc2543(k) if k.to_tag == tag => None,
            ServerKey::Rfc2543(k) => {
                let mut k = k.clone();
                k.to_tag = tag;
                Some(ServerKey::Rfc2543(k))
            }
        }
    }
}

/// RFC 6026 Accepted state: the ACK for a 2xx is a new transaction, so it
/// finds its INVITE by Call-ID, CSeq number and From tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    call_id: Bytes,
    cseq: u32,
    from_tag: Option<Bytes>,
}

impl AckKey {
    pub(crate) fn from_msg(msg: &Message) -> Option<AckKey> {
        let call_id = msg.header(&HeaderName::CallId)?;
        let cseq = msg.cseq().ok()?.seq;
        let from_tag = msg.from_hdr().ok().and_then(|f| f.tag().cloned());
        let empty = Bytes::new();
        let [call_id, tag] = detached([call_id, from_tag.as_ref().unwrap_or(&empty)]);
        Some(AckKey {
            call_id,
            cseq,
            from_tag: from_tag.map(|_| tag),
        })
    }
}

/// Copies of `parts` in one new buffer. A key lives as long as its
/// transaction (32 s after a final response); slices of the message would
/// keep the whole datagram that long.
fn detached<const N: usize>(parts: [&Bytes; N]) -> [Bytes; N] {
    let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        buf.extend_from_slice(p);
    }
    let buf = Bytes::from(buf);
    let mut at = 0;
    parts.map(|p| {
        let part = buf.slice(at..at + p.len());
        at += p.len();
        part
    })
}

/// Host names compare case-insensitively; copy only when needed.
fn lowercase(b: &Bytes) -> Bytes {
    if b.iter().any(u8::is_ascii_uppercase) {
        Bytes::from(b.to_ascii_lowercase())
    } else {
        b.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outside(part: &Bytes, wire: &Bytes) -> bool {
        let (start, end) = (wire.as_ptr() as usize, wire.as_ptr() as usize + wire.len());
        let p = part.as_ptr() as usize;
        !part.is_empty() && !(start..end).contains(&p)
    }

    #[test]
    fn keys_hold_copies_not_the_datagram() {
        let wire = Bytes::from(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP Host.Example.com:5070;branch=z9hG4bKabc\r\n\
             From: <sip:alice@example.com>;tag=a1\r\n\
             To: <sip:bob@example.com>\r\n\
             Call-ID: c1@example.com\r\n\
             CSeq: 7 INVITE\r\n\
             Content-Length: 0\r\n\r\n",
        );
        let msg = crate::parse::parse_message(&wire).unwrap();
        let via = msg.top_via().unwrap();
        let ServerKey::Rfc3261 {
            branch,
            host,
            port,
            method,
        } = ServerKey::for_request(&msg, &via, Method::Invite)
        else {
            panic!("an RFC 3261 branch gives an RFC 3261 key");
        };
        assert_eq!(
            (&branch[..], &host[..]),
            (&b"z9hG4bKabc"[..], &b"host.example.com"[..])
        );
        assert_eq!((port, method), (Some(5070), Method::Invite));
        assert!(outside(&branch, &wire) && outside(&host, &wire));

        let ack = AckKey::from_msg(&msg).unwrap();
        assert_eq!(&ack.call_id[..], b"c1@example.com");
        assert_eq!(ack.cseq, 7);
        let tag = ack.from_tag.clone().unwrap();
        assert_eq!(&tag[..], b"a1");
        assert!(outside(&ack.call_id, &wire) && outside(&tag, &wire));
    }
}
