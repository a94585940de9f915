//! Rows going into and coming out of the store. These are the store's own
//! types: the binary converts the call engine's records into them, so this
//! crate does not pull in the speech engines.

use serde::Serialize;

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let now = time::OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Parses RFC 3339 (`2026-11-29T10:00:00Z`, offsets allowed).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, time::error::Parse> {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// RFC 3339 in UTC with milliseconds.
    pub fn to_rfc3339(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&format).unwrap_or_else(|_| self.0.to_string())
    }
}

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The robot (the greeting).
    Robot,
    /// The caller.
    Caller,
}

impl Speaker {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Speaker::Robot => "robot",
            Speaker::Caller => "caller",
        }
    }
}

/// One turn of a call to store.
#[derive(Debug, Clone, Serialize)]
pub struct NewTurn {
    /// Turn number, 0 for the greeting.
    pub index: u32,
    /// Who started the turn.
    pub speaker: Speaker,
    /// What the caller said (empty for the greeting).
    pub caller_text: String,
    /// What the robot answered.
    pub robot_text: String,
    /// Stage timings, as JSON (the call engine's `TurnTimings`).
    pub timings: serde_json::Value,
}

/// The lead captured in a call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewLead {
    /// Caller's name.
    pub name: Option<String>,
    /// Callback number (E.164).
    pub phone: Option<String>,
    /// What the caller needs.
    pub request: Option<String>,
    /// Dates, in the caller's words.
    pub dates: Option<String>,
    /// City, in the caller's words.
    pub city: Option<String>,
    /// Interest class (`hot`, `warm`, `cold`, `not_interested`).
    pub interest: String,
    /// One-line summary for the fleet.
    pub summary: Option<String>,
    /// The caller confirmed the read-back (consent to be called back).
    pub consent: bool,
    /// The caller asked to be called later.
    pub callback_later: bool,
}

/// A finished call to store, with its turns and lead.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// Call id; the store makes a UUID when `None`. Outbox message ids derive
    /// from it (`<id>:call`, `<id>:lead`), so they are stable across retries.
    pub id: Option<String>,
    /// Caller's number or SIP URI, when known.
    pub caller: Option<String>,
    /// When the call was answered.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Why it ended.
    pub end_reason: String,
    /// Robot name.
    pub robot: String,
    /// Dialog mode.
    pub mode: String,
    /// Robot language.
    pub language: String,
    /// Turns in order.
    pub turns: Vec<NewTurn>,
    /// The lead, if the call produced one.
    pub lead: Option<NewLead>,
    /// The whole call record as JSON (sent on the `calls` topic as is).
    pub record: serde_json::Value,
}

/// One message waiting in (or delivered from) the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Order of insertion; messages are delivered in this order.
    pub seq: i64,
    /// Stable id (`<call-id>:lead`, `<call-id>:call`, or a UUID); the fleet
    /// side drops duplicates by it.
    pub msg_id: String,
    /// The call it belongs to, if any.
    pub call_id: Option<String>,
    /// Topic suffix under `voiceblock/<device>/` (`leads`, `calls`).
    pub topic: String,
    /// JSON payload (it carries `"id": msg_id`).
    pub payload: String,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// A message a forwarder gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwarderFailure {
    /// The message's stable id.
    pub msg_id: String,
    /// Its outbox seq.
    pub seq: i64,
    /// When the forwarder gave up.
    pub failed_at: Timestamp,
    /// Attempts made.
    pub attempts: i64,
    /// The last error (e.g. the HTTP status and body start).
    pub error: String,
}

/// A stored lead, for export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadRow {
    /// The call it came from.
    pub call_id: String,
    /// When it was stored (RFC 3339, UTC).
    pub stored_at: String,
    /// Caller's number as seen by the telephony side.
    pub caller: Option<String>,
    /// Robot that took the call.
    pub robot: String,
    /// Caller's name.
    pub name: Option<String>,
    /// Callback number.
    pub phone: Option<String>,
    /// What the caller needs.
    pub request: Option<String>,
    /// Dates.
    pub dates: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Interest class.
    pub interest: String,
    /// Summary.
    pub summary: Option<String>,
    /// Read-back confirmed.
    pub consent: bool,
    /// Asked to be called later.
    pub callback_later: bool,
    /// The lead's outbox message was acknowledged by the broker.
    pub delivered: bool,
}

/// A stored call without its turns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    /// Call id.
    pub id: String,
    /// Caller.
    pub caller: Option<String>,
    /// Answered at.
    pub started_at: Timestamp,
    /// Ended at.
    pub ended_at: Timestamp,
    /// Why it ended.
    pub end_reason: String,
    /// Robot.
    pub robot: String,
    /// Turns stored.
    pub turns: i64,
}

/// What happened to a pushed config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigOutcome {
    /// Validated and applied.
    Applied,
    /// Rejected; the previous config stayed in force.
    Rejected,
}

/// One entry of the config history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigEntry {
    /// Version the fleet gave it.
    pub version: u64,
    /// When the box received it.
    pub received_at: Timestamp,
    /// Applied or rejected.
    pub outcome: ConfigOutcome,
    /// The config as received (JSON text).
    pub body: String,
    /// Validation errors when rejected.
    pub errors: Vec<String>,
}

/// One stored turn of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRow {
    /// Turn number, 0 for the greeting.
    pub index: u32,
    /// Who started the turn.
    pub speaker: Speaker,
    /// What the caller said.
    pub caller_text: String,
    /// What the robot answered.
    pub robot_text: String,
    /// Stage timings as stored (the call engine's `TurnTimings`).
    pub timings: serde_json::Value,
}

/// A stored call with its turns, for `Store::call`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    /// Call id.
    pub id: String,
    /// Caller.
    pub caller: Option<String>,
    /// Answered at.
    pub started_at: Timestamp,
    /// Ended at.
    pub ended_at: Timestamp,
    /// When the store wrote it.
    pub stored_at: Timestamp,
    /// Why it ended.
    pub end_reason: String,
    /// Robot.
    pub robot: String,
    /// Dialog mode.
    pub mode: String,
    /// Robot language.
    pub language: String,
    /// Turns in order.
    pub turns: Vec<TurnRow>,
    /// Whether the call produced a lead (`Store::lead` reads it).
    pub has_lead: bool,
    /// The `recording` object of the stored call record, when the daemon
    /// recorded the call (`{"file", "format", "channels", "sample_rate",
    /// "duration_ms", "bytes"}`), as stored: the API checks it before use.
    /// Not serialized: the API says where the audio is instead.
    #[serde(skip)]
    pub recording: Option<serde_json::Value>,
}

/// Who placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Every call the box did not place: SIP inbound, the handset, the
    /// console's talk page.
    Inbound,
    /// The box placed it: the outbound queue or a test call.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses `inbound` or `outbound`.
    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Which calls `Store::calls` lists; every field set narrows the list
/// (`Default` matches every call).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Ended at or after this time.
    pub since: Option<Timestamp>,
    /// Ended before this time.
    pub until: Option<Timestamp>,
    /// Taken by this robot (exact name).
    pub robot: Option<String>,
    /// Ended for this reason (the stored `end_reason`, exact).
    pub end_reason: Option<String>,
    /// The caller contains this text (case-sensitive; calls with no
    /// known caller never match).
    pub caller: Option<String>,
    /// With (`true`) or without (`false`) a lead.
    pub lead: Option<bool>,
    /// Placed by the box or not. Outbound: the stored record's top-level
    /// `"direction"` is `"outbound"` (the daemon's SIP records carry it), or
    /// an outbound queue job or attempt links to the call.
    pub direction: Option<Direction>,
}
