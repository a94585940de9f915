//! Readiness: the daemon plugs in [`HealthSource`]s (models loaded, SIP
//! registered, MQTT connected); the API adds its own check of free disk space
//! where the store lives.

use std::path::PathBuf;

use serde::Serialize;

/// The result of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`disk`, `models`, `sip`, `mqtt`, ...).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed (or a detail when it passed); `None` for nothing to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn ok(name: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            reason: None,
        }
    }

    /// A failing check and why.
    pub fn failed(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            reason: Some(reason.into()),
        }
    }
}

/// Something the daemon knows about its own readiness. Called on every
/// `GET /api/health/ready`, on a blocking thread: keep it to reading state
/// (atomics, a watch channel), not doing I/O.
pub trait HealthSource: Send + Sync {
    /// The current checks; an empty list means nothing to report.
    fn checks(&self) -> Vec<Check>;
}

/// Free space on the file system holding the store.
#[derive(Debug, Clone)]
pub struct DiskSpace {
    /// A path on that file system (the store's directory).
    pub path: PathBuf,
    /// Fewer free bytes than this fails the check.
    pub min_free_bytes: u64,
}

impl HealthSource for DiskSpace {
    fn checks(&self) -> Vec<Check> {
        let check = match crate::sys::free_bytes(&self.path) {
            Ok(free) if free >= self.min_free_bytes => Check {
                name: "disk".into(),
                ok: true,
                reason: Some(format!("{free} bytes free")),
            },
            Ok(free) => Check::failed(
                "disk",
                format!(
                    "{free} bytes free on {}, need at least {}",
                    self.path.display(),
                    self.min_free_bytes
                ),
            ),
            Err(e) => Check::failed("disk", format!("{}: {e}", self.path.display())),
        };
        vec![check]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_passes_with_room_and_fails_naming_the_minimum() {
        let dir = tempfile::tempdir().unwrap();
        let fine = DiskSpace {
            path: dir.path().to_path_buf(),
            min_free_bytes: 1,
        };
        assert!(fine.checks()[0].ok);
        let greedy = DiskSpace {
            path: dir.path().to_path_buf(),
            min_free_bytes: u64::MAX,
        };
        let check = &greedy.checks()[0];
        assert!(!check.ok);
        assert!(check
            .reason
            .as_deref()
            .unwrap()
            .contains(&u64::MAX.to_string()));
    }
}
