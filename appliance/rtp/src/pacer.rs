//! The send pacer: packet `n` is due at `start + n × 20 ms`, computed from
//! the monotonic start every time (never by adding intervals), so a 10-minute
//! call ends exactly 30,000 frames after it began whatever each sleep overshot.
//! The RTP timestamp advances 160 units (8 kHz) per frame in step.

use std::time::{Duration, Instant};

/// Send deadlines for one RTP stream.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    samples_per_frame: u32,
    next: u64,
    skipped: u64,
}

impl Pacer {
    /// A pacer whose frame 0 is due at `start`.
    pub fn new(start: Instant, period: Duration, samples_per_frame: u32) -> Self {
        Self {
            start,
            period,
            samples_per_frame,
            next: 0,
            skipped: 0,
        }
    }

    /// 20 ms frames of 160 samples (G.711 at 8 kHz).
    pub fn g711(start: Instant) -> Self {
        Self::new(start, Duration::from_millis(20), 160)
    }

    /// When the next frame is due.
    pub fn deadline(&self) -> Instant {
        self.deadline_of(self.next)
    }

    fn deadline_of(&self, n: u64) -> Instant {
        // u32 frames cover 2.7 years at 20 ms: saturate rather than overflow.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.start + self.period * n
    }

    /// Index of the next frame.
    pub fn frame(&self) -> u64 {
        self.next
    }

    /// RTP timestamp offset of the next frame (add the stream's random base).
    pub fn timestamp(&self) -> u32 {
        (self.next as u32).wrapping_mul(self.samples_per_frame)
    }

    /// Marks the next frame sent and returns how late it went out.
    pub fn sent(&mut self, now: Instant) -> Duration {
        let late = now.saturating_duration_since(self.deadline());
        self.next += 1;
        late
    }

    /// After a stall longer than `max_late` (the process was descheduled),
    /// skips the frames whose time has passed instead of bursting them out;
    /// the timestamp jumps accordingly, as for silence suppression. Returns
    /// the frames skipped.
    pub fn catch_up(&mut self, now: Instant, max_late: Duration) -> u64 {
        let late = now.saturating_duration_since(self.deadline());
        if late <= max_late {
            return 0;
        }
        let behind = (late.as_nanos() / self.period.as_nanos().max(1)) as u64;
        self.next += behind;
        self.skipped += behind;
        behind
    }

    /// Frames skipped by [`Pacer::catch_up`] so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_minutes_without_drift() {
        let start = Instant::now();
        let mut p = Pacer::g711(start);
        for _ in 0..30_000 {
            // Every send overshoots by 1.3 ms; deadlines must not accumulate it.
            let now = p.deadline() + Duration::from_micros(1300);
            assert_eq!(p.sent(now), Duration::from_micros(1300));
        }
        assert_eq!(p.deadline(), start + Duration::from_secs(600));
        assert_eq!(p.timestamp(), 30_000 * 160);
    }

    #[test]
    fn catches_up_after_a_stall_without_a_burst() {
        let start = Instant::now();
        let mut p = Pacer::g711(start);
        p.sent(start);
        let now = start + Duration::from_millis(205);
        assert_eq!(p.catch_up(now, Duration::from_millis(60)), 9);
        assert_eq!(p.frame(), 10);
        assert!(p.deadline() <= now && now - p.deadline() < Duration::from_millis(20));
        assert_eq!(p.catch_up(now, Duration::from_millis(60)), 0);
        assert_eq!(p.skipped(), 9);
    }
}
