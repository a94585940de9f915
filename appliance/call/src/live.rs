//! The real-time call loop: a phone line's 20 ms frames in, robot speech out,
//! with barge-in. Two threads per call:
//!
//! - the **listener** reads every frame (the line's clock), runs the VAD and
//!   the endpointer, and on speech over the robot flushes the playout queue
//!   and cancels the robot's turn (barge-in) unless it is the robot's own
//!   echo;
//! - the **speaker** owns the engines: it recognises each endpointed
//!   utterance, asks the dialog, and queues the reply sentence by sentence
//!   while the next one is synthesised.
//!
//! The transport is behind [`Line`]: RTP, an ALSA handset and a browser
//! WebSocket all drive the same loop.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use vb_audio::line::{LineEvent, Playout};
use vb_audio::{resample, Pcm};
use vb_dialog::{Dialog, Expect, Reply, Robot};
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
    },
    /// The caller started talking: silence timers restart.
    SpeechStarted,
    /// A key.
    Digit(char),
}

/// State shared by the two threads.
struct Shared {
    playout: Arc<Playout>,
    /// The robot's current turn; barge-in cancels it.
    turn: Mutex<CancelToken>,
    /// The dialog's current patience (digits while it waits for a number).
    digits: AtomicBool,
    barge_ins: AtomicU32,
    echo_suppressed: AtomicU32,
}

fn rms(frame: &[i16]) -> f32 {
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len().max(1) as f64).sqrt() as f32
}

/// Runs a whole call on `line` and returns its record. `engine` is the
/// call's engine (8 kHz output); `playout` is the line's outgoing queue.
pub fn run_call(
    engine: &mut CallEngine<'_>,
    robot: &Robot,
    events: Box<dyn LineEvents>,
    line: &dyn Line,
    playout: Arc<Playout>,
    config: &LiveConfig,
    names: (&str, &str),
) -> Result<(CallRecord, LiveStats), CallError> {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        playout: playout.clone(),
        turn: Mutex::new(CancelToken::new()),
        digits: AtomicBool::new(false),
        barge_ins: AtomicU32::new(0),
        echo_suppressed: AtomicU32::new(0),
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

    let mut dialog = Dialog::new(robot);
    let mut turns: Vec<TurnRecord> = Vec::new();
    let mut digits = String::new();

    let greeting = dialog.start();
    let (spoken_ms, first_ms, source, wire) = say(engine, &shared, &greeting, None)?;
    turns.push(TurnRecord {
        index: 0,
        speaker: Speaker::Robot,
        caller_transcript: String::new(),
        caller_language: None,
        filtered: None,
        utterances: 0,
        robot_reply: greeting.text.clone(),
        phrase_id: greeting.phrase_id.clone(),
        audio_source: source,
        robot_audio_ms: spoken_ms,
        timings: TurnTimings {
            first_audio_ms: first_ms,
            processing_ms: first_ms,
            turn_latency_ms: wire.unwrap_or(first_ms),
            ..TurnTimings::default()
        },
    });
    let mut last = greeting;
    let mut end_reason: Option<String> = None;

    loop {
        if last.end_call || dialog.is_finished() {
            drain(&shared, &closed, Duration::from_secs(30));
            let reason = dialog
                .lead()
                .end
                .and_then(|e| serde_json::to_value(e).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "ended".to_string());
            line.hangup(&reason);
            end_reason = Some(reason);
            break;
        }
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let elapsed = started.elapsed();
        if elapsed >= config.max_duration {
            let bye = dialog.on_max_duration();
            let _ = say(engine, &shared, &bye, None)?;
            drain(&shared, &closed, Duration::from_secs(15));
            line.hangup("max_duration");
            end_reason = Some("max_duration".into());
            break;
        }
        shared
            .digits
            .store(dialog.expect() == Expect::Digits, Ordering::SeqCst);
        // The silence clock starts when the robot stops talking.
        let robot_left = Duration::from_millis(shared.playout.queued() as u64 / 8);
        let wait = (config.silence_timeout + robot_left).min(config.max_duration - elapsed);
        let event = match utter_rx.recv_timeout(wait) {
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
            Some(Heard8k::Digit(d)) => {
                if Some(d) == config.transfer_digit {
                    if let Some(target) = config.transfer_to.clone() {
                        let reply = transfer(engine, &shared, line, &target, config)?;
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
                if d != '#' && dialog.expect() == Expect::Digits {
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
            }) => {
                let pcm8 = Pcm::from_i16(LINE_RATE, &audio);
                let pcm16 = resample::resample(&pcm8, ASR_RATE)?;
                let mut heard = Heard {
                    endpoint_ms,
                    ..Heard::default()
                };
                let mut texts = Vec::new();
                engine.recognize(&pcm16, &mut heard, &mut texts)?;
                heard.text = texts.join(" ");
                (heard, ended, endpoint_ms, barged_in)
            }
            None => (Heard::default(), t_decided, 0, false),
        };
        let t_reply = Instant::now();
        let reply = if heard.utterances == 0 || (heard.text.is_empty() && heard.filtered.is_some())
        {
            dialog.on_silence()
        } else {
            dialog.on_caller(&heard.text)
        };
        let reply_ms = t_reply.elapsed().as_millis() as u64;
        let (spoken_ms, first_ms, source, wire) = say(engine, &shared, &reply, Some(ended_at))?;
        let processing_ms = heard.stt_ms + reply_ms + first_ms;
        turns.push(TurnRecord {
            index: turns.len(),
            speaker: Speaker::Caller,
            caller_transcript: heard.text.clone(),
            caller_language: heard.language.clone(),
            filtered: heard.filtered.clone(),
            utterances: heard.utterances,
            robot_reply: reply.text.clone(),
            phrase_id: reply.phrase_id.clone(),
            audio_source: source,
            robot_audio_ms: spoken_ms,
            timings: TurnTimings {
                caller_audio_ms: 0,
                endpoint_ms,
                stt_ms: heard.stt_ms,
                reply_ms,
                first_audio_ms: first_ms,
                // On a live line: last caller voice frame -> first robot
                // voice packet sent, measured on the frame clock.
                turn_latency_ms: wire.unwrap_or(endpoint_ms + processing_ms),
                processing_ms,
            },
        });
        if barged_in {
            tracing::debug!(turn = turns.len(), "turn started by a barge-in");
        }
        last = reply;
    }

    closed.store(true, Ordering::SeqCst);
    // The listener ends when the line closes; after our hangup that is at
    // once, and if the far end is still there the line closes on hangup.
    let end_reason = end_reason
        .or_else(|| line.end_reason())
        .unwrap_or_else(|| "caller_hung_up".to_string());
    let _ = listener.join();
    let lead = dialog.lead().clone();
    let record = CallRecord {
        robot: robot.name.clone(),
        language: robot.language.code().to_string(),
        mode: "script".to_string(),
        voice: names.0.to_string(),
        stt_model: names.1.to_string(),
        turns,
        lead,
        end_reason,
        duration_ms: started.elapsed().as_millis() as u64,
        audio_rate: LINE_RATE,
    };
    let stats = LiveStats {
        barge_ins: shared.barge_ins.load(Ordering::SeqCst),
        echo_suppressed: shared.echo_suppressed.load(Ordering::SeqCst),
        digits,
    };
    Ok((record, stats))
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
    engine: &mut CallEngine<'_>,
    shared: &Shared,
    line: &dyn Line,
    target: &str,
    config: &LiveConfig,
) -> Result<Option<String>, CallError> {
    shared.playout.flush();
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
                say(engine, shared, &reply, None)?;
            }
            Ok(None)
        }
    }
}

