//! The real-time call loop: a phone line's 20 ms frames in, robot speech out,
//! with barge-in. Two threads per call:
//!
//! - the **listener** reads every frame (the line's clock), runs the VAD and
//!   the endpointer, and on speech over the robot flushes the playout queue
//!   and cancels the robot's turn (barge-in: the queued TTS and the model's
//!   stream) unless it is the robot's own echo;
//! - the **speaker** owns the engines: it recognises each endpointed
//!   utterance, hands it to the [`Responder`] (script or model, run as a
//!   task on the call's tokio runtime), and speaks each sentence as it
//!   arrives while the rest is still streaming.
//!
//! Recognition starts before the turn is known to be over: at the caller's
//! first pause (`EndpointConfig::pause_ms`, 200 ms) the listener offers the
//! utterance so far and the speaker recognises it, cancelled the moment the
//! caller speaks again. When the endpoint (600 ms) confirms that no voice
//! followed, that transcript answers the turn, and the hangover and the
//! recognition overlap instead of adding up.
//!
//! While the dialog asks for a phone number the endpoint waits longer
//! (`EndpointConfig::digits_hangover_ms`, 1.5 s) so that the pauses
//! between digit groups do not end the turn; once the transcript made at a
//! pause holds a whole number (`vb_dialog::is_whole_number`), the speaker
//! marks that pause and the listener ends the turn with the normal hangover.
//!
//! The transport is behind [`Line`]: RTP, an ALSA handset and a browser
//! WebSocket all drive the same loop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use vb_audio::line::{LineEvent, Playout};
use vb_audio::recorder::{CallRecorder, RecorderTap, Side};
use vb_audio::{resample, Pcm};
use vb_dialog::{Expect, Reply};
use vb_llm::{Action, Output, Responder, TurnOutcome, TurnStats, Utterance, REPLY_CHANNEL};
use vb_stt::CancelFlag;
use vb_tts::CancelToken;
use vb_vad::{Aggressiveness, EndpointConfig, EndpointEvent, Endpointer, Patience, Vad, WebRtcVad};

use crate::engine::{CallEngine, CallError, Heard, ASR_RATE};
use crate::record::{CallRecord, Speaker, TurnRecord, TurnTimings};

/// Line rate: G.711 and the handset run at 8 kHz.
pub const LINE_RATE: u32 = 8_000;
/// Utterances queued from the listener to the speaker. Full policy: the
/// listener waits (text and control block; a caller cannot out-talk
/// recognition by more than this many utterances).
const UTTERANCES: usize = 4;

/// The caller's side of a transport, read by the listener thread alone.
pub trait LineEvents: Send {
    /// The next event, waiting for it; `None` when the line is closed (the
    /// far end hung up, media timed out, the daemon is stopping).
    fn next_event(&mut self) -> Option<LineEvent>;
}

/// Call control of a transport, used by the speaker thread.
pub trait Line {
    /// Hangs up with a reason for the record.
    fn hangup(&self, reason: &str);
    /// Blind transfer to `target`; Err with a reason if it failed.
    fn transfer(&self, target: &str) -> Result<(), String>;
    /// Why the line ended, if the far end or the transport ended it.
    fn end_reason(&self) -> Option<String>;
    /// A turn is done (the greeting, then each caller turn), as it will be
    /// in the record: a transport that shows the call live (the console's
    /// talk page) passes it on. Called on the speaker thread: return at
    /// once, never wait. The default does nothing (SIP, the handset).
    fn turn_done(&self, _turn: &TurnRecord) {}
}

/// Settings of the live loop, from the robot and the daemon config.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Endpointing.
    pub endpoint: EndpointConfig,
    /// webrtc-vad aggressiveness.
    pub vad_aggressiveness: Aggressiveness,
    /// Speech starting this soon after a robot talk spurt starts is not a
    /// barge-in (the line's echo of the robot's first syllables).
    pub echo_guard: Duration,
    /// While the robot talks, caller audio must be louder than the robot's
    /// own output times this factor to count as speech (echo comes back
    /// attenuated; a caller talking over the robot is as loud as it).
    pub echo_ratio: f32,
    /// Silence after the robot finishes before the dialog is told.
    pub silence_timeout: Duration,
    /// The longest call.
    pub max_duration: Duration,
    /// A key that asks for a person (`0`), when a transfer target is set.
    pub transfer_digit: Option<char>,
    /// Where "a person" is: an extension or SIP URI.
    pub transfer_to: Option<String>,
    /// Said when the transfer fails (e.g. "call us at ...").
    pub transfer_fallback: Option<String>,
    /// The longest wait for the model's post-call summary (the rules'
    /// summary is used after it).
    pub summary_budget: Duration,
    /// Dev mode: log every turn as it ends, with each stage's timing
    /// (endpoint, STT, model first token, TTS first audio, wire) and its
    /// payload (what was heard, what was said), at info on the
    /// `voiceblock::dev` target.
    pub trace_turns: bool,
    /// Beaten by the listener on every frame and by the speaker while it
    /// waits and between stages, for the daemon's watchdog.
    pub progress: Option<Progress>,
    /// Call recording (off when `None`).
    pub recording: Option<RecordingSetup>,
}

