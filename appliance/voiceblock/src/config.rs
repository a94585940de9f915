//! The box's configuration (`/etc/voiceblock/voiceblock.toml`) and its
//! secrets file, in two phases: serde reads a raw shape that rejects unknown
//! keys and fills defaults, then [`RawConfig::validate`] checks every field
//! and reports *all* problems at once, before the daemon says READY.
//!
//! ```text
//!  voiceblock.toml ──toml──► RawConfig ─┐
//!                                       ├─ validate() ─► Config  (or Invalid { every problem })
//!  secrets.toml (0600) ──toml──► Secrets ┘
//! ```
//!
//! Secrets (SIP and MQTT passwords, the API token) live in their own file so
//! the config can be shown, diffed and backed up without them.

// `voiceblock run` (the daemon) reads most of these fields; until it lands
// `provision` and `check` use only part of them.
#![allow(dead_code)]

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where the config lives on the box (also `$VOICEBLOCK_CONFIG`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/voiceblock/voiceblock.toml";
/// Environment variable overriding [`DEFAULT_CONFIG_PATH`].
pub const CONFIG_ENV: &str = "VOICEBLOCK_CONFIG";
/// Secrets file name, beside the config unless `secrets` says otherwise.
pub const DEFAULT_SECRETS_NAME: &str = "secrets.toml";
/// Largest config or secrets file read (a config is a few hundred bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Most concurrent calls: whisper and Piper share the box's 4 cores (2 here),
/// and each call's recognition takes two threads while it decodes.
pub const MAX_CALLS_LIMIT: u32 = 8;
/// Shortest API token accepted (generated tokens are 43 characters).
pub const MIN_TOKEN_LEN: usize = 32;

/// The config file as written, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Secrets file (default: `secrets.toml` beside the config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<PathBuf>,
    /// This box.
    pub device: DeviceSection,
    /// The SIP account the box answers on.
    pub sip: SipSection,
    /// Fleet sync (optional: a box works alone without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSection>,
    /// The local HTTP API.
    #[serde(default)]
    pub api: ApiSection,
    /// The LLM endpoint for robots in LLM mode (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSection>,
    /// The durable store.
    #[serde(default)]
    pub store: StoreSection,
    /// Robot folders.
    #[serde(default)]
    pub robots: RobotsSection,
    /// Call recording (off unless enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingSection>,
}

/// `[device]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// Fleet-wide id: MQTT username and topic segment, so `[A-Za-z0-9._-]`.
    pub id: String,
    /// ALSA device for the local handset (`hw:1,0`, `plughw:CARD=Headset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alsa_device: Option<String>,
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// Registrar `host[:port]` (default port 5060); none: accept direct calls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    /// Account user part.
    pub user: String,
    /// Account domain.
    pub domain: String,
    /// Local SIP address.
    #[serde(default = "default_sip_listen")]
    pub listen: String,
    /// Concurrent calls answered; more get 486 Busy Here.
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Ring this long (ms) before answering, so staff can pick up first.
    #[serde(default)]
    pub ring_ms: u64,
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// Broker `host:port`.
    pub broker: String,
    /// TLS to the broker (default on).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// CA bundle for the broker's certificate (default: the web PKI roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Username (default: the device id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// HTTP API address (loopback by default: put a proxy in front to expose it).
    #[serde(default = "default_api_listen")]
    pub listen: String,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: default_api_listen(),
        }
    }
}

/// `[llm]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSection {
    /// OpenAI-compatible base URL, e.g. `http://127.0.0.1:8081/v1`.
    pub url: String,
    /// Model name sent with each request (default: the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Per-request budget in milliseconds.
    #[serde(default = "default_llm_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The SQLite database (calls, leads, the MQTT outbox).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: default_store_path(),
        }
    }
}

/// `[robots]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotsSection {
    /// Folder of operator robots (`<dir>/<name>/robot.toml`).
    #[serde(default = "default_robots_dir")]
    pub dir: PathBuf,
    /// The robot that answers calls: a built-in name or a folder under `dir`.
    #[serde(default = "default_robot")]
    pub default: String,
}

impl Default for RobotsSection {
    fn default() -> Self {
        RobotsSection {
            dir: default_robots_dir(),
            default: default_robot(),
        }
    }
}

