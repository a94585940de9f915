//! Links the system libsonic that espeak-rs-sys's static espeak-ng needs.
//!
//! espeak-ng's CMake build finds libsonic (Debian `libsonic-dev`, and
//! `libsonic-dev:arm64` for cross builds) and compiles calls to it into the
//! static library, but espeak-rs-sys does not tell rustc to link it. Declared
//! here as a dylib of this crate, rustc places it in the shared-library part of
//! every link line that contains vb-tts, after all rlibs (the static espeak-ng
//! included), so both lld and GNU ld resolve it in any binary, not only this
//! crate's tests.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-lib=dylib=sonic");
}
