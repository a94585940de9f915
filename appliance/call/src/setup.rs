//! Finds the installed models through the manifest and opens the engines a
//! call needs, so the binary, the benchmarks and the tests start them alike.
//!
//! Every model is located through the cache before anything loads, so a
//! missing or corrupt file stops start-up with the model's name, its path and
//! the `voiceblock models fetch` hint.

use std::path::PathBuf;

use thiserror::Error;
use vb_models::{Manifest, ModelError, ModelStore};
use vb_stt::{SttError, WhisperConfig, WhisperTranscriber};
use vb_tts::{
    Espeak, EspeakOptions, EspeakVoice, FestivalVoice, Synthesizer, Tts, TtsConfig, TtsError,
};

/// The Piper voice the box ships (English).
pub const SHIPPED_VOICE: &str = "piper-en_US-joe-medium";

/// Why the engines could not be opened.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The name is not in the manifest.
    #[error("unknown model {name:?}; the manifest has: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Names the manifest has, comma-separated.
        known: String,
    },
    /// The model is missing or corrupt in the cache.
    #[error("model {name}")]
    Model {
        /// Manifest name.
        name: String,
        /// What is wrong with the file.
        source: ModelError,
    },
    /// No espeak-ng data directory was found.
    #[error("espeak-ng data not found: install the espeak-ng-data package or set VOICEBLOCK_ESPEAK_DATA to the directory holding espeak-ng-data")]
    EspeakData,
    /// whisper could not load the model.
    #[error("loading speech model {name}")]
    Stt {
        /// Manifest name.
        name: String,
        /// whisper's error.
        source: SttError,
    },
    /// The TTS engine could not start.
    #[error("starting speech synthesis")]
    Tts(#[from] TtsError),
}

/// The speech model used when none is named: whisper base in q8_0 (the
/// same words as f16 on the project's tests, less memory, faster).
pub const DEFAULT_STT_MODEL: &str = "whisper-base-q8_0";

/// The model cache with the built-in manifest.
#[derive(Debug, Clone)]
pub struct Models {
    /// The manifest (built in).
    pub manifest: Manifest,
    /// The cache.
    pub store: ModelStore,
}

impl Models {
    /// The built-in manifest over `dir`, or the default cache
    /// ($VOICEBLOCK_MODELS, else ~/.cache/voiceblock/models).
    pub fn open(dir: Option<PathBuf>) -> Self {
        let root = dir.unwrap_or_else(ModelStore::default_root);
        Models {
            manifest: Manifest::builtin(),
            store: ModelStore::new(root),
        }
    }

    /// The speech model to load: `chosen` when one is named, else
    /// [`DEFAULT_STT_MODEL`]; where that is not installed but the model it
    /// is made from is (an image that ships only whisper.cpp's f16 base),
    /// that one, with a warning saying how to install the default.
    pub fn stt_model(&self, chosen: Option<&str>) -> String {
        if let Some(name) = chosen {
            return name.to_owned();
        }
        let from = self
            .manifest
            .get(DEFAULT_STT_MODEL)
            .and_then(|e| e.derive.as_ref())
            .map(|d| d.from.as_str());
        match (self.path(DEFAULT_STT_MODEL), from) {
            (Err(missing), Some(from)) if self.path(from).is_ok() => {
                tracing::warn!(
                    "{missing:#}; using {from} (`voiceblock models fetch --only {DEFAULT_STT_MODEL}` makes the default from it, with no download)"
                );
                from.to_owned()
            }
            _ => DEFAULT_STT_MODEL.to_owned(),
        }
    }

    /// Path of an installed model, checked against the manifest.
    pub fn path(&self, name: &str) -> Result<PathBuf, SetupError> {
        if self.manifest.get(name).is_none() {
            let known: Vec<&str> = self
                .manifest
                .models
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            return Err(SetupError::UnknownModel {
                name: name.to_string(),
                known: known.join(", "),
            });
        }
        self.store
            .locate(&self.manifest, name)
            .map_err(|source| SetupError::Model {
                name: name.to_string(),
                source,
            })
    }

    /// Loads a whisper model by manifest name.
    pub fn transcriber(
        &self,
        name: &str,
        threads: usize,
    ) -> Result<WhisperTranscriber, SetupError> {
        let path = self.path(name)?;
        let config = WhisperConfig {
            threads: threads.max(1),
            ..WhisperConfig::default()
        };
        WhisperTranscriber::load(&path, config).map_err(|source| SetupError::Stt {
            name: name.to_string(),
            source,
        })
    }

    /// The TTS engine: Piper voices from the cache, onnxruntime for this
    /// machine's architecture, espeak-ng data for phonemes and the fallback.
    pub fn tts(&self) -> Result<Tts, SetupError> {
        let runtime = self.path(&format!("onnxruntime-{}", std::env::consts::ARCH))?;
        // The shipped voice must be intact before the voices directory is scanned.
        self.path(SHIPPED_VOICE)?;
        let config = TtsConfig::new(self.store.root().to_path_buf(), runtime, espeak_data_dir()?);
        Ok(Tts::new(config)?)
    }

    /// The demo caller's voice for `language` ("en", "ru"), distinct from
    /// the robot's: Festival's Russian voice where it is installed (whisper
    /// recognises espeak-ng's Russian poorly: word error rates above 1.0
    /// measured with whisper base), espeak-ng otherwise.
    pub fn caller_voice(&self, language: &str) -> Result<Box<dyn Synthesizer + Send>, SetupError> {
        if language == "ru" {
            if let Ok(voice) = FestivalVoice::russian() {
                return Ok(Box::new(voice));
            }
            tracing::warn!("festival's Russian voice (festvox-ru) is not installed: the demo caller speaks with espeak-ng, which whisper recognises poorly");
        }
        Ok(Box::new(self.espeak_voice(language)?))
    }

    /// An espeak-ng voice for `language` ("en", "ru").
    pub fn espeak_voice(&self, language: &str) -> Result<EspeakVoice, SetupError> {
        let espeak = Espeak::init(&espeak_data_dir()?)?;
        Ok(EspeakVoice::new(
            &espeak,
            &vb_tts::select::espeak_voice_for(language),
            EspeakOptions::default(),
        )?)
    }
}

/// The espeak-ng data directory: $VOICEBLOCK_ESPEAK_DATA, else the system's.
pub fn espeak_data_dir() -> Result<PathBuf, SetupError> {
    match std::env::var_os("VOICEBLOCK_ESPEAK_DATA") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => vb_tts::espeak::find_system_data().ok_or(SetupError::EspeakData),
    }
}
