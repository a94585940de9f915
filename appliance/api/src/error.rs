//! Errors: [`ApiError`] for starting and running the server (the daemon acts
//! on these), and `Problem`, the JSON body every failed request gets.

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the API cannot start or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The configuration is unusable; every problem is listed.
    #[error("API config has {} problem(s):{}", .issues.len(), IssueList(.issues))]
    Config {
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
    /// The listener failed while serving.
    #[error("HTTP API on {addr}: serving failed")]
    Serve {
        /// The address it was listening on (unspecified when unknown).
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct IssueList<'a>(&'a [ConfigIssue]);

impl std::fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for issue in self.0 {
            write!(f, "\n  - {issue}")?;
        }
        Ok(())
    }
}

/// One problem in an [`crate::ApiConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigIssue {
    /// No token, but the API listens beyond loopback: anyone on the network
    /// could read every lead.
    #[error("api.listen {listen} is not a loopback address, so api.token is required")]
    TokenRequired {
        /// The configured address.
        listen: SocketAddr,
    },
    /// The token is too short to resist guessing.
    #[error("api.token is {len} bytes, at least {min} are required")]
    TokenTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The token file cannot be used.
    #[error("api.token_file {path}: {reason}", path = .path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why (the OS error, `empty`, `not UTF-8`, too large).
        reason: String,
    },
    /// A limit that must be positive is zero.
    #[error("api.{key} must be greater than zero")]
    Zero {
        /// The config key.
        key: &'static str,
    },
}

/// A failed request: its status and a JSON body
/// `{"error": "...", "limit": ...}` (`limit` only when a limit was hit).
#[derive(Debug)]
pub(crate) struct Problem {
    pub status: StatusCode,
    pub error: String,
    pub limit: Option<serde_json::Value>,
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Problem {
        Problem {
            status,
            error: error.into(),
            limit: None,
            retry_after: None,
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn not_found(error: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, error)
    }

    /// A server-side failure: logged in full, answered briefly.
    pub fn internal(what: &str, err: &dyn std::error::Error) -> Problem {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "API: {what} failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what}: {chain}"),
        )
    }

    pub fn with_limit(mut self, limit: impl Into<serde_json::Value>) -> Problem {
        self.limit = Some(limit.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = match self.limit {
            Some(limit) => json!({ "error": self.error, "limit": limit }),
            None => json!({ "error": self.error }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
