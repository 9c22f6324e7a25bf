//! The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4).

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Instant;
use tracing::debug;

use super::timers::Slot;
use super::{TransactionLayer, TxEvent, TxKey, TxState};
use crate::message::{HeaderName, Message, Method};
use crate::parse::split_comma;

impl TransactionLayer {
    pub(super) fn client_invite_response(
        &mut self,
        now: Instant,
        id: u64,
        code: u16,
        msg: Message,
    ) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let key = TxKey(id);
        match (tx.state, code) {
            (TxState::Calling | TxState::Proceeding, 100..=199) => {
                tx.state = TxState::Proceeding;
                // Timers A and B only run in Calling: the request is not sent again.
                tx.out = None;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                self.timers.disarm(&mut tx.armed, id, Slot::Expire);
                self.events.push_back(TxEvent::Response { key, msg });
            }
            (TxState::Calling | TxState::Proceeding, 200..=299) => {
                tx.state = TxState::Accepted;
                tx.request = None;
                tx.out = None;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                // Timer M: absorb 2xx retransmissions (and other forks) for 64*T1.
                self.timers
                    .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t1x64());
                self.events.push_back(TxEvent::Response { key, msg });
            }
            (TxState::Calling | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                let ack = tx
                    .request
                    .take()
                    .map(|req| build_ack(&req, &msg).to_bytes());
                // From now on `out` is the ACK, not the request.
                tx.out = ack.clone();
                let (to, reliable) = (tx.peer, tx.reliable);
                if !reliable {
                    // Timer D: absorb retransmitted finals.
                    self.timers
                        .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.timer_d());
                }
                if let Some(ack) = ack {
                    self.transmit(to, ack);
                }
                self.events.push_back(TxEvent::Response { key, msg });
                if reliable {
                    self.terminate(id);
                }
            }
            (TxState::Completed, 300..) => {
                debug!(tx = id, code, "final response retransmission: ACK re-sent");
                if let Some(ack) = tx.out.clone() {
                    let to = tx.peer;
                    self.transmit(to, ack);
                }
            }
            (TxState::Accepted, 200..=299) => {
                self.events.push_back(TxEvent::Response { key, msg });
            }
            (state, code) => {
                debug!(tx = id, code, ?state, "late response absorbed");
            }
        }
    }

    pub(super) fn client_invite_timer(&mut self, now: Instant, id: u64, slot: Slot) {
        let Some(tx) = self.txs.get(&id) else {
            return;
        };
        match (slot, tx.state) {
            // Timer A: the interval doubles without a cap (§17.1.1.2).
            (Slot::Retransmit, TxState::Calling) => self.retransmit(now, id, |i| i * 2),
            // Timer B.
            (Slot::Expire, TxState::Calling) => {
                debug!(tx = id, "timer B: INVITE timed out");
                self.events.push_back(TxEvent::Timeout { key: TxKey(id) });
                self.terminate(id);
            }
            // Timers D and M.
            (Slot::Expire, _) => self.terminate(id),
            _ => {}
        }
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): the INVITE's
/// Request-URI, top Via, From, Call-ID, CSeq number and Route headers, and
/// the response's To (with its tag).
pub(crate) fn build_ack(req: &Message, resp: &Message) -> Message {
    let uri = req
        .request_uri()
        .cloned()
        .unwrap_or_else(|| crate::uri::Uri::sip(None, "invalid", None));
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(via) = req
        .header(&HeaderName::Via)
        .and_then(|line| split_comma(line).next())
    {
        ack.push(HeaderName::Via, via);
    }
    let max_forwards = req
        .header(&HeaderName::MaxForwards)
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"70"));
    ack.push(HeaderName::MaxForwards, max_forwards);
    for (name, src) in [
        (HeaderName::From, req),
        (HeaderName::To, resp),
        (HeaderName::CallId, req),
    ] {
        if let Some(v) = src.header(&name) {
            ack.push(name, v.clone());
        }
    }
    if let Ok(cseq) = req.cseq() {
        let mut v = BytesMut::with_capacity(16);
        v.put_slice(cseq.seq.to_string().as_bytes());
        v.put_slice(b" ACK");
        ack.push(HeaderName::CSeq, v.freeze());
    }
    for route in req.headers_named(&HeaderName::Route) {
        ack.push(HeaderName::Route, route.clone());
    }
    ack
}
