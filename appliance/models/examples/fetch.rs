//! Installs models into the default cache: `fetch [--official] [NAME...]`.
//!
//! A developer stand-in for `voiceblock models fetch`, printing progress and
//! the time taken.

use std::process::ExitCode;
use std::time::Instant;

use vb_models::{Manifest, ModelStore, Source, Step};

fn main() -> ExitCode {
    let mut source = Source::Airgap;
    let mut names = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--official" {
            source = Source::Official;
        } else {
            names.push(arg);
        }
    }
    let store = ModelStore::new(ModelStore::default_root());
    let manifest = Manifest::builtin();
    eprintln!(
        "models: {}  packages: {}",
        store.root().display(),
        store.pkgs_dir().display()
    );
    let start = Instant::now();
    let mut last = (String::new(), Step::Verify);
    let result = store.fetch(&manifest, &names, source, &mut |p| {
        if (p.model.as_str(), p.step) != (last.0.as_str(), last.1) {
            eprintln!(
                "{:>6.1} s  {:<34} {:?}",
                start.elapsed().as_secs_f64(),
                p.model,
                p.step
            );
            last = (p.model.clone(), p.step);
        }
    });
    match result {
        Ok(report) => {
            for m in &report.models {
                println!("{:<34} {:?}  {}", m.name, m.outcome, m.path.display());
            }
            eprintln!("done in {:.1} s", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
