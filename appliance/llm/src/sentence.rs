//! Streaming sentence splitter: text in as it streams, complete sentences
//! out as soon as they are known to be complete, so the first goes to TTS
//! while the rest is still being generated. English and Russian punctuation,
//! abbreviations ("Dr.", "т.е.", "ул."), initials and decimals ("3.5") are
//! not sentence ends. No I/O.

/// Abbreviations that stand before a name or a number ("Dr. Smith",
/// "ул. Ленина", "д. 5") and so never end a sentence (lowercase, without the
/// final dot). Others ("тыс.", "p.m.") end one unless a lowercase word
/// follows, which the splitter checks for any full stop.
const ABBREVIATIONS: &[&str] = &[
    // English
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "mt",
    "vs",
    "approx",
    "no",
    "tel",
    "e.g",
    "i.e",
    "apt",
    "ave",
    "blvd",
    "fig",
    "dept",
    // Russian
    "т.е",
    "т.к",
    "т.н",
    "г",
    "ул",
    "д",
    "кв",
    "корп",
    "стр",
    "им",
    "см",
    "напр",
    "проф",
    "акад",
    "доц",
    "тел",
    "просп",
    "обл",
    "пос",
    "г-н",
    "г-жа",
];

/// Characters that end a sentence.
fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Characters that may follow a terminal and still belong to the sentence.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '»' | '”' | '’' | ')' | ']')
}

/// Splits streamed text into sentences.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    buf: String,
    /// A sentence longer than this is cut at a comma or space, so a model
    /// that never puts a full stop does not hold back speech.
    max_chars: usize,
}

impl Default for SentenceSplitter {
    fn default() -> SentenceSplitter {
        SentenceSplitter::new(240)
    }
}

impl SentenceSplitter {
    /// A splitter that cuts sentences longer than `max_chars` characters.
    pub fn new(max_chars: usize) -> SentenceSplitter {
        SentenceSplitter {
            buf: String::new(),
            max_chars: max_chars.max(16),
        }
    }

