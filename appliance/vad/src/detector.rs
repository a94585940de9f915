//! The [`Vad`] trait (one frame in, speech or not out) and its WebRTC
//! implementation over libfvad.

use webrtc_vad::{SampleRate, VadMode};

use crate::VadError;

/// A frame-level voice activity detector.
pub trait Vad {
    /// Sample rate the detector expects frames at.
    fn sample_rate(&self) -> u32;

    /// Classifies one frame (10, 20 or 30 ms for WebRTC).
    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError>;

    /// Forgets adaptation state, e.g. between calls.
    fn reset(&mut self);
}

/// How eagerly WebRTC VAD declares non-speech. Higher levels miss more quiet
/// speech but let through less noise; telephone audio usually wants 2 or 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Aggressiveness {
    /// Level 0: reports speech most readily.
    Quality,
    /// Level 1.
    LowBitrate,
    /// Level 2.
    #[default]
    Aggressive,
    /// Level 3: reports speech least readily.
    VeryAggressive,
}

impl Aggressiveness {
    /// From the 0..=3 level used in configs.
    pub fn from_level(level: u8) -> Result<Self, VadError> {
        Ok(match level {
            0 => Self::Quality,
            1 => Self::LowBitrate,
            2 => Self::Aggressive,
            3 => Self::VeryAggressive,
            _ => return Err(VadError::Aggressiveness { level }),
        })
    }

    /// The 0..=3 level.
    pub fn level(self) -> u8 {
        self as u8
    }

    fn mode(self) -> VadMode {
        match self {
            Self::Quality => VadMode::Quality,
            Self::LowBitrate => VadMode::LowBitrate,
            Self::Aggressive => VadMode::Aggressive,
            Self::VeryAggressive => VadMode::VeryAggressive,
        }
    }
}

/// WebRTC's GMM voice detector (libfvad), at 8, 16, 32 or 48 kHz.
///
/// # Threads
///
/// `webrtc_vad::Vad` holds a raw pointer and so is neither `Send` nor
/// `Sync`. This wrapper is `Send` (see the safety note on the impl) so a
/// detector can live in a call's tokio task, which may move between worker
/// threads at each `.await`; it stays `!Sync`, so two threads can never use
/// one detector at once. Use one detector per call: it adapts to the line.
pub struct WebRtcVad {
    inner: webrtc_vad::Vad,
    rate: u32,
    aggressiveness: Aggressiveness,
}

// SAFETY: the pointer is an exclusively owned heap `Fvad` created by
// `fvad_new` and freed in `Drop`. libfvad keeps all state inside that struct
// (no globals, no thread-locals; its only statics are const tables), so
// using it from a different thread than the one that created it is sound as
// long as accesses do not overlap, which `&mut self` on every call ensures.
unsafe impl Send for WebRtcVad {}

impl std::fmt::Debug for WebRtcVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcVad")
            .field("rate", &self.rate)
            .field("aggressiveness", &self.aggressiveness)
            .finish_non_exhaustive()
    }
}

impl WebRtcVad {
    /// A detector for frames at `rate` Hz.
    pub fn new(rate: u32, aggressiveness: Aggressiveness) -> Result<Self, VadError> {
        let sample_rate = Self::engine_rate(rate)?;
        Ok(Self {
            inner: webrtc_vad::Vad::new_with_rate_and_mode(sample_rate, aggressiveness.mode()),
            rate,
            aggressiveness,
        })
    }

    /// The configured aggressiveness.
    pub fn aggressiveness(&self) -> Aggressiveness {
        self.aggressiveness
    }

    /// Frame lengths (samples) accepted at this detector's rate: 10, 20, 30 ms.
    pub fn frame_lengths(&self) -> [usize; 3] {
        let per_ms = self.rate as usize / 1000;
        [10 * per_ms, 20 * per_ms, 30 * per_ms]
    }

    fn engine_rate(rate: u32) -> Result<SampleRate, VadError> {
        Ok(match rate {
            8000 => SampleRate::Rate8kHz,
            16000 => SampleRate::Rate16kHz,
            32000 => SampleRate::Rate32kHz,
            48000 => SampleRate::Rate48kHz,
            _ => return Err(VadError::UnsupportedRate { rate }),
        })
    }
}

impl Vad for WebRtcVad {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
        let allowed = self.frame_lengths();
        // Checked here because the binding indexes frame[0] (panics on an
        // empty slice) before libfvad gets to validate the length.
        if !allowed.contains(&frame.len()) {
            return Err(VadError::FrameLength {
                len: frame.len(),
                rate: self.rate,
                allowed,
            });
        }
        self.inner
            .is_voice_segment(frame)
            .map_err(|()| VadError::Engine {
                len: frame.len(),
                rate: self.rate,
            })
    }

    fn reset(&mut self) {
        // fvad_reset also restores the default rate and mode: set them again.
        self.inner.reset();
        if let Ok(rate) = Self::engine_rate(self.rate) {
            self.inner.set_sample_rate(rate);
        }
        self.inner.set_mode(self.aggressiveness.mode());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_frame_lengths_are_errors_not_panics() {
        let mut vad = WebRtcVad::new(16000, Aggressiveness::Aggressive).unwrap();
        for len in [0, 1, 159, 321, 481, 1000] {
            let err = vad.is_speech(&vec![0; len]).unwrap_err();
            assert!(matches!(
                err,
                VadError::FrameLength {
                    rate: 16000,
                    allowed: [160, 320, 480],
                    ..
                }
            ));
        }
        for len in [160, 320, 480] {
            assert!(
                !vad.is_speech(&vec![0; len]).unwrap(),
                "silence is not speech"
            );
        }
        let msg = vad.is_speech(&[0; 7]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "VAD frame of 7 samples at 16000 Hz: must be 10, 20 or 30 ms (160, 320, 480 samples)"
        );
    }

    #[test]
    fn unsupported_rates_and_levels_are_refused() {
        assert!(matches!(
            WebRtcVad::new(22050, Aggressiveness::Quality),
            Err(VadError::UnsupportedRate { rate: 22050 })
        ));
        assert!(matches!(
            Aggressiveness::from_level(4),
            Err(VadError::Aggressiveness { level: 4 })
        ));
        for level in 0..=3 {
            assert_eq!(Aggressiveness::from_level(level).unwrap().level(), level);
        }
    }

    #[test]
    fn reset_keeps_rate_and_works_at_8k() {
        let mut vad = WebRtcVad::new(8000, Aggressiveness::VeryAggressive).unwrap();
        vad.reset();
        // Still an 8 kHz detector: 160 samples is 20 ms.
        assert!(!vad.is_speech(&[0; 160]).unwrap());
        assert_eq!(vad.sample_rate(), 8000);
    }

    #[test]
    fn detector_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<WebRtcVad>();
    }
}
