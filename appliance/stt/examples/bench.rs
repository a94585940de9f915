//! Runs `vb_stt::bench` on the test fixtures: 2, 5 and ~10 s utterances
//! (the 10 s clip is the 5 s one twice), English on tiny.en and base, Russian
//! on base.
//!
//! `cargo run --release -p vb-stt --example bench -- [RUNS]`, models from
//! `$VOICEBLOCK_MODELS` (default `~/.cache/voiceblock/models`).

use std::path::PathBuf;

use vb_stt::{bench, BenchClip, BenchConfig, Lang};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("vb_stt=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runs = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let models = match std::env::var_os("VOICEBLOCK_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?)
            .join(".cache/voiceblock/models"),
    };
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |name: &str| vb_audio::wav::read(fixtures.join(name));

    let mut clips = Vec::new();
    for (lang, tag, short_text, long_text) in [
        (
            Lang::En,
            "en",
            "Hello, I would like to book a table.",
            "Good morning. My name is John Smith and I need a plumber for my kitchen tomorrow.",
        ),
        (
            Lang::Ru,
            "ru",
            "Да, конечно. Спасибо большое.",
            "Спасибо, да, мне подходит время в пятницу после обеда.",
        ),
    ] {
        let short = read(&format!("{tag}_2s.wav"))?;
        let long = read(&format!("{tag}_5s.wav"))?;
        let mut double = long.clone();
        double.append_silence(300);
        double.append(&long)?;
        for (secs, pcm, text) in [
            (2, short, short_text.to_owned()),
            (5, long, long_text.to_owned()),
            (10, double, format!("{long_text} {long_text}")),
        ] {
            clips.push(BenchClip {
                name: format!("{tag} {secs} s"),
                audio_16k: pcm.samples,
                lang,
                reference: Some(text),
            });
        }
    }

    let config = BenchConfig {
        models: vec![
            models.join("ggml-tiny.en.bin"),
            models.join("ggml-base.bin"),
        ],
        threads: 2,
        runs,
    };
    let report = bench(&config, &clips)?;
    print!("{report}");
    for row in &report.rows {
        println!(
            "{} {}: tuned {:?} | plain {:?}",
            row.model, row.clip, row.tuned_text, row.plain_text
        );
    }
    Ok(())
}
