//! Phone numbers from messy transcripts to E.164, and back to words a TTS
//! reads well.
//!
//! Whisper writes numbers as digits ("8 916 123-45-67", "+7 (916) 123 45 67")
//! or as words ("five five five", "double five", "oh", "сто двадцать три"),
//! often mixed. Both English and Russian number words are always understood,
//! because an `auto` STT may transcribe a caller in either language.

use crate::language::Language;

/// What one number word contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// A spoken zero: always its own digit ("ноль", "zero", "oh").
    Zero,
    /// 1..=9.
    Unit(u32),
    /// 10..=19.
    Teen(u32),
    /// 20, 30, ..., 90.
    Ten(u32),
    /// 100, 200, ..., 900 (Russian has a word for each).
    Hundreds(u32),
    /// English "hundred": multiplies the unit before it.
    Hundred,
    /// "thousand" / "тысяча": multiplies the group before it.
    Thousand,
    /// "double" / "triple": repeats the next single digit.
    Repeat(usize),
    /// "plus" / "плюс": a country code follows.
    Plus,
}

fn number_word(word: &str, lang: Language) -> Option<Num> {
    use Num::*;
    let n = match word {
        "zero" | "nought" | "naught" | "ноль" | "нуль" => Zero,
        // "oh" as a digit is an English habit; the caller decides by context.
        "oh" | "o" if lang == Language::En => Zero,
        "one" | "один" | "одна" | "одну" | "одни" => Unit(1),
        "two" | "два" | "две" => Unit(2),
        "three" | "три" => Unit(3),
        "four" | "четыре" => Unit(4),
        "five" | "пять" => Unit(5),
        "six" | "шесть" => Unit(6),
        "seven" | "семь" => Unit(7),
        "eight" | "восемь" => Unit(8),
        "nine" | "девять" => Unit(9),
        "ten" | "десять" => Teen(10),
        "eleven" | "одиннадцать" => Teen(11),
        "twelve" | "двенадцать" => Teen(12),
        "thirteen" | "тринадцать" => Teen(13),
        "fourteen" | "четырнадцать" => Teen(14),
        "fifteen" | "пятнадцать" => Teen(15),
        "sixteen" | "шестнадцать" => Teen(16),
        "seventeen" | "семнадцать" => Teen(17),
        "eighteen" | "восемнадцать" => Teen(18),
        "nineteen" | "девятнадцать" => Teen(19),
        "twenty" | "двадцать" => Ten(20),
        "thirty" | "тридцать" => Ten(30),
        "forty" | "fourty" | "сорок" => Ten(40),
        "fifty" | "пятьдесят" => Ten(50),
        "sixty" | "шестьдесят" => Ten(60),
        "seventy" | "семьдесят" => Ten(70),
        "eighty" | "восемьдесят" => Ten(80),
        "ninety" | "девяносто" => Ten(90),
        "сто" => Hundreds(100),
        "двести" => Hundreds(200),
        "триста" => Hundreds(300),
        "четыреста" => Hundreds(400),
        "пятьсот" => Hundreds(500),
        "шестьсот" => Hundreds(600),
        "семьсот" => Hundreds(700),
        "восемьсот" => Hundreds(800),
        "девятьсот" => Hundreds(900),
        "hundred" => Hundred,
        "thousand" | "тысяча" | "тысячи" | "тысяч" => Thousand,
        "double" => Repeat(2),
        "triple" => Repeat(3),
        "plus" | "плюс" => Plus,
        _ => return None,
    };
    Some(n)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word { text: String, punct_after: bool },
    Digits(String),
    Plus,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut cur_digits = false;
    let flush = |cur: &mut String, digits: bool, tokens: &mut Vec<Token>| {
        if !cur.is_empty() {
            let t = std::mem::take(cur);
            tokens.push(if digits {
                Token::Digits(t)
            } else {
                Token::Word {
                    text: t,
                    punct_after: false,
                }
            });
        }
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            if !cur_digits {
                flush(&mut cur, false, &mut tokens);
            }
            cur_digits = true;
            cur.push(ch);
        } else if ch.is_alphabetic() || ch == '\'' || ch == '’' {
            if cur_digits {
                flush(&mut cur, true, &mut tokens);
            }
            cur_digits = false;
            for lc in ch.to_lowercase() {
                cur.push(if lc == 'ё' { 'е' } else { lc });
            }
        } else {
            flush(&mut cur, cur_digits, &mut tokens);
            if ch == '+' {
                tokens.push(Token::Plus);
            } else if matches!(ch, ',' | '.' | '!' | '?' | ';' | ':') {
                if let Some(Token::Word { punct_after, .. }) = tokens.last_mut() {
                    *punct_after = true;
                }
            }
        }
    }
    flush(&mut cur, cur_digits, &mut tokens);
    tokens
}

