//! Sentence splitting for streamed synthesis: the first sentence is spoken
//! while the rest are still being synthesized, so where the text is cut decides
//! both the time to first audio and whether the prosody sounds natural.
//!
//! Pure text logic (no engine, no I/O), Russian and English: abbreviations
//! ("Mr.", "т.е.", "ул."), initials, decimals ("3.5"), phone numbers
//! ("8.800.555.35.35", "+7 (495) 123-45-67") and ellipses do not end a
//! sentence; sentences longer than a limit are cut at the last clause
//! punctuation (comma, semicolon, colon, dash) before the limit.

/// Abbreviations that precede a name or number, so the capital letter or digit
/// after them does not start a new sentence ("Mr. Smith", "ул. Ленина", "д. 5").
const PREFIX_ABBREVIATIONS: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "no",
    "tel",
    "ext",
    "ул",
    "д",
    "кв",
    "корп",
    "стр",
    "г",
    "им",
    "проф",
    "доб",
    "тел",
    "пл",
    "пер",
    "просп",
    "наб",
    "ш",
    "акад",
    "доц",
    "св",
    "зам",
    "ген",
    "и.о",
    "т.е",
    "т.к",
    "напр",
    "e.g",
    "i.e",
    "vs",
];

/// True when `word` (without its final dot) is an abbreviation that comes
/// before a name or number ("Mr", "ул", "т.е"), so its dot ends nothing.
pub fn is_prefix_abbreviation(word: &str) -> bool {
    PREFIX_ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Splits text into sentences for synthesis.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    max_chars: usize,
    first_clause: bool,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_CHARS)
    }
}

impl SentenceSplitter {
    /// Default longest sentence, in characters, before it is cut at a clause
    /// boundary: about 12 s of speech, which Piper synthesizes in well under a
    /// second on the box, so a caller never waits long for the first audio.
    pub const DEFAULT_MAX_CHARS: usize = 180;

    /// A splitter that cuts sentences longer than `max_chars` characters
    /// (values under 20 are raised to 20 so a cut always leaves whole words).
    pub fn new(max_chars: usize) -> Self {
        Self {
            max_chars: max_chars.max(20),
            first_clause: false,
        }
    }

    /// First sentences shorter than this (in characters) are left whole by
    /// [`SentenceSplitter::with_first_clause`]: they synthesize about as
    /// fast as a clause would.
    pub const FIRST_CLAUSE_MIN_CHARS: usize = 40;

    /// The same splitter, also cutting the text's first sentence after its
    /// first clause ("Thank you, | I have written down your request."),
    /// where the clause has two words or more and the rest three or more:
    /// the first audio of a reply then waits for a clause's synthesis, not
    /// a sentence's, and the cut is where the voice pauses anyway.
    /// Off (the default) splits at sentences only.
    pub fn with_first_clause(mut self, on: bool) -> Self {
        self.first_clause = on;
        self
    }

    /// The longest sentence this splitter leaves whole, in characters.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Splits `text` into trimmed sentences, in order. Pieces with no letter or
    /// digit (a stray "..." or "—") are dropped: there is nothing to say.
    pub fn split(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines() {
            for sentence in split_line(line) {
                for piece in self.cut_long(sentence) {
                    let piece = piece.trim();
                    if !piece.chars().any(char::is_alphanumeric) {
                        continue;
                    }
                    match (out.is_empty() && self.first_clause)
                        .then(|| first_clause_cut(piece))
                        .flatten()
                    {
                        Some(cut) => {
                            out.push(piece[..cut].trim().to_string());
                            out.push(piece[cut..].trim().to_string());
                        }
                        None => out.push(piece.to_string()),
                    }
                }
            }
        }
        out
    }

    /// Cuts one sentence into pieces of at most `max_chars` characters,
    /// preferring clause punctuation, then a space, then any character.
    fn cut_long<'a>(&self, sentence: &'a str) -> Vec<&'a str> {
        let mut pieces = Vec::new();
        let mut rest = sentence.trim();
        while rest.chars().count() > self.max_chars {
            let cut = best_cut(rest, self.max_chars);
            let (head, tail) = rest.split_at(cut);
            pieces.push(head);
            rest = tail.trim_start();
        }
        if !rest.is_empty() {
            pieces.push(rest);
        }
        pieces
    }
}

