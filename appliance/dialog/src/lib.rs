//! vb-dialog: robots as folders and the offline `script` dialog.
//!
//! A robot is a folder (`robots/<name>/robot.toml`, optional `prompt.md` and
//! `audio/<phrase-id>.wav`) loaded into a validated [`Robot`]. A [`Dialog`]
//! runs one call of the script: it takes caller transcripts and silences and
//! returns [`Reply`]s to speak, capturing a [`Lead`] on the way. The dialog
//! does no I/O and keeps no time, so whole conversations are tested in
//! microseconds; only [`Robot::load`] touches the file system.
//!
//! # Layout
//!
//! ```text
//!  robots/<name>/robot.toml ──> robot ──(raw TOML -> validate(), all errors at once)──> Robot
//!                               (+ error: RobotError, Issue)                             │
//!                                                                                        v
//!  call loop ── start() / on_caller(transcript) / on_silence() ──> dialog ──> Reply (text, audio, end_call)
//!                                                                    │  uses     └──> Lead (name, E.164 phone, ...)
//!                                                                    ├── text:   cleaning, yes/no, objections, names
//!                                                                    ├── phone:  words/digits -> E.164 -> spoken groups
//!                                                                    └── phrase: PhraseId, {placeholder} templates
//!  language: Language, SttLanguage, Mode
//! ```
//!
//! - [`robot`]: robot.toml schema, loading, built-in robots.
//! - [`error`]: [`RobotError`] and the validation [`Issue`]s it lists.
//! - [`phrase`]: the fixed phrase ids and their templates.
//! - [`dialog`]: the script state machine, [`Reply`] and [`Lead`].
//! - [`phone`]: [`normalize_phone`] and [`speak_phone`].
//! - [`language`]: languages and modes.
//! - `text` (private): rule-based understanding of transcripts.
//!
//! # Example
//!
//! ```
//! use vb_dialog::{Dialog, Expect, Interest, Robot};
//!
//! let robot = Robot::builtin("reception-en").expect("built-in robot");
//! let mut call = Dialog::new(&robot);
//! let greeting = call.start();
//! assert!(greeting.cacheable);
//! call.on_caller("Hi, I'd like to book a room.");
//! call.on_caller("My name is John, my number is 555-123-4567.");
//! assert_eq!(call.expect(), Expect::Free); // now asking for dates
//! call.on_caller("Next weekend");
//! assert_eq!(call.expect(), Expect::YesNo); // the read-back
//! let bye = call.on_caller("Yes, that's right.");
//! assert!(bye.end_call);
//! assert_eq!(call.lead().phone.as_deref(), Some("+15551234567"));
//! assert_eq!(call.lead().interest, Interest::Hot);
//! ```
//!
//! # Modes
//!
//! robot.toml may say `mode = "llm"` or `"llm_script"` (they need a
//! `prompt.md`). This crate has no LLM: `vb_llm::Responder` runs those modes
//! and falls back to this script dialog ([`Dialog::adopt`] +
//! [`Dialog::resume`]) when the LLM is unreachable; without it they run the
//! script.

#![forbid(unsafe_code)]

pub mod dialog;
pub mod error;
pub mod language;
pub mod phone;
pub mod phrase;
pub mod robot;
mod text;

pub use dialog::{Dialog, EndReason, Expect, Interest, Lead, Prefill, Reply, ReplyPart, State};
pub use error::{Issue, RobotError};
pub use language::{Language, Mode, SttLanguage};
pub use phone::{is_whole_number, normalize_phone, speak_phone};
pub use phrase::{Field, Phrase, PhraseId};
pub use robot::{Ask, Limits, Robot, RobotConfig};
pub use text::Objection;
