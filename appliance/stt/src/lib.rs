//! vb-stt: speech-to-text on the box. whisper.cpp (through whisper-rs) tuned
//! for what a phone call needs: short utterances fast, Russian or English,
//! stoppable mid-decode on barge-in, and no invented text on silence.
//!
//! # Layout
//!
//! ```text
//!  utterance from the VAD (16 kHz f32; 8 kHz via Transcriber::transcribe_pcm)
//!        │
//!        ▼
//!  (load: ggml::check_model_file ── missing / truncated / corrupt ──▶ SttError)
//!
//!  input checks ── empty / NaN / > MAX_AUDIO_MS ──▶ SttError
//!        │  quiet (< silence_dbfs) ──────────────▶ empty Transcript, FilterReason::Silence
//!        ▼
//!  window::audio_ctx_for   per-language floor, grown with the clip (evidence in window.rs)
//!        │
//!        ▼
//!  WhisperTranscriber      Auto: en-vs-ru detection on the same window, then
//!   (one context,          greedy decode, temperature fallback on, token cap,
//!    one reused state)     abort callback = CancelFlag || deadline,
//!                          logits callback = echo::ends_in_echo -> end of text
//!        │
//!        ▼
//!  filter::filter_transcript   markup, loops, silence phrases, no-speech
//!        │
//!        ▼
//!  Transcript { text, language, segments, timings, audio_ctx, filtered }
//! ```
//!
//! - [`Transcriber`]: the seam the call loop uses; [`WhisperTranscriber`] the engine.
//! - [`window`]: encoder window, token cap and deadline per clip.
//! - [`ggml`]: structural check of a model file before whisper.cpp loads it.
//! - [`echo`]: ends a decode that starts saying its phrase again.
//! - [`filter`]: the hallucination filter (pure).
//! - [`wer`]: word error rate, for tests and benchmarks.
//! - [`corpus`]: recordings of people with transcripts, for tests and benchmarks.
//! - [`mod@bench`]: this crate's path against plain whisper.cpp, side by side.
//! - [`SttError`]: the crate's error type.

pub mod bench;
pub mod corpus;
pub mod echo;
pub mod error;
pub mod filter;
pub mod ggml;
pub mod wer;
mod whisper;
pub mod window;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use bench::{bench, window_sweep, BenchClip, BenchConfig, BenchReport, BenchRow, WindowRow};
pub use error::{SttError, MAX_AUDIO_MS};
pub use filter::{FilterConfig, FilterReason};
pub use wer::word_error_rate;
pub use whisper::{WhisperConfig, WhisperModel, WhisperTranscriber};

/// Sample rate whisper works at.
pub const SAMPLE_RATE: u32 = 16_000;

/// A language the box understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English.
    En,
    /// Russian.
    Ru,
}

impl Lang {
    /// whisper's language code.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }
}

/// The language asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// English.
    En,
    /// Russian.
    Ru,
    /// Detect, choosing only between English and Russian. Costs one extra
    /// encoder pass: once a call's language is known, ask for it explicitly.
    #[default]
    Auto,
}

/// A flag another thread raises to stop a transcription (barge-in, hangup).
/// Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A new, lowered flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag: the transcription using it stops at whisper's next
    /// check (every decoder step, and at the end of each encoder pass).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the flag is raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// Language to decode in, or [`Language::Auto`].
    pub language: Language,
    /// Raised by the call loop to stop this transcription early.
    pub cancel: CancelFlag,
    /// Encoder window to use instead of the [`window`] rule (experiments,
    /// benchmarks); 1..=1500.
    pub audio_ctx: Option<u32>,
    /// The caller is expected to dictate digits (the dialog asked for a
    /// number): the window floor for digits applies
    /// ([`window::WindowFloors::ru_digits`]).
    pub digits: bool,
}

/// Result of language detection restricted to English and Russian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanguageDetection {
    /// whisper's probability for English (among all its languages).
    pub en: f32,
    /// whisper's probability for Russian (among all its languages).
    pub ru: f32,
}

/// One decoded segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// whisper's text, unfiltered.
    pub text: String,
    /// whisper's probability that the segment is not speech.
    pub no_speech_prob: f32,
    /// Text tokens decoded (special tokens not counted).
    pub tokens: u32,
    /// Mean log-probability of the text tokens (0 when there are none):
    /// how sure the decoder was; whisper's own fallback threshold is -1.
    pub mean_logprob: f32,
}

/// The outcome of one transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Filtered text for the dialog: empty when nothing was said.
    pub text: String,
    /// Text as whisper produced it, before the filter (for logs).
    pub raw_text: String,
    /// Language decoded in: the fixed one, or the detected one. None when
    /// nothing was decoded under [`Language::Auto`] (silence).
    pub language: Option<Lang>,
    /// Detection probabilities, when the language was detected.
    pub detection: Option<LanguageDetection>,
    /// Segments as whisper produced them (one for a single-window clip).
    pub segments: Vec<Segment>,
    /// Highest no-speech probability over the segments.
    pub no_speech_prob: Option<f32>,
    /// Level of the clip, dBFS.
    pub rms_dbfs: f32,
    /// Length of the clip as given (before padding).
    pub audio_ms: u32,
    /// Wall time of the call.
    pub elapsed_ms: u32,
    /// Encoder window used (0 when whisper was not run).
    pub audio_ctx: u32,
    /// Why the text differs from `raw_text`, if it does.
    pub filtered: Option<FilterReason>,
}

/// Speech-to-text on one utterance at a time.
pub trait Transcriber: Send {
    /// Transcribes a mono clip at 16 kHz (at most [`MAX_AUDIO_MS`]).
    fn transcribe(
        &mut self,
        audio_16k: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError>;

    /// Transcribes audio at any rate vb-audio can convert (8 kHz from a call),
    /// resampling it to 16 kHz first.
    fn transcribe_pcm(
        &mut self,
        pcm: &vb_audio::Pcm,
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        if pcm.rate == SAMPLE_RATE {
            return self.transcribe(&pcm.samples, opts);
        }
        let resampled = to_16k(pcm)?;
        self.transcribe(&resampled.samples, opts)
    }
}

/// Converts audio to whisper's 16 kHz.
pub fn to_16k(pcm: &vb_audio::Pcm) -> Result<vb_audio::Pcm, SttError> {
    vb_audio::resample(pcm, SAMPLE_RATE).map_err(|source| SttError::Resample {
        from_rate: pcm.rate,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_flag_is_shared_by_clones() {
        let flag = CancelFlag::new();
        let other = flag.clone();
        assert!(!other.is_cancelled());
        flag.cancel();
        assert!(other.is_cancelled());
    }

    #[test]
    fn resampling_8k_doubles_the_length() {
        let pcm = vb_audio::Pcm::new(8000, vec![0.0; 8000]);
        let out = to_16k(&pcm).expect("8 kHz resamples");
        assert_eq!(out.rate, SAMPLE_RATE);
        assert_eq!(out.samples.len(), 16_000);
    }

    #[test]
    fn resampling_a_bad_rate_is_an_error_naming_it() {
        let pcm = vb_audio::Pcm::new(0, vec![0.0; 10]);
        let err = to_16k(&pcm).expect_err("rate 0 cannot resample");
        assert!(
            matches!(err, SttError::Resample { from_rate: 0, .. }),
            "{err}"
        );
    }
}
