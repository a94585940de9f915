//! Hallucination filter: whisper invents text on silence and noise (subtitle
//! credits, "Thanks for watching!") and can loop on one phrase. This pure
//! function decides what of a raw transcript the dialog may see.
//!
//! Order matters: markup is stripped first (so "\[Music\] you" still reads as
//! "you"), a whole phrase echoed two or more times is cut to one, loops are
//! collapsed before the phrase check (so five "Продолжение
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

    // The whole-phrase echo first: the word and phrase rules would leave a
    // loop's cut-off tail ("... correct. Yes,") that hides the echo.
    let (text, echoed) = collapse_echo(&stripped);
    let (text, looped) = collapse_repeats(&text, cfg);
    let removed_words = looped + echoed;

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

/// Number words beyond the cardinals of [`crate::wer`] that a caller
/// dictating a number uses.
const MORE_NUMBER_WORDS: &[&str] = &[
    "oh",
    "double",
    "triple",
    "hundred",
    "thousand",
    "одна",
    "две",
    "тысяча",
];

/// Whether a normalised word is a digit string or a number word; a
/// transcript made only of these is never collapsed ("five five, five
/// five" is a number, not a loop).
fn is_number_word(word: &str) -> bool {
    use crate::wer::{EN_ONES, EN_TENS, RU_HUNDREDS, RU_ONES, RU_TENS};
    !word.is_empty()
        && (word.chars().all(|c| c.is_ascii_digit())
            || [
                &EN_ONES[..],
                &EN_TENS,
                &RU_ONES,
                &RU_TENS,
                &RU_HUNDREDS,
                MORE_NUMBER_WORDS,
            ]
            .iter()
            .any(|list| list.contains(&word)))
}

/// Collapses a transcript that is one phrase of two or more words said two
/// or more times over, optionally cut short in a further repeat ("Please
/// call me back tomorrow. Please call me back tomorrow. Please call"), to
/// its first occurrence. The phrase needs two different words. This is whisper's loop on a short clip followed by
/// silence; a caller does not say a whole sentence twice in one breath.
/// Phrases made only of numbers are left alone (dictated digits repeat).
fn collapse_echo(text: &str) -> (String, usize) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|w| normalise(w)).collect();
    for n in 2..=keys.len() / 2 {
        let unit = &keys[..n];
        // One word over and over ("да да да да") is the word rule's business.
        if unit.iter().all(|k| is_number_word(k)) || unit.iter().all(|k| *k == unit[0]) {
            continue;
        }
        if keys.iter().enumerate().all(|(i, k)| *k == keys[i % n]) {
            return (words[..n].join(" "), words.len() - n);
        }
    }
    (text.to_string(), 0)
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
    fn a_whole_phrase_said_twice_is_one_phrase() {
        let table = [
            (
                "Please call me back tomorrow. Please call me back tomorrow.",
                "Please call me back tomorrow.",
            ),
            ("No, thank you. No, thank you.", "No, thank you."),
            (
                "Yes, that's correct. Yes, that's correct. Yes, that's",
                "Yes, that's correct.",
            ),
            (
                "Yes, that's correct. Yes, that's correct. Yes, that's correct. Yes, that's correct. Yes,",
                "Yes, that's correct.",
            ),
            (
                "Перезвоните завтра. Перезвоните завтра.",
                "Перезвоните завтра.",
            ),
        ];
        for (raw, want) in table {
            let f = run(raw);
            assert_eq!(f.text, want, "{raw:?}");
            assert!(
                matches!(f.reason, Some(FilterReason::RepetitionTrimmed { .. })),
                "{raw:?}: {:?}",
                f.reason
            );
        }
    }

    #[test]
    fn dictated_numbers_and_real_sentences_are_not_echoes() {
        for raw in [
            "five five, five five",
            "пять пять, пять пять",
            "twenty one, twenty one",
            "сорок два сорок два",
            "Yes. Yes.",
            "I want, I want to book a table.",
            "My name is John, John Smith.",
            "Please call me back tomorrow. Please call me later.",
        ] {
            let f = run(raw);
            assert_eq!(f.text, raw, "{raw:?} must stay as said");
            assert_eq!(f.reason, None, "{raw:?}");
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
