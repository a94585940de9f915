//! The crate's error type: every variant names what was wrong and the value or
//! limit involved, so a log line is enough to act on.

use std::path::PathBuf;

use crate::Lang;

/// Longest clip one `transcribe` call accepts. whisper decodes one 30 s window;
/// anything longer must be cut into utterances by the VAD before it gets here.
pub const MAX_AUDIO_MS: u32 = 30_000;

/// Errors from loading a model or transcribing a clip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SttError {
    /// The model file does not exist.
    #[error("whisper model {} not found (run the model fetch step, or check the path)", path.display())]
    ModelMissing {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The model file exists but could not be read.
    #[error("whisper model {} could not be read: {source}", path.display())]
    ModelUnreadable {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a ggml whisper model (wrong magic number), checked
    /// before whisper.cpp sees it.
    #[error("{} is not a ggml whisper model (starts with {found:02x?}, expected \"lmgg\")", path.display())]
    ModelNotGgml {
        /// The model file.
        path: PathBuf,
        /// The first bytes of the file.
        found: Vec<u8>,
    },
    /// The file ends before its layout says it should.
    #[error("whisper model {} is truncated: {file_bytes} bytes, layout needs at least {needed_bytes} (re-run the model fetch step)", path.display())]
    ModelTruncated {
        /// The model file.
        path: PathBuf,
        /// Bytes the layout needs up to the point that failed.
        needed_bytes: u64,
        /// Size of the file.
        file_bytes: u64,
    },
    /// A header field of the file makes no sense.
    #[error("whisper model {} is corrupt at byte {offset}: {what}", path.display())]
    ModelCorrupt {
        /// The model file.
        path: PathBuf,
        /// Where the bad field is.
        offset: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The file holds fewer (or more) tensors than its layer counts imply.
    #[error("whisper model {} has {tensors} tensors, its layers need {expected}", path.display())]
    ModelIncomplete {
        /// The model file.
        path: PathBuf,
        /// Tensors found.
        tensors: u32,
        /// Tensors the layer counts imply.
        expected: u64,
    },
    /// whisper.cpp refused the file (truncated, corrupt or an unknown layout).
    #[error("whisper.cpp could not load {} (corrupt, truncated or not a whisper model): {source}", path.display())]
    ModelInvalid {
        /// The model file.
        path: PathBuf,
        /// whisper-rs's error.
        source: whisper_rs::WhisperError,
    },
    /// whisper.cpp could not allocate a decoding state for the model.
    #[error("could not create a whisper decoding state for {}: {source}", path.display())]
    StateInit {
        /// The model file.
        path: PathBuf,
        /// whisper-rs's error.
        source: whisper_rs::WhisperError,
    },
    /// `threads` in the config was zero.
    #[error("WhisperConfig.threads must be at least 1")]
    NoThreads,
    /// The clip had no samples.
    #[error("no audio to transcribe (0 samples)")]
    EmptyAudio,
    /// The clip is longer than one call may be.
    #[error("audio is {audio_ms} ms long, over MAX_AUDIO_MS = {limit_ms} ms per transcribe call: segment it with the VAD first")]
    AudioTooLong {
        /// Length of the clip.
        audio_ms: u64,
        /// The limit ([`MAX_AUDIO_MS`]).
        limit_ms: u32,
    },
    /// A sample was NaN or infinite.
    #[error("audio sample {index} is not a finite number ({value})")]
    NonFiniteSample {
        /// Index of the first bad sample.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// The input could not be resampled to 16 kHz.
    #[error("could not resample {from_rate} Hz audio to 16000 Hz: {source}")]
    Resample {
        /// Rate of the input.
        from_rate: u32,
        /// vb-audio's error.
        source: vb_audio::AudioError,
    },
    /// An English-only model was asked for another language.
    #[error("model {} is English-only and cannot transcribe {language:?}", path.display())]
    LanguageUnsupported {
        /// The model file.
        path: PathBuf,
        /// The language asked for.
        language: Lang,
    },
    /// An explicit `audio_ctx` was outside 1..=1500.
    #[error("audio_ctx {audio_ctx} is outside 1..={max}")]
    InvalidAudioCtx {
        /// The value asked for.
        audio_ctx: u32,
        /// The model's full window.
        max: u32,
    },
    /// The caller's [`crate::CancelFlag`] was raised (barge-in, hangup).
    #[error("transcription cancelled after {elapsed_ms} ms")]
    Cancelled {
        /// Time spent before stopping.
        elapsed_ms: u64,
    },
    /// Decoding ran past its deadline (a loop or fallback stall) and was stopped.
    #[error("transcribing {audio_ms} ms of audio ran past its deadline of {deadline_ms} ms")]
    DeadlineExceeded {
        /// Length of the clip.
        audio_ms: u32,
        /// The deadline ([`crate::window::Budget::deadline_ms`]).
        deadline_ms: u64,
    },
    /// A recording of the test corpus ([`crate::corpus`]) is missing or unreadable.
    #[error("{}: {problem}", path.display())]
    Corpus {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// whisper.cpp failed for another reason.
    #[error("whisper.cpp failed while {stage}: {source}")]
    Whisper {
        /// What was being done ("detecting the language", "decoding").
        stage: &'static str,
        /// whisper-rs's error.
        source: whisper_rs::WhisperError,
    },
}
