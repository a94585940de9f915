//! Fixed 20 ms frames of 16-bit samples for the real-time paths (RTP
//! packets, ALSA periods, VAD input) and a [`Framer`] that cuts an arbitrary
//! stream into them without allocating.

use std::ops::{Deref, DerefMut};

/// Length of every real-time frame: one RTP packet at the usual ptime.
pub const FRAME_MS: u32 = 20;

/// One frame of `N` samples; the rate is implied by `N` (`N * 1000 / FRAME_MS`).
///
/// Plain data on the stack (`Copy`), so a real-time thread can move frames
/// through a ring without touching the allocator.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame<const N: usize>(pub [i16; N]);

/// 20 ms at 8 kHz (G.711 calls).
pub type Frame8k = Frame<160>;
/// 20 ms at 16 kHz (VAD and STT input).
pub type Frame16k = Frame<320>;

impl<const N: usize> Frame<N> {
    /// A frame of digital silence.
    pub const SILENCE: Self = Frame([0; N]);

    /// Sample rate this frame size stands for.
    pub const RATE: u32 = (N as u32) * 1000 / FRAME_MS;

    /// Copies a slice of exactly `N` samples; `None` for any other length.
    pub fn from_slice(samples: &[i16]) -> Option<Self> {
        let array: [i16; N] = samples.try_into().ok()?;
        Some(Frame(array))
    }
}

impl<const N: usize> Default for Frame<N> {
    fn default() -> Self {
        Self::SILENCE
    }
}

impl<const N: usize> Deref for Frame<N> {
    type Target = [i16];
    fn deref(&self) -> &[i16] {
        &self.0
    }
}

impl<const N: usize> DerefMut for Frame<N> {
    fn deref_mut(&mut self) -> &mut [i16] {
        &mut self.0
    }
}

impl<const N: usize> std::fmt::Debug for Frame<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Printing 320 samples drowns any log or assertion message.
        let peak = self.0.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        write!(f, "Frame<{N}>(peak {peak})")
    }
}

/// Cuts a stream of samples, arriving in chunks of any size, into
/// `Frame<N>`s, carrying the remainder over to the next push.
#[derive(Clone, Debug)]
pub struct Framer<const N: usize> {
    buf: Frame<N>,
    filled: usize,
}

/// Framer for 8 kHz streams.
pub type Framer8k = Framer<160>;
/// Framer for 16 kHz streams.
pub type Framer16k = Framer<320>;

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Framer<N> {
    /// An empty framer.
    pub const fn new() -> Self {
        Self {
            buf: Frame([0; N]),
            filled: 0,
        }
    }

    /// Samples waiting for the next frame (always `< N`).
    pub fn pending(&self) -> usize {
        self.filled
    }

    /// Appends `samples` and calls `on_frame` for every frame completed, in
    /// order. Never allocates.
    pub fn push(&mut self, mut samples: &[i16], mut on_frame: impl FnMut(&Frame<N>)) {
        while !samples.is_empty() {
            let take = (N - self.filled).min(samples.len());
            self.buf.0[self.filled..self.filled + take].copy_from_slice(&samples[..take]);
            self.filled += take;
            samples = &samples[take..];
            if self.filled == N {
                on_frame(&self.buf);
                self.filled = 0;
            }
        }
    }

    /// Ends the stream: the remainder, padded with silence, as a last frame;
    /// `None` when nothing is pending. The framer is then empty.
    pub fn flush_padded(&mut self) -> Option<Frame<N>> {
        if self.filled == 0 {
            return None;
        }
        self.buf.0[self.filled..].fill(0);
        self.filled = 0;
        Some(self.buf)
    }

    /// Drops the pending remainder.
    pub fn clear(&mut self) {
        self.filled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_sizes_match_their_rates() {
        assert_eq!(Frame8k::RATE, 8000);
        assert_eq!(Frame16k::RATE, 16000);
        assert_eq!(Frame::<441>::RATE, 22050);
        assert!(Frame8k::from_slice(&[0; 159]).is_none());
        assert_eq!(Frame8k::from_slice(&[3; 160]).unwrap()[159], 3);
    }

    #[test]
    fn flush_pads_the_tail_with_silence() {
        let mut f = Framer8k::new();
        let mut n = 0;
        f.push(&[7; 170], |_| n += 1);
        assert_eq!((n, f.pending()), (1, 10));
        let last = f.flush_padded().unwrap();
        assert_eq!(&last[..10], &[7; 10]);
        assert!(last[10..].iter().all(|&s| s == 0));
        assert!(f.flush_padded().is_none());
    }

    proptest! {
        /// Whatever the chunking, frames concatenated equal the input
        /// prefix, and the remainder is what is pending.
        #[test]
        fn no_sample_lost_or_duplicated(
            samples in proptest::collection::vec(any::<i16>(), 0..3000),
            cuts in proptest::collection::vec(0usize..700, 0..20),
        ) {
            let mut framer = Framer8k::new();
            let mut out: Vec<i16> = Vec::new();
            let mut rest = &samples[..];
            for cut in cuts {
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                framer.push(chunk, |f| out.extend_from_slice(&f[..]));
                rest = tail;
            }
            framer.push(rest, |f| out.extend_from_slice(&f[..]));
            prop_assert_eq!(out.len() % 160, 0);
            prop_assert_eq!(out.len() + framer.pending(), samples.len());
            prop_assert_eq!(&out[..], &samples[..out.len()]);
            if let Some(last) = framer.flush_padded() {
                let tail = &samples[out.len()..];
                prop_assert_eq!(&last[..tail.len()], tail);
            }
        }
    }
}
