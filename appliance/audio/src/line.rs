//! What a phone line hands the call loop and takes from it, whatever carries
//! it (RTP, an ALSA handset, a browser WebSocket): 20 ms caller frames and
//! digits in, and a [`Playout`] queue of robot speech out that the line's
//! paced sender drains one frame per tick.
//!
//! The call loop never sees a socket or a sound card; a transport never sees
//! speech recognition. Barge-in is [`Playout::flush`]: the robot stops at the
//! next 20 ms tick.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use crate::frame::Frame8k;

/// One event from the caller's side of the line.
// Frames are nearly every event (50 a second): boxing them to shrink the
// rare digit variant would allocate on every frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// 20 ms of caller audio at 8 kHz; a lost packet arrives as concealment,
    /// silence as silence, so frames are also the call loop's clock.
    Audio(Frame8k),
    /// A key the caller pressed (RFC 4733 event or SIP INFO): `0-9 * # A-D`.
    Dtmf(char),
}

/// The robot's outgoing speech: the call loop pushes sentences as they are
/// synthesised, the line's sender takes one frame per tick (silence when the
/// queue is empty, so the far end's jitter buffer never holds a stale tail).
///
/// Full policy: samples beyond the capacity are **dropped and counted**
/// (robot speech longer than the capacity means the call loop is far ahead of
/// real time; blocking it would stall barge-in detection).
///
/// A short mutex, not a lock-free ring: the consumer is a paced network task
/// taking 160 samples per 20 ms, and barge-in needs to empty the queue from
/// the other side, which an SPSC ring cannot do.
#[derive(Debug)]
pub struct Playout {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<i16>,
    dropped: u64,
    flushed: u64,
    /// Number of talk spurts started (idle -> voice transitions at the sender).
    spurts: u64,
    /// When the latest spurt's first frame was taken for sending.
    spurt_started: Option<Instant>,
    /// The sender took a voice frame on its last tick.
    talking: bool,
    /// Start times of the latest spurts, indexed by spurt number mod 16.
    log: [Option<Instant>; SPURT_LOG],
    /// RMS of the frames taken on the latest ticks (silence counts as 0),
    /// for telling the robot's echo from the caller.
    levels: [f32; LEVEL_FRAMES],
    level_at: usize,
    /// The call recorder's robot side: every frame the sender takes.
    recorder: Option<crate::recorder::RecorderTap>,
}

/// Frames of output level kept: 320 ms, longer than a line's echo path.
const LEVEL_FRAMES: usize = 16;

const SPURT_LOG: usize = 16;

/// Counters of a [`Playout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Samples refused because the queue was full.
    pub dropped: u64,
    /// Samples discarded by [`Playout::flush`] (barge-in).
    pub flushed: u64,
    /// Talk spurts sent.
    pub spurts: u64,
}

