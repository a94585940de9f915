//! Understanding messy whisper transcripts by rules: cleaning, yes/no,
//! objections, names, and tidying free-text answers.
//!
//! Every list here holds both English and Russian words, because an `auto`
//! STT can hand a Russian robot an English answer and vice versa. Matching is
//! on lowercased words (ё folded to е), never on raw substrings, so "no" does
//! not match inside "know".

/// What a caller turn objects to, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objection {
    /// "Not interested", "не интересно": polite goodbye.
    NotInterested,
    /// "Call me later", "перезвоните позже": note it, goodbye.
    CallLater,
    /// "Who is this?", "кто это?": introduce, then re-ask.
    WhoIsThis,
}

const NOT_INTERESTED: &[&str] = &[
    "not interested",
    "no thanks",
    "no thank you",
    "don't call",
    "dont call",
    "do not call",
    "stop calling",
    "remove me",
    "leave me alone",
    "no interest",
    "не интересно",
    "неинтересно",
    "не интересует",
    "не интересуют",
    "не нужно",
    "не надо",
    "не звоните",
    "отстаньте",
];

const CALL_LATER: &[&str] = &[
    "call later",
    "back later",
    "me later",
    "talk later",
    "maybe later",
    "another time",
    "not a good time",
    "bad time",
    "i'm busy",
    "im busy",
    "i am busy",
    "busy right now",
    "can't talk",
    "cant talk",
    "cannot talk",
    "позже",
    "попозже",
    "в другой раз",
    "в другое время",
    "сейчас неудобно",
    "неудобно говорить",
    "не могу говорить",
    "я занят",
    "я занята",
    "некогда",
];

const WHO_IS_THIS: &[&str] = &[
    "who is this",
    "who's this",
    "who is it",
    "who's calling",
    "who is calling",
    "who are you",
    "who am i talking",
    "who am i speaking",
    "what company",
    "which company",
    "are you a robot",
    "is this a robot",
    "are you a bot",
    "is this a bot",
    "are you human",
    "are you a real person",
    "is this a machine",
    "кто это",
    "кто вы",
    "вы кто",
    "кто говорит",
    "кто звонит",
    "с кем я говорю",
    "с кем говорю",
    "какая компания",
    "что за компания",
    "откуда вы",
    "вы робот",
    "ты робот",
    "это робот",
    "это бот",
    "вы бот",
    "вы человек",
];

const YES: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "yup",
    "correct",
    "right",
    "exactly",
    "sure",
    "ok",
    "okay",
    "absolutely",
    "perfect",
    "fine",
    "great",
    "affirmative",
    "indeed",
    "sounds good",
    "да",
    "верно",
    "правильно",
    "точно",
    "ага",
    "угу",
    "конечно",
    "именно",
    "хорошо",
    "отлично",
    "подтверждаю",
];

const NO: &[&str] = &[
    "no",
    "nope",
    "nah",
    "wrong",
    "incorrect",
    "not right",
    "not correct",
    "isn't right",
    "isn't correct",
    "mistake",
    "not quite",
    "нет",
    "неверно",
    "неправильно",
    "не так",
    "не то",
    "ошибка",
    "не совсем",
    "не верно",
    "не правильно",
];

/// Set phrases that contain "no"/"нет" but mean agreement.
const NOT_A_NO: &[&str] = &["no problem", "no worries", "нет проблем", "без проблем"];

const DONT_KNOW: &[&str] = &[
    "don't know",
    "dont know",
    "do not know",
    "not sure",
    "no idea",
    "not yet",
    "doesn't matter",
    "skip",
    "не знаю",
    "не решил",
    "не решила",
    "не решили",
    "неважно",
    "не важно",
    "пропустить",
];

/// Opening words that carry nothing ("Hi, ...", "Да, ...", "Ну ...").
const OPENERS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "yes",
    "yeah",
    "well",
    "um",
    "uh",
    "so",
    "ok",
    "okay",
    "oh",
    "hmm",
    "hm",
    "umm",
    "erm",
    "good",
    "morning",
    "afternoon",
    "evening",
    "алло",
    "здравствуйте",
    "привет",
    "да",
    "ну",
    "вот",
    "так",
    "эм",
    "э",
    "добрый",
    "доброе",
    "день",
    "вечер",
    "утро",
];

