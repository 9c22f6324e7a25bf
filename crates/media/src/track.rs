//! Packet classification and the per-direction RTP receive statistics of
//! RFC 3550 A.1 (sequence numbers, loss) and A.8 (interarrival jitter).
//!
//! The fixed header is read in place: webrtc-rs `Header::unmarshal` builds
//! `Vec`s for CSRCs and extensions (an allocation per packet) and accepts any
//! version, while the relay only needs four fields of the first 12 octets.

/// What a datagram is, judged from its first octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Rtp(RtpHeader),
    Rtcp,
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Classifies a datagram received on an RTP port: RTP (version 2, at least
/// the 12-octet fixed header) or RTCP multiplexed on it (RFC 5761 §4:
/// second octet 192..=223, at least the 8-octet RTCP header).
pub(crate) fn classify_rtp_port(p: &[u8]) -> Kind {
    if p.len() < 8 || p[0] >> 6 != 2 {
        return Kind::Invalid;
    }
    if (192..=223).contains(&p[1]) {
        return Kind::Rtcp;
    }
    if p.len() < 12 {
        return Kind::Invalid;
    }
    Kind::Rtp(RtpHeader {
        payload_type: p[1] & 0x7f,
        seq: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    })
}

/// Classifies a datagram received on an RTCP port.
pub(crate) fn classify_rtcp_port(p: &[u8]) -> Kind {
    if p.len() >= 8 && p[0] >> 6 == 2 {
        Kind::Rtcp
    } else {
        Kind::Invalid
    }
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Receive statistics for one direction, owned by the task that receives it.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    started: bool,
    ssrc: u32,
    max_seq: u16,
    cycles: u64,
    base: u64,
    received: u64,
    /// Loss counted under earlier SSRCs or before a sequence restart.
    lost_before: u64,
    jitter_pt: Option<u8>,
    jitter_clock: u32,
    last_transit: Option<u32>,
    /// Jitter in timestamp units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u32,
}

impl Tracker {
    /// Accounts one RTP packet. `arrival` is the arrival time in units of
    /// `clock` (wrapping); `for_jitter` is false for packets whose
    /// timestamps do not follow the media clock (telephone events).
    pub fn on_packet(&mut self, h: &RtpHeader, arrival: u32, clock: u32, for_jitter: bool) {
        if !self.started || h.ssrc != self.ssrc {
            self.restart(h);
            self.ssrc = h.ssrc;
            self.last_transit = None;
        } else {
            let delta = h.seq.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if h.seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = h.seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A jump too large to be loss: the source restarted its sequence.
                self.restart(h);
            }
            // Otherwise a duplicate or a late packet: counted as received.
        }
        self.received += 1;

        if !for_jitter {
            return;
        }
        if self.jitter_pt != Some(h.payload_type) || self.jitter_clock != clock {
            // A codec or clock change breaks the transit time series.
            self.jitter_pt = Some(h.payload_type);
            self.jitter_clock = clock;
            self.last_transit = None;
        }
        let transit = arrival.wrapping_sub(h.timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            self.jitter_q4 = self.jitter_q4 - ((self.jitter_q4 + 8) >> 4) + d.min(u32::MAX >> 5);
        }
        self.last_transit = Some(transit);
    }

    fn restart(&mut self, h: &RtpHeader) {
        self.lost_before += self.lost_current();
        self.started = true;
        self.max_seq = h.seq;
        self.cycles = 0;
        self.base = u64::from(h.seq);
        self.received = 0;
    }

    fn lost_current(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let expected = self.cycles + u64::from(self.max_seq) + 1 - self.base;
        expected.saturating_sub(self.received)
    }

    /// Packets lost so far (duplicates can hide losses, never make it negative).
    pub fn lost(&self) -> u64 {
        self.lost_before + self.lost_current()
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seq: u16, timestamp: u32) -> RtpHeader {
        RtpHeader {
            payload_type: 0,
            seq,
            timestamp,
            ssrc: 7,
        }
    }

    #[test]
    fn classification() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0x80 | 101; // marker + telephone-event
        rtp[2..4].copy_from_slice(&513u16.to_be_bytes());
        assert_eq!(
            classify_rtp_port(&rtp),
            Kind::Rtp(RtpHeader {
                payload_type: 101,
                seq: 513,
                timestamp: 0,
                ssrc: 0
            })
        );
        assert_eq!(classify_rtp_port(&rtp[..11]), Kind::Invalid);
        let mut v1 = rtp;
        v1[0] = 0x40;
        assert_eq!(classify_rtp_port(&v1), Kind::Invalid);
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        assert_eq!(classify_rtp_port(&rr), Kind::Rtcp);
        assert_eq!(classify_rtcp_port(&rr), Kind::Rtcp);
        assert_eq!(classify_rtcp_port(&rr[..7]), Kind::Invalid);
        assert_eq!(
            classify_rtcp_port(b"\x00\x01\x00\x00STUNSTUN"),
            Kind::Invalid
        );
    }

    #[test]
    fn loss_from_gaps_across_wrap_and_ssrc_change() {
        let mut t = Tracker::default();
        for seq in [65533u16, 65534, 65535, 0, 2, 3] {
            t.on_packet(&h(seq, 0), 0, 8000, false);
        }
        assert_eq!(t.lost(), 1);
        // A late packet fills the gap.
        t.on_packet(&h(1, 0), 0, 8000, false);
        assert_eq!(t.lost(), 0);
        // A duplicate does not make loss negative.
        t.on_packet(&h(3, 0), 0, 8000, false);
        assert_eq!(t.lost(), 0);
        // 4 and 5 missing, but the duplicate counts as received (RFC 3550 A.3).
        t.on_packet(&h(6, 0), 0, 8000, false);
        assert_eq!(t.lost(), 1);
        // New SSRC: earlier loss kept, new sequence space.
        let mut other = h(100, 0);
        other.ssrc = 8;
        t.on_packet(&other, 0, 8000, false);
        other.seq = 102;
        t.on_packet(&other, 0, 8000, false);
        assert_eq!(t.lost(), 2);
        // A huge jump restarts instead of counting thousands of losses.
        other.seq = 40000;
        t.on_packet(&other, 0, 8000, false);
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn jitter_zero_for_perfect_timing_and_grows_with_variation() {
        let mut t = Tracker::default();
        for i in 0..50u16 {
            let ts = u32::from(i) * 160;
            t.on_packet(&h(i, ts), 1000 + ts, 8000, true);
        }
        assert_eq!(t.jitter(), 0);
        for i in 50..100u16 {
            let ts = u32::from(i) * 160;
            let wobble = if i % 2 == 0 { 80 } else { 0 };
            t.on_packet(&h(i, ts), 1000 + ts + wobble, 8000, true);
        }
        // Converges towards the mean absolute transit difference (80).
        assert!((60..=80).contains(&t.jitter()), "jitter {}", t.jitter());
        // Event packets are not used for jitter.
        let before = t.jitter();
        t.on_packet(&h(100, 0), 999_999, 8000, false);
        assert_eq!(t.jitter(), before);
    }
}