/// `[recording]`: the caller and the robot as a stereo WAV per call. Tell
/// callers: a robot that records should say so in its greeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSection {
    /// Record calls.
    #[serde(default)]
    pub enabled: bool,
    /// Where recordings go.
    #[serde(default = "default_recordings_dir")]
    pub dir: PathBuf,
    /// Recordings older than this many days are deleted.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    /// The most disk recordings take, MiB; the oldest go first.
    #[serde(default = "default_max_mib")]
    pub max_mib: u64,
}

/// Longest retention accepted, days.
pub const MAX_KEEP_DAYS: u32 = 3650;
/// Largest recordings budget accepted, MiB (1 TiB).
pub const MAX_RECORDING_MIB: u64 = 1 << 20;

fn default_recordings_dir() -> PathBuf {
    PathBuf::from("/var/lib/voiceblock/recordings")
}
fn default_keep_days() -> u32 {
    crate::recordings::DEFAULT_KEEP_DAYS
}
fn default_max_mib() -> u64 {
    crate::recordings::DEFAULT_MAX_MIB
}

fn default_sip_listen() -> String {
    "0.0.0.0:5060".into()
}
fn default_max_calls() -> u32 {
    2
}
fn default_true() -> bool {
    true
}
fn default_api_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_llm_timeout_ms() -> u64 {
    8000
}
fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/voiceblock/voiceblock.sqlite")
}
fn default_robots_dir() -> PathBuf {
    PathBuf::from("/var/lib/voiceblock/robots")
}
fn default_robot() -> String {
    "reception-ru".into()
}

/// The secrets file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// SIP digest password (needed with a registrar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_password: Option<String>,
    /// MQTT password (needed with `[mqtt]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_password: Option<String>,
    /// Bearer token for the HTTP API.
    pub api_token: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("Secrets")
            .field("sip_password", &set(&self.sip_password))
            .field("mqtt_password", &set(&self.mqtt_password))
            .field("api_token", &"<set>")
            .finish()
    }
}

/// A `host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed `http(s)://host[:port]/path` URL (enough for the LLM endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https`?
    pub tls: bool,
    /// Host and port (80/443 by default).
    pub endpoint: HostPort,
    /// Path without a trailing slash (`/v1`), possibly empty.
    pub path: String,
}

impl HttpUrl {
    /// The URL of `suffix` under this base (`/models` -> `.../v1/models`).
    pub fn join(&self, suffix: &str) -> String {
        format!(
            "{}://{}{}{}",
            if self.tls { "https" } else { "http" },
            self.endpoint,
            self.path,
            suffix
        )
    }
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The secrets file's path.
    pub secrets_path: PathBuf,
    /// `[device].id`.
    pub device_id: String,
    /// `[device].alsa_device`.
    pub alsa_device: Option<String>,
    /// The SIP account.
    pub sip: Sip,
    /// Fleet sync.
    pub mqtt: Option<Mqtt>,
    /// HTTP API address.
    pub api_listen: SocketAddr,
    /// LLM endpoint.
    pub llm: Option<Llm>,
    /// SQLite store.
    pub store_path: PathBuf,
    /// Operator robots folder.
    pub robots_dir: PathBuf,
    /// The answering robot.
    pub robot: String,
    /// Call recording and its retention, when enabled.
    pub recording: Option<crate::recordings::Retention>,
    /// Secrets.
    pub secrets: Secrets,
}

/// Validated `[sip]`.
#[derive(Debug, Clone)]
pub struct Sip {
    /// Registrar, if any.
    pub registrar: Option<HostPort>,
    /// User part.
    pub user: String,
    /// Domain.
    pub domain: String,
    /// Local address.
    pub listen: SocketAddr,
    /// Concurrent call limit.
    pub max_calls: u32,
    /// Ring before answering, ms.
    pub ring_ms: u64,
}

/// Validated `[mqtt]`.
#[derive(Debug, Clone)]
pub struct Mqtt {
    /// Broker.
    pub broker: HostPort,
    /// TLS on?
    pub tls: bool,
    /// CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Username.
    pub username: String,
}

/// Validated `[llm]`.
#[derive(Debug, Clone)]
pub struct Llm {
    /// Base URL.
    pub url: HttpUrl,
    /// Model name.
    pub model: Option<String>,
    /// Request budget.
    pub timeout: std::time::Duration,
}

