//! The real engines: the Piper voice from the installed models, espeak-ng's
//! Russian voice, streaming, cancellation, the phrase cache, and the errors a
//! misconfigured box produces.

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use vb_tts::{
    CancelToken, Espeak, OnnxRuntime, Pcm, PiperOptions, PiperVoice, Tts, TtsConfig, TtsError,
};

/// One `Tts` for the whole binary: a Piper voice takes a second to load, and
/// the engines are process-global anyway.
fn tts() -> MutexGuard<'static, Tts> {
    static TTS: OnceLock<Mutex<Tts>> = OnceLock::new();
    TTS.get_or_init(|| Mutex::new(Tts::new(common::config()).expect("Tts::new")))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn seconds(pcm: &Pcm) -> f64 {
    pcm.samples.len() as f64 / f64::from(pcm.rate)
}

fn rms(pcm: &Pcm) -> f32 {
    let sum: f64 = pcm
        .samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum();
    (sum / pcm.samples.len().max(1) as f64).sqrt() as f32
}

#[test]
fn piper_speaks_an_english_sentence_with_energy_and_plausible_duration() {
    let mut tts = tts();
    let voice = tts.voice("en").unwrap();
    assert_eq!(voice.name(), common::VOICE);
    assert_eq!(voice.sample_rate(), 22050);
    let pcm = voice
        .synthesize("Thank you for calling, how can I help you today?")
        .unwrap();
    assert_eq!(pcm.rate, 22050);
    // Ten words at a conversational 2-4 words per second.
    let secs = seconds(&pcm);
    assert!((1.5..6.0).contains(&secs), "duration {secs:.2} s");
    let level = rms(&pcm);
    assert!(level > 0.02, "rms {level}: too quiet to be speech");
    assert!(pcm.samples.iter().all(|s| (-1.0..=1.0).contains(s)));
    // Speech has pauses and loud parts: the loudest 50 ms window is far
    // louder than the quietest one.
    let windows: Vec<f32> = pcm
        .samples
        .chunks(1102)
        .map(|w| w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32)
        .collect();
    let (lo, hi) = windows
        .iter()
        .fold((f32::MAX, 0f32), |(lo, hi), &e| (lo.min(e), hi.max(e)));
    assert!(hi > 100.0 * lo.max(1e-9), "no dynamics: {lo} .. {hi}");
}

#[test]
fn espeak_speaks_russian_when_no_russian_piper_voice_is_installed() {
    let mut tts = tts();
    assert!(matches!(tts.choice("ru"), vb_tts::VoiceChoice::Espeak(ref v) if v == "ru"));
    let voice = tts.voice("ru-RU").unwrap();
    assert_eq!(voice.name(), "espeak-ru");
    let pcm = voice.synthesize("Здравствуйте, чем могу помочь?").unwrap();
    let secs = seconds(&pcm);
    assert!((1.0..5.0).contains(&secs), "duration {secs:.2} s");
    assert!(rms(&pcm) > 0.02, "rms {}", rms(&pcm));
}

#[test]
fn english_and_russian_interleave_without_disturbing_each_other() {
    let mut tts = tts();
    let en1 = tts
        .voice("en")
        .unwrap()
        .synthesize("Good morning.")
        .unwrap();
    let ru = tts.voice("ru").unwrap().synthesize("Доброе утро.").unwrap();
    let en2 = tts
        .voice("en")
        .unwrap()
        .synthesize("Good morning.")
        .unwrap();
    assert!(!ru.samples.is_empty());
    // Piper samples noise, so two runs differ slightly, but the switch to
    // Russian must not change the English phonemes (same length within 20%).
    let (a, b) = (en1.samples.len() as f64, en2.samples.len() as f64);
    assert!((a - b).abs() / a < 0.2, "{a} vs {b}");
}

#[test]
fn stream_yields_one_chunk_per_sentence_at_the_output_rate() {
    let mut tts = tts();
    let text = "Hello, this is the reception. We are open until six. Can I take your name?";
    let sentences = tts.sentences(text);
    assert_eq!(sentences.len(), 3);
    let chunks: Vec<_> = tts
        .stream("en", text, 8000, CancelToken::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks.len(), 3);
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.index, i);
        assert_eq!(chunk.text, sentences[i]);
        assert_eq!(chunk.pcm.rate, 8000);
        assert!(seconds(&chunk.pcm) > 0.5, "sentence {i} too short");
    }
    // The concatenation is about as long as the same sentences spoken in one go.
    let streamed: f64 = chunks.iter().map(|c| seconds(&c.pcm)).sum();
    let whole = tts.voice("en").unwrap().synthesize(text).unwrap();
    let ratio = streamed / seconds(&whole);
    assert!(
        (0.8..1.25).contains(&ratio),
        "streamed {streamed:.2} s vs whole {:.2} s",
        seconds(&whole)
    );
}

