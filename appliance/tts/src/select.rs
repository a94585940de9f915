//! Choosing a voice for a language: a Piper voice from the voices directory
//! when one matches, else espeak-ng's voice for the language.
//!
//! An operator adds a language by dropping `xx_YY-name-quality.onnx` and its
//! `.onnx.json` into the directory; the config's `language.code` (or, for
//! older voices, its `espeak.voice`) says which language it speaks.

use std::path::{Path, PathBuf};

use crate::error::TtsError;
use crate::piper::{config_path_for, read_voice_info, VoiceInfo};

/// What [`VoiceSelector::choose`] picked for a language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoiceChoice {
    /// A Piper voice from the voices directory.
    Piper(VoiceInfo),
    /// espeak-ng's voice of this name (no Piper voice matched).
    Espeak(String),
}

/// The voices found in a directory, ready to be matched to languages.
#[derive(Debug, Clone)]
pub struct VoiceSelector {
    dir: PathBuf,
    voices: Vec<VoiceInfo>,
    rejected: Vec<(PathBuf, String)>,
}

/// Normalises a language tag: "ru-RU", "ru_ru", "RU" -> ("ru_ru", "ru").
fn normalise(tag: &str) -> (String, String) {
    let full = tag.trim().to_lowercase().replace('-', "_");
    let primary = full.split('_').next().unwrap_or_default().to_string();
    (full, primary)
}

/// espeak-ng's voice name for a language tag ("en" -> "en-us", "ru_RU" -> "ru").
pub fn espeak_voice_for(language: &str) -> String {
    let (full, primary) = normalise(language);
    match full.as_str() {
        "en" | "en_us" => "en-us".to_string(),
        "en_gb" => "en-gb".to_string(),
        _ => primary,
    }
}

