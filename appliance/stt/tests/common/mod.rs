//! What the vb-stt integration tests share: where the models are, and the
//! test configuration.

use std::path::PathBuf;

use vb_stt::WhisperConfig;

fn models_dir() -> PathBuf {
    match std::env::var_os("VOICEBLOCK_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/voiceblock/models")
        }
    }
}

/// The installed model file `name`; fails, naming the path, when missing.
pub fn model(name: &str) -> PathBuf {
    let path = models_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run the model fetch step or set VOICEBLOCK_MODELS",
        path.display()
    );
    path
}

/// Correctness tests share the CI box with other builds: the deadline (a
/// production guard against stalls) is lifted so load cannot fail them.
pub fn test_config() -> WhisperConfig {
    WhisperConfig {
        budget: vb_stt::window::Budget {
            base_deadline_ms: 120_000,
            ..Default::default()
        },
        ..WhisperConfig::default()
    }
}
