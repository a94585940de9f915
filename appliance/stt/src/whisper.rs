//! The whisper.cpp engine: one model context shared by every transcriber
//! ([`WhisperModel`]) and one reused decoding state per transcriber,
//! short-clip windows, en/ru detection, cancellation and the filter wired in.

use std::borrow::Cow;
use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use crate::echo::{echo_stop_trampoline, EchoStop};
use crate::filter::{filter_transcript, FilterConfig, FilterReason};
use crate::ggml::check_model_file;
use crate::window::{audio_ctx_for, Budget, WindowFloors, FULL_WINDOW};
use crate::{
    Lang, Language, LanguageDetection, Segment, SttError, TranscribeOptions, Transcriber,
    Transcript, MAX_AUDIO_MS, SAMPLE_RATE,
};

/// Clips shorter than this are padded with silence: whisper.cpp skips input
/// under 100 ms outright, and sub-second clips decode better with some tail.
pub const MIN_AUDIO_MS: u32 = 1000;

/// Settings of a [`WhisperTranscriber`].
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    /// CPU threads for whisper.cpp (the box has 4 cores and the call loop,
    /// VAD and TTS need the rest).
    pub threads: usize,
    /// Encoder window floors; None picks them by the model's type.
    pub floors: Option<WindowFloors>,
    /// Token cap and deadline per clip.
    pub budget: Budget,
    /// Hallucination filter thresholds.
    pub filter: FilterConfig,
    /// Decodes at once among the transcribers of one [`WhisperModel`]
    /// (0: the machine's cores / `threads`, at least 1). More decodes than
    /// cores only thrash: with ten calls on two cores every clip finished
    /// 45 s late; queued, they finish one after another, and a clip whose
    /// deadline passes while it waits is dropped at once.
    pub concurrent_decodes: usize,
    /// whisper's temperature fallback: a decode that fails whisper's
    /// confidence checks (mean log-probability under -1, or a repetitive
    /// text) is run again at temperatures 0.2, 0.4 ... 1.0, up to five more
    /// decodes of the same clip.
    pub fallback: bool,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            threads: 2,
            floors: None,
            budget: Budget::default(),
            filter: FilterConfig::default(),
            concurrent_decodes: 0,
            fallback: true,
        }
    }
}

/// whisper.cpp behind the [`Transcriber`] trait.
pub struct WhisperTranscriber {
    path: PathBuf,
    config: WhisperConfig,
    floors: WindowFloors,
    model_type: String,
    multilingual: bool,
    // Field order is drop order: the state goes before the model (the
    // state also holds the context alive by itself).
    state: WhisperState,
    model: WhisperModel,
    // Built once: `FullParams::set_language` leaks its CString, so per-call
    // params are clones of these rather than fresh builds.
    tuned_en: FullParams<'static, 'static>,
    tuned_ru: FullParams<'static, 'static>,
    plain_en: FullParams<'static, 'static>,
    plain_ru: FullParams<'static, 'static>,
}

impl std::fmt::Debug for WhisperTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTranscriber")
            .field("path", &self.path)
            .field("model_type", &self.model_type)
            .field("multilingual", &self.multilingual)
            .field("floors", &self.floors)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How the language of one call is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LangPlan {
    Fixed(Lang),
    Detect,
}

/// A loaded whisper model that transcribers share: the weights are read
/// once, and each [`WhisperTranscriber`] made from it (one per concurrent
/// call) has only its own decoding state. Cloning is cheap.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    slots: Arc<DecodeSlots>,
    path: PathBuf,
    config: WhisperConfig,
    floors: WindowFloors,
    model_type: String,
    multilingual: bool,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .field("model_type", &self.model_type)
            .finish_non_exhaustive()
    }
}

