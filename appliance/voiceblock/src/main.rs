//! `voiceblock`: the VoiceBlock daemon and its tools.
//!
//! Thin binary: argument parsing, wiring of the library crates, exit codes.
//!
//! # Layout
//!
//! ```text
//!  main ─► run(Cli) ─┬─ models    fetch | list | verify          (vb-models)
//!                    ├─ transcribe FILE                          (vb-vad segments ─► vb-stt)
//!                    ├─ say TEXT                                 (vb-tts)
//!                    ├─ converse  --demo | --caller WAV...       (vb-call over all engines)
//!                    ├─ run | call                               (SIP line ─► vb-call, daemon)
//!                    ├─ handset   --device NAME                  (ALSA handset ─► vb-call, vb-handset)
//!                    ├─ robots    list | check DIR               (vb-dialog)
//!                    ├─ bench     stt | tts | turn               (docs/benchmarks.md)
//!                    ├─ leads     export --csv|--json            (vb-store)
//!                    ├─ sync      --config FILE                  (vb-sync agent: outbox ─► MQTT)
//!                    └─ fleet     devices | tail | push-config | push-robot | cmd | export   (vb-sync fleet client)
//! ```
//! - [`commands`]: one function per subcommand.
//! - [`mod@bench`]: the measurement commands.
//! - [`systemd`]: sd_notify and the health-gated watchdog for `Type=notify`.
//! - [`config`]: the box's config and secrets ([`provision`] writes them, [`check`] validates an install).
//! - [`fleet`]: store and fleet commands, and call record -> store rows.
//! - [`handset`]: `voiceblock handset`, the robot on a local ALSA device.
//! - [`logring`]: the last log lines in memory, for the fleet's `logs` command.

