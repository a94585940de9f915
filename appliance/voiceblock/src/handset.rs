//! `voiceblock handset`: the robot on a local ALSA device (a USB phone or
//! headset) instead of a SIP line. The same call loop as `run`, with the
//! same engines, barge-in and call records; one conversation at a time.
//!
//! ```text
//!  Handset (vb-handset: capture ring, playout) ◄─ HandsetEvents / HandsetLine (this module)
//!        │                                              │
//!        └── wait for speech (VAD) ──► run_call ──► HandsetCallRecord ──► CallSink (JSON + store)
//!  device lost: the conversation ends ("handset device lost"); when the
//!  device is back a new one starts with the greeting
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use vb_audio::line::LineEvent;
use vb_call::{
    run_call, CallEngine, CallRecord, EngineConfig, Line, LineEvents, LiveConfig, LiveStats, Models,
};
use vb_dialog::Robot;
use vb_handset::{Handset, HandsetConfig, HandsetStats};
use vb_vad::{Aggressiveness, Vad, WebRtcVad};

use crate::daemon::{self, CallSink, DaemonStatus, KeptCall, LineArgs, Pool};

/// End reason of a conversation cut short by the device going away.
pub const DEVICE_LOST: &str = "handset device lost";
/// End reason of a conversation cut short by Ctrl-C or SIGTERM.
pub const STOPPED: &str = "stopped";
/// Voiced 20 ms frames in a row that start the next conversation (200 ms:
/// a word, not a click).
const SPEECH_FRAMES: u32 = 10;

/// A handset conversation's record: the call loop's record plus the
/// device's counters.
#[derive(Debug, Serialize)]
pub struct HandsetCallRecord {
    /// Made up: `handset-<started ms>-<n>`.
    pub call_id: String,
    /// Always "handset" (SIP records say inbound/outbound).
    pub direction: &'static str,
    /// The ALSA device.
    pub from: String,
    /// Unix ms: the conversation started.
    pub started_ms: u64,
    /// Unix ms: it ended.
    pub ended_ms: u64,
    /// The device's counters since the command started.
    pub handset: HandsetStats,
    /// Barge-ins, echo suppressed, digits.
    pub live: LiveStats,
    /// Turns, transcript, timings, lead, end reason.
    #[serde(flatten)]
    pub call: CallRecord,
}

impl KeptCall for HandsetCallRecord {
    fn call_id(&self) -> &str {
        &self.call_id
    }
    fn started_ms(&self) -> u64 {
        self.started_ms
    }
    fn caller(&self) -> Option<String> {
        Some(self.from.clone())
    }
    fn call(&self) -> &CallRecord {
        &self.call
    }
}

/// Why a conversation stops listening.
struct Ending {
    handset: Arc<Handset>,
    /// Device losses when the conversation started.
    epoch: u64,
    hung_up: AtomicBool,
    stop: CancellationToken,
}

impl Ending {
    fn reason(&self) -> Option<&'static str> {
        if self.handset.losses() != self.epoch {
            Some(DEVICE_LOST)
        } else if self.stop.is_cancelled() {
            Some(STOPPED)
        } else if self.hung_up.load(Ordering::SeqCst) {
            Some("hung up")
        } else {
            None
        }
    }
}

/// The listener's side: captured frames until the conversation ends.
struct HandsetEvents(Arc<Ending>);

impl LineEvents for HandsetEvents {
    fn next_event(&mut self) -> Option<LineEvent> {
        loop {
            if self.0.reason().is_some() {
                return None;
            }
            if let Some(f) = self.0.handset.next_frame(Duration::from_millis(100)) {
                return Some(LineEvent::Audio(f));
            }
        }
    }
}

/// The speaker's side: "hanging up" a handset ends the conversation.
struct HandsetLine(Arc<Ending>);

impl Line for HandsetLine {
    fn hangup(&self, reason: &str) {
        tracing::debug!(reason, "handset conversation over");
        self.0.hung_up.store(true, Ordering::SeqCst);
    }

    fn transfer(&self, _target: &str) -> Result<(), String> {
        Err("a local handset cannot transfer the call".into())
    }

    fn end_reason(&self) -> Option<String> {
        match self.0.reason() {
            Some(r) if r != "hung up" => Some(r.to_string()),
            _ => None,
        }
    }
}

/// What waiting for the caller ended with.
enum Wait {
    Speech,
    Lost,
    Stopped,
}

/// Reads the microphone until the caller talks (200 ms of voice), the
/// device goes away, or the command is stopped.
fn wait_for_speech(handset: &Handset, vad: &mut WebRtcVad, stop: &CancellationToken) -> Wait {
    let epoch = handset.losses();
    let mut voiced = 0;
    loop {
        if stop.is_cancelled() {
            return Wait::Stopped;
        }
        if handset.losses() != epoch || !handset.is_online() {
            return Wait::Lost;
        }
        let Some(frame) = handset.next_frame(Duration::from_millis(200)) else {
            continue;
        };
        voiced = if vad.is_speech(&frame).unwrap_or(false) {
            voiced + 1
        } else {
            0
        };
        if voiced >= SPEECH_FRAMES {
            return Wait::Speech;
        }
    }
}

/// Everything a conversation needs.
struct Conversations {
    handset: Arc<Handset>,
    pool: Arc<Pool>,
    robot: Arc<Robot>,
    live: LiveConfig,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
    device: String,
}

