//! The `[sync]` section of the device's config (TOML), and the fleet
//! operator's `[fleet]` file. Parsed with `deny_unknown_fields`, then
//! validated into typed configs with every problem listed at once.
//!
//! ```toml
//! [sync]
//! device_id = "box-01"                          # also the MQTT user name by default
//! store = "/var/lib/voiceblock/voiceblock.db"
//! host = "mqtt.example.com"
//! port = 8883
//! ca_file = "/etc/voiceblock/fleet-ca.pem"
//! username = "box-01"                           # omit for anonymous (brokers should refuse)
//! password_file = "/etc/voiceblock/mqtt.secret" # one line; kept out of the config
//!
//! [sync.webhook]                                # optional; see crate::webhook
//! url = "https://crm.example.com/hooks/voiceblock"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::topics::valid_id;

/// A list of config problems, shown one per line.
#[derive(Debug, thiserror::Error)]
#[error("config {path}:\n  - {}", problems.join("\n  - "), path = path.display())]
pub struct ConfigError {
    /// The config file (or `<inline>`).
    pub path: PathBuf,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// The device file: a `[sync]` section (the daemon's config embeds the same
/// section).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFile {
    /// The section.
    pub sync: RawSync,
}

/// `[sync]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// Device id: one topic level, `[A-Za-z0-9_.-]{1,64}`.
    pub device_id: String,
    /// The store file.
    pub store: PathBuf,
    /// Broker connection.
    #[serde(flatten)]
    pub broker: RawBroker,
    /// Metrics period in seconds (default 60; 0 turns metrics off).
    #[serde(default = "default_metrics")]
    pub metrics_interval_s: u64,
    /// Longest reconnect delay in seconds (default 60).
    #[serde(default = "default_backoff")]
    pub backoff_max_s: u64,
    /// How often the outbox is re-read without a notification (ms, default 500):
    /// another process (the daemon) may have written to it.
    #[serde(default = "default_poll")]
    pub outbox_poll_ms: u64,
    /// Disk budget of the store in MB (default 512); the oldest delivered
    /// calls go first, undelivered ones never.
    #[serde(default = "default_retention_mb")]
    pub retention_max_mb: u64,
    /// Calls kept at most (default 100000).
    #[serde(default = "default_retention_calls")]
    pub retention_max_calls: u64,
    /// Optional HTTPS webhook forwarder (`[sync.webhook]`).
    #[serde(default)]
    pub webhook: Option<crate::webhook::RawWebhook>,
}

/// Broker fields shared by device and fleet files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    /// Broker host name or IP (the server certificate must name it).
    pub host: String,
    /// TLS port (default 8883).
    #[serde(default = "default_port")]
    pub port: u16,
    /// PEM file with the CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// MQTT user name.
    pub username: Option<String>,
    /// File holding the password (first line).
    pub password_file: Option<PathBuf>,
    /// Keep-alive in seconds (default 30).
    #[serde(default = "default_keepalive")]
    pub keepalive_s: u64,
}

/// The fleet operator's file: a `[fleet]` section with admin credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// The section.
    pub fleet: RawBroker,
}

fn default_port() -> u16 {
    8883
}
fn default_keepalive() -> u64 {
    30
}
fn default_metrics() -> u64 {
    60
}
fn default_backoff() -> u64 {
    60
}
fn default_poll() -> u64 {
    500
}
fn default_retention_mb() -> u64 {
    512
}
fn default_retention_calls() -> u64 {
    100_000
}

/// Longest password file read.
pub const MAX_SECRET_BYTES: usize = 1024;
/// Largest CA file read.
pub const MAX_CA_BYTES: usize = 256 * 1024;

/// A validated broker connection.
#[derive(Clone)]
pub struct BrokerConn {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// CA file (for messages).
    pub ca_file: PathBuf,
    /// CA PEM contents.
    pub ca_pem: Vec<u8>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Keep-alive.
    pub keepalive: Duration,
}

