//! Robot updates from the fleet: a robot folder as a tar.gz with its sha256,
//! checked against explicit limits, unpacked without trusting a single
//! entry, validated by the daemon, and swapped in by rename with the previous
//! folder kept as `<name>.prev`. Any failure leaves the robot in force as it was.
//!
//! The push (`voiceblock/<device>/robot/<request-id>`, JSON):
//!
//! ```json
//! {"name": "reception-en", "sha256": "<64 hex digits of the archive>", "archive": "<base64 of the tar.gz>"}
//! ```
//!
//! The archive holds the folder's contents at its root (`robot.toml`,
//! `prompt.md`, `audio/<phrase>.wav`): regular files and directories only.
//! The installed folder gets a `.voiceblock-sha256` file ([`SHA_FILE`]) so a
//! redelivered push is answered "unchanged" instead of being swapped in again.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::remote::Device;
use crate::topics::valid_id;

/// Largest archive (compressed bytes).
pub const MAX_ARCHIVE_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes of file data the archive may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries (files and directories) in an archive.
pub const MAX_ENTRIES: usize = 500;
/// Largest push message: the base64 of the largest archive plus room for the
/// name and checksum.
pub const MAX_MESSAGE_BYTES: usize = MAX_ARCHIVE_BYTES.div_ceil(3) * 4 + 4096;
/// Suffix of the folder kept for rollback.
pub const PREV_SUFFIX: &str = ".prev";
/// Prefix of the staging folders made inside the robots folder (same file
/// system, so the final rename is atomic).
pub const STAGING_PREFIX: &str = ".robot-incoming-";

/// File written into an installed robot folder with the sha256 of the
/// archive it came from: a push delivered twice (QoS 1 after a reconnect)
/// is recognised and not swapped in again, which would replace the real
/// previous robot in `<name>.prev` with a copy of the current one.
pub const SHA_FILE: &str = ".voiceblock-sha256";

/// Decompressed tar bytes allowed on top of the file data: headers and
/// padding of [`MAX_ENTRIES`] entries with long names, plus the end blocks.
const TAR_OVERHEAD: u64 = MAX_ENTRIES as u64 * 4 * 512 + 64 * 1024;

