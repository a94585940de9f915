//! `voiceblock bench wire`: turn latency on the wire, CPU per call and how
//! many calls at once keep p95 under the bound, against a real daemon.
//!
//! The daemon under test is this binary's `voiceblock run`, started as a
//! child process on loopback (flags only, a scratch state folder), so its
//! CPU time is its own (read from `/proc/<pid>/stat`). The bench is the
//! caller: a SIP agent of its own places calls to the daemon and speaks a
//! scripted English caller, synthesized beforehand with the box's Piper
//! voice, one utterance per robot question. For every caller turn it takes:
//!
//! - **heard**: from the moment its last voice packet of the utterance left
//!   (the sender's spurt start plus the utterance's length) to the first
//!   robot frame with voice out of the caller's jitter buffer: what a
//!   caller hears, including both jitter buffers;
//! - **box wire**: the daemon's own record of the turn (`turn_latency_ms`:
//!   from the last caller voice frame it took to its first robot voice
//!   packet sent), read from its call records afterwards.
//!
//! Each concurrency level runs that many callers at once, each placing
//! calls one after another until it has its share of turns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;
use vb_audio::line::LineEvent;
use vb_audio::pcm::rms_i16;
use vb_call::Models;
use vb_sip::{SipAgent, SipConfig};
use vb_tts::CancelToken;

/// What the caller says, in the order the reception robot asks.
const CALLER: [&str; 5] = [
    "Hello, I would like to book a table for four people on Friday evening.",
    "My name is John Smith.",
    "My number is five five five, one two three, four five six seven.",
    "Friday after six.",
    "Yes, that is correct.",
];
/// Longest delay between two callers' first dials.
const MAX_STAGGER_MS: u32 = 60_000;
/// A robot frame with voice: RMS above this (full scale 1.0).
const VOICE_RMS: f32 = 0.01;
/// The robot has finished talking after this much silence.
const ROBOT_DONE: Duration = Duration::from_millis(1500);
/// A turn with no robot voice within this is counted as unanswered.
const REPLY_LIMIT: Duration = Duration::from_secs(15);

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct WireArgs {
    /// Speech models to compare (`whisper-base`, `whisper-tiny.en`).
    pub models: Vec<String>,
    /// Caller turns per concurrency level (at least).
    pub turns: usize,
    /// Concurrency levels.
    pub levels: Vec<usize>,
    /// HTTP API clients hammering `GET /api/calls?limit=20` on the daemon
    /// all through each level (0: no API load, the API off).
    pub api_load: usize,
    /// The daemon's `--stt-at-pause` settings to compare.
    pub stt_at_pause: Vec<u32>,
    /// Delays between the callers' first dials to compare, in ms (0: all
    /// at once, in step).
    pub stagger_ms: Vec<u32>,
}

