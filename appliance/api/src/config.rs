//! [`ApiConfig`]: where the API listens, its token, and its limits, with a
//! `validate()` that reports every problem at once; [`RawApi`] is the
//! `[api]` section of the daemon's TOML as written.
//!
//! ```toml
//! [api]
//! listen = "0.0.0.0:8080"
//! token_file = "/etc/voiceblock/api.token"   # one line; kept out of the config
//! metrics_public = true
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ApiError, ConfigIssue};

/// Shortest bearer token accepted (bytes).
pub const MIN_TOKEN_BYTES: usize = 16;

/// The API's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the daemon binds the listener it hands to [`crate::serve`].
    pub listen: SocketAddr,
    /// Bearer token every `/api/` route but `/api/health/live` requires.
    /// `None` turns authentication off, which [`ApiConfig::validate`] allows
    /// only on a loopback address (development).
    pub token: Option<String>,
    /// `/metrics` answers without the token (Prometheus scrapers on the LAN);
    /// `false` puts it behind the token too.
    pub metrics_public: bool,
    /// Largest request body; bigger ones get 413 naming this limit.
    pub max_body_bytes: usize,
    /// Requests handled at once; more get 503 with Retry-After at once
    /// rather than queueing behind SQLite on a 2-core box.
    pub max_in_flight: usize,
    /// Failed authentications a peer may make within `auth_window` before it
    /// gets 429 until the window passes.
    pub auth_failures: u32,
    /// The window those failures are counted in.
    pub auth_window: Duration,
    /// Peers whose failures are remembered; the oldest is forgotten first.
    pub auth_peers: usize,
    /// Readiness fails when the store's file system has less free space.
    pub min_free_disk_bytes: u64,
    /// After the cancel token fires, how long in-flight requests may take
    /// before [`crate::serve`] returns anyway.
    pub shutdown_grace: Duration,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            token: None,
            metrics_public: true,
            max_body_bytes: 1024 * 1024,
            max_in_flight: 32,
            auth_failures: 10,
            auth_window: Duration::from_secs(60),
            auth_peers: 1024,
            min_free_disk_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl ApiConfig {
    /// Checks the settings, listing every problem.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut issues = Vec::new();
        match &self.token {
            None if !self.listen.ip().is_loopback() => issues.push(ConfigIssue::TokenRequired {
                listen: self.listen,
            }),
            Some(t) if t.len() < MIN_TOKEN_BYTES => issues.push(ConfigIssue::TokenTooShort {
                len: t.len(),
                min: MIN_TOKEN_BYTES,
            }),
            _ => {}
        }
        if self.max_body_bytes == 0 {
            issues.push(ConfigIssue::Zero {
                key: "max_body_bytes",
            });
        }
        if self.max_in_flight == 0 {
            issues.push(ConfigIssue::Zero {
                key: "max_in_flight",
            });
        }
        if self.auth_failures == 0 {
            issues.push(ConfigIssue::Zero {
                key: "auth_failures",
            });
        }
        if self.auth_window.is_zero() {
            issues.push(ConfigIssue::Zero { key: "auth_window" });
        }
        if self.auth_peers == 0 {
            issues.push(ConfigIssue::Zero { key: "auth_peers" });
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Config { issues })
        }
    }
}

/// Largest token file read.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1024;

/// The `[api]` section as written; every key but `listen` has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// File holding the bearer token (first line). Omitted: no
    /// authentication, allowed only on a loopback `listen`.
    pub token_file: Option<PathBuf>,
    /// `/metrics` without the token (default true).
    #[serde(default = "yes")]
    pub metrics_public: bool,
    /// Largest request body in KiB (default 1024).
    #[serde(default = "default_body_kib")]
    pub max_body_kib: usize,
    /// Requests handled at once (default 32).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Failed authentications per peer per window (default 10).
    #[serde(default = "default_auth_failures")]
    pub auth_failures: u32,
    /// The window, seconds (default 60).
    #[serde(default = "default_auth_window")]
    pub auth_window_s: u64,
    /// Readiness fails below this much free disk, MiB (default 64).
    #[serde(default = "default_free_mib")]
    pub min_free_disk_mib: u64,
}

