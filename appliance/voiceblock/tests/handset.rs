//! `voiceblock handset` on real ALSA devices without a sound card, with the
//! real whisper and Piper models:
//!
//! - the ALSA `file` plugin (capture from a caller track, playback into a
//!   file) over the unpaced `null` slave: the handset's pacer holds it to
//!   real time, so this is the whole conversation deterministically;
//! - a PulseAudio loopback, a paced real-time device: the caller's track is
//!   played into one null sink whose monitor is the box's microphone, the
//!   box plays into another whose monitor is the caller's ear. The caller
//!   talks over the greeting (barge-in);
//! - the same with the sound server killed and restarted (unplug/replug).
//!
//! The tests run one at a time (whisper on a loaded 2-core machine) and
//! assert nothing about speed.

mod peers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use peers::Proc;
use serde_json::Value;

/// Whisper and Piper in two tests at once would make each overrun the
/// transcriber's deadline: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const REQUEST: &str = "Hi, I would like to book a table for four people.";
/// Model loading and a whole conversation with silence prompts, on a
/// loaded machine.
const CONVERSATION: Duration = Duration::from_secs(300);

fn words(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The box on `device`, with `dir` as its home (asoundrc) and state.
fn handset(dir: &Path, device: &str, extra_env: &[(&str, String)]) -> Proc {
    let mut env = vec![
        ("HOME", dir.display().to_string()),
        ("VOICEBLOCK_MODELS", peers::models_dir()),
    ];
    env.extend(extra_env.iter().cloned());
    peers::voiceblock_env(
        "voiceblock",
        &args(&[
            "handset",
            "--device",
            device,
            "--model",
            "whisper-tiny.en",
            "--silence-timeout",
            "5",
        ]),
        dir,
        &env,
    )
}

/// The call records in `dir/calls`, oldest first.
fn records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("calls"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn caller_said(record: &Value) -> String {
    let turns = record["turns"].as_array().cloned().unwrap_or_default();
    words(
        &turns
            .iter()
            .skip(1)
            .map(|t| t["caller_transcript"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The first talk spurt in 8 kHz audio: from the first loud frame to the
/// start of 800 ms of quiet (longer than Piper's pauses between
/// sentences). Its length in ms, and whether the quiet after it was seen
/// (the spurt is over); `None` before any sound.
fn first_spurt(samples: &[i16]) -> Option<(u64, bool)> {
    let loud: Vec<bool> = samples
        .chunks(160)
        .map(|f| {
            let e: f64 = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
            e.sqrt() > 300.0
        })
        .collect();
    let start = loud.iter().position(|&l| l)?;
    let mut quiet = 0;
    for (i, &l) in loud.iter().enumerate().skip(start) {
        quiet = if l { 0 } else { quiet + 1 };
        if quiet == 40 {
            return Some((((i + 1 - 40 - start) * 20) as u64, true));
        }
    }
    Some((((loud.len() - start) * 20) as u64, false))
}

/// Length of the first talk spurt, 0 when there was no sound.
fn first_spurt_ms(samples: &[i16]) -> u64 {
    first_spurt(samples).map_or(0, |(ms, _)| ms)
}

/// Waits until the ear's recording `raw` holds a whole first spurt (the
/// greeting, then quiet): the caller talks only once the greeting was
/// heard, however late it started playing.
fn wait_first_spurt_over(raw: &Path, timeout: Duration) -> Result<u64, String> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < timeout {
        if let Some((ms, true)) = first_spurt(&peers::read_raw(raw)) {
            return Ok(ms);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "no whole greeting in {} within {timeout:?}",
        raw.display()
    ))
}

/// Transcribes the first 5 s of what was played from its first sound (the
/// greeting's opening), with the model the box uses. On a machine loaded
/// by other builds the transcriber can overrun its deadline and print
/// nothing: a few tries, bounded.
fn greeting_heard(d: &Path, samples: &[i16], name: &str) -> String {
    let start = samples
        .iter()
        .position(|s| s.unsigned_abs() > 300)
        .unwrap_or(0);
    let end = (start + 5 * 8000).min(samples.len());
    let wav = d.join(format!("{name}.wav"));
    vb_audio::wav::write(&wav, &vb_audio::Pcm::from_i16(8000, &samples[start..end])).unwrap();
    let mut text = String::new();
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(10));
        }
        text = words(&peers::transcribe_lenient(&wav, "en", "whisper-tiny.en"));
        if !text.is_empty() {
            break;
        }
    }
    text
}

#[test]
fn file_plugin_handset_greets_and_hears_the_caller() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The greeting takes about 6 s; the caller answers after it, and says
    // it again in case a loaded machine made recognition overrun its
    // deadline the first time.
    peers::caller_track(
        &d.join("caller.wav"),
        &[(8.0, REQUEST), (22.0, REQUEST)],
        28.0,
        "en",
    );
    peers::wav_to_raw(&d.join("caller.wav"), &d.join("in.raw"));
    std::fs::write(
        d.join(".asoundrc"),
        format!(
            r#"pcm.tap_in {{ type file; slave.pcm "null"; file "{d}/captured.raw"; infile "{d}/in.raw"; format "raw" }}
pcm.tap_out {{ type file; slave.pcm "null"; file "{d}/out.raw"; format "raw" }}
pcm.tap {{ type asym; playback.pcm "tap_out"; capture.pcm "tap_in" }}
"#,
            d = d.display()
        ),
    )
    .unwrap();

    let mut vb = handset(d, "tap", &[]);
    vb.wait_for("conversation 1 started", CONVERSATION).unwrap();
    let ended = vb.wait_for("conversation 1 ended", CONVERSATION).unwrap();
    assert_eq!(
        vb.stop(Duration::from_secs(20)),
        Some(0),
        "clean stop on SIGTERM"
    );

    let record = records(d).into_iter().next().expect("a call record");
    assert_eq!(record["direction"], "handset", "{record:#}");
    assert_eq!(record["handset"]["capture_rate"], 8000, "{record:#}");
    assert_eq!(record["handset"]["device_losses"], 0, "{record:#}");
    let said = caller_said(&record);
    assert!(
        said.contains("table"),
        "{ended}; the caller's request is missing from the record: {said:?}\n{record:#}"
    );

    let heard = greeting_heard(d, &peers::read_raw(&d.join("out.raw")), "out");
    assert!(
        heard.contains("thank you for calling"),
        "the greeting is missing from what the handset played: {heard}"
    );
}

/// PulseAudio with the box's two sinks, an asoundrc naming them as one
/// device `handset`, and the environment for the box.
fn pulse_handset(d: &Path) -> (Proc, Vec<(&'static str, String)>) {
    let (pulse, socket) = peers::pulse_with(d, &["module-null-sink sink_name=caller rate=8000"]);
    std::fs::write(
        d.join(".asoundrc"),
        r#"pcm.handset { type asym; playback.pcm { type pulse; device "loop" } capture.pcm { type pulse; device "caller.monitor" } }
"#,
    )
    .unwrap();
    let env = vec![("PULSE_SERVER", format!("unix:{}", socket.display()))];
    (pulse, env)
}

/// Records what the box plays (the caller's ear) into `raw`.
fn ear(d: &Path, env: &[(&str, String)], raw: &Path) -> Proc {
    let mut cmd = Command::new("parec");
    cmd.args([
        "-d",
        "loop.monitor",
        "--raw",
        "--format=s16le",
        "--rate=8000",
        "--channels=1",
    ])
    .arg(raw)
    .envs(env.iter().map(|(k, v)| (k, v)));
    Proc::spawn("parec", cmd, d)
}

/// Plays a caller track into the box's microphone.
fn speak(d: &Path, env: &[(&str, String)], wav: &Path) -> Proc {
    let mut cmd = Command::new("paplay");
    cmd.args(["-d", "caller"])
        .arg(wav)
        .envs(env.iter().map(|(k, v)| (k, v)));
    Proc::spawn("paplay", cmd, d)
}

#[test]
fn pulse_loopback_caller_barges_in_on_the_greeting() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    peers::need("parec");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The caller starts talking 2.5 s into the 6 s greeting (and says it
    // again later, in case recognition overran on a loaded machine).
    peers::caller_track(
        &d.join("caller.wav"),
        &[(2.5, REQUEST), (18.0, REQUEST)],
        24.0,
        "en",
    );
    let (_pulse, env) = pulse_handset(d);
    let mut vb = handset(d, "handset", &env);
    let mut parec = ear(d, &env, &d.join("heard.raw"));
    vb.wait_for("conversation 1 started", CONVERSATION).unwrap();
    let _paplay = speak(d, &env, &d.join("caller.wav"));
    let ended = vb.wait_for("conversation 1 ended", CONVERSATION).unwrap();
    parec.stop(Duration::from_secs(5));
    assert_eq!(
        vb.stop(Duration::from_secs(20)),
        Some(0),
        "clean stop on SIGTERM"
    );

    let record = records(d).into_iter().next().expect("a call record");
    assert!(
        record["live"]["barge_ins"].as_u64().unwrap_or(0) >= 1,
        "{ended}; no barge-in in the record: {record:#}"
    );
    let said = caller_said(&record);
    assert!(
        said.contains("table"),
        "the caller's request is missing: {said:?}\n{record:#}"
    );

    // What the caller heard: the greeting began, and stopped early.
    let heard_samples = peers::read_raw(&d.join("heard.raw"));
    let greeting_ms = record["turns"][0]["robot_audio_ms"].as_u64().unwrap();
    let spurt = first_spurt_ms(&heard_samples);
    eprintln!(
        "barge-in: the caller heard {spurt} ms of a {greeting_ms} ms greeting; handset {}",
        record["handset"]
    );
    assert!(
        spurt > 500 && spurt + 1000 < greeting_ms,
        "the greeting ({greeting_ms} ms) should have been cut by the barge-in; the caller heard {spurt} ms of it"
    );
    let heard = greeting_heard(d, &heard_samples, "heard");
    assert!(
        heard.contains("thank you for calling"),
        "greeting missing: {heard}"
    );
}

#[test]
fn pulse_server_killed_and_restarted_the_handset_converses_again() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    peers::need("parec");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Played once the greeting after the replug was heard (twice, in case
    // recognition overran on a loaded machine).
    peers::caller_track(
        &d.join("caller.wav"),
        &[(0.5, REQUEST), (14.0, REQUEST)],
        20.0,
        "en",
    );
    let (mut pulse, env) = pulse_handset(d);
    let mut vb = handset(d, "handset", &env);
    vb.wait_for("conversation 1 started", CONVERSATION).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    // Unplug: the sound server goes away in the middle of the greeting.
    pulse.stop(Duration::from_secs(5));
    vb.wait_for(
        "conversation 1 ended: handset device lost",
        Duration::from_secs(60),
    )
    .unwrap();
    vb.wait_for("waiting for the handset device", Duration::from_secs(30))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Replug: a new server on the same socket.
    let (_pulse, env2) = pulse_handset(d);
    assert_eq!(env, env2);
    let mut parec = ear(d, &env, &d.join("heard.raw"));
    vb.wait_for("conversation 2 started", Duration::from_secs(60))
        .unwrap();
    // A caller talking over a greeting that started late would be heard
    // as its echo: talk once it is over.
    wait_first_spurt_over(&d.join("heard.raw"), Duration::from_secs(60)).unwrap();
    let _paplay = speak(d, &env, &d.join("caller.wav"));
    let ended = vb.wait_for("conversation 2 ended", CONVERSATION).unwrap();
    parec.stop(Duration::from_secs(5));
    assert_eq!(
        vb.stop(Duration::from_secs(20)),
        Some(0),
        "clean stop on SIGTERM"
    );

    let kept = records(d);
    assert_eq!(kept.len(), 2, "{kept:#?}");
    assert_eq!(
        kept[0]["end_reason"], "handset device lost",
        "{:#}",
        kept[0]
    );
    assert!(kept[1]["handset"]["device_losses"].as_u64().unwrap() >= 1);
    let said = caller_said(&kept[1]);
    assert!(
        said.contains("table"),
        "{ended}; after the replug the caller's request is missing: {said:?}\n{:#}",
        kept[1]
    );
    let heard = greeting_heard(d, &peers::read_raw(&d.join("heard.raw")), "heard");
    assert!(
        heard.contains("thank you for calling"),
        "no greeting after the replug: {heard}"
    );
}
