//! The handset on the ALSA `file` plugin over the `null` slave (no sound
//! card needed): what the infile holds comes out of the capture ring as
//! 20 ms frames in order, and what the call loop queues in the playout
//! reaches the output file. The `null` slave is not paced: this also runs
//! the handset's pacer (no timing is asserted).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vb_handset::{Handset, HandsetConfig};

/// An asoundrc in a folder of its own, written once for this test binary
/// (ALSA reads its configuration once per process): `tap` at 8 kHz, and
/// `tap48`, the same behind a `plug` fixed at 48 kHz (a device that cannot
/// run at 8 kHz: the handset resamples).
fn alsa_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            r#"pcm.tap_in {{ type file; slave.pcm "null"; file "{d}/captured.raw"; infile "{d}/in.raw"; format "raw" }}
pcm.tap_out {{ type file; slave.pcm "null"; file "{d}/out.raw"; format "raw" }}
pcm.tap {{ type asym; playback.pcm "tap_out"; capture.pcm "tap_in" }}
pcm.tap48_in {{ type file; slave.pcm "null"; file "{d}/captured48.raw"; infile "{d}/in48.raw"; format "raw" }}
pcm.tap48_out {{ type file; slave.pcm "null"; file "{d}/out48.raw"; format "raw" }}
pcm.tap48_raw {{ type asym; playback.pcm "tap48_out"; capture.pcm "tap48_in" }}
pcm.tap48 {{ type plug; slave {{ pcm "tap48_raw"; rate 48000; format S16_LE; channels 1 }} }}
"#,
            d = dir.path().display()
        );
        std::fs::write(dir.path().join(".asoundrc"), conf).unwrap();
        // A 440 Hz tone at 48 kHz for the resampling device, written
        // before ALSA opens anything.
        let tone: Vec<i16> = (0..48_000)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8000.0) as i16)
            .collect();
        std::fs::write(dir.path().join("in48.raw"), raw(&tone)).unwrap();
        std::env::set_var("HOME", dir.path());
        dir
    })
    .path()
}

fn read_raw(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

/// Waits for the robot's speech to leave the playout queue and the rings.
fn drain(handset: &Handset) {
    let playout = handset.playout();
    let deadline = Instant::now() + Duration::from_secs(20);
    while playout.is_talking() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

fn raw(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn file_plugin_frames_in_and_robot_speech_out() {
    let dir = alsa_dir();
    // One second of a ramp: every sample tells where it came from.
    let input: Vec<i16> = (0..8000).map(|i| (i % 30_000) as i16 + 1).collect();
    std::fs::write(dir.join("in.raw"), raw(&input)).unwrap();

    let handset = Handset::start(HandsetConfig::new("tap")).unwrap();
    assert!(handset.wait_online(Duration::from_secs(10)), "{handset:?}");
    let mut got: Vec<i16> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < input.len() && Instant::now() < deadline {
        if let Some(f) = handset.next_frame(Duration::from_millis(500)) {
            got.extend_from_slice(&f);
        }
    }
    assert_eq!(got.len(), input.len(), "{handset:?}");
    assert_eq!(got, input, "the infile, frame by frame, in order");
    // After the infile: silence from the null slave, still framed.
    let after = handset
        .next_frame(Duration::from_secs(5))
        .expect("frames go on");
    assert!(after.iter().all(|&s| s == 0));

    // The robot says something: 0.5 s of a constant level.
    assert_eq!(handset.playout().push(&[1234; 4000]), 4000);
    drain(&handset);
    let stats = handset.stats();
    handset.stop();
    assert_eq!((stats.capture_rate, stats.playback_rate), (8000, 8000));
    assert_eq!(stats.device_losses, 0, "{stats:?}");

    let out = read_raw(&dir.join("out.raw"));
    let voiced = out.iter().filter(|&&s| s == 1234).count();
    assert_eq!(
        voiced,
        4000,
        "the robot's samples, each once ({} out)",
        out.len()
    );
    let first = out.iter().position(|&s| s == 1234).unwrap();
    assert!(
        out[first..first + 4000].iter().all(|&s| s == 1234),
        "played in one piece"
    );
}

#[test]
fn a_device_without_8k_is_resampled_both_ways() {
    let dir = alsa_dir();
    let handset = Handset::start(HandsetConfig::new("tap48")).unwrap();
    assert!(handset.wait_online(Duration::from_secs(10)), "{handset:?}");
    // One second of the tone at 48 kHz: about 50 frames at 8 kHz.
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames.len() < 45 && Instant::now() < deadline {
        if let Some(f) = handset.next_frame(Duration::from_millis(500)) {
            frames.push(f);
        }
    }
    assert_eq!(frames.len(), 45, "{handset:?}");
    // The tone's RMS (8000 / sqrt 2) survives the conversion.
    let level = rms(&frames[10]);
    assert!((5000.0..6300.0).contains(&level), "rms {level}");

    // 0.5 s of a constant level at 8 kHz comes out as 0.5 s at 48 kHz.
    assert_eq!(handset.playout().push(&[1234; 4000]), 4000);
    drain(&handset);
    let stats = handset.stats();
    handset.stop();
    assert_eq!((stats.capture_rate, stats.playback_rate), (48_000, 48_000));
    let out = read_raw(&dir.join("out48.raw"));
    let near = out.iter().filter(|&&s| (1150..=1320).contains(&s)).count();
    assert!(
        (22_000..=24_500).contains(&near),
        "{near} samples at the robot's level out of {} at 48 kHz",
        out.len()
    );
}
