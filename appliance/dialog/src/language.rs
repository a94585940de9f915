//! The languages a robot speaks and listens in, and the dialog modes a
//! robot.toml may name.

use serde::Serialize;
use std::fmt;

/// The language a robot speaks: selects its phrases and how phone numbers are
/// read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    En,
    /// Russian.
    Ru,
}

impl Language {
    /// The code used in robot.toml (`"en"`, `"ru"`).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ru => "ru",
        }
    }

    /// Parses a robot.toml language code.
    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "en" => Some(Language::En),
            "ru" => Some(Language::Ru),
            _ => None,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The language the speech-to-text engine is told to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SttLanguage {
    /// Transcribe as English.
    En,
    /// Transcribe as Russian.
    Ru,
    /// Let the engine detect the language per utterance.
    Auto,
}

impl SttLanguage {
    /// The code used in robot.toml (`"en"`, `"ru"`, `"auto"`).
    pub fn code(self) -> &'static str {
        match self {
            SttLanguage::En => "en",
            SttLanguage::Ru => "ru",
            SttLanguage::Auto => "auto",
        }
    }

    /// Parses a robot.toml `stt_language` value.
    pub fn from_code(code: &str) -> Option<SttLanguage> {
        match code {
            "en" => Some(SttLanguage::En),
            "ru" => Some(SttLanguage::Ru),
            "auto" => Some(SttLanguage::Auto),
            _ => None,
        }
    }
}

impl From<Language> for SttLanguage {
    fn from(lang: Language) -> SttLanguage {
        match lang {
            Language::En => SttLanguage::En,
            Language::Ru => SttLanguage::Ru,
        }
    }
}

/// How a robot produces its replies.
///
/// Only [`Mode::Script`] is implemented in this crate; `llm` and
/// `llm_script` are run by `vb_llm::Responder`, which falls back to the
/// script dialog whenever the LLM is unreachable or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The offline state machine in [`crate::Dialog`].
    Script,
    /// A streaming LLM reply, spoken sentence by sentence (needs `prompt.md`).
    Llm,
    /// The LLM only picks the next scripted phrase (needs `prompt.md`).
    LlmScript,
}

impl Mode {
    /// The code used in robot.toml.
    pub fn code(self) -> &'static str {
        match self {
            Mode::Script => "script",
            Mode::Llm => "llm",
            Mode::LlmScript => "llm_script",
        }
    }

    /// Parses a robot.toml `mode` value.
    pub fn from_code(code: &str) -> Option<Mode> {
        match code {
            "script" => Some(Mode::Script),
            "llm" => Some(Mode::Llm),
            "llm_script" => Some(Mode::LlmScript),
            _ => None,
        }
    }

    /// Whether this mode talks to a language model (and so needs a prompt).
    pub fn uses_llm(self) -> bool {
        !matches!(self, Mode::Script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for l in [Language::En, Language::Ru] {
            assert_eq!(Language::from_code(l.code()), Some(l));
        }
        for l in [SttLanguage::En, SttLanguage::Ru, SttLanguage::Auto] {
            assert_eq!(SttLanguage::from_code(l.code()), Some(l));
        }
        for m in [Mode::Script, Mode::Llm, Mode::LlmScript] {
            assert_eq!(Mode::from_code(m.code()), Some(m));
        }
        assert_eq!(Language::from_code("EN"), None);
        assert_eq!(Mode::from_code("pipeline"), None);
    }
}
