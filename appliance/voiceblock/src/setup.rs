//! Finds the installed models and opens the engines the commands need.
//!
//! Every model is located through the manifest and the cache, so a missing or
//! corrupt file stops the command with the model's name, its path and the
//! `voiceblock models fetch` hint, before any audio work starts.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use vb_models::{Manifest, ModelStore};
use vb_stt::{WhisperConfig, WhisperTranscriber};
use vb_tts::{Tts, TtsConfig};

/// Where the models are and how to open them.
pub struct Models {
    /// The manifest (built in).
    pub manifest: Manifest,
    /// The cache.
    pub store: ModelStore,
}

impl Models {
    /// The built-in manifest over `dir` or the default cache.
    pub fn open(dir: Option<PathBuf>) -> Self {
        let root = dir.unwrap_or_else(ModelStore::default_root);
        Models {
            manifest: Manifest::builtin(),
            store: ModelStore::new(root),
        }
    }

    /// Path of an installed model, checked against the manifest.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        if self.manifest.get(name).is_none() {
            let known: Vec<&str> = self.manifest.models.iter().map(|m| m.name.as_str()).collect();
            return Err(anyhow!("unknown model {name:?}; the manifest has: {}", known.join(", ")));
        }
        Ok(self.store.locate(&self.manifest, name)?)
    }

    /// Loads a whisper model by manifest name.
    pub fn transcriber(&self, name: &str, threads: usize) -> Result<WhisperTranscriber> {
        let path = self.path(name)?;
        let config = WhisperConfig {
            threads: threads.max(1) as i32,
            ..WhisperConfig::default()
        };
        WhisperTranscriber::load(&path, config).with_context(|| format!("loading speech model {name}"))
    }

    /// The TTS engine: Piper voices from the cache, onnxruntime for this
    /// machine's architecture, espeak-ng data for phonemes and the fallback.
    pub fn tts(&self) -> Result<Tts> {
        let runtime = self.path(&format!("onnxruntime-{}", std::env::consts::ARCH))?;
        let espeak_data = match std::env::var_os("VOICEBLOCK_ESPEAK_DATA") {
            Some(dir) => PathBuf::from(dir),
            None => vb_tts::espeak::find_system_data().ok_or_else(|| {
                anyhow!("espeak-ng data not found: install the espeak-ng-data package or set VOICEBLOCK_ESPEAK_DATA")
            })?,
        };
        // Make sure the voice the box ships is installed and intact before
        // the voices directory is scanned.
        self.path("piper-en_US-joe-medium")?;
        let config = TtsConfig::new(self.store.root().to_path_buf(), runtime, espeak_data);
        Tts::new(config).context("starting speech synthesis")
    }
}
