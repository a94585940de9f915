//! `voiceblock run` (the box's main job: register, answer calls, talk) and
//! `voiceblock call` (place one call and run a robot on it).
//!
//! Tokio runs the SIP agent and the media tasks; each call's loop runs on
//! its own threads (whisper and onnxruntime are blocking) with an engine set
//! from a pool sized by the call limit. Every call is kept as a JSON record
//! and in the store; with a fleet broker in the box config (`--config`,
//! `$VOICEBLOCK_CONFIG`) the sync agent runs in the same runtime and
//! delivers the store's outbox.
//!
//! ```text
//!  SIP agent ──Call──► thread per call: run_call ──► SipCallRecord ──► CallSink
//!                                                     JSON file ◄──────┤
//!                      store (calls, turns, lead, outbox) ◄────────────┤
//!                      sync agent ◄── outbox_changed ◄─────────────────┘
//!                         └─ status/metrics from DaemonStatus (registration, calls, latency)
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_audio::line::LineEvent;
use vb_call::{
    run_call, CallEngine, CallRecord, EngineConfig, Line, LineEvents, LiveConfig, LiveStats, Models,
};
use vb_dialog::Robot;
use vb_sip::agent::CallDirection;
use vb_sip::{Call, CallControl, RegState, SipAgent, SipConfig};
use vb_store::{Store, Timestamp};
use vb_stt::WhisperTranscriber;
use vb_sync::SyncHandle;
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
    /// Speech model from the manifest (default: whisper-base-q8_0, or
    /// whisper-base where only that is installed).
    #[arg(long)]
    pub model: Option<String>,
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
    /// Record every call (caller left, robot right, one WAV per call) into
    /// DIR, kept 30 days and within 2 GiB; the box config's `[recording]`
    /// sets these on a provisioned box. Off by default.
    #[arg(long, value_name = "DIR")]
    pub recordings: Option<PathBuf>,
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
    /// Caller silence (ms) after which speech recognition starts on what
    /// was said, before the endpoint (600 ms) confirms the turn is over;
    /// the transcript is kept if the caller says nothing more. 0 turns it
    /// off (recognition starts at the endpoint).
    #[arg(long, default_value_t = vb_vad::EndpointConfig::default().pause_ms, value_parser = parse_stt_at_pause)]
    pub stt_at_pause: u32,
    /// A call whose RTP stops this long (s) is ended.
    #[arg(long, default_value_t = 15)]
    pub rtp_timeout: u64,
    /// Let inbound calls ring this long (ms, at most 30000) before the
    /// robot answers, so staff can pick up first; a caller who hangs up
    /// meanwhile is not answered. 0 answers at once.
    #[arg(long, default_value_t = 0, value_parser = parse_ring_ms)]
    pub ring_ms: u64,
    /// On SIGTERM: how long calls in progress may go on (s) before BYE.
    #[arg(long, default_value_t = 20)]
    pub drain: u64,
    /// The store of calls, leads and the fleet outbox; default
    /// $STATE_DIRECTORY/voiceblock.db or ~/.local/state/voiceblock/voiceblock.db.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The box's provisioned config (`voiceblock provision` writes it, the
    /// systemd unit sets $VOICEBLOCK_CONFIG). Its SIP account, call limit,
    /// robot, store and fleet broker replace the flags above; without it the
    /// flags' defaults run the box alone, offline.
    #[arg(long, value_name = "FILE", env = "VOICEBLOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The HTTP API and /metrics (loopback by default; `off` for none).
    /// Without a box config it has no token, which only a loopback address
    /// allows; with one, the config's `[api]` address and its secrets'
    /// token are used.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:8080")]
    pub api: String,
    /// The SIP password from the config's secrets file (never a flag:
    /// command lines are visible to every user of the box).
    #[arg(skip)]
    pub sip_password: Option<String>,
    /// Dev mode: log every stage of every turn with its timing and payload
    /// (target `voiceblock::dev`), and simulate outbound side effects: the
    /// queue's and the fleet's calls are logged and recorded as
    /// `simulated`, not dialled. Inbound calls are answered as usual.
    #[arg(long, env = "VOICEBLOCK_DEV")]
    pub dev: bool,
}

/// What `run` needs besides the line: the store, and fleet sync when the
/// config names a broker.
pub(crate) struct BoxSetup {
    pub(crate) db: PathBuf,
    sync: Option<vb_sync::SyncConfig>,
    api: Option<vb_api::ApiConfig>,
    robots_dir: PathBuf,
    /// `[device] alsa_device` of the box config (the handset).
    pub(crate) alsa_device: Option<String>,
    /// The box config file's facts for `GET /api/config` (no secrets).
    file: Value,
    /// Call recording and its retention, when on.
    pub(crate) recording: Option<crate::recordings::Retention>,
}

/// What `GET /api/config` shows: the settings in force after the config
/// file and the flags, secrets only as whether they are set.
fn config_view(args: &LineArgs, setup: &BoxSetup) -> Value {
    json!({
        "source": setup.file,
        "sip": {
            "listen": args.listen.to_string(),
            "user": args.user,
            "registrar": args.registrar,
            "password": if args.sip_password.is_some() || args.password_file.is_some() { "set" } else { "not set" },
            "max_calls": args.max_calls,
            "rtp_ports": format!("{}-{}", args.rtp_ports.0, args.rtp_ports.1),
            "rtp_timeout_s": args.rtp_timeout,
            "ring_ms": args.ring_ms,
        },
        "robot": {
            "robot": args.robot,
            "speech_model": args.model,
            "robots_dir": setup.robots_dir.display().to_string(),
            "transfer_to": args.transfer_to,
        },
        "calls": {
            "max_duration_s": args.max_duration,
            "silence_timeout_s": args.silence_timeout,
            "drain_s": args.drain,
            "records": args.records_dir().display().to_string(),
        },
        "store": setup.db.display().to_string(),
        "recording": setup.recording.as_ref().map(|r| json!({
            "dir": r.dir.display().to_string(),
            "keep_days": r.keep.as_secs() / 86_400,
            "max_mib": r.max_bytes >> 20,
        })),
        "api": setup.api.as_ref().map(|a| json!({
            "listen": a.listen.to_string(),
            "token": if a.token.is_some() { "set" } else { "none (loopback only)" },
            "metrics_public": a.metrics_public,
        })),
        "fleet": setup.sync.as_ref().map(|s| json!({
            "device_id": s.device_id,
            "broker": s.broker.addr(),
            "username": s.broker.username,
            "password": if s.broker.password.is_some() { "set" } else { "not set" },
        })),
    })
}

/// The API's settings from `--api` (no token: loopback only).
fn api_from_flag(flag: &str) -> Result<Option<vb_api::ApiConfig>> {
    if flag == "off" {
        return Ok(None);
    }
    let listen: SocketAddr = flag
        .parse()
        .with_context(|| format!("--api {flag:?}: expected IP:port or off"))?;
    let api = vb_api::ApiConfig {
        listen,
        token: None,
        ..vb_api::ApiConfig::default()
    };
    api.validate()
        .map_err(|e| anyhow::anyhow!("--api {flag}: {e}"))?;
    Ok(Some(api))
}

