//! Bad input through the real binary: each case must fail with a clear
//! message naming the file and the problem, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

fn voiceblock(args: &[&str], models_dir: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voiceblock"));
    cmd.args(args);
    if let Some(dir) = models_dir {
        cmd.arg("--models-dir").arg(dir);
    }
    let out = cmd.output().expect("run voiceblock");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "voiceblock panicked: {text}");
    (out.status.success(), text)
}

fn write_wav(path: &Path, channels: u16, rate: u32, samples: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for i in 0..samples * channels as usize {
        w.write_sample(((i % 100) as i16 - 50) * 100)
            .expect("sample");
    }
    w.finalize().expect("finalize");
}

fn assert_fails(args: &[&str], models_dir: Option<&Path>, needles: &[&str]) {
    let (ok, text) = voiceblock(args, models_dir);
    assert!(!ok, "expected failure for {args:?}, got success: {text}");
    for n in needles {
        assert!(
            text.to_lowercase().contains(&n.to_lowercase()),
            "{args:?}: message should mention {n:?}: {text}"
        );
    }
}

#[test]
fn transcribe_rejects_bad_audio_files_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| -> PathBuf { dir.path().join(name) };

    std::fs::write(p("notes.wav"), "this is a text file, not audio\n").expect("write");
    let f = p("notes.wav");
    assert_fails(
        &["transcribe", f.to_str().unwrap()],
        None,
        &["notes.wav", "not a wav"],
    );

    write_wav(&p("stereo.wav"), 2, 16_000, 16_000);
    let f = p("stereo.wav");
    assert_fails(
        &["transcribe", f.to_str().unwrap()],
        None,
        &["stereo.wav", "2 channels"],
    );

    write_wav(&p("odd-rate.wav"), 1, 11_025, 11_025);
    let f = p("odd-rate.wav");
    assert_fails(
        &["transcribe", f.to_str().unwrap()],
        None,
        &["odd-rate.wav", "11025"],
    );

    write_wav(&p("empty.wav"), 1, 16_000, 0);
    let f = p("empty.wav");
    assert_fails(
        &["transcribe", f.to_str().unwrap()],
        None,
        &["empty.wav", "empty"],
    );

    write_wav(&p("whole.wav"), 1, 16_000, 16_000);
    let bytes = std::fs::read(p("whole.wav")).expect("read");
    std::fs::write(p("truncated.wav"), &bytes[..bytes.len() / 2]).expect("write");
    let f = p("truncated.wav");
    assert_fails(
        &["transcribe", f.to_str().unwrap()],
        None,
        &["truncated.wav", "truncated"],
    );

    let f = p("missing.wav");
    assert_fails(&["transcribe", f.to_str().unwrap()], None, &["missing.wav"]);
}

#[test]
fn a_missing_model_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("speech.wav");
    write_wav(&wav, 1, 16_000, 16_000);
    assert_fails(
        &[
            "transcribe",
            wav.to_str().unwrap(),
            "--model",
            "whisper-tiny.en",
        ],
        Some(empty.path()),
        &["ggml-tiny.en.bin", "models fetch"],
    );
    assert_fails(
        &[
            "transcribe",
            wav.to_str().unwrap(),
            "--model",
            "whisper-huge",
        ],
        None,
        &["unknown model", "whisper-huge"],
    );
}

#[test]
fn a_corrupt_model_is_refused_by_its_sha256() {
    let real = vb_models::ModelStore::default_root();
    let good = real.join("ggml-tiny.en.bin");
    assert!(
        good.is_file(),
        "{} missing: run scripts/setup",
        good.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(&good).expect("read model");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55; // same size, one byte flipped: only the hash can tell
    std::fs::write(dir.path().join("ggml-tiny.en.bin"), bytes).expect("write");
    let wav = dir.path().join("speech.wav");
    write_wav(&wav, 1, 16_000, 16_000);
    assert_fails(
        &[
            "transcribe",
            wav.to_str().unwrap(),
            "--model",
            "whisper-tiny.en",
        ],
        Some(dir.path()),
        &["ggml-tiny.en.bin", "sha256"],
    );
}

#[test]
fn a_broken_robot_folder_is_named_with_its_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let robot = dir.path().join("broken-robot");
    std::fs::create_dir(&robot).expect("mkdir");
    std::fs::write(
        robot.join("robot.toml"),
        "name = \"broken\"\nlanguage = \"fr\"\n",
    )
    .expect("write");
    assert_fails(
        &["robots", "check", robot.to_str().unwrap()],
        None,
        &["robot.toml", "language"],
    );
    std::fs::write(robot.join("robot.toml"), "name = \"broken\n").expect("write");
    assert_fails(
        &["robots", "check", robot.to_str().unwrap()],
        None,
        &["robot.toml:1:"],
    );
    let nowhere = dir.path().join("no-such-robot");
    assert_fails(
        &["converse", "--demo", "--robot", nowhere.to_str().unwrap()],
        None,
        &["no-such-robot"],
    );
}

#[test]
fn converse_without_callers_explains_itself() {
    assert_fails(&["converse"], None, &["--caller", "--demo"]);
}

#[test]
fn say_refuses_empty_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("x.wav");
    assert_fails(
        &["say", "  ...  ", "--out", out.to_str().unwrap()],
        None,
        &["text"],
    );
    assert!(!out.exists());
}

#[test]
fn built_in_robots_are_listed_and_check_clean() {
    let (ok, text) = voiceblock(&["robots", "list"], None);
    assert!(ok, "{text}");
    assert!(
        text.contains("reception-en") && text.contains("reception-ru"),
        "{text}"
    );
    let robots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots");
    for name in ["reception-en", "reception-ru"] {
        let (ok, text) = voiceblock(
            &["robots", "check", robots.join(name).to_str().unwrap()],
            None,
        );
        assert!(ok, "{name}: {text}");
    }
}
