//! Hallucination filter: whisper invents text on silence and noise (subtitle
//! credits, "Thanks for watching!") and can loop on one phrase. This pure
//! function decides what of a raw transcript the dialog may see.
//!
//! Order matters: markup is stripped first (so "\[Music\] you" still reads as
//! "you"), loops are collapsed before the phrase check (so five "Продолжение
//! следует..." in a row are caught as one), and the no-speech rule runs last.

/// Why a transcript was changed or dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterReason {
    /// The audio was too quiet to hold speech; whisper was not run.
    Silence {
        /// Root-mean-square level of the clip, dBFS.
        rms_dbfs: f32,
    },
    /// Only bracketed annotations or music notes ("\[BLANK_AUDIO\]", "(music)", "♪").
    Markup,
    /// A phrase whisper produces on silence (subtitle credits, sign-offs).
    SilencePhrase {
        /// The normalised phrase from the table that matched.
        phrase: &'static str,
    },
    /// whisper itself judged the clip to be non-speech, and the audio was quiet.
    NoSpeech {
        /// whisper's no-speech probability.
        no_speech_prob: f32,
        /// Root-mean-square level of the clip, dBFS.
        rms_dbfs: f32,
    },
    /// A runaway loop was collapsed to one occurrence; the text is kept.
    RepetitionTrimmed {
        /// Words removed.
        removed_words: usize,
    },
}

impl FilterReason {
    /// Whether the transcript was dropped (empty text) rather than trimmed.
    pub fn is_dropped(&self) -> bool {
        !matches!(self, Self::RepetitionTrimmed { .. })
    }
}

/// Thresholds of the filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterConfig {
    /// whisper no-speech probability at or above which quiet audio is dropped.
    pub no_speech_prob: f32,
    /// Level below which audio counts as quiet for the no-speech rule, dBFS.
    /// Phone speech sits around -30..-15 dBFS; line noise below -45.
    pub quiet_dbfs: f32,
    /// Level below which whisper is not run at all, dBFS.
    pub silence_dbfs: f32,
    /// Consecutive repeats of one word that count as a loop. High, because
    /// callers dictate digits ("ноль ноль ноль") and a phone number must survive.
    pub word_repeats: usize,
    /// Consecutive repeats of a two-word phrase that count as a loop.
    pub pair_repeats: usize,
    /// Consecutive repeats of a phrase of three or more words that count as a loop.
    pub phrase_repeats: usize,
    /// Longest phrase, in words, checked for loops.
    pub max_phrase_words: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            no_speech_prob: 0.6,
            quiet_dbfs: -45.0,
            silence_dbfs: -60.0,
            word_repeats: 6,
            pair_repeats: 4,
            phrase_repeats: 3,
            max_phrase_words: 8,
        }
    }
}

/// Normalised phrases dropped when they are the whole transcript.
const WHOLE_PHRASES: &[&str] = &[
    "продолжение следует",
    "спасибо за просмотр",
    "спасибо за внимание",
    "подписывайтесь на канал",
    "thank you for watching",
    "thanks for watching",
    "thank you for watching and see you next time",
    "please subscribe",
    "like and subscribe",
    "you",
    "blank audio",
    "music",
    "applause",
    "silence",
];

/// Normalised fragments that mark a subtitle credit anywhere in the transcript.
const CREDIT_FRAGMENTS: &[&str] = &[
    "dimatorzok",
    "субтитры сделал",
    "субтитры создавал",
    "субтитры подогнал",
    "редактор субтитров",
    "корректор а егорова",
    "а синецкая",
    "amara org",
    "subtitles by",
];

/// The filter's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// Text for the dialog; empty when dropped.
    pub text: String,
    /// Why the text differs from whisper's, if it does in a way that matters.
    pub reason: Option<FilterReason>,
}