/// A run of spoken number words being combined ("сто двадцать три" -> 123).
#[derive(Debug, Default)]
struct Group {
    value: u32,
    /// Digits the group prints as (zero-padded), 0 when empty.
    width: usize,
    /// The smallest place value filled so far; a word joins the group only
    /// if its largest place is below it ("twenty" then "one" joins, "five"
    /// then "five" does not).
    lowest: u32,
    /// Set by English "hundred": "eight hundred five five five" is 800 555
    /// when dictating, so a bare unit does not join; "and" or a tens word
    /// lifts it ("five hundred and five", "five hundred twenty").
    unit_blocked: bool,
}

impl Group {
    fn take(&mut self) -> Option<String> {
        if self.width == 0 {
            return None;
        }
        let s = format!("{:0width$}", self.value, width = self.width);
        *self = Group::default();
        Some(s)
    }

    /// Adds a value whose largest place is `top`, printed in `width` digits
    /// when it starts the group; returns false when it cannot join.
    fn join(&mut self, value: u32, top: u32, lowest: u32, width: usize) -> bool {
        if self.width == 0 {
            *self = Group {
                value,
                width,
                lowest,
                unit_blocked: false,
            };
            return true;
        }
        if top == 1 && lowest == 1 && width == 1 && self.unit_blocked {
            return false;
        }
        if top < self.lowest {
            self.unit_blocked = false;
            self.value += value;
            self.lowest = lowest;
            return true;
        }
        false
    }
}

/// Digits found in a transcript, split where ordinary words interrupt them.
#[derive(Debug, Default)]
struct Extracted {
    /// A '+' or "plus" came before the first digit.
    plus: bool,
    segments: Vec<String>,
}

fn is_numeric(token: Option<&Token>, lang: Language) -> bool {
    match token {
        Some(Token::Digits(_)) => true,
        Some(Token::Word { text, .. }) => {
            matches!(number_word(text, lang), Some(n) if n != Num::Plus)
        }
        _ => false,
    }
}

