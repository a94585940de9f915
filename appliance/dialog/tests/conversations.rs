//! Whole scripted calls, greeting to goodbye, in English and Russian, with
//! whisper-style messy transcripts, asserting the captured lead.

use vb_dialog::{Dialog, EndReason, Interest, Lead, Reply, Robot, State};

#[derive(Clone, Copy)]
enum Ev {
    Say(&'static str),
    Silence,
}
use Ev::{Say, Silence};

struct Want {
    name: Option<&'static str>,
    phone: Option<&'static str>,
    request: Option<&'static str>,
    dates: Option<&'static str>,
    city: Option<&'static str>,
    interest: Interest,
    confirmed: bool,
    end: EndReason,
    last_phrase: &'static str,
}

struct Case {
    title: &'static str,
    robot: &'static str,
    events: &'static [Ev],
    /// Phrase id of each reply, in order (checks the route, not the wording).
    route: &'static [&'static str],
    want: Want,
}

fn run(robot: &Robot, events: &[Ev]) -> (Dialog, Vec<Reply>) {
    let mut d = Dialog::new(robot);
    let mut replies = vec![d.start()];
    for ev in events {
        assert!(!d.is_finished(), "event after the call ended");
        replies.push(match ev {
            Say(t) => d.on_caller(t),
            Silence => d.on_silence(),
        });
    }
    (d, replies)
}

fn check(case: &Case) {
    let robot = Robot::builtin(case.robot).unwrap();
    let (d, replies) = run(&robot, case.events);
    let route: Vec<&str> = replies.iter().map(|r| r.phrase_id.as_str()).collect();
    let transcript: Vec<&str> = replies.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(route, case.route, "{}: route\n{transcript:#?}", case.title);
    let last = replies.last().unwrap();
    assert!(
        last.end_call,
        "{}: last reply must end the call",
        case.title
    );
    assert!(
        replies[..replies.len() - 1].iter().all(|r| !r.end_call),
        "{}: only the last reply ends the call",
        case.title
    );
    assert!(d.is_finished());
    assert_eq!(d.state(), State::Ended);
    let w = &case.want;
    let lead: &Lead = d.lead();
    let got = (
        lead.name.as_deref(),
        lead.phone.as_deref(),
        lead.request.as_deref(),
        lead.dates.as_deref(),
        lead.city.as_deref(),
    );
    assert_eq!(
        got,
        (w.name, w.phone, w.request, w.dates, w.city),
        "{}: lead fields",
        case.title
    );
    assert_eq!(lead.interest, w.interest, "{}: interest", case.title);
    assert_eq!(lead.confirmed, w.confirmed, "{}: confirmed", case.title);
    assert_eq!(lead.end, Some(w.end), "{}: end reason", case.title);
    assert_eq!(last.phrase_id, w.last_phrase, "{}: last phrase", case.title);
    assert_eq!(
        lead.turns as usize,
        case.events.len(),
        "{}: turns",
        case.title
    );
}