impl std::fmt::Debug for BrokerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("BrokerConn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BrokerConn {
    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A validated `[sync]` section.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Device id.
    pub device_id: String,
    /// Store file.
    pub store: PathBuf,
    /// Broker.
    pub broker: BrokerConn,
    /// Metrics period (`None`: off).
    pub metrics_interval: Option<Duration>,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Outbox re-read period.
    pub outbox_poll: Duration,
    /// Store budget, enforced at start and hourly.
    pub retention: vb_store::Retention,
    /// The webhook forwarder, when configured.
    pub webhook: Option<crate::webhook::WebhookConfig>,
}

impl SyncConfig {
    /// A config with the `[sync]` defaults (metrics every 60 s, reconnect
    /// backoff up to 60 s, outbox re-read every 500 ms, 512 MB / 100000
    /// calls retention) for a broker validated elsewhere (the daemon's own
    /// config file carries the broker under `[mqtt]`).
    pub fn with_defaults(device_id: String, store: PathBuf, broker: BrokerConn) -> SyncConfig {
        SyncConfig {
            device_id,
            store,
            broker,
            metrics_interval: Some(Duration::from_secs(default_metrics())),
            backoff_max: Duration::from_secs(default_backoff()),
            outbox_poll: Duration::from_millis(default_poll()),
            webhook: None,
            retention: vb_store::Retention {
                max_bytes: default_retention_mb().saturating_mul(1024 * 1024),
                max_calls: default_retention_calls(),
            },
        }
    }
}

/// Reads a file of at most `max` bytes, or says why not in `problems`.
pub fn read_limited(
    path: &Path,
    max: usize,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<Vec<u8>> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > max as u64 => {
            problems.push(format!(
                "{what} {} is {} bytes, the limit is {max}",
                path.display(),
                m.len()
            ));
            None
        }
        Ok(_) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                problems.push(format!("cannot read {what} {}: {e}", path.display()));
                None
            }
        },
        Err(e) => {
            problems.push(format!("cannot read {what} {}: {e}", path.display()));
            None
        }
    }
}

impl RawBroker {
    /// Validates, reading the CA and password files; relative paths are
    /// taken from `base` (the config file's directory).
    pub fn validate(&self, base: &Path, problems: &mut Vec<String>) -> Option<BrokerConn> {
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if self.host.trim().is_empty() {
            problems.push("host is empty".into());
        }
        if self.port == 0 {
            problems.push("port must be 1-65535".into());
        }
        if !(5..=3600).contains(&self.keepalive_s) {
            problems.push(format!(
                "keepalive_s is {}, allowed 5-3600",
                self.keepalive_s
            ));
        }
        let ca_file = at(&self.ca_file);
        let ca_pem = read_limited(&ca_file, MAX_CA_BYTES, "ca_file", problems);
        if let Some(pem) = &ca_pem {
            if crate::tls::parse_ca(pem).is_err() {
                problems.push(format!(
                    "ca_file {} holds no PEM certificate",
                    ca_file.display()
                ));
            }
        }
        let password = match (&self.username, &self.password_file) {
            (Some(_), Some(p)) => read_limited(&at(p), MAX_SECRET_BYTES, "password_file", problems)
                .and_then(|b| match String::from_utf8(b) {
                    Ok(s) => Some(s.lines().next().unwrap_or("").to_string()),
                    Err(_) => {
                        problems.push("password_file is not UTF-8".into());
                        None
                    }
                })
                .filter(|s| {
                    if s.is_empty() {
                        problems.push("password_file is empty".into());
                    }
                    !s.is_empty()
                }),
            (None, Some(_)) => {
                problems.push("password_file given without username".into());
                None
            }
            _ => None,
        };
        if let Some(u) = &self.username {
            if u.is_empty() || u.len() > 128 {
                problems.push("username must be 1-128 bytes".into());
            }
        }
        Some(BrokerConn {
            host: self.host.trim().to_string(),
            port: self.port,
            ca_file,
            ca_pem: ca_pem?,
            username: self.username.clone(),
            password,
            keepalive: Duration::from_secs(self.keepalive_s),
        })
    }
}