    /// Adds streamed text; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        while let Some((end, next)) = self.boundary() {
            let sentence = self.buf[..end].trim().to_owned();
            self.buf.drain(..next);
            if !sentence.is_empty() {
                out.push(sentence);
            }
        }
        out
    }

    /// The stream ended: whatever is left is the last sentence.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Text held back, waiting for the rest of its sentence.
    pub fn pending(&self) -> &str {
        &self.buf
    }

    /// The first complete sentence: (end of its text, start of the next).
    fn boundary(&self) -> Option<(usize, usize)> {
        let b = &self.buf;
        let chars: Vec<(usize, char)> = b.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (pos, c) = chars[i];
            if c == '\n' {
                // A line break ends a sentence (lists, paragraphs).
                let prev = b[..pos].trim();
                if !prev.is_empty() {
                    return Some((pos, pos + 1));
                }
            }
            if is_terminal(c) {
                // Take the whole run: "?!", "...", closing quotes.
                let mut j = i + 1;
                while j < chars.len() && (is_terminal(chars[j].1) || is_closer(chars[j].1)) {
                    j += 1;
                }
                if j == chars.len() {
                    return self.overlong(); // wait for what follows
                }
                let next = chars[j].1;
                if !next.is_whitespace() {
                    // "3.5", "e.g.x", "example.com": not an end.
                    i = j;
                    continue;
                }
                let end = chars[j].0;
                let mut k = j;
                while k < chars.len() && chars[k].1.is_whitespace() {
                    k += 1;
                }
                let single_dot = c == '.' && chars[i + 1..j].iter().all(|(_, ch)| is_closer(*ch));
                if single_dot && self.is_abbreviation(pos) {
                    i = j;
                    continue;
                }
                if single_dot {
                    // "approx. five": a lowercase word after a dot continues
                    // the sentence; we need to see it first.
                    if k == chars.len() {
                        return self.overlong();
                    }
                    if chars[k].1.is_lowercase() {
                        i = k;
                        continue;
                    }
                }
                return Some((end, chars.get(k).map_or(b.len(), |(p, _)| *p)));
            }
            i += 1;
        }
        self.overlong()
    }

    /// Whether the word before the dot at `dot` is an abbreviation or an
    /// initial ("J.", "А.").
    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = &self.buf[..dot];
        let word_start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace() || matches!(c, '(' | '"' | '«' | '“'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[word_start..];
        if word.is_empty() {
            return false;
        }
        let mut cs = word.chars();
        if let (Some(first), None) = (cs.next(), cs.next()) {
            // A single capital letter is an initial.
            if first.is_uppercase() {
                return true;
            }
        }
        let lower = word.to_lowercase();
        ABBREVIATIONS.contains(&lower.as_str())
    }

    /// Cuts an overlong sentence at its last comma, else its last space.
    fn overlong(&self) -> Option<(usize, usize)> {
        if self.buf.chars().count() <= self.max_chars {
            return None;
        }
        let limit = self
            .buf
            .char_indices()
            .nth(self.max_chars)
            .map_or(self.buf.len(), |(i, _)| i);
        let head = &self.buf[..limit];
        let cut = head
            .rfind([',', ';', ':'])
            .map(|i| i + 1)
            .or_else(|| head.rfind(' '))
            .unwrap_or(limit);
        Some((cut, cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_stream(parts: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::default();
        let mut out = Vec::new();
        for p in parts {
            out.extend(s.push(p));
        }
        out.extend(s.finish());
        out
    }

    fn split(text: &str) -> Vec<String> {
        // Feed character by character: the worst streaming case.
        let mut s = SentenceSplitter::default();
        let mut out = Vec::new();
        for c in text.chars() {
            out.extend(s.push(&c.to_string()));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn first_sentence_leaves_before_the_rest_arrives() {
        // "Hello there!" was complete once " How" arrived.
        let mut s2 = SentenceSplitter::default();
        assert!(s2.push("Hello there!").is_empty());
        assert_eq!(s2.push(" How"), vec!["Hello there!"]);
        assert_eq!(s2.finish().as_deref(), Some("How"));
    }

    #[test]
    fn english() {
        assert_eq!(
            split("Dr. Smith will call at 3.5 p.m. tomorrow. Is that OK? Great!"),
            vec![
                "Dr. Smith will call at 3.5 p.m. tomorrow.",
                "Is that OK?",
                "Great!"
            ]
        );
        assert_eq!(
            split("It costs approx. five dollars. J. R. Tolkien wrote it."),
            vec!["It costs approx. five dollars.", "J. R. Tolkien wrote it."]
        );
        assert_eq!(
            split("Wait... What?! \"Yes.\" Ok"),
            vec!["Wait...", "What?!", "\"Yes.\"", "Ok"]
        );
    }

    #[test]
    fn russian() {
        assert_eq!(
            split("Здравствуйте! Мы на ул. Ленина, д. 5. Цена 3.5 тыс. руб. Вам удобно?"),
            vec![
                "Здравствуйте!",
                "Мы на ул. Ленина, д. 5.",
                "Цена 3.5 тыс. руб.",
                "Вам удобно?"
            ]
        );
        assert_eq!(
            split("Это т.е. не так. Хорошо… Записала."),
            vec!["Это т.е. не так.", "Хорошо…", "Записала."]
        );
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let text = "Hello! My name is Anna. I work at St. Mary's. Call me at 555.123.4567 please.";
        let whole = split_stream(&[text]);
        assert_eq!(split(text), whole);
        assert_eq!(whole.len(), 4, "{whole:?}");
    }

    #[test]
    fn newline_and_overlong() {
        assert_eq!(split("one\ntwo"), vec!["one", "two"]);
        let long = "word ".repeat(100);
        let out = split(&long);
        assert!(out.len() > 1);
        assert!(out.iter().all(|s| s.chars().count() <= 240));
        assert_eq!(out.join(" ").split_whitespace().count(), 100);
    }
}
