//! The `script` dialog: one call's state machine from caller transcripts to
//! robot replies and a captured [`Lead`]. It does no I/O and keeps no clock;
//! the call loop feeds it events and speaks what it returns.
//!
//! ```text
//!  Start --start()--> Need --> Name --> Phone --> [Dates] --> [City] --> Confirm --yes--> Ended
//!                       ^ fields already given are skipped      |  ^          |
//!                       | (name + phone in one turn)           no  | fixed    +--max corrections--> Ended
//!                                                               v  |
//!                                                             Correct --"the phone"--> Phone --+
//!  any state: not interested / call later --> Ended;  who is this --> introduce, same question
//!            silence --> prompt, then Ended;  max_turns --> Ended
//! ```

use crate::language::Language;
use crate::phone::{is_whole_number, normalize_phone, speak_phone};
use crate::phrase::{Field, PhraseId};
use crate::robot::Robot;
use crate::text::{
    clean, correction_target, declines, extract_name, is_intelligible, objection, tidy_answer,
    tidy_city, words, yes_no, NameMode, Objection, Target, YesNo,
};
use serde::Serialize;
use std::path::PathBuf;

/// Where the script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Before the greeting.
    Start,
    /// Waiting for what the caller needs (the greeting asked).
    Need,
    /// Waiting for the caller's name.
    Name,
    /// Waiting for a callback number.
    Phone,
    /// Waiting for dates (robots with `ask.dates`).
    Dates,
    /// Waiting for the city (robots with `ask.city`).
    City,
    /// The lead was read back; waiting for yes or no.
    Confirm,
    /// The caller said no; waiting to hear what to correct.
    Correct,
    /// The call is over; further events change nothing.
    Ended,
}

/// What kind of answer the robot waits for, so the endpointer can be
/// patient where callers pause (dictating digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Any sentence.
    Free,
    /// A name: short, may come after a pause.
    Name,
    /// A phone number: digits in groups with pauses between them.
    Digits,
    /// Yes or no.
    YesNo,
}

/// How interested the caller is, by rules on the captured lead:
///
/// - `NotInterested`: the caller said so;
/// - `Cold`: no callback number;
/// - `Hot`: number confirmed, and dates given when the robot asks for them;
/// - `Warm`: any other lead with a number (unconfirmed, no dates, or
///   "call me later").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interest {
    /// Confirmed with everything the robot asks for.
    Hot,
    /// Has a number but is missing confirmation or dates.
    Warm,
    /// No callback number.
    Cold,
    /// Declined.
    NotInterested,
}

/// Why the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The caller confirmed the read-back.
    Completed,
    /// The read-back was rejected too often, or never answered.
    Unconfirmed,
    /// The caller is not interested.
    NotInterested,
    /// The caller asked to be called later.
    CallLater,
    /// The caller stayed silent after the silence prompts.
    Silence,
    /// `max_turns` was reached.
    MaxTurns,
    /// Nothing the caller said could be understood.
    GaveUp,
    /// The call reached the robot's maximum duration.
    MaxDuration,
}

/// What the robot captured in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lead {
    /// The caller's name, Title-cased.
    pub name: Option<String>,
    /// Callback number in E.164 (`+15551234567`).
    pub phone: Option<String>,
    /// What the caller needs, in their words.
    pub request: Option<String>,
    /// Dates, in the caller's words.
    pub dates: Option<String>,
    /// City, in the caller's words.
    pub city: Option<String>,
    /// Classification; see [`Interest`] for the rules.
    pub interest: Interest,
    /// The caller said yes to the read-back.
    pub confirmed: bool,
    /// The caller asked to be called back later.
    pub callback_later: bool,
    /// Caller events (utterances and silences) in the call.
    pub turns: u32,
    /// Why the call ended; `None` while it goes on.
    pub end: Option<EndReason>,
}

impl Lead {
    fn new() -> Lead {
        Lead {
            name: None,
            phone: None,
            request: None,
            dates: None,
            city: None,
            interest: Interest::Cold,
            confirmed: false,
            callback_later: false,
            turns: 0,
            end: None,
        }
    }
}

