//! The handset on the ALSA `file` plugin over the `null` slave (no sound
//! card needed): what the infile holds comes out of the capture ring as
//! 20 ms frames in order, and what the call loop queues in the playout
//! reaches the output file. The `null` slave is not paced: this also runs
//! the handset's pacer (no timing is asserted).

use std::path::Path;
use std::time::{Duration, Instant};

use vb_handset::{Handset, HandsetConfig};

/// Points ALSA at an asoundrc in `dir` (this test binary's only test, so
/// changing the process environment is safe).
fn asoundrc(dir: &Path) {
    let conf = format!(
        r#"pcm.tap_in {{ type file; slave.pcm "null"; file "{d}/captured.raw"; infile "{d}/in.raw"; format "raw" }}
pcm.tap_out {{ type file; slave.pcm "null"; file "{d}/out.raw"; format "raw" }}
pcm.tap {{ type asym; playback.pcm "tap_out"; capture.pcm "tap_in" }}
"#,
        d = dir.display()
    );
    std::fs::write(dir.join(".asoundrc"), conf).unwrap();
    std::env::set_var("HOME", dir);
}

fn raw(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn file_plugin_frames_in_and_robot_speech_out() {
    let dir = tempfile::tempdir().unwrap();
    asoundrc(dir.path());
    // One second of a ramp: every sample tells where it came from.
    let input: Vec<i16> = (0..8000).map(|i| (i % 30_000) as i16 + 1).collect();
    std::fs::write(dir.path().join("in.raw"), raw(&input)).unwrap();

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
    let playout = handset.playout();
    assert_eq!(playout.push(&[1234; 4000]), 4000);
    let deadline = Instant::now() + Duration::from_secs(20);
    while playout.is_talking() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it through the playback ring and the device buffer.
    std::thread::sleep(Duration::from_millis(500));
    let stats = handset.stats();
    handset.stop();
    assert_eq!((stats.capture_rate, stats.playback_rate), (8000, 8000));
    assert_eq!(stats.device_losses, 0, "{stats:?}");

    let out = std::fs::read(dir.path().join("out.raw")).unwrap();
    let out: Vec<i16> = out
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
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
