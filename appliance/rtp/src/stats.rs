//! Receive statistics per RFC 3550: the sequence-number extension and
//! validation of appendix A.1 and the interarrival jitter of appendix A.8,
//! which also feed the receiver reports and the loss/jitter metrics.

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u64 = 1 << 16;

/// Per-source receive state.
#[derive(Debug, Clone, Default)]
pub struct RecvStats {
    ssrc: Option<u32>,
    base_seq: u64,
    max_seq: u16,
    cycles: u64,
    bad_seq: Option<u16>,
    received: u64,
    transit: Option<i64>,
    jitter: f64,
    restarts: u64,
    expected_prior: u64,
    received_prior: u64,
}

impl RecvStats {
    /// Fresh state; the first packet sets the source.
    pub fn new() -> Self {
        Self::default()
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        self.ssrc = Some(ssrc);
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.transit = None;
        self.jitter = 0.0;
        self.expected_prior = 0;
        self.received_prior = 0;
    }

    /// The RTCP report block for this source (RFC 3550 section 6.4.1 and
    /// A.3), with the fraction lost since the previous call; `None` before
    /// any packet. `lsr`/`dlsr` come from the last sender report received.
    pub fn report_block(&mut self, lsr: u32, dlsr: u32) -> Option<crate::rtcp::ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let interval_expected = expected - self.expected_prior;
        let interval_received = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let interval_lost = interval_expected.saturating_sub(interval_received);
        let fraction_lost = (interval_lost << 8)
            .checked_div(interval_expected)
            .map_or(0, |f| f.min(255) as u8);
        Some(crate::rtcp::ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().min(0x7f_ffff) as u32,
            highest_seq: self.extended_max() as u32,
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }

    /// Accounts one packet. `arrival` is the arrival time in the payload's
    /// clock units (8 kHz for G.711). Returns the extended (never wrapping)
    /// sequence number, or `None` for a packet after a jump of more than 3000
    /// that a second, consecutive packet has not yet confirmed (a stray).
    /// A new SSRC, or a confirmed jump, restarts the statistics.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: u32) -> Option<u64> {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.restarts += 1;
            }
            self.restart(ssrc, seq);
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += SEQ_MOD;
                }
                self.max_seq = seq;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                // A very large jump: believe it only when the next packet follows it.
                if self.bad_seq == Some(seq) {
                    self.restarts += 1;
                    self.restart(ssrc, seq);
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return None;
                }
            }
            // else: a duplicate or a packet reordered by up to MAX_MISORDER.
        }
        self.received += 1;
        let transit = i64::from(arrival) - i64::from(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
        Some(self.extend(seq))
    }

    fn extend(&self, seq: u16) -> u64 {
        let ext = self.cycles + u64::from(seq);
        // A late packet from before the last wrap belongs to the previous cycle.
        if seq > self.max_seq && seq - self.max_seq > u16::MAX / 2 {
            ext.saturating_sub(SEQ_MOD)
        } else {
            ext
        }
    }

    /// Highest extended sequence number seen.
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Packets expected from the first to the highest sequence number.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        self.extended_max() + 1 - self.base_seq
    }

    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets lost: expected minus received, never negative.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in clock units.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Times the source changed or its sequence jumped (stream restarts).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_across_the_wrap_and_counts_loss() {
        let mut s = RecvStats::new();
        let mut seq = 65530u16;
        let mut exts = Vec::new();
        for i in 0..20u32 {
            if i != 10 {
                exts.push(s.on_packet(7, seq, i * 160, i * 160).unwrap());
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(exts.first(), Some(&65530));
        assert_eq!(exts.last(), Some(&(65530 + 19)));
        assert_eq!(s.expected(), 20);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.jitter(), 0.0);
    }

    #[test]
    fn reordered_packet_from_before_the_wrap_keeps_its_cycle() {
        let mut s = RecvStats::new();
        s.on_packet(1, 65534, 0, 0);
        s.on_packet(1, 0, 320, 320);
        assert_eq!(s.on_packet(1, 65535, 160, 330), Some(65535));
        assert_eq!(s.extended_max(), 65536);
    }

    #[test]
    fn a_stray_jump_is_ignored_until_confirmed() {
        let mut s = RecvStats::new();
        s.on_packet(1, 100, 0, 0);
        assert_eq!(s.on_packet(1, 40_000, 160, 160), None);
        assert_eq!(s.on_packet(1, 101, 160, 160), Some(101));
        assert_eq!(s.on_packet(1, 50_000, 320, 320), None);
        assert_eq!(s.on_packet(1, 50_001, 480, 480), Some(50_001));
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.on_packet(2, 5, 0, 0), Some(5), "a new SSRC restarts");
        assert_eq!(s.restarts(), 2);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut s = RecvStats::new();
        // Packets every 160 units, arriving alternately 0 and 80 units late.
        for i in 0..400u32 {
            s.on_packet(1, i as u16, i * 160, i * 160 + (i % 2) * 80);
        }
        assert!((s.jitter() - 80.0).abs() < 1.0, "{}", s.jitter());
    }
}