fn extract_digits(text: &str, lang: Language) -> Extracted {
    let tokens = tokenize(text);
    let mut out = Extracted::default();
    let mut seg = String::new();
    let mut group = Group::default();
    let mut repeat = 1usize;

    // Emits finished digits into the current segment, applying a pending
    // "double"/"triple" to a single digit.
    fn emit(seg: &mut String, digits: &str, repeat: &mut usize) {
        if digits.len() == 1 {
            for _ in 0..*repeat {
                seg.push_str(digits);
            }
        } else {
            seg.push_str(digits);
        }
        *repeat = 1;
    }

    for (i, tok) in tokens.iter().enumerate() {
        let num = match tok {
            Token::Plus => Some(Num::Plus),
            Token::Digits(d) => {
                if let Some(g) = group.take() {
                    emit(&mut seg, &g, &mut repeat);
                }
                emit(&mut seg, d, &mut repeat);
                continue;
            }
            Token::Word { text, .. } if text == "and" || text == "и" => {
                // A connector inside a spoken number, not the end of one.
                group.unit_blocked = false;
                continue;
            }
            Token::Word { text, punct_after } => {
                let n = number_word(text, lang);
                // "oh" is a zero only between numbers, not an interjection
                // ("Oh, it's five five five ...").
                if n == Some(Num::Zero) && matches!(text.as_str(), "oh" | "o") {
                    let prev = i.checked_sub(1).and_then(|p| tokens.get(p));
                    let next_ok = !punct_after && is_numeric(tokens.get(i + 1), lang);
                    if !(is_numeric(prev, lang) || next_ok) {
                        None
                    } else {
                        n
                    }
                } else {
                    n
                }
            }
        };
        match num {
            None => {
                // An ordinary word ends the current run of digits.
                if let Some(g) = group.take() {
                    emit(&mut seg, &g, &mut repeat);
                }
                if !seg.is_empty() {
                    out.segments.push(std::mem::take(&mut seg));
                }
                repeat = 1;
            }
            Some(Num::Plus) => {
                if out.segments.is_empty() && seg.is_empty() && group.width == 0 {
                    out.plus = true;
                }
            }
            Some(Num::Repeat(n)) => {
                if let Some(g) = group.take() {
                    emit(&mut seg, &g, &mut repeat);
                }
                repeat = n;
            }
            Some(Num::Zero) => {
                if let Some(g) = group.take() {
                    emit(&mut seg, &g, &mut repeat);
                }
                emit(&mut seg, "0", &mut repeat);
            }
            Some(Num::Unit(u)) => {
                if repeat > 1 {
                    if let Some(g) = group.take() {
                        seg.push_str(&g);
                    }
                    emit(&mut seg, &u.to_string(), &mut repeat);
                } else if !group.join(u, 1, 1, 1) {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(u, 1, 1, 1);
                }
            }
            Some(Num::Teen(t)) => {
                if !group.join(t, 10, 1, 2) {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(t, 10, 1, 2);
                }
            }
            Some(Num::Ten(t)) => {
                if !group.join(t, 10, 10, 2) {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(t, 10, 10, 2);
                }
            }
            Some(Num::Hundreds(h)) => {
                if !group.join(h, 100, 100, 3) {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(h, 100, 100, 3);
                }
            }
            Some(Num::Hundred) => {
                if group.width == 1 {
                    // "five hundred": the unit becomes the hundreds place.
                    group.value *= 100;
                    group.width = 3;
                    group.lowest = 100;
                    group.unit_blocked = true;
                } else {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(100, 100, 100, 3);
                }
            }
            Some(Num::Thousand) => {
                if group.width > 0 && group.value < 1000 && group.lowest < 1000 {
                    group.value *= 1000;
                    group.width += 3;
                    group.lowest = 1000;
                } else {
                    if let Some(g) = group.take() {
                        emit(&mut seg, &g, &mut repeat);
                    }
                    group.join(1000, 1000, 1000, 4);
                }
            }
        }
    }
    if let Some(g) = group.take() {
        emit(&mut seg, &g, &mut repeat);
    }
    if !seg.is_empty() {
        out.segments.push(seg);
    }
    out
}

/// Whether `digits` (after a '+') is a plausible international number.
/// Country codes 1 (NANP) and 7 (Russia, Kazakhstan) have fixed lengths; the
/// rest only get E.164's length bounds.
fn valid_international(digits: &str) -> bool {
    match digits.as_bytes().first() {
        Some(b'1') | Some(b'7') => digits.len() == 11,
        Some(b'0') | None => false,
        Some(_) => (8..=15).contains(&digits.len()),
    }
}

