//! Transcribes WAV files with one model: a development tool for checking
//! fixtures and windows by ear and eye.
//!
//! `cargo run -p vb-stt --example transcribe -- MODEL LANG(en|ru|auto) THREADS [AUDIO_CTX] WAV...`
//! (AUDIO_CTX is a number, or `-` for the crate's rule.)

use vb_stt::{Language, TranscribeOptions, Transcriber, WhisperConfig, WhisperTranscriber};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, lang, threads, ctx, wavs @ ..] = args.as_slice() else {
        return Err("usage: transcribe MODEL en|ru|auto THREADS AUDIO_CTX|- WAV...".into());
    };
    let language = match lang.as_str() {
        "en" => Language::En,
        "ru" => Language::Ru,
        "auto" => Language::Auto,
        other => return Err(format!("unknown language {other:?}").into()),
    };
    let config = WhisperConfig {
        threads: threads.parse()?,
        // A dev tool: show what whisper makes of a clip however long it takes.
        budget: vb_stt::window::Budget {
            base_deadline_ms: 600_000,
            ..Default::default()
        },
        ..WhisperConfig::default()
    };
    let mut t = WhisperTranscriber::load(model, config)?;
    let opts = TranscribeOptions {
        language,
        audio_ctx: if ctx == "-" { None } else { Some(ctx.parse()?) },
        ..TranscribeOptions::default()
    };
    for wav in wavs {
        let pcm = vb_audio::wav::read(wav)?;
        let tr = t.transcribe_pcm(&pcm, &opts)?;
        println!(
            "{wav}: {:?} ctx {} {} ms lang {:?} {:?} filtered {:?}",
            tr.text, tr.audio_ctx, tr.elapsed_ms, tr.language, tr.detection, tr.filtered
        );
    }
    Ok(())
}
