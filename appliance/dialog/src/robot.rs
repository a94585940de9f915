//! Robots as folders: `robots/<name>/robot.toml` (+ optional `prompt.md` and
//! `audio/<phrase-id>.wav`), parsed into a raw struct and then validated into
//! a [`Robot`] with every problem reported at once.
//!
//! The two built-in reception robots are compiled in, so a box without the
//! robots/ folder still answers the phone.

use crate::error::{Issue, RobotError};
use crate::language::{Language, Mode, SttLanguage};
use crate::phrase::{Field, Phrase, PhraseId, TemplateError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The file that makes a folder a robot.
pub const ROBOT_FILE: &str = "robot.toml";
/// The optional system prompt for the LLM modes.
pub const PROMPT_FILE: &str = "prompt.md";

/// Largest `max_turns` accepted: a call that needs more is stuck, and the
/// limit is what guarantees every call ends.
pub const MAX_TURNS_LIMIT: u32 = 200;
/// Largest value accepted for each of `[limits]`.
pub const MAX_LIMIT: u32 = 10;

const BUILTINS: [(&str, &str, &str); 2] = [
    (
        "reception-en",
        include_str!("../../../robots/reception-en/robot.toml"),
        include_str!("../../../robots/reception-en/prompt.md"),
    ),
    (
        "reception-ru",
        include_str!("../../../robots/reception-ru/robot.toml"),
        include_str!("../../../robots/reception-ru/prompt.md"),
    ),
];
const BUILTIN_NAMES: [&str; 2] = [BUILTINS[0].0, BUILTINS[1].0];

/// Which optional lead fields the script asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ask {
    /// Ask for dates (bookings, appointments).
    pub dates: bool,
    /// Ask for the caller's city.
    pub city: bool,
}

/// Per-call limits of the script dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Silence prompts before the robot says goodbye and hangs up.
    pub silence_prompts: u32,
    /// Misunderstood answers to one question before the robot moves on.
    pub retries: u32,
    /// Times the caller may reject the read-back before the robot ends the
    /// call with the lead unconfirmed.
    pub corrections: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            silence_prompts: 1,
            retries: 2,
            corrections: 2,
        }
    }
}

/// The validated settings of a robot (everything but its phrases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotConfig {
    /// How replies are produced; see [`Mode`] for what the LLM modes do today.
    pub mode: Mode,
    /// TTS voice name, when the robot picks one.
    pub voice: Option<String>,
    /// The language the STT engine is told to expect.
    pub stt_language: SttLanguage,
    /// E.164 calling code (digits only, e.g. `"1"`, `"7"`) for numbers the
    /// caller says without one.
    pub default_country: String,
    /// Caller events (utterances and silences) after which the call ends.
    pub max_turns: u32,
    /// Optional fields to ask for.
    pub ask: Ask,
    /// Retry and silence limits.
    pub limits: Limits,
    /// The outbound queue's calling window (in the robot's time zone) and
    /// retry rule, from `[outbound]`.
    pub outbound: vb_outbound::Policy,
}

/// A loaded, validated robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Robot {
    /// The robot's name (`name` in robot.toml).
    pub name: String,
    /// The language it speaks.
    pub language: Language,
    /// Its settings.
    pub config: RobotConfig,
    /// The folder it was loaded from; `None` for built-ins and robots parsed
    /// from text.
    pub dir: Option<PathBuf>,
    /// The system prompt from prompt.md, for the LLM modes.
    pub prompt: Option<String>,
    phrases: Vec<Phrase>,
}

impl Robot {
    /// Loads and validates `dir/robot.toml`, `dir/prompt.md` if present, and
    /// checks that every declared WAV exists.
    pub fn load(dir: &Path) -> Result<Robot, RobotError> {
        let path = dir.join(ROBOT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                RobotError::NotFound { path: path.clone() }
            } else {
                RobotError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let prompt_path = dir.join(PROMPT_FILE);
        let prompt = match std::fs::read_to_string(&prompt_path) {
            Ok(p) => Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(RobotError::Read {
                    path: prompt_path,
                    source,
                })
            }
        };
        build(&text, &path, Some(dir), prompt)
    }

