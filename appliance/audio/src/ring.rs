//! A lock-free single-producer single-consumer ring of [`Frame`]s between a
//! real-time thread (ALSA callback, RTP pacer) and the call loop.
//!
//! Full policy: **drop the newest and count it.** The producer is the
//! real-time side and must never block or wait; an SPSC producer cannot
//! evict the oldest frame (that slot belongs to the consumer), so the frame
//! being pushed is the one discarded. A full ring means the consumer is
//! already behind by the whole capacity, so the audio is lost either way;
//! the counter makes the loss visible in metrics. The empty policy on the
//! consumer side is [`FrameConsumer::pop_or_silence`]: play silence and
//! count an underrun.

use std::sync::atomic::{AtomicU64, Ordering};

use heapless::spsc::{Consumer, Producer, Queue};

use crate::frame::Frame;

/// Ring storage; holds `CAP - 1` frames (heapless keeps one slot free to
/// tell full from empty). Split it once into a producer and a consumer.
pub struct FrameRing<const N: usize, const CAP: usize> {
    queue: Queue<Frame<N>, CAP>,
    dropped: AtomicU64,
}

impl<const N: usize, const CAP: usize> Default for FrameRing<N, CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const CAP: usize> std::fmt::Debug for FrameRing<N, CAP> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRing")
            .field("frame", &N)
            .field("capacity", &(CAP - 1))
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<const N: usize, const CAP: usize> FrameRing<N, CAP> {
    /// An empty ring; `const` so it can live in a `static`.
    pub const fn new() -> Self {
        Self {
            queue: Queue::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Frames the ring can hold.
    pub const fn capacity(&self) -> usize {
        CAP - 1
    }

    /// Frames dropped because the ring was full, over the ring's lifetime.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Splits into the two ends; each may move to its own thread.
    pub fn split(&mut self) -> (FrameProducer<'_, N>, FrameConsumer<'_, N>) {
        let (producer, consumer) = self.queue.split();
        (
            FrameProducer {
                inner: producer,
                dropped: &self.dropped,
            },
            FrameConsumer {
                inner: consumer,
                dropped: &self.dropped,
                underruns: 0,
            },
        )
    }
}

/// The writing end. Wait-free: never blocks, never allocates.
pub struct FrameProducer<'a, const N: usize> {
    inner: Producer<'a, Frame<N>>,
    dropped: &'a AtomicU64,
}

impl<const N: usize> FrameProducer<'_, N> {
    /// Enqueues a frame; when the ring is full the frame is dropped, counted,
    /// and `false` returned.
    pub fn push(&mut self, frame: Frame<N>) -> bool {
        match self.inner.enqueue(frame) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Frames waiting for the consumer (a snapshot: the consumer may take
    /// some meanwhile, never add).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing waits for the consumer.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// True when a push would be accepted (it stays true until this
    /// producer pushes: only the consumer changes the ring meanwhile).
    pub fn has_room(&self) -> bool {
        self.inner.ready()
    }
}

/// The reading end.
pub struct FrameConsumer<'a, const N: usize> {
    inner: Consumer<'a, Frame<N>>,
    dropped: &'a AtomicU64,
    underruns: u64,
}

impl<const N: usize> FrameConsumer<'_, N> {
    /// The oldest frame, if any.
    pub fn pop(&mut self) -> Option<Frame<N>> {
        self.inner.dequeue()
    }

    /// The oldest frame, or silence (counted as an underrun) when empty:
    /// what a playback callback that must produce audio every period wants.
    pub fn pop_or_silence(&mut self) -> Frame<N> {
        self.inner.dequeue().unwrap_or_else(|| {
            self.underruns += 1;
            Frame::SILENCE
        })
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Frames dropped by the producer so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Times [`FrameConsumer::pop_or_silence`] found the ring empty.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame8k;

    fn numbered(i: i16) -> Frame8k {
        Frame([i; 160])
    }

    #[test]
    fn full_ring_drops_the_newest_and_counts() {
        let mut ring: FrameRing<160, 4> = FrameRing::new();
        assert_eq!(ring.capacity(), 3);
        let (mut tx, mut rx) = ring.split();
        for i in 0..5 {
            tx.push(numbered(i));
        }
        assert_eq!((tx.dropped(), rx.len()), (2, 3));
        assert!(!tx.has_room());
        assert_eq!(tx.len(), 3);
        let got: Vec<i16> = std::iter::from_fn(|| rx.pop()).map(|f| f[0]).collect();
        assert_eq!(got, vec![0, 1, 2], "the oldest frames are kept, in order");
        assert_eq!(rx.pop_or_silence(), Frame::SILENCE);
        assert_eq!(rx.underruns(), 1);
    }

    #[test]
    fn frames_cross_threads_in_order() {
        let mut ring: FrameRing<160, 64> = FrameRing::new();
        let (mut tx, mut rx) = ring.split();
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..2000i16 {
                    while !tx.push(numbered(i)) {
                        std::thread::yield_now();
                    }
                }
            });
            // The drops counted by a failed push are retried above; ignore them.
            let mut next = 0i16;
            while next < 2000 {
                if let Some(f) = rx.pop() {
                    assert_eq!(f[0], next);
                    assert!(f.iter().all(|&s| s == next));
                    next += 1;
                }
            }
        });
    }
}
