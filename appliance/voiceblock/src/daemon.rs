//! `voiceblock run` (the box's main job: register, answer calls, talk) and
//! `voiceblock call` (place one call and run a robot on it).
//!
//! Tokio runs the SIP agent and the media tasks; each call's loop runs on
//! its own threads (whisper and onnxruntime are blocking) with an engine set
//! from a pool sized by the call limit. Every call writes a JSON record.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_audio::line::LineEvent;
use vb_call::{
    run_call, CallEngine, CallRecord, EngineConfig, Line, LineEvents, LiveConfig, LiveStats, Models,
};
use vb_dialog::Robot;
use vb_sip::agent::CallDirection;
use vb_sip::{Call, CallControl, RegState, SipAgent, SipConfig};
use vb_stt::WhisperTranscriber;
use vb_tts::Tts;

use crate::commands::load_robot;

/// Options of `run` and `call`; every one has a default that works on a
/// fresh box with no PBX (direct calls to 127.0.0.1:5070).
#[derive(Debug, Clone, Args)]
pub struct LineArgs {
    /// SIP address to listen on (a specific address: it goes into Via/Contact).
    #[arg(long, default_value = "127.0.0.1:5070")]
    pub listen: SocketAddr,
    /// Our SIP user (the AOR's user part).
    #[arg(long, default_value = "robot")]
    pub user: String,
    /// Registrar/proxy host:port; without it the box takes direct calls only.
    #[arg(long)]
    pub registrar: Option<String>,
    /// File holding the SIP password (first line), e.g. /etc/voiceblock/sip.secret.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Robot: a built-in name or a folder.
    #[arg(long, default_value = "reception-en")]
    pub robot: String,
    /// Speech model from the manifest.
    #[arg(long, default_value = "whisper-base")]
    pub model: String,
    /// Calls at once; one more gets 486 Busy Here.
    #[arg(long, default_value_t = 2)]
    pub max_calls: usize,
    /// RTP port range, inclusive (one even/odd pair per call).
    #[arg(long, default_value = "20000-20999", value_parser = parse_range)]
    pub rtp_ports: (u16, u16),
    /// Where call records (JSON, one per call) go; default
    /// $STATE_DIRECTORY/calls or ~/.local/state/voiceblock/calls.
    #[arg(long, value_name = "DIR")]
    pub records: Option<PathBuf>,
    /// Extension or SIP URI for "a person" (DTMF 0 transfers there).
    #[arg(long)]
    pub transfer_to: Option<String>,
    /// Said when the transfer fails.
    #[arg(long)]
    pub transfer_fallback: Option<String>,
    /// Longest call, in seconds.
    #[arg(long, default_value_t = 600)]
    pub max_duration: u64,
    /// Caller silence (s) before the robot prompts, then says goodbye.
    #[arg(long, default_value_t = 8)]
    pub silence_timeout: u64,
    /// A call whose RTP stops this long (s) is ended.
    #[arg(long, default_value_t = 15)]
    pub rtp_timeout: u64,
    /// On SIGTERM: how long calls in progress may go on (s) before BYE.
    #[arg(long, default_value_t = 20)]
    pub drain: u64,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected LOW-HIGH, e.g. 20000-20999"))?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a == 0 || a >= b {
        return Err(format!("{s:?}: need 0 < LOW < HIGH"));
    }
    Ok((a, b))
}

impl LineArgs {
    fn sip_config(&self) -> Result<SipConfig> {
        let password = match &self.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the SIP password from {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            None => None,
        };
        if self.max_calls == 0 || self.max_calls > 64 {
            bail!(
                "--max-calls {}: must be 1..=64 (each call holds a speech model)",
                self.max_calls
            );
        }
        Ok(SipConfig {
            listen: self.listen,
            user: self.user.clone(),
            registrar: self.registrar.clone(),
            password,
            max_calls: self.max_calls,
            rtp_ports: self.rtp_ports,
            rtp_timeout: Duration::from_secs(self.rtp_timeout.max(1)),
            ..SipConfig::default()
        })
    }

    fn live_config(&self) -> LiveConfig {
        LiveConfig {
            silence_timeout: Duration::from_secs(self.silence_timeout.max(1)),
            max_duration: Duration::from_secs(self.max_duration.max(5)),
            transfer_to: self.transfer_to.clone(),
            transfer_fallback: self.transfer_fallback.clone(),
            ..LiveConfig::default()
        }
    }