    /// Parses robot.toml text that has no folder (e.g. pushed over the
    /// network); `label` names it in errors. Such a robot cannot declare audio.
    pub fn from_toml(text: &str, label: &Path) -> Result<Robot, RobotError> {
        build(text, label, None, None)
    }

    /// A robot compiled into the binary, by name (see [`Robot::builtin_names`]).
    pub fn builtin(name: &str) -> Option<Robot> {
        let (_, toml, prompt) = BUILTINS.iter().find(|(n, _, _)| *n == name)?;
        // The built-ins are checked by this crate's tests, so an error here
        // cannot happen in a released build; None keeps it panic-free anyway.
        build(
            toml,
            &PathBuf::from(format!("builtin:{name}")),
            None,
            Some((*prompt).to_owned()),
        )
        .ok()
    }

    /// The names [`Robot::builtin`] accepts.
    pub fn builtin_names() -> &'static [&'static str] {
        &BUILTIN_NAMES
    }

    /// A phrase by its robot.toml key (`"greeting"`, `"ask_phone"`, ...).
    pub fn phrase(&self, id: &str) -> Option<&Phrase> {
        PhraseId::parse(id).map(|id| self.phrase_by_id(id))
    }

    /// A phrase by id; every robot has all of them.
    pub fn phrase_by_id(&self, id: PhraseId) -> &Phrase {
        &self.phrases[id.index()]
    }

    /// All phrases, in robot.toml order.
    pub fn phrases(&self) -> &[Phrase] {
        &self.phrases
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRobot {
    name: Option<String>,
    language: Option<String>,
    mode: Option<String>,
    voice: Option<String>,
    stt_language: Option<String>,
    default_country: Option<String>,
    max_turns: Option<i64>,
    #[serde(default)]
    ask: RawAsk,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    phrases: RawPhrases,
    #[serde(default)]
    audio: BTreeMap<String, String>,
    outbound: Option<vb_outbound::RawPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsk {
    #[serde(default)]
    dates: bool,
    #[serde(default)]
    city: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    silence_prompts: Option<i64>,
    retries: Option<i64>,
    corrections: Option<i64>,
}

/// One field per [`PhraseId`], so a misspelt phrase key is a parse error with
/// a line number rather than a silently ignored entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhrases {
    greeting: Option<String>,
    ask_need: Option<String>,
    ask_name: Option<String>,
    ask_phone: Option<String>,
    ask_dates: Option<String>,
    ask_city: Option<String>,
    confirm: Option<String>,
    confirm_retry: Option<String>,
    goodbye: Option<String>,
    not_interested: Option<String>,
    call_later: Option<String>,
    who_is_this: Option<String>,
    did_not_catch: Option<String>,
    silence_prompt: Option<String>,
    max_turns_goodbye: Option<String>,
}

impl RawPhrases {
    fn get(&self, id: PhraseId) -> Option<&str> {
        let v = match id {
            PhraseId::Greeting => &self.greeting,
            PhraseId::AskNeed => &self.ask_need,
            PhraseId::AskName => &self.ask_name,
            PhraseId::AskPhone => &self.ask_phone,
            PhraseId::AskDates => &self.ask_dates,
            PhraseId::AskCity => &self.ask_city,
            PhraseId::Confirm => &self.confirm,
            PhraseId::ConfirmRetry => &self.confirm_retry,
            PhraseId::Goodbye => &self.goodbye,
            PhraseId::NotInterested => &self.not_interested,
            PhraseId::CallLater => &self.call_later,
            PhraseId::WhoIsThis => &self.who_is_this,
            PhraseId::DidNotCatch => &self.did_not_catch,
            PhraseId::SilencePrompt => &self.silence_prompt,
            PhraseId::MaxTurnsGoodbye => &self.max_turns_goodbye,
        };
        v.as_deref()
    }
}

fn parse_error(path: &Path, text: &str, err: toml::de::Error) -> RobotError {
    let (line, column) = match err.span() {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    };
    RobotError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        message: err.message().trim().to_owned(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn build(
    text: &str,
    path: &Path,
    dir: Option<&Path>,
    prompt: Option<String>,
) -> Result<Robot, RobotError> {
    let raw: RawRobot = toml::from_str(text).map_err(|e| parse_error(path, text, e))?;
    validate(raw, dir, prompt).map_err(|issues| RobotError::Invalid {
        path: path.to_path_buf(),
        issues,
    })
}

fn range(
    issues: &mut Vec<Issue>,
    key: &str,
    value: Option<i64>,
    default: u32,
    min: u32,
    max: u32,
) -> u32 {
    match value {
        None => default,
        Some(v) if v >= i64::from(min) && v <= i64::from(max) => v as u32,
        Some(v) => {
            issues.push(Issue::OutOfRange {
                key: key.to_owned(),
                value: v,
                min: min.into(),
                max: max.into(),
            });
            default
        }
    }
}

/// Turns the raw file into a robot, collecting every problem instead of
/// stopping at the first, so an integrator fixes a robot in one pass.
fn validate(
    raw: RawRobot,
    dir: Option<&Path>,
    prompt: Option<String>,
) -> Result<Robot, Vec<Issue>> {
    let mut issues = Vec::new();

    let name = match raw.name {
        None => {
            issues.push(Issue::Missing { key: "name".into() });
            String::new()
        }
        Some(n) if n.trim().is_empty() => {
            issues.push(Issue::Empty { key: "name".into() });
            n
        }
        Some(n) => {
            let ok = n.len() <= 64
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                issues.push(Issue::BadName {
                    key: "name".into(),
                    value: n.clone(),
                });
            }
            n
        }
    };

    let language = match raw.language.as_deref() {
        None => {
            issues.push(Issue::Missing {
                key: "language".into(),
            });
            None
        }
        Some(code) => {
            let l = Language::from_code(code);
            if l.is_none() {
                issues.push(Issue::NotOneOf {
                    key: "language".into(),
                    value: code.into(),
                    expected: "\"en\" or \"ru\"",
                });
            }
            l
        }
    };

    let mode = match raw.mode.as_deref() {
        None => Mode::Script,
        Some(code) => Mode::from_code(code).unwrap_or_else(|| {
            issues.push(Issue::NotOneOf {
                key: "mode".into(),
                value: code.into(),
                expected: "\"script\", \"llm\" or \"llm_script\"",
            });
            Mode::Script
        }),
    };
    let has_prompt = prompt.as_deref().is_some_and(|p| !p.trim().is_empty());
    if mode.uses_llm() && !has_prompt {
        issues.push(Issue::MissingPrompt {
            key: "mode".into(),
            mode: mode.code(),
        });
    }

    if raw.voice.as_deref().is_some_and(|v| v.trim().is_empty()) {
        issues.push(Issue::Empty {
            key: "voice".into(),
        });
    }

    let stt_language = match raw.stt_language.as_deref() {
        None => language.map_or(SttLanguage::Auto, SttLanguage::from),
        Some(code) => SttLanguage::from_code(code).unwrap_or_else(|| {
            issues.push(Issue::NotOneOf {
                key: "stt_language".into(),
                value: code.into(),
                expected: "\"en\", \"ru\" or \"auto\"",
            });
            SttLanguage::Auto
        }),
    };

    let default_country = match raw.default_country {
        None => {
            issues.push(Issue::Missing {
                key: "default_country".into(),
            });
            String::new()
        }
        Some(cc) => {
            let ok = (1..=3).contains(&cc.len())
                && cc.bytes().all(|b| b.is_ascii_digit())
                && !cc.starts_with('0');
            if !ok {
                issues.push(Issue::BadCountryCode {
                    key: "default_country".into(),
                    value: cc.clone(),
                });
            }
            cc
        }
    };

    let max_turns = range(
        &mut issues,
        "max_turns",
        raw.max_turns,
        20,
        1,
        MAX_TURNS_LIMIT,
    );
    let defaults = Limits::default();
    let limits = Limits {
        silence_prompts: range(
            &mut issues,
            "limits.silence_prompts",
            raw.limits.silence_prompts,
            defaults.silence_prompts,
            0,
            MAX_LIMIT,
        ),
        retries: range(
            &mut issues,
            "limits.retries",
            raw.limits.retries,
            defaults.retries,
            0,
            MAX_LIMIT,
        ),
        corrections: range(
            &mut issues,
            "limits.corrections",
            raw.limits.corrections,
            defaults.corrections,
            0,
            MAX_LIMIT,
        ),
    };
    let ask = Ask {
        dates: raw.ask.dates,
        city: raw.ask.city,
    };
    let outbound = match vb_outbound::Policy::from_raw(&raw.outbound.unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            issues.extend(e.0.into_iter().map(|message| Issue::Outbound { message }));
            vb_outbound::Policy::default()
        }
    };

    let mut audio: BTreeMap<PhraseId, PathBuf> = BTreeMap::new();
    for (id, rel) in &raw.audio {
        let key = format!("audio.{id}");
        let Some(pid) = PhraseId::parse(id) else {
            issues.push(Issue::UnknownPhrase { key });
            continue;
        };
        let rel_path = Path::new(rel);
        let inside = !rel.is_empty()
            && rel_path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            && rel_path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if !inside {
            issues.push(Issue::BadAudioPath {
                key,
                path: rel.clone(),
            });
            continue;
        }
        let Some(dir) = dir else {
            issues.push(Issue::AudioWithoutFolder { key });
            continue;
        };
        let full = dir.join(rel_path);
        if !full.is_file() {
            issues.push(Issue::MissingAudio { key, path: full });
            continue;
        }
        audio.insert(pid, full);
    }

    let mut phrases = Vec::with_capacity(PhraseId::ALL.len());
    for id in PhraseId::ALL {
        let key = format!("phrases.{id}");
        let text = match raw.phrases.get(id) {
            None => {
                issues.push(Issue::Missing { key });
                continue;
            }
            Some(t) if t.trim().is_empty() => {
                issues.push(Issue::Empty { key });
                continue;
            }
            Some(t) => t.trim(),
        };
        let phrase = match Phrase::parse(id, text, audio.get(&id).cloned()) {
            Ok(p) => p,
            Err(TemplateError::Unknown(placeholder)) => {
                issues.push(Issue::UnknownPlaceholder { key, placeholder });
                continue;
            }
            Err(TemplateError::Unclosed | TemplateError::StrayClose) => {
                issues.push(Issue::UnbalancedBrace { key });
                continue;
            }
        };
        for field in phrase.placeholders() {
            let not_asked = match field {
                Field::Dates if !ask.dates => Some("dates"),
                Field::City if !ask.city => Some("city"),
                _ => None,
            };
            if let Some(placeholder) = not_asked {
                issues.push(Issue::PlaceholderNotAsked {
                    key: key.clone(),
                    placeholder,
                });
            }
        }
        if phrase.audio.is_some() && phrase.has_placeholders() {
            issues.push(Issue::AudioWithPlaceholders {
                key: format!("audio.{id}"),
            });
        }
        phrases.push(phrase);
    }

    match language {
        Some(language) if issues.is_empty() => Ok(Robot {
            name,
            language,
            config: RobotConfig {
                mode,
                voice: raw.voice,
                stt_language,
                default_country,
                max_turns,
                ask,
                limits,
                outbound,
            },
            dir: dir.map(Path::to_path_buf),
            prompt,
            phrases,
        }),
        _ => Err(issues),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_are_complete() {
        for name in Robot::builtin_names() {
            let text = BUILTINS.iter().find(|b| b.0 == *name).unwrap().1;
            let robot = build(text, Path::new(name), None, Some("p".into()))
                .unwrap_or_else(|e| panic!("builtin {name}: {e}"));
            assert_eq!(&robot.name, name);
            assert_eq!(robot.phrases().len(), PhraseId::ALL.len());
            assert!(Robot::builtin(name).is_some());
        }
        assert_eq!(
            Robot::builtin("reception-en").unwrap().language,
            Language::En
        );
        assert_eq!(
            Robot::builtin("reception-ru").unwrap().language,
            Language::Ru
        );
        assert!(Robot::builtin("nope").is_none());
    }

    #[test]
    fn phrase_lookup_by_key() {
        let r = Robot::builtin("reception-en").unwrap();
        assert_eq!(r.phrase("ask_phone").unwrap().id, PhraseId::AskPhone);
        assert!(r.phrase("ask_fax").is_none());
        assert!(r.phrase("confirm").unwrap().has_placeholders());
        assert!(!r.phrase("goodbye").unwrap().has_placeholders());
    }

    #[test]
    fn line_col_counts_chars() {
        let t = "a = 1\nбв = x\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        // "бв" is 4 bytes, 2 characters.
        assert_eq!(line_col(t, 6 + 4 + 1), (2, 4));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn outbound_table_is_validated_with_the_rest() {
        let mut text =
            String::from("name = \"x\"\nlanguage = \"ru\"\ndefault_country = \"7\"\n[phrases]\n");
        for id in PhraseId::ALL {
            text.push_str(&format!("{id} = \"t\"\n"));
        }
        let good = format!(
            "{text}[outbound]\ntimezone = \"Europe/Moscow\"\nwindow = \"10:00-19:00\"\ndays = [\"mon-fri\"]\nmax_attempts = 5\n"
        );
        let r = Robot::from_toml(&good, Path::new("x.toml")).unwrap();
        assert_eq!(r.config.outbound.timezone, "Europe/Moscow");
        assert_eq!(r.config.outbound.retry.max_attempts, 5);
        assert_eq!(
            (
                r.config.outbound.window.start_min,
                r.config.outbound.window.end_min
            ),
            (600, 1140)
        );
        let bad = format!(
            "{text}max_turns = 0\n[outbound]\ntimezone = \"Moscow\"\nwindow = \"19:00-10:00\"\n"
        );
        // max_turns sits after [phrases] here, so it is a phrase key: put the
        // bad top-level key first instead.
        let bad = bad
            .replacen("name = \"x\"\n", "name = \"x\"\nmax_turns = 0\n", 1)
            .replace("\"t\"\nmax_turns = 0\n", "\"t\"\n");
        let err = Robot::from_toml(&bad, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        for needle in ["max_turns", "\"Moscow\" is not an IANA", "19:00-10:00"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        let unknown = format!("{text}[outbound]\nwindows = \"x\"\n");
        assert!(Robot::from_toml(&unknown, Path::new("x.toml")).is_err());
    }

    #[test]
    fn minimal_robot_gets_defaults() {
        let mut text =
            String::from("name = \"x\"\nlanguage = \"ru\"\ndefault_country = \"7\"\n[phrases]\n");
        for id in PhraseId::ALL {
            text.push_str(&format!("{id} = \"t\"\n"));
        }
        let r = Robot::from_toml(&text, Path::new("x.toml")).unwrap();
        assert_eq!(r.config.mode, Mode::Script);
        assert_eq!(r.config.stt_language, SttLanguage::Ru);
        assert_eq!(r.config.max_turns, 20);
        assert_eq!(r.config.limits, Limits::default());
        assert_eq!(r.config.ask, Ask::default());
        assert!(r.dir.is_none() && r.prompt.is_none());
    }
}