impl RawSync {
    /// Validates the section; `base` resolves relative paths.
    pub fn validate(&self, path: &Path, base: &Path) -> Result<SyncConfig, ConfigError> {
        let mut problems = Vec::new();
        if !valid_id(&self.device_id) {
            problems.push(format!(
                "device_id {:?} must be 1-64 of A-Z a-z 0-9 _ . - (it is one MQTT topic level)",
                self.device_id
            ));
        }
        if self.backoff_max_s == 0 || self.backoff_max_s > 3600 {
            problems.push(format!(
                "backoff_max_s is {}, allowed 1-3600",
                self.backoff_max_s
            ));
        }
        if !(50..=60_000).contains(&self.outbox_poll_ms) {
            problems.push(format!(
                "outbox_poll_ms is {}, allowed 50-60000",
                self.outbox_poll_ms
            ));
        }
        if self.retention_max_mb == 0 || self.retention_max_calls == 0 {
            problems.push("retention_max_mb and retention_max_calls must be 1 or more".into());
        }
        let broker = self.broker.validate(base, &mut problems);
        let webhook = self
            .webhook
            .as_ref()
            .map(|w| w.validate(base, &mut problems));
        match broker {
            Some(broker) if problems.is_empty() => Ok(SyncConfig {
                device_id: self.device_id.clone(),
                store: if self.store.is_absolute() {
                    self.store.clone()
                } else {
                    base.join(&self.store)
                },
                broker,
                metrics_interval: (self.metrics_interval_s > 0)
                    .then(|| Duration::from_secs(self.metrics_interval_s)),
                backoff_max: Duration::from_secs(self.backoff_max_s),
                outbox_poll: Duration::from_millis(self.outbox_poll_ms),
                retention: vb_store::Retention {
                    max_bytes: self.retention_max_mb.saturating_mul(1024 * 1024),
                    max_calls: self.retention_max_calls,
                },
                webhook: webhook.flatten(),
            }),
            _ => Err(ConfigError {
                path: path.to_path_buf(),
                problems,
            }),
        }
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let fail = |p: String| ConfigError {
        path: path.to_path_buf(),
        problems: vec![p],
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    toml::from_str(&text).map_err(|e| fail(e.to_string()))
}

fn base_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl SyncConfig {
    /// Loads and validates a device file with a `[sync]` section.
    pub fn load(path: &Path) -> Result<SyncConfig, ConfigError> {
        let file: SyncFile = parse_file(path)?;
        file.sync.validate(path, &base_of(path))
    }
}

/// Loads and validates a fleet file with a `[fleet]` section.
pub fn load_fleet(path: &Path) -> Result<BrokerConn, ConfigError> {
    let file: FleetFile = parse_file(path)?;
    let mut problems = Vec::new();
    match file.fleet.validate(&base_of(path), &mut problems) {
        Some(c) if problems.is_empty() => Ok(c),
        _ => Err(ConfigError {
            path: path.to_path_buf(),
            problems,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_every_problem_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sync.toml");
        std::fs::write(&p, "[sync]\ndevice_id = \"a\"\nstore = \"x.db\"\nhost = \"h\"\nca_file = \"ca.pem\"\ncolour = 1\n").unwrap();
        let e = SyncConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");

        std::fs::write(&p, "[sync]\ndevice_id = \"a/b\"\nstore = \"x.db\"\nhost = \"\"\nca_file = \"missing.pem\"\npassword_file = \"pw\"\n").unwrap();
        let e = SyncConfig::load(&p).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.problems.len(), 4, "{text}");
        assert!(text.contains("device_id \"a/b\""), "{text}");
        assert!(text.contains("host is empty"), "{text}");
        assert!(text.contains("cannot read ca_file"), "{text}");
        assert!(
            text.contains("password_file given without username"),
            "{text}"
        );
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let c = BrokerConn {
            host: "h".into(),
            port: 1,
            ca_file: "ca".into(),
            ca_pem: vec![],
            username: Some("u".into()),
            password: Some("hunter2".into()),
            keepalive: Duration::from_secs(5),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