impl VoiceSelector {
    /// Scans `dir` for `*.onnx` files with a `.onnx.json` beside them. Models
    /// without a config (other ONNX models share the directory, e.g. the VAD)
    /// are skipped silently; configs that do not parse are recorded in
    /// [`VoiceSelector::rejected`] and logged, and do not stop the scan. A
    /// missing directory holds no voices.
    pub fn scan(dir: &Path) -> Result<Self, TtsError> {
        let mut voices = Vec::new();
        let mut rejected = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), "voices directory does not exist");
                return Ok(Self {
                    dir: dir.to_path_buf(),
                    voices,
                    rejected,
                });
            }
            Err(source) => {
                return Err(TtsError::VoicesDirUnreadable {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut models: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
            .collect();
        // Sorted so the same directory always yields the same choice.
        models.sort();
        for model in models {
            let config = config_path_for(&model);
            if !config.is_file() {
                continue;
            }
            match read_voice_info(&model, &config) {
                Ok(info) => voices.push(info),
                Err(e) => {
                    tracing::warn!(config = %config.display(), error = %e, "ignoring voice");
                    rejected.push((config, e.to_string()));
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            voices,
            rejected,
        })
    }

    /// The directory scanned.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The usable Piper voices found.
    pub fn voices(&self) -> &[VoiceInfo] {
        &self.voices
    }

    /// Voice configs that were found but could not be used, with the reason.
    pub fn rejected(&self) -> &[(PathBuf, String)] {
        &self.rejected
    }

    /// The Piper voice for `language` ("ru", "en-US", "en_US"): a voice whose
    /// `language.code` matches the whole tag first, then one matching the
    /// primary language, then by `espeak.voice` for configs without a
    /// language block.
    pub fn piper_voice(&self, language: &str) -> Option<&VoiceInfo> {
        let (full, primary) = normalise(language);
        let code = |v: &VoiceInfo| v.language_code.as_deref().map(normalise);
        let espeak = |v: &VoiceInfo| normalise(&v.espeak_voice);
        self.voices
            .iter()
            .find(|v| code(v).is_some_and(|(f, _)| f == full))
            .or_else(|| {
                self.voices
                    .iter()
                    .find(|v| code(v).is_some_and(|(_, p)| p == primary))
            })
            .or_else(|| {
                self.voices
                    .iter()
                    .filter(|v| v.language_code.is_none())
                    .find(|v| espeak(v).1 == primary)
            })
    }

    /// The voice to use for `language`: Piper when available, else espeak.
    pub fn choose(&self, language: &str) -> VoiceChoice {
        match self.piper_voice(language) {
            Some(info) => VoiceChoice::Piper(info.clone()),
            None => VoiceChoice::Espeak(espeak_voice_for(language)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_voice(dir: &Path, name: &str, json: &str) {
        std::fs::write(dir.join(format!("{name}.onnx")), b"not read by scan").unwrap();
        std::fs::write(dir.join(format!("{name}.onnx.json")), json).unwrap();
    }

    const JOE: &str = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
        "inference":{"noise_scale":0.667,"length_scale":1,"noise_w":0.8},
        "num_speakers":1,"speaker_id_map":{},"phoneme_id_map":{"_":[0]},
        "language":{"code":"en_US"}}"#;
    const IRINA: &str = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"ru"},
        "inference":{"noise_scale":0.667,"length_scale":1,"noise_w":0.8},
        "num_speakers":1,"speaker_id_map":{},"phoneme_id_map":{"_":[0]},
        "language":{"code":"ru_RU"}}"#;
    const OLD_GB: &str = r#"{"audio":{"sample_rate":16000},"espeak":{"voice":"en-gb"},
        "inference":{"noise_scale":0.667,"length_scale":1,"noise_w":0.8},
        "num_speakers":1,"speaker_id_map":{},"phoneme_id_map":{"_":[0]}}"#;

    #[test]
    fn matches_language_codes_and_falls_back_to_espeak() {
        let dir = tempfile::tempdir().unwrap();
        write_voice(dir.path(), "en_US-joe-medium", JOE);
        // Another ONNX model without a voice config: not a voice.
        std::fs::write(dir.path().join("silero_vad.onnx"), b"x").unwrap();
        let sel = VoiceSelector::scan(dir.path()).unwrap();
        assert_eq!(sel.voices().len(), 1);
        for tag in ["en", "en-US", "en_us", "EN"] {
            assert!(
                matches!(sel.choose(tag), VoiceChoice::Piper(ref v) if v.name == "en_US-joe-medium"),
                "{tag}"
            );
        }
        assert_eq!(sel.choose("ru"), VoiceChoice::Espeak("ru".into()));
        assert_eq!(sel.choose("ru-RU"), VoiceChoice::Espeak("ru".into()));
    }

    #[test]
    fn a_dropped_in_russian_voice_replaces_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        write_voice(dir.path(), "en_US-joe-medium", JOE);
        write_voice(dir.path(), "ru_RU-irina-medium", IRINA);
        let sel = VoiceSelector::scan(dir.path()).unwrap();
        match sel.choose("ru") {
            VoiceChoice::Piper(v) => {
                assert_eq!(v.name, "ru_RU-irina-medium");
                assert_eq!(v.espeak_voice, "ru");
            }
            other => panic!("expected the Piper voice, got {other:?}"),
        }
    }

    #[test]
    fn prefers_exact_region_then_primary_then_espeak_voice() {
        let dir = tempfile::tempdir().unwrap();
        write_voice(dir.path(), "a_voice", OLD_GB);
        write_voice(dir.path(), "b_joe", JOE);
        let sel = VoiceSelector::scan(dir.path()).unwrap();
        assert_eq!(sel.piper_voice("en-US").unwrap().name, "b_joe");
        // A code match on the primary language beats an espeak-voice match.
        assert_eq!(sel.piper_voice("en-GB").unwrap().name, "b_joe");

        let dir = tempfile::tempdir().unwrap();
        write_voice(dir.path(), "old_gb", OLD_GB);
        let sel = VoiceSelector::scan(dir.path()).unwrap();
        assert_eq!(sel.piper_voice("en").unwrap().sample_rate, 16000);
    }

    #[test]
    fn records_broken_configs_without_failing_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        write_voice(dir.path(), "broken", "{ not json");
        write_voice(dir.path(), "en_US-joe-medium", JOE);
        let sel = VoiceSelector::scan(dir.path()).unwrap();
        assert_eq!(sel.voices().len(), 1);
        assert_eq!(sel.rejected().len(), 1);
        assert!(sel.rejected()[0].0.ends_with("broken.onnx.json"));
    }

    #[test]
    fn a_missing_directory_has_no_voices() {
        let sel = VoiceSelector::scan(Path::new("/nonexistent/voices")).unwrap();
        assert!(sel.voices().is_empty());
        assert_eq!(sel.choose("en"), VoiceChoice::Espeak("en-us".into()));
    }
}
