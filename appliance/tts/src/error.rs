//! The crate's error type: every failure names the file, voice or limit
//! involved, so a misconfigured box says what to fix.

use std::path::PathBuf;

/// Everything that can go wrong loading voices or synthesizing speech.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// A voice model (`.onnx`) file does not exist.
    #[error("voice model {path} does not exist")]
    ModelMissing {
        /// The missing model file.
        path: PathBuf,
    },
    /// onnxruntime could not load a voice model (not ONNX, truncated, wrong opset).
    #[error("voice model {path} could not be loaded (corrupt or not an ONNX model)")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// onnxruntime's reason.
        #[source]
        source: ort::Error,
    },
    /// A voice's `.onnx.json` config does not exist.
    #[error(
        "voice config {path} does not exist (a Piper voice needs its .onnx.json beside the .onnx)"
    )]
    VoiceConfigMissing {
        /// The missing config file.
        path: PathBuf,
    },
    /// A voice's config could not be read.
    #[error("voice config {path} could not be read")]
    VoiceConfigRead {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A voice's config is not valid Piper JSON.
    #[error("voice config {path} is not a valid Piper voice config")]
    VoiceConfigInvalid {
        /// The config file.
        path: PathBuf,
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
    /// A voice config field has a value this crate cannot use.
    #[error("voice config {path}: {field} = {value:?} is not usable")]
    VoiceConfigValue {
        /// The config file.
        path: PathBuf,
        /// The JSON field ("audio.sample_rate").
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// The voices directory could not be listed.
    #[error("voices directory {path} could not be read")]
    VoicesDirUnreadable {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The onnxruntime shared library does not exist.
    #[error("onnxruntime library {path} does not exist")]
    OnnxRuntimeMissing {
        /// The missing library.
        path: PathBuf,
    },
    /// The onnxruntime shared library exists but could not be loaded.
    #[error("onnxruntime library {path} could not be loaded: {reason}")]
    OnnxRuntimeLoad {
        /// The library.
        path: PathBuf,
        /// The loader's reason (not a shared library, wrong architecture,
        /// too old, missing symbols), from the dynamic loader or `ort`.
        reason: String,
    },
    /// onnxruntime is process-global and was already loaded from another file.
    #[error(
        "onnxruntime is already loaded from {active} in this process; cannot switch to {requested}"
    )]
    OnnxRuntimeConflict {
        /// The library already loaded.
        active: PathBuf,
        /// The library asked for now.
        requested: PathBuf,
    },
    /// An onnxruntime session option was refused.
    #[error("onnxruntime refused session option {option}")]
    SessionOption {
        /// The option being set.
        option: &'static str,
        /// onnxruntime's reason.
        #[source]
        source: ort::Error,
    },
    /// The espeak-ng data directory lacks `espeak-ng-data/phontab`.
    #[error("espeak-ng data not found under {path} (expected {path}/espeak-ng-data/phontab)")]
    EspeakDataMissing {
        /// The directory that was checked.
        path: PathBuf,
    },
    /// espeak-ng refused to initialise from its data directory.
    #[error("espeak-ng failed to initialise from {path}: {message}")]
    EspeakInit {
        /// The data directory.
        path: PathBuf,
        /// espeak's message.
        message: String,
    },
    /// espeak-ng is process-global and was already initialised from other data.
    #[error("espeak-ng is already initialised from {active} in this process; cannot switch to {requested}")]
    EspeakDataConflict {
        /// The data directory in use.
        active: PathBuf,
        /// The data directory asked for now.
        requested: PathBuf,
    },
    /// espeak-ng has no voice by this name in its data.
    #[error("espeak-ng voice {voice:?} is not available (espeak error code {code})")]
    EspeakVoiceUnavailable {
        /// The voice name.
        voice: String,
        /// espeak's error code.
        code: i32,
    },
    /// espeak-ng failed while synthesizing.
    #[error("espeak-ng synthesis failed with voice {voice:?} (espeak error code {code})")]
    EspeakSynth {
        /// The voice name.
        voice: String,
        /// espeak's error code.
        code: i32,
    },
    /// Text could not be converted to phonemes.
    #[error("phonemisation failed with espeak voice {voice:?}")]
    Phonemize {
        /// The espeak voice used.
        voice: String,
        /// espeak-rs's reason.
        #[source]
        source: espeak_rs::ESpeakError,
    },
    /// The Piper model failed at inference time.
    #[error("Piper voice {voice} failed to synthesize")]
    Inference {
        /// The voice name.
        voice: String,
        /// piper-rs's reason.
        #[source]
        source: piper_rs::PiperError,
    },
    /// Festival's `text2wave` is not installed.
    #[error("festival voice {voice}: {program} not found (install the festival package and the voice, e.g. festvox-ru)")]
    FestivalMissing {
        /// The program looked for.
        program: String,
        /// Festival voice asked for.
        voice: String,
    },
    /// Festival ran but did not produce audio.
    #[error("festival voice {voice} failed: {reason}")]
    FestivalFailed {
        /// Festival voice.
        voice: String,
        /// Exit status, timeout or unreadable output, with festival's stderr.
        reason: String,
    },
    /// There was nothing to say.
    #[error("text to synthesize is empty")]
    EmptyText,
    /// The text is longer than the configured limit.
    #[error("text is {chars} characters, over the limit max_text_chars = {limit}")]
    TextTooLong {
        /// Length of the text, in characters.
        chars: usize,
        /// The limit (`TtsConfig::max_text_chars`).
        limit: usize,
    },
    /// Text contains a NUL character, which the C engine cannot take.
    #[error("text contains a NUL character")]
    NulInText,
    /// No Piper voice matches the language and the espeak fallback is off.
    #[error("no voice for language {language:?} (no Piper voice in {voices_dir} and the espeak fallback is disabled)")]
    NoVoice {
        /// The language asked for.
        language: String,
        /// Where Piper voices were looked for.
        voices_dir: PathBuf,
    },
    /// Resampling the synthesized audio to the output rate failed.
    #[error("resampling {from} Hz to {to} Hz failed")]
    Resample {
        /// The voice's rate.
        from: u32,
        /// The requested output rate.
        to: u32,
        /// vb-audio's reason.
        #[source]
        source: vb_audio::AudioError,
    },
}