    fn records_dir(&self) -> PathBuf {
        if let Some(d) = &self.records {
            return d.clone();
        }
        if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
            return PathBuf::from(state).join("calls");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".local/state/voiceblock/calls")
    }
}

/// One call's engines; reused across calls.
struct Engines {
    stt: WhisperTranscriber,
    tts: Tts,
    voice: String,
}

/// Engines for up to `max_calls` calls, created on first use and kept.
struct Pool {
    models: Models,
    model: String,
    threads: usize,
    language: String,
    free: Mutex<Vec<Engines>>,
    /// The robot's model endpoint and breaker, shared by every call (its
    /// clones share the HTTP client and the breaker).
    llm: Option<vb_llm::LlmEngine>,
}

impl Pool {
    fn open(&self) -> Result<Engines> {
        let stt = self.models.transcriber(&self.model, self.threads)?;
        let mut tts = self.models.tts()?;
        let voice = tts.voice(&self.language)?.name().to_string();
        Ok(Engines { stt, tts, voice })
    }

    fn take(&self) -> Result<Engines> {
        if let Some(e) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(e);
        }
        self.open()
    }

    fn give(&self, e: Engines) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
}

/// The listener's side of a SIP call: caller frames and digits.
struct SipEvents(mpsc::Receiver<LineEvent>);

impl LineEvents for SipEvents {
    fn next_event(&mut self) -> Option<LineEvent> {
        self.0.blocking_recv()
    }
}

/// The speaker's side of a SIP call: hangup and transfer.
struct SipLine {
    control: CallControl,
    runtime: tokio::runtime::Handle,
}

impl Line for SipLine {
    fn hangup(&self, reason: &str) {
        self.runtime.block_on(self.control.hangup(reason));
    }

    fn transfer(&self, target: &str) -> Result<(), String> {
        self.runtime
            .block_on(self.control.transfer(target))
            .map_err(|e| e.to_string())
    }

    fn end_reason(&self) -> Option<String> {
        self.control.end_reason()
    }
}

/// What a call record file holds: the call loop's record plus the
/// telephony facts.
#[derive(Debug, Serialize)]
pub struct SipCallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// "inbound" or "outbound".
    pub direction: &'static str,
    /// The caller (From header).
    pub from: String,
    /// The callee (To header).
    pub to: String,
    /// Unix ms: INVITE received or sent.
    pub started_ms: u64,
    /// Unix ms: answered.
    pub answered_ms: u64,
    /// Unix ms: ended.
    pub ended_ms: u64,
    /// Negotiated codec.
    pub codec: String,
    /// RTP counters.
    pub rtp: RtpSummary,
    /// Barge-ins, echo suppressed, digits.
    pub live: LiveStats,
    /// Turns, transcript, timings, lead, end reason.
    #[serde(flatten)]
    pub call: CallRecord,
}

