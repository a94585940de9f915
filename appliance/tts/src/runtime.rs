//! Loading onnxruntime from an explicit shared library path, once per process.
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded or linked at build
//! time, and the library (`libonnxruntime.so.1.31.1`, installed by vb-models
//! from the PyPI wheel for the box's architecture) is opened at run time. Left
//! to itself, `ort` would open `libonnxruntime.so` from the loader path on
//! first use and panic if absent; loading it here first turns that into an
//! error that names the file.
//!
//! The library is opened here once before `ort` sees it: when `ort`
//! 2.0.0-rc.12 fails to open a library it builds its error through the very
//! API it failed to load, re-entering its own initialisation lock, and the
//! process hangs forever (observed with a file that is not a shared library).
//! Opening it first and looking up `OrtGetApiBase` turns every such case
//! into [`TtsError::OnnxRuntimeLoad`] and leaves `ort` only libraries that
//! load.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::TtsError;

/// The library this process loaded, if any.
static LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A handle proving onnxruntime is loaded; sessions may be created.
#[derive(Debug, Clone)]
pub struct OnnxRuntime {
    path: PathBuf,
}

impl OnnxRuntime {
    /// Loads onnxruntime from `library` (idempotent for the same file). A
    /// different file than the one already loaded is an error: the library is
    /// process-global and cannot be swapped.
    ///
    /// If another part of the process (another crate using `ort`) loaded the
    /// library first, this handle still works: `ort` keeps the first one.
    pub fn load(library: &Path) -> Result<Self, TtsError> {
        if !library.is_file() {
            return Err(TtsError::OnnxRuntimeMissing {
                path: library.to_path_buf(),
            });
        }
        let path = library
            .canonicalize()
            .unwrap_or_else(|_| library.to_path_buf());
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(active) = loaded.as_ref() {
            if *active != path {
                return Err(TtsError::OnnxRuntimeConflict {
                    active: active.clone(),
                    requested: path,
                });
            }
            return Ok(Self { path });
        }
        probe(&path)?;
        let builder = ort::init_from(&path).map_err(|source| TtsError::OnnxRuntimeLoad {
            path: path.clone(),
            reason: source.to_string(),
        })?;
        // `commit` is false when an environment already exists (someone else
        // initialised ort): theirs stays, which is fine for inference.
        let _fresh = builder.with_name("voiceblock-tts").commit();
        tracing::info!(library = %path.display(), "onnxruntime loaded");
        *loaded = Some(path.clone());
        Ok(Self { path })
    }

    /// The library file in use.
    pub fn library(&self) -> &Path {
        &self.path
    }
}

/// Opens `path` as a shared library and checks it exports onnxruntime's entry
/// point. The handle is closed again; `ort` reopens it (the loader keeps one
/// copy), so a library that passes here cannot fail to open there.
fn probe(path: &Path) -> Result<(), TtsError> {
    let failed = |reason: String| TtsError::OnnxRuntimeLoad {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: loading runs the library's initialisers; onnxruntime's are
    // benign, and this is the library the process is about to use anyway.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| failed(e.to_string()))?;
    // SAFETY: only the symbol's presence is checked; it is never called here.
    let entry =
        unsafe { lib.get::<unsafe extern "C" fn() -> *const std::ffi::c_void>(b"OrtGetApiBase\0") };
    entry
        .map(|_| ())
        .map_err(|e| failed(format!("not onnxruntime: {e}")))
}
