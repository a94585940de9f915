//! Builds the 16 kHz speech fixtures in `tests/fixtures/` from espeak-ng
//! output (see `tests/fixtures/make.sh`, which runs this):
//! `make_fixtures <espeak-dir> <fixtures-dir>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vb_audio::{resample, wav, Pcm};

/// Pause between digit groups: long enough that normal patience (600 ms)
/// ends the utterance, short enough that digits patience (1500 ms) does not.
const GROUP_PAUSE_MS: u32 = 900;
/// Silence around each fixture, so the VAD sees a quiet line first.
const EDGE_MS: u32 = 300;

/// Errors are only printed, so a boxed error is enough here.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: make_fixtures <espeak-dir> <fixtures-dir>");
        return ExitCode::from(2);
    };
    match run(src, dst) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(src: &Path, dst: &Path) -> Result<()> {
    let sentence = load(&src.join("sentence.wav"))?;
    let mut out = Pcm::silence(16_000, EDGE_MS);
    out.append(&sentence)?;
    out.append_silence(EDGE_MS);
    save(&dst.join("sentence_16k.wav"), &out)?;

    let mut out = Pcm::silence(16_000, EDGE_MS);
    for (i, group) in ["group1", "group2", "group3"].iter().enumerate() {
        if i > 0 {
            out.append_silence(GROUP_PAUSE_MS);
        }
        out.append(&load(&src.join(format!("{group}.wav")))?)?;
    }
    out.append_silence(EDGE_MS);
    save(&dst.join("phone_digits_16k.wav"), &out)
}

/// Reads, resamples to 16 kHz and trims espeak's own leading and trailing
/// silence so the pauses are exactly what this program inserts.
fn load(path: &Path) -> Result<Pcm> {
    let pcm = resample(&wav::read(path)?, 16_000)?;
    let loud = |s: &f32| s.abs() > 0.003;
    let first = pcm.samples.iter().position(loud).unwrap_or(0);
    let last = pcm.samples.iter().rposition(loud).map_or(0, |i| i + 1);
    Ok(Pcm::new(
        16_000,
        pcm.samples[first..last.max(first)].to_vec(),
    ))
}

fn save(path: &Path, pcm: &Pcm) -> Result<()> {
    wav::write(path, pcm)?;
    println!("{}: {} ms", path.display(), pcm.duration_ms());
    Ok(())
}