/// Why a robot push was refused. The message is the reply's explanation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RobotUpdateError {
    /// This box was not given a robots folder.
    #[error("this box does not accept robot updates (no robots folder configured)")]
    NotAccepted,
    /// The push message is bigger than [`MAX_MESSAGE_BYTES`].
    #[error("robot push is {len} bytes, the limit is {MAX_MESSAGE_BYTES} (MAX_MESSAGE_BYTES: a {MAX_ARCHIVE_BYTES}-byte archive in base64)")]
    MessageTooLarge {
        /// Its size.
        len: usize,
    },
    /// The push is not the expected JSON.
    #[error("robot push is not valid JSON {{\"name\": ..., \"sha256\": ..., \"archive\": <base64 tar.gz>}}: {0}")]
    BadMessage(#[source] serde_json::Error),
    /// The robot name cannot be a folder name here.
    #[error("robot name {name:?} is not allowed: use [A-Za-z0-9_.-], 1-64 characters, not starting with '.' and not ending in {PREV_SUFFIX:?}")]
    BadName {
        /// The name sent.
        name: String,
    },
    /// The checksum is not 64 hex digits.
    #[error("sha256 {given:?} is not 64 hex digits")]
    BadChecksumFormat {
        /// What was sent.
        given: String,
    },
    /// The archive field is not base64.
    #[error("archive is not valid base64: {0}")]
    Base64(#[source] base64::DecodeError),
    /// The archive is bigger than [`MAX_ARCHIVE_BYTES`].
    #[error("archive is {len} bytes, the limit is {MAX_ARCHIVE_BYTES} (MAX_ARCHIVE_BYTES)")]
    ArchiveTooLarge {
        /// Its size.
        len: usize,
    },
    /// The archive's sha256 is not the one announced.
    #[error("sha256 mismatch: the push says {expected}, the archive's is {actual}; refused")]
    ChecksumMismatch {
        /// Announced.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// More than [`MAX_ENTRIES`] entries.
    #[error("archive has more than {MAX_ENTRIES} entries (MAX_ENTRIES)")]
    TooManyEntries,
    /// The files add up to more than [`MAX_UNPACKED_BYTES`].
    #[error("archive unpacks to more than {MAX_UNPACKED_BYTES} bytes (MAX_UNPACKED_BYTES)")]
    UnpackedTooLarge,
    /// An entry that could write outside the folder or is not a plain file
    /// or directory.
    #[error("archive entry {path:?} refused: {reason}")]
    UnsafeEntry {
        /// The entry's path as written in the archive.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The gzip or tar stream is damaged.
    #[error("archive is not a readable tar.gz: {0}")]
    Corrupt(#[source] io::Error),
    /// The unpacked folder is not a valid robot.
    #[error("not a valid robot: {}", problems.join("; "))]
    InvalidRobot {
        /// Every problem the validation found.
        problems: Vec<String>,
    },
    /// The daemon could not take the new robot into use; the previous one
    /// was put back.
    #[error("the new robot was installed but the daemon refused it ({reason}); the previous robot is back in place")]
    Activation {
        /// The daemon's reason.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RobotUpdateError {
    let path = path.to_path_buf();
    move |source| RobotUpdateError::Io { op, path, source }
}

/// A robot push as sent on `robot/<request-id>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RobotPush {
    /// The robot's folder name under the robots folder.
    pub name: String,
    /// sha256 of the archive bytes, hex.
    pub sha256: String,
    /// The tar.gz, base64 (standard alphabet, padded).
    pub archive: String,
}

/// A push whose name, size and checksum are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedArchive {
    /// Robot name.
    pub name: String,
    /// sha256, lower-case hex.
    pub sha256: String,
    /// The tar.gz bytes.
    pub bytes: Vec<u8>,
}

/// True for names usable as a robot folder: one safe topic level that is
/// not hidden (no `.`, `..`, staging folders) and not a rollback folder.
pub fn valid_name(name: &str) -> bool {
    valid_id(name) && !name.starts_with('.') && !name.ends_with(PREV_SUFFIX)
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the push message for `archive` (what `voiceblock fleet push-robot` sends).
pub fn push_message(name: &str, archive: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&RobotPush {
        name: name.to_string(),
        sha256: sha256_hex(archive),
        archive: base64::engine::general_purpose::STANDARD.encode(archive),
    })
    .unwrap_or_default()
}

/// Parses a push and checks its limits and checksum; nothing touches the disk.
pub fn verify(payload: &[u8]) -> Result<VerifiedArchive, RobotUpdateError> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(RobotUpdateError::MessageTooLarge { len: payload.len() });
    }
    let push: RobotPush = serde_json::from_slice(payload).map_err(RobotUpdateError::BadMessage)?;
    if !valid_name(&push.name) {
        return Err(RobotUpdateError::BadName { name: push.name });
    }
    let expected = push.sha256.to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RobotUpdateError::BadChecksumFormat {
            given: push.sha256.chars().take(80).collect(),
        });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(push.archive.as_bytes())
        .map_err(RobotUpdateError::Base64)?;
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(RobotUpdateError::ArchiveTooLarge { len: bytes.len() });
    }
    let actual = sha256_hex(&bytes);
    if actual != expected {
        return Err(RobotUpdateError::ChecksumMismatch { expected, actual });
    }
    Ok(VerifiedArchive {
        name: push.name,
        sha256: actual,
        bytes,
    })
}

/// A reader that stops with an error once more than `left` bytes went through
/// it (a gzip bomb ends there instead of filling memory or disk).
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other("decompressed size over the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unpacked {
    /// Regular files written.
    pub files: usize,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// The entry's path as a relative path of normal components, or why not.
fn safe_relative(raw: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path traversal ('..')"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("empty path");
    }
    Ok(out)
}

/// Unpacks a tar.gz into `dest` (an empty directory), refusing links,
/// devices, fifos, absolute paths, `..`, duplicates, and anything over the
/// limits. Files are written 0644 and directories with the default mode:
/// modes, owners and times in the archive are ignored.
pub fn unpack(archive: &[u8], dest: &Path) -> Result<Unpacked, RobotUpdateError> {
    let mut capped = Capped {
        inner: flate2::read::GzDecoder::new(archive),
        left: MAX_UNPACKED_BYTES + TAR_OVERHEAD,
        exceeded: false,
    };
    let result = unpack_from(&mut capped, dest);
    match result {
        Err(RobotUpdateError::Corrupt(_)) if capped.exceeded => {
            Err(RobotUpdateError::UnpackedTooLarge)
        }
        other => other,
    }
}

