//! Measures what a caller feels: voice load time, time to first audio and
//! real-time factor for a one-sentence and a three-sentence reply, for the
//! Piper voice (English) and the espeak fallback (Russian).
//!
//! `cargo run --release -p vb-tts --example tts_bench [threads]`
//! (paths: see tests/common/mod.rs; VOICEBLOCK_MODELS etc.)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use vb_tts::{CancelToken, Tts};

const REPLIES: &[(&str, &str, &str)] = &[
    ("en", "1 sentence", "Thank you for calling, how can I help you today?"),
    (
        "en",
        "3 sentences",
        "Of course, I can help with that. We are open from nine to six, Monday to Saturday. May I have your name and a phone number to call you back?",
    ),
    ("ru", "1 sentence", "Спасибо за звонок, чем могу помочь?"),
    (
        "ru",
        "3 sentences",
        "Конечно, я могу помочь. Мы работаем с девяти до шести, с понедельника по субботу. Как вас зовут и по какому номеру вам перезвонить?",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = common::config();
    if let Some(threads) = std::env::args().nth(1) {
        config.piper.intra_threads = threads.parse()?;
    }
    println!("intra_threads = {}", config.piper.intra_threads);

    let t = Instant::now();
    let mut tts = Tts::new(config)?;
    println!("init (onnxruntime + espeak-ng + scan): {:>7.1} ms", ms(t));
    for lang in ["en", "ru"] {
        let t = Instant::now();
        tts.preload(lang)?;
        println!(
            "load voice {lang}: {:>7.1} ms ({})",
            ms(t),
            tts.voice(lang)?.name()
        );
    }
    // One warm-up: onnxruntime allocates its arenas on the first run.
    tts.voice("en")?.synthesize("Warm up.")?;

    const RUNS: usize = 5;
    for (lang, label, text) in REPLIES {
        let mut first = Vec::new();
        let mut rtf = Vec::new();
        let mut audio_s = 0.0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let mut first_ms = None;
            let mut samples = 0usize;
            for chunk in tts.stream(lang, text, 8000, CancelToken::new())? {
                let chunk = chunk?;
                first_ms.get_or_insert_with(|| ms(t));
                samples += chunk.pcm.samples.len();
            }
            let total = t.elapsed().as_secs_f64();
            audio_s = samples as f64 / 8000.0;
            first.push(first_ms.unwrap_or(0.0));
            rtf.push(total / audio_s);
        }
        first.sort_by(f64::total_cmp);
        rtf.sort_by(f64::total_cmp);
        println!(
            "{lang} {label:<11}: audio {audio_s:>5.2} s, first audio median {:>6.1} ms (min {:>6.1}), RTF median {:.3} (8 kHz out, {RUNS} runs)",
            first[RUNS / 2],
            first[0],
            rtf[RUNS / 2]
        );
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