/// Filters one raw transcript. `no_speech_prob` is whisper's (None when no
/// segment was produced), `rms_dbfs` the clip's level.
pub fn filter_transcript(
    raw: &str,
    no_speech_prob: Option<f32>,
    rms_dbfs: f32,
    cfg: &FilterConfig,
) -> Filtered {
    let dropped = |reason| Filtered {
        text: String::new(),
        reason: Some(reason),
    };

    let stripped = strip_markup(raw);
    if !stripped.chars().any(char::is_alphanumeric) {
        if raw.trim().is_empty() {
            return Filtered {
                text: String::new(),
                reason: None,
            };
        }
        return dropped(FilterReason::Markup);
    }

    let (text, removed_words) = collapse_repeats(&stripped, cfg);

    let norm = normalise(&text);
    if let Some(phrase) = WHOLE_PHRASES.iter().find(|p| is_repeats_of(&norm, p)) {
        return dropped(FilterReason::SilencePhrase { phrase });
    }
    let padded = format!(" {norm} ");
    if let Some(phrase) = CREDIT_FRAGMENTS
        .iter()
        .find(|f| padded.contains(&format!(" {f} ")))
    {
        return dropped(FilterReason::SilencePhrase { phrase });
    }

    if let Some(p) = no_speech_prob {
        if p >= cfg.no_speech_prob && rms_dbfs < cfg.quiet_dbfs {
            return dropped(FilterReason::NoSpeech {
                no_speech_prob: p,
                rms_dbfs,
            });
        }
    }

    Filtered {
        text,
        reason: (removed_words > 0).then_some(FilterReason::RepetitionTrimmed { removed_words }),
    }
}

/// Lower case, `ё` as `е`, every run of non-alphanumerics as one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c == 'ё' { 'е' } else { c };
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Whether `text` is `phrase` once or several times over (both normalised):
/// a silence phrase looped fewer times than the loop thresholds is still one.
fn is_repeats_of(text: &str, phrase: &str) -> bool {
    let words: Vec<&str> = text.split(' ').collect();
    let unit: Vec<&str> = phrase.split(' ').collect();
    !words.is_empty()
        && words.len() % unit.len() == 0
        && words.chunks(unit.len()).all(|c| c == unit)
}