/// RTP counters of one call.
#[derive(Debug, Serialize)]
pub struct RtpSummary {
    /// Packets sent.
    pub sent: u64,
    /// Packets received.
    pub received: u64,
    /// Lost per RFC 3550.
    pub lost: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Worst lateness of a send tick, ms.
    pub max_send_late_ms: f64,
    /// RTCP reports sent / received.
    pub rtcp_sent: u64,
    /// RTCP reports received.
    pub rtcp_received: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Runs the robot on an established call (blocking: call from a thread of
/// its own) and writes the record; returns it.
fn serve_call(
    call: Call,
    pool: &Pool,
    robot: &Robot,
    live: &LiveConfig,
    records: &Path,
    runtime: tokio::runtime::Handle,
) -> Result<SipCallRecord> {
    let Call {
        info,
        media,
        control,
        ended: _,
    } = call;
    let vb_sip::MediaSession {
        events,
        events_tx,
        playout,
        stats,
        ..
    } = media;
    // Only the media and signalling tasks may hold senders, so the line
    // closes when the call ends.
    drop(events_tx);
    let line = SipLine {
        control: control.clone(),
        runtime: runtime.clone(),
    };
    let mut engines = match pool.take() {
        Ok(e) => e,
        Err(e) => {
            line.hangup("engines unavailable");
            return Err(e);
        }
    };
    let result = {
        let voice = engines.voice.clone();
        let mut engine = CallEngine::new(
            &mut engines.stt,
            &mut engines.tts,
            robot,
            EngineConfig {
                out_rate: vb_call::LINE_RATE,
                ..EngineConfig::default()
            },
        );
        run_call(
            &mut engine,
            vb_llm::Responder::new(robot, pool.llm.clone()),
            &runtime,
            Box::new(SipEvents(events)),
            &line,
            playout,
            live,
            (&voice, &pool.model),
        )
    };
    pool.give(engines);
    let (call_record, live_stats) = match result {
        Ok(r) => r,
        Err(e) => {
            runtime.block_on(control.hangup("internal error"));
            return Err(e.into());
        }
    };
    use std::sync::atomic::Ordering::Relaxed;
    let record = SipCallRecord {
        call_id: info.call_id.clone(),
        direction: match info.direction {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        },
        from: info.from.clone(),
        to: info.to.clone(),
        started_ms: unix_ms(info.started),
        answered_ms: unix_ms(info.answered),
        ended_ms: unix_ms(SystemTime::now()),
        codec: info.codec.name().to_string(),
        rtp: RtpSummary {
            sent: stats.sent.load(Relaxed),
            received: stats.received.load(Relaxed),
            lost: stats.lost.load(Relaxed),
            concealed: stats.concealed.load(Relaxed),
            jitter_ms: stats.jitter_us.load(Relaxed) as f64 / 1000.0,
            max_send_late_ms: stats.max_send_late_us.load(Relaxed) as f64 / 1000.0,
            rtcp_sent: stats.rtcp_sent.load(Relaxed),
            rtcp_received: stats.rtcp_received.load(Relaxed),
        },
        live: live_stats,
        call: call_record,
    };
    write_record(records, &record)?;
    Ok(record)
}

fn write_record(dir: &Path, record: &SipCallRecord) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let safe: String = record
        .call_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    let path = dir.join(format!("{}-{safe}.json", record.started_ms));
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(record)? + "\n";
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vb-net")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn prepare(models: &Models, args: &LineArgs, threads: usize) -> Result<(Arc<Pool>, Arc<Robot>)> {
    let robot = Arc::new(load_robot(&args.robot)?);
    let pool = Arc::new(Pool {
        models: models.clone(),
        model: args.model.clone(),
        threads,
        language: robot.language.code().to_string(),
        free: Mutex::new(Vec::new()),
        llm: crate::commands::load_llm(&robot)?,
    });
    // Load one engine set and render the greeting into the TTS cache before
    // taking calls, so the first caller hears it within the first second.
    let mut first = pool.open()?;
    {
        let mut dialog = vb_dialog::Dialog::new(&robot);
        let greeting = dialog.start();
        let mut engine = CallEngine::new(
            &mut first.stt,
            &mut first.tts,
            &robot,
            EngineConfig {
                out_rate: vb_call::LINE_RATE,
                ..EngineConfig::default()
            },
        );
        engine.speak(&greeting)?;
    }
    pool.give(first);
    Ok((pool, robot))
}

/// `voiceblock run`: the daemon.
pub fn run(models: &Models, args: LineArgs, threads: usize) -> Result<()> {
    let (pool, robot) = prepare(models, &args, threads)?;
    let records = args.records_dir();
    let live = args.live_config();
    let rt = runtime()?;
    let handle = rt.handle().clone();
    // systemd: READY once listening, WATCHDOG while the runtime that
    // carries SIP and media turns over, STOPPING while draining.
    let notifier = crate::systemd::Notifier::from_env()?.map(Arc::new);
    let heartbeat = crate::systemd::Heartbeat::new();
    let watchdog = match (&notifier, crate::systemd::watchdog_from_env()?) {
        (Some(n), Some(timeout)) => Some(
            crate::systemd::Watchdog::spawn(n.clone(), timeout, heartbeat.probe(timeout / 2))
                .context("starting the watchdog thread")?,
        ),
        _ => None,
    };
    let result = rt.block_on(async move {
        let cancel = CancellationToken::new();
        let (agent, mut calls) = SipAgent::start(args.sip_config()?, cancel.clone()).await?;
        if let Some(n) = &notifier {
            n.ready(&format!("listening on {}", agent.listen()))?;
        }
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        let mut reg = agent.registration();
        println!(
            "voiceblock: listening on sip:{}@{} (robot {}, up to {} calls){}",
            args.user,
            agent.listen(),
            robot.name,
            args.max_calls,
            args.registrar
                .as_ref()
                .map(|r| format!(", registering at {r}"))
                .unwrap_or_default()
        );
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        loop {
            tokio::select! {
                call = calls.recv() => {
                    let Some(call) = call else { break };
                    tracing::info!(call_id = %call.info.call_id, from = %call.info.from, "call answered");
                    let pool = pool.clone();
                    let robot = robot.clone();
                    let live = live.clone();
                    let records = records.clone();
                    let handle = handle.clone();
                    std::thread::Builder::new()
                        .name("vb-call".into())
                        .spawn(move || {
                            let call_id = call.info.call_id.clone();
                            match serve_call(call, &pool, &robot, &live, &records, handle) {
                                Ok(r) => tracing::info!(%call_id, end = %r.call.end_reason, turns = r.call.turns.len(), "call ended"),
                                Err(e) => tracing::error!(%call_id, error = %format!("{e:#}"), "call failed"),
                            }
                        })
                        .context("starting a call thread")?;
                }
                changed = reg.changed() => {
                    if changed.is_ok() {
                        let state = reg.borrow_and_update().clone();
                        if let RegState::Failed { reason } = &state {
                            eprintln!("voiceblock: registration failed: {reason} (retrying)");
                        } else if let RegState::Registered { .. } = state {
                            println!("voiceblock: registered");
                        }
                    }
                }
                _ = beat.tick() => heartbeat.beat(),
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
            }
        }
        println!("voiceblock: stopping (draining calls for up to {} s)", args.drain);
        if let Some(n) = &notifier {
            let _ = n.stopping(&format!("draining {} call(s)", agent.active_calls()));
        }
        agent.shutdown(Duration::from_secs(args.drain)).await;
        // Let call threads write their records.
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::Ok(())
    });
    if let Some(w) = watchdog {
        w.stop();
    }
    result
}

/// `voiceblock call TARGET`: place one call, run the robot, print the record.
pub fn call(models: &Models, target: &str, args: LineArgs, threads: usize) -> Result<()> {
    let (pool, robot) = prepare(models, &args, threads)?;
    let records = args.records_dir();
    let live = args.live_config();
    let rt = runtime()?;
    let handle = rt.handle().clone();
    let record = rt.block_on(async {
        let cancel = CancellationToken::new();
        let (agent, _calls) = SipAgent::start(args.sip_config()?, cancel.clone()).await?;
        if args.registrar.is_some() {
            let mut reg = agent.registration();
            let wait = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if matches!(*reg.borrow_and_update(), RegState::Registered { .. }) {
                        return;
                    }
                    if reg.changed().await.is_err() {
                        return;
                    }
                }
            });
            if wait.await.is_err() {
                let state = agent.registration().borrow().clone();
                bail!("not registered after 10 s: {state:?}");
            }
        }
        let call = agent.place_call(target).await?;
        println!("voiceblock: {} answered", target);
        // The call loop blocks (whisper, onnxruntime): a thread of its own,
        // outside the runtime, as in `run`.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        {
            let pool = pool.clone();
            let robot = robot.clone();
            let live = live.clone();
            let records = records.clone();
            let handle = handle.clone();
            std::thread::Builder::new()
                .name("vb-call".into())
                .spawn(move || {
                    let _ = done_tx.send(serve_call(call, &pool, &robot, &live, &records, handle));
                })
                .context("starting the call thread")?;
        }
        let record = done_rx.await.context("call thread")??;
        agent.shutdown(Duration::from_secs(1)).await;
        anyhow::Ok(record)
    })?;
    for t in &record.call.turns {
        if t.index > 0 {
            println!("caller: {}", t.caller_transcript);
        }
        println!("robot:  {}", t.robot_reply);
    }
    println!(
        "end: {}; lead: {}",
        record.call.end_reason,
        serde_json::to_string(&record.call.lead)?
    );
    Ok(())
}
