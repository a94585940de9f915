//! Per-robot LLM settings: `robots/<name>/llm.toml` (endpoint, model, key,
//! sampling, time budgets, fillers), parsed into a raw struct and validated
//! with every problem reported at once.

use crate::breaker::BreakerConfig;
use crate::error::{ConfigError, ConfigIssue};
use crate::memory::MemoryBudget;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vb_dialog::Language;

/// The file in a robot folder that configures its LLM.
pub const LLM_FILE: &str = "llm.toml";
/// The longest silence the caller may hear while the robot thinks, in ms.
pub const DEAD_AIR_MS: u64 = 1500;

/// Where the API key comes from (never from robot.toml itself, which is
/// pushed around the fleet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKey {
    /// No key (local servers).
    None,
    /// An environment variable's value.
    Env(String),
    /// A secrets file's first line.
    File(PathBuf),
}

/// Time budgets of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// No first sentence by then: say a filler.
    pub first_token: Duration,
    /// Nothing new to say for this long after the last thing said (filler
    /// included): give up on the model and let the script answer.
    pub stall: Duration,
    /// Longest whole reply.
    pub reply: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(1000),
            first_token: Duration::from_millis(800),
            stall: Duration::from_millis(1000),
            reply: Duration::from_secs(20),
        }
    }
}

/// A validated `llm.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// The API root, e.g. `https://api.openai.com/v1` or
    /// `http://192.168.1.10:11434/v1`; requests go to `<base>/chat/completions`.
    pub base_url: String,
    /// The model name the endpoint expects.
    pub model: String,
    /// Where the key comes from.
    pub api_key: ApiKey,
    /// Sampling temperature.
    pub temperature: f32,
    /// Reply length cap in tokens.
    pub max_tokens: u32,
    /// The endpoint supports function calling; `false` uses the
    /// structured-output fallback (tool lines in the text).
    pub tools: bool,
    /// Extra CA certificates (PEM) for LAN servers with their own CA;
    /// verification stays on.
    pub ca_file: Option<PathBuf>,
    /// Time budgets.
    pub timeouts: Timeouts,
    /// Conversation memory budget.
    pub memory: MemoryBudget,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Short phrases said when the model is slow to start.
    pub fillers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    base_url: Option<String>,
    model: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    temperature: Option<f64>,
    max_tokens: Option<i64>,
    tools: Option<bool>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    memory: RawMemory,
    #[serde(default)]
    breaker: RawBreaker,
    fillers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect_ms: Option<i64>,
    first_token_ms: Option<i64>,
    stall_ms: Option<i64>,
    reply_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    max_messages: Option<i64>,
    max_chars: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failures_to_open: Option<i64>,
    open_for_s: Option<i64>,
}

fn num(
    issues: &mut Vec<ConfigIssue>,
    key: &'static str,
    v: Option<f64>,
    default: f64,
    min: f64,
    max: f64,
) -> f64 {
    match v {
        None => default,
        Some(v) if (min..=max).contains(&v) => v,
        Some(value) => {
            issues.push(ConfigIssue::OutOfRange {
                key,
                value,
                min,
                max,
            });
            default
        }
    }
}

fn int(
    issues: &mut Vec<ConfigIssue>,
    key: &'static str,
    v: Option<i64>,
    default: u64,
    min: u64,
    max: u64,
) -> u64 {
    num(
        issues,
        key,
        v.map(|v| v as f64),
        default as f64,
        min as f64,
        max as f64,
    ) as u64
}

/// The fillers a robot says when it has none of its own.
pub fn default_fillers(language: Language) -> Vec<String> {
    match language {
        Language::En => vec!["One moment.".into(), "Let me see.".into()],
        Language::Ru => vec!["Секунду.".into(), "Сейчас посмотрю.".into()],
    }
}

