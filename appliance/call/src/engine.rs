//! The turn engine: caller audio -> endpointed utterances -> transcript ->
//! dialog reply -> robot audio, with every stage timed.
//!
//! Transport-agnostic: it is fed 16 kHz samples and returns robot audio at the
//! output rate the caller of the engine asks for (8 kHz for G.711, 16 kHz for
//! recordings).

use std::path::PathBuf;
use std::time::Instant;

use thiserror::Error;
use vb_audio::{resample, wav, AudioError, Pcm};
use vb_dialog::{Dialog, Expect, Reply, ReplyPart, Robot, SttLanguage};
use vb_stt::{CancelFlag, Language, SttError, TranscribeOptions, Transcriber};
use vb_tts::{CancelToken, Tts, TtsError};
use vb_vad::{
    Aggressiveness, EndpointConfig, EndpointEvent, Endpointer, Patience, Vad, VadError, WebRtcVad,
};

use crate::record::TurnTimings;

/// Sample rate of the recognition path (whisper and webrtc-vad both take 16 kHz).
pub const ASR_RATE: u32 = 16_000;
const FRAME_16K: usize = 320;

/// Why a call could not go on. The underlying error is the `source()`:
/// print with `{:#}` (anyhow) or walk the chain to see it.
#[derive(Debug, Error)]
pub enum CallError {
    /// Caller or phrase audio could not be read or converted.
    #[error("audio")]
    Audio(#[from] AudioError),
    /// The voice activity detector failed.
    #[error("voice activity detection")]
    Vad(#[from] VadError),
    /// Speech recognition failed.
    #[error("speech recognition")]
    Stt(#[from] SttError),
    /// Speech synthesis failed.
    #[error("speech synthesis")]
    Tts(#[from] TtsError),
    /// A pre-recorded phrase declared by the robot could not be played.
    #[error("robot {robot}: recorded phrase {phrase} ({path})")]
    Recorded {
        /// Robot name.
        robot: String,
        /// Phrase id.
        phrase: String,
        /// The WAV file.
        path: PathBuf,
        /// What went wrong (boxed: it is large and the error path is cold).
        source: Box<AudioError>,
    },
    /// The task running the responder's turn panicked or was aborted.
    #[error("responder task")]
    Responder(#[from] tokio::task::JoinError),
}

/// Settings of a call engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Endpointing (hangover, minimum speech, digit patience).
    pub endpoint: EndpointConfig,
    /// webrtc-vad aggressiveness.
    pub vad_aggressiveness: Aggressiveness,
    /// Rate of the robot audio the engine returns.
    pub out_rate: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            endpoint: EndpointConfig::default(),
            vad_aggressiveness: Aggressiveness::default(),
            out_rate: ASR_RATE,
        }
    }
}

/// One caller turn after endpointing and recognition.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// Transcripts of the turn's utterances joined with spaces (filtered ones left out).
    pub text: String,
    /// Language recognised for the last utterance.
    pub language: Option<String>,
    /// Why an utterance was discarded by the hallucination filter, if one was.
    pub filtered: Option<String>,
    /// Number of utterances found.
    pub utterances: usize,
    /// Recognition of at least one utterance overran its deadline: the caller
    /// spoke but was not understood (the dialog asks again, rather than
    /// treating the turn as silence).
    pub overran: bool,
    /// Endpoint hangover of the last utterance (audio ms).
    pub endpoint_ms: u64,
    /// Recognition wall time of the last utterance (earlier utterances are
    /// recognised while the caller is still talking, as on a live call).
    pub stt_ms: u64,
    /// Audio length of the last utterance (ms), the one `stt_ms` timed.
    pub audio_ms: u64,
    /// Recognition wall time when the last utterance was recognised
    /// speculatively at a pause (`stt_ms` is then what was left of it
    /// after the endpoint).
    pub speculative_ms: Option<u64>,
}

/// The robot's rendered reply.
#[derive(Debug, Clone)]
pub struct Spoken {
    /// Reply audio at the engine's output rate.
    pub audio: Pcm,
    /// Reply text -> first audio ready, wall ms.
    pub first_audio_ms: u64,
    /// "tts", "tts-cache", "recorded", or "mixed" for a reply whose parts differ.
    pub source: &'static str,
}

/// One phrase of a reply, borrowed from the dialog's [`Reply`].
struct Part<'r> {
    phrase: &'r str,
    text: &'r str,
    audio: Option<&'r PathBuf>,
    cacheable: bool,
}

