//! Error enums: what the wire can do wrong ([`StreamError`], no I/O), what
//! the endpoint can do wrong ([`LlmError`]), and configuration mistakes
//! ([`ConfigError`]), each carrying the context needed to act on it.

use std::path::PathBuf;
use std::time::Duration;

/// The stream's bytes broke the protocol or a limit. Any of these makes the
/// call fall back to the script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// A line had no end within the limit.
    #[error("SSE line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// `SseLimits::max_line`.
        limit: usize,
    },
    /// One event's data exceeded the limit.
    #[error("SSE event larger than the limit of {limit} bytes")]
    EventTooLarge {
        /// `SseLimits::max_event`.
        limit: usize,
    },
    /// A line was not UTF-8.
    #[error("SSE line {line} is not valid UTF-8")]
    InvalidUtf8 {
        /// 1-based line number in the body.
        line: u64,
    },
    /// The reply text grew past the limit.
    #[error("reply longer than the limit of {limit} characters")]
    ReplyTooLong {
        /// `StreamLimits::max_reply_chars`.
        limit: usize,
    },
    /// A `data:` payload was not a chat-completions chunk.
    #[error("chunk is not chat-completions JSON ({detail}): {snippet}")]
    BadChunk {
        /// What the JSON parser said.
        detail: String,
        /// The start of the payload.
        snippet: String,
    },
    /// The server sent an error object instead of a chunk.
    #[error("server error mid-stream: {message}")]
    Server {
        /// The error's message.
        message: String,
        /// Its code or type, if given.
        code: Option<String>,
    },
    /// More parallel tool calls than allowed.
    #[error("more tool calls than the limit of {limit}")]
    TooManyToolCalls {
        /// `StreamLimits::max_tool_calls`.
        limit: usize,
    },
    /// One tool call's arguments grew past the limit.
    #[error("tool call arguments longer than the limit of {limit} bytes")]
    ToolArgumentsTooLong {
        /// `StreamLimits::max_tool_args`.
        limit: usize,
    },
    /// The body ended with neither `[DONE]` nor a finish reason.
    #[error("stream ended before [DONE] or a finish reason")]
    Truncated,
}

/// A request to the endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// Connecting or sending failed (refused, DNS, TLS, connect timeout).
    #[error("request to {url} failed: {source}")]
    Request {
        /// The chat-completions URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint answered with an error status.
    #[error("{url} answered HTTP {status}{}: {body}", retry_after.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default())]
    Status {
        /// The chat-completions URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
        /// The start of the body.
        body: String,
    },
    /// Reading the body failed midway.
    #[error("reading the reply failed: {source}")]
    Body {
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The body broke the protocol or a limit.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A time budget ran out.
    #[error("{stage} took longer than {} ms", after.as_millis())]
    Timeout {
        /// Which wait ("connect", "first sentence", "next sentence", "reply").
        stage: &'static str,
        /// The budget.
        after: Duration,
    },
    /// The circuit breaker is open: the endpoint failed recently.
    #[error("circuit breaker open for another {} ms", retry_in.as_millis())]
    BreakerOpen {
        /// Until the next trial.
        retry_in: Duration,
    },
}

impl LlmError {
    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One problem in `llm.toml`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigIssue {
    /// A required key is missing.
    #[error("`{key}` is required")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// `base_url` is not http(s)://host...
    #[error("`base_url` must start with http:// or https://, got {value:?}")]
    BadUrl {
        /// What was given.
        value: String,
    },
    /// A number outside its range.
    #[error("`{key}` = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// What was given.
        value: f64,
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// Both `api_key_env` and `api_key_file`.
    #[error("give `api_key_env` or `api_key_file`, not both")]
    TwoKeySources,
    /// A budget that would let dead air exceed the bound.
    #[error("`{key}` = {value} ms exceeds the dead-air bound of {bound} ms")]
    DeadAir {
        /// The key.
        key: &'static str,
        /// What was given.
        value: u64,
        /// The bound ([`crate::DEAD_AIR_MS`]).
        bound: u64,
    },
}

/// `llm.toml` could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// Parsed, but values are wrong (all of them listed).
    #[error("{path}: {}", issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

/// The client could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The custom CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not PEM certificates.
    #[error("CA file {path} is not PEM certificates: {detail}")]
    CaPem {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The CA file holds no certificate.
    #[error("CA file {path} holds no certificate")]
    NoCaCerts {
        /// The file.
        path: PathBuf,
    },
    /// The API key file could not be read.
    #[error("cannot read API key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API key variable is not set.
    #[error("API key variable {var} is not set")]
    KeyEnv {
        /// The variable's name.
        var: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {source}")]
    Tls {
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {source}")]
    Http {
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
}
