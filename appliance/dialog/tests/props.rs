//! Property tests: no transcript makes the dialog panic or run past
//! max_turns, and phone normalisation only ever returns E.164.

use proptest::prelude::*;
use vb_dialog::{normalize_phone, speak_phone, Dialog, Language, Robot};

/// Caller turns: silence, real phrases from both languages, or arbitrary
/// text mixing scripts, digits and punctuation.
fn event() -> impl Strategy<Value = Option<String>> {
    let known = prop::sample::select(vec![
        "yes",
        "No.",
        "нет",
        "да",
        "John",
        "Иван",
        "555 123 4567",
        "8 916 123 45 67",
        "who is this?",
        "кто это",
        "the phone",
        "имя",
        "I don't know",
        "[BLANK_AUDIO]",
        "+7 (",
        "double triple oh",
        "плюс плюс",
        "five hundred thousand thousand",
    ])
    .prop_map(|s| Some(s.to_owned()));
    prop_oneof![
        1 => Just(None),
        3 => known,
        3 => "[a-zA-Zа-яА-ЯёЁ0-9 ,.?!+()'*\\[\\]-]{0,40}".prop_map(Some),
        1 => any::<String>().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dialog_never_panics_and_ends_within_max_turns(
        events in prop::collection::vec(event(), 0..60),
        ru in any::<bool>(),
        max_turns in 1u32..30,
    ) {
        let mut robot = Robot::builtin(if ru { "reception-ru" } else { "reception-en" }).unwrap();
        robot.config.max_turns = max_turns;
        let mut d = Dialog::new(&robot);
        prop_assert!(!d.start().text.is_empty());
        for (i, ev) in events.iter().enumerate() {
            if d.is_finished() {
                break;
            }
            let r = match ev {
                Some(t) => d.on_caller(t),
                None => d.on_silence(),
            };
            prop_assert!(!r.text.is_empty());
            prop_assert_eq!(r.end_call, d.is_finished());
            prop_assert!(i < max_turns as usize, "still talking after {} turns", i + 1);
            if let Some(p) = &d.lead().phone {
                prop_assert!(p.starts_with('+') && p[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }
        if events.len() >= max_turns as usize {
            prop_assert!(d.is_finished());
        }
        prop_assert!(d.lead().turns <= max_turns);
        prop_assert_eq!(d.lead().end.is_some(), d.is_finished());
    }

    #[test]
    fn phone_is_e164_or_none(text in any::<String>(), ru in any::<bool>(), cc in "[1-9][0-9]{0,2}") {
        let lang = if ru { Language::Ru } else { Language::En };
        if let Some(p) = normalize_phone(&text, lang, &cc) {
            prop_assert!(p.starts_with('+'));
            let digits = &p[1..];
            prop_assert!((8..=15).contains(&digits.len()), "{}", p);
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(!digits.starts_with('0'));
            prop_assert!(!speak_phone(&p, lang).is_empty());
        }
    }

    #[test]
    fn digit_strings_round_trip(national in "[2-9][0-9]{9}") {
        prop_assert_eq!(
            normalize_phone(&national, Language::En, "1"),
            Some(format!("+1{national}"))
        );
        let ru = format!("8{national}");
        prop_assert_eq!(
            normalize_phone(&ru, Language::Ru, "7"),
            Some(format!("+7{national}"))
        );
    }
}
