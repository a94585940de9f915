//! The [`Tts`] facade: one voice per language, loaded on first use (or at
//! startup with [`Tts::preload`]), sentence-by-sentence streaming resampled to
//! the call's rate, cancellable between sentences, and a phrase cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vb_audio::Pcm;

use crate::cache::{CacheStats, PhraseCache, SharedPhraseCache};
use crate::error::TtsError;
use crate::espeak::{Espeak, EspeakOptions, EspeakVoice};
use crate::piper::{PiperOptions, PiperVoice};
use crate::runtime::OnnxRuntime;
use crate::select::{VoiceChoice, VoiceSelector};
use crate::split::SentenceSplitter;
use crate::Synthesizer;

/// Everything [`Tts::new`] needs; paths are explicit, nothing is guessed.
#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// Directory scanned for Piper voices (`*.onnx` + `*.onnx.json`).
    pub voices_dir: PathBuf,
    /// The onnxruntime shared library (`libonnxruntime.so.1.31.1`).
    pub onnxruntime: PathBuf,
    /// Directory containing `espeak-ng-data` (or that directory itself).
    pub espeak_data: PathBuf,
    /// How Piper voices run.
    pub piper: PiperOptions,
    /// How the espeak fallback speaks.
    pub espeak: EspeakOptions,
    /// Whether a language with no Piper voice falls back to espeak-ng.
    pub espeak_fallback: bool,
    /// Longest text accepted by one call, in characters (a runaway LLM reply
    /// must not tie up the synthesizer for minutes).
    pub max_text_chars: usize,
    /// Longest sentence before it is cut at a clause boundary, in characters.
    pub max_sentence_chars: usize,
    /// Whether a text's first sentence is spoken as its first clause, then
    /// the rest ([`SentenceSplitter::with_first_clause`]): first audio after
    /// a clause's synthesis. On by default.
    pub first_clause: bool,
    /// Phrase cache budget in bytes.
    pub cache_bytes: usize,
}

impl TtsConfig {
    /// Default `max_text_chars`: about three minutes of speech.
    pub const DEFAULT_MAX_TEXT_CHARS: usize = 2000;

    /// A config with the given paths and default settings.
    pub fn new(voices_dir: PathBuf, onnxruntime: PathBuf, espeak_data: PathBuf) -> Self {
        Self {
            voices_dir,
            onnxruntime,
            espeak_data,
            piper: PiperOptions::default(),
            espeak: EspeakOptions::default(),
            espeak_fallback: true,
            max_text_chars: Self::DEFAULT_MAX_TEXT_CHARS,
            max_sentence_chars: SentenceSplitter::DEFAULT_MAX_CHARS,
            first_clause: true,
            cache_bytes: PhraseCache::DEFAULT_BUDGET_BYTES,
        }
    }
}

/// A shared flag that stops a [`SentenceStream`] before its next sentence
/// (barge-in). Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an existing flag (for example the call's turn token).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// One synthesized sentence of a [`SentenceStream`].
#[derive(Debug, Clone)]
pub struct SentenceAudio {
    /// Position of the sentence in the text, from 0.
    pub index: usize,
    /// The sentence as spoken (for the transcript of what the caller heard).
    pub text: String,
    /// Its audio at the stream's output rate.
    pub pcm: Pcm,
}

/// Text-to-speech for the box.
pub struct Tts {
    config: TtsConfig,
    runtime: OnnxRuntime,
    espeak: Espeak,
    selector: VoiceSelector,
    splitter: SentenceSplitter,
    /// Loaded voices by normalised language tag.
    voices: HashMap<String, Box<dyn Synthesizer + Send>>,
    cache: SharedPhraseCache,
    /// One sentence synthesized ahead by [`Tts::prepare`].
    prepared: Option<Prepared>,
    /// Synthesis time of prepared sentences streams have used, not yet
    /// taken by [`Tts::take_prepared_ms`].
    prepared_used_ms: u64,
}

/// A first sentence synthesized before it was asked for.
struct Prepared {
    voice: String,
    rate: u32,
    text: String,
    pcm: Pcm,
    /// Wall time its synthesis took.
    synth_ms: u64,
}

