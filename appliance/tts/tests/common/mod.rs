//! Model paths for the tests and examples, from the environment with the
//! layout vb-models installs as the default:
//!
//! - `VOICEBLOCK_MODELS` (default `~/.cache/voiceblock/models`): the voices
//!   directory, holding `en_US-joe-medium.onnx` + `.onnx.json`, and
//!   `onnxruntime/<arch>/libonnxruntime.so.1.31.1`;
//! - `VOICEBLOCK_ONNXRUNTIME`: overrides the onnxruntime library;
//! - `VOICEBLOCK_ESPEAK_DATA`: the directory containing `espeak-ng-data`
//!   (default: the system's, e.g. Debian's `espeak-ng-data` package).
//!
//! Missing files fail the test with the path and the fix: these tests run the
//! real engines, and CI fetches the models first.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vb_tts::TtsConfig;

pub const VOICE: &str = "en_US-joe-medium";

pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VOICEBLOCK_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/voiceblock/models")
}

pub fn onnxruntime() -> PathBuf {
    if let Some(lib) = std::env::var_os("VOICEBLOCK_ONNXRUNTIME") {
        return PathBuf::from(lib);
    }
    models_dir()
        .join("onnxruntime")
        .join(std::env::consts::ARCH)
        .join("libonnxruntime.so.1.31.1")
}

pub fn espeak_data() -> PathBuf {
    if let Some(dir) = std::env::var_os("VOICEBLOCK_ESPEAK_DATA") {
        return PathBuf::from(dir);
    }
    vb_tts::espeak::find_system_data().unwrap_or_else(|| {
        panic!(
            "no espeak-ng-data in {:?}: install Debian's espeak-ng-data or set VOICEBLOCK_ESPEAK_DATA",
            vb_tts::espeak::SYSTEM_DATA_DIRS
        )
    })
}

pub fn voice_model() -> PathBuf {
    models_dir().join(format!("{VOICE}.onnx"))
}

pub fn voice_config() -> PathBuf {
    models_dir().join(format!("{VOICE}.onnx.json"))
}

fn require(path: &Path) {
    assert!(
        path.is_file(),
        "{} is missing: run the model fetch (vb-models) first, or set VOICEBLOCK_MODELS",
        path.display()
    );
}

/// The default config over the installed models, checking they are there.
pub fn config() -> TtsConfig {
    require(&voice_model());
    require(&voice_config());
    require(&onnxruntime());
    TtsConfig::new(models_dir(), onnxruntime(), espeak_data())
}