fn unpack_from(reader: &mut dyn Read, dest: &Path) -> Result<Unpacked, RobotUpdateError> {
    let mut ar = tar::Archive::new(reader);
    let mut done = Unpacked::default();
    let mut entries_seen = 0usize;
    for entry in ar.entries().map_err(RobotUpdateError::Corrupt)? {
        let mut entry = entry.map_err(RobotUpdateError::Corrupt)?;
        let kind = entry.header().entry_type();
        // A pax global header only carries defaults for later entries,
        // which are ignored anyway (no modes, owners or times are applied).
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        entries_seen += 1;
        if entries_seen > MAX_ENTRIES {
            return Err(RobotUpdateError::TooManyEntries);
        }
        let raw = entry
            .path()
            .map_err(RobotUpdateError::Corrupt)?
            .into_owned();
        let shown = raw.display().to_string();
        let unsafe_entry = |reason| RobotUpdateError::UnsafeEntry {
            path: shown.chars().take(200).collect(),
            reason,
        };
        let reason = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {
                None
            }
            tar::EntryType::Symlink => Some("symbolic link"),
            tar::EntryType::Link => Some("hard link"),
            tar::EntryType::Char | tar::EntryType::Block => Some("device file"),
            tar::EntryType::Fifo => Some("named pipe"),
            _ => Some("not a regular file or directory"),
        };
        if let Some(reason) = reason {
            return Err(unsafe_entry(reason));
        }
        let rel = match safe_relative(&raw) {
            Ok(r) => r,
            // "./" alone is the archive's root.
            Err("empty path") if kind == tar::EntryType::Directory => continue,
            Err(reason) => return Err(unsafe_entry(reason)),
        };
        let target = dest.join(&rel);
        if kind == tar::EntryType::Directory {
            std::fs::create_dir_all(&target).map_err(io_err("creating", &target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    unsafe_entry("duplicate entry")
                } else {
                    RobotUpdateError::Io {
                        op: "creating",
                        path: target.clone(),
                        source: e,
                    }
                }
            })?;
        let left = MAX_UNPACKED_BYTES - done.bytes;
        let n = io::copy(&mut (&mut entry).take(left + 1), &mut file)
            .map_err(RobotUpdateError::Corrupt)?;
        if n > left {
            return Err(RobotUpdateError::UnpackedTooLarge);
        }
        file.flush().map_err(io_err("writing", &target))?;
        done.bytes += n;
        done.files += 1;
    }
    Ok(done)
}

/// Packs a robot folder into a tar.gz (contents at the archive's root,
/// sorted, modes 0644/0755, times zeroed so the same folder gives the same
/// archive). Symbolic links and special files are refused, as the box would.
pub fn pack(dir: &Path) -> Result<Vec<u8>, RobotUpdateError> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut builder = tar::Builder::new(gz);
    let mut count = 0usize;
    let mut total = 0u64;
    pack_dir(dir, Path::new(""), &mut builder, &mut count, &mut total)?;
    let gz = builder.into_inner().map_err(io_err("packing", dir))?;
    let bytes = gz.finish().map_err(io_err("packing", dir))?;
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(RobotUpdateError::ArchiveTooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

fn pack_dir(
    root: &Path,
    rel: &Path,
    builder: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
    count: &mut usize,
    total: &mut u64,
) -> Result<(), RobotUpdateError> {
    let here = root.join(rel);
    let mut names = std::fs::read_dir(&here)
        .map_err(io_err("reading", &here))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("reading", &here))?;
    names.sort();
    for name in names {
        let rel_path = rel.join(&name);
        let path = root.join(&rel_path);
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(RobotUpdateError::TooManyEntries);
        }
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel_path, io::empty())
                .map_err(io_err("packing", &path))?;
            pack_dir(root, &rel_path, builder, count, total)?;
        } else if meta.is_file() {
            *total += meta.len();
            if *total > MAX_UNPACKED_BYTES {
                return Err(RobotUpdateError::UnpackedTooLarge);
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(meta.len());
            let file = std::fs::File::open(&path).map_err(io_err("reading", &path))?;
            builder
                .append_data(&mut header, &rel_path, file)
                .map_err(io_err("packing", &path))?;
        } else {
            return Err(RobotUpdateError::UnsafeEntry {
                path: rel_path.display().to_string(),
                reason: if meta.file_type().is_symlink() {
                    "symbolic link"
                } else {
                    "not a regular file or directory"
                },
            });
        }
    }
    Ok(())
}

