//! vb-tts: text-to-speech on the box. Piper voices (VITS models run by
//! onnxruntime) for languages with a voice installed, espeak-ng's own voices
//! for the rest, streamed sentence by sentence so the caller hears the first
//! sentence while the next is synthesized.
//!
//! # Layout
//!
//! ```text
//!             text, language, out_rate, CancelToken
//!                            |
//!                            v
//!   tts::Tts ----- split::SentenceSplitter  (". ! ? …", abbreviations, long-sentence cuts)
//!     |  \
//!     |   select::VoiceSelector  (voices dir: *.onnx + *.onnx.json -> language)
//!     |        |                                   \
//!     |        v                                    v
//!     |   piper::PiperVoice  ---- phonemes ----  espeak::Espeak  (process-wide lock,
//!     |     (onnxruntime session,                   |             explicit espeak-ng-data)
//!     |      runtime::OnnxRuntime)                  v
//!     |        |                              espeak::EspeakVoice (fallback, e.g. Russian)
//!     |        +------------ Synthesizer ------------+
//!     v
//!   tts::SentenceStream -- per sentence: synthesize -> vb_audio::resample -> SentenceAudio
//!   cache::PhraseCache  -- fixed phrases by (voice, rate, text), byte budget, LRU
//! ```
//!
//! - [`runtime`]: loads onnxruntime from an explicit library path once per process.
//! - [`espeak`]: the process-global espeak-ng engine behind one mutex:
//!   phonemisation for Piper and the [`EspeakVoice`] fallback. Its module docs
//!   say where `espeak-ng-data` comes from on the box.
//! - [`festival`]: [`FestivalVoice`], Festival's `text2wave` as a subprocess (a
//!   natural Russian caller voice for simulations and tests).
//! - [`piper`]: [`PiperVoice`] and voice config reading.
//! - [`select`]: which voice speaks which language.
//! - [`split`]: sentence splitting.
//! - [`cache`]: the phrase cache.
//! - [`tts`]: the [`Tts`] facade and [`SentenceStream`].
//! - [`error`]: the [`TtsError`] enum.
//!
//! # Native build
//!
//! `espeak-rs-sys` compiles espeak-ng statically, which links the system
//! `libsonic` (Debian `libsonic-dev`, and `libsonic-dev:arm64` for cross
//! builds). `build.rs` adds the link flag for this crate's own tests and
//! examples; binaries of other crates that link vb-tts need
//! `-C link-arg=-lsonic` too (see the workspace `.cargo/config.toml`).

//!
//! # Tests and measurements
//!
//! `tests/` runs the real engines over the installed models:
//! `VOICEBLOCK_MODELS` (default `~/.cache/voiceblock/models`, as vb-models
//! installs it), `VOICEBLOCK_ONNXRUNTIME`, `VOICEBLOCK_ESPEAK_DATA` (default:
//! the system's `espeak-ng-data`). `cargo run -p vb-tts --example tts_bench
//! [intra_threads]` prints voice load time, time to first audio and the
//! real-time factor of one- and three-sentence replies.

pub mod cache;
pub mod error;
pub mod espeak;
pub mod festival;
pub mod piper;
pub mod runtime;
pub mod select;
pub mod split;
pub mod tts;

pub use cache::{CacheStats, PhraseCache, SharedPhraseCache};
pub use error::TtsError;
pub use espeak::{Espeak, EspeakOptions, EspeakVoice};
pub use festival::FestivalVoice;
pub use piper::{PiperOptions, PiperVoice, VoiceInfo};
pub use runtime::OnnxRuntime;
pub use select::{VoiceChoice, VoiceSelector};
pub use split::SentenceSplitter;
pub use tts::{CancelToken, SentenceAudio, SentenceStream, Tts, TtsConfig};
pub use vb_audio::Pcm;

/// A voice that turns one sentence of text into audio at its own rate.
pub trait Synthesizer {
    /// Synthesizes one sentence. Empty audio means there was nothing to say
    /// (punctuation only).
    fn synthesize(&mut self, text: &str) -> Result<Pcm, TtsError>;

    /// The rate of the audio [`Synthesizer::synthesize`] returns, in Hz.
    fn sample_rate(&self) -> u32;

    /// A name for logs and cache keys ("en_US-joe-medium", "espeak-ru").
    fn name(&self) -> &str;
}