/// The phrases of `reply` in the order they are said (the reply itself when
/// it has no parts).
fn parts_of(reply: &Reply) -> Vec<Part<'_>> {
    if reply.parts.is_empty() {
        vec![Part {
            phrase: &reply.phrase_id,
            text: &reply.text,
            audio: reply.audio.as_ref(),
            cacheable: reply.cacheable,
        }]
    } else {
        reply
            .parts
            .iter()
            .map(|p: &ReplyPart| Part {
                phrase: p.phrase.as_str(),
                text: &p.text,
                audio: p.audio.as_ref(),
                cacheable: p.cacheable,
            })
            .collect()
    }
}

/// Runs turns for one call. Owns the engines it needs; the dialog is owned by
/// the caller of the engine so a transport can inspect the lead at any time.
pub struct CallEngine<'a> {
    stt: &'a mut dyn Transcriber,
    tts: &'a mut Tts,
    robot: &'a Robot,
    config: EngineConfig,
    stt_options: TranscribeOptions,
}

impl<'a> CallEngine<'a> {
    /// An engine for one call with `robot`.
    pub fn new(
        stt: &'a mut dyn Transcriber,
        tts: &'a mut Tts,
        robot: &'a Robot,
        config: EngineConfig,
    ) -> Self {
        let stt_options = TranscribeOptions {
            language: match robot.config.stt_language {
                SttLanguage::En => Language::En,
                SttLanguage::Ru => Language::Ru,
                SttLanguage::Auto => Language::Auto,
            },
            ..TranscribeOptions::default()
        };
        CallEngine {
            stt,
            tts,
            robot,
            config,
            stt_options,
        }
    }

    /// Tells recognition what the dialog waits for: while it waits for a
    /// phone number, speech is recognised on the encoder window kept for
    /// dictated digits (`vb_stt::window::WindowFloors::ru_digits`).
    pub fn set_expect(&mut self, expect: Expect) {
        self.stt_options.digits = expect == Expect::Digits;
    }

    /// Output sample rate of robot audio.
    pub fn out_rate(&self) -> u32 {
        self.config.out_rate
    }

    /// Runs one caller turn's audio through VAD, endpointing and STT.
    ///
    /// `expect` sets the endpointer's patience: while the dialog waits for a
    /// phone number the caller pauses between digit groups, so a longer
    /// hangover keeps the number in one utterance.
    pub fn hear(&mut self, caller: &Pcm, expect: Expect) -> Result<Heard, CallError> {
        let audio = if caller.rate == ASR_RATE {
            caller.clone()
        } else {
            resample::resample(caller, ASR_RATE)?
        };
        let mut samples = audio.to_i16();
        // The caller stops talking and the line goes quiet: trailing silence
        // lets the endpointer close the last utterance the way it would live.
        let hangover = self
            .config
            .endpoint
            .hangover_ms
            .max(self.config.endpoint.digits_hangover_ms);
        samples.extend(std::iter::repeat_n(
            0i16,
            (ASR_RATE as usize / 1000) * (hangover as usize + 200),
        ));

        self.set_expect(expect);
        let mut vad = WebRtcVad::new(ASR_RATE, self.config.vad_aggressiveness)?;
        let mut ep = Endpointer::new(self.config.endpoint.clone())?;
        ep.set_patience(if expect == Expect::Digits {
            Patience::Digits
        } else {
            Patience::Normal
        });

        let mut heard = Heard::default();
        let mut texts = Vec::new();
        for frame in samples.chunks_exact(FRAME_16K) {
            let speech = vad.is_speech(frame)?;
            if let Some(EndpointEvent::SpeechEnd { end_ms, audio, .. }) = ep.push(frame, speech) {
                let decided_ms = ep.now_ms();
                heard.endpoint_ms = decided_ms.saturating_sub(end_ms);
                let pcm = Pcm::from_i16(ASR_RATE, &audio);
                self.recognize(&pcm, &mut heard, &mut texts)?;
            }
        }
        heard.text = texts.join(" ");
        Ok(heard)
    }