/// Where and how calls are recorded.
#[derive(Debug, Clone)]
pub struct RecordingSetup {
    /// The recordings directory (created when missing).
    pub dir: std::path::PathBuf,
}

impl RecordingSetup {
    /// Starts recording a call into a new file in the directory. A failure
    /// (a read-only or full disk) is logged and the call goes on unrecorded.
    fn start(&self, max: Duration) -> Option<CallRecorder> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let name = format!(
            "call-{unix_ms}-{}-{}.wav",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.dir.join(name);
        let made = std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))
            .and_then(|()| CallRecorder::create(&path, max).map_err(|e| e.to_string()));
        match made {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "call recording off for this call");
                None
            }
        }
    }
}

/// The call loop's two heartbeats: the listener's (every 20 ms frame) and
/// the speaker's (at least once a second while it waits for the caller, and
/// after each recognition and reply). Lock-free; clones share the stamps.
#[derive(Debug, Clone)]
pub struct Progress {
    origin: Instant,
    listener_ms: Arc<AtomicU64>,
    speaker_ms: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Both beaten now.
    pub fn new() -> Progress {
        Progress {
            origin: Instant::now(),
            listener_ms: Arc::new(AtomicU64::new(0)),
            speaker_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn stamp(&self, at: &AtomicU64) {
        at.store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// The listener read a frame.
    pub fn listener_beat(&self) {
        self.stamp(&self.listener_ms);
    }

    /// The speaker is alive.
    pub fn speaker_beat(&self) {
        self.stamp(&self.speaker_ms);
    }

    /// Which side has not beaten within its limit at `now`, if one: the
    /// listener's limit is `listener_max`, the speaker's `speaker_max` (it
    /// legitimately spends seconds in one recognition or one sentence).
    pub fn stalled_at(
        &self,
        now: Instant,
        listener_max: Duration,
        speaker_max: Duration,
    ) -> Option<String> {
        let age = |at: &AtomicU64| {
            now.saturating_duration_since(
                self.origin + Duration::from_millis(at.load(Ordering::Relaxed)),
            )
        };
        let (l, s) = (age(&self.listener_ms), age(&self.speaker_ms));
        if l > listener_max {
            Some(format!(
                "its listener read no frame for {:.1} s (limit {:.1} s)",
                l.as_secs_f64(),
                listener_max.as_secs_f64()
            ))
        } else if s > speaker_max {
            Some(format!(
                "its speaker made no progress for {:.1} s (limit {:.1} s)",
                s.as_secs_f64(),
                speaker_max.as_secs_f64()
            ))
        } else {
            None
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            endpoint: EndpointConfig::default(),
            vad_aggressiveness: Aggressiveness::default(),
            echo_guard: Duration::from_millis(400),
            echo_ratio: 0.5,
            silence_timeout: Duration::from_secs(8),
            max_duration: Duration::from_secs(600),
            transfer_digit: Some('0'),
            transfer_to: None,
            transfer_fallback: None,
            summary_budget: Duration::from_secs(20),
            trace_turns: false,
            progress: None,
            recording: None,
        }
    }
}

/// Wire-level facts of one call for the record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStats {
    /// Barge-ins acted on.
    pub barge_ins: u32,
    /// Caller utterances discarded as the robot's own echo.
    pub echo_suppressed: u32,
    /// Digits received.
    pub digits: String,
}

/// From the listener to the speaker.
enum Heard8k {
    /// An endpointed utterance (8 kHz) that ended at `ended` (the last
    /// voiced frame's arrival, estimated from the frame clock), decided
    /// `endpoint_ms` later.
    Utterance {
        audio: Vec<i16>,
        ended: Instant,
        endpoint_ms: u64,
        barged_in: bool,
        /// The endpointer's end of the last voiced frame (its clock), to
        /// match a speculation.
        end_ms: u64,
    },
    /// The caller paused (not yet the end): the utterance so far, to
    /// recognise speculatively. `cancel` is raised when the caller speaks
    /// again; an `Utterance` with the same `end_ms` confirms it. The call
    /// loop raises `whole_number` when the transcript holds a whole phone
    /// number the dialog asked for: this pause then ends the utterance
    /// with the normal hangover, not the digits' patience.
    Pause {
        audio: Vec<i16>,
        end_ms: u64,
        cancel: CancelFlag,
        whole_number: Arc<AtomicBool>,
    },
    /// The caller started talking: silence timers restart.
    SpeechStarted,
    /// A key.
    Digit(char),
}

/// A transcript of the utterance so far, made at the caller's pause.
struct Speculated {
    /// The endpointer's end of the last voiced frame it covers.
    end_ms: u64,
    /// Samples it covers (8 kHz).
    samples: usize,
    heard: Heard,
    started: Instant,
    ready: Instant,
}

/// State shared by the two threads.
struct Shared {
    playout: Arc<Playout>,
    /// The robot's current turn; barge-in cancels it.
    turn: Mutex<TurnToken>,
    /// The dialog's current patience (digits while it waits for a number).
    digits: AtomicBool,
    barge_ins: AtomicU32,
    echo_suppressed: AtomicU32,
    /// The call recorder's caller side.
    recorder: Option<RecorderTap>,
}

fn rms(frame: &[i16]) -> f32 {
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len().max(1) as f64).sqrt() as f32
}

/// The robot's current turn: a barge-in cancels the queued TTS and the
/// model's stream at once.
#[derive(Debug, Clone, Default)]
struct TurnToken {
    tts: CancelToken,
    llm: CancellationToken,
}

impl TurnToken {
    fn cancel(&self) {
        self.tts.cancel();
        self.llm.cancel();
    }