/// Applies the provisioned config (if any) over the flags.
pub(crate) fn resolve(mut args: LineArgs) -> Result<(LineArgs, BoxSetup)> {
    let Some(path) = args.config.clone() else {
        let db = args
            .db
            .clone()
            .unwrap_or_else(|| state_dir().join("voiceblock.db"));
        let api = api_from_flag(&args.api)?;
        let recording = args
            .recordings
            .clone()
            .map(crate::recordings::Retention::with_defaults);
        return Ok((
            args,
            BoxSetup {
                db,
                sync: None,
                api,
                robots_dir: state_dir().join("robots"),
                alsa_device: None,
                file: json!({ "config_file": null, "note": "flags and their defaults" }),
                recording,
            },
        ));
    };
    let (cfg, not_used) = crate::config::Config::load_in_force(&path, &pushed_config_path())
        .with_context(|| format!("the box config {} (run `voiceblock check`)", path.display()))?;
    if let Some(why) = not_used {
        eprintln!("voiceblock: {why}; using {}", path.display());
    }
    args.listen = cfg.sip.listen;
    args.user = cfg.sip.user.clone();
    args.registrar = cfg
        .sip
        .registrar
        .as_ref()
        .map(|r| format!("{}:{}", r.host, r.port));
    args.password_file = None;
    args.sip_password = cfg.secrets.sip_password.clone();
    args.max_calls = cfg.sip.max_calls as usize;
    args.ring_ms = cfg.sip.ring_ms;
    let recording = cfg.recording.clone().or_else(|| {
        args.recordings
            .clone()
            .map(crate::recordings::Retention::with_defaults)
    });
    args.recordings = recording.as_ref().map(|r| r.dir.clone());
    let folder = cfg.robots_dir.join(&cfg.robot);
    args.robot = if folder.join("robot.toml").is_file() {
        folder.display().to_string()
    } else {
        cfg.robot.clone()
    };
    let db = args.db.clone().unwrap_or_else(|| cfg.store_path.clone());
    let sync = match &cfg.mqtt {
        None => None,
        Some(m) => Some(fleet_sync_config(&cfg, m, &db)?),
    };
    let api = if args.api == "off" {
        None
    } else {
        let api = vb_api::ApiConfig {
            listen: cfg.api_listen,
            token: Some(cfg.secrets.api_token.clone()),
            ..vb_api::ApiConfig::default()
        };
        api.validate()
            .map_err(|e| anyhow::anyhow!("{}: [api]: {e}", path.display()))?;
        Some(api)
    };
    Ok((
        args,
        BoxSetup {
            db,
            sync,
            api,
            robots_dir: cfg.robots_dir.clone(),
            alsa_device: cfg.alsa_device.clone(),
            recording,
            file: json!({
                "config_file": path.display().to_string(),
                "secrets_file": cfg.secrets_path.display().to_string(),
                "device_id": cfg.device_id,
                "llm": cfg.llm.as_ref().map(|l| json!({
                    "model": l.model,
                    "timeout_ms": l.timeout.as_millis() as u64,
                })),
            }),
        },
    ))
}

/// The sync agent's settings from the box config's `[mqtt]` and secrets.
fn fleet_sync_config(
    cfg: &crate::config::Config,
    m: &crate::config::Mqtt,
    db: &Path,
) -> Result<vb_sync::SyncConfig> {
    let where_ = || format!("{}: [mqtt]", cfg.path.display());
    if !m.tls {
        bail!("{}: tls = false: fleet sync runs over TLS only", where_());
    }
    let Some(ca_file) = &m.ca_file else {
        bail!(
            "{}: ca_file is missing: name the CA that signed the fleet broker's certificate",
            where_()
        );
    };
    let ca_file = if ca_file.is_absolute() {
        ca_file.clone()
    } else {
        cfg.path.parent().unwrap_or(Path::new(".")).join(ca_file)
    };
    let mut problems = Vec::new();
    let ca_pem = vb_sync::config::read_limited(
        &ca_file,
        vb_sync::config::MAX_CA_BYTES,
        "ca_file",
        &mut problems,
    );
    let ca_pem = match ca_pem {
        Some(pem) if vb_sync::tls::parse_ca(&pem).is_ok() => pem,
        Some(_) => bail!(
            "{}: {} holds no PEM certificate",
            where_(),
            ca_file.display()
        ),
        None => bail!("{}: {}", where_(), problems.join("; ")),
    };
    let broker = vb_sync::config::BrokerConn {
        host: m.broker.host.clone(),
        port: m.broker.port,
        ca_file,
        ca_pem,
        username: Some(m.username.clone()),
        password: cfg.secrets.mqtt_password.clone(),
        keepalive: Duration::from_secs(30),
    };
    Ok(vb_sync::SyncConfig::with_defaults(
        cfg.device_id.clone(),
        db.to_path_buf(),
        broker,
    ))
}

