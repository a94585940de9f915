//! [`PiperVoice`]: a Piper (VITS) voice run by onnxruntime through piper-rs,
//! phonemised by the shared espeak-ng engine.

use std::path::{Path, PathBuf};

use ort::session::Session;
use serde::Deserialize;
use vb_audio::Pcm;

use crate::error::TtsError;
use crate::espeak::Espeak;
use crate::runtime::OnnxRuntime;
use crate::Synthesizer;

/// How a Piper voice runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperOptions {
    /// onnxruntime intra-op threads. The box has 4 cores and whisper wants
    /// them during recognition; TTS runs while the caller listens, so 2 keeps
    /// the first sentence fast while leaving whisper and the call loop room.
    pub intra_threads: usize,
    /// Speaker of a multi-speaker voice (ignored by single-speaker voices).
    pub speaker_id: Option<i64>,
    /// Overrides the voice's `length_scale` (above 1 speaks slower).
    pub length_scale: Option<f32>,
}

impl Default for PiperOptions {
    fn default() -> Self {
        Self {
            intra_threads: 2,
            speaker_id: None,
            length_scale: None,
        }
    }
}

/// What this crate reads from a voice's `.onnx.json` beyond what piper-rs needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceInfo {
    /// Voice name: the model file name without `.onnx` ("en_US-joe-medium").
    pub name: String,
    /// The model file.
    pub model: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// `language.code` ("en_US"), when the config has one.
    pub language_code: Option<String>,
    /// `espeak.voice` ("en-us"): the phonemiser voice.
    pub espeak_voice: String,
    /// `audio.sample_rate` in Hz.
    pub sample_rate: u32,
}

#[derive(Deserialize)]
struct RawInfo {
    audio: RawAudio,
    espeak: RawEspeak,
    #[serde(default)]
    language: Option<RawLanguage>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
struct RawLanguage {
    code: String,
}

/// The config path Piper expects beside a model: `<model>.json`.
pub fn config_path_for(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Reads and checks a voice config, returning the parsed piper-rs config and
/// this crate's summary of it.
fn read_config(
    model: &Path,
    config: &Path,
) -> Result<(piper_rs::ModelConfig, VoiceInfo), TtsError> {
    if !config.is_file() {
        return Err(TtsError::VoiceConfigMissing {
            path: config.to_path_buf(),
        });
    }
    let bytes = std::fs::read(config).map_err(|source| TtsError::VoiceConfigRead {
        path: config.to_path_buf(),
        source,
    })?;
    let invalid = |source| TtsError::VoiceConfigInvalid {
        path: config.to_path_buf(),
        source,
    };
    let raw: RawInfo = serde_json::from_slice(&bytes).map_err(invalid)?;
    let model_config: piper_rs::ModelConfig = serde_json::from_slice(&bytes).map_err(invalid)?;
    if !(4000..=96_000).contains(&raw.audio.sample_rate) {
        return Err(TtsError::VoiceConfigValue {
            path: config.to_path_buf(),
            field: "audio.sample_rate",
            value: raw.audio.sample_rate.to_string(),
        });
    }
    if raw.espeak.voice.trim().is_empty() {
        return Err(TtsError::VoiceConfigValue {
            path: config.to_path_buf(),
            field: "espeak.voice",
            value: raw.espeak.voice,
        });
    }
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".onnx").to_string())
        .unwrap_or_default();
    let info = VoiceInfo {
        name,
        model: model.to_path_buf(),
        config: config.to_path_buf(),
        language_code: raw.language.map(|l| l.code),
        espeak_voice: raw.espeak.voice,
        sample_rate: raw.audio.sample_rate,
    };
    Ok((model_config, info))
}

/// Reads a voice's config without loading its model (for voice discovery).
pub fn read_voice_info(model: &Path, config: &Path) -> Result<VoiceInfo, TtsError> {
    read_config(model, config).map(|(_, info)| info)
}

/// A loaded Piper voice.
pub struct PiperVoice {
    piper: piper_rs::Piper,
    info: VoiceInfo,
    espeak: Espeak,
    options: PiperOptions,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("info", &self.info)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PiperVoice {
    /// Loads `model` (`.onnx`) and `config` (`.onnx.json`). Takes about a
    /// second for a medium voice: do it at startup, not on a caller's turn.
    pub fn load(
        model: &Path,
        config: &Path,
        _runtime: &OnnxRuntime,
        espeak: &Espeak,
        options: PiperOptions,
    ) -> Result<Self, TtsError> {
        if !model.is_file() {
            return Err(TtsError::ModelMissing {
                path: model.to_path_buf(),
            });
        }
        let (model_config, info) = read_config(model, config)?;
        // Fail at load, not on the first caller, if espeak lacks the voice's
        // phonemiser language (empty text: only selects the voice).
        espeak.phonemize(&info.espeak_voice, "")?;
        let session = build_session(model, &options)?;
        tracing::info!(voice = %info.name, threads = options.intra_threads, "Piper voice loaded");
        Ok(Self {
            piper: piper_rs::Piper::from_session(session, model_config),
            info,
            espeak: espeak.clone(),
            options,
        })
    }

    /// What the voice's config says about it.
    pub fn info(&self) -> &VoiceInfo {
        &self.info
    }
}

/// Builds the onnxruntime session with the thread settings chosen on purpose:
/// `intra_threads` for the convolutions, one inter-op thread (the graph is a
/// chain), and no spin-waiting, which would burn the cores whisper and the
/// call loop need while the voice idles between sentences.
fn build_session(model: &Path, options: &PiperOptions) -> Result<Session, TtsError> {
    let option = |option: &'static str| {
        move |e: ort::Error<ort::session::builder::SessionBuilder>| TtsError::SessionOption {
            option,
            source: e.into(),
        }
    };
    let mut builder = Session::builder()
        .map_err(|source| TtsError::SessionOption {
            option: "create session builder",
            source,
        })?
        .with_intra_threads(options.intra_threads.max(1))
        .map_err(option("intra_threads"))?
        .with_inter_threads(1)
        .map_err(option("inter_threads"))?
        .with_intra_op_spinning(false)
        .map_err(option("intra_op_spinning"))?
        .with_inter_op_spinning(false)
        .map_err(option("inter_op_spinning"))?;
    builder
        .commit_from_file(model)
        .map_err(|source| TtsError::ModelLoad {
            path: model.to_path_buf(),
            source,
        })
}

impl Synthesizer for PiperVoice {
    fn synthesize(&mut self, text: &str) -> Result<Pcm, TtsError> {
        let rate = self.info.sample_rate;
        let mut out = Vec::new();
        // One inference per sentence espeak finds, as Piper itself does:
        // the model was trained on single sentences.
        for phonemes in self.espeak.phonemize(&self.info.espeak_voice, text)? {
            // Punctuation-only input phonemises to punctuation: nothing to
            // say, and the model would produce a click.
            if !phonemes.chars().any(char::is_alphabetic) {
                continue;
            }
            let (samples, _) = self
                .piper
                .create(
                    &phonemes,
                    true,
                    self.options.speaker_id,
                    self.options.length_scale,
                    None,
                    None,
                )
                .map_err(|source| TtsError::Inference {
                    voice: self.info.name.clone(),
                    source,
                })?;
            // VITS output occasionally overshoots full scale; clip rather
            // than let the i16/G.711 conversion wrap.
            out.extend(samples.into_iter().map(|s| s.clamp(-1.0, 1.0)));
        }
        Ok(Pcm::new(rate, out))
    }

    fn sample_rate(&self) -> u32 {
        self.info.sample_rate
    }

    fn name(&self) -> &str {
        &self.info.name
    }
}