/// Checks a staged folder with vb-dialog's robot loader: every problem of
/// robot.toml, prompt.md and the declared audio, at once. This is
/// [`Device::validate_robot`]'s default.
pub fn validate_with_loader(dir: &Path) -> Result<Value, Vec<String>> {
    match vb_dialog::Robot::load(dir) {
        Ok(r) => Ok(json!({
            "robot": r.name,
            "language": r.language.code(),
            "phrases": r.phrases().len(),
        })),
        Err(e) => Err(vec![e.to_string()]),
    }
}

/// Swaps `staged` in as `robots/<name>`: the current folder (if any) becomes
/// `<name>.prev` (an older `.prev` is removed first), then `staged` is
/// renamed into place. If the last rename fails the current folder is put
/// back. Returns whether there was a previous folder.
///
/// Two renames, not one exchange: between them (microseconds) `<name>` does
/// not exist, so a reader must treat a missing folder as "keep the robot
/// already loaded". After a power cut in that window [`recover`] puts
/// `<name>.prev` back. (`renameat2(RENAME_EXCHANGE)` would close the window
/// but needs `unsafe` FFI; not worth it for a folder read at reload time.)
pub fn swap_in(robots: &Path, name: &str, staged: &Path) -> Result<bool, RobotUpdateError> {
    let target = robots.join(name);
    let prev = robots.join(format!("{name}{PREV_SUFFIX}"));
    if prev.exists() {
        std::fs::remove_dir_all(&prev).map_err(io_err("removing", &prev))?;
    }
    let had_previous = target.exists();
    if had_previous {
        std::fs::rename(&target, &prev).map_err(io_err("moving aside", &target))?;
    }
    if let Err(source) = std::fs::rename(staged, &target) {
        if had_previous {
            let _ = std::fs::rename(&prev, &target);
        }
        return Err(RobotUpdateError::Io {
            op: "moving into place",
            path: target,
            source,
        });
    }
    Ok(had_previous)
}

/// Undoes [`swap_in`]: `robots/<name>` goes away and `<name>.prev` (if there
/// is one) takes its place.
pub fn roll_back(robots: &Path, name: &str) -> Result<(), RobotUpdateError> {
    let target = robots.join(name);
    let prev = robots.join(format!("{name}{PREV_SUFFIX}"));
    if target.exists() {
        // Renamed out of the way first so the name is free at once.
        let trash = robots.join(format!("{STAGING_PREFIX}{name}-{}", uuid::Uuid::new_v4()));
        std::fs::rename(&target, &trash).map_err(io_err("moving aside", &target))?;
        let _ = std::fs::remove_dir_all(&trash);
    }
    if prev.exists() {
        std::fs::rename(&prev, &target).map_err(io_err("restoring", &prev))?;
    }
    Ok(())
}

/// Repairs what a power cut in the middle of an update can leave: staging
/// folders are removed, and a `<name>.prev` whose `<name>` is missing is put
/// back. The daemon calls this at start-up, before loading robots. Returns
/// the names restored.
pub fn recover(robots: &Path) -> Result<Vec<String>, RobotUpdateError> {
    let mut restored = Vec::new();
    let entries = match std::fs::read_dir(robots) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(restored),
        Err(e) => return Err(io_err("reading", robots)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("reading", robots))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if name.starts_with(STAGING_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if let Some(base) = name.strip_suffix(PREV_SUFFIX) {
            let target = robots.join(base);
            if !target.exists() {
                std::fs::rename(entry.path(), &target).map_err(io_err("restoring", &target))?;
                restored.push(base.to_string());
            }
        }
    }
    Ok(restored)
}

