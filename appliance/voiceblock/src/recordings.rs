//! Call recordings on disk (`[recording]` in the box config, `--recordings`):
//! the retention that keeps them within their age limit and disk budget.
//!
//! Only files the call loop names (`call-*.wav`) are ever deleted. The
//! choice is [`doomed`], pure and tested alone; [`Retention::prune`] reads
//! the folder and deletes. It runs when the daemon starts and after every
//! call it keeps.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Age of the newest files the size budget never takes: a call being
/// recorded rewrites its file every few seconds.
const IN_USE: Duration = Duration::from_secs(300);

/// Retention when nothing says otherwise (`[recording]`, `--recordings`).
pub const DEFAULT_KEEP_DAYS: u32 = 30;
/// Disk budget when nothing says otherwise, MiB.
pub const DEFAULT_MAX_MIB: u64 = 2048;

/// The recordings folder and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// The folder.
    pub dir: PathBuf,
    /// Recordings older than this are deleted.
    pub keep: Duration,
    /// The most bytes recordings take; the oldest go first.
    pub max_bytes: u64,
}

impl Retention {
    /// The defaults of `[recording]` for a folder given on the command line.
    pub fn with_defaults(dir: PathBuf) -> Retention {
        Retention {
            dir,
            keep: Duration::from_secs(u64::from(DEFAULT_KEEP_DAYS) * 86_400),
            max_bytes: DEFAULT_MAX_MIB << 20,
        }
    }
}

/// One recording on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Last written.
    pub modified: SystemTime,
    /// Size.
    pub bytes: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Files deleted.
    pub deleted: usize,
    /// Bytes freed.
    pub freed: u64,
    /// Bytes the recordings still take.
    pub kept_bytes: u64,
}

/// The entries to delete: everything older than `keep`, then the oldest
/// until the rest fits in `max_bytes` (files written in the last five
/// minutes excepted: they may be calls in progress).
pub fn doomed(entries: &[Entry], now: SystemTime, keep: Duration, max_bytes: u64) -> Vec<usize> {
    let age = |e: &Entry| now.duration_since(e.modified).unwrap_or_default();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].modified, entries[i].name.clone()));
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut out = Vec::new();
    for i in order {
        let e = &entries[i];
        let expired = age(e) > keep;
        let over = total > max_bytes && age(e) > IN_USE;
        if expired || over {
            total -= e.bytes;
            out.push(i);
        }
    }
    out
}

impl Retention {
    /// Deletes what [`doomed`] names. A folder that does not exist yet has
    /// nothing to prune.
    pub fn prune(&self, now: SystemTime) -> std::io::Result<Pruned> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pruned::default()),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for item in read {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("call-") && name.ends_with(".wav")) {
                continue;
            }
            let meta = item.metadata()?;
            if !meta.is_file() {
                continue;
            }
            entries.push(Entry {
                name,
                modified: meta.modified()?,
                bytes: meta.len(),
            });
        }
        let mut pruned = Pruned {
            kept_bytes: entries.iter().map(|e| e.bytes).sum(),
            ..Pruned::default()
        };
        for i in doomed(&entries, now, self.keep, self.max_bytes) {
            let e = &entries[i];
            match std::fs::remove_file(self.dir.join(&e.name)) {
                Ok(()) => {
                    pruned.deleted += 1;
                    pruned.freed += e.bytes;
                    pruned.kept_bytes -= e.bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn entry(name: &str, age: Duration, bytes: u64, now: SystemTime) -> Entry {
        Entry {
            name: name.into(),
            modified: now - age,
            bytes,
        }
    }

    #[test]
    fn expired_recordings_go_whatever_the_budget() {
        let now = SystemTime::now();
        let e = [
            entry("call-1.wav", 31 * DAY, 10, now),
            entry("call-2.wav", 29 * DAY, 10, now),
        ];
        assert_eq!(doomed(&e, now, 30 * DAY, 1 << 30), vec![0]);
    }

    #[test]
    fn over_budget_the_oldest_go_first_but_never_a_call_in_progress() {
        let now = SystemTime::now();
        let e = [
            entry("call-new.wav", Duration::from_secs(10), 500, now),
            entry("call-old.wav", 3 * DAY, 400, now),
            entry("call-mid.wav", DAY, 300, now),
        ];
        // 1200 bytes against 600: old (400) then mid (300) go, 500 left.
        assert_eq!(doomed(&e, now, 30 * DAY, 600), vec![1, 2]);
        // Against 100 the new one still stays: it may be being written.
        assert_eq!(doomed(&e, now, 30 * DAY, 100), vec![1, 2]);
        assert!(doomed(&e, now, 30 * DAY, 1200).is_empty());
    }

    #[test]
    fn prune_deletes_only_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - 40 * DAY;
        for name in ["call-a.wav", "notes.txt", "other.wav"] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"0123456789").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        std::fs::write(dir.path().join("call-b.wav"), b"01234").unwrap();
        let r = Retention::with_defaults(dir.path().to_path_buf());
        let pruned = r.prune(SystemTime::now()).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                deleted: 1,
                freed: 10,
                kept_bytes: 5
            }
        );
        assert!(!dir.path().join("call-a.wav").exists());
        for kept in ["notes.txt", "other.wav", "call-b.wav"] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
        let missing = Retention::with_defaults(dir.path().join("none"));
        assert_eq!(missing.prune(SystemTime::now()).unwrap(), Pruned::default());
    }
}
