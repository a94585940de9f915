//! Errors from loading a robot folder: each names the file, and validation
//! problems are collected into one report naming every bad key.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Why a robot could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RobotError {
    /// The folder has no robot.toml.
    #[error("{path}: robot.toml not found (a robot is a folder holding robot.toml)", path = .path.display())]
    NotFound {
        /// The robot.toml path that was looked for.
        path: PathBuf,
    },
    /// A file of the robot exists but could not be read.
    #[error("{path}: cannot read: {source}", path = .path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// robot.toml is not valid TOML or does not fit the schema (unknown key,
    /// wrong type).
    #[error("{path}:{line}:{column}: {message}", path = .path.display())]
    Parse {
        /// The robot.toml path (or `builtin:<name>`).
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The TOML parser's description of the problem.
        message: String,
    },
    /// robot.toml parsed but its values are wrong; every problem is listed.
    #[error("{path}: {count} problem(s):{issues}", path = .path.display(), count = .issues.len(), issues = IssueList(.issues))]
    Invalid {
        /// The robot.toml path (or `builtin:<name>`).
        path: PathBuf,
        /// Every problem found, in file order.
        issues: Vec<Issue>,
    },
}

struct IssueList<'a>(&'a [Issue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for issue in self.0 {
            write!(f, "\n  - {issue}")?;
        }
        Ok(())
    }
}

/// One problem found by validation; `key` is the dotted robot.toml key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Issue {
    /// The `[outbound]` table (calling window, time zone, retries) is wrong.
    #[error("outbound: {message}")]
    Outbound {
        /// What is wrong, naming the key and the allowed values.
        message: String,
    },
    /// A required key is absent.
    #[error("{key}: missing (required)")]
    Missing {
        /// The key.
        key: String,
    },
    /// A text value is empty or only whitespace.
    #[error("{key}: must not be empty")]
    Empty {
        /// The key.
        key: String,
    },
    /// A value is not one of the allowed words.
    #[error("{key}: {value:?} is not valid (expected {expected})")]
    NotOneOf {
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// The allowed values, for the message.
        expected: &'static str,
    },
    /// A number is outside its allowed range.
    #[error("{key}: {value} is out of range {min}..={max}")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value found.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// `name` uses characters other than lowercase letters, digits, `-`, `_`.
    #[error("{key}: {value:?} must be lowercase ASCII letters, digits, '-' or '_'")]
    BadName {
        /// The key.
        key: String,
        /// The value found.
        value: String,
    },
    /// `default_country` is not an E.164 calling code.
    #[error("{key}: {value:?} is not an E.164 calling code (1 to 3 digits, no leading 0, no '+')")]
    BadCountryCode {
        /// The key.
        key: String,
        /// The value found.
        value: String,
    },
    /// A phrase names an unknown `{placeholder}`.
    #[error("{key}: unknown placeholder {{{placeholder}}} (known: {known})", known = crate::phrase::Field::NAMES)]
    UnknownPlaceholder {
        /// The phrase key.
        key: String,
        /// The name between the braces.
        placeholder: String,
    },
    /// A phrase has a `{` without `}` or a `}` without `{`.
    #[error("{key}: unbalanced '{{' or '}}' in phrase")]
    UnbalancedBrace {
        /// The phrase key.
        key: String,
    },
    /// A phrase names `{dates}` or `{city}` but the robot never asks for it,
    /// so it would always read "not given".
    #[error("{key}: uses {{{placeholder}}} but ask.{placeholder} is false")]
    PlaceholderNotAsked {
        /// The phrase key.
        key: String,
        /// `dates` or `city`.
        placeholder: &'static str,
    },
    /// `[audio]` names a phrase id that does not exist.
    #[error("{key}: no such phrase")]
    UnknownPhrase {
        /// The `audio.<id>` key.
        key: String,
    },
    /// A declared WAV is not a relative `.wav` path inside the robot folder.
    #[error("{key}: {path:?} must be a relative .wav path inside the robot folder")]
    BadAudioPath {
        /// The `audio.<id>` key.
        key: String,
        /// The path as written.
        path: String,
    },
    /// A declared WAV does not exist.
    #[error("{key}: declared audio file {path} does not exist", path = .path.display())]
    MissingAudio {
        /// The `audio.<id>` key.
        key: String,
        /// The resolved path that was checked.
        path: PathBuf,
    },
    /// A pre-recorded phrase cannot change per call.
    #[error("{key}: a phrase with a pre-recorded WAV cannot contain placeholders")]
    AudioWithPlaceholders {
        /// The `audio.<id>` key.
        key: String,
    },
    /// Audio was declared for a robot that has no folder (a built-in).
    #[error("{key}: a built-in robot has no folder to hold audio")]
    AudioWithoutFolder {
        /// The `audio.<id>` key.
        key: String,
    },
    /// An LLM mode was chosen but the robot folder has no prompt.md.
    #[error("{key}: mode {mode:?} needs prompt.md beside robot.toml")]
    MissingPrompt {
        /// `mode`.
        key: String,
        /// The mode named.
        mode: &'static str,
    },
}