const CASES: &[Case] = &[
    Case {
        title: "en happy path, one field per turn",
        robot: "reception-en",
        events: &[
            Say("Hi, I'd like to book a room for two."),
            Say(" My name is John Smith."),
            Say("555-123-4567"),
            Say("From the 3rd to the 5th of June."),
            Say("Yes, that's right."),
        ],
        route: &["greeting", "ask_name", "ask_phone", "ask_dates", "confirm", "goodbye"],
        want: Want {
            name: Some("John Smith"),
            phone: Some("+15551234567"),
            request: Some("I'd like to book a room for two"),
            dates: Some("From the 3rd to the 5th of June"),
            city: None,
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en name and spoken phone in one turn, dates declined",
        robot: "reception-en",
        events: &[
            Say("I need a table for tonight"),
            Say("It's Mary. My number is five five five, one two three, four five six seven."),
            Say("I don't know yet."),
            Say("Yep"),
        ],
        route: &["greeting", "ask_name", "ask_dates", "confirm", "goodbye"],
        want: Want {
            name: Some("Mary"),
            phone: Some("+15551234567"),
            request: Some("I need a table for tonight"),
            dates: None,
            city: None,
            interest: Interest::Warm,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en everything in the first turn",
        robot: "reception-en",
        events: &[
            Say("Hello, my name is Bob Lee, I want to order a cake, you can reach me at +1 (555) 987-6543."),
            Say("Tomorrow afternoon"),
            Say("Correct."),
        ],
        route: &["greeting", "ask_dates", "confirm", "goodbye"],
        want: Want {
            name: Some("Bob Lee"),
            phone: Some("+15559876543"),
            request: Some(
                "my name is Bob Lee, I want to order a cake, you can reach me at +1 (555) 987-6543",
            ),
            dates: Some("Tomorrow afternoon"),
            city: None,
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en correction given outright",
        robot: "reception-en",
        events: &[
            Say("I'm calling about a delivery."),
            Say("Ann"),
            Say("double five five, one two three, oh oh one one"),
            Say("next Monday"),
            Say("No, the number is 555 987 6543."),
            Say("Yes."),
        ],
        route: &[
            "greeting", "ask_name", "ask_phone", "ask_dates", "confirm", "confirm", "goodbye",
        ],
        want: Want {
            name: Some("Ann"),
            phone: Some("+15559876543"),
            request: Some("I'm calling about a delivery"),
            dates: Some("next Monday"),
            city: None,
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en bare no, then the name is corrected",
        robot: "reception-en",
        events: &[
            Say("A quote for a wedding."),
            Say("John."),
            Say("555 123 4567"),
            Say("June 12th"),
            Say("No."),
            Say("The name."),
            Say("Jon Snow"),
            Say("That's correct"),
        ],
        route: &[
            "greeting",
            "ask_name",
            "ask_phone",
            "ask_dates",
            "confirm",
            "confirm_retry",
            "ask_name",
            "confirm",
            "goodbye",
        ],
        want: Want {
            name: Some("Jon Snow"),
            phone: Some("+15551234567"),
            request: Some("A quote for a wedding"),
            dates: Some("June 12th"),
            city: None,
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en not interested",
        robot: "reception-en",
        events: &[Say("I need a plumber"), Say("No thanks, I'm not interested.")],
        route: &["greeting", "ask_name", "not_interested"],
        want: Want {
            name: None,
            phone: None,
            request: Some("I need a plumber"),
            dates: None,
            city: None,
            interest: Interest::NotInterested,
            confirmed: false,
            end: EndReason::NotInterested,
            last_phrase: "not_interested",
        },
    },
    Case {
        title: "en call later keeps the number given with it",
        robot: "reception-en",
        events: &[
            Say("I have a question about prices"),
            Say("Sorry, I'm busy right now, call me later on 555 222 3333"),
        ],
        route: &["greeting", "ask_name", "call_later"],
        want: Want {
            name: None,
            phone: Some("+15552223333"),
            request: Some("I have a question about prices"),
            dates: None,
            city: None,
            interest: Interest::Warm,
            confirmed: false,
            end: EndReason::CallLater,
            last_phrase: "call_later",
        },
    },
    Case {
        title: "en who is this, then blank audio, then the script goes on",
        robot: "reception-en",
        events: &[
            Say("Who is this?"),
            Say("[BLANK_AUDIO]"),
            Say("Are you a robot? I want to book a massage."),
            Say("I want to book a massage."),
            Say("Kate"),
            Say("plus one five five five one two three four five six seven"),
            Say("Saturday"),
            Say("yes"),
        ],
        route: &[
            "greeting",
            "who_is_this",
            "did_not_catch",
            "who_is_this",
            "ask_name",
            "ask_phone",
            "ask_dates",
            "confirm",
            "goodbye",
        ],
        want: Want {
            name: Some("Kate"),
            phone: Some("+15551234567"),
            request: Some("I want to book a massage"),
            dates: Some("Saturday"),
            city: None,
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en silence: prompt once, then hang up politely",
        robot: "reception-en",
        events: &[Silence, Silence],
        route: &["greeting", "silence_prompt", "max_turns_goodbye"],
        want: Want {
            name: None,
            phone: None,
            request: None,
            dates: None,
            city: None,
            interest: Interest::Cold,
            confirmed: false,
            end: EndReason::Silence,
            last_phrase: "max_turns_goodbye",
        },
    },
    Case {
        title: "en silence after the number: goodbye promises the callback",
        robot: "reception-en",
        events: &[
            Say("Need a taxi"),
            Say("Max, 555 444 3322"),
            Silence,
            Say("Tonight"),
            Silence,
            Silence,
        ],
        route: &[
            "greeting",
            "ask_name",
            "ask_dates",
            "silence_prompt",
            "confirm",
            "silence_prompt",
            "goodbye",
        ],
        want: Want {
            name: Some("Max"),
            phone: Some("+15554443322"),
            request: Some("Need a taxi"),
            dates: Some("Tonight"),
            city: None,
            interest: Interest::Warm,
            confirmed: false,
            end: EndReason::Silence,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "en nothing understood: move on, then give up",
        robot: "reception-en",
        events: &[
            Say("..."),
            Say("Hello?"),
            Say("(static)"),
            Say("yes"),
            Say("no"),
            Say("what"),
            Say("hmm 12"),
            Say("uh"),
            Say("sorry what"),
        ],
        route: &[
            "greeting",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "did_not_catch",
            "max_turns_goodbye",
        ],
        want: Want {
            name: None,
            phone: None,
            request: None,
            dates: None,
            city: None,
            interest: Interest::Cold,
            confirmed: false,
            end: EndReason::GaveUp,
            last_phrase: "max_turns_goodbye",
        },
    },
    Case {
        title: "ru happy path with dates and city",
        robot: "reception-ru",
        events: &[
            Say("Здравствуйте, хочу забронировать номер на двоих."),
            Say("Меня зовут Иван Петров."),
            Say("8 916 123-45-67"),
            Say("С пятого по седьмое марта."),
            Say("Из Москвы."),
            Say("Да, всё верно."),
        ],
        route: &[
            "greeting", "ask_name", "ask_phone", "ask_dates", "ask_city", "confirm", "goodbye",
        ],
        want: Want {
            name: Some("Иван Петров"),
            phone: Some("+79161234567"),
            request: Some("хочу забронировать номер на двоих"),
            dates: Some("С пятого по седьмое марта"),
            city: Some("Москвы"),
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "ru number in words, name with filler это",
        robot: "reception-ru",
        events: &[
            Say("Нужна консультация по ценам"),
            Say("это Ольга"),
            Say("восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь"),
            Say("пока не знаю"),
            Say("Казань"),
            Say("ага"),
        ],
        route: &[
            "greeting", "ask_name", "ask_phone", "ask_dates", "ask_city", "confirm", "goodbye",
        ],
        want: Want {
            name: Some("Ольга"),
            phone: Some("+79161234567"),
            request: Some("Нужна консультация по ценам"),
            dates: None,
            city: Some("Казань"),
            interest: Interest::Warm,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "ru name and number with плюс in one turn",
        robot: "reception-ru",
        events: &[
            Say("Хочу записаться на стрижку."),
            Say("Мария, мой номер плюс семь девятьсот три пятьсот пять ноль один двадцать"),
            Say("на субботу"),
            Say("Санкт-Петербург"),
            Say("Да"),
        ],
        route: &["greeting", "ask_name", "ask_dates", "ask_city", "confirm", "goodbye"],
        want: Want {
            name: Some("Мария"),
            phone: Some("+79035050120"),
            request: Some("Хочу записаться на стрижку"),
            dates: Some("на субботу"),
            city: Some("Санкт-Петербург"),
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "ru rejected read-back naming the phone",
        robot: "reception-ru",
        events: &[
            Say("Доставка цветов"),
            Say("Анна"),
            Say("+7 (916) 123 45 67"),
            Say("завтра"),
            Say("Тверь"),
            Say("Нет, номер неправильный"),
            Say("8 903 005 20 07"),
            Say("Правильно"),
        ],
        route: &[
            "greeting",
            "ask_name",
            "ask_phone",
            "ask_dates",
            "ask_city",
            "confirm",
            "ask_phone",
            "confirm",
            "goodbye",
        ],
        want: Want {
            name: Some("Анна"),
            phone: Some("+79030052007"),
            request: Some("Доставка цветов"),
            dates: Some("завтра"),
            city: Some("Тверь"),
            interest: Interest::Hot,
            confirmed: true,
            end: EndReason::Completed,
            last_phrase: "goodbye",
        },
    },
    Case {
        title: "ru not interested",
        robot: "reception-ru",
        events: &[Say("Нет, спасибо, мне не интересно.")],
        route: &["greeting", "not_interested"],
        want: Want {
            name: None,
            phone: None,
            request: None,
            dates: None,
            city: None,
            interest: Interest::NotInterested,
            confirmed: false,
            end: EndReason::NotInterested,
            last_phrase: "not_interested",
        },
    },
    Case {
        title: "ru who is this, then call later",
        robot: "reception-ru",
        events: &[
            Say("Хочу узнать про аренду зала"),
            Say("А кто это?"),
            Say("Я сейчас за рулём, перезвоните попозже."),
        ],
        route: &["greeting", "ask_name", "who_is_this", "call_later"],
        want: Want {
            name: None,
            phone: None,
            request: Some("Хочу узнать про аренду зала"),
            dates: None,
            city: None,
            interest: Interest::Cold,
            confirmed: false,
            end: EndReason::CallLater,
            last_phrase: "call_later",
        },
    },
    Case {
        title: "ru whisper hallucination and silence, then goodbye",
        robot: "reception-ru",
        events: &[Say("(музыка)"), Silence, Silence],
        route: &["greeting", "did_not_catch", "silence_prompt", "max_turns_goodbye"],
        want: Want {
            name: None,
            phone: None,
            request: None,
            dates: None,
            city: None,
            interest: Interest::Cold,
            confirmed: false,
            end: EndReason::Silence,
            last_phrase: "max_turns_goodbye",
        },
    },
];

#[test]
fn scripted_conversations() {
    for case in CASES {
        check(case);
    }
}

#[test]
fn russian_read_back_speaks_number_groups() {
    let robot = Robot::builtin("reception-ru").unwrap();
    let (_, replies) = run(
        &robot,
        &[
            Say("Хочу забронировать столик"),
            Say("Иван"),
            Say("8 916 123 45 67"),
            Say("на пятницу"),
            Say("Сочи"),
        ],
    );
    let confirm = replies.last().unwrap();
    assert_eq!(confirm.phrase_id, "confirm");
    assert_eq!(
        confirm.text,
        "Давайте проверю. Имя: Иван. Телефон: плюс семь, девятьсот шестнадцать, сто двадцать три, \
         сорок пять, шестьдесят семь. Запрос: Хочу забронировать столик. Даты: на пятницу. \
         Город: Сочи. Всё верно?"
    );
}

#[test]
fn who_is_this_reasks_the_current_question() {
    let robot = Robot::builtin("reception-en").unwrap();
    let mut d = Dialog::new(&robot);
    d.start();
    d.on_caller("I need a room");
    d.on_caller("Sam");
    let r = d.on_caller("Wait, who am I talking to?");
    assert_eq!(r.phrase_id, "who_is_this");
    assert_eq!(r.parts.len(), 2);
    assert_eq!(r.parts[1].phrase.as_str(), "ask_phone");
    assert_eq!(d.state(), State::Phone);
    assert!(r.cacheable);
}

#[test]
fn max_turns_ends_the_call() {
    let mut robot = Robot::builtin("reception-en").unwrap();
    robot.config.max_turns = 3;
    let mut d = Dialog::new(&robot);
    d.start();
    assert!(!d.on_caller("Who is this?").end_call);
    assert!(!d.on_caller("Who are you?").end_call);
    let r = d.on_caller("Who is calling?");
    assert!(r.end_call);
    assert_eq!(r.phrase_id, "max_turns_goodbye");
    assert_eq!(d.lead().end, Some(EndReason::MaxTurns));
    assert!(d.is_finished());
}

#[test]
fn a_completing_answer_on_the_last_turn_still_completes() {
    let mut robot = Robot::builtin("reception-en").unwrap();
    robot.config.max_turns = 5;
    let (d, replies) = run(
        &robot,
        &[
            Say("Need a room"),
            Say("Lee"),
            Say("555 123 4567"),
            Say("May 1"),
            Say("yes"),
        ],
    );
    assert_eq!(replies.last().unwrap().phrase_id, "goodbye");
    assert_eq!(d.lead().end, Some(EndReason::Completed));
}

#[test]
fn silence_counter_resets_when_the_caller_speaks() {
    let robot = Robot::builtin("reception-en").unwrap();
    let mut d = Dialog::new(&robot);
    d.start();
    assert!(!d.on_silence().end_call);
    d.on_caller("I need a room");
    assert!(!d.on_silence().end_call);
    assert!(d.on_silence().end_call);
}

#[test]
fn too_many_rejected_read_backs_end_unconfirmed() {
    let robot = Robot::builtin("reception-en").unwrap();
    let (d, replies) = run(
        &robot,
        &[
            Say("Need a room"),
            Say("Lee"),
            Say("555 123 4567"),
            Say("May 1"),
            Say("No"),
            Say("Hmm, let me think"),
            Say("No, my name is Leo"),
            Say("No, my name is Lea"),
            Say("No, the phone is 555 123 0000"),
        ],
    );
    let route: Vec<&str> = replies.iter().map(|r| r.phrase_id.as_str()).collect();
    assert_eq!(
        route,
        [
            "greeting",
            "ask_name",
            "ask_phone",
            "ask_dates",
            "confirm",
            "confirm_retry",
            "did_not_catch",
            "confirm",
            "confirm",
            "goodbye"
        ]
    );
    assert_eq!(d.lead().end, Some(EndReason::Unconfirmed));
    assert_eq!(d.lead().name.as_deref(), Some("Lea"));
    assert_eq!(d.lead().phone.as_deref(), Some("+15551230000"));
    assert!(!d.lead().confirmed);
    assert_eq!(d.lead().interest, Interest::Warm);
}

#[test]
fn lead_serializes_for_the_outbox() {
    let robot = Robot::builtin("reception-en").unwrap();
    let (d, _) = run(
        &robot,
        &[
            Say("Need a room"),
            Say("Lee"),
            Say("555 123 4567"),
            Say("May 1"),
            Say("yes"),
        ],
    );
    let json = serde_json::to_value(d.lead()).unwrap();
    assert_eq!(json["phone"], "+15551234567");
    assert_eq!(json["interest"], "hot");
    assert_eq!(json["end"], "completed");
    assert_eq!(json["confirmed"], true);
}
