//! vb-stt against the real whisper models and espeak-ng speech (fixtures/make.sh).
//!
//! Models come from `$VOICEBLOCK_MODELS` (default `~/.cache/voiceblock/models`):
//! `ggml-base.bin` (multilingual) and `ggml-tiny.en.bin`. The tests fail, naming
//! the path, when a model is missing: run the model fetch step first.
//!
//! WER bounds were measured on these fixtures (espeak-ng voices, which whisper
//! finds harder than people) and are set a little above what was measured, so
//! a regression in windowing or filtering shows up; the measured values are
//! next to each bound. espeak-ng's Russian is far from natural and whisper base
//! gets about half its words (the same with the full 30 s window), so the
//! Russian bounds are loose and the tests also require Cyrillic output.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

mod common;

use common::{model, test_config};
use vb_stt::{
    word_error_rate, CancelFlag, FilterReason, Lang, Language, SttError, TranscribeOptions,
    Transcriber, Transcript, WhisperConfig, WhisperTranscriber,
};

const EN_2S: &str = "Hello, I would like to book a table.";
const EN_5S: &str =
    "Good morning. My name is John Smith and I need a plumber for my kitchen tomorrow.";
const RU_2S: &str = "Да, конечно. Спасибо большое.";
const RU_5S: &str = "Спасибо, да, мне подходит время в пятницу после обеда.";