impl LlmConfig {
    /// Loads `dir/llm.toml`; `Ok(None)` when the robot has none. Relative
    /// `api_key_file` and `ca_file` are taken from `dir`.
    pub fn load(dir: &Path, language: Language) -> Result<Option<LlmConfig>, ConfigError> {
        let path = dir.join(LLM_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut cfg = LlmConfig::from_toml(&text, &path, language)?;
        if let ApiKey::File(p) = &mut cfg.api_key {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(p) = &mut cfg.ca_file {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        Ok(Some(cfg))
    }

    /// Parses `llm.toml` text; `label` names it in errors.
    pub fn from_toml(
        text: &str,
        label: &Path,
        language: Language,
    ) -> Result<LlmConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: label.to_path_buf(),
            message: e.to_string().trim().to_owned(),
        })?;
        let mut issues = Vec::new();
        let base_url = match raw.base_url {
            None => {
                issues.push(ConfigIssue::Missing { key: "base_url" });
                String::new()
            }
            Some(u) => {
                let ok = (u.starts_with("http://") || u.starts_with("https://"))
                    && u.split("://").nth(1).is_some_and(|h| !h.is_empty());
                if !ok {
                    issues.push(ConfigIssue::BadUrl { value: u.clone() });
                }
                u.trim_end_matches('/').to_owned()
            }
        };
        let model = raw.model.unwrap_or_else(|| {
            issues.push(ConfigIssue::Missing { key: "model" });
            String::new()
        });
        let api_key = match (raw.api_key_env, raw.api_key_file) {
            (Some(_), Some(_)) => {
                issues.push(ConfigIssue::TwoKeySources);
                ApiKey::None
            }
            (Some(v), None) => ApiKey::Env(v),
            (None, Some(p)) => ApiKey::File(p),
            (None, None) => ApiKey::None,
        };
        let temperature = num(&mut issues, "temperature", raw.temperature, 0.3, 0.0, 2.0) as f32;
        let max_tokens = int(&mut issues, "max_tokens", raw.max_tokens, 200, 1, 4096) as u32;
        let d = Timeouts::default();
        let ms = |d: Duration| d.as_millis() as u64;
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            connect: Duration::from_millis(int(
                &mut issues,
                "timeouts.connect_ms",
                t.connect_ms,
                ms(d.connect),
                50,
                30_000,
            )),
            first_token: Duration::from_millis(int(
                &mut issues,
                "timeouts.first_token_ms",
                t.first_token_ms,
                ms(d.first_token),
                50,
                60_000,
            )),
            stall: Duration::from_millis(int(
                &mut issues,
                "timeouts.stall_ms",
                t.stall_ms,
                ms(d.stall),
                50,
                60_000,
            )),
            reply: Duration::from_millis(int(
                &mut issues,
                "timeouts.reply_ms",
                t.reply_ms,
                ms(d.reply),
                1000,
                300_000,
            )),
        };
        for (key, v) in [
            ("timeouts.first_token_ms", timeouts.first_token),
            ("timeouts.stall_ms", timeouts.stall),
        ] {
            if ms(v) > DEAD_AIR_MS {
                issues.push(ConfigIssue::DeadAir {
                    key,
                    value: ms(v),
                    bound: DEAD_AIR_MS,
                });
            }
        }
        let dm = MemoryBudget::default();
        let memory = MemoryBudget {
            max_messages: int(
                &mut issues,
                "memory.max_messages",
                raw.memory.max_messages,
                dm.max_messages as u64,
                2,
                200,
            ) as usize,
            max_chars: int(
                &mut issues,
                "memory.max_chars",
                raw.memory.max_chars,
                dm.max_chars as u64,
                200,
                100_000,
            ) as usize,
        };
        let db = BreakerConfig::default();
        let breaker = BreakerConfig {
            failures_to_open: int(
                &mut issues,
                "breaker.failures_to_open",
                raw.breaker.failures_to_open,
                db.failures_to_open.into(),
                1,
                100,
            ) as u32,
            open_for: Duration::from_secs(int(
                &mut issues,
                "breaker.open_for_s",
                raw.breaker.open_for_s,
                db.open_for.as_secs(),
                1,
                3600,
            )),
            max_open_for: db.max_open_for,
        };
        let fillers = match raw.fillers {
            Some(f) => {
                let f: Vec<String> = f
                    .into_iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if f.is_empty() {
                    issues.push(ConfigIssue::Missing { key: "fillers" });
                }
                f
            }
            None => default_fillers(language),
        };
        if !issues.is_empty() {
            return Err(ConfigError::Invalid {
                path: label.to_path_buf(),
                issues,
            });
        }
        Ok(LlmConfig {
            base_url,
            model,
            api_key,
            temperature,
            max_tokens,
            tools: raw.tools.unwrap_or(true),
            ca_file: raw.ca_file,
            timeouts,
            memory,
            breaker,
            fillers,
        })
    }

    /// A config for a local server at `base_url` with defaults elsewhere.
    pub fn local(base_url: &str, model: &str, language: Language) -> LlmConfig {
        LlmConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key: ApiKey::None,
            temperature: 0.3,
            max_tokens: 200,
            tools: true,
            ca_file: None,
            timeouts: Timeouts::default(),
            memory: MemoryBudget::default(),
            breaker: BreakerConfig::default(),
            fillers: default_fillers(language),
        }
    }

    /// `<base_url>/chat/completions`.
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let c = LlmConfig::from_toml(
            r#"
base_url = "https://llm.lan:8443/v1/"
model = "qwen2.5"
api_key_env = "LLM_KEY"
temperature = 0.2
max_tokens = 150
tools = false
ca_file = "ca.pem"
fillers = ["Hm."]
[timeouts]
first_token_ms = 700
[memory]
max_messages = 10
[breaker]
open_for_s = 60
"#,
            Path::new("llm.toml"),
            Language::En,
        )
        .unwrap();
        assert_eq!(c.chat_url(), "https://llm.lan:8443/v1/chat/completions");
        assert_eq!(c.api_key, ApiKey::Env("LLM_KEY".into()));
        assert!(!c.tools);
        assert_eq!(c.timeouts.first_token, Duration::from_millis(700));
        assert_eq!(c.timeouts.stall, Duration::from_millis(1000));
        assert_eq!(c.memory.max_messages, 10);
        assert_eq!(c.breaker.open_for, Duration::from_secs(60));
        assert_eq!(c.fillers, vec!["Hm."]);
    }

    #[test]
    fn every_issue_at_once() {
        let e = LlmConfig::from_toml(
            "base_url = \"ftp://x\"\napi_key_env = \"A\"\napi_key_file = \"k\"\ntemperature = 5.0\n[timeouts]\nstall_ms = 3000\n",
            Path::new("llm.toml"),
            Language::Ru,
        )
        .unwrap_err();
        let ConfigError::Invalid { issues, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(issues.len(), 5, "{issues:?}");
        assert!(issues.contains(&ConfigIssue::DeadAir {
            key: "timeouts.stall_ms",
            value: 3000,
            bound: 1500
        }));
        let e =
            LlmConfig::from_toml("base_url = 1", Path::new("llm.toml"), Language::Ru).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
        let e = LlmConfig::from_toml("bogus = 1", Path::new("llm.toml"), Language::Ru).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn shipped_robot_files_are_valid() {
        for (name, lang) in [
            ("reception-en", Language::En),
            ("reception-ru", Language::Ru),
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../robots")
                .join(name);
            let c = LlmConfig::load(&dir, lang).unwrap().expect("llm.toml");
            assert_eq!(c.timeouts, Timeouts::default());
            assert_eq!(c.api_key, ApiKey::None);
            assert_eq!(c.fillers.len(), 2);
        }
    }

    #[test]
    fn load_resolves_relative_paths_and_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LlmConfig::load(dir.path(), Language::En).unwrap().is_none());
        std::fs::write(
            dir.path().join(LLM_FILE),
            "base_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\napi_key_file = \"secret.key\"\n",
        )
        .unwrap();
        let c = LlmConfig::load(dir.path(), Language::En).unwrap().unwrap();
        assert_eq!(c.api_key, ApiKey::File(dir.path().join("secret.key")));
        assert_eq!(c.fillers, default_fillers(Language::En));
    }
}
