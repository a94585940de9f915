//! Errors of the handset: which device, which direction, which step.

use std::fmt;

/// Which side of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The microphone.
    Capture,
    /// The earpiece or speaker.
    Playback,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Capture => "capture",
            Direction::Playback => "playback",
        })
    }
}

impl From<Direction> for alsa::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Capture => alsa::Direction::Capture,
            Direction::Playback => alsa::Direction::Playback,
        }
    }
}

/// What went wrong with the handset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandsetError {
    /// The device could not be opened (absent, busy, unplugged).
    #[error("ALSA device {device:?} ({direction}): cannot open: {source}")]
    Open {
        /// The ALSA device name.
        device: String,
        /// Capture or playback.
        direction: Direction,
        /// ALSA's error.
        source: alsa::Error,
    },
    /// The device refused a setting we need.
    #[error("ALSA device {device:?} ({direction}): cannot set {what}: {source}")]
    Configure {
        /// The ALSA device name.
        device: String,
        /// Capture or playback.
        direction: Direction,
        /// The setting (format, rate, channels, period, ...).
        what: &'static str,
        /// ALSA's error.
        source: alsa::Error,
    },
    /// The device's rate cannot be converted to or from 8 kHz.
    #[error("ALSA device {device:?} ({direction}): rate {rate} Hz: {source}")]
    Rate {
        /// The ALSA device name.
        device: String,
        /// Capture or playback.
        direction: Direction,
        /// The rate the device runs at.
        rate: u32,
        /// The resampler's error.
        source: vb_audio::AudioError,
    },
    /// An audio thread could not be started.
    #[error("starting the handset's {name} thread: {source}")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