/// Removes `[...]`, `(...)`, `*...*` spans and music notes, then tidies spaces.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closer: Option<char> = None;
    for c in text.chars() {
        match closer {
            Some(end) if c == end => closer = None,
            Some(_) => {}
            None => match c {
                '[' => closer = Some(']'),
                '(' => closer = Some(')'),
                '*' => closer = Some('*'),
                '♪' | '♫' | '♬' | '♩' | '🎵' | '🎶' => {}
                _ => out.push(c),
            },
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collapses consecutive repeats of one unit (a word or phrase, compared after
/// normalisation) to its first occurrence. Returns the text and words removed.
fn collapse_repeats(text: &str, cfg: &FilterConfig) -> (String, usize) {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let mut keys: Vec<String> = words.iter().map(|w| normalise(w)).collect();
    let mut removed = 0;
    let mut changed = true;
    while changed {
        changed = false;
        for n in 1..=cfg.max_phrase_words {
            let needed = match n {
                1 => cfg.word_repeats,
                2 => cfg.pair_repeats,
                _ => cfg.phrase_repeats,
            }
            .max(2);
            let mut i = 0;
            while i + n <= keys.len() {
                let mut count = 1;
                while i + (count + 1) * n <= keys.len()
                    && keys[i..i + n] == keys[i + count * n..i + (count + 1) * n]
                {
                    count += 1;
                }
                if count >= needed {
                    let drop = (count - 1) * n;
                    words.drain(i + n..i + n + drop);
                    keys.drain(i + n..i + n + drop);
                    removed += drop;
                    changed = true;
                }
                i += 1;
            }
        }
    }
    (words.join(" "), removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &str) -> Filtered {
        filter_transcript(raw, Some(0.01), -20.0, &FilterConfig::default())
    }

    #[test]
    fn silence_phrases_are_dropped_after_normalising() {
        let table = [
            "Продолжение следует...",
            " продолжение СЛЕДУЕТ ",
            "Субтитры сделал DimaTorzok",
            "Субтитры создавал DimaTorzok",
            "Редактор субтитров А.Синецкая Корректор А.Егорова",
            "Спасибо за просмотр!",
            "Thank you for watching",
            "Thanks for watching!",
            "Subtitles by the Amara.org community",
            "you",
            " You. ",
            "[Music] you",
            "Продолжение следует... Продолжение следует... Продолжение следует...",
            "Thanks for watching! Thanks for watching!",
        ];
        for raw in table {
            let f = run(raw);
            assert_eq!(f.text, "", "{raw:?} should be dropped");
            assert!(
                matches!(f.reason, Some(FilterReason::SilencePhrase { .. })),
                "{raw:?}: {:?}",
                f.reason
            );
        }
    }

    #[test]
    fn markup_only_is_dropped() {
        for raw in [
            "[BLANK_AUDIO]",
            "(music)",
            "♪♪♪",
            "(Музыка)",
            "*кашель*",
            "[ Silence ] .",
        ] {
            let f = run(raw);
            assert_eq!(f.text, "", "{raw:?}");
            assert_eq!(f.reason, Some(FilterReason::Markup), "{raw:?}");
        }
    }

    #[test]
    fn real_speech_passes_untouched() {
        let table = [
            "Hello, I would like to book a table.",
            "Спасибо, до свидания.",
            "Thank you.",
            "Мой номер восемь девять один шесть пять пять пять.",
            "ноль ноль ноль",
            "да да да да",
            "You know, I called yesterday.",
            "Я смотрел, спасибо за просмотр квартиры.",
            "You you know",
        ];
        for raw in table {
            let f = run(raw);
            assert_eq!(f.text, raw, "{raw:?}");
            assert_eq!(f.reason, None, "{raw:?}");
        }
    }

    #[test]
    fn markup_around_speech_is_removed_silently() {
        let f = run("[Music] Hello there (laughs)");
        assert_eq!(f.text, "Hello there");
        assert_eq!(f.reason, None);
    }

    #[test]
    fn runaway_repetition_is_trimmed_to_one_occurrence() {
        let f =
            run("Four Queen of Close Four Queen of Close Four Queen of Close Four Queen of Close");
        assert_eq!(f.text, "Four Queen of Close");
        assert_eq!(
            f.reason,
            Some(FilterReason::RepetitionTrimmed { removed_words: 12 })
        );

        let f = run("I need a plumber plumber plumber plumber plumber plumber plumber");
        assert_eq!(f.text, "I need a plumber");
        assert_eq!(
            f.reason,
            Some(FilterReason::RepetitionTrimmed { removed_words: 6 })
        );

        // Punctuation and case differences between repeats still count as repeats.
        let f = run("Алло, алло. Алло! алло, Алло? алло");
        assert_eq!(f.text, "Алло,");
        assert!(matches!(
            f.reason,
            Some(FilterReason::RepetitionTrimmed { .. })
        ));

        let f = run("Hi there. Call me back. Call me back. Call me back. Bye.");
        assert_eq!(f.text, "Hi there. Call me back. Bye.");
    }

    #[test]
    fn no_speech_needs_both_whisper_and_a_quiet_clip() {
        let cfg = FilterConfig::default();
        let quiet = filter_transcript("Okay.", Some(0.9), -55.0, &cfg);
        assert_eq!(quiet.text, "");
        assert!(matches!(quiet.reason, Some(FilterReason::NoSpeech { .. })));
        // Loud audio: whisper's probability alone is not trusted.
        let loud = filter_transcript("Okay.", Some(0.9), -20.0, &cfg);
        assert_eq!(loud.text, "Okay.");
        // Quiet but whisper is confident there is speech (a soft-spoken caller).
        let soft = filter_transcript("Okay.", Some(0.1), -55.0, &cfg);
        assert_eq!(soft.text, "Okay.");
        let unknown = filter_transcript("Okay.", None, -55.0, &cfg);
        assert_eq!(unknown.text, "Okay.");
    }

    #[test]
    fn empty_input_is_empty_without_a_reason() {
        assert_eq!(
            run("   "),
            Filtered {
                text: String::new(),
                reason: None
            }
        );
    }

    #[test]
    fn normalise_folds_case_yo_and_punctuation() {
        assert_eq!(normalise("  Ещё, РАЗ!!  A.Синецкая "), "еще раз a синецкая");
        assert_eq!(normalise("..."), "");
    }

    #[test]
    fn dropped_versus_trimmed() {
        assert!(FilterReason::Markup.is_dropped());
        assert!(!FilterReason::RepetitionTrimmed { removed_words: 1 }.is_dropped());
    }
}