impl std::fmt::Debug for Tts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tts")
            .field("config", &self.config)
            .field("voices", &self.selector.voices())
            .field("loaded", &self.voices.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn language_key(language: &str) -> String {
    language.trim().to_lowercase().replace('-', "_")
}

impl Tts {
    /// Loads onnxruntime, initialises espeak-ng and scans the voices
    /// directory. Voices themselves load on first use or [`Tts::preload`].
    pub fn new(config: TtsConfig) -> Result<Self, TtsError> {
        let runtime = OnnxRuntime::load(&config.onnxruntime)?;
        let espeak = Espeak::init(&config.espeak_data)?;
        let selector = VoiceSelector::scan(&config.voices_dir)?;
        Ok(Self {
            runtime,
            espeak,
            selector,
            splitter: SentenceSplitter::new(config.max_sentence_chars)
                .with_first_clause(config.first_clause),
            voices: HashMap::new(),
            cache: SharedPhraseCache::new(config.cache_bytes),
            prepared: None,
            prepared_used_ms: 0,
            config,
        })
    }

    /// The voices found in the voices directory.
    pub fn selector(&self) -> &VoiceSelector {
        &self.selector
    }

    /// What would speak `language`, without loading it.
    pub fn choice(&self, language: &str) -> VoiceChoice {
        self.selector.choose(language)
    }

    /// The voices directory being used.
    pub fn voices_dir(&self) -> &Path {
        &self.config.voices_dir
    }

    /// Loads the voice for `language` now (about a second for a Piper
    /// voice), so the first caller does not wait for it.
    pub fn preload(&mut self, language: &str) -> Result<(), TtsError> {
        self.voice(language).map(|_| ())
    }

    /// The synthesizer for `language`, loading it on first use.
    pub fn voice(
        &mut self,
        language: &str,
    ) -> Result<&mut (dyn Synthesizer + Send + 'static), TtsError> {
        let key = language_key(language);
        if !self.voices.contains_key(&key) {
            let voice: Box<dyn Synthesizer + Send> = match self.selector.choose(language) {
                VoiceChoice::Piper(info) => Box::new(PiperVoice::load(
                    &info.model,
                    &info.config,
                    &self.runtime,
                    &self.espeak,
                    self.config.piper.clone(),
                )?),
                VoiceChoice::Espeak(_) if !self.config.espeak_fallback => {
                    return Err(TtsError::NoVoice {
                        language: language.to_string(),
                        voices_dir: self.config.voices_dir.clone(),
                    })
                }
                VoiceChoice::Espeak(name) => Box::new(EspeakVoice::new(
                    &self.espeak,
                    &name,
                    self.config.espeak.clone(),
                )?),
            };
            tracing::info!(language, voice = voice.name(), "voice ready");
            self.voices.insert(key.clone(), voice);
        }
        self.voices
            .get_mut(&key)
            .map(|v| v.as_mut())
            .ok_or_else(|| TtsError::NoVoice {
                language: language.to_string(),
                voices_dir: self.config.voices_dir.clone(),
            })
    }

    fn check_text(&self, text: &str) -> Result<(), TtsError> {
        let chars = text.chars().count();
        if chars > self.config.max_text_chars {
            return Err(TtsError::TextTooLong {
                chars,
                limit: self.config.max_text_chars,
            });
        }
        if text.contains('\0') {
            return Err(TtsError::NulInText);
        }
        if !text.chars().any(char::is_alphanumeric) {
            return Err(TtsError::EmptyText);
        }
        Ok(())
    }

    /// Turns [`TtsConfig::first_clause`] on or off for the next streams
    /// (a benchmark compares the two on one engine).
    pub fn set_first_clause(&mut self, on: bool) {
        self.config.first_clause = on;
        self.splitter = self.splitter.clone().with_first_clause(on);
    }

    /// Splits `text` into sentences as [`Tts::stream`] would.
    pub fn sentences(&self, text: &str) -> Vec<String> {
        self.splitter.split(text)
    }

    /// Speaks `text` in `language` sentence by sentence: the returned
    /// iterator synthesizes each sentence when asked for it and yields its
    /// audio resampled to `out_rate`, so the first audio is ready after one
    /// sentence's synthesis. Once `cancel` is set no further sentence is
    /// synthesized. A sentence that fails yields its error and the stream
    /// goes on with the next; the caller may stop by dropping the iterator.
    pub fn stream(
        &mut self,
        language: &str,
        text: &str,
        out_rate: u32,
        cancel: CancelToken,
    ) -> Result<SentenceStream<'_>, TtsError> {
        self.check_text(text)?;
        let sentences = self.splitter.split(text);
        let prepared = self.prepared.take();
        let voice_name = self.voice(language)?.name().to_string();
        let ready = prepared
            .filter(|p| {
                p.rate == out_rate
                    && p.voice == voice_name
                    && sentences.first().is_some_and(|s| *s == p.text)
            })
            .map(|p| {
                self.prepared_used_ms += p.synth_ms;
                p.pcm
            });
        let voice = self.voice(language)?;
        Ok(SentenceStream {
            voice,
            sentences: sentences.into_iter().enumerate(),
            out_rate,
            cancel,
            ready,
        })
    }

    /// Synthesis time (ms) of the prepared sentences that streams have used
    /// since the last call: spent ahead of the reply, it is still the
    /// reply's synthesis (for real-time factors).
    pub fn take_prepared_ms(&mut self) -> u64 {
        std::mem::take(&mut self.prepared_used_ms)
    }

    /// The sentence [`Tts::prepare`] made and no stream has used yet, with
    /// its audio.
    pub fn prepared(&self) -> Option<(&str, &Pcm)> {
        self.prepared.as_ref().map(|p| (p.text.as_str(), &p.pcm))
    }

    /// Synthesizes the first sentence of `text` ahead of time: the next
    /// [`Tts::stream`] whose text starts with that sentence, in the same
    /// voice and at the same rate, yields it at once instead of
    /// synthesizing it. A call prepares the reply it expects while it is
    /// still making sure the caller has finished; one sentence is kept,
    /// and the next stream uses it or drops it. Returns whether a sentence
    /// was prepared (not when `cancel` was set first or the text is empty).
    pub fn prepare(
        &mut self,
        language: &str,
        text: &str,
        out_rate: u32,
        cancel: CancelToken,
    ) -> Result<bool, TtsError> {
        self.prepared = None;
        let started = std::time::Instant::now();
        let mut stream = self.stream(language, text, out_rate, cancel)?;
        let voice = stream.voice.name().to_string();
        match stream.next() {
            Some(Ok(first)) => {
                self.prepared = Some(Prepared {
                    voice,
                    rate: out_rate,
                    text: first.text,
                    pcm: first.pcm,
                    synth_ms: started.elapsed().as_millis() as u64,
                });
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }

    /// Speaks `text` whole (all sentences joined), through the phrase cache:
    /// fixed phrases are synthesized once per voice and rate.
    pub fn synthesize_cached(
        &mut self,
        language: &str,
        text: &str,
        out_rate: u32,
    ) -> Result<Pcm, TtsError> {
        self.check_text(text)?;
        let voice_name = self.voice(language)?.name().to_string();
        if let Some(pcm) = self.cache.lock().get(&voice_name, out_rate, text) {
            return Ok(pcm);
        }
        let mut whole = Pcm::new(out_rate, Vec::new());
        for sentence in self.stream(language, text, out_rate, CancelToken::new())? {
            whole.samples.extend_from_slice(&sentence?.pcm.samples);
        }
        self.cache
            .lock()
            .insert(&voice_name, out_rate, text, whole.clone());
        Ok(whole)
    }

    /// Whether [`Tts::synthesize_cached`] has `text` ready for this
    /// language's voice at `out_rate` (no counters move).
    pub fn is_cached(
        &mut self,
        language: &str,
        text: &str,
        out_rate: u32,
    ) -> Result<bool, TtsError> {
        let voice = self.voice(language)?.name().to_string();
        Ok(self.cache.lock().contains(&voice, out_rate, text))
    }

    /// Phrase cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.lock().stats()
    }

    /// This engine's phrase cache, to share with another (see
    /// [`Tts::use_phrase_cache`]).
    pub fn phrase_cache(&self) -> SharedPhraseCache {
        self.cache.clone()
    }

    /// Uses `cache` from now on instead of this engine's own: engines for
    /// concurrent calls share one, so each phrase is synthesized once.
    pub fn use_phrase_cache(&mut self, cache: SharedPhraseCache) {
        self.cache = cache;
    }
}

/// Sentences of one reply, synthesized lazily; see [`Tts::stream`].
pub struct SentenceStream<'a> {
    voice: &'a mut (dyn Synthesizer + Send + 'static),
    sentences: std::iter::Enumerate<std::vec::IntoIter<String>>,
    out_rate: u32,
    cancel: CancelToken,
    /// The first sentence's audio, prepared ahead ([`Tts::prepare`]).
    ready: Option<Pcm>,
}

impl std::fmt::Debug for SentenceStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceStream")
            .field("voice", &self.voice.name())
            .field("remaining", &self.sentences.len())
            .field("out_rate", &self.out_rate)
            .finish()
    }
}

impl SentenceStream<'_> {
    /// Sentences not yet synthesized.
    pub fn remaining(&self) -> usize {
        self.sentences.len()
    }

    /// The output rate.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }
}

impl Iterator for SentenceStream<'_> {
    type Item = Result<SentenceAudio, TtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let (index, text) = self.sentences.next()?;
        if let Some(pcm) = self.ready.take() {
            return Some(Ok(SentenceAudio { index, text, pcm }));
        }
        let result = self.voice.synthesize(&text).and_then(|pcm| {
            let from = pcm.rate;
            vb_audio::resample(&pcm, self.out_rate).map_err(|source| TtsError::Resample {
                from,
                to: self.out_rate,
                source,
            })
        });
        Some(result.map(|pcm| SentenceAudio { index, text, pcm }))
    }
}