#[test]
fn stream_stops_between_sentences_when_cancelled() {
    let mut tts = tts();
    let cancel = CancelToken::new();
    let mut stream = tts
        .stream(
            "ru",
            "Первое предложение. Второе предложение. Третье.",
            16000,
            cancel.clone(),
        )
        .unwrap();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(first.pcm.rate, 16000);
    assert_eq!(stream.remaining(), 2);
    cancel.cancel();
    assert!(stream.next().is_none());
}

#[test]
fn a_prepared_first_sentence_is_used_once_by_the_stream_that_starts_with_it() {
    let mut tts = tts();
    let reply = "Thank you, Anna. What number can we call you back on?";
    assert!(tts.prepare("en", reply, 8000, CancelToken::new()).unwrap());
    let (text, pcm) = tts.prepared().expect("prepared");
    assert_eq!(text, "Thank you, Anna.");
    let ready = pcm.clone();
    assert!(seconds(&ready) > 0.3 && rms(&ready) > 0.01);
    let chunks: Vec<Pcm> = tts
        .stream("en", reply, 8000, CancelToken::new())
        .unwrap()
        .map(|s| s.unwrap().pcm)
        .collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0].samples, ready.samples,
        "the prepared audio is sent"
    );
    assert!(tts.prepared().is_none(), "used once");
    assert!(tts.take_prepared_ms() > 0, "its synthesis time is reported");
    assert_eq!(tts.take_prepared_ms(), 0, "once");

    // Another reply, another rate or a cancelled preparation: nothing used.
    assert!(tts.prepare("en", reply, 8000, CancelToken::new()).unwrap());
    let other = tts
        .stream(
            "en",
            "Sorry, I did not catch that.",
            8000,
            CancelToken::new(),
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_ne!(other.pcm.samples, ready.samples);
    assert!(
        tts.prepared().is_none(),
        "a stream drops what it cannot use"
    );
    assert!(tts
        .prepare("en", reply, 16_000, CancelToken::new())
        .unwrap());
    let at_8k = tts
        .stream("en", reply, 8000, CancelToken::new())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(at_8k.pcm.rate, 8000);
    let cancelled = CancelToken::new();
    cancelled.cancel();
    assert!(!tts.prepare("en", reply, 8000, cancelled).unwrap());
    assert!(tts.prepared().is_none());
}

#[test]
fn cached_phrases_come_back_identical_and_count_hits() {
    let mut tts = tts();
    let greeting = "Hello! You have reached the front desk.";
    let before = tts.cache_stats();
    let first = tts.synthesize_cached("en", greeting, 8000).unwrap();
    let second = tts.synthesize_cached("en", greeting, 8000).unwrap();
    let after = tts.cache_stats();
    assert_eq!(first.samples, second.samples);
    assert_eq!(first.rate, 8000);
    assert_eq!(after.hits, before.hits + 1);
    assert_eq!(after.misses, before.misses + 1);
    // Another rate is another entry.
    let wide = tts.synthesize_cached("en", greeting, 16000).unwrap();
    assert_eq!(wide.rate, 16000);
    assert_eq!(tts.cache_stats().misses, before.misses + 2);
}

