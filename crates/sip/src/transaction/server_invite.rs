//! The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).

use std::time::Instant;
use tracing::{debug, warn};

use super::key::AckKey;
use super::timers::Slot;
use super::{Index, TransactionLayer, TxEvent, TxKey, TxState};
use crate::message::Message;

impl TransactionLayer {
    pub(super) fn server_invite_send(&mut self, now: Instant, id: u64, code: u16, msg: Message) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match (tx.state, code) {
            (TxState::Proceeding, 100..=199) => {}
            (TxState::Proceeding, 200..=299) => {
                tx.state = TxState::Accepted;
                tx.interval = self.cfg.t1;
                if let Some(k) = AckKey::from_msg(&msg) {
                    self.accepted.insert(k.clone(), id);
                    tx.accepted_index = Some(Box::new(k));
                }
                if !tx.reliable {
                    self.timers
                        .arm(&mut tx.armed, id, Slot::Retransmit, now + self.cfg.t1);
                }
                // Timer L.
                self.timers
                    .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t1x64());
            }
            (TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                tx.interval = self.cfg.t1;
                if let Index::Server(k) = &tx.index {
                    let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
                    if let Some(ack_key) = k.ack_key(tag) {
                        self.servers.insert(ack_key.clone(), id);
                        tx.ack_index = Some(Box::new(ack_key));
                    }
                }
                // Timer G.
                if !tx.reliable {
                    self.timers
                        .arm(&mut tx.armed, id, Slot::Retransmit, now + self.cfg.t1);
                }
                // Timer H.
                self.timers
                    .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t1x64());
            }
            // The TU may re-send its 2xx (or a 2xx for another fork) itself.
            (TxState::Accepted, 200..=299) => {}
            (state, code) => {
                warn!(
                    tx = id,
                    code,
                    ?state,
                    "response not allowed in this state: dropped"
                );
                return;
            }
        }
        // The request only served to build 100 Trying.
        tx.request = None;
        self.timers.disarm(&mut tx.armed, id, Slot::Trying);
        let bytes = msg.to_bytes();
        tx.out = Some(bytes.clone());
        let to = tx.peer;
        self.transmit(to, bytes);
    }

    /// An ACK whose branch matched this transaction. Returns false when the
    /// ACK is not for a non-2xx final and belongs to the TU.
    pub(super) fn server_invite_ack(&mut self, now: Instant, id: u64) -> bool {
        let Some(tx) = self.txs.get_mut(&id) else {
            return false;
        };
        match tx.state {
            TxState::Completed => {
                tx.state = TxState::Confirmed;
                tx.out = None;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                if tx.reliable {
                    self.terminate(id);
                } else {
                    // Timer I: absorb ACK retransmissions.
                    self.timers
                        .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t4);
                }
                true
            }
            TxState::Confirmed => {
                debug!(tx = id, "ACK retransmission absorbed");
                true
            }
            _ => false,
        }
    }

    pub(super) fn server_invite_timer(&mut self, now: Instant, id: u64, slot: Slot) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match (slot, tx.state) {
            // Timer G and the 2xx retransmission of Accepted.
            (Slot::Retransmit, TxState::Completed) => {
                let cfg = self.cfg;
                self.retransmit(now, id, |i| cfg.capped_double(i));
            }
            (Slot::Retransmit, TxState::Accepted) if !tx.acked => {
                let cfg = self.cfg;
                self.retransmit(now, id, |i| cfg.capped_double(i));
            }
            (Slot::Expire, TxState::Completed) => {
                warn!(tx = id, "timer H: no ACK for a final response");
                self.terminate(id);
            }
            (Slot::Expire, TxState::Accepted) => {
                if !tx.acked {
                    warn!(tx = id, "timer L: no ACK for a 2xx");
                    self.events
                        .push_back(TxEvent::AckTimeout { key: TxKey(id) });
                }
                self.terminate(id);
            }
            // Timer I.
            (Slot::Expire, _) => self.terminate(id),
            (Slot::Trying, TxState::Proceeding) if tx.out.is_none() => {
                if let Some(req) = tx.request.take() {
                    let trying = Message::response_to(&req, 100, None).to_bytes();
                    tx.out = Some(trying.clone());
                    let to = tx.peer;
                    self.transmit(to, trying);
                }
            }
            _ => {}
        }
    }
}