/// Lead fields captured outside the script (e.g. by the LLM's tools), for
/// [`Dialog::adopt`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Prefill {
    /// The caller's name.
    pub name: Option<String>,
    /// Callback number, already in E.164.
    pub phone: Option<String>,
    /// What the caller needs.
    pub request: Option<String>,
    /// Dates, in the caller's words.
    pub dates: Option<String>,
    /// City, in the caller's words.
    pub city: Option<String>,
}

/// One phrase within a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyPart {
    /// Which phrase.
    pub phrase: PhraseId,
    /// Its text with placeholders filled.
    pub text: String,
    /// Its pre-recorded WAV, if the robot has one.
    pub audio: Option<PathBuf>,
    /// Fixed text (no placeholders): the TTS may cache it.
    pub cacheable: bool,
}

/// What the robot says next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Everything to say, the parts joined by spaces.
    pub text: String,
    /// The first part's phrase id (`"did_not_catch"` for "Sorry, I didn't
    /// catch that. May I have your name?").
    pub phrase_id: String,
    /// A pre-recorded WAV for the whole reply: only when the reply is a single
    /// phrase that has one. Otherwise play [`Reply::parts`] one by one.
    pub audio: Option<PathBuf>,
    /// Hang up after saying this.
    pub end_call: bool,
    /// Every part is fixed text, so the whole text may be cached by the TTS.
    pub cacheable: bool,
    /// The phrases this reply is made of, for per-phrase audio and caching.
    pub parts: Vec<ReplyPart>,
}

/// Questions the caller has answered or the robot has given up on.
#[derive(Debug, Default, Clone, Copy)]
struct Done {
    need: bool,
    name: bool,
    phone: bool,
    dates: bool,
    city: bool,
}

/// One call's script dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    robot: Robot,
    state: State,
    lead: Lead,
    done: Done,
    /// Misunderstood answers to the current question.
    retries: u32,
    /// Consecutive silences.
    silences: u32,
    /// Rejected read-backs.
    corrections: u32,
    /// A field is being re-asked after "no": go straight back to Confirm.
    correcting: bool,
    final_reply: Option<Reply>,
}

impl Dialog {
    /// A fresh dialog for one call with `robot`.
    pub fn new(robot: &Robot) -> Dialog {
        Dialog {
            robot: robot.clone(),
            state: State::Start,
            lead: Lead::new(),
            done: Done::default(),
            retries: 0,
            silences: 0,
            corrections: 0,
            correcting: false,
            final_reply: None,
        }
    }

    /// The greeting. Called again later, it repeats the current question.
    pub fn start(&mut self) -> Reply {
        if let Some(r) = &self.final_reply {
            return r.clone();
        }
        if self.state == State::Start {
            self.state = State::Need;
            return self.reply(&[PhraseId::Greeting], false);
        }
        self.ask(None)
    }

    /// One caller turn (a transcript, however messy). After the call has
    /// ended it returns the final reply again and changes nothing.
    pub fn on_caller(&mut self, transcript: &str) -> Reply {
        if let Some(r) = &self.final_reply {
            return r.clone();
        }
        self.begin_turn();
        self.silences = 0;
        let text = clean(transcript);
        let reply = if is_intelligible(&text) {
            self.understand(&text)
        } else {
            self.not_understood()
        };
        self.finish_turn(reply)
    }

    /// The caller said nothing until the silence timeout: prompt and repeat
    /// the question up to `limits.silence_prompts` times in a row, then end
    /// the call politely.
    pub fn on_silence(&mut self) -> Reply {
        if let Some(r) = &self.final_reply {
            return r.clone();
        }
        self.begin_turn();
        self.silences += 1;
        let reply = if self.silences > self.robot.config.limits.silence_prompts {
            let phrase = self.polite_end_phrase();
            self.end(EndReason::Silence, phrase)
        } else {
            self.ask(Some(PhraseId::SilencePrompt))
        };
        self.finish_turn(reply)
    }

    /// What has been captured so far.
    pub fn lead(&self) -> &Lead {
        &self.lead
    }

    /// Where the script is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the call is over (the last reply had `end_call`).
    pub fn is_finished(&self) -> bool {
        self.state == State::Ended
    }

