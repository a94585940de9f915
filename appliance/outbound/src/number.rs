//! What the queue may dial: an E.164 number (`+` and 7 to 15 digits, the
//! first not 0) or a SIP URI. Punctuation people write in numbers (spaces,
//! dashes, dots, parentheses) is dropped; anything else is refused with the
//! reason, so a bad row in an upload is named, not dialled.

use serde::{Deserialize, Serialize};

/// Longest SIP URI accepted.
pub const MAX_URI: usize = 256;
/// E.164 digits after the `+`, shortest and longest.
pub const E164_DIGITS: (usize, usize) = (7, 15);

/// A number the queue can dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Target {
    /// `+` and digits.
    Phone(String),
    /// `sip:user@host[:port]`.
    Sip(String),
}

/// Why a number cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing given.
    #[error("the number is empty")]
    Empty,
    /// A phone number without the country code.
    #[error("{0:?} is not in E.164 form: start with + and the country code (e.g. +15551234567)")]
    NoPlus(String),
    /// Too few or too many digits, or a letter among them.
    #[error("{given:?} is not an E.164 number: {why} (E.164 has 7 to 15 digits after +, the first not 0)")]
    BadPhone {
        /// The text given.
        given: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A SIP URI that cannot be dialled.
    #[error("{given:?} is not a SIP URI the box can dial: {why} (sip:user@host, at most {MAX_URI} characters)")]
    BadUri {
        /// The text given (cut to the limit).
        given: String,
        /// What is wrong.
        why: &'static str,
    },
}

impl Target {
    /// Parses a number as written by a person or a CRM export.
    pub fn parse(text: &str) -> Result<Target, NumberError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NumberError::Empty);
        }
        if text.len() >= 4 && text[..4].eq_ignore_ascii_case("sip:") {
            return parse_uri(text).map(Target::Sip);
        }
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
            .collect();
        let Some(digits) = compact.strip_prefix('+') else {
            return Err(NumberError::NoPlus(cut(text)));
        };
        let bad = |why| NumberError::BadPhone {
            given: cut(text),
            why,
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("only digits may follow the +"));
        }
        if digits.starts_with('0') {
            return Err(bad("country codes do not start with 0"));
        }
        if digits.len() < E164_DIGITS.0 {
            return Err(bad("too few digits"));
        }
        if digits.len() > E164_DIGITS.1 {
            return Err(bad("too many digits"));
        }
        Ok(Target::Phone(compact))
    }

    /// What the SIP agent dials: the URI, or the number (which the agent
    /// sends to the registrar as `number@registrar`).
    pub fn dial_string(&self) -> &str {
        match self {
            Target::Phone(p) | Target::Sip(p) => p,
        }
    }

    /// The key a do-not-call entry matches: the E.164 number, the user part
    /// of a SIP URI when it is one, else the URI in lower case.
    pub fn dnc_key(&self) -> String {
        match self {
            Target::Phone(p) => p.clone(),
            Target::Sip(uri) => {
                let user = uri[4..].split('@').next().unwrap_or_default();
                match Target::parse(user) {
                    Ok(Target::Phone(p)) => p,
                    _ => uri.to_ascii_lowercase(),
                }
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dial_string())
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        match t {
            Target::Phone(p) | Target::Sip(p) => p,
        }
    }
}

impl TryFrom<String> for Target {
    type Error = NumberError;
    fn try_from(s: String) -> Result<Target, NumberError> {
        Target::parse(&s)
    }
}

fn cut(text: &str) -> String {
    text.chars().take(40).collect()
}

fn parse_uri(text: &str) -> Result<String, NumberError> {
    let bad = |why| NumberError::BadUri {
        given: cut(text),
        why,
    };
    if text.len() > MAX_URI {
        return Err(bad("too long"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"')
    {
        return Err(bad(
            "spaces, quotes, angle brackets and control characters are not allowed",
        ));
    }
    let rest = &text[4..];
    let Some((user, host)) = rest.split_once('@') else {
        return Err(bad("no user@host"));
    };
    if user.is_empty() {
        return Err(bad("empty user part"));
    }
    let host = host.split(';').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        return Err(bad("bad host part"));
    }
    Ok(format!("sip:{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_as_people_write_them() {
        for (given, want) in [
            ("+1 (555) 123-4567", "+15551234567"),
            ("+7 916 123 45 67", "+79161234567"),
            ("  +44.20.7946.0958 ", "+442079460958"),
        ] {
            assert_eq!(
                Target::parse(given),
                Ok(Target::Phone(want.into())),
                "{given}"
            );
        }
    }

    #[test]
    fn bad_phones_say_why() {
        assert_eq!(Target::parse(""), Err(NumberError::Empty));
        assert!(matches!(
            Target::parse("5551234567"),
            Err(NumberError::NoPlus(_))
        ));
        for (given, why) in [
            ("+1555", "too few digits"),
            ("+1234567890123456", "too many digits"),
            ("+0123456789", "country codes do not start with 0"),
            ("+1555CALLNOW", "only digits may follow the +"),
        ] {
            match Target::parse(given) {
                Err(NumberError::BadPhone { why: w, .. }) => assert_eq!(w, why, "{given}"),
                other => panic!("{given}: {other:?}"),
            }
        }
        let e = Target::parse("+1555").unwrap_err().to_string();
        assert!(e.contains("7 to 15 digits"), "{e}");
    }

    #[test]
    fn sip_uris() {
        assert_eq!(
            Target::parse("sip:bob@127.0.0.1:5062"),
            Ok(Target::Sip("sip:bob@127.0.0.1:5062".into()))
        );
        assert_eq!(
            Target::parse("SIP:+15551234567@pbx").unwrap().dnc_key(),
            "+15551234567"
        );
        assert_eq!(
            Target::parse("sip:Bob@PBX").unwrap().dnc_key(),
            "sip:bob@pbx"
        );
        for bad in [
            "sip:",
            "sip:bob",
            "sip:@host",
            "sip:a b@host",
            "sip:a@",
            &format!("sip:{}@h", "a".repeat(300)),
        ] {
            assert!(
                matches!(Target::parse(bad), Err(NumberError::BadUri { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let t: Target = serde_json_like("+15551234567");
        assert_eq!(t.dial_string(), "+15551234567");
        assert!(Target::try_from("12".to_string()).is_err());
    }

    fn serde_json_like(s: &str) -> Target {
        Target::try_from(s.to_string()).unwrap()
    }
}