/// One loaded model per test binary, used by one test at a time: the box has
/// two cores, and parallel decodes would make the cancellation timing noise.
fn shared(name: &'static str) -> MutexGuard<'static, WhisperTranscriber> {
    static BASE: OnceLock<Mutex<WhisperTranscriber>> = OnceLock::new();
    static BASE_Q8: OnceLock<Mutex<WhisperTranscriber>> = OnceLock::new();
    static TINY: OnceLock<Mutex<WhisperTranscriber>> = OnceLock::new();
    let cell = match name {
        "ggml-base.bin" => &BASE,
        "ggml-base-q8_0.bin" => &BASE_Q8,
        _ => &TINY,
    };
    cell.get_or_init(|| {
        let t = WhisperTranscriber::load(model(name), test_config())
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
        Mutex::new(t)
    })
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn fixture(name: &str) -> vb_audio::Pcm {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    vb_audio::wav::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(t: &mut WhisperTranscriber, wav: &str, language: Language) -> Transcript {
    let pcm = fixture(wav);
    let opts = TranscribeOptions {
        language,
        ..TranscribeOptions::default()
    };
    t.transcribe_pcm(&pcm, &opts)
        .unwrap_or_else(|e| panic!("{wav}: {e}"))
}

fn assert_close(t: &Transcript, reference: &str, bound: f32) {
    let wer = word_error_rate(reference, &t.text);
    eprintln!(
        "WER {wer:.3} (bound {bound}) ctx {} {} ms: {:?}",
        t.audio_ctx, t.elapsed_ms, t.text
    );
    assert!(
        wer <= bound,
        "WER {wer:.3} over {bound}: heard {:?}, said {reference:?}",
        t.text
    );
}

/// Deterministic white noise at the given peak amplitude.
fn noise(seconds: f32, amplitude: f32) -> Vec<f32> {
    let mut x: u32 = 0x1234_5678;
    (0..(seconds * 16_000.0) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

#[test]
fn base_transcribes_english() {
    let mut t = shared("ggml-base.bin");
    let short = run(&mut t, "en_2s.wav", Language::En);
    assert_eq!(short.language, Some(Lang::En));
    assert_eq!(short.audio_ctx, 320);
    assert_close(&short, EN_2S, 0.15); // measured 0.0
    let long = run(&mut t, "en_5s.wav", Language::En);
    assert_close(&long, EN_5S, 0.15); // measured 0.0
}

#[test]
fn base_q8_0_hears_what_base_hears() {
    // The converter's q8_0 file: same windows, same bounds as f16 base.
    let mut t = shared("ggml-base-q8_0.bin");
    assert!(t.is_multilingual());
    let short = run(&mut t, "en_2s.wav", Language::En);
    assert_eq!(short.audio_ctx, 320);
    assert_close(&short, EN_2S, 0.15); // measured 0.0
    let long = run(&mut t, "en_5s.wav", Language::En);
    assert_close(&long, EN_5S, 0.15); // measured 0.0
    let ru = run(&mut t, "ru_5s.wav", Language::Ru);
    assert!(
        ru.text.chars().any(|c| ('а'..='я').contains(&c)),
        "{:?}",
        ru.text
    );
    assert_close(&ru, RU_5S, 0.8);
}

#[test]
fn tiny_en_transcribes_english() {
    let mut t = shared("ggml-tiny.en.bin");
    assert!(!t.is_multilingual());
    let short = run(&mut t, "en_2s.wav", Language::Auto);
    assert_eq!(short.language, Some(Lang::En));
    assert_eq!(short.audio_ctx, 320);
    assert_close(&short, EN_2S, 0.2); // measured 0.0
    let long = run(&mut t, "en_5s.wav", Language::En);
    assert_close(&long, EN_5S, 0.25); // measured 0.067
}

#[test]
fn base_transcribes_russian() {
    let mut t = shared("ggml-base.bin");
    let cyrillic = |t: &Transcript| t.text.chars().any(|c| ('а'..='я').contains(&c));
    let short = run(&mut t, "ru_2s.wav", Language::Ru);
    assert_eq!(short.language, Some(Lang::Ru));
    assert_eq!(short.audio_ctx, 384);
    assert!(cyrillic(&short), "{:?}", short.text);
    assert_close(&short, RU_2S, 0.75); // measured 0.5 ("Комещаю. Спасибо большое.")
    let long = run(&mut t, "ru_5s.wav", Language::Ru);
    assert!(cyrillic(&long), "{:?}", long.text);
    assert_close(&long, RU_5S, 0.8); // measured 0.56-0.67
}

#[test]
fn auto_detects_english_and_russian() {
    let mut t = shared("ggml-base.bin");
    // Measured: en 0.96/0.91 vs ru < 0.005; Russian ru 0.25/0.40 vs en 0.16/0.09.
    for (wav, lang, window) in [
        ("en_2s.wav", Lang::En, 320),
        ("en_5s.wav", Lang::En, 352),
        ("ru_2s.wav", Lang::Ru, 384),
        ("ru_5s.wav", Lang::Ru, 384),
    ] {
        let tr = run(&mut t, wav, Language::Auto);
        let det = tr.detection.expect("Auto reports detection");
        eprintln!("{wav}: {det:?} -> {:?} {:?}", tr.language, tr.text);
        assert_eq!(tr.language, Some(lang), "{wav}: {det:?}");
        assert_eq!(
            tr.audio_ctx, window,
            "{wav}: decoded on the detected language's window"
        );
        assert!(!tr.text.is_empty(), "{wav}");
    }
}

#[test]
fn phone_rate_audio_is_resampled() {
    let mut t = shared("ggml-base.bin");
    let pcm = fixture("en_2s_8k.wav");
    assert_eq!(pcm.rate, 8000);
    let tr = t
        .transcribe_pcm(
            &pcm,
            &TranscribeOptions {
                language: Language::En,
                ..Default::default()
            },
        )
        .expect("8 kHz transcribes");
    assert!((2700..2800).contains(&tr.audio_ms), "{}", tr.audio_ms);
    assert_close(&tr, EN_2S, 0.15); // measured 0.0
}

#[test]
fn silence_and_noise_give_an_empty_transcript() {
    for name in ["ggml-base.bin", "ggml-tiny.en.bin"] {
        let mut t = shared(name);
        let opts = TranscribeOptions::default();

        let silence = t.transcribe(&vec![0.0; 32_000], &opts).expect("silence");
        assert_eq!(silence.text, "", "{name}");
        assert!(
            matches!(silence.filtered, Some(FilterReason::Silence { .. })),
            "{name}"
        );
        assert_eq!(
            silence.audio_ctx, 0,
            "whisper is not run on digital silence"
        );

        // Loud enough to pass the silence gate, so whisper does run.
        for (label, amplitude) in [("line hiss", 0.005), ("white noise", 0.3)] {
            let tr = t.transcribe(&noise(3.0, amplitude), &opts).expect("noise");
            eprintln!(
                "{name} {label}: raw {:?} -> {:?} ({:?}, p={:?}, {:.1} dBFS)",
                tr.raw_text, tr.text, tr.filtered, tr.no_speech_prob, tr.rms_dbfs
            );
            assert!(tr.audio_ctx > 0, "{name} {label}: whisper ran");
            assert_eq!(tr.text, "", "{name} {label}: raw {:?}", tr.raw_text);
        }
    }
}

#[test]
fn cancellation_stops_decoding_quickly() {
    let mut t = shared("ggml-base.bin");
    let pcm = fixture("en_5s.wav");

    let cancel = CancelFlag::new();
    cancel.cancel();
    let opts = TranscribeOptions {
        language: Language::En,
        cancel,
        ..TranscribeOptions::default()
    };
    let started = Instant::now();
    let err = t
        .transcribe(&pcm.samples, &opts)
        .expect_err("pre-cancelled");
    assert!(matches!(err, SttError::Cancelled { .. }), "{err}");
    eprintln!("pre-cancelled call returned after {:?}", started.elapsed());

    // Mid-decode. whisper.cpp polls the abort callback after each encoder
    // pass and each decoder step (not inside an encoder pass), so a cancel
    // lands at the next such point: compare against the same call uncancelled.
    let opts = TranscribeOptions {
        language: Language::Auto,
        ..TranscribeOptions::default()
    };
    let whole = t.transcribe(&pcm.samples, &opts).expect("uncancelled run");
    let whole_ms = u64::from(whole.elapsed_ms);
    let cancel = CancelFlag::new();
    let opts = TranscribeOptions {
        cancel: cancel.clone(),
        ..opts
    };
    let raise_after = Duration::from_millis(whole_ms / 3);
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(raise_after);
        cancel.cancel();
        Instant::now()
    });
    let started = Instant::now();
    let result = t.transcribe(&pcm.samples, &opts);
    let returned = Instant::now();
    let raised = raiser.join().expect("raiser thread");
    let latency = returned.saturating_duration_since(raised);
    let total = returned - started;
    eprintln!("uncancelled {whole_ms} ms; cancelled at {raise_after:?}, returned after {total:?}, latency {latency:?}");
    let err = result.expect_err("cancelled mid-decode");
    assert!(matches!(err, SttError::Cancelled { .. }), "{err}");
    assert!(
        total.as_millis() < u128::from(whole_ms),
        "cancel must cut the call short: {total:?} vs {whole_ms} ms"
    );

    // The state is reusable after a cancel.
    let tr = run(&mut t, "en_2s.wav", Language::En);
    assert_close(&tr, EN_2S, 0.15);
}

#[test]
fn deadline_stops_a_slow_decode() {
    let config = WhisperConfig {
        budget: vb_stt::window::Budget {
            base_deadline_ms: 1,
            deadline_ms_per_second: 0,
            ..Default::default()
        },
        ..WhisperConfig::default()
    };
    let mut t = WhisperTranscriber::load(model("ggml-tiny.en.bin"), config).expect("load");
    let pcm = fixture("en_2s.wav");
    let err = t
        .transcribe(&pcm.samples, &TranscribeOptions::default())
        .expect_err("1 ms is not enough");
    assert!(
        matches!(err, SttError::DeadlineExceeded { deadline_ms: 1, .. }),
        "{err}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let mut t = shared("ggml-tiny.en.bin");
    let opts = TranscribeOptions::default();
    assert!(matches!(
        t.transcribe(&[], &opts),
        Err(SttError::EmptyAudio)
    ));
    let err = t
        .transcribe(&vec![0.1; 16_000 * 31], &opts)
        .expect_err("31 s");
    assert!(err.to_string().contains("MAX_AUDIO_MS = 30000"), "{err}");
    let mut nan = vec![0.1; 16_000];
    nan[7] = f32::NAN;
    assert!(matches!(
        t.transcribe(&nan, &opts),
        Err(SttError::NonFiniteSample { index: 7, .. })
    ));
    let ru = TranscribeOptions {
        language: Language::Ru,
        ..Default::default()
    };
    let err = t
        .transcribe(&vec![0.1; 16_000], &ru)
        .expect_err("tiny.en has no Russian");
    assert!(
        matches!(
            err,
            SttError::LanguageUnsupported {
                language: Lang::Ru,
                ..
            }
        ),
        "{err}"
    );
    let bad_ctx = TranscribeOptions {
        audio_ctx: Some(1501),
        ..Default::default()
    };
    assert!(matches!(
        t.transcribe(&vec![0.1; 16_000], &bad_ctx),
        Err(SttError::InvalidAudioCtx {
            audio_ctx: 1501,
            ..
        })
    ));
}

#[test]
fn bad_model_files_are_errors_naming_the_path() {
    let dir = std::env::temp_dir().join(format!("vb-stt-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let missing = dir.join("ggml-missing.bin");
    let err = WhisperTranscriber::load(&missing, WhisperConfig::default()).expect_err("missing");
    assert!(matches!(err, SttError::ModelMissing { .. }), "{err}");
    assert!(err.to_string().contains("ggml-missing.bin"), "{err}");

    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, vec![0x5a; 4096]).expect("write");
    let err = WhisperTranscriber::load(&garbage, WhisperConfig::default()).expect_err("garbage");
    assert!(matches!(err, SttError::ModelNotGgml { .. }), "{err}");
    assert!(err.to_string().contains("garbage.bin"), "{err}");

    // Right magic, then cut short. whisper.cpp would load all of these
    // (a header alone is "an empty model for testing" to it).
    let real = std::fs::read(model("ggml-tiny.en.bin")).expect("read model");
    for (label, len) in [
        ("header", 64),
        ("vocab", 200_000),
        ("tensors", 20_000_000),
        ("last-tensor", real.len() - 1),
    ] {
        let truncated = dir.join(format!("truncated-{label}.bin"));
        std::fs::write(&truncated, &real[..len]).expect("write");
        let err =
            WhisperTranscriber::load(&truncated, WhisperConfig::default()).expect_err("truncated");
        assert!(
            matches!(err, SttError::ModelTruncated { .. }),
            "{label}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("truncated-{label}.bin")),
            "{err}"
        );
    }

    // Structurally whole but inconsistent (encoder width changed): this one
    // reaches whisper.cpp, which must refuse it with an error, not an abort.
    let mut inconsistent = real.clone();
    inconsistent[12..16].copy_from_slice(&512i32.to_le_bytes()); // n_audio_state 384 -> 512
    let path = dir.join("inconsistent.bin");
    std::fs::write(&path, &inconsistent).expect("write");
    let err = WhisperTranscriber::load(&path, WhisperConfig::default()).expect_err("inconsistent");
    assert!(matches!(err, SttError::ModelInvalid { .. }), "{err}");
    assert!(err.to_string().contains("inconsistent.bin"), "{err}");

    let err = WhisperTranscriber::load(
        model("ggml-tiny.en.bin"),
        WhisperConfig {
            threads: 0,
            ..Default::default()
        },
    )
    .expect_err("no threads");
    assert!(matches!(err, SttError::NoThreads), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
