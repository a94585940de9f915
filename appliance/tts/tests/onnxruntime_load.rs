//! onnxruntime is loaded once per process, so its load errors get their own
//! test binary (a fresh process): a file that is not a shared library is
//! refused with its path, the real library then loads, and asking for a
//! different library afterwards is a conflict rather than a silent no-op.

mod common;

use vb_tts::{OnnxRuntime, TtsError};

#[test]
fn a_broken_library_is_named_then_the_real_one_loads_and_cannot_be_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let err = OnnxRuntime::load(&fake).unwrap_err();
    assert!(matches!(&err, TtsError::OnnxRuntimeLoad { .. }), "{err}");
    assert!(
        err.to_string().contains("libonnxruntime.so.1.31.1"),
        "{err}"
    );

    let real = common::onnxruntime();
    assert!(
        real.is_file(),
        "{} missing: run the model fetch first",
        real.display()
    );
    let runtime = OnnxRuntime::load(&real).unwrap();
    assert_eq!(runtime.library(), real.canonicalize().unwrap());
    // Loading the same file again is fine.
    OnnxRuntime::load(&real).unwrap();

    let err = OnnxRuntime::load(&fake).unwrap_err();
    assert!(
        matches!(&err, TtsError::OnnxRuntimeConflict { .. }),
        "{err}"
    );
}