#[test]
fn empty_and_oversized_text_are_refused_with_the_limit_named() {
    let mut tts = tts();
    for empty in ["", "   ", "...", "—"] {
        assert!(
            matches!(
                tts.stream("en", empty, 8000, CancelToken::new()),
                Err(TtsError::EmptyText)
            ),
            "{empty:?}"
        );
    }
    let long = "word ".repeat(1000);
    let err = tts.synthesize_cached("en", &long, 8000).unwrap_err();
    assert!(
        matches!(
            err,
            TtsError::TextTooLong {
                chars: 5000,
                limit: 2000
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("max_text_chars"));
}

#[test]
fn bad_model_files_are_named_in_the_error() {
    let config = common::config();
    let runtime = OnnxRuntime::load(&config.onnxruntime).unwrap();
    let espeak = Espeak::init(&config.espeak_data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let load = |model: &std::path::Path, json: &std::path::Path| {
        PiperVoice::load(model, json, &runtime, &espeak, PiperOptions::default()).unwrap_err()
    };

    let missing = dir.path().join("nope.onnx");
    let err = load(&missing, &common::voice_config());
    assert!(
        matches!(&err, TtsError::ModelMissing { path } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("nope.onnx"));

    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not an ONNX model").unwrap();
    let err = load(&junk, &common::voice_config());
    assert!(
        matches!(&err, TtsError::ModelLoad { path, .. } if *path == junk),
        "{err}"
    );
    assert!(err.to_string().contains("junk.onnx"));

    let no_json = dir.path().join("absent.onnx.json");
    let err = load(&common::voice_model(), &no_json);
    assert!(
        matches!(&err, TtsError::VoiceConfigMissing { path } if *path == no_json),
        "{err}"
    );

    let bad_json = dir.path().join("bad.onnx.json");
    std::fs::write(&bad_json, b"{\"audio\": {\"sample_rate\": 22050}").unwrap();
    let err = load(&common::voice_model(), &bad_json);
    assert!(
        matches!(&err, TtsError::VoiceConfigInvalid { path, .. } if *path == bad_json),
        "{err}"
    );

    let real_json = std::fs::read_to_string(common::voice_config()).unwrap();
    let unknown_voice = dir.path().join("unknown-voice.onnx.json");
    std::fs::write(
        &unknown_voice,
        real_json.replace("\"en-us\"", "\"zz-nope\""),
    )
    .unwrap();
    let err = load(&common::voice_model(), &unknown_voice);
    assert!(
        matches!(&err, TtsError::EspeakVoiceUnavailable { voice, .. } if voice == "zz-nope"),
        "{err}"
    );

    let missing_lib = dir.path().join("libonnxruntime.so.1.31.1");
    let err = OnnxRuntime::load(&missing_lib).unwrap_err();
    assert!(
        matches!(&err, TtsError::OnnxRuntimeMissing { path } if *path == missing_lib),
        "{err}"
    );

    let err = Espeak::init(dir.path()).unwrap_err();
    assert!(matches!(&err, TtsError::EspeakDataMissing { .. }), "{err}");
    assert!(err.to_string().contains("espeak-ng-data/phontab"));
}

#[test]
fn tts_without_fallback_reports_the_missing_voice() {
    let mut config: TtsConfig = common::config();
    config.espeak_fallback = false;
    let mut tts = Tts::new(config).unwrap();
    let Err(err) = tts.voice("ru") else {
        panic!("a voice for ru without Piper voice or fallback");
    };
    assert!(
        matches!(&err, TtsError::NoVoice { language, .. } if language == "ru"),
        "{err}"
    );
}

#[test]
fn phonemes_keep_clause_punctuation_the_way_piper_voices_were_trained() {
    let config = common::config();
    let espeak = Espeak::init(&config.espeak_data).unwrap();
    let en = espeak
        .phonemize("en-us", "Thank you for calling, how can I help you today?")
        .unwrap();
    assert_eq!(
        en,
        ["θˈæŋk juː fɔːɹ kˈɔːlɪŋ, hˌaʊ kæn aɪ hˈɛlp juː tədˈeɪ?"]
    );
    let en = espeak
        .phonemize("en-us", "Mr. Smith called. Please call back!")
        .unwrap();
    assert_eq!(en.len(), 2, "{en:?}");
    assert!(
        en[0].starts_with("mˈɪstɚ smˈɪθ") && en[0].ends_with('.'),
        "{en:?}"
    );
    assert!(en[1].ends_with('!'), "{en:?}");

    let ru = espeak
        .phonemize(
            "ru",
            "Здравствуйте, чем могу помочь? Оставьте номер телефона.",
        )
        .unwrap();
    assert_eq!(ru.len(), 2, "{ru:?}");
    assert!(ru[0].contains(", ") && ru[0].ends_with('?'), "{ru:?}");
    assert!(
        ru[1].starts_with("ʌstˈɑvtʲi") && ru[1].ends_with('.'),
        "{ru:?}"
    );
}

#[test]
fn tts_and_its_stream_can_move_to_a_synthesis_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Tts>();
    assert_send::<vb_tts::SentenceStream<'static>>();
    assert_send::<CancelToken>();
}

#[test]
fn a_russian_piper_voice_dropped_into_the_voices_dir_is_used_for_russian() {
    // No Russian Piper voice can be downloaded here; stand one in with the
    // English model relabelled (its phoneme table covers the Russian IPA),
    // which exercises the real path: discovery, Russian phonemes, inference.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ru_RU-standin-medium.onnx");
    std::os::unix::fs::symlink(common::voice_model(), &model).unwrap();
    let json = std::fs::read_to_string(common::voice_config())
        .unwrap()
        .replace("\"en-us\"", "\"ru\"")
        .replace("\"en_US\"", "\"ru_RU\"");
    std::fs::write(dir.path().join("ru_RU-standin-medium.onnx.json"), json).unwrap();

    let mut config = common::config();
    config.voices_dir = dir.path().to_path_buf();
    let mut tts = Tts::new(config).unwrap();
    let voice = tts.voice("ru").unwrap();
    assert_eq!(voice.name(), "ru_RU-standin-medium");
    let pcm = voice.synthesize("Здравствуйте, чем могу помочь?").unwrap();
    assert!(
        (1.0..5.0).contains(&seconds(&pcm)),
        "{:.2} s",
        seconds(&pcm)
    );
    assert!(rms(&pcm) > 0.02);
    // English has no voice in that directory: espeak speaks it.
    assert_eq!(tts.voice("en").unwrap().name(), "espeak-en-us");
}