    /// Recognises one endpointed utterance (16 kHz) into `heard`: counts it,
    /// times it, applies the hallucination filter, and adds its text to
    /// `texts`. An utterance whose recognition overruns its deadline costs
    /// that utterance, not the call.
    pub fn recognize(
        &mut self,
        pcm: &Pcm,
        heard: &mut Heard,
        texts: &mut Vec<String>,
    ) -> Result<(), CallError> {
        let options = self.stt_options.clone();
        self.recognize_with(pcm, heard, texts, &options).map(|_| ())
    }

    /// Recognises the utterance so far at a pause, before the endpoint
    /// confirms it ended: `cancel` is raised when the caller speaks again.
    /// `Ok(false)` when it was cancelled (nothing is added to `heard`).
    pub fn recognize_speculatively(
        &mut self,
        pcm: &Pcm,
        heard: &mut Heard,
        texts: &mut Vec<String>,
        cancel: &CancelFlag,
    ) -> Result<bool, CallError> {
        let options = TranscribeOptions {
            cancel: cancel.clone(),
            ..self.stt_options.clone()
        };
        self.recognize_with(pcm, heard, texts, &options)
    }

    fn recognize_with(
        &mut self,
        pcm: &Pcm,
        heard: &mut Heard,
        texts: &mut Vec<String>,
        options: &TranscribeOptions,
    ) -> Result<bool, CallError> {
        let t0 = Instant::now();
        let transcript = match self.stt.transcribe(&pcm.samples, options) {
            Ok(t) => t,
            Err(SttError::Cancelled { .. }) => return Ok(false),
            // A decode that runs past its deadline (a loop, or a box
            // starved of CPU) costs this utterance, not the call: the
            // dialog hears nothing and asks again.
            Err(SttError::DeadlineExceeded {
                audio_ms,
                deadline_ms,
            }) => {
                tracing::warn!(
                    audio_ms,
                    deadline_ms,
                    "speech recognition overran its deadline; utterance dropped"
                );
                heard.stt_ms = t0.elapsed().as_millis() as u64;
                heard.utterances += 1;
                heard.overran = true;
                heard.filtered = Some(format!("stt deadline of {deadline_ms} ms exceeded"));
                return Ok(true);
            }
            Err(e) => return Err(e.into()),
        };
        heard.stt_ms = t0.elapsed().as_millis() as u64;
        heard.utterances += 1;
        heard.language = transcript.language.map(|l| l.code().to_string());
        // A filter reason with text left (a collapsed repetition loop)
        // keeps the text; a silence phrase leaves none.
        if let Some(reason) = transcript.filtered {
            heard.filtered = Some(format!("{reason:?}"));
        }
        if !transcript.text.trim().is_empty() {
            texts.push(transcript.text.trim().to_string());
        }
        Ok(true)
    }

    /// Gets the first audio of `reply` ready before it is said: the first
    /// sentence of its first part goes through the TTS now, kept for the
    /// next stream that starts with it (see [`Tts::prepare`]; a fixed
    /// phrase not cached yet is streamed into the cache then). Recorded
    /// audio and cached phrases need nothing. A live
    /// call does this with the transcript made at the caller's pause while
    /// the endpoint is still being confirmed, so the turn starts speaking
    /// at once when that transcript stands. Nothing is made once `cancel`
    /// is set. Returns whether audio was made.
    pub fn prepare(&mut self, reply: &Reply, cancel: &CancelToken) -> Result<bool, CallError> {
        let parts = parts_of(reply);
        let Some(first) = parts.first() else {
            return Ok(false);
        };
        if first.audio.is_some() || first.text.trim().is_empty() || cancel.is_cancelled() {
            return Ok(false);
        }
        let language = self.robot.language.code();
        let rate = self.config.out_rate;
        if first.cacheable && self.tts.is_cached(language, first.text, rate)? {
            return Ok(false);
        }
        Ok(self
            .tts
            .prepare(language, first.text, rate, cancel.clone())?)
    }

    /// Synthesis time (ms) spent ahead, by [`CallEngine::prepare`], on the
    /// sentences replies have used since the last call.
    pub fn take_prepared_ms(&mut self) -> u64 {
        self.tts.take_prepared_ms()
    }

