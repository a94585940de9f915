//! The one error type of the crate: every variant names the file or the
//! rates involved, so a message in a log is enough to fix the problem.

use std::path::PathBuf;

use crate::wav::SUPPORTED_RATES;

/// Everything that can go wrong reading, writing or converting audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file could not be opened, created or read at all.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file involved.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The bytes do not start with a RIFF/WAVE header.
    #[error("{}: not a WAV file (it starts with {found})", file.display())]
    NotWav {
        /// The file involved.
        file: PathBuf,
        /// A short description of what the first bytes look like.
        found: String,
    },

    /// The WAV header is present but malformed or uses an encoding hound
    /// cannot read (for example a compressed format tag).
    #[error("{}: malformed or unsupported WAV: {source}", file.display())]
    Malformed {
        /// The file involved.
        file: PathBuf,
        /// The decoder's diagnosis.
        source: hound::Error,
    },

    /// The data chunk ends before the number of samples its header promises.
    #[error(
        "{}: truncated: the header says {expected} samples but the file holds only {found}",
        file.display()
    )]
    Truncated {
        /// The file involved.
        file: PathBuf,
        /// Samples announced by the data chunk header.
        expected: u32,
        /// Complete samples actually present.
        found: u32,
    },

    /// More than one channel.
    #[error(
        "{}: has {channels} channels; VoiceBlock needs mono: sox in.wav -c 1 out.wav",
        file.display()
    )]
    NotMono {
        /// The file involved.
        file: PathBuf,
        /// Channel count from the header.
        channels: u16,
    },

    /// A sample rate outside [`crate::wav::SUPPORTED_RATES`].
    #[error(
        "{}: sample rate {rate} Hz is not supported (supported: {}); convert with: sox in.wav -r 16000 out.wav",
        file.display(),
        rate_list()
    )]
    UnsupportedRate {
        /// The file involved.
        file: PathBuf,
        /// Rate from the header.
        rate: u32,
    },

    /// A sample encoding other than 8/16/24/32-bit integer or 32-bit float PCM.
    #[error(
        "{}: {bits}-bit {format} samples are not supported (use 8, 16, 24 or 32-bit integer or 32-bit float PCM)",
        file.display()
    )]
    UnsupportedFormat {
        /// The file involved.
        file: PathBuf,
        /// Bits per sample from the header.
        bits: u16,
        /// "integer" or "float".
        format: &'static str,
    },

    /// The data chunk holds no samples.
    #[error("{}: contains no audio (0 samples)", file.display())]
    Empty {
        /// The file involved.
        file: PathBuf,
    },

    /// Longer than [`crate::wav::MAX_DURATION_MS`]; refused before any sample is read so
    /// a bogus or hostile header cannot make us allocate gigabytes.
    #[error(
        "{}: {duration_ms} ms of audio exceeds the limit of {limit_ms} ms (wav::MAX_DURATION_MS)",
        file.display()
    )]
    TooLong {
        /// The file involved.
        file: PathBuf,
        /// Duration announced by the header.
        duration_ms: u64,
        /// The limit it exceeds.
        limit_ms: u64,
    },

    /// The encoder failed while writing.
    #[error("{}: writing WAV failed: {source}", file.display())]
    Write {
        /// The file involved (or the name given to `write_to`).
        file: PathBuf,
        /// The encoder's error.
        source: hound::Error,
    },

    /// A call recording could not be made or finished.
    #[error("{}: call recording: {message}", file.display())]
    Recording {
        /// The recording's file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// Two buffers of different rates were joined.
    #[error("cannot append {found} Hz audio to a {expected} Hz buffer; resample first")]
    RateMismatch {
        /// Rate of the buffer being appended to.
        expected: u32,
        /// Rate of the buffer being appended.
        found: u32,
    },

    /// A sample rate of zero or above [`crate::resample::MAX_RATE`] was given
    /// to a component that needs a real rate.
    #[error("invalid sample rate {rate} Hz (must be 1..={max} Hz)")]
    InvalidRate {
        /// The rate given.
        rate: u32,
        /// The largest accepted rate.
        max: u32,
    },

    /// The resampler could not be built for this pair of rates.
    #[error("cannot build a {from} Hz -> {to} Hz resampler: {source}")]
    ResamplerSetup {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// rubato's reason.
        source: rubato::ResamplerConstructionError,
    },

    /// The resampler rejected a chunk (a bug in how this crate drives it,
    /// never a property of the audio).
    #[error("{from} Hz -> {to} Hz resampling failed: {source}")]
    Resample {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// rubato's reason.
        source: rubato::ResampleError,
    },
}

fn rate_list() -> String {
    let rates: Vec<String> = SUPPORTED_RATES.iter().map(u32::to_string).collect();
    rates.join(", ") + " Hz"
}