fn yes() -> bool {
    true
}
fn default_body_kib() -> usize {
    1024
}
fn default_in_flight() -> usize {
    32
}
fn default_auth_failures() -> u32 {
    10
}
fn default_auth_window() -> u64 {
    60
}
fn default_free_mib() -> u64 {
    64
}

impl RawApi {
    /// Reads the token file (relative paths from `base`, the config file's
    /// directory) and validates everything, listing every problem.
    pub fn validate(&self, base: &Path) -> Result<ApiConfig, ApiError> {
        let mut issues = Vec::new();
        let token = self.token_file.as_ref().and_then(|p| {
            let path = if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            };
            match read_token(&path) {
                Ok(t) => Some(t),
                Err(issue) => {
                    issues.push(issue);
                    None
                }
            }
        });
        let config = ApiConfig {
            listen: self.listen,
            token,
            metrics_public: self.metrics_public,
            max_body_bytes: self.max_body_kib.saturating_mul(1024),
            max_in_flight: self.max_in_flight,
            auth_failures: self.auth_failures,
            auth_window: Duration::from_secs(self.auth_window_s),
            min_free_disk_bytes: self.min_free_disk_mib.saturating_mul(1024 * 1024),
            ..ApiConfig::default()
        };
        match config.validate() {
            // A missing token is already explained by the token file's issue.
            Err(ApiError::Config { issues: more }) => issues.extend(more.into_iter().filter(|i| {
                !(self.token_file.is_some() && matches!(i, ConfigIssue::TokenRequired { .. }))
            })),
            Err(other) => return Err(other),
            Ok(()) => {}
        }
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ApiError::Config { issues })
        }
    }
}

fn read_token(path: &Path) -> Result<String, ConfigIssue> {
    use std::io::Read;
    let issue = |reason: String| ConfigIssue::TokenFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| issue(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| issue(e.to_string()))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(issue(format!("larger than {MAX_TOKEN_FILE_BYTES} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| issue("not UTF-8".into()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(issue("empty".into()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_on_loopback_without_a_token() {
        ApiConfig::default().validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = ApiConfig {
            listen: "0.0.0.0:80".parse().unwrap(),
            max_body_bytes: 0,
            auth_peers: 0,
            ..ApiConfig::default()
        };
        let Err(ApiError::Config { issues }) = config.validate() else {
            panic!("expected a config error");
        };
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(matches!(issues[0], ConfigIssue::TokenRequired { .. }));
        let short = ApiConfig {
            token: Some("abc".into()),
            ..ApiConfig::default()
        };
        let text = short.validate().unwrap_err().to_string();
        assert!(text.contains("at least 16"), "{text}");
    }

    #[test]
    fn the_api_section_reads_its_token_file_and_applies_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api.token"), "0123456789abcdef0123\n").unwrap();
        let raw: RawApi =
            toml::from_str("listen = \"0.0.0.0:8080\"\ntoken_file = \"api.token\"\n").unwrap();
        let config = raw.validate(dir.path()).unwrap();
        assert_eq!(config.token.as_deref(), Some("0123456789abcdef0123"));
        assert!(config.metrics_public);
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.auth_window, Duration::from_secs(60));
        assert!(toml::from_str::<RawApi>("listen = \"127.0.0.1:1\"\ntoken = \"x\"").is_err());
    }

    #[test]
    fn a_bad_api_section_lists_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.token"), "\n").unwrap();
        let raw: RawApi = toml::from_str(
            "listen = \"0.0.0.0:8080\"\ntoken_file = \"empty.token\"\nmax_in_flight = 0\n",
        )
        .unwrap();
        let Err(ApiError::Config { issues }) = raw.validate(dir.path()) else {
            panic!("expected a config error");
        };
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert!(matches!(&issues[0], ConfigIssue::TokenFile { reason, .. } if reason == "empty"));
        let raw: RawApi =
            toml::from_str("listen = \"0.0.0.0:8080\"\ntoken_file = \"missing\"\n").unwrap();
        let text = raw.validate(dir.path()).unwrap_err().to_string();
        assert!(text.contains("missing"), "{text}");
    }
}