    /// What the robot waits for now.
    pub fn expect(&self) -> Expect {
        match self.state {
            State::Name => Expect::Name,
            State::Phone => Expect::Digits,
            State::Confirm => Expect::YesNo,
            State::Start
            | State::Need
            | State::Dates
            | State::City
            | State::Correct
            | State::Ended => Expect::Free,
        }
    }

    /// Whether `text` (the caller's words so far) already holds a whole
    /// phone number ([`is_whole_number`]) while the dialog asks for one: the
    /// caller has nothing left to dictate, so the endpoint need not wait the
    /// patience kept for pauses between digit groups.
    pub fn hears_whole_number(&self, text: &str) -> bool {
        self.state == State::Phone && self.phone_in(text).is_some_and(|n| is_whole_number(&n))
    }

    /// The robot this dialog runs.
    pub fn robot(&self) -> &Robot {
        &self.robot
    }

    /// The call has lasted as long as the robot allows: a polite goodbye
    /// that ends the call, keeping what was captured.
    pub fn on_max_duration(&mut self) -> Reply {
        if let Some(reply) = &self.final_reply {
            return reply.clone();
        }
        self.end(EndReason::MaxDuration, PhraseId::MaxTurnsGoodbye)
    }

    /// Takes lead fields captured elsewhere (the LLM's validated tool calls)
    /// without overwriting what the script already knows, so a call that
    /// falls back from an LLM mode keeps what the caller already said.
    /// `phone` must already be E.164 (see [`normalize_phone`]). A finished
    /// dialog changes nothing.
    pub fn adopt(&mut self, fields: &Prefill) {
        if self.state == State::Ended {
            return;
        }
        let lead = &mut self.lead;
        for (slot, value) in [
            (&mut lead.name, &fields.name),
            (&mut lead.phone, &fields.phone),
            (&mut lead.request, &fields.request),
            (&mut lead.dates, &fields.dates),
            (&mut lead.city, &fields.city),
        ] {
            if slot.is_none() {
                if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    *slot = Some(v.to_owned());
                }
            }
        }
        self.classify();
    }

    /// Continues the script from what is known (after [`Dialog::adopt`]):
    /// asks the first open question, or reads the lead back when nothing is
    /// missing. Does not count as a caller turn. On a finished dialog it
    /// returns the final reply.
    pub fn resume(&mut self) -> Reply {
        if let Some(r) = &self.final_reply {
            return r.clone();
        }
        if self.state == State::Start {
            self.state = State::Need;
        }
        self.correcting = false;
        self.advance(None)
    }

    /// One phrase rendered with what is captured so far, without changing
    /// the dialog (the `llm_script` mode plays phrases the model picks).
    pub fn say(&self, id: PhraseId) -> Reply {
        self.reply(&[id], false)
    }

    fn begin_turn(&mut self) {
        // A caller who talks before the greeting finished is answering it.
        if self.state == State::Start {
            self.state = State::Need;
        }
        self.lead.turns = self.lead.turns.saturating_add(1);
    }

    fn finish_turn(&mut self, reply: Reply) -> Reply {
        let reply = if !reply.end_call && self.lead.turns >= self.robot.config.max_turns {
            self.end(EndReason::MaxTurns, PhraseId::MaxTurnsGoodbye)
        } else {
            reply
        };
        self.classify();
        reply
    }

    fn classify(&mut self) {
        let lead = &self.lead;
        self.lead.interest = if lead.end == Some(EndReason::NotInterested) {
            Interest::NotInterested
        } else if lead.phone.is_none() {
            Interest::Cold
        } else if lead.confirmed && (lead.dates.is_some() || !self.robot.config.ask.dates) {
            Interest::Hot
        } else {
            Interest::Warm
        };
    }

    fn phone_in(&self, text: &str) -> Option<String> {
        normalize_phone(
            text,
            self.robot.language,
            &self.robot.config.default_country,
        )
    }

    fn understand(&mut self, text: &str) -> Reply {
        let ws = words(text);
        let phone = self.phone_in(text);
        match objection(&ws) {
            Some(Objection::NotInterested) => {
                return self.end(EndReason::NotInterested, PhraseId::NotInterested);
            }
            Some(Objection::CallLater) => {
                // Keep whatever the caller gave in the same breath
                // ("call me later on 555 ...").
                self.take_extras(text, phone);
                self.lead.callback_later = true;
                return self.end(EndReason::CallLater, PhraseId::CallLater);
            }
            Some(Objection::WhoIsThis) => return self.ask(Some(PhraseId::WhoIsThis)),
            None => {}
        }
        match self.state {
            State::Start | State::Need => self.on_need(text, phone),
            State::Name => self.on_name(text, phone),
            State::Phone => self.on_phone(text, phone),
            State::Dates => self.on_dates(text, &ws),
            State::City => self.on_city(text, &ws),
            State::Confirm => self.on_confirm(text, &ws, phone),
            State::Correct => self.on_correct(text, &ws, phone),
            State::Ended => self.final_reply.clone().unwrap_or_else(|| {
                let phrase = self.polite_end_phrase();
                self.end(EndReason::GaveUp, phrase)
            }),
        }
    }

    /// Takes a phone number and an explicitly introduced name from any turn,
    /// without overwriting what is already known.
    fn take_extras(&mut self, text: &str, phone: Option<String>) {
        if self.lead.phone.is_none() {
            self.lead.phone = phone;
        }
        if self.lead.name.is_none() {
            self.lead.name = extract_name(text, NameMode::Strict);
        }
    }

    fn on_need(&mut self, text: &str, phone: Option<String>) -> Reply {
        let request = tidy_answer(text);
        if request.is_empty() {
            return self.not_understood();
        }
        self.lead.request = Some(request);
        self.done.need = true;
        self.take_extras(text, phone);
        self.advance(None)
    }

    fn on_name(&mut self, text: &str, phone: Option<String>) -> Reply {
        let gave_phone = phone.is_some() && self.lead.phone.is_none();
        if gave_phone {
            self.lead.phone = phone;
        }
        match extract_name(text, NameMode::Lenient) {
            Some(name) => {
                self.lead.name = Some(name);
                self.done.name = true;
                self.advance(None)
            }
            // Progress on another field: ask for the name again, afresh.
            None if gave_phone => self.advance(None),
            None => self.not_understood(),
        }
    }

    fn on_phone(&mut self, text: &str, phone: Option<String>) -> Reply {
        match phone {
            Some(p) => {
                self.lead.phone = Some(p);
                self.done.phone = true;
                if self.lead.name.is_none() {
                    self.lead.name = extract_name(text, NameMode::Strict);
                }
                self.advance(None)
            }
            None => self.not_understood(),
        }
    }

    fn on_dates(&mut self, text: &str, ws: &[String]) -> Reply {
        if declines(ws) || yes_no(ws) == Some(YesNo::No) {
            self.done.dates = true;
            return self.advance(None);
        }
        let dates = tidy_answer(text);
        if dates.is_empty() {
            return self.not_understood();
        }
        self.lead.dates = Some(dates);
        self.done.dates = true;
        self.advance(None)
    }

    fn on_city(&mut self, text: &str, ws: &[String]) -> Reply {
        if declines(ws) || yes_no(ws) == Some(YesNo::No) {
            self.done.city = true;
            return self.advance(None);
        }
        let city = tidy_city(text);
        if city.is_empty() {
            return self.not_understood();
        }
        self.lead.city = Some(city);
        self.done.city = true;
        self.advance(None)
    }

    /// Applies a correction given outright ("No, it's 555 987 6543", "нет,
    /// меня зовут Иван"); true when something changed.
    fn apply_correction(&mut self, text: &str, phone: Option<String>) -> bool {
        let mut changed = false;
        if let Some(p) = phone {
            if self.lead.phone.as_ref() != Some(&p) {
                self.lead.phone = Some(p);
                changed = true;
            }
        }
        if let Some(n) = extract_name(text, NameMode::Strict) {
            if self.lead.name.as_ref() != Some(&n) {
                self.lead.name = Some(n);
                changed = true;
            }
        }
        changed
    }

    fn on_confirm(&mut self, text: &str, ws: &[String], phone: Option<String>) -> Reply {
        if self.apply_correction(text, phone) {
            return self.rejected(None);
        }
        match yes_no(ws) {
            Some(YesNo::Yes) => {
                self.lead.confirmed = true;
                self.end(EndReason::Completed, PhraseId::Goodbye)
            }
            // "No, the number is wrong": skip asking what to correct.
            Some(YesNo::No) => match self.target_state(ws) {
                Some(state) => {
                    self.correcting = true;
                    self.rejected(Some(state))
                }
                None => self.rejected(Some(State::Correct)),
            },
            None => self.not_understood(),
        }
    }

    /// The question that re-asks the field a correction names.
    fn target_state(&self, ws: &[String]) -> Option<State> {
        let ask = self.robot.config.ask;
        match correction_target(ws)? {
            Target::Name => Some(State::Name),
            Target::Phone => Some(State::Phone),
            Target::Dates if ask.dates => Some(State::Dates),
            Target::City if ask.city => Some(State::City),
            Target::Dates | Target::City => None,
        }
    }

    fn on_correct(&mut self, text: &str, ws: &[String], phone: Option<String>) -> Reply {
        if self.apply_correction(text, phone) {
            return self.enter_confirm(None);
        }
        if let Some(state) = self.target_state(ws) {
            self.correcting = true;
            self.enter(state);
            return self.ask(None);
        }
        if yes_no(ws) == Some(YesNo::Yes) {
            // "Nothing, it's fine": the read-back stands.
            self.lead.confirmed = true;
            return self.end(EndReason::Completed, PhraseId::Goodbye);
        }
        if let Some(name) = extract_name(text, NameMode::Lenient) {
            self.lead.name = Some(name);
            return self.enter_confirm(None);
        }
        self.not_understood()
    }

    /// The caller rejected the read-back: re-read it with the fix, or go to
    /// `next`, unless they have rejected it too often.
    fn rejected(&mut self, next: Option<State>) -> Reply {
        self.corrections += 1;
        if self.corrections > self.robot.config.limits.corrections {
            let phrase = self.polite_end_phrase();
            return self.end(EndReason::Unconfirmed, phrase);
        }
        match next {
            Some(state) => {
                self.enter(state);
                self.ask(None)
            }
            None => self.enter_confirm(None),
        }
    }

    fn enter(&mut self, state: State) {
        self.state = state;
        self.retries = 0;
    }

    fn enter_confirm(&mut self, prefix: Option<PhraseId>) -> Reply {
        self.correcting = false;
        self.enter(State::Confirm);
        self.ask(prefix)
    }

    /// The first question still open, or the read-back.
    fn next_state(&self) -> State {
        let lead = &self.lead;
        let ask = self.robot.config.ask;
        if self.correcting {
            State::Confirm
        } else if !self.done.need && lead.request.is_none() {
            State::Need
        } else if !self.done.name && lead.name.is_none() {
            State::Name
        } else if !self.done.phone && lead.phone.is_none() {
            State::Phone
        } else if ask.dates && !self.done.dates && lead.dates.is_none() {
            State::Dates
        } else if ask.city && !self.done.city && lead.city.is_none() {
            State::City
        } else {
            State::Confirm
        }
    }

    /// Moves to the next open question and asks it (after `prefix`).
    fn advance(&mut self, prefix: Option<PhraseId>) -> Reply {
        let next = self.next_state();
        let lead = &self.lead;
        if matches!(next, State::Dates | State::City | State::Confirm)
            && lead.name.is_none()
            && lead.phone.is_none()
            && lead.request.is_none()
        {
            // Need, name and phone were all given up on: asking for dates or
            // reading back "not given" helps nobody.
            return self.end(EndReason::GaveUp, PhraseId::MaxTurnsGoodbye);
        }
        match next {
            State::Confirm => self.enter_confirm(prefix),
            state => {
                self.enter(state);
                self.ask(prefix)
            }
        }
    }

    /// An empty or meaningless answer: say so and ask again, or move on once
    /// `limits.retries` is used up.
    fn not_understood(&mut self) -> Reply {
        self.retries += 1;
        if self.retries <= self.robot.config.limits.retries {
            return self.ask(Some(PhraseId::DidNotCatch));
        }
        match self.state {
            State::Start | State::Need => self.done.need = true,
            State::Name => self.done.name = true,
            State::Phone => self.done.phone = true,
            State::Dates => self.done.dates = true,
            State::City => self.done.city = true,
            State::Confirm | State::Correct => {
                let phrase = self.polite_end_phrase();
                return self.end(EndReason::Unconfirmed, phrase);
            }
            State::Ended => {}
        }
        self.correcting = false;
        self.advance(Some(PhraseId::DidNotCatch))
    }

    /// `goodbye` promises a callback, so it is only said when there is a
    /// number to call.
    fn polite_end_phrase(&self) -> PhraseId {
        if self.lead.phone.is_some() {
            PhraseId::Goodbye
        } else {
            PhraseId::MaxTurnsGoodbye
        }
    }

    fn question(&self) -> Option<PhraseId> {
        match self.state {
            State::Start => Some(PhraseId::Greeting),
            State::Need => Some(PhraseId::AskNeed),
            State::Name => Some(PhraseId::AskName),
            State::Phone => Some(PhraseId::AskPhone),
            State::Dates => Some(PhraseId::AskDates),
            State::City => Some(PhraseId::AskCity),
            State::Confirm => Some(PhraseId::Confirm),
            State::Correct => Some(PhraseId::ConfirmRetry),
            State::Ended => None,
        }
    }

    /// The current question, after `prefix` if any.
    fn ask(&self, prefix: Option<PhraseId>) -> Reply {
        let ids: Vec<PhraseId> = prefix.into_iter().chain(self.question()).collect();
        self.reply(&ids, false)
    }

    fn end(&mut self, reason: EndReason, phrase: PhraseId) -> Reply {
        self.state = State::Ended;
        self.lead.end = Some(reason);
        self.classify();
        let reply = self.reply(&[phrase], true);
        self.final_reply = Some(reply.clone());
        reply
    }

    fn field(&self, field: Field) -> String {
        let value = match field {
            Field::Name => self.lead.name.clone(),
            Field::Phone => self
                .lead
                .phone
                .as_deref()
                .map(|p| speak_phone(p, self.robot.language)),
            Field::Request => self.lead.request.clone(),
            Field::Dates => self.lead.dates.clone(),
            Field::City => self.lead.city.clone(),
        };
        value.unwrap_or_else(|| {
            match self.robot.language {
                Language::En => "not given",
                Language::Ru => "не указано",
            }
            .to_owned()
        })
    }

    fn reply(&self, ids: &[PhraseId], end_call: bool) -> Reply {
        let parts: Vec<ReplyPart> = ids
            .iter()
            .map(|&id| {
                let phrase = self.robot.phrase_by_id(id);
                let fixed = !phrase.has_placeholders();
                ReplyPart {
                    phrase: id,
                    text: if fixed {
                        phrase.text.clone()
                    } else {
                        phrase.render(|f| self.field(f))
                    },
                    audio: phrase.audio.clone(),
                    cacheable: fixed,
                }
            })
            .collect();
        Reply {
            text: parts
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            phrase_id: parts
                .first()
                .map_or_else(String::new, |p| p.phrase.as_str().to_owned()),
            audio: match parts.as_slice() {
                [only] => only.audio.clone(),
                _ => None,
            },
            end_call,
            cacheable: parts.iter().all(|p| p.cacheable),
            parts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en() -> Dialog {
        Dialog::new(&Robot::builtin("reception-en").unwrap())
    }

    #[test]
    fn greeting_then_need() {
        let mut d = en();
        assert_eq!(d.state(), State::Start);
        let r = d.start();
        assert_eq!(r.phrase_id, "greeting");
        assert!(r.cacheable && !r.end_call);
        assert_eq!(d.state(), State::Need);
        assert_eq!(d.expect(), Expect::Free);
        // A second start() repeats the open question instead of re-greeting.
        assert_eq!(d.start().phrase_id, "ask_need");
    }

    #[test]
    fn expect_follows_state() {
        let mut d = en();
        d.start();
        d.on_caller("I need a room");
        assert_eq!((d.state(), d.expect()), (State::Name, Expect::Name));
        d.on_caller("John");
        assert_eq!((d.state(), d.expect()), (State::Phone, Expect::Digits));
        d.on_caller("555 123 4567");
        d.on_caller("next weekend");
        assert_eq!((d.state(), d.expect()), (State::Confirm, Expect::YesNo));
    }

    #[test]
    fn a_whole_number_is_heard_only_while_the_number_is_asked() {
        let mut d = en();
        d.start();
        d.on_caller("I need a room");
        assert!(!d.hears_whole_number("555 123 4567"), "not asked yet");
        d.on_caller("John");
        assert!(!d.hears_whole_number("five five five, one two three"));
        assert!(d.hears_whole_number("five five five, one two three, four five six seven"));
        assert!(d.hears_whole_number("It's 1 555 123 4567"));
        let mut ru = Dialog::new(&Robot::builtin("reception-ru").unwrap());
        ru.start();
        ru.on_caller("Нужен сантехник");
        ru.on_caller("Иван");
        assert!(!ru.hears_whole_number("восемь девятьсот шестнадцать"));
        assert!(ru.hears_whole_number(
            "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь"
        ));
    }

    #[test]
    fn confirm_is_not_cacheable_and_reads_digit_groups() {
        let mut d = en();
        d.start();
        d.on_caller("I need a room");
        d.on_caller("John");
        d.on_caller("555 123 4567");
        let r = d.on_caller("I don't know yet");
        assert_eq!(r.phrase_id, "confirm");
        assert!(!r.cacheable);
        assert!(
            r.text
                .contains("five five five, one two three, four five six seven"),
            "{}",
            r.text
        );
        assert!(r.text.contains("Dates: not given"), "{}", r.text);
    }

    #[test]
    fn did_not_catch_repeats_question_then_moves_on() {
        let mut d = en();
        d.start();
        d.on_caller("I need a room");
        let r = d.on_caller("[BLANK_AUDIO]");
        assert_eq!(r.phrase_id, "did_not_catch");
        assert_eq!(r.parts.len(), 2);
        assert_eq!(r.parts[1].phrase, PhraseId::AskName);
        assert!(r.audio.is_none() && r.cacheable);
        d.on_caller("Yes.");
        assert_eq!(d.state(), State::Name);
        let r = d.on_caller("???");
        // Retries used up: move on to the phone.
        assert_eq!(d.state(), State::Phone);
        assert_eq!(r.parts[1].phrase, PhraseId::AskPhone);
    }

    #[test]
    fn adopt_then_resume_skips_known_fields() {
        let mut d = en();
        d.start();
        d.adopt(&Prefill {
            name: Some("John".into()),
            phone: Some("+15551234567".into()),
            request: Some("a room".into()),
            ..Prefill::default()
        });
        let r = d.resume();
        assert_eq!(d.state(), State::Dates);
        assert_eq!(r.phrase_id, "ask_dates");
        assert_eq!(d.lead().turns, 0);
        // Known fields are not overwritten by a later adopt.
        d.adopt(&Prefill {
            name: Some("Mallory".into()),
            ..Prefill::default()
        });
        assert_eq!(d.lead().name.as_deref(), Some("John"));
        d.on_caller("next weekend");
        assert_eq!(d.state(), State::Confirm);
        assert!(d.say(PhraseId::Confirm).text.contains("John"));
    }

    #[test]
    fn resume_from_start_asks_the_need() {
        let mut d = en();
        let r = d.resume();
        assert_eq!(r.phrase_id, "ask_need");
        assert_eq!(d.state(), State::Need);
    }

    #[test]
    fn finished_dialog_ignores_events() {
        let mut d = en();
        d.start();
        let bye = d.on_caller("Not interested.");
        assert!(bye.end_call && d.is_finished());
        let turns = d.lead().turns;
        assert_eq!(d.on_caller("wait, John"), bye);
        assert_eq!(d.on_silence(), bye);
        assert_eq!(d.start(), bye);
        assert_eq!(d.lead().turns, turns);
        assert_eq!(d.lead().name, None);
    }
}