/// One thing wrong in the config, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `sip.listen`.
    pub key: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Why the config cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{path}: {size} bytes, more than the {MAX_FILE_BYTES}-byte limit for a config file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A file is not valid TOML of the expected shape (unknown key, wrong type).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, key).
        source: Box<toml::de::Error>,
    },
    /// The config parsed but has invalid values.
    #[error("{path}: {} problem(s):{problems}", .problems.0.len())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// All of them.
        problems: Problems,
    },
}

/// Reads a small text file, refusing anything over [`MAX_FILE_BYTES`].
pub fn read_limited(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(text.len() as u64, |m| m.len());
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    Ok(text)
}

/// The config path from `$VOICEBLOCK_CONFIG` or the default.
pub fn default_path() -> PathBuf {
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), PathBuf::from)
}

impl RawConfig {
    /// Parses config text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        RawConfig::parse(&read_limited(path)?, path)
    }

    /// The secrets file this config points at, for a config read from `path`.
    pub fn secrets_path(&self, config_path: &Path) -> PathBuf {
        match &self.secrets {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => config_path.parent().unwrap_or(Path::new(".")).join(p),
            None => config_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(DEFAULT_SECRETS_NAME),
        }
    }

    /// Checks every field (and the secrets the config needs), collecting all
    /// problems; `path` names the config in the error.
    pub fn validate(&self, path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
        let mut v = Collector::default();

        let device_id = self.device.id.trim().to_owned();
        if device_id.is_empty() || device_id.len() > 64 {
            v.add("device.id", "must be 1 to 64 characters");
        } else if !device_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            v.add(
                "device.id",
                format!("{device_id:?}: only letters, digits, '.', '_' and '-' (it is an MQTT username and topic segment)"),
            );
        }
        if let Some(dev) = &self.device.alsa_device {
            if dev.trim().is_empty() {
                v.add(
                    "device.alsa_device",
                    "is empty: remove the key for no handset",
                );
            }
        }

        let registrar = self
            .sip
            .registrar
            .as_deref()
            .and_then(|r| v.host_port("sip.registrar", r, Some(5060)));
        if self.sip.user.is_empty()
            || self
                .sip
                .user
                .chars()
                .any(|c| c.is_whitespace() || c == '@' || c == ':' || c.is_control())
        {
            v.add(
                "sip.user",
                format!(
                    "{:?}: a non-empty SIP user part without spaces, '@' or ':'",
                    self.sip.user
                ),
            );
        }
        if !valid_host(&self.sip.domain) {
            v.add(
                "sip.domain",
                format!("{:?}: expected a host name or address", self.sip.domain),
            );
        }
        let sip_listen = v.socket_addr("sip.listen", &self.sip.listen);
        if self.sip.max_calls == 0 || self.sip.max_calls > MAX_CALLS_LIMIT {
            v.add(
                "sip.max_calls",
                format!("{}: must be 1 to {MAX_CALLS_LIMIT}", self.sip.max_calls),
            );
        }
        if self.sip.ring_ms > vb_sip::MAX_RING.as_millis() as u64 {
            v.add(
                "sip.ring_ms",
                format!(
                    "{}: at most {} ms",
                    self.sip.ring_ms,
                    vb_sip::MAX_RING.as_millis()
                ),
            );
        }
        if registrar.is_some() && secrets.sip_password.as_deref().is_none_or(str::is_empty) {
            v.add(
                "secrets.sip_password",
                "missing: a registrar needs the account's password in the secrets file",
            );
        }

        let mqtt = self.mqtt.as_ref().and_then(|m| {
            let broker = v.host_port("mqtt.broker", &m.broker, None);
            if let Some(ca) = &m.ca_file {
                if !m.tls {
                    v.add("mqtt.ca_file", "set but mqtt.tls is false");
                }
                if !ca.is_absolute() {
                    v.add(
                        "mqtt.ca_file",
                        format!("{}: must be an absolute path", ca.display()),
                    );
                }
            }
            let username = m.username.clone().unwrap_or_else(|| device_id.clone());
            if username.is_empty() {
                v.add("mqtt.username", "is empty");
            }
            if secrets.mqtt_password.as_deref().is_none_or(str::is_empty) {
                v.add(
                    "secrets.mqtt_password",
                    "missing: [mqtt] needs the broker password in the secrets file",
                );
            }
            Some(Mqtt {
                broker: broker?,
                tls: m.tls,
                ca_file: m.ca_file.clone(),
                username,
            })
        });

        let api_listen = v.socket_addr("api.listen", &self.api.listen);
        if secrets.api_token.len() < MIN_TOKEN_LEN {
            v.add(
                "secrets.api_token",
                format!("{} characters: at least {MIN_TOKEN_LEN} (`voiceblock provision` generates one)", secrets.api_token.len()),
            );
        }

        let llm = self.llm.as_ref().and_then(|l| {
            if !(100..=60_000).contains(&l.timeout_ms) {
                v.add(
                    "llm.timeout_ms",
                    format!("{}: must be 100 to 60000", l.timeout_ms),
                );
            }
            let url = match parse_http_url(&l.url) {
                Ok(u) => Some(u),
                Err(why) => {
                    v.add("llm.url", format!("{:?}: {why}", l.url));
                    None
                }
            };
            Some(Llm {
                url: url?,
                model: l.model.clone(),
                timeout: std::time::Duration::from_millis(l.timeout_ms),
            })
        });

        if self.store.path.as_os_str().is_empty() {
            v.add("store.path", "is empty");
        }
        if self.robots.dir.as_os_str().is_empty() {
            v.add("robots.dir", "is empty");
        }
        if self.robots.default.trim().is_empty() {
            v.add(
                "robots.default",
                "is empty: name a built-in robot or a folder under robots.dir",
            );
        }

        let recording = self.recording.as_ref().filter(|r| r.enabled).map(|r| {
            if !r.dir.is_absolute() {
                v.add(
                    "recording.dir",
                    format!("{}: must be an absolute path", r.dir.display()),
                );
            }
            if !(1..=MAX_KEEP_DAYS).contains(&r.keep_days) {
                v.add(
                    "recording.keep_days",
                    format!("{}: must be 1 to {MAX_KEEP_DAYS}", r.keep_days),
                );
            }
            if !(1..=MAX_RECORDING_MIB).contains(&r.max_mib) {
                v.add(
                    "recording.max_mib",
                    format!("{}: must be 1 to {MAX_RECORDING_MIB}", r.max_mib),
                );
            }
            crate::recordings::Retention {
                dir: r.dir.clone(),
                keep: std::time::Duration::from_secs(u64::from(r.keep_days) * 86_400),
                max_bytes: r.max_mib.saturating_mul(1 << 20),
            }
        });

        // Both addresses are Some exactly when no problem was recorded for them.
        let (Some(listen), Some(api_listen), true) =
            (sip_listen, api_listen, v.problems.is_empty())
        else {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: Problems(v.problems),
            });
        };
        Ok(Config {
            path: path.to_owned(),
            secrets_path: self.secrets_path(path),
            device_id,
            alsa_device: self.device.alsa_device.clone(),
            sip: Sip {
                registrar,
                user: self.sip.user.clone(),
                domain: self.sip.domain.clone(),
                listen,
                max_calls: self.sip.max_calls,
                ring_ms: self.sip.ring_ms,
            },
            mqtt,
            api_listen,
            llm,
            store_path: self.store.path.clone(),
            robots_dir: self.robots.dir.clone(),
            robot: self.robots.default.clone(),
            recording,
            secrets,
        })
    }
}

