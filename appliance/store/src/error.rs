//! Store errors: a full disk and a corrupt file get their own variants, so the
//! daemon can say exactly what is wrong and never "repairs" a file by
//! starting an empty one over it.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system (or the store's page budget) has no room for the write.
    /// The write was rolled back as a whole; everything committed before it is
    /// intact.
    #[error("store {path}: disk full while {op}: nothing of this write was stored, everything stored before is intact; free space on the device")]
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// What was being written.
        op: &'static str,
    },
    /// The file is not a VoiceBlock store, or SQLite found it damaged. The file
    /// is left exactly as it was for recovery (`sqlite3 FILE .recover`).
    #[error("store {path} is corrupt or not a VoiceBlock store ({detail}); the file was not modified: move it aside and recover it with `sqlite3 {path} .recover`", path = path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file was written by a newer build with a newer schema.
    #[error("store {path} has schema version {found}, this build knows up to {known}: upgrade the firmware or use a new file", path = path.display())]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// `user_version` found in the file.
        found: i64,
        /// The newest schema this build knows.
        known: i64,
    },
    /// The file or its directory could not be opened or created.
    #[error("cannot open store {path}", path = path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("store {path}: {op} failed", path = path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An input exceeds one of the store's limits (untrusted text from a call
    /// or a config push must not grow the file without bound).
    #[error("{what} is {len} bytes, the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The outbound queue holds as many waiting jobs as it may.
    #[error("the outbound queue holds {queued} waiting jobs; adding {adding} would pass the limit of {max}")]
    QueueFull {
        /// Jobs waiting now.
        queued: u64,
        /// Jobs being added.
        adding: usize,
        /// The limit.
        max: u64,
    },
    /// A call id already stored.
    #[error("call {0} is already stored")]
    DuplicateCall(String),
    /// A value could not be serialized to JSON.
    #[error("cannot serialize {what}")]
    Json {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing an export failed.
    #[error("cannot write the export")]
    Export(#[source] std::io::Error),
}

impl StoreError {
    /// Sorts a SQLite error into disk full, corrupt, or other.
    pub(crate) fn classify(path: &std::path::Path, op: &'static str, err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull {
                path: path.to_path_buf(),
                op,
            },
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: err.to_string(),
                }
            }
            _ => StoreError::Sqlite {
                path: path.to_path_buf(),
                op,
                source: err,
            },
        }
    }

    /// True when the error means the device ran out of space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }
}