    fn is_cancelled(&self) -> bool {
        self.tts.is_cancelled()
    }
}

/// What one robot reply did, gathered sentence by sentence.
struct Spoken {
    /// When the turn started (final transcript in, or the prompt decided).
    t0: Instant,
    /// Caller's end of speech, for the wire latency.
    since: Option<Instant>,
    spurts_before: u64,
    was_talking: bool,
    text: Vec<String>,
    phrase_id: Option<String>,
    audio_sources: Vec<&'static str>,
    reply_sources: Vec<&'static str>,
    samples: usize,
    /// Turn start -> first line of the reply in hand.
    first_line_ms: Option<u64>,
    /// First line -> its first audio (the TTS of the first sentence).
    tts_first_ms: Option<u64>,
    /// Turn start -> first audio queued for sending.
    first_audio_at_ms: Option<u64>,
    /// Wall time and audio made (ms) of the lines the TTS synthesized.
    tts_wall_ms: u64,
    tts_audio_ms: u64,
    wire: Option<u64>,
    end_call: bool,
    end_action: bool,
    transfer: bool,
    fallback: Option<String>,
    stats: TurnStats,
}

impl Spoken {
    fn new(shared: &Shared, since: Option<Instant>) -> Spoken {
        Spoken {
            t0: Instant::now(),
            since,
            spurts_before: shared.playout.spurt().0,
            was_talking: shared.playout.is_talking(),
            text: Vec::new(),
            phrase_id: None,
            audio_sources: Vec::new(),
            reply_sources: Vec::new(),
            samples: 0,
            first_line_ms: None,
            tts_first_ms: None,
            first_audio_at_ms: None,
            tts_wall_ms: 0,
            tts_audio_ms: 0,
            wire: None,
            end_call: false,
            end_action: false,
            transfer: false,
            fallback: None,
            stats: TurnStats::default(),
        }
    }

    fn audio_ms(&self) -> u64 {
        self.samples as u64 / 8
    }

    fn audio_source(&self) -> &'static str {
        match self.audio_sources.as_slice() {
            [one] => one,
            [] => "none",
            _ => "mixed",
        }
    }

    /// Reply text ready -> first audio (the old meaning of `first_audio_ms`).
    fn first_ms(&self) -> u64 {
        self.tts_first_ms.unwrap_or(0)
    }

    /// Turn start -> first line in hand (the dialog step, or the model's
    /// first sentence).
    fn reply_ms(&self) -> u64 {
        self.first_line_ms.unwrap_or(0)
    }

    fn record(
        &self,
        index: usize,
        speaker: Speaker,
        heard: &Heard,
        endpoint_ms: u64,
    ) -> TurnRecord {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let processing_ms = heard.stt_ms + self.reply_ms() + self.first_ms();
        let mut sources: Vec<&str> = Vec::new();
        for s in &self.reply_sources {
            if sources.last() != Some(s) {
                sources.push(s);
            }
        }
        TurnRecord {
            index,
            speaker,
            caller_transcript: heard.text.clone(),
            caller_language: heard.language.clone(),
            filtered: heard.filtered.clone(),
            utterances: heard.utterances,
            robot_reply: self.text.join(" "),
            phrase_id: self.phrase_id.clone().unwrap_or_default(),
            audio_source: self.audio_source(),
            robot_audio_ms: self.audio_ms(),
            reply_source: (!sources.is_empty()).then(|| sources.join(",")),
            fallback: self.fallback.clone(),
            timings: TurnTimings {
                caller_audio_ms: heard.audio_ms,
                endpoint_ms,
                stt_ms: heard.stt_ms,
                stt_speculative_ms: heard.speculative_ms,
                reply_ms: self.reply_ms(),
                first_audio_ms: self.first_ms(),
                // On a live line: last caller voice frame -> first robot
                // voice packet sent, measured on the frame clock.
                turn_latency_ms: self.wire.unwrap_or(endpoint_ms + processing_ms),
                processing_ms,
                llm_first_token_ms: ms(self.stats.first_token),
                llm_first_sentence_ms: ms(self.stats.first_sentence),
                llm_done_ms: ms(self.stats.stream_done),
                first_reply_audio_ms: self.first_audio_at_ms,
                tts_rtf: (self.tts_audio_ms > 0)
                    .then(|| self.tts_wall_ms as f32 / self.tts_audio_ms as f32),
            },
        }
    }
}

