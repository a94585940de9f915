//! The receive jitter buffer: packets go in as they arrive, one frame comes
//! out every 20 ms in sequence order. Reorders, drops late and duplicate
//! packets, and reports each missing frame as [`Playout::Lost`] at its place
//! in time so the consumer can conceal it (repeat the last frame attenuated,
//! then silence) and the call loop's clock never slips.
//!
//! Bounded: at most [`JitterConfig::capacity`] frames are held; when a push
//! would exceed it the oldest frame is dropped (the buffer is behind, and
//! newer audio matters more), counted in [`JitterBuffer::overflows`].

use std::collections::BTreeMap;

/// Sizes of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frames buffered before playout starts (the added delay, 20 ms each).
    pub target_depth: usize,
    /// Most frames held at once.
    pub capacity: usize,
    /// Consecutive lost frames after which the buffer re-primes (the far end
    /// paused sending, e.g. while on hold).
    pub reprime_after: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            target_depth: 3,
            capacity: 50,
            reprime_after: 25,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Queued,
    /// Its playout time has passed: dropped.
    Late,
    /// Already held: dropped.
    Duplicate,
    /// Stored, and the oldest held frame was dropped to make room.
    Overflow,
}

/// One 20 ms tick's worth of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Still priming (start of the call or after a long gap): play silence.
    Idle,
    /// The frame due now.
    Frame(Vec<u8>),
    /// The frame due now never arrived (or arrived too late): conceal it.
    Lost,
}

/// The buffer, keyed by extended sequence number (see [`crate::RecvStats`]).
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    frames: BTreeMap<u64, Vec<u8>>,
    next: Option<u64>,
    playing: bool,
    lost_run: u32,
    late: u64,
    duplicates: u64,
    overflows: u64,
    lost: u64,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        Self {
            config: JitterConfig {
                target_depth: config.target_depth.max(1),
                capacity: config.capacity.max(config.target_depth.max(1)),
                reprime_after: config.reprime_after.max(1),
            },
            frames: BTreeMap::new(),
            next: None,
            playing: false,
            lost_run: 0,
            late: 0,
            duplicates: 0,
            overflows: 0,
            lost: 0,
        }
    }

    /// Stores a packet's payload under its extended sequence number.
    pub fn push(&mut self, seq: u64, payload: &[u8]) -> PushOutcome {
        if self.next.is_some_and(|next| seq < next) {
            self.late += 1;
            return PushOutcome::Late;
        }
        if self.frames.contains_key(&seq) {
            self.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        self.frames.insert(seq, payload.to_vec());
        if self.frames.len() > self.config.capacity {
            if let Some((oldest, _)) = self.frames.pop_first() {
                if self.next.is_some_and(|next| oldest >= next) {
                    self.next = Some(oldest + 1);
                }
            }
            self.overflows += 1;
            return PushOutcome::Overflow;
        }
        PushOutcome::Queued
    }

    /// The frame due now; call once every 20 ms.
    pub fn pop(&mut self) -> Playout {
        if !self.playing {
            if self.frames.len() < self.config.target_depth {
                return Playout::Idle;
            }
            self.playing = true;
            self.lost_run = 0;
            // Playout continues from the earliest frame held.
            self.next = self.frames.keys().next().copied();
        }
        let Some(next) = self.next else {
            return Playout::Idle;
        };
        // A gap longer than the buffer (a sender restart) is skipped, not played as loss.
        if let Some(&first) = self.frames.keys().next() {
            if first > next + self.config.capacity as u64 {
                self.next = Some(first);
                return self.pop();
            }
        }
        self.next = Some(next + 1);
        match self.frames.remove(&next) {
            Some(frame) => {
                self.lost_run = 0;
                Playout::Frame(frame)
            }
            None => {
                self.lost += 1;
                self.lost_run += 1;
                if self.lost_run >= self.config.reprime_after && self.frames.is_empty() {
                    self.playing = false;
                }
                Playout::Lost
            }
        }
    }

    /// Frames held now.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Packets dropped because they arrived after their playout time.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Duplicate packets dropped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Frames dropped because the buffer was full.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Frames reported lost (concealed).
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Vec<u8> {
        vec![seq as u8; 4]
    }

    fn drain(jb: &mut JitterBuffer, n: usize) -> Vec<Playout> {
        (0..n).map(|_| jb.pop()).collect()
    }

    #[test]
    fn primes_then_plays_in_order_despite_reordering() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        assert_eq!(jb.pop(), Playout::Idle);
        for seq in [11, 10, 13, 12] {
            assert_eq!(jb.push(seq, &frame(seq)), PushOutcome::Queued);
        }
        let out = drain(&mut jb, 5);
        assert_eq!(
            out,
            vec![
                Playout::Frame(frame(10)),
                Playout::Frame(frame(11)),
                Playout::Frame(frame(12)),
                Playout::Frame(frame(13)),
                Playout::Lost
            ]
        );
    }

    #[test]
    fn loss_is_reported_in_place_and_late_and_duplicate_dropped() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for seq in [0, 1, 3, 4] {
            jb.push(seq, &frame(seq));
        }
        assert_eq!(jb.push(4, &frame(4)), PushOutcome::Duplicate);
        let out = drain(&mut jb, 3);
        assert_eq!(out[2], Playout::Lost, "frame 2 never came");
        assert_eq!(jb.push(2, &frame(2)), PushOutcome::Late);
        assert_eq!(jb.pop(), Playout::Frame(frame(3)));
        assert_eq!((jb.lost(), jb.late(), jb.duplicates()), (1, 1, 1));
    }

    #[test]
    fn full_buffer_drops_the_oldest() {
        let config = JitterConfig {
            target_depth: 2,
            capacity: 4,
            reprime_after: 25,
        };
        let mut jb = JitterBuffer::new(config);
        for seq in 0..4 {
            assert_eq!(jb.push(seq, &frame(seq)), PushOutcome::Queued);
        }
        assert_eq!(jb.push(4, &frame(4)), PushOutcome::Overflow);
        assert_eq!(jb.len(), 4);
        assert_eq!(jb.pop(), Playout::Frame(frame(1)));
        assert_eq!(jb.overflows(), 1);
    }

    #[test]
    fn reprimes_after_a_long_silence_and_skips_a_sender_restart() {
        let config = JitterConfig {
            target_depth: 2,
            capacity: 10,
            reprime_after: 5,
        };
        let mut jb = JitterBuffer::new(config);
        jb.push(0, &frame(0));
        jb.push(1, &frame(1));
        drain(&mut jb, 7);
        assert_eq!(jb.pop(), Playout::Idle, "re-priming after 5 losses");
        jb.push(1000, &frame(1000));
        jb.push(1001, &frame(1001));
        assert_eq!(jb.pop(), Playout::Frame(frame(1000)));
    }

    #[test]
    fn five_percent_loss_keeps_time() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut frames = 0;
        let mut lost = 0;
        for seq in 0..1000u64 {
            if seq % 20 != 7 {
                jb.push(seq, &frame(seq));
            }
            if seq >= 3 {
                match jb.pop() {
                    Playout::Frame(_) => frames += 1,
                    Playout::Lost => lost += 1,
                    Playout::Idle => {}
                }
            }
        }
        assert_eq!(lost, 50);
        assert_eq!(frames + lost, 997);
    }
}
