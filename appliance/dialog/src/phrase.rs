//! The fixed set of phrases a script robot says, and their `{placeholder}`
//! templates (parsed once at load, rendered per reply without failing).

use std::fmt;
use std::path::PathBuf;

/// Every phrase a script robot must define, in the order robot.toml lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhraseId {
    /// Said when the call is answered; should end by asking how we can help.
    Greeting,
    /// Re-asks what the caller needs (after a misunderstanding or silence).
    AskNeed,
    /// Asks for the caller's name.
    AskName,
    /// Asks for a callback number.
    AskPhone,
    /// Asks for dates (only for robots that ask for dates).
    AskDates,
    /// Asks for the city (only for robots that ask for the city).
    AskCity,
    /// Reads the lead back and asks whether it is right.
    Confirm,
    /// After "no" to the confirmation: asks what to correct.
    ConfirmRetry,
    /// The normal end of the call.
    Goodbye,
    /// The caller is not interested: polite goodbye.
    NotInterested,
    /// The caller asks to be called later: note it, goodbye.
    CallLater,
    /// "Who is this?": introduce the robot (the current question follows).
    WhoIsThis,
    /// Empty or unintelligible turn (the current question follows).
    DidNotCatch,
    /// The caller was silent (the current question follows).
    SilencePrompt,
    /// The robot gives up: too many turns, or nothing could be understood.
    MaxTurnsGoodbye,
}

impl PhraseId {
    /// All phrase ids, in robot.toml order.
    pub const ALL: [PhraseId; 15] = [
        PhraseId::Greeting,
        PhraseId::AskNeed,
        PhraseId::AskName,
        PhraseId::AskPhone,
        PhraseId::AskDates,
        PhraseId::AskCity,
        PhraseId::Confirm,
        PhraseId::ConfirmRetry,
        PhraseId::Goodbye,
        PhraseId::NotInterested,
        PhraseId::CallLater,
        PhraseId::WhoIsThis,
        PhraseId::DidNotCatch,
        PhraseId::SilencePrompt,
        PhraseId::MaxTurnsGoodbye,
    ];

    /// The key in robot.toml's `[phrases]` table, also the stem of
    /// `audio/<id>.wav`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhraseId::Greeting => "greeting",
            PhraseId::AskNeed => "ask_need",
            PhraseId::AskName => "ask_name",
            PhraseId::AskPhone => "ask_phone",
            PhraseId::AskDates => "ask_dates",
            PhraseId::AskCity => "ask_city",
            PhraseId::Confirm => "confirm",
            PhraseId::ConfirmRetry => "confirm_retry",
            PhraseId::Goodbye => "goodbye",
            PhraseId::NotInterested => "not_interested",
            PhraseId::CallLater => "call_later",
            PhraseId::WhoIsThis => "who_is_this",
            PhraseId::DidNotCatch => "did_not_catch",
            PhraseId::SilencePrompt => "silence_prompt",
            PhraseId::MaxTurnsGoodbye => "max_turns_goodbye",
        }
    }

    /// Parses a robot.toml phrase key.
    pub fn parse(id: &str) -> Option<PhraseId> {
        PhraseId::ALL.into_iter().find(|p| p.as_str() == id)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PhraseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lead field a phrase can name as `{field}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `{name}`
    Name,
    /// `{phone}`: the number in digit groups a TTS reads well, not E.164.
    Phone,
    /// `{request}`
    Request,
    /// `{dates}`
    Dates,
    /// `{city}`
    City,
}

impl Field {
    /// Every placeholder name, for error messages.
    pub const NAMES: &'static str = "name, phone, request, dates, city";

    /// The placeholder's name between the braces.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Phone => "phone",
            Field::Request => "request",
            Field::Dates => "dates",
            Field::City => "city",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        match name {
            "name" => Some(Field::Name),
            "phone" => Some(Field::Phone),
            "request" => Some(Field::Request),
            "dates" => Some(Field::Dates),
            "city" => Some(Field::City),
            _ => None,
        }
    }
}

/// Why a phrase template did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    Unknown(String),
    Unclosed,
    StrayClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Field(Field),
}

/// One validated phrase of a robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// Which phrase this is.
    pub id: PhraseId,
    /// The template text as written in robot.toml.
    pub text: String,
    /// The pre-recorded WAV for this phrase, when robot.toml declares one
    /// (checked to exist at load).
    pub audio: Option<PathBuf>,
    segments: Vec<Segment>,
}

impl Phrase {
    /// Parses a template; `{field}` names a lead field, everything else is
    /// literal text.
    pub(crate) fn parse(
        id: PhraseId,
        text: &str,
        audio: Option<PathBuf>,
    ) -> Result<Phrase, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(TemplateError::StrayClose);
            }
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(TemplateError::Unclosed)?;
            let name = after[..close].trim();
            let field =
                Field::parse(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
            segments.push(Segment::Field(field));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Phrase {
            id,
            text: text.to_owned(),
            audio,
            segments,
        })
    }

    /// Whether the phrase names any lead field (and so differs per call).
    pub fn has_placeholders(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Field(_)))
    }

    /// The lead fields the phrase names, in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = Field> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(f) => Some(*f),
            Segment::Text(_) => None,
        })
    }

    /// Fills the placeholders; rendering cannot fail because the template was
    /// checked at load.
    pub fn render(&self, value: impl Fn(Field) -> String) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Field(f) => out.push_str(&value(*f)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_index_matches_all() {
        for (i, id) in PhraseId::ALL.into_iter().enumerate() {
            assert_eq!(PhraseId::parse(id.as_str()), Some(id));
            assert_eq!(id.index(), i);
        }
        assert_eq!(PhraseId::parse("hello"), None);
    }

    #[test]
    fn renders_placeholders() {
        let p = Phrase::parse(PhraseId::Confirm, "Hi {name}, { phone }.", None).unwrap();
        assert!(p.has_placeholders());
        assert_eq!(
            p.placeholders().collect::<Vec<_>>(),
            [Field::Name, Field::Phone]
        );
        let out = p.render(|f| match f {
            Field::Name => "Ann".into(),
            _ => "1 2".into(),
        });
        assert_eq!(out, "Hi Ann, 1 2.");
    }

    #[test]
    fn fixed_phrase_has_no_placeholders() {
        let p = Phrase::parse(PhraseId::Goodbye, "Bye!", None).unwrap();
        assert!(!p.has_placeholders());
        assert_eq!(p.render(|_| unreachable!()), "Bye!");
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(
            Phrase::parse(PhraseId::Confirm, "{nmae}", None),
            Err(TemplateError::Unknown("nmae".into()))
        );
        assert_eq!(
            Phrase::parse(PhraseId::Confirm, "hi {name", None),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(
            Phrase::parse(PhraseId::Confirm, "hi name}", None),
            Err(TemplateError::StrayClose)
        );
    }
}