fn to_e164(plus: bool, digits: &str, default_country: &str) -> Option<String> {
    let (plus, d) = match digits.strip_prefix("00") {
        Some(rest) if !plus => (true, rest),
        _ => (plus, digits),
    };
    if plus {
        return valid_international(d).then(|| format!("+{d}"));
    }
    match default_country {
        // Russian trunk prefix 8 (and 7 said without the plus).
        "7" => match d.len() {
            11 if d.starts_with('8') || d.starts_with('7') => Some(format!("+7{}", &d[1..])),
            10 => Some(format!("+7{d}")),
            _ => None,
        },
        "1" => match d.len() {
            11 if d.starts_with('1') => Some(format!("+{d}")),
            10 => Some(format!("+1{d}")),
            _ => None,
        },
        cc => {
            // Elsewhere a national number usually starts with trunk prefix 0.
            let national = d.strip_prefix('0').unwrap_or(d);
            let full = format!("{cc}{national}");
            let ok = national.len() >= 6
                && !national.starts_with('0')
                && !cc.is_empty()
                && full.len() <= 15;
            ok.then(|| format!("+{full}"))
        }
    }
}

/// The shortest number [`normalize_phone`] takes from a transcript that says
/// it twice in a row (shorter repeats are more likely digits that repeat).
const MIN_REPEATED_DIGITS: usize = 7;

/// Finds a phone number in a transcript and returns it in E.164
/// (`+79161234567`), or `None` when no plausible number is there.
///
/// National numbers get `default_country` (a calling code such as `"1"` or
/// `"7"`); a Russian 8-prefixed 11-digit number becomes +7. The whole
/// transcript is tried first, then each run of digits between ordinary words,
/// so "555 123 4567, after 5 pm" still yields the number, and a number said
/// twice in a row yields it once. `lang` only decides
/// whether "oh" may be a zero (English).
pub fn normalize_phone(text: &str, lang: Language, default_country: &str) -> Option<String> {
    let ex = extract_digits(text, lang);
    if ex.segments.is_empty() {
        return None;
    }
    let all: String = ex.segments.concat();
    if let Some(n) = to_e164(ex.plus, &all, default_country) {
        return Some(n);
    }
    // The number said twice (the caller repeating it, or the recogniser
    // echoing it): one copy is the number.
    let half = all.len() / 2;
    if half >= MIN_REPEATED_DIGITS && all.len().is_multiple_of(2) && all[..half] == all[half..] {
        if let Some(n) = to_e164(ex.plus, &all[..half], default_country) {
            return Some(n);
        }
    }
    ex.segments
        .iter()
        .enumerate()
        .find_map(|(i, s)| to_e164(ex.plus && i == 0, s, default_country))
}