/// The call's engines and where its model turns run.
struct RobotSide<'e, 'a> {
    engine: &'e mut CallEngine<'a>,
    shared: Arc<Shared>,
    closed: Arc<AtomicBool>,
    runtime: Handle,
}

impl RobotSide<'_, '_> {
    /// A new turn token, installed where the listener's barge-in finds it.
    fn new_turn(&self) -> TurnToken {
        let token = TurnToken::default();
        *self.shared.turn.lock().unwrap_or_else(|e| e.into_inner()) = token.clone();
        // The listener cancels the installed token when the line closes;
        // one installed after that is cancelled here.
        if self.closed.load(Ordering::SeqCst) {
            token.cancel();
        }
        token
    }

    /// Speaks one reply into the playout queue (sentence-streamed TTS)
    /// unless the turn was cancelled, and notes what it did in `acc`.
    fn speak(
        &mut self,
        reply: &Reply,
        token: &TurnToken,
        acc: &mut Spoken,
    ) -> Result<(), CallError> {
        let line_at = Instant::now();
        acc.first_line_ms
            .get_or_insert(line_at.duration_since(acc.t0).as_millis() as u64);
        if acc.phrase_id.is_none() {
            acc.phrase_id = Some(reply.phrase_id.clone());
        }
        if token.is_cancelled() {
            return Ok(());
        }
        // What the robot said: lines dropped by a barge-in are not.
        acc.text.push(reply.text.trim().to_string());
        let before = acc.samples;
        let playout = self.shared.playout.clone();
        let t0 = acc.t0;
        let mut first_at = None;
        let mut samples = 0usize;
        let cancel = token.tts.clone();
        let synth_started = Instant::now();
        let (first_ms, source) = self
            .engine
            .speak_to(reply, &token.tts, &mut |chunk: &Pcm| {
                if cancel.is_cancelled() {
                    return;
                }
                let pcm = chunk.to_i16();
                if first_at.is_none() && !pcm.is_empty() {
                    first_at = Some(t0.elapsed().as_millis() as u64);
                }
                samples += pcm.len();
                playout.push(&pcm);
            })?;
        acc.samples += samples;
        // A sentence prepared at the caller's pause was synthesized then.
        let ahead_ms = self.engine.take_prepared_ms();
        if source == "tts" && samples > 0 {
            acc.tts_wall_ms += synth_started.elapsed().as_millis() as u64 + ahead_ms;
            acc.tts_audio_ms += samples as u64 / 8;
        }
        if !acc.audio_sources.contains(&source) {
            acc.audio_sources.push(source);
        }
        if acc.tts_first_ms.is_none() {
            acc.tts_first_ms = Some(first_ms);
        }
        if acc.first_audio_at_ms.is_none() {
            acc.first_audio_at_ms = first_at;
        }
        // The first voice packet of this reply: the next spurt to start (if
        // the robot was still talking, its reply continues the spurt and the
        // wire time is not separable).
        if before == 0 && acc.samples > 0 {
            if let Some(t) = acc
                .since
                .filter(|_| !acc.was_talking && !token.is_cancelled())
            {
                let deadline = Instant::now() + Duration::from_millis(500);
                acc.wire = loop {
                    if let Some(at) = self.shared.playout.spurt_start(acc.spurts_before + 1) {
                        break Some(at.saturating_duration_since(t).as_millis() as u64);
                    }
                    if Instant::now() > deadline {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                };
            }
        }
        Ok(())
    }

    /// Says one fixed line (greeting, silence prompt, goodbye) under a new
    /// turn token.
    fn say(&mut self, u: &Utterance, since: Option<Instant>) -> Result<Spoken, CallError> {
        let token = self.new_turn();
        let mut acc = Spoken::new(&self.shared, since);
        acc.end_call = u.end_call;
        acc.reply_sources.push(u.source.code());
        self.speak(&u.to_reply(), &token, &mut acc)?;
        Ok(acc)
    }

    /// One caller turn: the responder runs on the runtime (its model
    /// stream, filler and fallback timers) and hands over each sentence as
    /// it is complete; this thread speaks each one as it arrives, so the
    /// first sentence plays while the rest still streams. A barge-in
    /// cancels both at once. Gives the responder back.
    fn turn(
        &mut self,
        responder: Responder,
        caller: String,
        since: Option<Instant>,
    ) -> Result<(Responder, Spoken), CallError> {
        let token = self.new_turn();
        let mut acc = Spoken::new(&self.shared, since);
        // Bounded: the turn waits when the TTS is behind (text is never
        // dropped); a barge-in cancels the wait.
        let (tx, mut rx) = tokio::sync::mpsc::channel(REPLY_CHANNEL);
        let cancel = token.llm.clone();
        let task = self.runtime.spawn(async move {
            let mut responder = responder;
            let outcome = responder.turn(&caller, &tx, &cancel).await;
            (responder, outcome)
        });
        while let Some(out) = rx.blocking_recv() {
            match out {
                Output::Say(u) => {
                    acc.end_call |= u.end_call;
                    acc.reply_sources.push(u.source.code());
                    if let Err(e) = self.speak(&u.to_reply(), &token, &mut acc) {
                        token.cancel();
                        return Err(e);
                    }
                }
                Output::Action(a) => {
                    tracing::debug!(action = ?a, "model action");
                    match a {
                        Action::Transfer { .. } => acc.transfer = true,
                        Action::EndCall { .. } => acc.end_action = true,
                        Action::RecordLead(_) | Action::Classify { .. } => {}
                    }
                }
                Output::Rejected(r) => tracing::info!("model tool call refused: {r}"),
                Output::FellBack { reason } => {
                    tracing::warn!(%reason, "the call continues on the script");
                    acc.fallback = Some(reason);
                }
            }
        }
        let (responder, outcome) = self.runtime.block_on(task)?;
        if outcome == TurnOutcome::Cancelled {
            tracing::debug!("turn cancelled (barge-in)");
        }
        acc.stats = responder.last_turn();
        Ok((responder, acc))
    }
}

/// Runs a whole call on `line` and returns its record. `engine` is the
/// call's engine (8 kHz output); `responder` answers in the robot's mode
/// (`script`, `llm`, `llm_script`), its model turns running as tasks on
/// `runtime`; `playout` is the line's outgoing queue. Blocking: call it from
/// Dev mode's per-turn log (see [`LiveConfig::trace_turns`]).
fn trace_turn(config: &LiveConfig, record: &TurnRecord) {
    if config.trace_turns {
        let turn = serde_json::to_string(record).unwrap_or_default();
        tracing::info!(target: "voiceblock::dev", index = record.index, %turn, "dev: turn");
    }
}

/// a plain thread, not from inside the runtime.
// Eight arguments: the engines, the responder and its runtime, the line's
// three halves, the settings and the names for the record are all
// per-call and independent; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn run_call(
    engine: &mut CallEngine<'_>,
    responder: Responder,
    runtime: &Handle,
    events: Box<dyn LineEvents>,
    line: &dyn Line,
    playout: Arc<Playout>,
    config: &LiveConfig,
    names: (&str, &str),
) -> Result<(CallRecord, LiveStats), CallError> {
    let started = Instant::now();
    let recorder = config
        .recording
        .as_ref()
        .and_then(|r| r.start(config.max_duration + Duration::from_secs(60)));
    if let Some(r) = &recorder {
        playout.set_recorder(Some(r.tap(Side::Robot)));
    }
    let shared = Arc::new(Shared {
        playout: playout.clone(),
        turn: Mutex::new(TurnToken::default()),
        digits: AtomicBool::new(false),
        barge_ins: AtomicU32::new(0),
        echo_suppressed: AtomicU32::new(0),
        recorder: recorder.as_ref().map(|r| r.tap(Side::Caller)),
    });
    let (utter_tx, utter_rx) = mpsc::sync_channel(UTTERANCES);
    let closed = Arc::new(AtomicBool::new(false));

    let listener = {
        let shared = shared.clone();
        let config = config.clone();
        let closed = closed.clone();
        std::thread::Builder::new()
            .name("vb-listener".into())
            .spawn(move || listen(events, &shared, &config, utter_tx, &closed))
            .map_err(|source| {
                CallError::Audio(vb_audio::AudioError::Io {
                    file: "listener thread".into(),
                    source,
                })
            })?
    };

    let mut responder = responder;
    let mut speaker = RobotSide {
        engine,
        shared: shared.clone(),
        closed: closed.clone(),
        runtime: runtime.clone(),
    };
    let mut turns: Vec<TurnRecord> = Vec::new();
    let mut digits = String::new();

    let greeting = responder.greet();
    let spoken = speaker.say(&greeting, None)?;
    let mut record = spoken.record(0, Speaker::Robot, &Heard::default(), 0);
    record.timings.processing_ms = spoken.first_ms();
    record.timings.turn_latency_ms = spoken.wire.unwrap_or(spoken.first_ms());
    record.timings.reply_ms = 0;
    trace_turn(config, &record);
    line.turn_done(&record);
    turns.push(record);
    let mut last_end = spoken.end_call;
    let mut completed_by_model = false;
    let mut end_reason: Option<String> = None;
    // A transcript made at the caller's last pause, waiting for the end to
    // confirm it.
    let mut speculated: Option<Speculated> = None;

    loop {
        if last_end || responder.is_finished() {
            drain(&shared, &closed, Duration::from_secs(30));
            let reason = responder
                .lead()
                .end
                .and_then(|e| serde_json::to_value(e).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    if completed_by_model {
                        "completed"
                    } else {
                        "ended"
                    }
                    .to_string()
                });
            line.hangup(&reason);
            end_reason = Some(reason);
            break;
        }
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let elapsed = started.elapsed();
        if elapsed >= config.max_duration {
            let bye = responder.on_max_duration();
            let _ = speaker.say(&bye, None)?;
            drain(&shared, &closed, Duration::from_secs(15));
            line.hangup("max_duration");
            end_reason = Some("max_duration".into());
            break;
        }
        shared
            .digits
            .store(responder.expect() == Expect::Digits, Ordering::SeqCst);
        speaker.engine.set_expect(responder.expect());
        // The silence clock starts when the robot stops talking.
        let robot_left = Duration::from_millis(shared.playout.queued() as u64 / 8);
        let wait = (config.silence_timeout + robot_left).min(config.max_duration - elapsed);
        // Waited in steps of at most a second, beating the speaker's heart.
        let until = Instant::now() + wait;
        let next = loop {
            if let Some(p) = &config.progress {
                p.speaker_beat();
            }
            let left = until.saturating_duration_since(Instant::now());
            match utter_rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Err(RecvTimeoutError::Timeout) if Instant::now() < until => continue,
                other => break other,
            }
        };
        if let Some(p) = &config.progress {
            p.speaker_beat();
        }
        let event = match next {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => {
                if shared.playout.is_talking() || started.elapsed() >= config.max_duration {
                    continue;
                }
                None
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let t_decided = Instant::now();
        let (heard, ended_at, endpoint_ms, barged_in) = match event {
            Some(Heard8k::SpeechStarted) => continue,
            Some(Heard8k::Pause {
                audio,
                end_ms,
                cancel,
                whole_number,
            }) => {
                speculated = None;
                if cancel.is_cancelled() {
                    continue;
                }
                let t0 = Instant::now();
                let heard = recognise(speaker.engine, &audio, Some(&cancel))?;
                if let Some(heard) = heard.filter(|_| !cancel.is_cancelled()) {
                    if responder.hears_whole_number(&heard.text) {
                        whole_number.store(true, Ordering::SeqCst);
                    }
                    // The script's reply to it is known already: its first
                    // sentence is synthesized while the endpoint is confirmed.
                    if let Some(reply) = responder
                        .preview(&heard.text)
                        .filter(|_| !heard.text.is_empty() && !cancel.is_cancelled())
                    {
                        if let Err(e) = speaker.engine.prepare(&reply, &CancelToken::new()) {
                            tracing::debug!(error = %e, "reply not prepared at the pause");
                        }
                    }
                    speculated = Some(Speculated {
                        end_ms,
                        samples: audio.len(),
                        heard,
                        started: t0,
                        ready: Instant::now(),
                    });
                }
                continue;
            }
            Some(Heard8k::Digit(d)) => {
                if Some(d) == config.transfer_digit {
                    if let Some(target) = config.transfer_to.clone() {
                        let reply = transfer(&mut speaker, line, &target, config)?;
                        if let Some(reason) = reply {
                            end_reason = Some(reason);
                            break;
                        }
                        continue;
                    }
                }
                digits.push(d);
                // Keys while the dialog waits for a number are the number;
                // '#' ends it.
                if d != '#' && responder.expect() == Expect::Digits {
                    continue;
                }
                let text: String = digits
                    .chars()
                    .filter(char::is_ascii_digit)
                    .map(|c| format!("{c} "))
                    .collect();
                digits.clear();
                if text.is_empty() {
                    continue;
                }
                (
                    Heard {
                        text: text.trim().to_string(),
                        utterances: 1,
                        ..Heard::default()
                    },
                    t_decided,
                    0,
                    false,
                )
            }
            Some(Heard8k::Utterance {
                audio,
                ended,
                endpoint_ms,
                barged_in,
                end_ms,
            }) => {
                // The pause's transcript stands when no voice came after it.
                if let Some(s) = speculated
                    .take()
                    .filter(|s| s.end_ms == end_ms && s.samples == audio.len())
                {
                    let decided = ended + Duration::from_millis(endpoint_ms);
                    let mut heard = s.heard;
                    heard.endpoint_ms = endpoint_ms;
                    heard.stt_ms = s.ready.saturating_duration_since(decided).as_millis() as u64;
                    heard.speculative_ms =
                        Some(s.ready.duration_since(s.started).as_millis() as u64);
                    (heard, ended, endpoint_ms, barged_in)
                } else {
                    let mut heard = recognise(speaker.engine, &audio, None)?.unwrap_or_default();
                    heard.endpoint_ms = endpoint_ms;
                    (heard, ended, endpoint_ms, barged_in)
                }
            }
            None => (Heard::default(), t_decided, 0, false),
        };
        let spoken = if heard.utterances == 0 || (heard.text.is_empty() && heard.filtered.is_some())
        {
            let prompt = responder.on_silence();
            speaker.say(&prompt, Some(ended_at))?
        } else {
            let (r, spoken) = speaker.turn(responder, heard.text.clone(), Some(ended_at))?;
            responder = r;
            spoken
        };
        let record = spoken.record(turns.len(), Speaker::Caller, &heard, endpoint_ms);
        trace_turn(config, &record);
        line.turn_done(&record);
        turns.push(record);
        if barged_in {
            tracing::debug!(turn = turns.len(), "turn started by a barge-in");
        }
        last_end = spoken.end_call;
        completed_by_model |= spoken.end_action;
        if spoken.transfer && !spoken.end_call {
            match config.transfer_to.clone() {
                Some(target) => {
                    // Let the caller hear what the robot said about it first.
                    drain(&shared, &closed, Duration::from_secs(15));
                    if let Some(reason) = transfer(&mut speaker, line, &target, config)? {
                        end_reason = Some(reason);
                        break;
                    }
                }
                None => tracing::info!("the model asked for a transfer; no transfer target set"),
            }
        }
    }

    closed.store(true, Ordering::SeqCst);
    // The listener ends when the line closes; after our hangup that is at
    // once, and if the far end is still there the line closes on hangup.
    let end_reason = end_reason
        .or_else(|| line.end_reason())
        .unwrap_or_else(|| "caller_hung_up".to_string());
    let _ = listener.join();
    playout.set_recorder(None);
    let recording = recorder.and_then(|r| match r.finish() {
        Ok(done) => Some(crate::record::RecordingInfo::from_recording(&done)),
        Err(e) => {
            tracing::warn!(error = %e, "call recording lost");
            None
        }
    });
    let summary = runtime.block_on(responder.summarize(config.summary_budget));
    let mut record = CallRecord {
        robot: responder.robot().name.clone(),
        language: responder.robot().language.code().to_string(),
        mode: responder.mode().code().to_string(),
        fallback: responder.fallback_reason().map(str::to_string),
        voice: names.0.to_string(),
        stt_model: names.1.to_string(),
        turns,
        lead: responder.lead(),
        end_reason,
        duration_ms: started.elapsed().as_millis() as u64,
        audio_rate: LINE_RATE,
        summary: None,
        interest: None,
        interest_reason: None,
        summary_source: None,
        recording,
    };
    record.set_summary(&summary);
    let stats = LiveStats {
        barge_ins: shared.barge_ins.load(Ordering::SeqCst),
        echo_suppressed: shared.echo_suppressed.load(Ordering::SeqCst),
        digits,
    };
    Ok((record, stats))
}