/// Words that are never (part of) a name.
const NOT_NAME: &[&str] = &[
    "yes",
    "no",
    "yeah",
    "yep",
    "nope",
    "ok",
    "okay",
    "sure",
    "hello",
    "hi",
    "hey",
    "what",
    "why",
    "who",
    "how",
    "where",
    "when",
    "sorry",
    "pardon",
    "please",
    "thanks",
    "thank",
    "you",
    "me",
    "my",
    "i",
    "it",
    "it's",
    "is",
    "am",
    "are",
    "the",
    "a",
    "an",
    "and",
    "or",
    "not",
    "don't",
    "dont",
    "know",
    "name",
    "phone",
    "number",
    "call",
    "calling",
    "back",
    "later",
    "here",
    "there",
    "well",
    "um",
    "uh",
    "just",
    "speaking",
    "want",
    "need",
    "would",
    "like",
    "book",
    "booking",
    "can",
    "could",
    "this",
    "that",
    "of",
    "for",
    "to",
    "in",
    "on",
    "at",
    "with",
    "from",
    "about",
    "good",
    "fine",
    "right",
    "correct",
    "wrong",
    "again",
    "repeat",
    "already",
    "told",
    "said",
    "nothing",
    "none",
    "nobody",
    "anonymous",
    "robot",
    "bot",
    "да",
    "нет",
    "ага",
    "угу",
    "ну",
    "алло",
    "здравствуйте",
    "привет",
    "спасибо",
    "пожалуйста",
    "что",
    "зачем",
    "почему",
    "кто",
    "как",
    "где",
    "когда",
    "извините",
    "простите",
    "повторите",
    "не",
    "я",
    "мы",
    "вы",
    "ты",
    "он",
    "она",
    "это",
    "мой",
    "моя",
    "меня",
    "мне",
    "зовут",
    "имя",
    "номер",
    "телефон",
    "хорошо",
    "ладно",
    "конечно",
    "уже",
    "говорил",
    "говорила",
    "сказал",
    "сказала",
    "знаю",
    "надо",
    "нужно",
    "хочу",
    "хотел",
    "хотела",
    "можно",
    "позже",
    "перезвоните",
    "и",
    "а",
    "но",
    "или",
    "в",
    "на",
    "с",
    "по",
    "для",
    "так",
    "вот",
    "здесь",
    "тут",
    "добрый",
    "день",
    "вечер",
    "утро",
    "слушаю",
    "робот",
    "бот",
    "никак",
    "неважно",
    "hmm",
    "hm",
    "mm",
    "ah",
    "eh",
    "er",
    "erm",
    "umm",
    "uhm",
    "everything",
    "all",
    "both",
    "nothing",
    "все",
    "оба",
    "ничего",
    "хм",
    "ммм",
    "эээ",
    "ээ",
    "э",
];

/// Fillers that introduce a name, longest first so "my name is" wins over
/// "name is". The `bool` marks fillers explicit enough to trust anywhere
/// (strict mode), e.g. inside the answer to "how can I help?".
const NAME_FILLERS: &[(&str, bool)] = &[
    ("you can call me", false),
    ("the name is", true),
    ("my name is", true),
    ("my name's", true),
    ("меня зовут", true),
    ("моё имя", true),
    ("мое имя", true),
    ("name is", true),
    ("name's", true),
    ("this is", false),
    ("it's", false),
    ("it is", false),
    ("i'm", false),
    ("i am", false),
    ("im", false),
    ("зовут", false),
    ("это", false),
    ("я", false),
];

/// How many words before an explicit name filler [`extract_name`] skips in
/// lenient mode (a misheard "my": "I name is John").
const MISHEARD_LEAD_WORDS: usize = 2;

/// The first of [`NAME_FILLERS`] accepted by `accept` (given its strict
/// flag) that starts at word `at` of `keys`: its strict flag and its length
/// in words.
fn find_filler(keys: &[String], at: usize, accept: impl Fn(bool) -> bool) -> Option<(bool, usize)> {
    NAME_FILLERS.iter().find_map(|(f, strict_ok)| {
        if !accept(*strict_ok) {
            return None;
        }
        let fkeys: Vec<String> = f
            .split(' ')
            .map(|p| word_key(p.trim_matches('\'')))
            .collect();
        let end = at + fkeys.len();
        (end <= keys.len() && keys[at..end] == fkeys[..]).then_some((*strict_ok, fkeys.len()))
    })
}