const EN_DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
const RU_DIGITS: [&str; 10] = [
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
];
const RU_TEENS: [&str; 10] = [
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
const RU_TENS: [&str; 10] = [
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
const RU_HUNDREDS: [&str; 10] = [
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

/// A group of up to three digits the way Russians dictate phone numbers:
/// "916" -> "девятьсот шестнадцать", "05" -> "ноль пять".
fn ru_group(group: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let digits: Vec<usize> = group
        .bytes()
        .map(|b| usize::from(b.saturating_sub(b'0')).min(9))
        .collect();
    let zeros = digits.iter().take_while(|d| **d == 0).count();
    words.extend(std::iter::repeat_n(RU_DIGITS[0], zeros));
    let rest = &digits[zeros..];
    let value = rest.iter().fold(0, |acc, d| acc * 10 + d);
    if !rest.is_empty() {
        let (h, t, u) = (value / 100 % 10, value / 10 % 10, value % 10);
        if h > 0 {
            words.push(RU_HUNDREDS[h]);
        }
        if t == 1 {
            words.push(RU_TEENS[u]);
        } else {
            if t > 1 {
                words.push(RU_TENS[t]);
            }
            if u > 0 {
                words.push(RU_DIGITS[u]);
            }
        }
    }
    words.join(" ")
}

/// Splits a national number into dictation groups: 3-3-4 in North America,
/// 3-3-2-2 in Russia, otherwise threes with a 2-2 tail. Russian speech never
/// uses four-digit groups, so 3-3-4 becomes 3-3-2-2 there.
fn groups(national: &str, nanp: bool, lang: Language) -> Vec<&str> {
    let sizes: Vec<usize> = if nanp && national.len() == 10 && lang == Language::En {
        vec![3, 3, 4]
    } else if national.len() == 10 {
        vec![3, 3, 2, 2]
    } else {
        let mut s = vec![3; national.len() / 3];
        match national.len() % 3 {
            0 => {}
            1 if !s.is_empty() => {
                s.pop();
                s.extend([2, 2]);
            }
            r => s.push(r),
        }
        s
    };
    let mut out = Vec::with_capacity(sizes.len());
    let mut rest = national;
    for n in sizes {
        let (g, r) = rest.split_at(n.min(rest.len()));
        if !g.is_empty() {
            out.push(g);
        }
        rest = r;
    }
    out
}

/// Whether an E.164 number is whole by its country's numbering plan, so that
/// no digit can follow: the plans with one national length, +1 (NANP) and +7
/// (Russia, Kazakhstan), ten digits after the code. Elsewhere a number's
/// length varies and a shorter one may be the start of a longer one, so
/// none is known whole.
pub fn is_whole_number(e164: &str) -> bool {
    let Some(digits) = e164.strip_prefix('+') else {
        return false;
    };
    digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.starts_with('1') || digits.starts_with('7'))
}

/// Reads an E.164 number back in digit groups a TTS says clearly: English
/// digit by digit ("plus one, five five five, ..."), Russian as dictated
/// numbers ("плюс семь, девятьсот шестнадцать, сто двадцать три, ...").
/// Text that is not E.164 is returned unchanged.
pub fn speak_phone(e164: &str, lang: Language) -> String {
    let Some(digits) = e164.strip_prefix('+') else {
        return e164.to_owned();
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return e164.to_owned();
    }
    // Only +1 and +7 have known code lengths; elsewhere the number is read
    // as one run of groups, which is still unambiguous.
    let (cc, national) = match digits.as_bytes()[0] {
        b'1' | b'7' if digits.len() == 11 => digits.split_at(1),
        _ => ("", digits),
    };
    let nanp = cc == "1";
    let mut parts = Vec::new();
    let plus = match lang {
        Language::En => "plus",
        Language::Ru => "плюс",
    };
    let say = |g: &str| -> String {
        match lang {
            Language::En => g
                .bytes()
                .map(|b| EN_DIGITS[usize::from(b - b'0')])
                .collect::<Vec<_>>()
                .join(" "),
            Language::Ru => ru_group(g),
        }
    };
    if cc.is_empty() {
        parts.push(plus.to_owned());
    } else {
        parts.push(format!("{plus} {}", say(cc)));
    }
    for g in groups(national, nanp, lang) {
        parts.push(say(g));
    }
    if cc.is_empty() && parts.len() > 1 {
        // "plus" alone reads oddly as its own group.
        let first = parts.remove(1);
        parts[0] = format!("{plus} {first}");
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_only_where_the_plan_fixes_the_length() {
        assert!(is_whole_number("+79161234567"));
        assert!(is_whole_number("+15551234567"));
        // One digit short, one too many, or a plan of several lengths.
        assert!(!is_whole_number("+7916123456"));
        assert!(!is_whole_number("+791612345678"));
        assert!(!is_whole_number("+442071234567"));
        assert!(!is_whole_number("+4930123456"));
        assert!(!is_whole_number("79161234567"));
        assert!(!is_whole_number("+7916123456x"));
        assert!(!is_whole_number(""));
    }
    use Language::{En, Ru};

    #[test]
    fn english_phone_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("555-123-4567", Some("+15551234567")),
            ("(555) 123-4567.", Some("+15551234567")),
            ("My number is 555.123.4567", Some("+15551234567")),
            ("1 800 555 1234", Some("+18005551234")),
            ("+1 555 123 4567", Some("+15551234567")),
            (
                "five five five one two three four five six seven",
                Some("+15551234567"),
            ),
            (
                "Five, five, five. One, two, three. Four, five, six, seven.",
                Some("+15551234567"),
            ),
            (
                "double five five, one two three, forty-five sixty-seven",
                Some("+15551234567"),
            ),
            (
                "triple five one two three four five six seven",
                Some("+15551234567"),
            ),
            (
                "five five five one oh oh four five six seven",
                Some("+15551004567"),
            ),
            ("Oh, it's 555 123 4567", Some("+15551234567")),
            (
                "eight hundred five five five twelve thirty four",
                Some("+18005551234"),
            ),
            (
                "five hundred and five, five five five, one two three four",
                Some("+15055551234"),
            ),
            ("555 one two three 4567", Some("+15551234567")),
            (
                "plus four four twenty seventy nine four six zero nine five eight",
                Some("+442079460958"),
            ),
            ("+7 916 123 45 67", Some("+79161234567")),
            ("555 123 4567, call after 5 pm", Some("+15551234567")),
            ("555-1234", None),
            ("I don't have one", None),
            ("", None),
            ("12345678901234567899", None),
            ("555 123 4567 555 123 4567", Some("+15551234567")),
            ("555 123 4567. 555 123 4567.", Some("+15551234567")),
            ("555 123 4567 555 123 4568", None),
            ("+0 123 456 789", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                normalize_phone(text, En, "1").as_deref(),
                *want,
                "input {text:?}"
            );
        }
    }

    #[test]
    fn russian_phone_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("8 916 123-45-67", Some("+79161234567")),
            ("+7 (916) 123 45 67", Some("+79161234567")),
            ("89161234567", Some("+79161234567")),
            ("7 916 123 45 67", Some("+79161234567")),
            ("916 123 45 67", Some("+79161234567")),
            (
                "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
                Some("+79161234567"),
            ),
            (
                "Плюс семь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь.",
                Some("+79161234567"),
            ),
            (
                "восемь девять один шесть один два три четыре пять шесть семь",
                Some("+79161234567"),
            ),
            ("восемь 916 сто двадцать три 45 67", Some("+79161234567")),
            (
                "8 903 ноль ноль пять двадцать ноль семь",
                Some("+79030052007"),
            ),
            (
                "восемь девятьсот три сто пять ноль один двадцать",
                Some("+79031050120"),
            ),
            (
                "мой номер 8 916 123 45 67, звоните после 5",
                Some("+79161234567"),
            ),
            ("двадцать", None),
            ("не скажу", None),
            ("123", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                normalize_phone(text, Ru, "7").as_deref(),
                *want,
                "input {text:?}"
            );
        }
    }

    #[test]
    fn other_country_codes() {
        assert_eq!(
            normalize_phone("020 7946 0958", En, "44").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_phone("00 49 30 1234567", En, "44").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(normalize_phone("12 34", En, "44"), None);
    }

    #[test]
    fn oh_is_zero_only_in_english_context() {
        assert_eq!(
            normalize_phone("five five five one oh oh four five six seven", Ru, "1"),
            None
        );
    }

    #[test]
    fn speaks_numbers_in_groups() {
        assert_eq!(
            speak_phone("+15551234567", En),
            "plus one, five five five, one two three, four five six seven"
        );
        assert_eq!(
            speak_phone("+79161234567", Ru),
            "плюс семь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь"
        );
        assert_eq!(
            speak_phone("+79030052007", Ru),
            "плюс семь, девятьсот три, ноль ноль пять, двадцать, ноль семь"
        );
        assert_eq!(
            speak_phone("+79161234567", En),
            "plus seven, nine one six, one two three, four five, six seven"
        );
        assert_eq!(
            speak_phone("+442079460958", En),
            "plus four four two, zero seven nine, four six zero, nine five eight"
        );
        assert_eq!(speak_phone("garbage", En), "garbage");
        assert_eq!(speak_phone("+", Ru), "+");
    }

    #[test]
    fn ru_groups_cover_all_shapes() {
        assert_eq!(ru_group("000"), "ноль ноль ноль");
        assert_eq!(ru_group("010"), "ноль десять");
        assert_eq!(ru_group("100"), "сто");
        assert_eq!(ru_group("711"), "семьсот одиннадцать");
        assert_eq!(ru_group("7"), "семь");
    }
}