/// Installs a verified archive into `robots`: unpacks into a staging folder
/// inside it, has the device validate it, swaps it in, and tells the device;
/// if the device refuses the installed robot, the previous one is put back.
pub fn install(
    device: &dyn Device,
    robots: &Path,
    archive: &VerifiedArchive,
) -> Result<Value, RobotUpdateError> {
    std::fs::create_dir_all(robots).map_err(io_err("creating", robots))?;
    let target = robots.join(&archive.name);
    if std::fs::read_to_string(target.join(SHA_FILE)).is_ok_and(|s| s.trim() == archive.sha256) {
        return Ok(json!({
            "name": archive.name,
            "sha256": archive.sha256,
            "unchanged": true,
        }));
    }
    // Removed on drop: every early return cleans up.
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(robots)
        .map_err(io_err("creating a staging folder in", robots))?;
    let staged = staging.path().join(&archive.name);
    std::fs::create_dir(&staged).map_err(io_err("creating", &staged))?;
    let unpacked = unpack(&archive.bytes, &staged)?;
    let robot = device
        .validate_robot(&archive.name, &staged)
        .map_err(|problems| RobotUpdateError::InvalidRobot { problems })?;
    let sha_file = staged.join(SHA_FILE);
    std::fs::write(&sha_file, format!("{}\n", archive.sha256))
        .map_err(io_err("writing", &sha_file))?;
    let had_previous = swap_in(robots, &archive.name, &staged)?;
    let activated = match device.robot_installed(&archive.name, &target) {
        Ok(v) => v,
        Err(reason) => {
            roll_back(robots, &archive.name)?;
            return Err(RobotUpdateError::Activation { reason });
        }
    };
    Ok(json!({
        "name": archive.name,
        "sha256": archive.sha256,
        "files": unpacked.files,
        "bytes": unpacked.bytes,
        "unchanged": false,
        "previous": had_previous.then(|| format!("{}{PREV_SUFFIX}", archive.name)),
        "robot": robot,
        "activated": activated,
    }))
}

