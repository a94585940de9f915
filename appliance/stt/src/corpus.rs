//! Recordings of people with their transcripts, for tests and benches: every
//! other voice the project tests with is synthesized (Piper, espeak-ng), and
//! whisper hears people differently.
//!
//! The set is the pocketsphinx 5.1.1 source package's test recordings
//! (BSD-2-Clause, CMU; the LibriVox reading is public domain), fetched and
//! sha256-checked by `scripts/setup.d/60-speech.sh`:
//!
//! - `librivox/`: five sentences read by a LibriVox volunteer, 3-7 s;
//! - `cards/`: five short phrases with number words, 1-3.5 s.
//!
//! Each folder has a transcript file, one `<s> words </s> (file-id)` per line.
//!
//! In Russian, [`asterisk_ru`] reads telephone prompts spoken by a person
//! (Debian's asterisk-core-sounds-ru-wav 1.6.1, CC-BY-3.0, Maxim Topal), at
//! 8 kHz, with their texts from the package's `core-sounds-ru.txt`
//! (`id: text` per line); [`ASTERISK_RU_PHRASES`] picks whole sentences a
//! caller or a receptionist might say.
//!
//! [`phone_path`] turns a clip into what the box hears of a caller.

use std::path::{Path, PathBuf};

use vb_audio::g711::Law;
use vb_audio::Pcm;

use crate::{SttError, SAMPLE_RATE};

/// The recordings' folder under the VoiceBlock cache.
pub const POCKETSPHINX_DIR: &str = "speech/pocketsphinx-5.1.1/test/data";

/// The Russian prompts' folder under the VoiceBlock cache.
pub const ASTERISK_RU_DIR: &str = "speech/asterisk-ru";

/// The Russian prompts used: whole sentences of 1-5 s (no tones, no
/// fragments that end in "..."), two with a number word.
pub const ASTERISK_RU_PHRASES: [&str; 24] = [
    "hello",
    "goodbye",
    "one-moment-please",
    "priv-recordintro",
    "pls-try-call-later",
    "sorry-youre-having-problems",
    "info-about-last-call",
    "cannot-complete-as-dialed",
    "all-circuits-busy-now",
    "feature-not-avail-line",
    "vm-nobodyavail",
    "vm-leavemsg",
    "vm-tomakecall",
    "check-number-dial-again",
    "followme/sorry",
    "simul-call-limit-reached",
    "vm-mailboxfull",
    "dir-nomatch",
    "privacy-prompt",
    "enter-num-blacklist",
    "pls-hold-while-try",
    "demo-nomatch",
    "vm-rec-name",
    "pbx-invalid",
];

/// The folders of the set and their transcript files.
const FOLDERS: [(&str, &str); 2] = [
    ("librivox", "transcription"),
    ("cards", "cards.transcription"),
];

/// One recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `folder/file-id`, e.g. `cards/005`.
    pub id: String,
    /// The audio as recorded (mono; 16 kHz for pocketsphinx, 8 kHz for
    /// the Russian prompts).
    pub pcm: Pcm,
    /// What was said, lower case, no punctuation.
    pub text: String,
}

/// `$VOICEBLOCK_CACHE` or `~/.cache/voiceblock`.
fn cache() -> PathBuf {
    match std::env::var_os("VOICEBLOCK_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/voiceblock")
        }
    }
}

/// Where [`pocketsphinx`] reads from by default: [`POCKETSPHINX_DIR`] in the cache.
pub fn default_dir() -> PathBuf {
    cache().join(POCKETSPHINX_DIR)
}

/// Where [`asterisk_ru`] reads from by default: [`ASTERISK_RU_DIR`] in the cache.
pub fn default_ru_dir() -> PathBuf {
    cache().join(ASTERISK_RU_DIR)
}