/// Applies the recordings' retention, logging what it did; a failure is
/// logged and the next call tries again.
pub(crate) fn prune_recordings(r: &crate::recordings::Retention) {
    match r.prune(std::time::SystemTime::now()) {
        Ok(p) if p.deleted > 0 => tracing::info!(
            deleted = p.deleted,
            freed = p.freed,
            kept_bytes = p.kept_bytes,
            dir = %r.dir.display(),
            "call recordings: retention"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(dir = %r.dir.display(), error = %e, "call recordings: retention"),
    }
}

/// Where a config pushed from the fleet is kept (the state directory: the
/// sandbox keeps /etc read-only); the next start prefers it.
fn pushed_config_path() -> PathBuf {
    state_dir().join("pushed-config.toml")
}

/// $STATE_DIRECTORY (systemd) or ~/.local/state/voiceblock.
fn state_dir() -> PathBuf {
    if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(state);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/voiceblock")
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

/// `--ring-ms`: 0 to 30000.
fn parse_ring_ms(s: &str) -> Result<u64, String> {
    let ms: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected milliseconds, 0 to 30000"))?;
    let max = vb_sip::MAX_RING.as_millis() as u64;
    if ms > max {
        return Err(format!("{ms} ms: the ring is at most {max} ms"));
    }
    Ok(ms)
}

/// `--stt-at-pause`: checked against the endpointer's own rules, so a
/// value it would refuse is refused at start with the range.
pub(crate) fn parse_stt_at_pause(v: &str) -> Result<u32, String> {
    let ms: u32 = v.parse().map_err(|e| format!("{v:?}: {e}"))?;
    vb_vad::EndpointConfig {
        pause_ms: ms,
        ..vb_vad::EndpointConfig::default()
    }
    .validate()
    .map_err(|e| e.to_string())?;
    Ok(ms)
}

impl LineArgs {
    fn sip_config(&self) -> Result<SipConfig> {
        let password = match &self.password_file {
            None if self.sip_password.is_some() => self.sip_password.clone(),
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
            ring: Duration::from_millis(self.ring_ms),
            ..SipConfig::default()
        })
    }

    pub(crate) fn live_config(&self) -> LiveConfig {
        LiveConfig {
            silence_timeout: Duration::from_secs(self.silence_timeout.max(1)),
            max_duration: Duration::from_secs(self.max_duration.max(5)),
            transfer_to: self.transfer_to.clone(),
            transfer_fallback: self.transfer_fallback.clone(),
            trace_turns: self.dev,
            endpoint: vb_vad::EndpointConfig {
                pause_ms: self.stt_at_pause,
                ..vb_vad::EndpointConfig::default()
            },
            recording: self
                .recordings
                .clone()
                .map(|dir| vb_call::RecordingSetup { dir }),
            ..LiveConfig::default()
        }
    }

    pub(crate) fn records_dir(&self) -> PathBuf {
        match &self.records {
            Some(d) => d.clone(),
            None => state_dir().join("calls"),
        }
    }
}

/// One call's engines; reused across calls.
pub(crate) struct Engines {
    pub(crate) stt: WhisperTranscriber,
    pub(crate) tts: Tts,
    pub(crate) voice: String,
}

/// How long a call waits for an engine set when `cap` sets are open and
/// none is idle: a call that just ended hands its set back within this
/// (its SIP slot frees on BYE, a moment before its call loop returns).
const ENGINE_WAIT: Duration = Duration::from_secs(3);

/// The engine sets: idle ones, and how many exist.
#[derive(Default)]
struct Sets {
    idle: Vec<Engines>,
    open: usize,
}

/// Engines for up to `cap` calls (`max_calls`), created on first use and
/// kept. Never more than `cap` sets exist: a whisper state and a Piper
/// session each cost tens of MB, and on a Pi the memory is the limit.
pub(crate) struct Pool {
    models: Models,
    pub(crate) model: String,
    threads: usize,
    language: String,
    sets: Mutex<Sets>,
    /// Signalled when a set is handed back or one failed to open.
    returned: Condvar,
    cap: usize,
    /// The whisper weights, loaded by the first engine set and shared by
    /// the others (each has its own decoding state).
    stt_model: Mutex<Option<vb_stt::WhisperModel>>,
    /// The first engine set's phrase cache, shared by the others: a fixed
    /// phrase is synthesized once for every call, not once per engine set.
    phrases: Mutex<Option<vb_tts::SharedPhraseCache>>,
    /// The robot's model endpoint and breaker, shared by every call (its
    /// clones share the HTTP client and the breaker).
    pub(crate) llm: Option<vb_llm::LlmEngine>,
}

impl Pool {
    fn open(&self) -> Result<Engines> {
        let stt = {
            let mut shared = self.stt_model.lock().unwrap_or_else(|e| e.into_inner());
            match &*shared {
                Some(model) => model.transcriber()?,
                None => {
                    let t = self.models.transcriber(&self.model, self.threads)?;
                    *shared = Some(t.model().clone());
                    t
                }
            }
        };
        let mut tts = self.models.tts()?;
        {
            let mut shared = self.phrases.lock().unwrap_or_else(|e| e.into_inner());
            match &*shared {
                Some(cache) => tts.use_phrase_cache(cache.clone()),
                None => *shared = Some(tts.phrase_cache()),
            }
        }
        let voice = tts.voice(&self.language)?.name().to_string();
        Ok(Engines { stt, tts, voice })
    }

    fn lock_sets(&self) -> std::sync::MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle set, else a new one while fewer than `cap` exist, else the
    /// first one handed back within [`ENGINE_WAIT`]; blocking (call from a
    /// call's own thread).
    pub(crate) fn take(&self) -> Result<Engines> {
        let deadline = std::time::Instant::now() + ENGINE_WAIT;
        let mut sets = self.lock_sets();
        loop {
            if let Some(e) = sets.idle.pop() {
                return Ok(e);
            }
            if sets.open < self.cap {
                sets.open += 1;
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                bail!(
                    "all {} engine sets (max_calls) stayed busy for {} s",
                    self.cap,
                    ENGINE_WAIT.as_secs()
                );
            }
            sets = self
                .returned
                .wait_timeout(sets, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(sets);
        self.open().inspect_err(|_| {
            self.lock_sets().open -= 1;
            self.returned.notify_one();
        })
    }

    pub(crate) fn give(&self, e: Engines) {
        self.lock_sets().idle.push(e);
        self.returned.notify_one();
    }

    /// How many engine sets exist (idle or in a call).
    #[cfg(test)]
    fn open_sets(&self) -> usize {
        self.lock_sets().open
    }
}

/// The listener's side of a SIP call: caller frames and digits.
struct SipEvents {
    rx: mpsc::Receiver<LineEvent>,
    /// Fault injection for the watchdog test: after this many frames the
    /// listener blocks for good, as a wedged call loop would
    /// (`VOICEBLOCK_FAULT_WEDGE_AFTER_FRAMES`; never set on a box).
    wedge_after: Option<u64>,
    frames: u64,
}

/// The fault-injection variable [`SipEvents::wedge_after`] reads.
const WEDGE_ENV: &str = "VOICEBLOCK_FAULT_WEDGE_AFTER_FRAMES";

impl SipEvents {
    fn new(rx: mpsc::Receiver<LineEvent>) -> SipEvents {
        SipEvents {
            rx,
            wedge_after: std::env::var(WEDGE_ENV).ok().and_then(|v| v.parse().ok()),
            frames: 0,
        }
    }
}

impl LineEvents for SipEvents {
    fn next_event(&mut self) -> Option<LineEvent> {
        self.frames += 1;
        if self.wedge_after.is_some_and(|n| self.frames > n) {
            tracing::error!("{WEDGE_ENV}: the listener wedges now (fault injection)");
            loop {
                std::thread::park();
            }
        }
        self.rx.blocking_recv()
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

/// The daemon's state for health, metrics and the fleet's status message.
#[derive(Default)]
pub(crate) struct DaemonStatus {
    /// Calls in progress.
    active: AtomicUsize,
    /// Calls finished (any end).
    calls: AtomicU64,
    /// Calls that ended in an internal error.
    failed: AtomicU64,
    /// The registration, as words.
    registration: Mutex<String>,
    /// Wire turn latencies of the most recent turns (ms), newest last.
    latencies: Mutex<VecDeque<u64>>,
    /// STT and TTS real-time factors of the most recent turns.
    rtfs: Mutex<(VecDeque<f32>, VecDeque<f32>)>,
    /// Whether a fleet broker is configured, and connected.
    mqtt: Mutex<Option<Result<(), String>>>,
    /// Prometheus metrics (`/metrics`).
    prometheus: Arc<vb_api::Metrics>,
    /// Wakes the outbound dialler (jobs added, queue started).
    pub(crate) queue_wake: Arc<tokio::sync::Notify>,
    /// Heartbeats of the calls in progress, by SIP Call-ID.
    progress: Arc<Mutex<std::collections::HashMap<String, vb_call::Progress>>>,
    /// A restart in place is wanted (a pushed config was applied, or the
    /// fleet said `reload`); the daemon restarts once no call is active.
    restart: tokio::sync::Notify,
    /// Why, once wanted; new outbound calls wait while it is set.
    restart_why: Mutex<Option<String>>,
}

/// A call's heartbeats stay watched while this lives.
struct Watched {
    calls: Arc<Mutex<std::collections::HashMap<String, vb_call::Progress>>>,
    id: String,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A call's listener must read a frame this often (they come every 20 ms).
const LISTENER_STALL: Duration = Duration::from_secs(5);

/// Turn latencies kept for the percentiles in the metrics.
const LATENCY_WINDOW: usize = 200;

impl DaemonStatus {
    /// Watches a call's heartbeats until the guard drops.
    fn watch_call(&self, id: &str, progress: vb_call::Progress) -> Watched {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), progress);
        Watched {
            calls: self.progress.clone(),
            id: id.to_string(),
        }
    }

    /// The first call whose loop has stalled, as words: its listener read no
    /// frame for [`LISTENER_STALL`], or its speaker made no progress within
    /// `speaker_max` (one recognition or one sentence may take seconds).
    pub(crate) fn stalled_call(&self, speaker_max: Duration) -> Option<String> {
        let now = std::time::Instant::now();
        let calls = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        calls.iter().find_map(|(id, p)| {
            p.stalled_at(now, LISTENER_STALL, speaker_max)
                .map(|why| format!("call {id}: {why}"))
        })
    }

    pub(crate) fn call_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.prometheus.call_started();
    }

    fn set_mqtt(&self, state: Result<(), String>) {
        self.prometheus.set_mqtt_connected(state.is_ok());
        *self.mqtt.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
    }

    fn set_registration(&self, state: &RegState) {
        self.prometheus.set_sip_registered(matches!(
            state,
            RegState::Registered { .. } | RegState::NotConfigured
        ));
        let words = match state {
            RegState::NotConfigured => "direct calls only".to_string(),
            RegState::Registering => "registering".to_string(),
            RegState::Registered { expires } => format!("registered ({expires} s)"),
            RegState::Failed { reason } => format!("failed: {reason}"),
            other => format!("{other:?}"),
        };
        *self.registration.lock().unwrap_or_else(|p| p.into_inner()) = words;
    }

    /// A call ended: its record, live stats and RTP counters (none for a
    /// talk session), or `None` when it failed.
    pub(crate) fn call_ended(
        &self,
        record: Option<(&CallRecord, &LiveStats, Option<&RtpSummary>)>,
    ) {
        use vb_api::Stage;
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some((call, live, rtp)) = record else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.prometheus.call_ended("error");
            return;
        };
        let m = &self.prometheus;
        m.call_ended(&call.end_reason);
        for _ in 0..live.barge_ins {
            m.barge_in();
        }
        if let Some(rtp) = rtp {
            m.add_rtp_packets_lost(rtp.lost);
            m.set_rtp_jitter_ms(rtp.jitter_ms);
        }
        let ms = Duration::from_millis;
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let mut rtfs = self.rtfs.lock().unwrap_or_else(|p| p.into_inner());
        let keep = |window: &mut VecDeque<f32>, v: f32| {
            if window.len() == LATENCY_WINDOW {
                window.pop_front();
            }
            window.push_back(v);
        };
        for t in &call.turns {
            // The greeting's synthesis counts for the TTS factor too.
            if let Some(rtf) = t.timings.tts_rtf {
                m.observe_tts_rtf(f64::from(rtf));
                keep(&mut rtfs.1, rtf);
            }
        }
        for t in call.turns.iter().filter(|t| t.index > 0) {
            if l.len() == LATENCY_WINDOW {
                l.pop_front();
            }
            l.push_back(t.timings.turn_latency_ms);
            if let Some(rtf) = t.timings.stt_rtf() {
                m.observe_stt_rtf(f64::from(rtf));
                keep(&mut rtfs.0, rtf);
            }
            if let Some(first) = t.timings.llm_first_token_ms {
                m.observe_stage(Stage::LlmFirstToken, ms(first));
            }
            if t.fallback.is_some() {
                m.script_fallback();
            }
            m.observe_stage(Stage::Endpoint, ms(t.timings.endpoint_ms));
            m.observe_stage(Stage::Stt, ms(t.timings.stt_ms));
            m.observe_stage(Stage::TtsFirstAudio, ms(t.timings.first_audio_ms));
            m.observe_stage(Stage::Wire, ms(t.timings.turn_latency_ms));
        }
    }

    /// The readiness checks: SIP and, when configured, the fleet broker.
    fn checks(&self) -> Vec<vb_api::Check> {
        use vb_api::Check;
        let sip = self
            .registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut checks = vec![
            Check::ok("models"),
            if sip.starts_with("registered") || sip.starts_with("direct") {
                Check::ok("sip")
            } else {
                Check::failed("sip", format!("SIP registration: {sip}"))
            },
        ];
        match &*self.mqtt.lock().unwrap_or_else(|p| p.into_inner()) {
            None => {}
            Some(Ok(())) => checks.push(Check::ok("mqtt")),
            Some(Err(why)) => checks.push(Check::failed("mqtt", why.clone())),
        }
        checks
    }

    /// Health for the fleet's retained status.
    pub(crate) fn health(&self) -> Value {
        json!({
            "mode": "daemon",
            "sip": *self.registration.lock().unwrap_or_else(|p| p.into_inner()),
            "active_calls": self.active.load(Ordering::Relaxed),
            "restart_pending": *self.restart_why.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    /// Asks for a restart in place once no call is active (the settings a
    /// new config changes, SIP, the broker, the API, are bound at start).
    pub(crate) fn request_restart(&self, why: String) {
        let mut pending = self.restart_why.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_none() {
            *pending = Some(why);
        }
        self.restart.notify_one();
    }

    /// Whether a restart in place is waiting for the calls to end.
    pub(crate) fn restart_pending(&self) -> Option<String> {
        self.restart_why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Calls, turn latency percentiles, memory.
    pub(crate) fn metrics(&self) -> Value {
        let mut l: Vec<u64> = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        l.sort_unstable();
        let pct = |p: usize| (!l.is_empty()).then(|| l[(l.len() - 1) * p / 100]);
        let median = |w: &VecDeque<f32>| {
            let mut v: Vec<f32> = w.iter().copied().collect();
            v.sort_unstable_by(f32::total_cmp);
            (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
        };
        let (stt_rtf, tts_rtf) = {
            let r = self.rtfs.lock().unwrap_or_else(|p| p.into_inner());
            (median(&r.0), median(&r.1))
        };
        json!({
            "calls": self.calls.load(Ordering::Relaxed),
            "calls_failed": self.failed.load(Ordering::Relaxed),
            "active_calls": self.active.load(Ordering::Relaxed),
            "turns_measured": l.len(),
            "turn_latency_p50_ms": pct(50),
            "turn_latency_p95_ms": pct(95),
            "stt_rtf_p50": stt_rtf,
            "tts_rtf_p50": tts_rtf,
            "rss_bytes": rss_bytes(),
        })
    }
}

/// Test calls waiting for the SIP agent (from the API and the fleet).
const TEST_CALLS: usize = 4;

/// `POST /api/calls/test` into the daemon's test-call queue; full policy:
/// refused at once as busy.
struct DaemonTestCalls(mpsc::Sender<String>);

impl vb_api::TestCalls for DaemonTestCalls {
    fn test_call(&self, target: &str) -> Result<(), String> {
        self.0.try_send(target.to_string()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                format!("busy: {TEST_CALLS} test calls are already waiting")
            }
            mpsc::error::TrySendError::Closed(_) => "the daemon is stopping".to_string(),
        })
    }
}

/// The daemon's readiness for `/api/health/ready`.
struct Readiness(Arc<DaemonStatus>);

impl vb_api::HealthSource for Readiness {
    fn checks(&self) -> Vec<vb_api::Check> {
        self.0.checks()
    }
}

/// Resident memory of this process, from /proc/self/statm.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Where a finished call goes: its JSON file, the store (whose outbox the
/// sync agent delivers to the fleet), and the status counters.
pub(crate) struct CallSink {
    pub(crate) records: PathBuf,
    pub(crate) store: Arc<Store>,
    pub(crate) sync: Option<SyncHandle>,
    pub(crate) status: Arc<DaemonStatus>,
    /// Pruned after every call kept.
    pub(crate) recordings: Option<crate::recordings::Retention>,
}

impl CallSink {
    /// Keeps the record: JSON first (a store failure, e.g. a full disk,
    /// still leaves the file), then the store in one transaction, then a
    /// wake-up for the sync agent.
    pub(crate) fn keep<R: KeptCall>(&self, record: &R) -> Result<()> {
        if let Some(r) = &self.recordings {
            prune_recordings(r);
        }
        let file = write_record(&self.records, record);
        let mut row = crate::fleet::new_call(
            record.call(),
            record.caller(),
            Timestamp(record.started_ms() as i64),
        );
        // The whole record, with the transport's facts, goes with the call.
        if let Ok(full) = serde_json::to_value(record) {
            row.record = full;
        }
        let stored = self.store.record_call(&row);
        if let Some(sync) = &self.sync {
            sync.outbox_changed();
        }
        let file = file?;
        let id = stored.with_context(|| {
            format!(
                "storing call {} (its record is in {})",
                record.call_id(),
                file.display()
            )
        })?;
        // An outbound queue call: its job and attempt point at the stored
        // call from now on (they had the SIP Call-ID while it ran).
        if record.placed_by_box() {
            if let Err(e) = self.store.queue_link_call(record.call_id(), &id) {
                tracing::warn!(call_id = %record.call_id(), error = %e, "outbound queue: linking the stored call");
            }
        }
        tracing::debug!(call_id = %record.call_id(), stored = %id, file = %file.display(), "call kept");
        Ok(())
    }
}

/// A finished call as the sink keeps it, whatever line carried it (SIP,
/// the handset): the call loop's record plus the transport's facts.
pub(crate) trait KeptCall: Serialize {
    /// Unique id: the SIP Call-ID, or one made up by the transport.
    fn call_id(&self) -> &str;
    /// Unix ms when the call started.
    fn started_ms(&self) -> u64;
    /// Who called, if known.
    fn caller(&self) -> Option<String>;
    /// The call loop's record.
    fn call(&self) -> &CallRecord;
    /// Whether the box placed the call (the outbound queue or a test call).
    fn placed_by_box(&self) -> bool {
        false
    }
}

impl KeptCall for SipCallRecord {
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
    fn placed_by_box(&self) -> bool {
        self.direction == "outbound"
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
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
    sink: &CallSink,
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
    // The call's heartbeats, watched by the systemd watchdog until it ends.
    let progress = vb_call::Progress::new();
    let live = LiveConfig {
        progress: Some(progress.clone()),
        ..live.clone()
    };
    let _watched = sink.status.watch_call(&info.call_id, progress);
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
            Box::new(SipEvents::new(events)),
            &line,
            playout,
            &live,
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
    use Ordering::Relaxed;
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
    sink.keep(&record)?;
    Ok(record)
}

fn write_record<R: KeptCall>(dir: &Path, record: &R) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let safe: String = record
        .call_id()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    let path = dir.join(format!("{}-{safe}.json", record.started_ms()));
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(record)? + "\n";
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(path)
}

/// What a call thread needs, shared by every call.
#[derive(Clone)]
pub(crate) struct Calling {
    pub(crate) pool: Arc<Pool>,
    /// The robot in force when a call starts.
    pub(crate) robot: Arc<crate::robots::ActiveRobot>,
    pub(crate) live: LiveConfig,
    pub(crate) sink: Arc<CallSink>,
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Runs the robot on an answered call in a thread of its own (whisper and
/// onnxruntime block), counting it in the status.
fn start_call_thread(call: Call, c: &Calling) -> Result<()> {
    let c = c.clone();
    std::thread::Builder::new()
        .name("vb-call".into())
        .spawn(move || {
            let call_id = call.info.call_id.clone();
            // Everything this thread logs carries the call's id (a journal
            // field under systemd).
            let _span = tracing::info_span!("call", call_id = %call_id).entered();
            c.sink.status.call_started();
            let robot = c.robot.get();
            let result = serve_call(call, &c.pool, &robot, &c.live, &c.sink, c.runtime);
            c.sink
                .status
                .call_ended(result.as_ref().ok().map(|r| (&r.call, &r.live, Some(&r.rtp))));
            match result {
                Ok(r) => tracing::info!(%call_id, end = %r.call.end_reason, turns = r.call.turns.len(), "call ended"),
                Err(e) => tracing::error!(%call_id, error = %format!("{e:#}"), "call failed"),
            }
        })
        .context("starting a call thread")?;
    Ok(())
}

/// Opens (creating its folder) the store every call is kept in.
pub(crate) fn open_store(db: &Path) -> Result<Arc<Store>> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(Arc::new(Store::open(db).with_context(|| {
        format!("opening the store {}", db.display())
    })?))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vb-net")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The HTTP API's own runtime: one worker thread at a lower scheduling
/// priority (nice 10), so a flood of API clients (a dashboard polling, a
/// script gone wrong) takes what the calls leave: recognition, synthesis and
/// the RTP clock run at normal priority on their own threads.
pub(crate) fn api_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("vb-api")
        .on_thread_start(|| {
            // SAFETY: setpriority on the calling thread (Linux: PRIO_PROCESS
            // with who = 0 is this thread); raising nice needs no privilege.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, API_NICE) };
        })
        .enable_all()
        .build()
        .context("starting the HTTP API's runtime")
}

/// Nice value of the HTTP API's threads.
const API_NICE: libc::c_int = 10;

/// Loads the robot and `sets` engine sets (one per call at once), each with
/// the greeting rendered into its phrase cache, before taking calls: the
/// tenth caller of ten at once hears the greeting as soon as the first
/// (loading an engine set when a call arrives took seconds under load).
pub(crate) fn prepare(
    models: &Models,
    args: &LineArgs,
    threads: usize,
    sets: usize,
) -> Result<(Arc<Pool>, Arc<Robot>)> {
    let robot = Arc::new(load_robot(&args.robot)?);
    let pool = Arc::new(Pool {
        models: models.clone(),
        model: models.stt_model(args.model.as_deref()),
        threads,
        language: robot.language.code().to_string(),
        sets: Mutex::new(Sets::default()),
        returned: Condvar::new(),
        cap: sets.max(1),
        stt_model: Mutex::new(None),
        phrases: Mutex::new(None),
        llm: crate::commands::load_llm(&robot)?,
    });
    let greeting = vb_dialog::Dialog::new(&robot).start();
    let mut ready = Vec::with_capacity(pool.cap);
    for _ in 0..pool.cap {
        let mut set = pool.take()?;
        {
            let mut engine = CallEngine::new(
                &mut set.stt,
                &mut set.tts,
                &robot,
                EngineConfig {
                    out_rate: vb_call::LINE_RATE,
                    ..EngineConfig::default()
                },
            );
            engine.speak(&greeting)?;
        }
        ready.push(set);
    }
    for set in ready {
        pool.give(set);
    }
    Ok((pool, robot))
}

/// How `voiceblock run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped (SIGTERM, Ctrl-C): exit.
    Stopped,
    /// A new config is in force: start again in place ([`reexec`]).
    Restart(String),
}

/// Set on a daemon started again in place, with the reason.
const RESTART_ENV: &str = "VOICEBLOCK_RESTARTED";

/// `voiceblock run`: the daemon. A restart in place for a pushed config
/// that then fails to start (its SIP or API address taken, say) puts the
/// config aside as `pushed-config.failed.toml` (the reason beside it) and
/// starts again on the config before it, so a bad push cannot take the box
/// off the phone.
pub fn run(models: &Models, args: LineArgs, threads: usize) -> Result<Outcome> {
    let started = AtomicBool::new(false);
    let provisioned = args.config.is_some();
    match run_once(models, args, threads, &started) {
        Err(e)
            if provisioned
                && !started.load(Ordering::SeqCst)
                && std::env::var_os(RESTART_ENV).is_some() =>
        {
            match set_aside_pushed(&e) {
                Some(now) => {
                    eprintln!(
                        "voiceblock: the pushed config does not start: {e:#}; it is set aside and {now} is used"
                    );
                    Ok(Outcome::Restart(format!(
                        "the pushed config failed to start; {now} in force"
                    )))
                }
                None => Err(e),
            }
        }
        other => other,
    }
}

/// Moves the pushed config in force aside and puts back the one before it;
/// says which config is in force now, or `None` when no pushed config was.
fn set_aside_pushed(e: &anyhow::Error) -> Option<String> {
    let pushed = pushed_config_path();
    if !pushed.is_file() {
        return None;
    }
    let failed = pushed.with_file_name("pushed-config.failed.toml");
    std::fs::rename(&pushed, &failed).ok()?;
    let _ = std::fs::write(failed.with_extension("why"), format!("{e:#}\n"));
    let previous = pushed.with_file_name("pushed-config.prev.toml");
    if previous.is_file() && std::fs::rename(&previous, &pushed).is_ok() {
        Some("the previously pushed config".into())
    } else {
        Some("the provisioned config".into())
    }
}

/// The store's word on a push set aside at the last start: the version
/// that was applied is recorded as refused, with the reason, so the fleet's
/// `config/reported` says so (when the retained push comes back at the next
/// connect) and the box does not try it again. Does nothing when there is
/// no set-aside push or it is already recorded.
fn record_set_aside(store: &Store) {
    let failed = pushed_config_path().with_file_name("pushed-config.failed.toml");
    let Ok(text) = std::fs::read_to_string(&failed) else {
        return;
    };
    let Some(version) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# Pushed from the fleet as version "))
        .and_then(|v| v.trim_end_matches('.').parse::<u64>().ok())
    else {
        return;
    };
    let why = std::fs::read_to_string(failed.with_extension("why")).unwrap_or_default();
    let r = store.config_outcome(version).and_then(|entry| match entry {
        Some(e) if e.outcome == vb_store::ConfigOutcome::Applied => store.record_config(
            version,
            &e.body,
            vb_store::ConfigOutcome::Rejected,
            &[format!(
                "it did not start, so the box went back to the config before it: {}",
                why.trim()
            )],
        ),
        _ => Ok(()),
    });
    if let Err(e) = r {
        tracing::warn!(version, error = %e, "recording the set-aside config push");
    }
}

/// Starts this program again in the same process (same pid, so systemd
/// and its watchdog keep watching it), with the same arguments.
pub fn reexec(why: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| "voiceblock".into());
    println!("voiceblock: restarting in place: {why}");
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(argv)
        .env(RESTART_ENV, why)
        .exec();
    Err(anyhow::Error::new(err).context("restarting in place (exec /proc/self/exe)"))
}

fn run_once(
    models: &Models,
    args: LineArgs,
    threads: usize,
    started: &AtomicBool,
) -> Result<Outcome> {
    let (mut args, setup) = resolve(args)?;
    if setup.robots_dir.is_dir() {
        // A power cut in the middle of a robot update from the fleet: put
        // the folder right before the robot is loaded from it.
        for name in vb_sync::robot_update::recover(&setup.robots_dir)? {
            eprintln!("voiceblock: robot {name}: restored the previous folder after an interrupted update");
        }
    }
    // A robot an operator activated over the API wins over the configured one.
    let active_file = state_dir().join("active-robot");
    if let Some(spec) = crate::robots::ActiveRobot::remembered(&active_file, &setup.robots_dir) {
        if spec != args.robot {
            println!(
                "voiceblock: robot {spec} (activated over the API; {} holds the choice)",
                active_file.display()
            );
            args.robot = spec;
        }
    }
    // The speech model in force, shown by the API as what is loaded.
    args.model = Some(models.stt_model(args.model.as_deref()));
    let view = config_view(&args, &setup);
    let (pool, robot) = prepare(models, &args, threads, args.max_calls)?;
    let active = Arc::new(crate::robots::ActiveRobot::new(
        robot.clone(),
        setup.robots_dir.clone(),
        active_file,
    ));
    let live = args.live_config();
    let rt = runtime()?;
    let handle = rt.handle().clone();
    let api_rt = match &setup.api {
        Some(_) => Some(api_runtime()?),
        None => None,
    };
    let api_handle = api_rt.as_ref().map(|r| r.handle().clone());
    let status = Arc::new(DaemonStatus::default());
    let store = open_store(&setup.db)?;
    record_set_aside(&store);
    if let Some(r) = &setup.recording {
        println!(
            "voiceblock: recording calls into {} (kept {} days, at most {} MiB)",
            r.dir.display(),
            r.keep.as_secs() / 86_400,
            r.max_bytes >> 20
        );
        prune_recordings(r);
    }
    // systemd: READY once listening, WATCHDOG while the runtime that
    // carries SIP and media turns over, STOPPING while draining.
    let notifier = crate::systemd::Notifier::from_env()?.map(Arc::new);
    let heartbeat = crate::systemd::Heartbeat::new();
    let watchdog = match (&notifier, crate::systemd::watchdog_from_env()?) {
        (Some(n), Some(timeout)) => {
            // Healthy while the runtime that carries SIP and media turns
            // over and every call's loop makes progress.
            let runtime = heartbeat.probe(timeout / 2);
            let calls = status.clone();
            let probe = move || match crate::systemd::HealthProbe::check(&runtime) {
                crate::systemd::Health::Healthy => match calls.stalled_call(timeout) {
                    None => crate::systemd::Health::Healthy,
                    Some(why) => {
                        crate::systemd::Health::Unhealthy(format!("call loop wedged: {why}"))
                    }
                },
                unhealthy => unhealthy,
            };
            // Started once READY is sent: systemd's watchdog runs from the
            // end of start-up, and a ping before READY would say nothing.
            Some((n.clone(), timeout, probe))
        }
        _ => None,
    };
    let watchdog_slot: Arc<Mutex<Option<crate::systemd::Watchdog>>> = Arc::default();
    let slot = watchdog_slot.clone();
    let result = rt.block_on(async move {
        let cancel = CancellationToken::new();
        // Fleet sync: the agent delivers the store's outbox; without a
        // broker in the config, leads wait in the store (`leads export`).
        // Test calls the fleet asks for; full policy: refused at once
        // ("busy"), the fleet gets that as the command's reply.
        let (test_tx, mut test_calls) = mpsc::channel::<String>(TEST_CALLS);
        let api_test_calls = Arc::new(DaemonTestCalls(test_tx.clone()));
        let (sync, sync_task) = match setup.sync {
            Some(config) => {
                let device = Arc::new(
                    crate::fleet::BoxDevice::new(
                        args.config.clone().unwrap_or_default(),
                        pushed_config_path(),
                        store.clone(),
                        Some(status.clone()),
                        Some(setup.robots_dir.clone()),
                    )
                    .with_test_calls(test_tx)
                    .with_robot(active.clone()),
                );
                println!(
                    "voiceblock: fleet sync to {} as {}",
                    config.broker.addr(),
                    config.device_id
                );
                status.set_mqtt(Err("not connected yet".into()));
                // Connection events feed readiness and the metrics; full
                // policy: the agent drops and counts (it never waits on us).
                let (tx, mut events) = tokio::sync::mpsc::channel(64);
                let watcher = status.clone();
                tokio::spawn(async move {
                    while let Some(e) = events.recv().await {
                        match e {
                            vb_sync::AgentEvent::Connected { .. } => watcher.set_mqtt(Ok(())),
                            vb_sync::AgentEvent::ConnectionFailed { message, .. } => {
                                tracing::warn!(%message, "fleet broker");
                                watcher.set_mqtt(Err(message));
                            }
                            // SIP, the broker and the API are bound at
                            // start: a new config takes effect by starting
                            // again, once no call is active.
                            vb_sync::AgentEvent::ConfigApplied { version } => {
                                watcher.request_restart(format!("config version {version} from the fleet"));
                            }
                            _ => {}
                        }
                    }
                });
                let (h, task) =
                    vb_sync::spawn(store.clone(), config, device, cancel.child_token(), Some(tx))?;
                (Some(h), Some(task))
            }
            None => (None, None),
        };
        let sink = Arc::new(CallSink {
            records: args.records_dir(),
            store: store.clone(),
            sync,
            status: status.clone(),
            recordings: setup.recording.clone(),
        });
        let calling = Calling {
            pool: pool.clone(),
            robot: active.clone(),
            live: live.clone(),
            sink,
            runtime: handle.clone(),
        };
        let (agent, mut calls) = SipAgent::start(args.sip_config()?, cancel.clone()).await?;
        // The outbound queue: dialled through the same agent, so inbound and
        // outbound calls share the call limit.
        match crate::outbound::recover(&store, &robot.config.outbound) {
            Ok(0) => {}
            Ok(n) => println!("voiceblock: outbound queue: {n} attempt(s) cut off by the last stop, marked interrupted"),
            Err(e) => tracing::error!(error = %e, "outbound queue: recovering interrupted attempts"),
        }
        let dialler = crate::outbound::Dialler {
            store: store.clone(),
            agent: agent.clone(),
            robot: active.clone(),
            max_calls: args.max_calls,
            in_progress: {
                // A pending restart holds the lines: no new outbound call.
                let status = status.clone();
                let all = args.max_calls;
                Arc::new(move || match status.restart_pending() {
                    Some(_) => all,
                    None => status.active.load(Ordering::Relaxed),
                })
            },
            wake: status.queue_wake.clone(),
            simulate: args.dev,
        };
        if args.dev {
            println!("voiceblock: dev mode: every turn is logged with its stages; outbound calls are simulated, not dialled");
        }
        let answered = calling.clone();
        let dialler_task = tokio::spawn(crate::outbound::run(dialler, cancel.child_token(), move |call| {
            if let Err(e) = start_call_thread(call, &answered) {
                tracing::error!(error = %format!("{e:#}"), "outbound call");
            }
        }));
        // Cancelled when the daemon stops taking calls: talk sessions end.
        let stopping = cancel.child_token();
        let api_task = match setup.api {
            Some(api) => {
                let listener = std::net::TcpListener::bind(api.listen)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .with_context(|| format!("HTTP API on {} (--api off turns it off)", api.listen))?;
                println!("voiceblock: HTTP API on http://{}", api.listen);
                let addr = api.listen;
                let state = vb_api::AppState::new(
                    api,
                    store.clone(),
                    setup.robots_dir.clone(),
                    status.prometheus.clone(),
                )
                .with_health(Arc::new(Readiness(status.clone())))
                .with_queue_wake(status.queue_wake.clone())
                .with_test_calls(api_test_calls.clone())
                .with_robot_switch(active.clone())
                .with_box_config(view);
                let state = match &setup.recording {
                    Some(r) => state.with_recordings(r.dir.clone()),
                    None => state,
                };
                let state = state.with_talk(Arc::new(crate::talk::WebTalk::new(
                    calling.clone(),
                    agent.clone(),
                    stopping.clone(),
                    Duration::from_secs(args.rtp_timeout.max(1)),
                )));
                let api_handle = api_handle.clone().context("the HTTP API's runtime")?;
                let stop = cancel.child_token();
                Some(api_handle.spawn(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .map_err(|source| vb_api::ApiError::Serve { addr, source })?;
                    vb_api::serve(listener, state, stop).await
                }))
            }
            None => None,
        };
        if let Some(n) = &notifier {
            n.ready(&format!("listening on {}", agent.listen()))?;
        }
        started.store(true, Ordering::SeqCst);
        if let Some((n, timeout, probe)) = watchdog {
            let w = crate::systemd::Watchdog::spawn(n, timeout, probe)
                .context("starting the watchdog thread")?;
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
        }
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        let mut reg = agent.registration();
        status.set_registration(&reg.borrow_and_update().clone());
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
        let mut restart: Option<String> = None;
        let mut outcome = Outcome::Stopped;
        loop {
            tokio::select! {
                _ = status.restart.notified(), if restart.is_none() => {
                    restart = status.restart_pending();
                    if let Some(why) = &restart {
                        println!(
                            "voiceblock: {why}: restarting in place once no call is active ({} now)",
                            status.active.load(Ordering::Relaxed)
                        );
                    }
                }
                call = calls.recv() => {
                    let Some(call) = call else { break };
                    tracing::info!(call_id = %call.info.call_id, from = %call.info.from, "call answered");
                    start_call_thread(call, &calling)?;
                }
                Some(target) = test_calls.recv() => {
                    // A test call from the fleet: dialled off the loop (the
                    // far end may take its time to answer).
                    let agent = agent.clone();
                    let calling = calling.clone();
                    let dev = args.dev;
                    tokio::spawn(async move {
                        let uri = if target.starts_with("sip:") { target } else { format!("sip:{target}") };
                        if dev {
                            tracing::info!(target: "voiceblock::dev", to = %uri, "dev mode: test call simulated, not dialled");
                            return;
                        }
                        match agent.place_call(&uri).await {
                            Ok(call) => {
                                tracing::info!(call_id = %call.info.call_id, to = %uri, "test call answered");
                                if let Err(e) = start_call_thread(call, &calling) {
                                    tracing::error!(error = %format!("{e:#}"), "test call");
                                }
                            }
                            Err(e) => tracing::warn!(to = %uri, error = %e, "test call not answered"),
                        }
                    });
                }
                changed = reg.changed() => {
                    if changed.is_ok() {
                        let state = reg.borrow_and_update().clone();
                        status.set_registration(&state);
                        if let RegState::Failed { reason } = &state {
                            eprintln!("voiceblock: registration failed: {reason} (retrying)");
                        } else if let RegState::Registered { .. } = state {
                            println!("voiceblock: registered");
                        }
                    }
                }
                _ = beat.tick() => {
                    heartbeat.beat();
                    if let Some(why) = &restart {
                        if agent.active_calls() == 0 && status.active.load(Ordering::SeqCst) == 0 {
                            outcome = Outcome::Restart(why.clone());
                            break;
                        }
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
            }
        }
        println!("voiceblock: stopping (draining calls for up to {} s)", args.drain);
        stopping.cancel();
        if let Some(n) = &notifier {
            let _ = match &outcome {
                Outcome::Restart(why) => n.reloading(&format!("restarting in place: {why}")),
                Outcome::Stopped => n.stopping(&format!("draining {} call(s)", agent.active_calls())),
            };
        }
        agent.shutdown(Duration::from_secs(args.drain)).await;
        // Let call threads write their records, then give the sync agent a
        // moment to deliver them (what it cannot stays in the outbox).
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), dialler_task).await;
        if let Some(task) = sync_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(task) = api_task {
            if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(6), task).await {
                tracing::warn!(error = %e, "HTTP API");
            }
        }
        anyhow::Ok(outcome)
    });
    let watchdog = watchdog_slot
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(w) = watchdog {
        w.stop();
    }
    result
}

/// `voiceblock call TARGET`: place one call, run the robot, print the record.
pub fn call(models: &Models, target: &str, args: LineArgs, threads: usize) -> Result<()> {
    let (args, setup) = resolve(args)?;
    let (pool, robot) = prepare(models, &args, threads, 1)?;
    let sink = Arc::new(CallSink {
        records: args.records_dir(),
        store: open_store(&setup.db)?,
        sync: None,
        status: Arc::new(DaemonStatus::default()),
        recordings: setup.recording.clone(),
    });
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
            let sink = sink.clone();
            let handle = handle.clone();
            std::thread::Builder::new()
                .name("vb-call".into())
                .spawn(move || {
                    let _ = done_tx.send(serve_call(call, &pool, &robot, &live, &sink, handle));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LineArgs,
    }

    /// Real engines (tiny.en and Piper from the model cache): a call that
    /// finds every set in use waits for one handed back instead of opening
    /// one more, and is refused, naming the limit, when none comes back.
    #[test]
    fn engine_sets_never_exceed_max_calls() {
        use clap::Parser;
        let models = Models::open(None);
        let line = Cli::parse_from(["run", "--model", "whisper-tiny.en"]);
        let (pool, _robot) = prepare(&models, &line.args, 1, 2).unwrap();
        assert_eq!(pool.open_sets(), 2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let waiter = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.take())
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "a third set was opened");
        pool.give(a);
        let c = waiter.join().unwrap().unwrap();
        assert_eq!(pool.open_sets(), 2);
        let err = pool.take().err().expect("no set was free").to_string();
        assert!(err.contains("all 2 engine sets (max_calls)"), "{err}");
        assert_eq!(pool.open_sets(), 2);
        pool.give(b);
        pool.give(c);
    }

    #[test]
    fn stt_at_pause_is_checked_against_the_endpointer() {
        assert_eq!(parse_stt_at_pause("0"), Ok(0));
        assert_eq!(parse_stt_at_pause("200"), Ok(200));
        // At or past the 600 ms hangover, or inside the 100 ms post-roll.
        for bad in ["600", "50"] {
            let e = parse_stt_at_pause(bad).unwrap_err();
            assert!(
                e.contains("pause_ms") && e.contains("hangover_ms = 600"),
                "{e}"
            );
        }
        assert!(parse_stt_at_pause("soon").is_err());
    }

    #[test]
    fn ring_is_bounded_and_named_in_the_error() {
        assert_eq!(parse_ring_ms("0"), Ok(0));
        assert_eq!(parse_ring_ms("30000"), Ok(30_000));
        let e = parse_ring_ms("30001").unwrap_err();
        assert!(e.contains("at most 30000 ms"), "{e}");
        assert!(parse_ring_ms("-1").unwrap_err().contains("0 to 30000"));
    }
}