/// Recognises the caller's 8 kHz audio: speculatively when `cancel` is
/// given, `None` when that was cancelled (the caller spoke again).
fn recognise(
    engine: &mut CallEngine<'_>,
    audio: &[i16],
    cancel: Option<&CancelFlag>,
) -> Result<Option<Heard>, CallError> {
    let pcm16 = resample::resample(&Pcm::from_i16(LINE_RATE, audio), ASR_RATE)?;
    let mut heard = Heard {
        audio_ms: pcm16.duration_ms(),
        ..Heard::default()
    };
    let mut texts = Vec::new();
    let done = match cancel {
        Some(c) => engine.recognize_speculatively(&pcm16, &mut heard, &mut texts, c)?,
        None => {
            engine.recognize(&pcm16, &mut heard, &mut texts)?;
            true
        }
    };
    heard.text = texts.join(" ");
    Ok(done.then_some(heard))
}

/// Waits (bounded) until the robot has finished talking or the line closed.
fn drain(shared: &Shared, closed: &AtomicBool, limit: Duration) {
    let until = Instant::now() + limit;
    while shared.playout.is_talking() && !closed.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tries the transfer; on failure says the fallback. Returns the end
/// reason when the call is over.
fn transfer(
    speaker: &mut RobotSide<'_, '_>,
    line: &dyn Line,
    target: &str,
    config: &LiveConfig,
) -> Result<Option<String>, CallError> {
    speaker.shared.playout.flush();
    let result = line.transfer(target);
    match result {
        Ok(()) => Ok(Some("transferred".into())),
        Err(why) => {
            tracing::warn!(%target, %why, "transfer failed; saying the fallback");
            if let Some(text) = &config.transfer_fallback {
                let reply = Reply {
                    text: text.clone(),
                    phrase_id: "transfer_failed".into(),
                    audio: None,
                    end_call: false,
                    cacheable: true,
                    parts: Vec::new(),
                };
                let token = speaker.new_turn();
                let mut acc = Spoken::new(&speaker.shared, None);
                speaker.speak(&reply, &token, &mut acc)?;
            }
            Ok(None)
        }
    }
}

fn listen(
    mut line: Box<dyn LineEvents>,
    shared: &Shared,
    config: &LiveConfig,
    out: SyncSender<Heard8k>,
    closed: &AtomicBool,
) {
    let Ok(mut vad) = WebRtcVad::new(LINE_RATE, config.vad_aggressiveness) else {
        closed.store(true, Ordering::SeqCst);
        return;
    };
    let Ok(mut ep) = Endpointer::new(config.endpoint.clone()) else {
        closed.store(true, Ordering::SeqCst);
        return;
    };
    // Whether the current utterance began while the robot talked, and
    // whether it barged in.
    let mut during_robot = false;
    let mut barged = false;
    // The speculation offered at the caller's last pause, until the caller
    // speaks again (then it is cancelled) or the end confirms it, with its
    // mark for a whole phone number heard.
    let mut speculation: Option<(CancelFlag, Arc<AtomicBool>)> = None;
    loop {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let event = line.next_event();
        if let Some(p) = &config.progress {
            p.listener_beat();
        }
        let Some(event) = event else {
            closed.store(true, Ordering::SeqCst);
            // Nobody is listening any more: stop the model and the TTS now
            // rather than at the end of the reply's budget.
            shared
                .turn
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .cancel();
            break;
        };
        let frame = match event {
            LineEvent::Dtmf(d) => {
                if out.send(Heard8k::Digit(d)).is_err() {
                    break;
                }
                continue;
            }
            LineEvent::Audio(f) => f,
        };
        if let Some(tap) = &shared.recorder {
            tap.frame(&frame);
        }
        // Digits patience while a number is asked for, unless the caller's
        // words at this pause already hold a whole one.
        let whole = speculation
            .as_ref()
            .is_some_and(|(_, w)| w.load(Ordering::SeqCst));
        ep.set_patience(if shared.digits.load(Ordering::SeqCst) && !whole {
            Patience::Digits
        } else {
            Patience::Normal
        });
        let talking = shared.playout.is_talking();
        // The loudest robot frame of the last 320 ms: its echo comes back
        // attenuated within that window, a caller talking over the robot
        // is about as loud as it.
        let robot_level = shared.playout.recent_level();
        let mut speech = vad.is_speech(&frame.0).unwrap_or(false);
        if speech && robot_level > 0.0 && rms(&frame.0) < robot_level * config.echo_ratio {
            speech = false;
        }
        if speech {
            if let Some((c, _)) = speculation.take() {
                c.cancel();
            }
        }
        match ep.push(&frame.0, speech) {
            Some(EndpointEvent::Pause { end_ms, audio, .. }) => {
                if during_robot && !barged {
                    continue;
                }
                let cancel = CancelFlag::new();
                let whole_number = Arc::new(AtomicBool::new(false));
                speculation = Some((cancel.clone(), whole_number.clone()));
                // Full policy: dropped. A speculation is only a head start;
                // the end still comes as an utterance.
                let _ = out.try_send(Heard8k::Pause {
                    audio,
                    end_ms,
                    cancel,
                    whole_number,
                });
            }
            Some(EndpointEvent::SpeechStart { .. }) => {
                during_robot = talking;
                barged = false;
                if talking {
                    let (_, spurt) = shared.playout.spurt();
                    let in_guard = spurt.is_some_and(|s| s.elapsed() < config.echo_guard);
                    if !in_guard {
                        shared.playout.flush();
                        shared
                            .turn
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .cancel();
                        shared.barge_ins.fetch_add(1, Ordering::SeqCst);
                        barged = true;
                        tracing::debug!("barge-in: robot stopped");
                    }
                }
                if out.send(Heard8k::SpeechStarted).is_err() {
                    break;
                }
            }
            Some(EndpointEvent::SpeechEnd { end_ms, audio, .. }) => {
                speculation = None;
                if during_robot && !barged {
                    shared.echo_suppressed.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let endpoint_ms = ep.now_ms().saturating_sub(end_ms);
                let ended = Instant::now()
                    .checked_sub(Duration::from_millis(endpoint_ms))
                    .unwrap_or_else(Instant::now);
                let u = Heard8k::Utterance {
                    audio,
                    ended,
                    endpoint_ms,
                    barged_in: barged,
                    end_ms,
                };
                if out.send(u).is_err() {
                    break;
                }
            }
            None => {}
        }
    }
}