/// Speaks a reply into the playout queue, sentence by sentence, under a new
/// turn token. Returns (robot audio ms, ms to first chunk, source, wire
/// latency from `since` to the first voice packet, when measurable).
fn say(
    engine: &mut CallEngine<'_>,
    shared: &Shared,
    reply: &Reply,
    since: Option<Instant>,
) -> Result<(u64, u64, &'static str, Option<u64>), CallError> {
    let cancel = CancelToken::new();
    *shared.turn.lock().unwrap_or_else(|e| e.into_inner()) = cancel.clone();
    let (spurts_before, _) = shared.playout.spurt();
    let was_talking = shared.playout.is_talking();
    let mut samples = 0usize;
    let playout = shared.playout.clone();
    let (first_ms, source) = engine.speak_to(reply, &cancel, &mut |chunk: &Pcm| {
        if cancel.is_cancelled() {
            return;
        }
        let pcm = chunk.to_i16();
        samples += pcm.len();
        playout.push(&pcm);
    })?;
    // The first voice packet of this reply: the next spurt to start (if the
    // robot was still talking, its reply continues the spurt and the wire
    // time is not separable).
    let wire = match since {
        Some(t) if !was_talking && samples > 0 && !cancel.is_cancelled() => {
            let deadline = Instant::now() + Duration::from_millis(500);
            loop {
                if let Some(at) = shared.playout.spurt_start(spurts_before + 1) {
                    break Some(at.saturating_duration_since(t).as_millis() as u64);
                }
                if Instant::now() > deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        _ => None,
    };
    Ok((samples as u64 / 8, first_ms, source, wire))
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
    loop {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let event = line.next_event();
        let Some(event) = event else {
            closed.store(true, Ordering::SeqCst);
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
        ep.set_patience(if shared.digits.load(Ordering::SeqCst) {
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
        match ep.push(&frame.0, speech) {
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
                };
                if out.send(u).is_err() {
                    break;
                }
            }
            None => {}
        }
    }
}
