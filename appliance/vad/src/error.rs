//! Errors of the VAD crate: caller misuse (bad rate, frame length, config)
//! is reported with the offending values; audio conversion errors pass
//! through from vb-audio.

use crate::endpoint::ConfigProblem;

/// Everything that can go wrong detecting voice or segmenting audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VadError {
    /// WebRTC VAD cannot run at this rate.
    #[error("WebRTC VAD does not support {rate} Hz (use 8000, 16000, 32000 or 48000 Hz)")]
    UnsupportedRate {
        /// The rate asked for.
        rate: u32,
    },

    /// A frame that is not 10, 20 or 30 ms long at the detector's rate.
    #[error(
        "VAD frame of {len} samples at {rate} Hz: must be 10, 20 or 30 ms ({} samples)",
        allowed.map(|n| n.to_string()).join(", ")
    )]
    FrameLength {
        /// Samples given.
        len: usize,
        /// Detector rate.
        rate: u32,
        /// Lengths accepted at this rate.
        allowed: [usize; 3],
    },

    /// Aggressiveness outside 0..=3.
    #[error("VAD aggressiveness {level} is out of range (0 = least, 3 = most aggressive)")]
    Aggressiveness {
        /// The level given.
        level: u8,
    },

    /// An endpoint configuration that does not make sense; every problem
    /// found is listed, not just the first.
    #[error("invalid endpoint config: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config {
        /// All problems found by [`crate::EndpointConfig::validate`].
        problems: Vec<ConfigProblem>,
    },

    /// The WebRTC engine rejected a frame that passed our checks.
    #[error("WebRTC VAD rejected a {len}-sample frame at {rate} Hz")]
    Engine {
        /// Samples given.
        len: usize,
        /// Detector rate.
        rate: u32,
    },

    /// Resampling the input to the detector's rate failed.
    #[error(transparent)]
    Audio(#[from] vb_audio::AudioError),
}