mod bench;
mod bench_wire;
mod check;
mod commands;
mod config;
mod daemon;
mod fleet;
mod handset;
mod logring;
mod outbound;
mod provision;
mod recordings;
mod robots;
mod systemd;
mod talk;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// VoiceBlock: an offline phone receptionist for a small Linux box.
#[derive(Debug, Parser)]
#[command(name = "voiceblock", version, about)]
pub struct Cli {
    /// Model cache (default: $VOICEBLOCK_MODELS or ~/.cache/voiceblock/models).
    #[arg(long, global = true, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Threads for speech recognition.
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    /// Log filter (tracing env-filter syntax), also from $VOICEBLOCK_LOG.
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install, list and verify model files.
    Models {
        /// What to do with the models.
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Print what is said in a WAV file (long files are split by the VAD).
    Transcribe {
        /// The WAV file (mono; 8, 16, 22.05, 24, 32, 44.1 or 48 kHz).
        file: PathBuf,
        /// Language: ru, en or auto.
        #[arg(long, default_value = "auto")]
        lang: LangArg,
        /// Speech model from the manifest (default: whisper-base-q8_0, or
        /// whisper-base where only that is installed).
        #[arg(long)]
        model: Option<String>,
        /// Print each utterance with its time and the recognition timings.
        #[arg(long)]
        verbose: bool,
    },
    /// Speak text into a WAV file.
    Say {
        /// The text.
        text: String,
        /// Output WAV.
        #[arg(long)]
        out: PathBuf,
        /// Language of the text: ru or en (auto: Cyrillic means ru).
        #[arg(long, default_value = "auto")]
        lang: LangArg,
        /// Piper voice name from the voices directory (default: the language's voice).
        #[arg(long)]
        voice: Option<String>,
        /// Output sample rate.
        #[arg(long, default_value_t = 22_050)]
        rate: u32,
    },
    /// Simulate a whole call: the robot greets, each caller WAV is one turn.
    Converse {
        /// Robot: a built-in name (reception-en, reception-ru) or a folder.
        #[arg(long, default_value = "reception-en")]
        robot: String,
        /// Caller turns, one WAV each, in order.
        #[arg(long = "caller", value_name = "WAV")]
        callers: Vec<PathBuf>,
        /// Use the built-in demo caller instead of WAV files.
        #[arg(long, conflicts_with = "callers")]
        demo: bool,
        /// Both sides of the call, in order.
        #[arg(long, default_value = "call.wav")]
        out: PathBuf,
        /// Per-turn transcript, reply, timings and the lead.
        #[arg(long, default_value = "call.json")]
        json: PathBuf,
        /// Speech model from the manifest (default: whisper-base-q8_0, or
        /// whisper-base where only that is installed).
        #[arg(long)]
        model: Option<String>,
        /// Also store the call and its lead in this store (queued for sync).
        #[arg(long, value_name = "DB")]
        store: Option<PathBuf>,
    },
    /// The box's main job: listen for SIP calls (registering with a PBX if
    /// --registrar is given) and answer them with the robot.
    Run {
        /// Line, robot and limits.
        #[command(flatten)]
        line: daemon::LineArgs,
    },
    /// Place one call (sip:user@host, or a user at --registrar) and run the
    /// robot on it; prints the transcript and writes the call record.
    Call {
        /// Who to call.
        target: String,
        /// Line, robot and limits.
        #[command(flatten)]
        line: daemon::LineArgs,
    },
    /// Converse on a local ALSA device (a USB phone or headset): the robot
    /// greets, talks with whoever picks it up (barge-in included), keeps
    /// each conversation as a call record, then waits for speech to start
    /// the next. Survives the device being unplugged. Ctrl-C or SIGTERM
    /// stops it. The SIP flags do not apply.
    Handset {
        /// ALSA device name (`arecord -L`), e.g. `plughw:CARD=Device`;
        /// default: the box config's `[device] alsa_device`, else `default`.
        #[arg(long)]
        device: Option<String>,
        /// Robot, models, records, store and limits (as for `run`).
        #[command(flatten)]
        line: daemon::LineArgs,
    },
    /// Built-in robots and robot folders.
    Robots {
        /// What to do.
        #[command(subcommand)]
        action: RobotsAction,
    },
    /// Write the box's config and secrets file (0600).
    Provision(Box<provision::ProvisionArgs>),
    /// Validate an installed box: config, secrets, models, ALSA, SIP, MQTT, LLM.
    Check(check::CheckArgs),
    /// Measurements written to docs/benchmarks.md.
    Bench {
        /// Which.
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Stored leads.
    Leads {
        /// What to do.
        #[command(subcommand)]
        action: fleet::LeadsAction,
    },
    /// Run the device-side MQTT agent (outbox, status, config, commands) until SIGTERM.
    Sync(fleet::SyncArgs),
    /// The fleet operator's side: devices, leads, configs, commands.
    Fleet(fleet::FleetArgs),
}

/// `voiceblock models ...`
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Install models into the cache (idempotent; verifies sha256).
    Fetch {
        /// Only these models (default: all for this machine and the aarch64 runtime).
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        /// Where to take them from.
        #[arg(long, default_value = "airgap")]
        source: SourceArg,
        /// Manifest to use instead of the built-in one.
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// List the manifest and what is installed.
    List,
    /// Re-hash every installed model.
    Verify,
}

/// `voiceblock robots ...`
#[derive(Debug, Subcommand)]
pub enum RobotsAction {
    /// List built-in robots.
    List,
    /// Validate a robot folder and print its flow.
    Check {
        /// The robot folder.
        dir: PathBuf,
    },
}

/// `voiceblock bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// STT time for 2, 5 and 10 s utterances: our path vs the plain 30 s window.
    Stt {
        /// Runs per measurement (median reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// A whisper model to measure, by manifest name or as a ggml file
        /// path; repeat for several (default: whisper-tiny.en and whisper-base).
        #[arg(long = "model")]
        models: Vec<String>,
    },
    /// STT accuracy and time per encoder-window floor, over caller lines
    /// sent through the phone path (English; Russian for multilingual models).
    SttWindow {
        /// Floors to compare, comma-separated (0: the clip's own length plus margin).
        #[arg(long, value_delimiter = ',', default_value = "0,256,384,512,768,1024")]
        floors: Vec<u32>,
        /// whisper's temperature fallback settings to compare,
        /// comma-separated (true: a decode failing whisper's confidence
        /// checks is run again hotter, the box's default).
        #[arg(long, value_delimiter = ',', default_value = "true")]
        fallback: Vec<bool>,
        /// A whisper model, by manifest name or as a ggml file path; repeat
        /// for several (default: whisper-tiny.en and whisper-base).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Recordings of people (scripts/setup.d/60-speech.sh) instead of
        /// the box's voices: ten English clips, 1-7 s, and 24 Russian
        /// telephone prompts, 1-5 s.
        #[arg(long)]
        human: bool,
    },
    /// TTS time to first audio and real-time factor.
    Tts {
        /// Runs per measurement (median reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Scripted turn latency over whole demo calls (both languages).
    Turn {
        /// Calls per language.
        #[arg(long, default_value_t = 2)]
        calls: usize,
    },
    /// RTP send pacing over loopback UDP: interval jitter and drift, the
    /// box's pacer against a naive sleep loop.
    Rtp {
        /// Length of each stream in seconds (50 packets a second).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Turn latency on the wire against a `voiceblock run` child on
    /// loopback, with callers speaking a scripted English dialog: p50/p95
    /// per speech model and calls at once, the daemon's CPU per call.
    Wire {
        /// Speech models, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "whisper-base-q8_0,whisper-tiny.en"
        )]
        models: Vec<String>,
        /// Caller turns per level (at least 5 per caller).
        #[arg(long, default_value_t = 20)]
        turns: usize,
        /// Calls at once, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        levels: Vec<usize>,
        /// HTTP API clients asking the daemon for its calls all the while
        /// (0: none, the API off).
        #[arg(long, default_value_t = 0)]
        api_load: usize,
        /// The daemon's `--stt-at-pause` values to compare, comma-separated
        /// (0: recognition starts at the endpoint).
        #[arg(long, value_delimiter = ',', default_value = "0,200")]
        stt_at_pause: Vec<u32>,
        /// How the calls of a level start, comma-separated: 0 all at once
        /// (the callers then speak the same lines in step, so every turn
        /// ends together: the worst case), N: caller i dials i x N ms after
        /// the first, as calls that arrive at different times.
        #[arg(long, value_delimiter = ',', default_value = "0")]
        stagger_ms: Vec<u32>,
    },
    /// HTTP API latency under concurrent clients (run it against a daemon,
    /// idle and while calls run): each client opens a connection per request.
    Api {
        /// The API's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Bearer token, if the API has one.
        #[arg(long, env = "VOICEBLOCK_API_TOKEN")]
        token: Option<String>,
        /// Clients at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Requests in all.
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// The route asked.
        #[arg(long, default_value = "/api/calls?limit=20")]
        path: String,
    },
}

/// Language choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// Russian.
    Ru,
    /// English.
    En,
    /// Detect.
    Auto,
}

/// Model source on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Registry packages (pip) and the project's own conversion.
    Airgap,
    /// The models' official download URLs.
    Official,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("VOICEBLOCK_LOG").unwrap_or_else(|_| cli.log.clone());
    use tracing_subscriber::{prelude::*, EnvFilter};
    // stderr gets what --log asks for; the ring behind the fleet's `logs`
    // command keeps info and above regardless. Started by systemd (its
    // journal on our stdout/stderr: JOURNAL_STREAM), records go to the
    // journal natively instead, with their fields as journal fields
    // (F_CALL_ID=... on everything a call logs), so `journalctl
    // F_CALL_ID=...` shows one call.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("voiceblock".into()));
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::new(filter.clone()))
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(journald.map(|l| l.with_filter(EnvFilter::new(filter))))
        .with(logring::RingLayer.with_filter(EnvFilter::new("info,rsipstack=warn")))
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("voiceblock: {err:#}");
            ExitCode::FAILURE
        }
    }
}
