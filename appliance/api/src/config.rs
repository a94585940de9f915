//! [`ApiConfig`]: where the API listens, its token, and its limits, with a
//! `validate()` that reports every problem at once.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

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
}