    /// Renders a dialog reply to audio, part by part: a part's recorded WAV
    /// when the robot has one, the TTS cache for fixed phrases,
    /// sentence-streamed TTS otherwise. First audio is timed at the first
    /// chunk of the first part, which is when a live call starts sending.
    pub fn speak(&mut self, reply: &Reply) -> Result<Spoken, CallError> {
        let mut audio = Pcm::new(self.config.out_rate, Vec::new());
        let mut failed = None;
        let (first_audio_ms, source) =
            self.speak_to(reply, &CancelToken::new(), &mut |chunk: &Pcm| {
                if let Err(e) = audio.append(chunk) {
                    failed.get_or_insert(e);
                }
            })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(Spoken {
            audio,
            first_audio_ms,
            source,
        })
    }

    /// Renders a reply chunk by chunk into `sink` as each is ready (a live
    /// call queues each sentence for sending while the next is
    /// synthesised). Stops between chunks once `cancel` is set (barge-in).
    /// Returns the wall ms to the first chunk and the audio source.
    pub fn speak_to(
        &mut self,
        reply: &Reply,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(&Pcm),
    ) -> Result<(u64, &'static str), CallError> {
        let t0 = Instant::now();
        let parts = parts_of(reply);
        let mut first_audio_ms = None;
        let mut sources = Vec::new();
        for part in &parts {
            if cancel.is_cancelled() {
                break;
            }
            let source = self.speak_part(part, sink, &mut first_audio_ms, t0, cancel)?;
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        let source = match sources.as_slice() {
            [one] => *one,
            [] => "none",
            _ => "mixed",
        };
        Ok((
            first_audio_ms.unwrap_or_else(|| t0.elapsed().as_millis() as u64),
            source,
        ))
    }

    fn speak_part(
        &mut self,
        part: &Part<'_>,
        sink: &mut dyn FnMut(&Pcm),
        first_audio_ms: &mut Option<u64>,
        t0: Instant,
        cancel: &CancelToken,
    ) -> Result<&'static str, CallError> {
        let rate = self.config.out_rate;
        let mark = |first: &mut Option<u64>| {
            first.get_or_insert_with(|| t0.elapsed().as_millis() as u64);
        };
        if let Some(path) = &part.audio {
            let recorded = wav::read(path)
                .and_then(|p| resample::resample(&p, rate))
                .map_err(|source| CallError::Recorded {
                    robot: self.robot.name.clone(),
                    phrase: part.phrase.to_string(),
                    path: (*path).clone(),
                    source: Box::new(source),
                })?;
            mark(first_audio_ms);
            sink(&recorded);
            return Ok("recorded");
        }
        let language = self.robot.language.code();
        if part.cacheable {
            let hits = self.tts.cache_stats().hits;
            let audio = self.tts.synthesize_cached(language, part.text, rate)?;
            mark(first_audio_ms);
            sink(&audio);
            return Ok(if self.tts.cache_stats().hits > hits {
                "tts-cache"
            } else {
                "tts"
            });
        }
        for sentence in self.tts.stream(language, part.text, rate, cancel.clone())? {
            let sentence = sentence?;
            mark(first_audio_ms);
            sink(&sentence.pcm);
            if cancel.is_cancelled() {
                break;
            }
        }
        Ok("tts")
    }

    /// One whole caller turn: hear, let the dialog decide, speak.
    pub fn turn(
        &mut self,
        dialog: &mut Dialog,
        caller: &Pcm,
    ) -> Result<(Heard, Reply, Spoken, TurnTimings), CallError> {
        let heard = self.hear(caller, dialog.expect())?;
        let t_reply = Instant::now();
        let reply = if heard.utterances == 0 || (heard.text.is_empty() && heard.filtered.is_some())
        {
            dialog.on_silence()
        } else {
            dialog.on_caller(&heard.text)
        };
        let reply_ms = t_reply.elapsed().as_millis() as u64;
        let spoken = self.speak(&reply)?;
        let processing_ms = heard.stt_ms + reply_ms + spoken.first_audio_ms;
        let timings = TurnTimings {
            caller_audio_ms: caller.duration_ms(),
            endpoint_ms: heard.endpoint_ms,
            stt_ms: heard.stt_ms,
            reply_ms,
            first_audio_ms: spoken.first_audio_ms,
            turn_latency_ms: heard.endpoint_ms + processing_ms,
            processing_ms,
            ..TurnTimings::default()
        };
        Ok((heard, reply, spoken, timings))
    }
}