impl Secrets {
    /// Parses secrets text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &Path) -> Result<Secrets, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            source: Box::new(e),
        })
    }

    /// Reads and parses a secrets file.
    pub fn load(path: &Path) -> Result<Secrets, ConfigError> {
        Secrets::parse(&read_limited(path)?, path)
    }
}

impl Config {
    /// Reads, parses and validates the config and its secrets.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let raw = RawConfig::load(path)?;
        let secrets = Secrets::load(&raw.secrets_path(path))?;
        raw.validate(path, secrets)
    }

    /// The config in force: the last one the fleet pushed (`pushed`, TOML,
    /// written by [`validate_pushed`]'s caller) when there is one and it is
    /// still valid, else the provisioned file at `path`. A pushed config is
    /// read as if it stood at `path` (relative paths, the secrets file);
    /// when it no longer validates the provisioned one is used and the
    /// second value says why.
    pub fn load_in_force(
        path: &Path,
        pushed: &Path,
    ) -> Result<(Config, Option<String>), ConfigError> {
        let provisioned = RawConfig::load(path)?;
        let secrets_path = provisioned.secrets_path(path);
        if pushed.exists() {
            let tried = read_limited(pushed)
                .and_then(|text| RawConfig::parse(&text, pushed))
                .and_then(|raw| raw.validate(path, Secrets::load(&secrets_path)?));
            match tried {
                Ok(cfg) => return Ok((cfg, None)),
                Err(e) => {
                    let why = format!("the pushed config {} is not used: {e}", pushed.display());
                    let secrets = Secrets::load(&secrets_path)?;
                    return Ok((provisioned.validate(path, secrets)?, Some(why)));
                }
            }
        }
        let secrets = Secrets::load(&secrets_path)?;
        Ok((provisioned.validate(path, secrets)?, None))
    }
}

