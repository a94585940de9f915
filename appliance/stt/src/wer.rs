//! Word error rate, for tests and benchmarks that score transcripts against a
//! reference: case, punctuation, `ё`/`е` and digits-versus-number-words are
//! normalised away so only real recognition errors count.

/// Word error rate of `hypothesis` against `reference`: (substitutions +
/// deletions + insertions) / reference words, after [`wer_words`]. An empty
/// reference scores 0.0 against an empty hypothesis and 1.0 otherwise.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f32 {
    let r = wer_words(reference);
    let h = wer_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f32 / r.len() as f32
}

/// Words as WER compares them: lower case, `ё` as `е`, punctuation and hyphens
/// as spaces, and each run of digits spelt out (in Russian when the text has
/// Cyrillic letters, else English), since whisper writes "5" where the
/// reference says "five": one or two digits as a number ("21" is "twenty
/// one"), three or more digit by digit, as phone numbers are read.
pub fn wer_words(text: &str) -> Vec<String> {
    let cyrillic = text.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
    let mut words = Vec::new();
    let mut word = String::new();
    let mut digits = String::new();
    let flush_digits = |digits: &mut String, words: &mut Vec<String>| {
        if digits.is_empty() {
            return;
        }
        // Three digits or more are a phone number or a code, which people
        // (and the box) read digit by digit: "555" is "five five five".
        let spelt = if digits.len() >= 3 {
            digits
                .chars()
                .filter_map(|d| {
                    let n = u64::from(d.to_digit(10)?);
                    if cyrillic {
                        russian_number(n)
                    } else {
                        english_number(n)
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| {
                    if cyrillic {
                        russian_number(n)
                    } else {
                        english_number(n)
                    }
                })
                .unwrap_or_else(|| digits.clone())
        };
        words.extend(spelt.split(' ').map(str::to_owned));
        digits.clear();
    };
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c == 'ё' { 'е' } else { c };
        if c.is_ascii_digit() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            digits.push(c);
        } else if c.is_alphanumeric() || c == '\'' {
            flush_digits(&mut digits, &mut words);
            word.push(c);
        } else {
            flush_digits(&mut digits, &mut words);
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    flush_digits(&mut digits, &mut words);
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(x != y);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

pub(crate) const EN_ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
pub(crate) const EN_TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// English words for `n` below one million; None above.
fn english_number(n: u64) -> Option<String> {
    fn below_thousand(n: u64, out: &mut Vec<&'static str>) {
        if n >= 100 {
            out.push(EN_ONES[(n / 100) as usize]);
            out.push("hundred");
        }
        let rest = n % 100;
        if rest >= 20 {
            out.push(EN_TENS[(rest / 10) as usize]);
            if rest % 10 != 0 {
                out.push(EN_ONES[(rest % 10) as usize]);
            }
        } else if rest > 0 || n == 0 {
            out.push(EN_ONES[rest as usize]);
        }
    }
    if n >= 1_000_000 {
        return None;
    }
    let mut out = Vec::new();
    if n >= 1000 {
        below_thousand(n / 1000, &mut out);
        out.push("thousand");
        if n % 1000 != 0 {
            below_thousand(n % 1000, &mut out);
        }
    } else {
        below_thousand(n, &mut out);
    }
    Some(out.join(" "))
}

pub(crate) const RU_ONES: [&str; 20] = [
    "ноль",
    "один",
    "два",
    "три",
    "четыре",
    "пять",
    "шесть",
    "семь",
    "восемь",
    "девять",
    "десять",
    "одиннадцать",
    "двенадцать",
    "тринадцать",
    "четырнадцать",
    "пятнадцать",
    "шестнадцать",
    "семнадцать",
    "восемнадцать",
    "девятнадцать",
];
pub(crate) const RU_TENS: [&str; 10] = [
    "",
    "",
    "двадцать",
    "тридцать",
    "сорок",
    "пятьдесят",
    "шестьдесят",
    "семьдесят",
    "восемьдесят",
    "девяносто",
];
pub(crate) const RU_HUNDREDS: [&str; 10] = [
    "",
    "сто",
    "двести",
    "триста",
    "четыреста",
    "пятьсот",
    "шестьсот",
    "семьсот",
    "восемьсот",
    "девятьсот",
];

/// Russian words (nominative) for `n` below one million; None above.
fn russian_number(n: u64) -> Option<String> {
    fn below_thousand(n: u64, feminine: bool, out: &mut Vec<&'static str>) {
        if n >= 100 {
            out.push(RU_HUNDREDS[(n / 100) as usize]);
        }
        let rest = n % 100;
        let unit = if rest >= 20 {
            out.push(RU_TENS[(rest / 10) as usize]);
            rest % 10
        } else {
            rest
        };
        if unit > 0 || n == 0 {
            out.push(match (feminine, unit) {
                (true, 1) => "одна",
                (true, 2) => "две",
                _ => RU_ONES[unit as usize],
            });
        }
    }
    if n >= 1_000_000 {
        return None;
    }
    let mut out = Vec::new();
    let thousands = n / 1000;
    if thousands > 0 {
        below_thousand(thousands, true, &mut out);
        let (tens, unit) = (thousands % 100, thousands % 10);
        out.push(if (11..=14).contains(&tens) {
            "тысяч"
        } else {
            match unit {
                1 => "тысяча",
                2..=4 => "тысячи",
                _ => "тысяч",
            }
        });
    }
    if n % 1000 != 0 || n == 0 {
        below_thousand(n % 1000, false, &mut out);
    }
    Some(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_up_to_case_and_punctuation_is_zero() {
        assert_eq!(word_error_rate("Hello, World!", "hello world"), 0.0);
        assert_eq!(word_error_rate("Ещё раз.", "еще раз"), 0.0);
    }

    #[test]
    fn counts_substitutions_deletions_insertions() {
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b c d e f"), 0.5);
        assert_eq!(word_error_rate("a b", ""), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "noise"), 1.0);
    }

    #[test]
    fn digits_match_number_words() {
        assert_eq!(
            word_error_rate("table for two at seven", "Table for 2 at 7."),
            0.0
        );
        assert_eq!(
            word_error_rate("in twenty twenty four", "in twenty 24"),
            0.0
        );
        // "21" spells as "двадцать один": one inserted word against three.
        let wer = word_error_rate("пятница двадцать первое", "пятница 21 первое");
        assert!((wer - 1.0 / 3.0).abs() < 1e-6, "{wer}");
        assert_eq!(wer_words("дом 21"), ["дом", "двадцать", "один"]);
    }

    #[test]
    fn english_numbers() {
        assert_eq!(english_number(0).as_deref(), Some("zero"));
        assert_eq!(english_number(15).as_deref(), Some("fifteen"));
        assert_eq!(english_number(40).as_deref(), Some("forty"));
        assert_eq!(english_number(105).as_deref(), Some("one hundred five"));
        assert_eq!(
            english_number(21_342).as_deref(),
            Some("twenty one thousand three hundred forty two")
        );
        assert_eq!(english_number(3000).as_deref(), Some("three thousand"));
        assert_eq!(english_number(1_000_000), None);
    }

    #[test]
    fn russian_numbers() {
        assert_eq!(russian_number(0).as_deref(), Some("ноль"));
        assert_eq!(russian_number(12).as_deref(), Some("двенадцать"));
        assert_eq!(russian_number(245).as_deref(), Some("двести сорок пять"));
        assert_eq!(russian_number(1000).as_deref(), Some("одна тысяча"));
        assert_eq!(
            russian_number(2024).as_deref(),
            Some("две тысячи двадцать четыре")
        );
        assert_eq!(russian_number(11_000).as_deref(), Some("одиннадцать тысяч"));
        assert_eq!(russian_number(5_001).as_deref(), Some("пять тысяч один"));
    }

    #[test]
    fn long_digit_runs_are_read_digit_by_digit() {
        assert_eq!(
            wer_words("call 555-0199"),
            ["call", "five", "five", "five", "zero", "one", "nine", "nine"]
        );
        assert_eq!(
            word_error_rate("five five five, one two three", "555-123"),
            0.0
        );
        assert_eq!(wer_words("89"), ["eighty", "nine"]);
    }
}