/// One caller turn.
#[derive(Debug, Clone)]
struct Turn {
    call_id: String,
    heard_ms: Option<f64>,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz.max(1.0))
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The daemon under test.
struct Daemon {
    child: Child,
    sip: u16,
    records: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(
    dir: &Path,
    model: &str,
    max_calls: usize,
    api: Option<u16>,
    stt_at_pause: u32,
) -> Result<Daemon> {
    use std::io::BufRead;
    let sip = free_port()?;
    let records = dir.join("calls");
    let api = api.map_or_else(|| "off".to_string(), |p| format!("127.0.0.1:{p}"));
    let mut child = Command::new(std::env::current_exe()?)
        .args(["run", "--listen", &format!("127.0.0.1:{sip}")])
        .args(["--model", model, "--robot", "reception-en", "--api", &api])
        .args(["--max-calls", &max_calls.to_string()])
        .args(["--stt-at-pause", &stt_at_pause.to_string()])
        .args(["--rtp-ports", "23000-23199", "--max-duration", "120"])
        .arg("--db")
        .arg(dir.join("box.db"))
        .arg("--records")
        .arg(&records)
        .env_remove("VOICEBLOCK_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("STATE_DIRECTORY", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting `voiceblock run`")?;
    let out = child.stdout.take().context("daemon stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let daemon = Daemon {
        child,
        sip,
        records,
    };
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("voiceblock: listening") => break,
            Ok(_) => {}
            Err(_) => bail!("the daemon did not start listening within 180 s"),
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Ok(daemon)
}

/// Synthesizes the caller's lines at 8 kHz.
fn caller_audio(models: &Models) -> Result<Vec<Vec<i16>>> {
    let mut tts = models.tts()?;
    let mut out = Vec::new();
    for text in CALLER {
        let mut pcm = Vec::new();
        for s in tts.stream("en", text, 8_000, CancelToken::new())? {
            pcm.extend(s?.pcm.to_i16());
        }
        out.push(pcm);
    }
    Ok(out)
}

/// Robot voice as the caller hears it.
struct Ear {
    events: tokio::sync::mpsc::Receiver<LineEvent>,
    last_voice: Option<Instant>,
}

impl Ear {
    /// Waits for the first voice frame after now, up to `limit`; `None`
    /// when the call ended or nothing came.
    async fn first_voice(&mut self, limit: Duration) -> Option<Instant> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(LineEvent::Audio(f))) if rms_i16(&f.0) > VOICE_RMS => {
                    let now = Instant::now();
                    self.last_voice = Some(now);
                    return Some(now);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Waits until the robot has been quiet for [`ROBOT_DONE`]; false when
    /// the call ended.
    async fn robot_done(&mut self) -> bool {
        loop {
            let quiet_since = self.last_voice.unwrap_or_else(Instant::now);
            let left = ROBOT_DONE.saturating_sub(quiet_since.elapsed());
            if left.is_zero() {
                return true;
            }
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(LineEvent::Audio(f))) => {
                    if rms_i16(&f.0) > VOICE_RMS {
                        self.last_voice = Some(Instant::now());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// One caller: calls until it has `turns` turns.
async fn lane(
    agent: Arc<SipAgent>,
    target: String,
    lines: Arc<Vec<Vec<i16>>>,
    turns: usize,
) -> Result<Vec<Turn>> {
    let mut out = Vec::new();
    while out.len() < turns {
        // A call that just ended may still hold its line for a moment, on
        // either side: try again shortly.
        let mut tries = 0;
        let call = loop {
            match agent.place_call(&target).await {
                Ok(c) => break c,
                Err(e) if tries < 20 => {
                    tries += 1;
                    tracing::debug!(error = %e, "bench: calling again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(anyhow::Error::new(e).context("calling the daemon")),
            }
        };
        let call_id = call.info.call_id.clone();
        let playout = call.media.playout.clone();
        let mut ear = Ear {
            events: call.media.events,
            last_voice: None,
        };
        // The greeting.
        if ear.first_voice(Duration::from_secs(10)).await.is_none() || !ear.robot_done().await {
            call.control.hangup("bench: no greeting").await;
            continue;
        }
        let mut ended = false;
        for pcm in lines.iter() {
            if out.len() >= turns {
                break;
            }
            let (spurts, _) = playout.spurt();
            playout.push(pcm);
            // The spurt's first frame leaves at the sender's next tick.
            let start = loop {
                match playout.spurt() {
                    (n, Some(at)) if n > spurts => break at,
                    _ => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            };
            let last_sent =
                start + Duration::from_millis((pcm.len() as u64).div_ceil(160) * 20 - 20);
            tokio::time::sleep_until(tokio::time::Instant::from_std(last_sent)).await;
            // Robot voice during our own utterance would be a barge-in
            // echo; the reply is what starts after the last packet.
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, ear.events.recv()).await {}
            let heard = ear.first_voice(REPLY_LIMIT).await;
            out.push(Turn {
                call_id: call_id.clone(),
                heard_ms: heard
                    .map(|t| t.saturating_duration_since(last_sent).as_secs_f64() * 1000.0),
            });
            if heard.is_none() || !ear.robot_done().await {
                ended = true;
                break;
            }
        }
        if !ended {
            // The robot hangs up after the read-back is confirmed; give it a
            // moment, then hang up ourselves.
            let _ = tokio::time::timeout(Duration::from_secs(5), call.ended.cancelled()).await;
            call.control.hangup("bench: done").await;
        }
    }
    Ok(out)
}

/// The daemon's own timings of caller turns (by SIP Call-ID): wire
/// latency, and the endpoint hangover, STT and first TTS audio within it.
#[derive(Debug, Default)]
struct BoxTimings {
    wire: Vec<f64>,
    /// `wire` of the turns ended by the normal hangover, not the longer
    /// patience while a number is dictated.
    wire_short: Vec<f64>,
    endpoint: Vec<f64>,
    stt: Vec<f64>,
    first_audio: Vec<f64>,
}

fn box_wire(records: &Path, calls: &[String]) -> BoxTimings {
    let mut out = BoxTimings::default();
    let Ok(dir) = std::fs::read_dir(records) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if !calls.iter().any(|c| v["call_id"] == c.as_str()) {
            continue;
        }
        for t in v["turns"].as_array().into_iter().flatten() {
            let caller_spoke = t["index"].as_u64().unwrap_or(0) > 0
                && !t["caller_transcript"].as_str().unwrap_or("").is_empty();
            if caller_spoke {
                let ms = |k: &str| t["timings"][k].as_f64();
                if let (Some(w), Some(e), Some(s), Some(a)) = (
                    ms("turn_latency_ms"),
                    ms("endpoint_ms"),
                    ms("stt_ms"),
                    ms("first_audio_ms"),
                ) {
                    tracing::info!(
                        call = %v["call_id"].as_str().unwrap_or(""),
                        turn = t["index"].as_u64().unwrap_or(0),
                        wire_ms = w,
                        endpoint_ms = e,
                        stt_ms = s,
                        stt_speculative_ms = ms("stt_speculative_ms"),
                        first_audio_ms = a,
                        text = %t["caller_transcript"].as_str().unwrap_or(""),
                        "turn on the wire"
                    );
                    out.wire.push(w);
                    if e < f64::from(vb_vad::EndpointConfig::default().digits_hangover_ms) {
                        out.wire_short.push(w);
                    }
                    out.endpoint.push(e);
                    out.stt.push(s);
                    out.first_audio.push(a);
                }
            }
        }
    }
    out
}

/// Runs the benchmark and prints one Markdown table.
pub fn wire(models: &Models, args: WireArgs) -> Result<()> {
    if let Some(bad) = args.levels.iter().find(|&&l| l == 0 || l > 8) {
        bail!("--levels {bad}: calls at once must be 1 to 8");
    }
    for p in &args.stt_at_pause {
        crate::daemon::parse_stt_at_pause(&p.to_string())
            .map_err(|e| anyhow::anyhow!("--stt-at-pause: {e}"))?;
    }
    if args.models.is_empty()
        || args.turns == 0
        || args.stt_at_pause.is_empty()
        || args.stagger_ms.is_empty()
    {
        bail!("name at least one speech model, one turn, one --stt-at-pause and one --stagger-ms setting");
    }
    if let Some(bad) = args.stagger_ms.iter().find(|&&s| s > MAX_STAGGER_MS) {
        bail!("--stagger-ms {bad}: at most {MAX_STAGGER_MS} ms between callers");
    }
    let lines = Arc::new(caller_audio(models)?);
    let max_level = args.levels.iter().copied().max().unwrap_or(1);
    let rt = crate::daemon::runtime()?;
    // The API load comes from elsewhere on a real box; here it shares the
    // two cores, so its clients run at low priority like the API itself
    // (one thread, nice 10) rather than outrun the call they measure.
    let load_rt = crate::daemon::api_runtime()?;
    println!("| speech model | STT at pause | calls at once | calls start | caller turns | heard p50 | heard p95 | box wire p50 | box wire p95 | box wire p95 without number turns | endpoint / STT / first TTS audio p50 | no reply | daemon CPU per call | daemon RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let runs = args
        .models
        .iter()
        .flat_map(|m| args.stt_at_pause.iter().map(move |p| (m, *p)));
    for (model, pause) in runs {
        let dir = std::env::temp_dir().join(format!(
            "voiceblock-bench-wire-{}-{model}-{pause}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let api_port = match args.api_load {
            0 => None,
            _ => Some(
                std::net::TcpListener::bind("127.0.0.1:0")?
                    .local_addr()?
                    .port(),
            ),
        };
        let daemon = start_daemon(&dir, model, max_level, api_port, pause)?;
        let pause_label = match pause {
            0 => "off".to_string(),
            ms => format!("{ms} ms"),
        };
        let pid = daemon.child.id();
        // One call has nobody to start apart from: one run for level 1.
        let plan = args.levels.iter().flat_map(|&l| {
            let staggers = if l == 1 {
                &args.stagger_ms[..1]
            } else {
                &args.stagger_ms[..]
            };
            staggers.iter().map(move |&s| (l, s))
        });
        for (level, stagger) in plan {
            let start_label = match (level, stagger) {
                (1, _) => "-".to_string(),
                (_, 0) => "together".to_string(),
                (_, ms) => format!("every {ms} ms"),
            };
            let per_lane = args.turns.div_ceil(level).max(5);
            let cpu0 = cpu_seconds(pid)?;
            let t0 = Instant::now();
            let (turns, api): (Vec<Turn>, Option<(Vec<f64>, usize)>) = rt.block_on(async {
                let cancel = CancellationToken::new();
                let hammer = api_port.map(|port| {
                    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
                    let request = format!(
                        "GET /api/calls?limit=20 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                    );
                    load_rt.spawn(crate::bench::load(
                        addr,
                        request,
                        args.api_load,
                        None,
                        cancel.clone(),
                    ))
                });
                let port = free_port()?;
                let config = SipConfig {
                    listen: format!("127.0.0.1:{port}").parse()?,
                    user: "bench".into(),
                    max_calls: 2 * level,
                    rtp_ports: (24000, 24199),
                    ..SipConfig::default()
                };
                let (agent, _incoming) = SipAgent::start(config, cancel.clone()).await?;
                let agent = Arc::new(agent);
                let target = format!("sip:robot@127.0.0.1:{}", daemon.sip);
                let mut tasks = Vec::new();
                for i in 0..level {
                    let delay = Duration::from_millis(u64::from(stagger) * i as u64);
                    let (agent, target, lines) = (agent.clone(), target.clone(), lines.clone());
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        lane(agent, target, lines, per_lane).await
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.context("caller task")??);
                }
                cancel.cancel();
                let api = match hammer {
                    Some(h) => h.await.ok().map(|(ms, failed)| (ms, failed.len())),
                    None => None,
                };
                agent.shutdown(Duration::from_secs(2)).await;
                anyhow::Ok((all, api))
            })?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds(pid)? - cpu0;
            // Let the daemon write the last records.
            std::thread::sleep(Duration::from_secs(2));
            let heard: Vec<f64> = turns.iter().filter_map(|t| t.heard_ms).collect();
            let no_reply = turns.len() - heard.len();
            let ids: Vec<String> = turns.iter().map(|t| t.call_id.clone()).collect();
            let wire = box_wire(&daemon.records, &ids);
            // CPU per call: the daemon's CPU seconds per second of one call,
            // as a share of one core.
            let per_call = cpu / (wall * level as f64);
            println!(
                "| {model} | {pause_label} | {level} | {start_label} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} / {:.0} / {:.0} ms | {no_reply} | {:.0}% of a core | {:.0} MiB |",
                turns.len(),
                percentile(&heard, 50.0),
                percentile(&heard, 95.0),
                percentile(&wire.wire, 50.0),
                percentile(&wire.wire, 95.0),
                percentile(&wire.wire_short, 95.0),
                percentile(&wire.endpoint, 50.0),
                percentile(&wire.stt, 50.0),
                percentile(&wire.first_audio, 50.0),
                per_call * 100.0,
                rss_mib(pid),
            );
            if let Some((ms, failed)) = api {
                println!(
                    "|  |  | API under load: {} clients, {} answered, {failed} refused or failed, p50 {:.1} ms, p99 {:.1} ms |  |  |  |  |  |  |  |  |  |  |  |",
                    args.api_load,
                    ms.len(),
                    percentile(&ms, 50.0),
                    percentile(&ms, 99.0),
                );
            }
        }
        drop(daemon);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_small_samples() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 95.0), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn cpu_time_of_this_process_is_read() {
        let busy = Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() > 0.05);
        assert!(rss_mib(std::process::id()) > 1.0);
    }
}