/// Checks a config pushed from the fleet (`config/desired`: the box
/// config's shape as JSON) as the daemon checks its file at start, with the
/// secrets in force and relative paths taken from the provisioned config's
/// folder (`in_force`), and returns it as TOML to store. Every problem is
/// listed; the secrets file's location cannot be pushed.
pub fn validate_pushed(config: &serde_json::Value, in_force: &Path) -> Result<String, Vec<String>> {
    let raw: RawConfig = serde_json::from_value(config.clone())
        .map_err(|e| vec![format!("not a box config ([device], [sip], ...): {e}")])?;
    if raw.secrets.is_some() {
        return Err(vec![
            "secrets: the secrets file's location cannot be pushed (it stays where it was provisioned)"
                .into(),
        ]);
    }
    let provisioned = RawConfig::load(in_force).map_err(|e| vec![e.to_string()])?;
    let secrets =
        Secrets::load(&provisioned.secrets_path(in_force)).map_err(|e| vec![e.to_string()])?;
    raw.validate(in_force, secrets).map_err(|e| match e {
        ConfigError::Invalid { problems, .. } => {
            problems.0.iter().map(ToString::to_string).collect()
        }
        other => vec![other.to_string()],
    })?;
    toml::to_string_pretty(&raw).map_err(|e| vec![format!("cannot write it as TOML: {e}")])
}

#[derive(Default)]
struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn socket_addr(&mut self, key: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.add(
                    key,
                    format!("{s:?}: expected IP:port, e.g. 0.0.0.0:5060 or [::]:5060"),
                );
                None
            }
        }
    }

    fn host_port(&mut self, key: &str, s: &str, default_port: Option<u16>) -> Option<HostPort> {
        match parse_host_port(s, default_port) {
            Ok(hp) => Some(hp),
            Err(why) => {
                self.add(key, format!("{s:?}: {why}"));
                None
            }
        }
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && (h.parse::<std::net::IpAddr>().is_ok()
            || h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}

/// `host:port`, `[v6]:port`, or `host` when a default port is given.
pub fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<HostPort, &'static str> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("unclosed '[' in an IPv6 address")?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err("expected ':port' after ']'"),
        }
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').ok_or("expected host:port")?;
        (h, Some(p))
    } else if s.contains(':') {
        return Err("put IPv6 addresses in brackets: [::1]:5060");
    } else {
        (s, None)
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err("port must be 1 to 65535"),
        },
        None => default_port.ok_or("expected host:port")?,
    };
    if !valid_host(host) {
        return Err("expected a host name or address");
    }
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

