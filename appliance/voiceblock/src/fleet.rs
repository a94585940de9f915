//! The store and fleet commands: `leads export`, `sync` (the device-side MQTT
//! agent, standalone), and `fleet ...` (the operator's side). Also the
//! conversion from the call engine's record to the store's rows.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vb_call::CallRecord;
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, Timestamp};
use vb_sync::fleet::{Dedup, FleetClient};
use vb_sync::{AgentEvent, DesiredConfig, Device, SyncConfig};

/// Default store file (also `$VOICEBLOCK_DB`).
pub const DEFAULT_DB: &str = "/var/lib/voiceblock/voiceblock.db";

fn db_path(db: Option<PathBuf>) -> PathBuf {
    db.or_else(|| std::env::var_os("VOICEBLOCK_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// CSV with a header line.
    Csv,
    /// A JSON array.
    Json,
}

/// `voiceblock leads ...`
#[derive(Debug, Subcommand)]
pub enum LeadsAction {
    /// Write stored leads as CSV or JSON.
    Export {
        /// CSV output.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Only leads stored at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// The store (default: $VOICEBLOCK_DB or /var/lib/voiceblock/voiceblock.db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `voiceblock sync ...`
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Device config with a `[sync]` section.
    #[arg(long)]
    pub config: PathBuf,
    /// Connect once, report, and exit (checks CA, credentials, reachability).
    #[arg(long)]
    pub check: bool,
    /// Where pushed configs are written when applied (default: next to the store, `pushed-config.json`).
    #[arg(long)]
    pub applied_config: Option<PathBuf>,
    /// Accept robot updates from the fleet into this folder (`<dir>/<name>`,
    /// the previous one kept as `<name>.prev`); refused when not given.
    #[arg(long)]
    pub robots_dir: Option<PathBuf>,
    /// Dev mode: webhook POSTs are logged (URL and body), not sent, and
    /// counted delivered.
    #[arg(long, env = "VOICEBLOCK_DEV")]
    pub dev: bool,
}

/// `voiceblock fleet ...`
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Operator config with a `[fleet]` section (admin credentials).
    #[arg(long)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: FleetAction,
}

/// Fleet operations.
#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// List devices with online state, version and health (retained status).
    Devices,
    /// Print leads from every device as they arrive, each once.
    Tail {
        /// Also append each new lead (one JSON per line) to this file; ids
        /// already in it are not written again.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Stop after this many new leads.
        #[arg(long)]
        count: Option<u64>,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
    },
    /// Push a config (JSON file) to devices and wait for their reports.
    PushConfig {
        /// Target devices (repeat for a group).
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// Config version (must grow).
        #[arg(long)]
        version: u64,
        /// The config, a JSON object.
        file: PathBuf,
        /// Seconds to wait for each report.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Send a command and wait for the reply.
    Cmd {
        /// Target device.
        #[arg(long)]
        device: String,
        /// The command as JSON, e.g. '{"command":"logs","lines":50}'.
        command: String,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Pack a robot folder (tar.gz + sha256), install it on a device and
    /// wait for the result; the device keeps its previous robot on any error.
    PushRobot {
        /// Target devices (repeat for a group).
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// The robot's folder name on the box (default: DIR's name).
        #[arg(long)]
        name: Option<String>,
        /// The robot folder (robot.toml, prompt.md, audio/).
        dir: PathBuf,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Export leads saved by `tail --save`, de-duplicated by id.
    Export {
        /// The file `tail --save` wrote.
        #[arg(long)]
        from: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
    },
}

/// The store's rows for a finished call from the call engine.
pub fn new_call(record: &CallRecord, caller: Option<String>, started_at: Timestamp) -> NewCall {
    let lead = &record.lead;
    // The post-call summary's class (the model's or the rules') when the
    // record has one, else the script's rules on the lead.
    let interest = record.interest.clone().unwrap_or_else(|| {
        serde_json::to_value(lead.interest)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "cold".into())
    });
    NewCall {
        id: None,
        caller,
        started_at,
        ended_at: Timestamp(started_at.0 + record.duration_ms as i64),
        end_reason: record.end_reason.clone(),
        robot: record.robot.clone(),
        mode: record.mode.clone(),
        language: record.language.clone(),
        turns: record
            .turns
            .iter()
            .map(|t| NewTurn {
                index: t.index as u32,
                speaker: match t.speaker {
                    vb_call::Speaker::Robot => Speaker::Robot,
                    vb_call::Speaker::Caller => Speaker::Caller,
                },
                caller_text: t.caller_transcript.clone(),
                robot_text: t.robot_reply.clone(),
                timings: serde_json::to_value(&t.timings).unwrap_or(Value::Null),
            })
            .collect(),
        lead: Some(NewLead {
            name: lead.name.clone(),
            phone: lead.phone.clone(),
            request: lead.request.clone(),
            dates: lead.dates.clone(),
            city: lead.city.clone(),
            summary: record.summary.clone().or_else(|| lead.request.clone()),
            interest,
            consent: lead.confirmed,
            callback_later: lead.callback_later,
        }),
        record: serde_json::to_value(record).unwrap_or(Value::Null),
    }
}

/// Stores a simulated call's record (`converse --store`).
pub fn store_record(db: &Path, record: &CallRecord) -> Result<String> {
    let store = Store::open(db)?;
    let id = store.record_call(&new_call(record, None, Timestamp::now()))?;
    Ok(id)
}

/// `voiceblock leads ...`
pub fn leads(action: LeadsAction) -> Result<()> {
    let LeadsAction::Export {
        csv,
        json,
        since,
        db,
        out,
    } = action;
    if !csv && !json {
        bail!("choose a format: --csv or --json");
    }
    let since = since
        .map(|s| {
            Timestamp::parse_rfc3339(&s).with_context(|| {
                format!("--since {s:?} is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")
            })
        })
        .transpose()?;
    let db = db_path(db);
    if !db.exists() {
        bail!(
            "no store at {} (give --db or set $VOICEBLOCK_DB)",
            db.display()
        );
    }
    let store = Store::open(&db)?;
    let rows = store.leads_since(since)?;
    let w: Box<dyn Write> = match &out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    if csv {
        vb_store::export::write_csv(&rows, w)?;
    } else {
        vb_store::export::write_json(&rows, w)?;
    }
    eprintln!("{} leads from {}", rows.len(), db.display());
    Ok(())
}

/// The box's side of the [`Device`] seam, for the standalone `voiceblock
/// sync` and for the agent inside `voiceblock run`: it applies pushed
/// configs by writing them where the daemon reads them at its next start,
/// keeps its own recent log lines, and reports the daemon's health and
/// metrics when it runs inside it. The outbound queue is not there yet.
pub(crate) struct BoxDevice {
    config_path: PathBuf,
    applied_path: PathBuf,
    store: Arc<Store>,
    /// The daemon's calls and registration, when the agent runs inside
    /// `voiceblock run`.
    daemon: Option<Arc<crate::daemon::DaemonStatus>>,
    /// Where pushed robots are installed (`None`: updates are refused).
    robots_dir: Option<PathBuf>,
    /// The daemon's queue of test calls to place (`None`: no telephony).
    test_calls: Option<tokio::sync::mpsc::Sender<String>>,
    /// The daemon's robot in force, reloaded when its folder is updated.
    robot: Option<Arc<crate::robots::ActiveRobot>>,
}

impl BoxDevice {
    /// The device side for the agent; `daemon` is `None` for the standalone
    /// `voiceblock sync`.
    pub(crate) fn new(
        config_path: PathBuf,
        applied_path: PathBuf,
        store: Arc<Store>,
        daemon: Option<Arc<crate::daemon::DaemonStatus>>,
        robots_dir: Option<PathBuf>,
    ) -> BoxDevice {
        BoxDevice {
            config_path,
            applied_path,
            store,
            daemon,
            robots_dir,
            test_calls: None,
            robot: None,
        }
    }

    /// Test calls go to the daemon through `tx`.
    pub(crate) fn with_test_calls(mut self, tx: tokio::sync::mpsc::Sender<String>) -> BoxDevice {
        self.test_calls = Some(tx);
        self
    }

    /// The daemon's robot in force (a robot update for it reloads it).
    pub(crate) fn with_robot(mut self, robot: Arc<crate::robots::ActiveRobot>) -> BoxDevice {
        self.robot = Some(robot);
        self
    }

    /// The standalone agent's event lines: printed, and kept for `logs`.
    fn log(&self, line: String) {
        eprintln!("{line}");
        crate::logring::push(format!("{} {line}", Timestamp::now().to_rfc3339()));
    }
}

impl Device for BoxDevice {
    fn apply_config(&self, version: u64, config: &Value) -> Result<(), Vec<String>> {
        // Written to a temporary file and renamed: the file in force is
        // replaced whole or not at all. The daemon checks the push as a box
        // config first (every problem listed, nothing written on any) and
        // keeps it as TOML, which its next start prefers to the provisioned
        // file; the standalone agent keeps the JSON for the daemon to read.
        let (tmp, body) = if self.daemon.is_some() {
            let toml = crate::config::validate_pushed(config, &self.config_path)?;
            let body = format!("# Pushed from the fleet as version {version}.\n{toml}");
            (
                self.applied_path.with_extension("toml.tmp"),
                body.into_bytes(),
            )
        } else {
            let body = serde_json::to_vec_pretty(&json!({ "version": version, "config": config }))
                .map_err(|e| vec![e.to_string()])?;
            (self.applied_path.with_extension("json.tmp"), body)
        };
        std::fs::write(&tmp, body)
            .map_err(|e| vec![format!("cannot write {}: {e}", tmp.display())])?;
        if self.daemon.is_some() && self.applied_path.is_file() {
            // The config in force stays at hand: should the new one fail to
            // start, the daemon goes back to it.
            let previous = self.applied_path.with_file_name("pushed-config.prev.toml");
            let _ = std::fs::remove_file(&previous);
            let _ = std::fs::hard_link(&self.applied_path, &previous);
        }
        std::fs::rename(&tmp, &self.applied_path)
            .map_err(|e| vec![format!("cannot write {}: {e}", self.applied_path.display())])
    }
    fn reload(&self) -> Result<Value, String> {
        if let Some(daemon) = &self.daemon {
            crate::config::Config::load(&self.config_path).map_err(|e| e.to_string())?;
            daemon.request_restart("reload from the fleet".into());
            return Ok(json!({
                "config": self.config_path,
                "valid": true,
                "note": "the daemon starts again in place with it once no call is active",
            }));
        }
        SyncConfig::load(&self.config_path)
            .map(|_| json!({ "config": self.config_path, "valid": true, "note": "broker settings take effect at the next start" }))
            .map_err(|e| e.to_string())
    }
    fn recent_logs(&self, lines: usize) -> Result<Vec<String>, String> {
        Ok(crate::logring::last(lines))
    }
    fn outbound_queue(&self, run: bool) -> Result<Value, String> {
        let Some(daemon) = &self.daemon else {
            return Err("no outbound queue here: this is the standalone sync agent; the queue runs in `voiceblock run`".into());
        };
        self.store
            .queue_set_running(run)
            .map_err(|e| format!("the outbound queue's state could not be stored: {e}"))?;
        daemon.queue_wake.notify_one();
        let stats = self
            .store
            .queue_stats()
            .map_err(|e| format!("reading the outbound queue: {e}"))?;
        Ok(json!({ "running": run, "queued": stats.queued, "dialing": stats.dialing }))
    }
    fn health(&self) -> Value {
        let mut h = match &self.daemon {
            Some(d) => d.health(),
            None => json!({ "mode": "sync" }),
        };
        h["outbox_depth"] = json!(self.store.outbox_depth().ok());
        h
    }
    fn metrics(&self) -> Value {
        self.daemon
            .as_ref()
            .map_or_else(|| json!({}), |d| d.metrics())
    }
    fn robots_dir(&self) -> Option<PathBuf> {
        self.robots_dir.clone()
    }
    fn robot_installed(&self, name: &str, dir: &Path) -> Result<Value, String> {
        // In the daemon, an update of the robot in force is loaded for the
        // next call; another robot waits to be activated.
        let mut answer = match &self.robot {
            Some(robot) => robot.installed(name),
            None => json!({ "takes_effect": "when the daemon loads it" }),
        };
        answer["installed"] = json!(dir);
        answer["name"] = json!(name);
        Ok(answer)
    }
    fn place_test_call(&self, target: &str) -> Result<Value, String> {
        let Some(tx) = &self.test_calls else {
            return Err("test calls are not available here: this process has no telephony (the daemon places them)".into());
        };
        match tx.try_send(target.to_string()) {
            Ok(()) => Ok(json!({ "queued": target })),
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                Err("busy: 4 test calls are already waiting to be placed".into())
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                Err("the daemon is stopping".into())
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `voiceblock sync`: the device-side agent until SIGTERM or Ctrl-C.
pub fn sync(args: SyncArgs) -> Result<()> {
    let mut config = SyncConfig::load(&args.config)?;
    if args.dev {
        if let Some(w) = &mut config.webhook {
            w.simulate = true;
            eprintln!(
                "voiceblock: dev mode: webhook POSTs to {} are logged, not sent",
                w.url
            );
        }
    }
    let rt = runtime()?;
    if args.check {
        rt.block_on(vb_sync::Agent::probe(&config))?;
        println!(
            "connected to {} as {:?}: ok",
            config.broker.addr(),
            config.broker.username
        );
        return Ok(());
    }
    if let Some(dir) = config.store.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store = Arc::new(Store::open(&config.store)?);
    let applied_path = args.applied_config.unwrap_or_else(|| {
        config
            .store
            .parent()
            .unwrap_or(Path::new("."))
            .join("pushed-config.json")
    });
    let device = Arc::new(BoxDevice::new(
        args.config.clone(),
        applied_path,
        store.clone(),
        None,
        args.robots_dir.clone(),
    ));
    if let Some(dir) = &args.robots_dir {
        // A power cut in the middle of an earlier update: put it right
        // before anything reads the folder.
        for name in vb_sync::robot_update::recover(dir)? {
            eprintln!("robot {name}: restored the previous folder after an interrupted update");
        }
    }
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        // Events are logged and kept for `logs`; full policy: the agent drops
        // and counts (it never waits on this printer).
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let (_handle, task) =
            vb_sync::spawn(store, config, device.clone(), cancel.clone(), Some(tx))?;
        let printer = {
            let device = device.clone();
            tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    let line = match e {
                        AgentEvent::Delivered { msg_id } => format!("delivered {msg_id}"),
                        AgentEvent::Connected { session_present } => {
                            format!("connected (session kept: {session_present})")
                        }
                        AgentEvent::ConnectionFailed { message, .. } => format!("error: {message}"),
                        AgentEvent::PublishRefused { msg_id, message } => {
                            format!("error: {msg_id}: {message}")
                        }
                        other => format!("{other:?}"),
                    };
                    device.log(line);
                }
            })
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        printer.abort();
        Ok(())
    })
}

/// `voiceblock fleet ...`
pub fn fleet(args: FleetArgs) -> Result<()> {
    let conn = vb_sync::config::load_fleet(&args.config)?;
    let user = conn.username.clone().unwrap_or_else(|| "anonymous".into());
    if let FleetAction::Export { from, format } = &args.action {
        return export(from, *format);
    }
    let rt = runtime()?;
    rt.block_on(async move {
        match args.action {
            FleetAction::Devices => {
                let mut c = FleetClient::connect(
                    &conn,
                    &format!("voiceblock-fleet-{}", uuid_short()),
                    false,
                    false,
                )
                .await?;
                let devices = c.devices().await?;
                println!(
                    "{:<24} {:<8} {:<10} {:<26} health",
                    "device", "state", "version", "since"
                );
                for d in devices {
                    println!(
                        "{:<24} {:<8} {:<10} {:<26} {}",
                        d.device,
                        d.state,
                        d.version.as_deref().unwrap_or("-"),
                        d.since.as_deref().unwrap_or("-"),
                        d.health
                    );
                }
                Ok(())
            }
            FleetAction::Tail {
                save,
                count,
                device,
            } => {
                // A persistent session with manual acks: leads that arrive
                // while the tail is not running wait at the broker, and a
                // lead is acknowledged only after it is written.
                let mut c = FleetClient::connect(
                    &conn,
                    &format!("voiceblock-fleet-tail-{user}"),
                    true,
                    true,
                )
                .await?;
                let filter = format!("voiceblock/{}/leads", device.as_deref().unwrap_or("+"));
                c.subscribe(&filter).await?;
                let mut dedup = Dedup::default();
                let mut file = match &save {
                    Some(p) => {
                        if p.exists() {
                            for line in std::io::BufReader::new(std::fs::File::open(p)?).lines() {
                                if let Ok(v) = serde_json::from_str::<Value>(&line?) {
                                    dedup.first(&v["message"]);
                                }
                            }
                        }
                        Some(
                            std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(p)
                                .with_context(|| format!("opening {}", p.display()))?,
                        )
                    }
                    None => None,
                };
                let mut new = 0u64;
                loop {
                    let m = tokio::select! {
                        m = c.recv(Duration::from_secs(3600)) => m,
                        _ = tokio::signal::ctrl_c() => break,
                    };
                    let Some(m) = m else { continue };
                    let Some(v) = m.json() else {
                        c.ack(&m).await?;
                        continue;
                    };
                    if dedup.first(&v) {
                        let device = vb_sync::topics::split(&m.topic)
                            .map(|(d, _)| d)
                            .unwrap_or("?");
                        let l = &v["lead"];
                        println!(
                            "{device} {} {} {} {}",
                            v["id"].as_str().unwrap_or("-"),
                            l["name"].as_str().unwrap_or("-"),
                            l["phone"].as_str().unwrap_or("-"),
                            l["interest"].as_str().unwrap_or("-")
                        );
                        if let Some(f) = file.as_mut() {
                            writeln!(f, "{}", json!({ "device": device, "message": v }))?;
                            f.sync_data()?;
                        }
                        new += 1;
                    }
                    c.ack(&m).await?;
                    if count.is_some_and(|n| new >= n) {
                        break;
                    }
                }
                eprintln!("{new} new leads, {} duplicates dropped", dedup.duplicates);
                Ok(())
            }
            FleetAction::PushConfig {
                devices,
                version,
                file,
                timeout,
            } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let config: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                let mut c = FleetClient::connect(
                    &conn,
                    &format!("voiceblock-fleet-{}", uuid_short()),
                    false,
                    false,
                )
                .await?;
                let reports = c
                    .push_config(
                        &devices,
                        &DesiredConfig { version, config },
                        Duration::from_secs(timeout),
                    )
                    .await?;
                let mut failed = false;
                for (d, r) in reports {
                    println!("{d}: {r}");
                    failed |= r["status"] != "applied";
                }
                if failed {
                    bail!(
                        "some devices rejected the config (their previous config stays in force)"
                    );
                }
                Ok(())
            }
            FleetAction::Cmd {
                device,
                command,
                timeout,
            } => {
                let cmd: Value =
                    serde_json::from_str(&command).context("the command is not JSON")?;
                let mut c = FleetClient::connect(
                    &conn,
                    &format!("voiceblock-fleet-{}", uuid_short()),
                    false,
                    false,
                )
                .await?;
                let r = c
                    .command(&device, &cmd, Duration::from_secs(timeout))
                    .await?;
                println!("{}", serde_json::to_string_pretty(&r)?);
                if r["reply"]["ok"] != true {
                    bail!("the device refused the command");
                }
                Ok(())
            }
            FleetAction::PushRobot {
                devices,
                name,
                dir,
                timeout,
            } => {
                let name = match name {
                    Some(n) => n,
                    None => dir
                        .canonicalize()
                        .ok()
                        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
                        .with_context(|| format!("{} has no folder name: give --name", dir.display()))?,
                };
                if !vb_sync::robot_update::valid_name(&name) {
                    bail!("robot name {name:?} is not allowed: use [A-Za-z0-9_.-], 1-64 characters, not starting with '.' and not ending in .prev");
                }
                // The same checks the box makes, before anything is sent.
                vb_dialog::Robot::load(&dir)
                    .with_context(|| format!("{} is not a valid robot", dir.display()))?;
                let archive = vb_sync::robot_update::pack(&dir)
                    .with_context(|| format!("packing {}", dir.display()))?;
                eprintln!(
                    "robot {name}: {} bytes, sha256 {}",
                    archive.len(),
                    vb_sync::robot_update::sha256_hex(&archive)
                );
                let mut c = FleetClient::connect(
                    &conn,
                    &format!("voiceblock-fleet-{}", uuid_short()),
                    false,
                    false,
                )
                .await?;
                let mut refused = Vec::new();
                for device in &devices {
                    let r = c
                        .push_robot(device, &name, &archive, Duration::from_secs(timeout))
                        .await?;
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    if r["reply"]["ok"] != true {
                        refused.push(device.as_str());
                    }
                }
                if !refused.is_empty() {
                    bail!(
                        "refused by {} (their previous robot stays in force)",
                        refused.join(", ")
                    );
                }
                Ok(())
            }
            FleetAction::Export { .. } => unreachable!("handled above"),
        }
    })
}

fn uuid_short() -> String {
    format!("{:08x}", std::process::id() ^ (Timestamp::now().0 as u32))
}

/// Lead CSV columns for the fleet export.
const FLEET_COLUMNS: &[&str] = &[
    "device",
    "id",
    "call_id",
    "stored_at",
    "caller",
    "robot",
    "name",
    "phone",
    "request",
    "dates",
    "city",
    "interest",
    "summary",
    "consent",
    "callback_later",
];

fn export(from: &Path, format: Format) -> Result<()> {
    let mut dedup = Dedup::default();
    let mut rows = Vec::new();
    let f = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", from.display(), n + 1))?;
        if dedup.first(&v["message"]) {
            rows.push(v);
        }
    }
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => serde_json::to_writer_pretty(&mut out, &rows)?,
        Format::Csv => {
            writeln!(out, "{}", FLEET_COLUMNS.join(","))?;
            for r in &rows {
                let m = &r["message"];
                let l = &m["lead"];
                let s = |v: &Value| match v {
                    Value::Null => String::new(),
                    Value::String(s) => vb_store::export::csv_field(s),
                    other => vb_store::export::csv_field(&other.to_string()),
                };
                let fields = [
                    s(&r["device"]),
                    s(&m["id"]),
                    s(&m["call_id"]),
                    s(&m["stored_at"]),
                    s(&m["caller"]),
                    s(&m["robot"]),
                    s(&l["name"]),
                    s(&l["phone"]),
                    s(&l["request"]),
                    s(&l["dates"]),
                    s(&l["city"]),
                    s(&l["interest"]),
                    s(&l["summary"]),
                    s(&l["consent"]),
                    s(&l["callback_later"]),
                ];
                writeln!(out, "{}", fields.join(","))?;
            }
        }
    }
    writeln!(out)?;
    eprintln!(
        "{} leads ({} duplicates dropped)",
        rows.len(),
        dedup.duplicates
    );
    Ok(())
}