/// Byte index to cut `s` at so the head has at most `max_chars` characters.
fn best_cut(s: &str, max_chars: usize) -> usize {
    // Byte offset just past the `max_chars`-th character.
    let limit = s.char_indices().nth(max_chars).map_or(s.len(), |(i, _)| i);
    let window = &s[..limit];
    // Do not cut so early that the head is a stub: at least a third of the limit.
    let min = s.char_indices().nth(max_chars / 3).map_or(0, |(i, _)| i);
    // The last clause end in the window past `min` (the mark itself is at
    // or past `min` exactly when the cut after it is past `min`).
    let clause = clause_ends(window).rev().find(|&cut| cut > min);
    if let Some(cut) = clause {
        return cut;
    }
    let space = window
        .char_indices()
        .rev()
        .find(|&(i, c)| i >= min && c.is_whitespace())
        .map(|(i, _)| i);
    space.unwrap_or(limit)
}

/// Byte indices just past each clause mark of `s` (comma, semicolon,
/// colon, dash) that a space follows, in order: where a sentence may be cut.
fn clause_ends(s: &str) -> impl DoubleEndedIterator<Item = usize> + '_ {
    s.char_indices()
        .filter(|&(i, c)| {
            matches!(c, ',' | ';' | ':' | '—' | '–')
                && s[i + c.len_utf8()..].starts_with(char::is_whitespace)
        })
        .map(|(i, c)| i + c.len_utf8())
}

/// Byte index just past the first clause of `sentence` (a comma,
/// semicolon, colon or dash followed by a space) when the sentence is at
/// least [`SentenceSplitter::FIRST_CLAUSE_MIN_CHARS`] long, the clause has
/// two words or more and the rest three or more.
fn first_clause_cut(sentence: &str) -> Option<usize> {
    if sentence.chars().count() < SentenceSplitter::FIRST_CLAUSE_MIN_CHARS {
        return None;
    }
    let words = |s: &str| {
        s.split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .count()
    };
    clause_ends(sentence)
        .find(|&cut| words(&sentence[..cut]) >= 2)
        .filter(|&cut| words(&sentence[cut..]) >= 3)
}

/// Splits one line at sentence-ending punctuation.
fn split_line(line: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        // Take the whole run of terminators ("?!", "...") and closing quotes.
        let run_start = i;
        let mut j = i;
        while j < chars.len() && is_terminator(chars[j].1) {
            j += 1;
        }
        while j < chars.len() && is_closing(chars[j].1) {
            j += 1;
        }
        let at_end = j == chars.len();
        let followed_by_space = at_end || chars[j].1.is_whitespace();
        if followed_by_space && ends_sentence(line, &chars, start, run_start, j) {
            let end = if at_end { line.len() } else { chars[j].0 };
            out.push(&line[start..end]);
            start = end;
        }
        i = j.max(i + 1);
    }
    if start < line.len() {
        out.push(&line[start..]);
    }
    out
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | '»' | '”' | '’' | ')' | ']')
}

/// Decides whether the terminator run `chars[run_start..run_end]` ends the
/// sentence that started at byte `start`.
fn ends_sentence(
    line: &str,
    chars: &[(usize, char)],
    start: usize,
    run_start: usize,
    run_end: usize,
) -> bool {
    let run: String = chars[run_start..run_end]
        .iter()
        .map(|&(_, c)| c)
        .filter(|&c| is_terminator(c))
        .collect();
    let next = chars[run_end..]
        .iter()
        .map(|&(_, c)| c)
        .find(|c| !c.is_whitespace());
    let Some(next) = next else {
        return true;
    };
    // Typed or written ellipses continue the sentence when the next word is
    // lower case ("Ну… давайте так"), as does a full stop.
    let next_lower = next.is_lowercase();
    if run.contains('!') || run.contains('?') {
        return true;
    }
    if next_lower {
        return false;
    }
    if run != "." {
        return true;
    }
    let word = word_before(line, start, chars[run_start].0);
    let lower = word.to_lowercase();
    // Initials: "A. Pushkin", "А. С. Пушкин".
    if word.chars().count() == 1 && word.chars().all(char::is_uppercase) {
        return false;
    }
    if is_prefix_abbreviation(&lower) {
        return false;
    }
    // Other abbreviations end the sentence only before a capital letter, which
    // is ambiguous ("... и т.д. Потом"): a capital letter reads as a new sentence.
    true
}