/// `http://host[:port][/path]` or `https://...`.
pub fn parse_http_url(s: &str) -> Result<HttpUrl, &'static str> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else {
        return Err("expected an http:// or https:// URL");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("credentials in the URL are not supported");
    }
    if path.contains(['?', '#', ' ']) {
        return Err("no query, fragment or spaces in the base URL");
    }
    let endpoint = parse_host_port(authority, Some(if tls { 443 } else { 80 }))?;
    Ok(HttpUrl {
        tls,
        endpoint,
        path: path.trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[device]
id = "vb-0001"

[sip]
registrar = "127.0.0.1:5060"
user = "reception"
domain = "example.com"

[mqtt]
broker = "broker.example.com:8883"
ca_file = "/etc/voiceblock/ca.pem"

[llm]
url = "http://127.0.0.1:8081/v1/"
"#;

    fn secrets() -> Secrets {
        Secrets {
            sip_password: Some("sip-secret".into()),
            mqtt_password: Some("mqtt-secret".into()),
            api_token: "t".repeat(43),
        }
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let raw = RawConfig::parse(GOOD, Path::new("good.toml")).unwrap();
        let c = raw
            .validate(Path::new("/etc/voiceblock/voiceblock.toml"), secrets())
            .unwrap();
        assert_eq!(c.sip.listen, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.sip.max_calls, 2);
        assert_eq!(c.api_listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.secrets_path, Path::new("/etc/voiceblock/secrets.toml"));
        let m = c.mqtt.unwrap();
        assert!(m.tls);
        assert_eq!(m.username, "vb-0001");
        assert_eq!(m.broker.port, 8883);
        assert_eq!(
            c.llm.unwrap().url.join("/models"),
            "http://127.0.0.1:8081/v1/models"
        );
        assert_eq!(c.robot, "reception-ru");
        assert_eq!(c.recording, None, "recording is off unless enabled");
    }

    #[test]
    fn recording_defaults_when_enabled() {
        let text = format!("{GOOD}\n[recording]\nenabled = true\n");
        let raw = RawConfig::parse(&text, Path::new("good.toml")).unwrap();
        let c = raw.validate(Path::new("/etc/voiceblock/voiceblock.toml"), secrets());
        let r = c.unwrap().recording.unwrap();
        assert_eq!(r.dir, Path::new("/var/lib/voiceblock/recordings"));
        assert_eq!(r.keep.as_secs(), 30 * 86_400);
        assert_eq!(r.max_bytes, 2048 << 20);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let text = GOOD.replace(
            "user = \"reception\"",
            "user = \"reception\"\npasword = \"x\"",
        );
        let e = RawConfig::parse(&text, Path::new("x.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("x.toml") && msg.contains("pasword"), "{msg}");
    }

    #[test]
    fn validate_reports_every_problem_at_once() {
        let text = r#"
[device]
id = "vb/01"
[sip]
registrar = "pbx:99999"
user = "a b"
domain = ""
listen = "localhost:5060"
max_calls = 0
ring_ms = 60000
[mqtt]
broker = "broker"
tls = false
ca_file = "ca.pem"
[api]
listen = "8080"
[llm]
url = "ftp://x"
timeout_ms = 5
[recording]
enabled = true
dir = "recordings"
keep_days = 0
max_mib = 0
"#;
        let raw = RawConfig::parse(text, Path::new("bad.toml")).unwrap();
        let bad = Secrets {
            sip_password: None,
            mqtt_password: None,
            api_token: "short".into(),
        };
        let ConfigError::Invalid { problems, .. } =
            raw.validate(Path::new("bad.toml"), bad).unwrap_err()
        else {
            panic!("expected Invalid");
        };
        let keys: Vec<&str> = problems.0.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "device.id",
            "sip.registrar",
            "sip.user",
            "sip.domain",
            "sip.listen",
            "sip.max_calls",
            "sip.ring_ms",
            "mqtt.broker",
            "mqtt.ca_file",
            "secrets.mqtt_password",
            "api.listen",
            "secrets.api_token",
            "llm.timeout_ms",
            "llm.url",
            "recording.dir",
            "recording.keep_days",
            "recording.max_mib",
        ] {
            assert!(keys.contains(&k), "{k} not reported: {problems}");
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("pbx", Some(5060)).unwrap().to_string(),
            "pbx:5060"
        );
        assert_eq!(
            parse_host_port("[::1]:5061", None).unwrap().to_string(),
            "[::1]:5061"
        );
        assert!(parse_host_port("::1", None).is_err());
        assert!(parse_host_port("pbx", None).is_err());
        assert!(parse_host_port("pbx:0", None).is_err());
        let u = parse_http_url("https://llm.example.com").unwrap();
        assert_eq!(
            u.join("/v1/models"),
            "https://llm.example.com:443/v1/models"
        );
    }

    #[test]
    fn secrets_debug_hides_values() {
        let s = format!("{:?}", secrets());
        assert!(!s.contains("sip-secret") && !s.contains("ttttt"), "{s}");
    }

    #[test]
    fn oversized_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.toml");
        std::fs::write(&p, vec![b'#'; MAX_FILE_BYTES as usize + 10]).unwrap();
        let e = RawConfig::load(&p).unwrap_err();
        assert!(
            e.to_string().contains("huge.toml") && e.to_string().contains("limit"),
            "{e}"
        );
    }
}