/// Handles one push end to end and builds the reply (`{"ok": true,
/// "result": ...}` or `{"ok": false, "error": ...}`). Blocking: the agent
/// runs it on a blocking thread.
pub fn handle(device: &dyn Device, payload: &[u8]) -> Value {
    let result = match device.robots_dir() {
        None => Err(RobotUpdateError::NotAccepted),
        Some(robots) => verify(payload).and_then(|a| install(device, &robots, &a)),
    };
    match result {
        Ok(v) => json!({ "ok": true, "result": v }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROBOT_TOML: &str = include_str!("../../../robots/reception-en/robot.toml");

    struct Dev {
        robots: Option<PathBuf>,
        refuse_activation: bool,
    }

    impl Device for Dev {
        fn apply_config(&self, _: u64, _: &Value) -> Result<(), Vec<String>> {
            Ok(())
        }
        fn robots_dir(&self) -> Option<PathBuf> {
            self.robots.clone()
        }
        fn robot_installed(&self, _: &str, _: &Path) -> Result<Value, String> {
            if self.refuse_activation {
                Err("reload failed".into())
            } else {
                Ok(json!("reloaded"))
            }
        }
    }

    /// A tar.gz built from raw headers, so that the entries the packer
    /// would never write (traversal, links, devices) can be made.
    fn raw_archive(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                h.as_old_mut().linkname[..9].copy_from_slice(b"/etc/pass");
                h.set_size(0);
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn robot_folder(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("robot.toml"), ROBOT_TOML).unwrap();
        std::fs::write(dir.join("prompt.md"), "Be brief.").unwrap();
    }

    fn push(name: &str, archive: &[u8]) -> Vec<u8> {
        push_message(name, archive)
    }

    fn dev(robots: &Path) -> Dev {
        Dev {
            robots: Some(robots.to_path_buf()),
            refuse_activation: false,
        }
    }

    fn error_of(reply: &Value) -> String {
        assert_eq!(reply["ok"], false, "{reply}");
        reply["error"].as_str().unwrap().to_string()
    }

    /// The robots folder holds exactly the old robot, untouched.
    fn old_robot_untouched(robots: &Path) {
        assert_eq!(
            std::fs::read_to_string(robots.join("r1/prompt.md")).unwrap(),
            "old"
        );
        let names: Vec<_> = std::fs::read_dir(robots)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["r1".to_string()],
            "leftovers in the robots folder"
        );
    }

    fn with_old_robot() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let robots = t.path().join("robots");
        robot_folder(&robots.join("r1"));
        std::fs::write(robots.join("r1/prompt.md"), "old").unwrap();
        (t, robots)
    }

    #[test]
    fn a_packed_robot_installs_and_keeps_the_previous_one() {
        let (t, robots) = with_old_robot();
        let src = t.path().join("src");
        robot_folder(&src);
        std::fs::create_dir(src.join("audio")).unwrap();
        std::fs::write(src.join("audio/extra.bin"), [1u8; 100]).unwrap();
        let archive = pack(&src).unwrap();
        assert_eq!(archive, pack(&src).unwrap(), "packing is deterministic");
        let reply = handle(&dev(&robots), &push("r1", &archive));
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["result"]["files"], 3);
        assert_eq!(reply["result"]["previous"], "r1.prev");
        assert_eq!(reply["result"]["robot"]["robot"], "reception-en");
        assert_eq!(reply["result"]["activated"], "reloaded");
        assert_eq!(
            std::fs::read_to_string(robots.join("r1/prompt.md")).unwrap(),
            "Be brief."
        );
        assert_eq!(
            std::fs::read_to_string(robots.join("r1.prev/prompt.md")).unwrap(),
            "old"
        );
        // The same push again (a QoS 1 redelivery) changes nothing: the
        // real previous robot stays in r1.prev.
        let reply = handle(&dev(&robots), &push("r1", &archive));
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["result"]["unchanged"], true, "{reply}");
        assert_eq!(
            std::fs::read_to_string(robots.join("r1.prev/prompt.md")).unwrap(),
            "old"
        );
        // A different push replaces the old .prev.
        std::fs::write(src.join("prompt.md"), "Be briefer.").unwrap();
        let reply = handle(&dev(&robots), &push("r1", &pack(&src).unwrap()));
        assert_eq!(reply["result"]["unchanged"], false, "{reply}");
        assert_eq!(
            std::fs::read_to_string(robots.join("r1.prev/prompt.md")).unwrap(),
            "Be brief."
        );
        // A new name has no previous folder.
        let reply = handle(&dev(&robots), &push("r2", &archive));
        assert_eq!(reply["result"]["previous"], Value::Null);
    }

    #[test]
    fn a_wrong_checksum_is_refused_and_nothing_changes() {
        let (t, robots) = with_old_robot();
        let src = t.path().join("src");
        robot_folder(&src);
        let archive = pack(&src).unwrap();
        let mut msg: Value = serde_json::from_slice(&push("r1", &archive)).unwrap();
        msg["sha256"] = json!("0".repeat(64));
        let e = error_of(&handle(&dev(&robots), msg.to_string().as_bytes()));
        assert!(e.starts_with("sha256 mismatch"), "{e}");
        msg["sha256"] = json!("abc");
        let e = error_of(&handle(&dev(&robots), msg.to_string().as_bytes()));
        assert!(e.contains("not 64 hex digits"), "{e}");
        old_robot_untouched(&robots);
    }

    #[test]
    fn unsafe_entries_are_refused_and_nothing_changes() {
        let (_t, robots) = with_old_robot();
        let toml = ROBOT_TOML.as_bytes();
        let cases: &[(&[u8], tar::EntryType, &str)] = &[
            (b"../escape.txt", tar::EntryType::Regular, "path traversal"),
            (b"audio/../../x", tar::EntryType::Regular, "path traversal"),
            (b"/etc/evil", tar::EntryType::Regular, "absolute path"),
            (b"link", tar::EntryType::Symlink, "symbolic link"),
            (b"hard", tar::EntryType::Link, "hard link"),
            (b"dev", tar::EntryType::Char, "device file"),
            (b"blk", tar::EntryType::Block, "device file"),
            (b"fifo", tar::EntryType::Fifo, "named pipe"),
        ];
        for (name, kind, why) in cases {
            let a = raw_archive(&[
                (b"robot.toml", tar::EntryType::Regular, toml),
                (name, *kind, b"x"),
            ]);
            let e = error_of(&handle(&dev(&robots), &push("r1", &a)));
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(name));
            assert!(e.contains("refused"), "{e}");
            old_robot_untouched(&robots);
        }
        assert!(!robots.parent().unwrap().join("escape.txt").exists());
        let a = raw_archive(&[
            (b"robot.toml", tar::EntryType::Regular, toml),
            (b"./robot.toml", tar::EntryType::Regular, toml),
        ]);
        let e = error_of(&handle(&dev(&robots), &push("r1", &a)));
        assert!(e.contains("duplicate entry"), "{e}");
        old_robot_untouched(&robots);
    }

    #[test]
    fn limits_are_named_in_the_refusal() {
        let (_t, robots) = with_old_robot();
        // Too many entries.
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&[u8], tar::EntryType, &[u8])> = names
            .iter()
            .map(|n| (n.as_bytes(), tar::EntryType::Regular, &b""[..]))
            .collect();
        let e = error_of(&handle(&dev(&robots), &push("r1", &raw_archive(&entries))));
        assert!(e.contains("MAX_ENTRIES") && e.contains("500"), "{e}");
        // Unpacks too big: 65 MiB of zeros compresses to ~65 KiB.
        let zeros = vec![0u8; MAX_UNPACKED_BYTES as usize + 1024 * 1024];
        let a = raw_archive(&[(b"big.bin", tar::EntryType::Regular, &zeros)]);
        assert!(a.len() < MAX_ARCHIVE_BYTES);
        let e = error_of(&handle(&dev(&robots), &push("r1", &a)));
        assert!(e.contains("MAX_UNPACKED_BYTES"), "{e}");
        // The archive itself too big (checked before the checksum).
        let big = vec![7u8; MAX_ARCHIVE_BYTES + 1];
        let e = error_of(&handle(&dev(&robots), &push("r1", &big)));
        assert!(e.contains("MAX_ARCHIVE_BYTES"), "{e}");
        // The message too big.
        let e = error_of(&handle(&dev(&robots), &vec![b' '; MAX_MESSAGE_BYTES + 1]));
        assert!(e.contains("MAX_MESSAGE_BYTES"), "{e}");
        old_robot_untouched(&robots);
    }

    #[test]
    fn bad_messages_names_and_archives_are_refused() {
        let (_t, robots) = with_old_robot();
        let d = dev(&robots);
        let e = error_of(&handle(&d, b"{nope"));
        assert!(e.contains("not valid JSON"), "{e}");
        let e = error_of(&handle(
            &d,
            br#"{"name":"r1","sha256":"x","archive":"","extra":1}"#,
        ));
        assert!(e.contains("unknown field"), "{e}");
        for name in ["..", ".hidden", "r1.prev", "a/b", ""] {
            let e = error_of(&handle(&d, &push(name, b"x")));
            assert!(e.contains("is not allowed"), "{name}: {e}");
        }
        let e = error_of(&handle(
            &d,
            format!(
                r#"{{"name":"r1","sha256":"{}","archive":"!!"}}"#,
                "0".repeat(64)
            )
            .as_bytes(),
        ));
        assert!(e.contains("base64"), "{e}");
        let e = error_of(&handle(&d, &push("r1", b"not a gzip stream")));
        assert!(e.contains("not a readable tar.gz"), "{e}");
        let none = Dev {
            robots: None,
            refuse_activation: false,
        };
        let e = error_of(&handle(&none, &push("r1", b"x")));
        assert!(e.contains("does not accept robot updates"), "{e}");
        old_robot_untouched(&robots);
    }

    #[test]
    fn an_invalid_robot_is_refused_with_the_loaders_reasons() {
        let (_t, robots) = with_old_robot();
        let a = raw_archive(&[(b"prompt.md", tar::EntryType::Regular, b"hi")]);
        let e = error_of(&handle(&dev(&robots), &push("r1", &a)));
        assert!(
            e.starts_with("not a valid robot") && e.contains("robot.toml not found"),
            "{e}"
        );
        let a = raw_archive(&[(b"robot.toml", tar::EntryType::Regular, b"name = 5\n")]);
        let e = error_of(&handle(&dev(&robots), &push("r1", &a)));
        assert!(e.starts_with("not a valid robot"), "{e}");
        old_robot_untouched(&robots);
    }

    #[test]
    fn a_robot_the_daemon_refuses_is_rolled_back() {
        let (t, robots) = with_old_robot();
        let src = t.path().join("src");
        robot_folder(&src);
        let d = Dev {
            robots: Some(robots.clone()),
            refuse_activation: true,
        };
        let e = error_of(&handle(&d, &push("r1", &pack(&src).unwrap())));
        assert!(
            e.contains("reload failed") && e.contains("previous robot is back"),
            "{e}"
        );
        old_robot_untouched(&robots);
    }

    #[test]
    fn recovery_restores_an_interrupted_swap() {
        let (_t, robots) = with_old_robot();
        std::fs::rename(robots.join("r1"), robots.join("r1.prev")).unwrap();
        std::fs::create_dir(robots.join(format!("{STAGING_PREFIX}abc"))).unwrap();
        assert_eq!(recover(&robots).unwrap(), vec!["r1".to_string()]);
        old_robot_untouched(&robots);
        assert!(recover(&robots.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn packing_refuses_symlinks() {
        let t = tempfile::tempdir().unwrap();
        robot_folder(t.path());
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("pw")).unwrap();
        let e = pack(t.path()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }
}