impl Conversations {
    /// Runs one conversation, greeting first, until the robot ends it, the
    /// device goes away or the command stops.
    fn one(&self, n: u64) -> Result<HandsetCallRecord> {
        let ending = Arc::new(Ending {
            handset: self.handset.clone(),
            epoch: self.handset.losses(),
            hung_up: AtomicBool::new(false),
            stop: self.stop.clone(),
        });
        let started = SystemTime::now();
        let mut engines = self.pool.take()?;
        let result = {
            let voice = engines.voice.clone();
            let mut engine = CallEngine::new(
                &mut engines.stt,
                &mut engines.tts,
                &self.robot,
                EngineConfig {
                    out_rate: vb_call::LINE_RATE,
                    ..EngineConfig::default()
                },
            );
            run_call(
                &mut engine,
                vb_llm::Responder::new(&self.robot, self.pool.llm.clone()),
                &self.runtime,
                Box::new(HandsetEvents(ending.clone())),
                &HandsetLine(ending.clone()),
                self.handset.playout(),
                &self.live,
                (&voice, &self.pool.model),
            )
        };
        self.pool.give(engines);
        let (call, live) = result?;
        let started_ms = daemon::unix_ms(started);
        Ok(HandsetCallRecord {
            call_id: format!("handset-{started_ms}-{n}"),
            direction: "handset",
            from: self.device.clone(),
            started_ms,
            ended_ms: daemon::unix_ms(SystemTime::now()),
            handset: self.handset.stats(),
            live,
            call,
        })
    }
}

/// `voiceblock handset`: converse on a local ALSA device until Ctrl-C or
/// SIGTERM.
pub fn run(models: &Models, device: Option<String>, args: LineArgs, threads: usize) -> Result<()> {
    let (args, setup) = daemon::resolve(args)?;
    let device = device
        .or(setup.alsa_device.clone())
        .unwrap_or_else(|| "default".to_string());
    let (pool, robot) = daemon::prepare(models, &args, threads, 1)?;
    let sink = CallSink {
        records: args.records_dir(),
        store: daemon::open_store(&setup.db)?,
        sync: None,
        status: Arc::new(DaemonStatus::default()),
        recordings: setup.recording.clone(),
    };
    let rt = daemon::runtime()?;
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        let mut sigterm = {
            let _guard = rt.enter();
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?
        };
        rt.spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = sigterm.recv() => {}
            }
            stop.cancel();
        });
    }
    let handset = Arc::new(Handset::start(HandsetConfig::new(&device))?);
    let talk = Conversations {
        handset: handset.clone(),
        pool,
        robot: robot.clone(),
        live: args.live_config(),
        runtime: rt.handle().clone(),
        stop: stop.clone(),
        device: device.clone(),
    };
    println!(
        "voiceblock: handset on ALSA device {device} (robot {})",
        robot.name
    );
    let mut vad = WebRtcVad::new(vb_call::LINE_RATE, Aggressiveness::default())
        .context("the voice detector")?;
    // A device that is there opens in milliseconds: say "waiting" only
    // for one that is not.
    handset.wait_online(Duration::from_secs(2));
    let mut greet = true;
    let mut n = 0;
    'outer: while !stop.is_cancelled() {
        if !handset.is_online() {
            println!("voiceblock: waiting for the handset device {device}");
            while !handset.wait_online(Duration::from_millis(500)) {
                if stop.is_cancelled() {
                    break 'outer;
                }
            }
            println!("voiceblock: handset device {device} ready");
            greet = true;
        }
        if !greet {
            match wait_for_speech(&handset, &mut vad, &stop) {
                Wait::Speech => {}
                Wait::Lost => {
                    greet = true;
                    continue;
                }
                Wait::Stopped => break,
            }
        }
        handset.clear_capture();
        handset.playout().flush();
        n += 1;
        println!("voiceblock: conversation {n} started");
        // A failed conversation is that conversation's failure, as a failed
        // call is in the daemon: report it and wait for the next caller.
        let record = match talk.one(n) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(conversation = n, error = %format!("{e:#}"), "handset conversation failed");
                eprintln!("voiceblock: conversation {n} failed: {e:#}");
                greet = false;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        for t in &record.call.turns {
            if t.index > 0 {
                println!("caller: {}", t.caller_transcript);
            }
            println!("robot:  {}", t.robot_reply);
        }
        println!(
            "voiceblock: conversation {n} ended: {} ({} barge-in(s))",
            record.call.end_reason, record.live.barge_ins
        );
        if let Err(e) = sink.keep(&record) {
            eprintln!("voiceblock: keeping conversation {n}: {e:#}");
        }
        // After a normal end the next caller starts by talking; after a
        // lost device the robot greets again once it is back.
        greet = record.call.end_reason == DEVICE_LOST;
    }
    println!("voiceblock: stopping the handset");
    handset.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_ends_on_hangup_or_stop_and_says_why() {
        // A device that is not there: the handset keeps retrying it, which
        // is all this needs.
        let mut config = HandsetConfig::new("vb_no_such_device");
        config.reopen_min = Duration::from_millis(10);
        let handset = Arc::new(Handset::start(config).unwrap());
        let stop = CancellationToken::new();
        let ending = Arc::new(Ending {
            handset: handset.clone(),
            epoch: handset.losses(),
            hung_up: AtomicBool::new(false),
            stop: stop.clone(),
        });
        let line = HandsetLine(ending.clone());
        assert_eq!(ending.reason(), None);
        assert!(line.transfer("100").is_err(), "a handset cannot transfer");
        line.hangup("completed");
        let mut events = HandsetEvents(ending.clone());
        assert_eq!(
            events.next_event(),
            None,
            "the listener ends after a hangup"
        );
        assert_eq!(line.end_reason(), None, "the call loop's own reason stands");
        stop.cancel();
        assert_eq!(line.end_reason().as_deref(), Some(STOPPED));
        handset.stop();
    }
}
