//! The non-INVITE client transaction (RFC 3261 §17.1.2).

use std::time::Instant;
use tracing::debug;

use super::timers::Slot;
use super::{TransactionLayer, TxEvent, TxKey, TxState};
use crate::message::Message;

impl TransactionLayer {
    pub(super) fn client_non_invite_response(
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
            (TxState::Trying | TxState::Proceeding, 100..=199) => {
                // Timer E keeps running; it re-arms with T2 from now on.
                tx.state = TxState::Proceeding;
                self.events.push_back(TxEvent::Response { key, msg });
            }
            (TxState::Trying | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                tx.out = None;
                self.timers.disarm(&mut tx.armed, id, Slot::Retransmit);
                let reliable = tx.reliable;
                if !reliable {
                    // Timer K: absorb retransmitted finals.
                    self.timers
                        .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t4);
                }
                self.events.push_back(TxEvent::Response { key, msg });
                if reliable {
                    self.terminate(id);
                }
            }
            (state, code) => {
                debug!(tx = id, code, ?state, "response retransmission absorbed");
            }
        }
    }

    pub(super) fn client_non_invite_timer(&mut self, now: Instant, id: u64, slot: Slot) {
        let Some(tx) = self.txs.get(&id) else {
            return;
        };
        let t2 = self.cfg.t2;
        match (slot, tx.state) {
            // Timer E.
            (Slot::Retransmit, TxState::Trying) => {
                let cfg = self.cfg;
                self.retransmit(now, id, |i| cfg.capped_double(i));
            }
            (Slot::Retransmit, TxState::Proceeding) => self.retransmit(now, id, |_| t2),
            // Timer F.
            (Slot::Expire, TxState::Trying | TxState::Proceeding) => {
                debug!(tx = id, "timer F: request timed out");
                self.events.push_back(TxEvent::Timeout { key: TxKey(id) });
                self.terminate(id);
            }
            // Timer K.
            (Slot::Expire, _) => self.terminate(id),
            _ => {}
        }
    }
}