impl Playout {
    /// A queue holding at most `capacity` samples (at 8 kHz, 8000 per second).
    pub fn new(capacity: usize) -> Self {
        Playout {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(160),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (every method is a few VecDeque operations): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues robot speech (8 kHz); returns how many samples were accepted.
    pub fn push(&self, samples: &[i16]) -> usize {
        let mut inner = self.lock();
        let room = self.capacity.saturating_sub(inner.queue.len());
        let take = room.min(samples.len());
        inner.queue.extend(&samples[..take]);
        inner.dropped += (samples.len() - take) as u64;
        take
    }

    /// Discards everything queued (barge-in); returns the samples discarded.
    pub fn flush(&self) -> usize {
        let mut inner = self.lock();
        let n = inner.queue.len();
        inner.queue.clear();
        inner.flushed += n as u64;
        n
    }

    /// Samples waiting to be sent.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// True while robot speech is queued or its last frame went out on the
    /// latest tick.
    pub fn is_talking(&self) -> bool {
        let inner = self.lock();
        !inner.queue.is_empty() || inner.talking
    }

    /// The sender's side: fills `out` with the next frame, or silence when
    /// nothing is queued (a partial frame is padded). Returns true for voice.
    pub fn next_frame(&self, out: &mut Frame8k, now: Instant) -> bool {
        let mut inner = self.lock();
        let voice = Self::take(&mut inner, out, now);
        if let Some(tap) = &inner.recorder {
            tap.frame(out);
        }
        voice
    }

    /// Records what the sender takes from now on (`None`: stop).
    pub fn set_recorder(&self, tap: Option<crate::recorder::RecorderTap>) {
        self.lock().recorder = tap;
    }

    fn take(inner: &mut Inner, out: &mut Frame8k, now: Instant) -> bool {
        let slot = inner.level_at;
        inner.level_at = (slot + 1) % LEVEL_FRAMES;
        if inner.queue.is_empty() {
            out.0.fill(0);
            inner.talking = false;
            inner.levels[slot] = 0.0;
            return false;
        }
        let n = inner.queue.len().min(out.0.len());
        for (slot, s) in out.0.iter_mut().zip(inner.queue.drain(..n)) {
            *slot = s;
        }
        out.0[n..].fill(0);
        let energy: f64 = out.0.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        inner.levels[slot] = (energy / out.0.len() as f64).sqrt() as f32;
        if !inner.talking {
            inner.talking = true;
            inner.spurts += 1;
            inner.spurt_started = Some(now);
            let slot = (inner.spurts % SPURT_LOG as u64) as usize;
            inner.log[slot] = Some(now);
        }
        true
    }

    /// The latest talk spurt: how many have started, and when the latest one's
    /// first frame went out. A turn reads it before queueing its reply and
    /// waits for the count to move, which gives the wire time of its first
    /// robot packet.
    pub fn spurt(&self) -> (u64, Option<Instant>) {
        let inner = self.lock();
        (inner.spurts, inner.spurt_started)
    }

    /// The loudest frame the line sent in the last 320 ms (RMS, 0 when the
    /// robot was silent): an echo of the robot comes back quieter than this.
    pub fn recent_level(&self) -> f32 {
        self.lock().levels.iter().copied().fold(0.0, f32::max)
    }

    /// When spurt number `n` (1-based, as counted by [`Playout::spurt`])
    /// started, if it has and is among the latest 16.
    pub fn spurt_start(&self, n: u64) -> Option<Instant> {
        let inner = self.lock();
        if n == 0 || n > inner.spurts || inner.spurts - n >= SPURT_LOG as u64 {
            return None;
        }
        inner.log[(n % SPURT_LOG as u64) as usize]
    }

    /// Counters.
    pub fn stats(&self) -> PlayoutStats {
        let inner = self.lock();
        PlayoutStats {
            dropped: inner.dropped,
            flushed: inner.flushed,
            spurts: inner.spurts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_when_empty_and_voice_in_order() {
        let p = Playout::new(8000);
        let mut f = Frame8k::default();
        let t = Instant::now();
        assert!(!p.next_frame(&mut f, t));
        assert!(f.0.iter().all(|&s| s == 0));
        let samples: Vec<i16> = (1..=200).collect();
        assert_eq!(p.push(&samples), 200);
        assert!(p.next_frame(&mut f, t));
        assert_eq!(f.0[0], 1);
        assert_eq!(f.0[159], 160);
        assert!(p.next_frame(&mut f, t));
        assert_eq!(f.0[39], 200);
        assert!(
            f.0[40..].iter().all(|&s| s == 0),
            "a partial frame is padded"
        );
        assert!(p.is_talking());
        assert!(!p.next_frame(&mut f, t));
        assert!(!p.is_talking());
        assert_eq!(p.spurt().0, 1);
        assert!(p.recent_level() > 50.0, "the voiced frames are remembered");
        for _ in 0..16 {
            p.next_frame(&mut f, t);
        }
        assert_eq!(p.recent_level(), 0.0, "and forgotten after 320 ms");
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let p = Playout::new(320);
        assert_eq!(p.push(&[1; 300]), 300);
        assert_eq!(p.push(&[1; 100]), 20);
        assert_eq!(p.stats().dropped, 80);
        assert_eq!(p.queued(), 320);
    }

    #[test]
    fn flush_stops_the_robot_at_the_next_tick() {
        let p = Playout::new(8000);
        p.push(&[5; 1600]);
        let mut f = Frame8k::default();
        let t0 = Instant::now();
        assert!(p.next_frame(&mut f, t0));
        assert_eq!(p.flush(), 1440);
        assert!(!p.next_frame(&mut f, t0));
        assert_eq!(p.stats().flushed, 1440);
        // The next reply is a new spurt with its own start time.
        p.push(&[5; 160]);
        let t1 = t0 + std::time::Duration::from_millis(500);
        assert!(p.next_frame(&mut f, t1));
        assert_eq!(p.spurt(), (2, Some(t1)));
        assert_eq!(p.spurt_start(1), Some(t0));
        assert_eq!(p.spurt_start(2), Some(t1));
        assert_eq!(p.spurt_start(3), None);
    }
}