/// How hard [`extract_name`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameMode {
    /// Only after an explicit "my name is" / "меня зовут" (for answers to
    /// other questions, where "I'm looking for a room" must not yield a name).
    Strict,
    /// The robot just asked for the name: a bare "John Smith." counts too.
    Lenient,
}

/// Removes whisper's non-speech annotations ("[BLANK_AUDIO]", "(музыка)",
/// "*cough*") and collapses whitespace.
pub(crate) fn clean(transcript: &str) -> String {
    let mut out = String::with_capacity(transcript.len());
    let mut rest = transcript;
    while let Some(ch) = rest.chars().next() {
        let close = match ch {
            '[' => Some(']'),
            '(' => Some(')'),
            '*' => Some('*'),
            _ => None,
        };
        // The openers are one byte, so `rest[1..]` is on a char boundary.
        if let Some(end) = close.and_then(|c| rest[1..].find(c)) {
            let inner = &rest[1..1 + end];
            // "+7 (916) 123 45 67" is a phone number, not an annotation.
            if !inner.chars().any(|c| c.is_ascii_digit()) {
                out.push(' ');
                rest = &rest[end + 2..];
                continue;
            }
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whole transcripts whisper invents from silence or noise (it learned them
/// from subtitled videos). The STT filters these too; the dialog checks again
/// because taking "Продолжение следует" as the caller's request is worse
/// than asking again.
const HALLUCINATIONS: &[&str] = &[
    "продолжение следует",
    "субтитры сделал dimatorzok",
    "субтитры создавал dimatorzok",
    "редактор субтитров а синецкая корректор а егорова",
    "спасибо за просмотр",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "please subscribe",
];

/// Whether a cleaned transcript has anything to understand.
pub(crate) fn is_intelligible(clean: &str) -> bool {
    if !clean.chars().any(char::is_alphanumeric) {
        return false;
    }
    let joined = words(clean).join(" ");
    !HALLUCINATIONS.contains(&joined.as_str())
}

/// Lowercased words (ё folded to е, curly apostrophes straightened).
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        let ch = if ch == '’' { '\'' } else { ch };
        if ch.is_alphanumeric() || (ch == '\'' && !cur.is_empty()) {
            for lc in ch.to_lowercase() {
                cur.push(if lc == 'ё' { 'е' } else { lc });
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    for w in &mut out {
        while w.ends_with('\'') {
            w.pop();
        }
    }
    out
}

/// Whether the word sequence `phrase` (space-separated) occurs in `words`.
fn has_phrase(words: &[String], phrase: &str) -> bool {
    let parts: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(parts.len())
        .any(|w| w.iter().zip(&parts).all(|(a, b)| a == b))
}

fn has_any(words: &[String], phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has_phrase(words, p))
}

/// The objection in a turn, strongest first: not interested beats call
/// later beats who-is-this.
pub(crate) fn objection(words: &[String]) -> Option<Objection> {
    if has_any(words, NOT_INTERESTED) {
        Some(Objection::NotInterested)
    } else if has_any(words, CALL_LATER) {
        Some(Objection::CallLater)
    } else if has_any(words, WHO_IS_THIS) {
        Some(Objection::WhoIsThis)
    } else {
        None
    }
}

/// A yes/no answer; "no" wins when both appear ("not right", "нет, не так").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum YesNo {
    Yes,
    No,
}

pub(crate) fn yes_no(words: &[String]) -> Option<YesNo> {
    let mut ws: Vec<String> = words.to_vec();
    for p in NOT_A_NO {
        let parts: Vec<&str> = p.split(' ').collect();
        while let Some(i) = ws
            .windows(parts.len())
            .position(|w| w.iter().zip(&parts).all(|(a, b)| a == b))
        {
            ws.drain(i..i + parts.len());
            ws.insert(i, "ok".to_owned());
        }
    }
    if has_any(&ws, NO) {
        Some(YesNo::No)
    } else if has_any(&ws, YES) {
        Some(YesNo::Yes)
    } else {
        None
    }
}

/// "I don't know", "не знаю": an optional question the caller declines.
pub(crate) fn declines(words: &[String]) -> bool {
    has_any(words, DONT_KNOW)
}

/// Which lead field a correction names ("the phone", "имя").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Name,
    Phone,
    Dates,
    City,
}

pub(crate) fn correction_target(words: &[String]) -> Option<Target> {
    let any = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    if any(&["phone", "number", "телефон", "номер", "телефона", "номера"])
    {
        Some(Target::Phone)
    } else if any(&["name", "имя", "зовут", "фамилия", "фамилию"]) {
        Some(Target::Name)
    } else if any(&["date", "dates", "дата", "даты", "дату", "числа"]) {
        Some(Target::Dates)
    } else if any(&["city", "town", "город", "города"]) {
        Some(Target::City)
    } else {
        None
    }
}

fn word_key(raw: &str) -> String {
    words(raw).concat()
}

fn is_name_word(raw: &str) -> bool {
    let letters = raw.chars().filter(|c| c.is_alphabetic()).count();
    let ok_chars = raw
        .chars()
        .all(|c| c.is_alphabetic() || c == '-' || c == '\'' || c == '’');
    ok_chars
        && letters >= 2
        && raw.chars().count() <= 30
        && !NOT_NAME.contains(&word_key(raw).as_str())
}

fn starts_upper(raw: &str) -> bool {
    raw.chars().next().is_some_and(char::is_uppercase)
}

/// "иван" -> "Иван", "JOHN" -> "John", "анна-мария" -> "Анна-Мария";
/// mixed case the caller's STT chose ("McDonald") is kept.
fn title_case(raw: &str) -> String {
    let has_lower = raw.chars().any(char::is_lowercase);
    let has_upper = raw.chars().any(char::is_uppercase);
    if has_lower && has_upper && starts_upper(raw) {
        return raw.replace('’', "'");
    }
    raw.split('-')
        .map(|part| {
            let mut cs = part.chars();
            match cs.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(cs.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join("-")
        .replace('’', "'")
}

/// Finds the caller's name: strips fillers ("my name is", "это", "я"),
/// keeps one to three name-like words, Title-cases them, and refuses
/// anything that is not plausibly a name (digits, "yes", a sentence).
pub(crate) fn extract_name(text: &str, mode: NameMode) -> Option<String> {
    for clause in text.split(|c: char| ",.;!?:\n\"«»".contains(c)) {
        // Digits end the name part ("John 555 ...").
        let clause = clause
            .split(|c: char| c.is_ascii_digit() || c == '+')
            .next()
            .unwrap_or("");
        let raw: Vec<&str> = clause
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| c == '-' || c == '\'' || c == '’'))
            .filter(|w| !w.is_empty())
            .collect();
        let keys: Vec<String> = raw.iter().map(|w| word_key(w)).collect();
        let mut start = keys
            .iter()
            .take_while(|k| OPENERS.contains(&k.as_str()))
            .count();
        let mut filler = find_filler(&keys, start, |_| true).map(|(strict_ok, len)| {
            start += len;
            strict_ok
        });
        if filler.is_none() && mode == NameMode::Lenient {
            // The robot asked for the name and the start was misheard ("I
            // name is John Smith" for "My name is ..."): an explicit filler
            // a word or two in still introduces the name.
            for skip in 1..=MISHEARD_LEAD_WORDS {
                if let Some((_, len)) = find_filler(&keys, start + skip, |strict_ok| strict_ok) {
                    filler = Some(true);
                    start += skip + len;
                    break;
                }
            }
        }
        match (mode, filler) {
            (NameMode::Strict, Some(true)) | (NameMode::Lenient, Some(_)) => {}
            (NameMode::Lenient, None) => {}
            (NameMode::Strict, _) => continue,
        }
        let rest = &raw[start..];
        if rest.is_empty() {
            continue;
        }
        let picked: &[&str] =
            if filler.is_some() && starts_upper(rest[0]) && rest.iter().any(|w| !starts_upper(w)) {
                // "This is John calling about a booking": the capitalised run.
                let n = rest
                    .iter()
                    .take(3)
                    .take_while(|w| starts_upper(w) && is_name_word(w))
                    .count();
                &rest[..n]
            } else if rest.len() <= 3 && rest.iter().all(|w| is_name_word(w)) {
                rest
            } else {
                &[]
            };
        if picked.is_empty() {
            continue;
        }
        return Some(
            picked
                .iter()
                .map(|w| title_case(w))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    None
}

/// Trims a free-text answer for reading back: drops empty openers ("Hi,",
/// "Да,"), surrounding whitespace and trailing punctuation.
pub(crate) fn tidy_answer(text: &str) -> String {
    let mut rest = text.trim();
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
            .unwrap_or(rest.len());
        let first = &rest[..end];
        if first.is_empty() || !OPENERS.contains(&word_key(first).as_str()) {
            break;
        }
        let after = &rest[end..];
        let next = after
            .find(|c: char| c.is_alphanumeric())
            .unwrap_or(after.len());
        // Only drop an opener set off by punctuation or followed by another
        // opener: "So I need a room" keeps "So", "Hi, I need" drops "Hi".
        let separated = after[..next].chars().any(|c| ",.!?;:-—".contains(c));
        if !separated && next < after.len() {
            let next_end = after[next..]
                .find(|c: char| !(c.is_alphanumeric() || c == '\''))
                .map_or(after.len(), |e| next + e);
            if !OPENERS.contains(&word_key(&after[next..next_end]).as_str()) {
                break;
            }
        }
        rest = after[next..].trim_start();
    }
    rest.trim_end_matches(|c: char| c.is_whitespace() || ".,;:!?…".contains(c))
        .to_owned()
}

/// A city answer without "I'm from" / "я из", first letter capitalised.
pub(crate) fn tidy_city(text: &str) -> String {
    const PREFIXES: &[&str] = &[
        "i'm calling from",
        "i am calling from",
        "calling from",
        "i'm from",
        "i am from",
        "we are from",
        "we're from",
        "i'm in",
        "i am in",
        "from",
        "я звоню из",
        "звоню из",
        "я из",
        "мы из",
        "из",
        "в городе",
        "город",
    ];
    let answer = tidy_answer(text);
    let raw: Vec<&str> = answer.split_whitespace().collect();
    let keys: Vec<String> = raw.iter().map(|w| word_key(w)).collect();
    let skip = PREFIXES
        .iter()
        .map(|p| p.split(' ').map(word_key).collect::<Vec<_>>())
        .find(|p| p.len() < keys.len() && keys[..p.len()] == p[..])
        .map_or(0, |p| p.len());
    let rest = raw[skip..].join(" ");
    let mut cs = rest.chars();
    match cs.next() {
        Some(first) => first.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn cleans_annotations_but_keeps_phone_parens() {
        assert_eq!(clean(" [BLANK_AUDIO] "), "");
        assert_eq!(clean("(музыка)"), "");
        assert_eq!(clean("*cough* Yes,  please."), "Yes, please.");
        assert_eq!(clean("+7 (916) 123 45 67"), "+7 (916) 123 45 67");
        assert_eq!(clean("call (unclosed"), "call (unclosed");
        assert!(!is_intelligible(&clean("... !!")));
        assert!(is_intelligible(&clean("Да.")));
        assert!(!is_intelligible(&clean("Продолжение следует...")));
        assert!(!is_intelligible(&clean("Thanks for watching!")));
        assert!(is_intelligible(&clean("Thanks for calling back")));
    }

    #[test]
    fn words_are_lowercased_and_folded() {
        assert_eq!(w("Всё ВЕРНО, don’t!"), ["все", "верно", "don't"]);
    }

    #[test]
    fn objections() {
        let cases = [
            (
                "I'm not interested, thanks.",
                Some(Objection::NotInterested),
            ),
            ("Нет, спасибо, не интересно", Some(Objection::NotInterested)),
            ("Please don't call me again", Some(Objection::NotInterested)),
            ("Can you call me back later?", Some(Objection::CallLater)),
            ("Перезвоните позже, я за рулём", Some(Objection::CallLater)),
            ("Сейчас неудобно", Some(Objection::CallLater)),
            ("Who is this?", Some(Objection::WhoIsThis)),
            ("А кто это?", Some(Objection::WhoIsThis)),
            ("Вы робот?", Some(Objection::WhoIsThis)),
            ("I'd like to book a table", None),
            ("I know the number", None),
        ];
        for (text, want) in cases {
            assert_eq!(objection(&w(text)), want, "{text:?}");
        }
    }

    #[test]
    fn yes_and_no() {
        let cases = [
            ("Yes.", Some(YesNo::Yes)),
            ("Yeah, that's right", Some(YesNo::Yes)),
            ("Да, всё верно", Some(YesNo::Yes)),
            ("Угу", Some(YesNo::Yes)),
            ("No problem, that's right", Some(YesNo::Yes)),
            ("No.", Some(YesNo::No)),
            ("That's not right", Some(YesNo::No)),
            ("Нет, не так", Some(YesNo::No)),
            ("неправильно", Some(YesNo::No)),
            ("I know", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(yes_no(&w(text)), want, "{text:?}");
        }
    }

    #[test]
    fn names_lenient() {
        let cases = [
            ("My name is John.", Some("John")),
            ("my name is john smith", Some("John Smith")),
            ("John.", Some("John")),
            ("John Smith", Some("John Smith")),
            ("This is John calling about the room", Some("John")),
            ("Yes, it's Mary-Ann O'Neil.", Some("Mary-Ann O'Neil")),
            ("It's JOHN", Some("John")),
            ("это Иван Петров", Some("Иван Петров")),
            ("Иван", Some("Иван")),
            ("меня зовут иван", Some("Иван")),
            ("Меня зовут Анна-Мария.", Some("Анна-Мария")),
            ("Я Мария, мой номер 8 916 123 45 67", Some("Мария")),
            (
                "Ну, это Ольга Сергеевна Иванова",
                Some("Ольга Сергеевна Иванова"),
            ),
            (
                "My name is John and my number is 555 123 4567",
                Some("John"),
            ),
            ("I name is John Smith.", Some("John Smith")),
            ("Uh the name is Anna.", Some("Anna")),
            ("Ну а меня зовут Ольга", Some("Ольга")),
            ("Our company name is", None),
            ("Yes.", None),
            ("No", None),
            ("Да", None),
            ("555 123 4567", None),
            ("I want to book a table for four", None),
            ("Looking for a room.", None),
            ("Sorry, what?", None),
            ("это я", None),
            ("я уже говорил", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                extract_name(text, NameMode::Lenient).as_deref(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn names_strict() {
        assert_eq!(
            extract_name("Hi, my name is John, I need a room", NameMode::Strict).as_deref(),
            Some("John")
        );
        assert_eq!(
            extract_name(
                "Здравствуйте, меня зовут Иван, хочу забронировать",
                NameMode::Strict
            )
            .as_deref(),
            Some("Иван")
        );
        assert_eq!(
            extract_name("I'm looking for a room", NameMode::Strict),
            None
        );
        assert_eq!(extract_name("John", NameMode::Strict), None);
        // Only lenient mode looks past the clause's first words.
        assert_eq!(extract_name("I name is John", NameMode::Strict), None);
        assert_eq!(extract_name("это по поводу брони", NameMode::Strict), None);
    }

    #[test]
    fn tidies_answers() {
        assert_eq!(
            tidy_answer("Hi, I'd like to book a table."),
            "I'd like to book a table"
        );
        assert_eq!(tidy_answer("Good morning! I need a room"), "I need a room");
        assert_eq!(tidy_answer("So I need a room."), "So I need a room");
        assert_eq!(
            tidy_answer("Здравствуйте. Хочу забронировать номер."),
            "Хочу забронировать номер"
        );
        assert_eq!(tidy_answer("Hello?"), "");
        assert_eq!(tidy_city("I'm from boston."), "Boston");
        assert_eq!(tidy_city("из Казани"), "Казани");
        assert_eq!(tidy_city("москва"), "Москва");
    }

    #[test]
    fn correction_targets() {
        assert_eq!(
            correction_target(&w("the phone number")),
            Some(Target::Phone)
        );
        assert_eq!(correction_target(&w("имя")), Some(Target::Name));
        assert_eq!(correction_target(&w("даты")), Some(Target::Dates));
        assert_eq!(correction_target(&w("город")), Some(Target::City));
        assert_eq!(correction_target(&w("everything")), None);
    }

    #[test]
    fn declining() {
        assert!(declines(&w("I don't know yet")));
        assert!(declines(&w("Пока не знаю")));
        assert!(!declines(&w("next Friday")));
    }
}
