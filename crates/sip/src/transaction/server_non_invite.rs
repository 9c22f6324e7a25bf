//! The non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;
use tracing::warn;

use super::timers::Slot;
use super::{TransactionLayer, TxState};
use crate::message::Message;

impl TransactionLayer {
    pub(super) fn server_non_invite_send(
        &mut self,
        now: Instant,
        id: u64,
        code: u16,
        msg: Message,
    ) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let final_response = match (tx.state, code) {
            (TxState::Trying | TxState::Proceeding, 100..=199) => {
                tx.state = TxState::Proceeding;
                false
            }
            (TxState::Trying | TxState::Proceeding, _) => {
                tx.state = TxState::Completed;
                true
            }
            (state, code) => {
                warn!(
                    tx = id,
                    code,
                    ?state,
                    "response after the final one: dropped"
                );
                return;
            }
        };
        let bytes = msg.to_bytes();
        tx.out = Some(bytes.clone());
        let (to, reliable) = (tx.peer, tx.reliable);
        if final_response && !reliable {
            // Timer J: answer request retransmissions with the final response.
            self.timers
                .arm(&mut tx.armed, id, Slot::Expire, now + self.cfg.t1x64());
        }
        self.transmit(to, bytes);
        if final_response && reliable {
            self.terminate(id);
        }
    }

    pub(super) fn server_non_invite_timer(&mut self, _now: Instant, id: u64, slot: Slot) {
        // Timer J is the only timer of this machine.
        if slot == Slot::Expire {
            self.terminate(id);
        }
    }
}