/// The word (letters, digits, inner dots and hyphens) that ends just before
/// byte `end`, not reaching back past byte `start`.
fn word_before(line: &str, start: usize, end: usize) -> &str {
    let head = &line[start..end];
    let begin = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '.' || c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &head[begin..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        SentenceSplitter::default().split(text)
    }

    #[test]
    fn first_clause_is_cut_only_where_it_is_worth_it() {
        let first = SentenceSplitter::default().with_first_clause(true);
        let cases: &[(&str, &[&str])] = &[
            (
                "Thank you, I have written down your request.",
                &["Thank you,", "I have written down your request."],
            ),
            (
                "Спасибо, я записала вашу заявку. Мы перезвоним, как только сможем.",
                &[
                    "Спасибо, я записала вашу заявку.",
                    "Мы перезвоним, как только сможем.",
                ],
            ),
            // Too short to be worth it.
            (
                "May I have your name, please?",
                &["May I have your name, please?"],
            ),
            // A one-word clause is too short a piece; the next one is taken.
            (
                "Yes, of course, we have a table for four on Friday.",
                &["Yes, of course,", "we have a table for four on Friday."],
            ),
            // The rest would be a stub.
            (
                "We will call you back tomorrow morning, thanks.",
                &["We will call you back tomorrow morning, thanks."],
            ),
            // Digits with a comma inside are no clause.
            (
                "The price is 3,5 thousand rubles per night for two guests.",
                &["The price is 3,5 thousand rubles per night for two guests."],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(first.split(text), *want, "{text:?}");
        }
        // Only the first sentence, and only when asked for.
        assert_eq!(
            split("Thank you, I have written down your request."),
            ["Thank you, I have written down your request."]
        );
    }

    #[test]
    fn splits_english_and_russian_sentences() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello. How are you?", &["Hello.", "How are you?"]),
            ("Wow! Really?! Yes.", &["Wow!", "Really?!", "Yes."]),
            (
                "Здравствуйте! Чем могу помочь? Оставьте номер.",
                &["Здравствуйте!", "Чем могу помочь?", "Оставьте номер."],
            ),
            ("No terminator at all", &["No terminator at all"]),
            ("Wait... What?", &["Wait...", "What?"]),
            ("Ну… давайте так. Хорошо", &["Ну… давайте так.", "Хорошо"]),
            (
                "He said \"stop.\" Then left.",
                &["He said \"stop.\"", "Then left."],
            ),
            ("«Да.» Нет.", &["«Да.»", "Нет."]),
            ("First line\nSecond line", &["First line", "Second line"]),
            ("   ", &[]),
            ("... — ...", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "text: {text:?}");
        }
    }

    #[test]
    fn keeps_abbreviations_initials_and_numbers_inside_sentences() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Mr. Smith is here. Dr. Who too.",
                &["Mr. Smith is here.", "Dr. Who too."],
            ),
            ("Call me, e.g. tomorrow.", &["Call me, e.g. tomorrow."]),
            (
                "Это важно, т.е. срочно. Спасибо.",
                &["Это важно, т.е. срочно.", "Спасибо."],
            ),
            (
                "Адрес: ул. Ленина, д. 5. Ждём.",
                &["Адрес: ул. Ленина, д. 5.", "Ждём."],
            ),
            (
                "А. С. Пушкин родился в Москве.",
                &["А. С. Пушкин родился в Москве."],
            ),
            (
                "It costs 3.5 dollars. Ok.",
                &["It costs 3.5 dollars.", "Ok."],
            ),
            (
                "Звоните 8.800.555.35.35 или +7 (495) 123-45-67. Ждём.",
                &["Звоните 8.800.555.35.35 или +7 (495) 123-45-67.", "Ждём."],
            ),
            ("Version 2.0. Released.", &["Version 2.0.", "Released."]),
            ("Meet at 5 p.m. tomorrow.", &["Meet at 5 p.m. tomorrow."]),
        ];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "text: {text:?}");
        }
    }

    #[test]
    fn cuts_long_sentences_at_clause_punctuation() {
        let splitter = SentenceSplitter::new(40);
        let text = "We are open from nine in the morning, until six in the evening, every day except Sunday.";
        let got = splitter.split(text);
        assert_eq!(
            got,
            [
                "We are open from nine in the morning,",
                "until six in the evening,",
                "every day except Sunday."
            ]
        );
        for piece in &got {
            assert!(piece.chars().count() <= 40, "{piece:?}");
        }
    }

    #[test]
    fn cuts_long_sentences_without_punctuation_at_spaces_then_anywhere() {
        let splitter = SentenceSplitter::new(20);
        let got = splitter.split("один два три четыре пять шесть семь восемь девять");
        assert!(got.len() >= 3, "{got:?}");
        for piece in &got {
            assert!(piece.chars().count() <= 20, "{piece:?}");
            assert!(!piece.starts_with(' ') && !piece.ends_with(' '));
        }
        assert_eq!(
            got.join(" "),
            "один два три четыре пять шесть семь восемь девять"
        );

        let word = "а".repeat(50);
        let got = splitter.split(&word);
        assert_eq!(got.concat(), word);
        assert!(got.iter().all(|p| p.chars().count() <= 20));
    }

    #[test]
    fn never_loses_text() {
        let text = "Mr. Smith, т.е. господин Смит, звонил в 10.30! Перезвоните ему... Спасибо?";
        let joined: String = split(text).join(" ");
        assert_eq!(joined, text);
    }
}