fn corpus_error(path: &Path, problem: impl Into<String>) -> SttError {
    SttError::Corpus {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The error for a corpus folder that is not there.
fn missing(root: &Path) -> SttError {
    corpus_error(
        root,
        "missing: run scripts/setup (its step setup.d/60-speech.sh fetches the recordings)",
    )
}

/// Reads the Russian prompts `ids` (see [`ASTERISK_RU_PHRASES`]) under
/// `root` (see [`default_ru_dir`]): audio at 8 kHz, texts with the
/// typographic quotes dropped. An id the text file lacks, or a missing or
/// unreadable WAV, is an error naming the file.
pub fn asterisk_ru(root: &Path, ids: &[&str]) -> Result<Vec<Recording>, SttError> {
    if !root.is_dir() {
        return Err(missing(root));
    }
    let list = root.join("core-sounds-ru.txt");
    let text = std::fs::read_to_string(&list).map_err(|e| corpus_error(&list, e.to_string()))?;
    let mut out = Vec::new();
    for id in ids {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(id)?.strip_prefix(':'))
            .ok_or_else(|| corpus_error(&list, format!("no text for {id:?}")))?;
        let wav = root.join("sounds").join(format!("{id}.wav"));
        let pcm = vb_audio::wav::read(&wav).map_err(|e| corpus_error(&wav, e.to_string()))?;
        out.push(Recording {
            id: format!("ru/{id}"),
            pcm,
            text: line.replace(['«', '»'], "").trim().to_string(),
        });
    }
    Ok(out)
}

/// Reads every recording of the set under `root` (see [`default_dir`]).
/// A missing folder, a transcript line with no file id, or a clip that is not
/// 16 kHz WAV is an error naming the file.
pub fn pocketsphinx(root: &Path) -> Result<Vec<Recording>, SttError> {
    if !root.is_dir() {
        return Err(missing(root));
    }
    let mut out = Vec::new();
    for (folder, list) in FOLDERS {
        let dir = root.join(folder);
        let list_path = dir.join(list);
        let text = std::fs::read_to_string(&list_path)
            .map_err(|e| corpus_error(&list_path, e.to_string()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (words, id) = line
                .rsplit_once('(')
                .ok_or_else(|| corpus_error(&list_path, format!("no (file-id) in {line:?}")))?;
            let id = id.trim().trim_end_matches(')');
            let wav = dir.join(format!("{id}.wav"));
            let pcm = vb_audio::wav::read(&wav).map_err(|e| corpus_error(&wav, e.to_string()))?;
            if pcm.rate != SAMPLE_RATE {
                return Err(corpus_error(
                    &wav,
                    format!("{} Hz, expected {SAMPLE_RATE}", pcm.rate),
                ));
            }
            let text = words.replace("<s>", " ").replace("</s>", " ");
            out.push(Recording {
                id: format!("{folder}/{id}"),
                pcm,
                text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            });
        }
    }
    Ok(out)
}

/// What the box hears of a caller saying `pcm`: 8 kHz, G.711 mu-law on the
/// wire, decoded and brought back to 16 kHz.
pub fn phone_path(pcm: &Pcm) -> Result<Pcm, SttError> {
    let narrow = if pcm.rate == 8_000 {
        pcm.clone()
    } else {
        vb_audio::resample(pcm, 8_000).map_err(|source| SttError::Resample {
            from_rate: pcm.rate,
            source,
        })?
    };
    let law = Law::Mu;
    let wire: Vec<i16> = narrow
        .to_i16()
        .into_iter()
        .map(|x| law.decode(law.encode(x)))
        .collect();
    crate::to_16k(&Pcm::from_i16(8_000, &wire))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_names_the_setup_step() {
        let err = pocketsphinx(Path::new("/nonexistent/speech"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/speech") && err.contains("60-speech.sh"),
            "{err}"
        );
    }

    #[test]
    fn a_transcript_line_without_an_id_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("vb-corpus-{}", std::process::id()));
        for (folder, list) in FOLDERS {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
            std::fs::write(dir.join(folder).join(list), "<s> ten of clubs </s>\n").unwrap();
        }
        let err = pocketsphinx(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("transcription") && err.contains("no (file-id)"),
            "{err}"
        );
    }

    #[test]
    fn a_russian_id_without_a_text_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("vb-corpus-ru-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("core-sounds-ru.txt"), "hello: Здравствуйте!\n").unwrap();
        let err = asterisk_ru(&dir, &["goodbye"]).unwrap_err().to_string();
        let wav = asterisk_ru(&dir, &["hello"]).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("core-sounds-ru.txt") && err.contains("\"goodbye\""),
            "{err}"
        );
        assert!(wav.contains("hello.wav"), "{wav}");
    }

    #[test]
    fn the_phone_path_keeps_the_length_and_narrows_the_band() {
        // 1 s of a 5 kHz tone: above the phone band, so mostly filtered out.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 5_000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let out = phone_path(&Pcm::new(16_000, tone.clone())).unwrap();
        assert_eq!(out.rate, 16_000);
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
        assert!(
            out.rms() < 0.1 * Pcm::new(16_000, tone).rms(),
            "{}",
            out.rms()
        );
    }
}