impl WhisperModel {
    /// Loads a ggml whisper model. Errors name the path: missing, unreadable,
    /// not ggml, or refused by whisper.cpp.
    pub fn load(path: impl AsRef<Path>, config: WhisperConfig) -> Result<Self, SttError> {
        let path = path.as_ref().to_path_buf();
        if config.threads == 0 {
            return Err(SttError::NoThreads);
        }
        let layout = check_model_file(&path)?;
        // whisper.cpp logs every load step to stderr otherwise.
        whisper_rs::install_logging_hooks();

        let ctx = WhisperContext::new_with_params(&path, WhisperContextParameters::default())
            .map_err(|source| SttError::ModelInvalid {
                path: path.clone(),
                source,
            })?;
        let model_type = ctx
            .model_type_readable_str_lossy()
            .map(Cow::into_owned)
            .unwrap_or_default();
        let multilingual = ctx.is_multilingual();
        let floors = config
            .floors
            .unwrap_or_else(|| WindowFloors::for_model_type(&model_type));
        tracing::info!(
            path = %path.display(), model_type, multilingual, ?floors, tensors = layout.tensors,
            "whisper model loaded"
        );
        let slots = match config.concurrent_decodes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()) / config.threads,
            n => n,
        }
        .max(1);
        Ok(Self {
            ctx: Arc::new(ctx),
            slots: Arc::new(DecodeSlots::new(slots)),
            path,
            config,
            floors,
            model_type,
            multilingual,
        })
    }

    /// A transcriber with a decoding state of its own on these weights.
    pub fn transcriber(&self) -> Result<WhisperTranscriber, SttError> {
        let state = self
            .ctx
            .create_state()
            .map_err(|source| SttError::StateInit {
                path: self.path.clone(),
                source,
            })?;
        let threads = c_int::try_from(self.config.threads).unwrap_or(c_int::MAX);
        Ok(WhisperTranscriber {
            tuned_en: tuned_params(threads, Lang::En, self.config.fallback),
            tuned_ru: tuned_params(threads, Lang::Ru, self.config.fallback),
            plain_en: plain_params(threads, Lang::En),
            plain_ru: plain_params(threads, Lang::Ru),
            path: self.path.clone(),
            config: self.config.clone(),
            floors: self.floors,
            model_type: self.model_type.clone(),
            multilingual: self.multilingual,
            state,
            model: self.clone(),
        })
    }
}

impl WhisperTranscriber {
    /// Loads a ggml whisper model with one decoding state (see
    /// [`WhisperModel`] to share the weights among several).
    pub fn load(path: impl AsRef<Path>, config: WhisperConfig) -> Result<Self, SttError> {
        WhisperModel::load(path, config)?.transcriber()
    }

    /// The model this transcriber decodes with, to make more transcribers
    /// on the same weights.
    pub fn model(&self) -> &WhisperModel {
        &self.model
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// whisper.cpp's name for the model size ("tiny", "base", ...).
    pub fn model_type(&self) -> &str {
        &self.model_type
    }

    /// Whether the model knows languages other than English.
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Encoder window floors in use.
    pub fn floors(&self) -> WindowFloors {
        self.floors
    }

    fn plan(&self, language: Language) -> Result<LangPlan, SttError> {
        match (language, self.multilingual) {
            (Language::En, _) | (Language::Auto, false) => Ok(LangPlan::Fixed(Lang::En)),
            (Language::Ru, true) => Ok(LangPlan::Fixed(Lang::Ru)),
            (Language::Ru, false) => Err(SttError::LanguageUnsupported {
                path: self.path.clone(),
                language: Lang::Ru,
            }),
            (Language::Auto, true) => Ok(LangPlan::Detect),
        }
    }

    /// The encoder window to decode `audio_ms` of `lang` with: the caller's
    /// override, or the window rule on this model's floor for the language
    /// (and for digits, when the turn expects them).
    fn decode_window(&self, audio_ms: u32, lang: Lang, opts: &TranscribeOptions) -> u32 {
        opts.audio_ctx
            .unwrap_or_else(|| audio_ctx_for(audio_ms, self.floors.for_lang(lang, opts.digits)))
    }

    /// Picks English or Russian on an encoder window of `audio_ctx`.
    ///
    /// `WhisperState::lang_detect` encodes with the window of the state's last
    /// `full()` call, so a `full()` limited to 100 ms of audio sets the window
    /// first: whisper.cpp stores `audio_ctx` and computes the mel, then stops
    /// before encoding anything.
    fn detect(
        &mut self,
        samples: &[f32],
        audio_ctx: u32,
    ) -> Result<(Lang, LanguageDetection), SttError> {
        let stage = "detecting the language";
        let whisper = |source| SttError::Whisper { stage, source };
        let mut prime = self.tuned_en.clone();
        prime.set_audio_ctx(audio_ctx as c_int);
        prime.set_offset_ms(0);
        prime.set_duration_ms(100);
        self.state.full(prime, samples).map_err(whisper)?;
        let threads = self.config.threads;
        let (_, probs) = self.state.lang_detect(0, threads).map_err(whisper)?;
        let prob = |code| {
            whisper_rs::get_lang_id(code)
                .and_then(|id| probs.get(usize::try_from(id).ok()?).copied())
                .unwrap_or(0.0)
        };
        let detection = LanguageDetection {
            en: prob("en"),
            ru: prob("ru"),
        };
        let lang = if detection.ru > detection.en {
            Lang::Ru
        } else {
            Lang::En
        };
        Ok((lang, detection))
    }

    /// The plain whisper.cpp path, for [`crate::bench`]: default parameters on
    /// the full 30 s window, no token cap, no single-segment mode.
    pub(crate) fn transcribe_plain(
        &mut self,
        audio_16k: &[f32],
        lang: Lang,
    ) -> Result<String, SttError> {
        check_audio(audio_16k)?;
        let params = match lang {
            Lang::En => self.plain_en.clone(),
            Lang::Ru => self.plain_ru.clone(),
        };
        let samples = pad(audio_16k);
        self.state
            .full(params, &samples)
            .map_err(|source| SttError::Whisper {
                stage: "decoding (plain path)",
                source,
            })?;
        Ok(self
            .segments()
            .iter()
            .map(|s| s.text.trim())
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn segments(&self) -> Vec<Segment> {
        // Token ids from end-of-text up are special (timestamps, language, task).
        let eot = self.model.ctx.token_eot();
        self.state
            .as_iter()
            .map(|seg| {
                let (tokens, logprob_sum) = (0..seg.n_tokens())
                    .filter_map(|i| seg.get_token(i))
                    .map(|t| t.token_data())
                    .filter(|d| d.id < eot)
                    .fold((0u32, 0f32), |(n, sum), d| (n + 1, sum + d.plog));
                Segment {
                    text: seg.to_str_lossy().map(Cow::into_owned).unwrap_or_default(),
                    no_speech_prob: seg.no_speech_probability(),
                    tokens,
                    mean_logprob: if tokens > 0 {
                        logprob_sum / tokens as f32
                    } else {
                        0.0
                    },
                }
            })
            .collect()
    }
}

impl Transcriber for WhisperTranscriber {
    fn transcribe(
        &mut self,
        audio_16k: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        let started = Instant::now();
        let audio_ms = check_audio(audio_16k)?;
        let plan = self.plan(opts.language)?;
        if let Some(ctx) = opts.audio_ctx {
            if ctx == 0 || ctx > FULL_WINDOW {
                return Err(SttError::InvalidAudioCtx {
                    audio_ctx: ctx,
                    max: FULL_WINDOW,
                });
            }
        }
        let elapsed_ms = |started: Instant| started.elapsed().as_millis() as u64;
        if opts.cancel.is_cancelled() {
            return Err(SttError::Cancelled {
                elapsed_ms: elapsed_ms(started),
            });
        }

        let rms_dbfs = vb_audio::pcm::to_dbfs(vb_audio::pcm::rms(audio_16k));
        let fixed = match plan {
            LangPlan::Fixed(lang) => Some(lang),
            LangPlan::Detect => None,
        };
        if rms_dbfs < self.config.filter.silence_dbfs {
            return Ok(Transcript {
                text: String::new(),
                raw_text: String::new(),
                language: fixed,
                detection: None,
                segments: Vec::new(),
                no_speech_prob: None,
                rms_dbfs,
                audio_ms,
                elapsed_ms: elapsed_ms(started) as u32,
                audio_ctx: 0,
                filtered: Some(FilterReason::Silence { rms_dbfs }),
            });
        }

        let samples = pad(audio_16k);
        let budget = self.config.budget;
        let deadline_ms = budget.deadline_ms(audio_ms);
        let guard = AbortGuard {
            cancel: opts.cancel.clone(),
            deadline: started + Duration::from_millis(deadline_ms),
            fired: AtomicU8::new(AbortGuard::NOT_FIRED),
        };
        // Whether (and why) the abort callback stopped whisper.
        let aborted = |guard: &AbortGuard| match guard.fired.load(Ordering::Acquire) {
            AbortGuard::CANCELLED => Some(SttError::Cancelled {
                elapsed_ms: elapsed_ms(started),
            }),
            AbortGuard::DEADLINE => Some(SttError::DeadlineExceeded {
                audio_ms,
                deadline_ms,
            }),
            _ => None,
        };

        // One decode per slot; the wait counts against the clip's deadline.
        let slots = self.model.slots.clone();
        let Some(_slot) = slots.take(&guard) else {
            return Err(aborted(&guard).unwrap_or(SttError::Cancelled {
                elapsed_ms: elapsed_ms(started),
            }));
        };

        let (lang, detection, audio_ctx) = match plan {
            LangPlan::Fixed(lang) => {
                let ctx = self.decode_window(audio_ms, lang, opts);
                (lang, None, ctx)
            }
            LangPlan::Detect => {
                let detect_ctx = opts
                    .audio_ctx
                    .unwrap_or_else(|| audio_ctx_for(audio_ms, self.floors.for_unknown()));
                let (lang, detection) = self.detect(&samples, detect_ctx)?;
                // lang_detect has no abort hook: look once it is done.
                if guard.check() {
                    if let Some(err) = aborted(&guard) {
                        return Err(err);
                    }
                }
                // Detection needs the window that serves both languages; the
                // decode re-encodes anyway, so it can use the detected one's.
                let ctx = self.decode_window(audio_ms, lang, opts);
                (lang, Some(detection), ctx)
            }
        };

        let mut params = match lang {
            Lang::En => self.tuned_en.clone(),
            Lang::Ru => self.tuned_ru.clone(),
        };
        params.set_audio_ctx(audio_ctx as c_int);
        params.set_max_tokens(budget.max_tokens(audio_ms) as c_int);
        // SAFETY: the callback only reads `guard` through the pointer, and
        // `guard` lives on this stack frame until after `full` returns; `full`
        // consumes `params`, so no copy of the pointer outlives the call.
        let echo = EchoStop::default();
        unsafe {
            params.set_abort_callback(Some(abort_trampoline));
            params.set_abort_callback_user_data(std::ptr::from_ref(&guard).cast_mut().cast());
            // SAFETY: as for the guard: `echo` outlives the `full` call.
            params.set_filter_logits_callback(Some(echo_stop_trampoline));
            params
                .set_filter_logits_callback_user_data(std::ptr::from_ref(&echo).cast_mut().cast());
        }
        self.state.full(params, &samples).map_err(|source| {
            aborted(&guard).unwrap_or(SttError::Whisper {
                stage: "decoding",
                source,
            })
        })?;

        let echo_stops = echo.stops.load(Ordering::Relaxed);
        if echo_stops > 0 {
            tracing::debug!(
                echo_stops,
                audio_ms,
                audio_ctx,
                "whisper started repeating itself; decode ended there"
            );
        }
        let segments = self.segments();
        let raw_text = segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let no_speech_prob = segments.iter().map(|s| s.no_speech_prob).reduce(f32::max);
        let verdict = filter_transcript(&raw_text, no_speech_prob, rms_dbfs, &self.config.filter);
        let transcript = Transcript {
            text: verdict.text,
            raw_text,
            language: Some(lang),
            detection,
            segments,
            no_speech_prob,
            rms_dbfs,
            audio_ms,
            elapsed_ms: elapsed_ms(started) as u32,
            audio_ctx,
            filtered: verdict.reason,
        };
        tracing::debug!(
            audio_ms, audio_ctx, elapsed_ms = transcript.elapsed_ms, ?lang,
            filtered = ?transcript.filtered, "transcribed"
        );
        Ok(transcript)
    }
}

/// Greedy, one candidate, no prompt carry-over, one segment, no timestamps:
/// the cheapest decode; whisper's temperature fallback when `fallback`.
fn tuned_params(threads: c_int, lang: Lang, fallback: bool) -> FullParams<'static, 'static> {
    let mut p = plain_params(threads, lang);
    if !fallback {
        p.set_temperature_inc(0.0);
    }
    p.set_no_context(true);
    p.set_single_segment(true);
    p.set_no_timestamps(true);
    // Non-speech tokens are how "[Music]" and "♪" get in.
    p.set_suppress_nst(true);
    p
}

/// whisper.cpp's defaults with greedy search, the language fixed and printing off.
fn plain_params(threads: c_int, lang: Lang) -> FullParams<'static, 'static> {
    let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    p.set_n_threads(threads);
    p.set_language(Some(lang.code()));
    p.set_print_special(false);
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_timestamps(false);
    p
}

/// A counting semaphore for decodes, shared by a model's transcribers,
/// handed out first come, first served: with more calls than slots, the
/// caller who stopped talking first is transcribed first (a condvar alone
/// wakes an arbitrary waiter, and a newcomer could take a slot ahead of
/// one that had waited a second).
#[derive(Debug)]
struct DecodeSlots {
    state: std::sync::Mutex<SlotQueue>,
    freed: std::sync::Condvar,
}

/// Free slots and the tickets waiting for one, oldest first.
#[derive(Debug)]
struct SlotQueue {
    free: usize,
    next_ticket: u64,
    waiting: std::collections::VecDeque<u64>,
}

/// A taken decode slot; given back on drop.
struct DecodeSlot<'a>(&'a DecodeSlots);

impl Drop for DecodeSlot<'_> {
    fn drop(&mut self) {
        self.0.lock().free += 1;
        // Every waiter looks; only the oldest takes it.
        self.0.freed.notify_all();
    }
}

impl DecodeSlots {
    fn new(n: usize) -> Self {
        Self {
            state: std::sync::Mutex::new(SlotQueue {
                free: n,
                next_ticket: 0,
                waiting: std::collections::VecDeque::new(),
            }),
            freed: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotQueue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot, in arrival order, until `guard` says stop
    /// (cancelled or past the deadline): `None` then.
    fn take(&self, guard: &AbortGuard) -> Option<DecodeSlot<'_>> {
        let mut q = self.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push_back(ticket);
        loop {
            if q.free > 0 && q.waiting.front() == Some(&ticket) {
                q.free -= 1;
                q.waiting.pop_front();
                // A second free slot goes to the next in line.
                self.freed.notify_all();
                return Some(DecodeSlot(self));
            }
            if guard.check() {
                q.waiting.retain(|&t| t != ticket);
                // The one behind may now be first.
                self.freed.notify_all();
                return None;
            }
            // Woken when a slot frees; the timeout lets a cancel be seen.
            q = self
                .freed
                .wait_timeout(q, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Why whisper's abort callback fired, recorded so the error can say.
struct AbortGuard {
    cancel: crate::CancelFlag,
    deadline: Instant,
    fired: AtomicU8,
}

impl AbortGuard {
    const NOT_FIRED: u8 = 0;
    const CANCELLED: u8 = 1;
    const DEADLINE: u8 = 2;

    fn check(&self) -> bool {
        let why = if self.cancel.is_cancelled() {
            Self::CANCELLED
        } else if Instant::now() >= self.deadline {
            Self::DEADLINE
        } else {
            return false;
        };
        self.fired.store(why, Ordering::Release);
        true
    }
}

/// whisper.cpp calls this after each encoder pass and each decoder step.
unsafe extern "C" fn abort_trampoline(user_data: *mut c_void) -> bool {
    // SAFETY: user_data is the `&AbortGuard` set in `transcribe`, alive for
    // the whole `full` call that invokes this.
    let guard = unsafe { &*(user_data as *const AbortGuard) };
    guard.check()
}

/// Checks a clip and returns its length in ms.
fn check_audio(audio: &[f32]) -> Result<u32, SttError> {
    if audio.is_empty() {
        return Err(SttError::EmptyAudio);
    }
    let audio_ms = audio.len() as u64 * 1000 / u64::from(SAMPLE_RATE);
    if audio_ms > u64::from(MAX_AUDIO_MS) {
        return Err(SttError::AudioTooLong {
            audio_ms,
            limit_ms: MAX_AUDIO_MS,
        });
    }
    if let Some((index, &value)) = audio.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(SttError::NonFiniteSample { index, value });
    }
    Ok(audio_ms as u32)
}

/// Pads a clip with trailing silence up to [`MIN_AUDIO_MS`].
fn pad(audio: &[f32]) -> Cow<'_, [f32]> {
    let min = (MIN_AUDIO_MS * SAMPLE_RATE / 1000) as usize;
    if audio.len() >= min {
        return Cow::Borrowed(audio);
    }
    let mut padded = audio.to_vec();
    padded.resize(min, 0.0);
    Cow::Owned(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_checks_name_the_problem() {
        assert!(matches!(check_audio(&[]), Err(SttError::EmptyAudio)));
        let long = vec![0.0; (MAX_AUDIO_MS as usize + 1) * 16];
        let err = check_audio(&long).expect_err("over the limit");
        assert!(matches!(
            err,
            SttError::AudioTooLong {
                audio_ms: 30_001,
                limit_ms: 30_000
            }
        ));
        assert!(err.to_string().contains("MAX_AUDIO_MS"), "{err}");
        let mut nan = vec![0.0; 100];
        nan[42] = f32::NAN;
        assert!(matches!(
            check_audio(&nan),
            Err(SttError::NonFiniteSample { index: 42, .. })
        ));
        nan[42] = f32::INFINITY;
        assert!(check_audio(&nan).is_err());
        assert_eq!(check_audio(&vec![0.0; 32_000]).expect("2 s is fine"), 2000);
        assert_eq!(
            check_audio(&vec![0.0; 480_000]).expect("30 s is fine"),
            30_000
        );
    }

    #[test]
    fn short_clips_are_padded_long_ones_borrowed() {
        let short = vec![0.5; 800];
        let padded = pad(&short);
        assert_eq!(padded.len(), 16_000);
        assert_eq!(padded[799], 0.5);
        assert_eq!(padded[800], 0.0);
        let long = vec![0.5; 20_000];
        assert!(matches!(pad(&long), Cow::Borrowed(_)));
    }

    fn open_guard() -> AbortGuard {
        AbortGuard {
            cancel: crate::CancelFlag::new(),
            deadline: Instant::now() + Duration::from_secs(60),
            fired: AtomicU8::new(AbortGuard::NOT_FIRED),
        }
    }

    #[test]
    fn decode_slots_go_to_waiters_in_arrival_order() {
        let slots = Arc::new(DecodeSlots::new(1));
        let held = slots.take(&open_guard()).expect("a free slot");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..4 {
            let (mine, order) = (slots.clone(), order.clone());
            waiters.push(std::thread::spawn(move || {
                let slot = mine.take(&open_guard()).expect("a slot in turn");
                order.lock().unwrap().push(i);
                std::thread::sleep(Duration::from_millis(5));
                drop(slot);
            }));
            // Each waiter has its ticket before the next arrives.
            while slots.lock().waiting.len() < i + 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_line() {
        let slots = DecodeSlots::new(1);
        let held = slots.take(&open_guard()).expect("a free slot");
        let cancelled = open_guard();
        cancelled.cancel.cancel();
        assert!(slots.take(&cancelled).is_none());
        assert!(slots.lock().waiting.is_empty());
        drop(held);
        // The slot is free again and nobody stale is ahead in line.
        assert!(slots.take(&open_guard()).is_some());
    }

    #[test]
    fn abort_guard_reports_cancel_before_deadline() {
        let guard = AbortGuard {
            cancel: crate::CancelFlag::new(),
            deadline: Instant::now() + Duration::from_secs(60),
            fired: AtomicU8::new(AbortGuard::NOT_FIRED),
        };
        assert!(!guard.check());
        guard.cancel.cancel();
        assert!(guard.check());
        assert_eq!(guard.fired.load(Ordering::Acquire), AbortGuard::CANCELLED);

        let late = AbortGuard {
            cancel: crate::CancelFlag::new(),
            deadline: Instant::now(),
            fired: AtomicU8::new(AbortGuard::NOT_FIRED),
        };
        // SAFETY: the pointer is to a live guard, as in `transcribe`.
        assert!(unsafe { abort_trampoline(std::ptr::from_ref(&late).cast_mut().cast()) });
        assert_eq!(late.fired.load(Ordering::Acquire), AbortGuard::DEADLINE);
    }
}
