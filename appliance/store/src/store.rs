//! The store itself: one SQLite connection behind a mutex (calls are short;
//! the sync task and the call pipeline share it), opened with an integrity
//! check and migrations, written with lead-carrying transactions at
//! `synchronous=FULL`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql};
use serde_json::json;

use crate::error::StoreError;
use crate::model::{
    CallDetail, CallFilter, CallSummary, ConfigEntry, ConfigOutcome, Direction, ForwarderFailure,
    LeadRow, NewCall, OutboxMessage, Speaker, Timestamp, TurnRow,
};
use crate::schema;

/// Longest id (call id, message id) the store accepts.
pub const MAX_ID_BYTES: usize = 128;
/// Longest single text field (a turn's text, a lead field).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most turns in one call.
pub const MAX_TURNS: usize = 512;
/// Largest call record (JSON) or outbox payload.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;
/// Largest config body kept in the history.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Outbox topics, as suffixes under `voiceblock/<device>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// One message per lead.
    Leads,
    /// One message per call record (turns, timings).
    Calls,
}

impl Topic {
    /// The topic suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Leads => "leads",
            Topic::Calls => "calls",
        }
    }
}

/// Disk budget for [`Store::enforce_retention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Bytes of live pages the database may use.
    pub max_bytes: u64,
    /// Calls kept at most.
    pub max_calls: u64,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Calls deleted (with their turns, lead and delivered outbox rows).
    pub deleted_calls: u64,
    /// Live bytes before.
    pub bytes_before: u64,
    /// Live bytes after.
    pub bytes_after: u64,
    /// Calls left.
    pub calls_left: u64,
    /// Still over budget because the remaining calls have undelivered
    /// messages (those are never deleted).
    pub over_budget: bool,
}

/// The durable store. Cheap to share behind an `Arc`.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// True for a call the box placed: its record says `"direction":
/// "outbound"` (SIP records; handset and talk records say `handset`, `web`),
/// or the outbound queue links a job or attempt to it. A record that is not
/// JSON counts as not placed by the box.
const OUTBOUND: &str = "(IFNULL(CASE WHEN json_valid(c.record) THEN json_extract(c.record, '$.direction') END, '') = 'outbound'
     OR EXISTS (SELECT 1 FROM outbound_attempts a WHERE a.call_id = c.id)
     OR EXISTS (SELECT 1 FROM outbound_jobs j WHERE j.call_id = c.id))";

/// The lead columns [`lead_row`] reads, joined with their call.
const LEAD_SELECT: &str = "SELECT l.call_id, l.stored_at, c.caller, c.robot, l.name, l.phone, l.request, l.dates, l.city,
        l.interest, l.summary, l.consent, l.callback_later,
        EXISTS (SELECT 1 FROM outbox o WHERE o.msg_id = l.call_id || ':lead' AND o.delivered_at IS NOT NULL)
 FROM leads l JOIN calls c ON c.id = l.call_id";

fn lead_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeadRow> {
    Ok(LeadRow {
        call_id: r.get(0)?,
        stored_at: Timestamp(r.get(1)?).to_rfc3339(),
        caller: r.get(2)?,
        robot: r.get(3)?,
        name: r.get(4)?,
        phone: r.get(5)?,
        request: r.get(6)?,
        dates: r.get(7)?,
        city: r.get(8)?,
        interest: r.get(9)?,
        summary: r.get(10)?,
        consent: r.get(11)?,
        callback_later: r.get(12)?,
        delivered: r.get(13)?,
    })
}

pub(crate) fn check_len(what: &'static str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.len() > max {
        return Err(StoreError::TooLarge {
            what,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

pub(crate) fn check_opt(what: &'static str, text: &Option<String>) -> Result<(), StoreError> {
    text.as_deref()
        .map_or(Ok(()), |t| check_len(what, t, MAX_TEXT_BYTES))
}

impl Store {
    /// Opens (or creates) the store at `path`.
    ///
    /// An existing file that is not an SQLite database, or that fails SQLite's
    /// `quick_check`, gives [`StoreError::Corrupt`] and is not modified. A
    /// schema newer than this build gives [`StoreError::TooNew`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        // Refuse a foreign file before SQLite touches it: opening read-write
        // and writing a WAL next to it would be the first step of damage.
        if let Ok(mut file) = std::fs::File::open(&path) {
            use std::io::Read;
            let mut bytes = Vec::with_capacity(16);
            let _ = file.by_ref().take(16).read_to_end(&mut bytes);
            if !bytes.is_empty() && bytes.as_slice() != SQLITE_HEADER {
                return Err(StoreError::Corrupt {
                    path,
                    detail: "the file does not start with the SQLite header".into(),
                });
            }
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let classify = |op| {
            let p = path.clone();
            move |e| StoreError::classify(&p, op, e)
        };
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(classify("setting the busy timeout"))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(classify("checking integrity"))?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("quick_check: {check}"),
            });
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(classify("reading the schema version"))?;
        if version > schema::LATEST {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known: schema::LATEST,
            });
        }
        if version == 0 {
            // Only takes effect before the first table exists: lets retention
            // give freed pages back to the file system.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .map_err(classify("setting auto_vacuum"))?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(classify("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("journal mode stays {mode}, WAL expected"),
            });
        }
        // NORMAL for bookkeeping (delivery marks: losing one to a power cut
        // only means a duplicate the fleet drops); FULL around lead writes.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 4194304;",
        )
        .map_err(classify("setting pragmas"))?;
        let mut conn = conn;
        for (i, step) in schema::MIGRATIONS.iter().enumerate() {
            let to = i as i64 + 1;
            if to <= version {
                continue;
            }
            let tx = conn.transaction().map_err(classify("migrating"))?;
            tx.execute_batch(step).map_err(classify("migrating"))?;
            tx.execute_batch(&format!("PRAGMA user_version = {to}"))
                .map_err(classify("migrating"))?;
            tx.commit().map_err(classify("migrating"))?;
        }
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction
        // behind (rusqlite rolls back on drop), so the connection is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::classify(&self.path, op, e)
    }

    /// Caps the database at `pages` pages (SQLite's `max_page_count`): a hard
    /// budget on the box, beyond which writes fail as [`StoreError::DiskFull`].
    pub fn set_page_limit(&self, pages: u64) -> Result<u64, StoreError> {
        self.conn()
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(self.err("setting the page limit"))
    }

    /// Stores a finished call, its turns and its lead, and queues its outbox
    /// messages (`<id>:call` on `calls`, then `<id>:lead` on `leads`) in the
    /// same transaction, at `synchronous=FULL`: when this returns `Ok` the lead
    /// survives a power cut, and it is delivered exactly when it is stored.
    pub fn record_call(&self, call: &NewCall) -> Result<String, StoreError> {
        let id = match &call.id {
            Some(id) => id.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        check_len("call id", &id, MAX_ID_BYTES)?;
        if call.turns.len() > MAX_TURNS {
            return Err(StoreError::TooLarge {
                what: "turns in a call",
                len: call.turns.len(),
                max: MAX_TURNS,
            });
        }
        for s in [&call.end_reason, &call.robot, &call.mode, &call.language] {
            check_len("call field", s, MAX_TEXT_BYTES)?;
        }
        check_opt("caller", &call.caller)?;
        for t in &call.turns {
            check_len("turn text", &t.caller_text, MAX_TEXT_BYTES)?;
            check_len("turn text", &t.robot_text, MAX_TEXT_BYTES)?;
        }
        if let Some(l) = &call.lead {
            for f in [&l.name, &l.phone, &l.request, &l.dates, &l.city, &l.summary] {
                check_opt("lead field", f)?;
            }
            check_len("lead interest", &l.interest, MAX_TEXT_BYTES)?;
        }
        let record = serde_json::to_string(&call.record).map_err(|source| StoreError::Json {
            what: "call record",
            source,
        })?;
        check_len("call record", &record, MAX_RECORD_BYTES)?;
        let stored_at = Timestamp::now();

        let call_msg = json!({
            "id": format!("{id}:call"),
            "call_id": id,
            "stored_at": stored_at.to_rfc3339(),
            "caller": call.caller,
            "started_at": call.started_at.to_rfc3339(),
            "ended_at": call.ended_at.to_rfc3339(),
            "end_reason": call.end_reason,
            "robot": call.robot,
            "mode": call.mode,
            "language": call.language,
            "turns": call.turns,
            "record": call.record,
        })
        .to_string();
        check_len("call message", &call_msg, MAX_RECORD_BYTES)?;
        let lead_msg = call.lead.as_ref().map(|lead| {
            json!({
                "id": format!("{id}:lead"),
                "call_id": id,
                "stored_at": stored_at.to_rfc3339(),
                "caller": call.caller,
                "robot": call.robot,
                "lead": lead,
            })
            .to_string()
        });

        let mut conn = self.conn();
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(self.err("storing a call"))?;
        let result = (|| {
            let tx = conn.transaction().map_err(self.err("storing a call"))?;
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO calls (id, caller, started_at, ended_at, end_reason, robot, mode, language, stored_at, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        id,
                        call.caller,
                        call.started_at.0,
                        call.ended_at.0,
                        call.end_reason,
                        call.robot,
                        call.mode,
                        call.language,
                        stored_at.0,
                        record
                    ],
                )
                .map_err(self.err("storing a call"))?;
            if inserted == 0 {
                return Err(StoreError::DuplicateCall(id.clone()));
            }
            for t in &call.turns {
                tx.execute(
                    "INSERT INTO turns (call_id, idx, speaker, caller_text, robot_text, timings) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, t.index, t.speaker.as_str(), t.caller_text, t.robot_text, t.timings.to_string()],
                )
                .map_err(self.err("storing a turn"))?;
            }
            if let Some(l) = &call.lead {
                tx.execute(
                    "INSERT INTO leads (call_id, name, phone, request, dates, city, interest, summary, consent, callback_later, stored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![id, l.name, l.phone, l.request, l.dates, l.city, l.interest, l.summary, l.consent, l.callback_later, stored_at.0],
                )
                .map_err(self.err("storing a lead"))?;
            }
            let mut outbox = tx
                .prepare_cached(
                    "INSERT INTO outbox (msg_id, call_id, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.err("queueing messages"))?;
            outbox
                .execute(params![
                    format!("{id}:call"),
                    id,
                    Topic::Calls.as_str(),
                    call_msg,
                    stored_at.0
                ])
                .map_err(self.err("queueing messages"))?;
            if let Some(lead_msg) = &lead_msg {
                outbox
                    .execute(params![
                        format!("{id}:lead"),
                        id,
                        Topic::Leads.as_str(),
                        lead_msg,
                        stored_at.0
                    ])
                    .map_err(self.err("queueing messages"))?;
            }
            drop(outbox);
            tx.commit().map_err(self.err("committing a call"))?;
            Ok(id.clone())
        })();
        // Back to NORMAL for bookkeeping even when the write failed.
        let _ = conn.execute_batch("PRAGMA synchronous = NORMAL");
        result
    }

    /// Queues one message that belongs to no call (e.g. a forwarder's copy).
    pub fn enqueue(&self, topic: Topic, msg_id: &str, payload: &str) -> Result<(), StoreError> {
        check_len("message id", msg_id, MAX_ID_BYTES)?;
        check_len("message", payload, MAX_RECORD_BYTES)?;
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO outbox (msg_id, call_id, topic, payload, created_at) VALUES (?1, NULL, ?2, ?3, ?4)",
            params![msg_id, topic.as_str(), payload, Timestamp::now().0],
        )
        .map_err(self.err("queueing a message"))?;
        Ok(())
    }

    /// Undelivered messages in delivery order, at most `limit`.
    pub fn pending(&self, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, msg_id, call_id, topic, payload, created_at, attempts FROM outbox
                 WHERE delivered_at IS NULL ORDER BY seq LIMIT ?1",
            )
            .map_err(self.err("reading the outbox"))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(OutboxMessage {
                    seq: r.get(0)?,
                    msg_id: r.get(1)?,
                    call_id: r.get(2)?,
                    topic: r.get(3)?,
                    payload: r.get(4)?,
                    created_at: Timestamp(r.get(5)?),
                    attempts: r.get(6)?,
                })
            })
            .map_err(self.err("reading the outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading the outbox"))
    }

    /// Counts one delivery attempt of `msg_id`, with the error that ended the
    /// previous one, if any.
    pub fn note_attempt(&self, msg_id: &str, error: Option<&str>) -> Result<(), StoreError> {
        let error = error.map(|e| e.chars().take(512).collect::<String>());
        self.conn()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = COALESCE(?2, last_error) WHERE msg_id = ?1",
                params![msg_id, error],
            )
            .map_err(self.err("counting an attempt"))?;
        Ok(())
    }

    /// Marks `msg_id` delivered (call this on PUBACK only). Returns false when
    /// it was already delivered or is unknown.
    pub fn mark_delivered(&self, msg_id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "UPDATE outbox SET delivered_at = ?2, last_error = NULL WHERE msg_id = ?1 AND delivered_at IS NULL",
                params![msg_id, Timestamp::now().0],
            )
            .map_err(self.err("marking a message delivered"))?;
        Ok(n == 1)
    }

    /// Undelivered messages.
    pub fn outbox_depth(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err("counting the outbox"))
    }

    /// Delivery state of one message: `None` when unknown, else
    /// `(delivered, attempts)`.
    pub fn message_state(&self, msg_id: &str) -> Result<Option<(bool, i64)>, StoreError> {
        self.conn()
            .query_row(
                "SELECT delivered_at IS NOT NULL, attempts FROM outbox WHERE msg_id = ?1",
                [msg_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading a message"))
    }

    /// Messages on `topics` that `forwarder` has not finished yet (past its
    /// cursor), in outbox order, at most `limit`. Independent of the MQTT
    /// delivered flag: a forwarder sees every message, delivered or not.
    pub fn forwarder_pending(
        &self,
        forwarder: &str,
        topics: &[Topic],
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let list = topics
            .iter()
            .map(|t| format!("'{}'", t.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let conn = self.conn();
        let e = self.err("reading the outbox for a forwarder");
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT seq, msg_id, call_id, topic, payload, created_at, attempts FROM outbox
                 WHERE seq > COALESCE((SELECT last_seq FROM forwarder_cursors WHERE forwarder = ?1), 0)
                   AND topic IN ({list})
                 ORDER BY seq LIMIT ?2"
            ))
            .map_err(&e)?;
        let rows = stmt
            .query_map(params![forwarder, limit as i64], |r| {
                Ok(OutboxMessage {
                    seq: r.get(0)?,
                    msg_id: r.get(1)?,
                    call_id: r.get(2)?,
                    topic: r.get(3)?,
                    payload: r.get(4)?,
                    created_at: Timestamp(r.get(5)?),
                    attempts: r.get(6)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&e)
    }

    /// Records that `forwarder` is finished with `msg`: delivered when
    /// `failure` is `None`, given up (with the reason) otherwise. Moves the
    /// forwarder's cursor past it; both in one transaction.
    pub fn forwarder_done(
        &self,
        forwarder: &str,
        msg: &OutboxMessage,
        attempts: u32,
        failure: Option<&str>,
    ) -> Result<(), StoreError> {
        check_len("forwarder name", forwarder, MAX_ID_BYTES)?;
        let conn = self.conn();
        let e = self.err("recording a forwarder delivery");
        let now = Timestamp::now().0;
        let tx = conn.unchecked_transaction().map_err(&e)?;
        if let Some(error) = failure {
            let error: String = error.chars().take(512).collect();
            tx.execute(
                "INSERT OR REPLACE INTO forwarder_failures (forwarder, msg_id, seq, failed_at, attempts, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![forwarder, msg.msg_id, msg.seq, now, attempts, error],
            )
            .map_err(&e)?;
        }
        tx.execute(
            "INSERT INTO forwarder_cursors (forwarder, last_seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (forwarder) DO UPDATE
             SET last_seq = max(last_seq, excluded.last_seq), updated_at = excluded.updated_at",
            params![forwarder, msg.seq, now],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// Registers `forwarder` (its cursor starts at 0 the first time): from
    /// now on retention keeps every message it has not passed.
    pub fn forwarder_register(&self, forwarder: &str) -> Result<(), StoreError> {
        check_len("forwarder name", forwarder, MAX_ID_BYTES)?;
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO forwarder_cursors (forwarder, last_seq, updated_at) VALUES (?1, 0, ?2)",
                params![forwarder, Timestamp::now().0],
            )
            .map_err(self.err("registering a forwarder"))?;
        Ok(())
    }

    /// Forgets `forwarder` (its cursor and failures): retention no longer
    /// waits for it. For a forwarder taken out of the config.
    pub fn forwarder_remove(&self, forwarder: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let e = self.err("removing a forwarder");
        let tx = conn.unchecked_transaction().map_err(&e)?;
        tx.execute(
            "DELETE FROM forwarder_cursors WHERE forwarder = ?1",
            [forwarder],
        )
        .map_err(&e)?;
        tx.execute(
            "DELETE FROM forwarder_failures WHERE forwarder = ?1",
            [forwarder],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// The highest outbox seq `forwarder` has finished (0 when none).
    pub fn forwarder_cursor(&self, forwarder: &str) -> Result<i64, StoreError> {
        self.conn()
            .query_row(
                "SELECT last_seq FROM forwarder_cursors WHERE forwarder = ?1",
                [forwarder],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(self.err("reading a forwarder cursor"))
    }

    /// Messages `forwarder` gave up on, newest first, at most `limit`.
    pub fn forwarder_failures(
        &self,
        forwarder: &str,
        limit: usize,
    ) -> Result<Vec<ForwarderFailure>, StoreError> {
        let conn = self.conn();
        let e = self.err("reading forwarder failures");
        let mut stmt = conn
            .prepare_cached(
                "SELECT msg_id, seq, failed_at, attempts, error FROM forwarder_failures
                 WHERE forwarder = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(&e)?;
        let rows = stmt
            .query_map(params![forwarder, limit as i64], |r| {
                Ok(ForwarderFailure {
                    msg_id: r.get(0)?,
                    seq: r.get(1)?,
                    failed_at: Timestamp(r.get(2)?),
                    attempts: r.get(3)?,
                    error: r.get(4)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&e)
    }

    /// Leads stored at or after `since` (all when `None`), oldest first.
    pub fn leads_since(&self, since: Option<Timestamp>) -> Result<Vec<LeadRow>, StoreError> {
        self.leads_page(since, usize::MAX)
    }

    /// The first `limit` leads stored at or after `since`, oldest first (a
    /// page: ask again with `since` = the last row's time to go on).
    pub fn leads_page(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<LeadRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "{LEAD_SELECT} WHERE l.stored_at >= ?1 ORDER BY l.stored_at, l.call_id LIMIT ?2"
            ))
            .map_err(self.err("reading leads"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![since.map_or(i64::MIN, |t| t.0), limit], lead_row)
            .map_err(self.err("reading leads"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading leads"))
    }

    /// The lead of one call: `None` when the call is unknown or produced none.
    pub fn lead(&self, call_id: &str) -> Result<Option<LeadRow>, StoreError> {
        self.conn()
            .prepare_cached(&format!("{LEAD_SELECT} WHERE l.call_id = ?1"))
            .and_then(|mut stmt| stmt.query_row([call_id], lead_row).optional())
            .map_err(self.err("reading a lead"))
    }

    /// The most recent calls, newest first.
    pub fn recent_calls(&self, limit: usize) -> Result<Vec<CallSummary>, StoreError> {
        self.calls_since(None, limit)
    }

    /// Up to `limit` calls that ended at or after `since` (all when `None`),
    /// newest first.
    pub fn calls_since(
        &self,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<CallSummary>, StoreError> {
        self.calls(
            &CallFilter {
                since,
                ..CallFilter::default()
            },
            limit,
            0,
        )
    }

    /// The calls `filter` matches, newest first (by end time): `limit` of
    /// them after skipping `offset`. One query; every value is bound as a
    /// parameter. The direction filter reads each candidate's record JSON,
    /// so it costs a parse per call kept (retention bounds their number).
    pub fn calls(
        &self,
        filter: &CallFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<CallSummary>, StoreError> {
        use rusqlite::types::Value;
        let mut sql = String::from(
            "SELECT c.id, c.caller, c.started_at, c.ended_at, c.end_reason, c.robot,
                    (SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id)
             FROM calls c WHERE 1",
        );
        let mut args: Vec<Value> = Vec::new();
        // Each condition is fixed text; only its value travels as `?`.
        let mut cond = |text: &str, value: Option<Value>| {
            sql.push_str(" AND ");
            sql.push_str(text);
            if let Some(v) = value {
                args.push(v);
            }
        };
        if let Some(t) = filter.since {
            cond("c.ended_at >= ?", Some(Value::Integer(t.0)));
        }
        if let Some(t) = filter.until {
            cond("c.ended_at < ?", Some(Value::Integer(t.0)));
        }
        if let Some(r) = &filter.robot {
            cond("c.robot = ?", Some(Value::Text(r.clone())));
        }
        if let Some(r) = &filter.end_reason {
            cond("c.end_reason = ?", Some(Value::Text(r.clone())));
        }
        if let Some(c) = &filter.caller {
            // instr, not LIKE: `%` and `_` in the text mean themselves.
            cond("instr(c.caller, ?) > 0", Some(Value::Text(c.clone())));
        }
        match filter.lead {
            Some(true) => cond(
                "EXISTS (SELECT 1 FROM leads l WHERE l.call_id = c.id)",
                None,
            ),
            Some(false) => cond(
                "NOT EXISTS (SELECT 1 FROM leads l WHERE l.call_id = c.id)",
                None,
            ),
            None => {}
        }
        match filter.direction {
            Some(Direction::Outbound) => cond(OUTBOUND, None),
            Some(Direction::Inbound) => cond(&format!("NOT {OUTBOUND}"), None),
            None => {}
        }
        sql.push_str(" ORDER BY c.ended_at DESC, c.rowid DESC LIMIT ? OFFSET ?");
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));

        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(self.err("reading calls"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok(CallSummary {
                    id: r.get(0)?,
                    caller: r.get(1)?,
                    started_at: Timestamp(r.get(2)?),
                    ended_at: Timestamp(r.get(3)?),
                    end_reason: r.get(4)?,
                    robot: r.get(5)?,
                    turns: r.get(6)?,
                })
            })
            .map_err(self.err("reading calls"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading calls"))
    }

    /// One call with its turns in order: `None` when the id is unknown.
    pub fn call(&self, id: &str) -> Result<Option<CallDetail>, StoreError> {
        let mut conn = self.conn();
        // One read transaction, so the turns belong to the call row read
        // (retention could otherwise delete the call between the queries).
        let tx = conn.transaction().map_err(self.err("reading a call"))?;
        let head = tx
            .query_row(
                "SELECT c.id, c.caller, c.started_at, c.ended_at, c.stored_at, c.end_reason, c.robot,
                        c.mode, c.language, EXISTS (SELECT 1 FROM leads l WHERE l.call_id = c.id),
                        CASE WHEN json_valid(c.record) THEN c.record -> '$.recording' END
                 FROM calls c WHERE c.id = ?1",
                [id],
                |r| {
                    Ok(CallDetail {
                        id: r.get(0)?,
                        caller: r.get(1)?,
                        started_at: Timestamp(r.get(2)?),
                        ended_at: Timestamp(r.get(3)?),
                        stored_at: Timestamp(r.get(4)?),
                        end_reason: r.get(5)?,
                        robot: r.get(6)?,
                        mode: r.get(7)?,
                        language: r.get(8)?,
                        turns: Vec::new(),
                        has_lead: r.get(9)?,
                        // `->` gives JSON text; a JSON null is no recording.
                        recording: r
                            .get::<_, Option<String>>(10)?
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .filter(|v: &serde_json::Value| !v.is_null()),
                    })
                },
            )
            .optional()
            .map_err(self.err("reading a call"))?;
        let Some(mut call) = head else {
            return Ok(None);
        };
        let turns = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT idx, speaker, caller_text, robot_text, timings
                     FROM turns WHERE call_id = ?1 ORDER BY idx",
                )
                .map_err(self.err("reading turns"))?;
            let rows = stmt
                .query_map([id], |r| {
                    let speaker: String = r.get(1)?;
                    let timings: String = r.get(4)?;
                    Ok(TurnRow {
                        index: r.get(0)?,
                        // The schema's CHECK allows only these two words.
                        speaker: if speaker == Speaker::Robot.as_str() {
                            Speaker::Robot
                        } else {
                            Speaker::Caller
                        },
                        caller_text: r.get(2)?,
                        robot_text: r.get(3)?,
                        // The store wrote this JSON itself; should it not
                        // parse, the raw text is still worth showing.
                        timings: serde_json::from_str(&timings)
                            .unwrap_or(serde_json::Value::String(timings)),
                    })
                })
                .map_err(self.err("reading turns"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.err("reading turns"))?
        };
        call.turns = turns;
        Ok(Some(call))
    }

    /// Records a config push and what became of it.
    pub fn record_config(
        &self,
        version: u64,
        body: &str,
        outcome: ConfigOutcome,
        errors: &[String],
    ) -> Result<(), StoreError> {
        check_len("config", body, MAX_CONFIG_BYTES)?;
        let errors = serde_json::to_string(errors).map_err(|source| StoreError::Json {
            what: "config errors",
            source,
        })?;
        let outcome = match outcome {
            ConfigOutcome::Applied => "applied",
            ConfigOutcome::Rejected => "rejected",
        };
        let conn = self.conn();
        conn.execute_batch("PRAGMA synchronous = FULL")
            .map_err(self.err("recording a config"))?;
        let r = conn
            .execute(
                "INSERT INTO config_history (version, received_at, outcome, body, errors) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![version as i64, Timestamp::now().0, outcome, body, errors],
            )
            .map_err(self.err("recording a config"));
        let _ = conn.execute_batch("PRAGMA synchronous = NORMAL");
        r.map(|_| ())
    }

    /// Config history, newest first.
    pub fn config_history(&self, limit: usize) -> Result<Vec<ConfigEntry>, StoreError> {
        self.config_query(
            "SELECT version, received_at, outcome, body, errors FROM config_history ORDER BY id DESC LIMIT ?1",
            limit as i64,
        )
    }

    /// The config in force: the last one applied and not refused since
    /// (a push that failed to start is recorded applied, then refused).
    pub fn current_config(&self) -> Result<Option<ConfigEntry>, StoreError> {
        Ok(self
            .config_query(
                "SELECT version, received_at, outcome, body, errors FROM config_history AS c
                 WHERE outcome = 'applied' AND NOT EXISTS (
                     SELECT 1 FROM config_history AS later
                     WHERE later.version = c.version AND later.id > c.id AND later.outcome = 'rejected')
                 ORDER BY id DESC LIMIT ?1",
                1_i64,
            )?
            .pop())
    }

    /// What became of `version` the last time it was pushed, if it was.
    pub fn config_outcome(&self, version: u64) -> Result<Option<ConfigEntry>, StoreError> {
        Ok(self
            .config_query(
                "SELECT version, received_at, outcome, body, errors FROM config_history WHERE version = ?1 ORDER BY id DESC LIMIT 1",
                version as i64,
            )?
            .pop())
    }

    /// `arg` binds `?1`: a limit or a version.
    fn config_query(&self, sql: &str, arg: impl ToSql) -> Result<Vec<ConfigEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(self.err("reading config history"))?;
        let rows = stmt
            .query_map([arg], |r| {
                let outcome: String = r.get(2)?;
                let errors: Option<String> = r.get(4)?;
                Ok(ConfigEntry {
                    version: r.get::<_, i64>(0)? as u64,
                    received_at: Timestamp(r.get(1)?),
                    outcome: if outcome == "applied" {
                        ConfigOutcome::Applied
                    } else {
                        ConfigOutcome::Rejected
                    },
                    body: r.get(3)?,
                    errors: errors
                        .and_then(|e| serde_json::from_str(&e).ok())
                        .unwrap_or_default(),
                })
            })
            .map_err(self.err("reading config history"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("reading config history"))
    }

    /// Bytes of live (non-free) pages.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let conn = self.conn();
        used_bytes(&conn).map_err(self.err("measuring the file"))
    }

    /// Deletes the oldest calls (turns, lead, delivered outbox rows with
    /// them) until the store fits `budget`. A call with any undelivered
    /// message is never deleted, whatever the budget, nor one a registered
    /// forwarder has not yet passed: leads are not lost to make room; the
    /// report says when that leaves the store over budget.
    pub fn enforce_retention(&self, budget: &Retention) -> Result<RetentionReport, StoreError> {
        let conn = self.conn();
        let e = self.err("enforcing retention");
        let bytes_before = used_bytes(&conn).map_err(&e)?;
        let count_calls = |c: &Connection| {
            c.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        };
        let mut report = RetentionReport {
            bytes_before,
            bytes_after: bytes_before,
            calls_left: count_calls(&conn).map_err(&e)?,
            ..Default::default()
        };
        // Delivered messages of no call go first: nothing else refers to them.
        if report.bytes_after > budget.max_bytes {
            conn.execute(
                "DELETE FROM outbox WHERE call_id IS NULL AND delivered_at IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM forwarder_cursors f WHERE outbox.seq > f.last_seq)",
                [],
            )
            .map_err(&e)?;
        }
        loop {
            let over_rows = report.calls_left > budget.max_calls;
            let over_bytes = report.bytes_after > budget.max_bytes;
            if !over_rows && !over_bytes {
                break;
            }
            // Batches keep each transaction short; row overage sets the size.
            let batch = if over_rows {
                (report.calls_left - budget.max_calls).min(256)
            } else {
                32
            };
            let ids: Vec<String> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT c.id FROM calls c
                         WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.call_id = c.id AND o.delivered_at IS NULL)
                           AND NOT EXISTS (SELECT 1 FROM outbox o, forwarder_cursors f
                                           WHERE o.call_id = c.id AND o.seq > f.last_seq)
                         ORDER BY c.ended_at, c.rowid LIMIT ?1",
                    )
                    .map_err(&e)?;
                let rows = stmt.query_map([batch as i64], |r| r.get(0)).map_err(&e)?;
                rows.collect::<Result<_, _>>().map_err(&e)?
            };
            if ids.is_empty() {
                report.over_budget = true;
                break;
            }
            let tx = conn.unchecked_transaction().map_err(&e)?;
            for id in &ids {
                tx.execute("DELETE FROM outbox WHERE call_id = ?1", [id])
                    .map_err(&e)?;
                tx.execute("DELETE FROM calls WHERE id = ?1", [id])
                    .map_err(&e)?;
            }
            tx.commit().map_err(&e)?;
            report.deleted_calls += ids.len() as u64;
            report.calls_left = count_calls(&conn).map_err(&e)?;
            report.bytes_after = used_bytes(&conn).map_err(&e)?;
        }
        if report.deleted_calls > 0 {
            conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(&e)?;
        }
        Ok(report)
    }
}

fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewLead, NewTurn, Speaker};

    pub(crate) fn call(id: &str, phone: &str) -> NewCall {
        NewCall {
            id: Some(id.into()),
            caller: Some("+15550000".into()),
            started_at: Timestamp(1_700_000_000_000),
            ended_at: Timestamp(1_700_000_060_000),
            end_reason: "completed".into(),
            robot: "reception-en".into(),
            mode: "script".into(),
            language: "en".into(),
            turns: vec![
                NewTurn {
                    index: 0,
                    speaker: Speaker::Robot,
                    caller_text: String::new(),
                    robot_text: "Hello, how can I help?".into(),
                    timings: json!({}),
                },
                NewTurn {
                    index: 1,
                    speaker: Speaker::Caller,
                    caller_text: "A room for two, please".into(),
                    robot_text: "What is your name?".into(),
                    timings: json!({"stt_ms": 210}),
                },
            ],
            lead: Some(NewLead {
                name: Some("Ann".into()),
                phone: Some(phone.into()),
                request: Some("a room for two".into()),
                interest: "hot".into(),
                consent: true,
                ..Default::default()
            }),
            record: json!({"robot": "reception-en"}),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("box.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_call_and_its_outbox_rows_are_stored_together_in_order() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+15551")).unwrap();
        s.record_call(&call("c2", "+15552")).unwrap();
        let p = s.pending(10).unwrap();
        let ids: Vec<_> = p.iter().map(|m| m.msg_id.as_str()).collect();
        assert_eq!(ids, ["c1:call", "c1:lead", "c2:call", "c2:lead"]);
        assert_eq!(p[1].topic, "leads");
        let payload: serde_json::Value = serde_json::from_str(&p[1].payload).unwrap();
        assert_eq!(payload["id"], "c1:lead");
        assert_eq!(payload["lead"]["phone"], "+15551");
        assert_eq!(s.outbox_depth().unwrap(), 4);
        assert_eq!(s.recent_calls(10).unwrap()[0].turns, 2);
    }

    #[test]
    fn a_failed_call_write_leaves_no_outbox_rows() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+1")).unwrap();
        let err = s.record_call(&call("c1", "+2")).unwrap_err();
        assert!(matches!(err, StoreError::DuplicateCall(ref id) if id == "c1"));
        assert_eq!(s.outbox_depth().unwrap(), 2);
        assert_eq!(s.leads_since(None).unwrap().len(), 1);
        assert_eq!(s.leads_since(None).unwrap()[0].phone.as_deref(), Some("+1"));
    }

    #[test]
    fn delivery_is_marked_once_and_shows_in_exports() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+1")).unwrap();
        s.note_attempt("c1:lead", None).unwrap();
        assert_eq!(s.message_state("c1:lead").unwrap(), Some((false, 1)));
        assert!(s.mark_delivered("c1:lead").unwrap());
        assert!(!s.mark_delivered("c1:lead").unwrap());
        assert!(!s.mark_delivered("nope").unwrap());
        assert!(s.leads_since(None).unwrap()[0].delivered);
        assert_eq!(s.pending(10).unwrap().len(), 1);
    }

    #[test]
    fn one_call_reads_back_with_its_turns_and_timings() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+15551")).unwrap();
        s.record_call(&NewCall {
            lead: None,
            ..call("c2", "+15552")
        })
        .unwrap();
        let c = s.call("c1").unwrap().unwrap();
        assert_eq!(c.id, "c1");
        assert_eq!(c.mode, "script");
        assert!(c.has_lead);
        assert_eq!(c.turns.len(), 2);
        assert_eq!(c.turns[0].speaker, Speaker::Robot);
        assert_eq!(c.turns[1].speaker, Speaker::Caller);
        assert_eq!(c.turns[1].caller_text, "A room for two, please");
        assert_eq!(c.turns[1].timings["stt_ms"], 210);
        assert!(!s.call("c2").unwrap().unwrap().has_lead);
        assert!(s.call("nope").unwrap().is_none());
    }

    #[test]
    fn one_lead_reads_back_by_call_id() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+15551")).unwrap();
        s.record_call(&NewCall {
            lead: None,
            ..call("c2", "+15552")
        })
        .unwrap();
        let l = s.lead("c1").unwrap().unwrap();
        assert_eq!(l.phone.as_deref(), Some("+15551"));
        assert_eq!(l, s.leads_since(None).unwrap()[0]);
        assert!(s.lead("c2").unwrap().is_none());
        assert!(s.lead("nope").unwrap().is_none());
        let page = s.leads_page(None, 1).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].call_id, "c1");
    }

    #[test]
    fn calls_since_filters_by_end_time_and_limits() {
        let (_d, s) = open();
        for (i, id) in ["c1", "c2", "c3"].into_iter().enumerate() {
            let mut c = call(id, "+1");
            c.ended_at = Timestamp(1_000 * (i as i64 + 1));
            s.record_call(&c).unwrap();
        }
        let ids = |v: Vec<CallSummary>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(s.calls_since(None, 10).unwrap()), ["c3", "c2", "c1"]);
        assert_eq!(
            ids(s.calls_since(Some(Timestamp(2_000)), 10).unwrap()),
            ["c3", "c2"]
        );
        assert_eq!(ids(s.calls_since(None, 1).unwrap()), ["c3"]);
    }

    /// Six calls, one per minute, varied in every filtered field.
    fn filtered_store() -> (tempfile::TempDir, Store) {
        let (d, s) = open();
        let rows = [
            // id, caller, robot, end reason, lead, record direction
            (
                "in1",
                Some("+15550001"),
                "reception-en",
                "completed",
                true,
                "inbound",
            ),
            (
                "in2",
                Some("+15550002"),
                "sales-ru",
                "caller_hung_up",
                false,
                "inbound",
            ),
            (
                "out1",
                Some("+4930123"),
                "reception-en",
                "completed",
                false,
                "outbound",
            ),
            (
                "web1",
                Some("web:127.0.0.1"),
                "reception-en",
                "completed",
                true,
                "web",
            ),
            ("hs1", None, "sales-ru", "timeout", false, "handset"),
            (
                "q1",
                Some("sip:100%_x@pbx"),
                "sales-ru",
                "completed",
                true,
                "inbound",
            ),
        ];
        for (i, (id, caller, robot, reason, lead, dir)) in rows.into_iter().enumerate() {
            let mut c = call(id, "+1");
            c.caller = caller.map(String::from);
            c.robot = robot.into();
            c.end_reason = reason.into();
            c.ended_at = Timestamp(60_000 * (i as i64 + 1));
            c.started_at = Timestamp(c.ended_at.0 - 30_000);
            if !lead {
                c.lead = None;
            }
            c.record = json!({ "direction": dir });
            s.record_call(&c).unwrap();
        }
        // q1's record lacks the outbound mark; the queue's link makes it
        // outbound all the same.
        s.queue_add(&[crate::queue::NewJob {
            number: "+15550099".into(),
            dnc_key: "+15550099".into(),
            name: None,
            note: None,
            priority: 0,
            not_before: None,
        }])
        .unwrap();
        s.conn()
            .execute("UPDATE outbound_jobs SET call_id = 'q1'", [])
            .unwrap();
        (d, s)
    }

    fn ids_of(s: &Store, f: CallFilter) -> Vec<String> {
        s.calls(&f, 100, 0)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn calls_filter_by_each_field() {
        let (_d, s) = filtered_store();
        let all = CallFilter::default();
        assert_eq!(
            ids_of(&s, all.clone()),
            ["q1", "hs1", "web1", "out1", "in2", "in1"]
        );
        let f = |g: fn(&mut CallFilter)| {
            let mut f = CallFilter::default();
            g(&mut f);
            ids_of(&s, f)
        };
        assert_eq!(
            f(|f| f.since = Some(Timestamp(240_000))),
            ["q1", "hs1", "web1"]
        );
        assert_eq!(
            f(|f| f.until = Some(Timestamp(120_000))),
            ["in1"],
            "until is exclusive"
        );
        assert_eq!(
            f(|f| f.robot = Some("sales-ru".into())),
            ["q1", "hs1", "in2"]
        );
        assert!(
            f(|f| f.robot = Some("sales".into())).is_empty(),
            "robot is exact"
        );
        assert_eq!(f(|f| f.end_reason = Some("timeout".into())), ["hs1"]);
        assert_eq!(f(|f| f.caller = Some("5550".into())), ["in2", "in1"]);
        assert_eq!(f(|f| f.caller = Some("%_".into())), ["q1"], "no wildcards");
        assert!(f(|f| f.caller = Some("' OR 1=1 --".into())).is_empty());
        assert_eq!(f(|f| f.lead = Some(true)), ["q1", "web1", "in1"]);
        assert_eq!(f(|f| f.lead = Some(false)), ["hs1", "out1", "in2"]);
        assert_eq!(
            f(|f| f.direction = Some(Direction::Outbound)),
            ["q1", "out1"]
        );
        assert_eq!(
            f(|f| f.direction = Some(Direction::Inbound)),
            ["hs1", "web1", "in2", "in1"]
        );
    }

    #[test]
    fn call_filters_combine_and_page() {
        let (_d, s) = filtered_store();
        let f = CallFilter {
            since: Some(Timestamp(120_000)),
            until: Some(Timestamp(360_000)),
            robot: Some("reception-en".into()),
            end_reason: Some("completed".into()),
            ..CallFilter::default()
        };
        assert_eq!(ids_of(&s, f.clone()), ["web1", "out1"]);
        assert_eq!(
            ids_of(
                &s,
                CallFilter {
                    lead: Some(true),
                    ..f.clone()
                }
            ),
            ["web1"]
        );
        assert_eq!(
            ids_of(
                &s,
                CallFilter {
                    direction: Some(Direction::Outbound),
                    caller: Some("+49".into()),
                    ..f.clone()
                }
            ),
            ["out1"]
        );
        let page = |limit, offset| {
            s.calls(&CallFilter::default(), limit, offset)
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(page(2, 0), ["q1", "hs1"]);
        assert_eq!(page(2, 2), ["web1", "out1"]);
        assert_eq!(page(2, 5), ["in1"]);
        assert!(page(2, 6).is_empty());
        assert!(page(usize::MAX, usize::MAX).is_empty());
    }

    #[test]
    fn a_call_record_that_is_not_json_still_lists() {
        let (_d, s) = filtered_store();
        s.conn()
            .execute("UPDATE calls SET record = 'not json' WHERE id = 'out1'", [])
            .unwrap();
        let inbound = ids_of(
            &s,
            CallFilter {
                direction: Some(Direction::Inbound),
                ..CallFilter::default()
            },
        );
        assert!(inbound.contains(&"out1".to_string()), "{inbound:?}");
        assert!(s.call("out1").unwrap().unwrap().recording.is_none());
    }

    #[test]
    fn a_recorded_call_reads_back_with_its_recording() {
        let (_d, s) = open();
        let mut c = call("c1", "+1");
        c.record = json!({"recording": {"file": "c1.wav", "format": "wav", "bytes": 44}});
        s.record_call(&c).unwrap();
        let mut c = call("c2", "+1");
        c.record = json!({"recording": null});
        s.record_call(&c).unwrap();
        s.record_call(&call("c3", "+1")).unwrap();
        assert_eq!(
            s.call("c1").unwrap().unwrap().recording,
            Some(json!({"file": "c1.wav", "format": "wav", "bytes": 44}))
        );
        assert_eq!(s.call("c2").unwrap().unwrap().recording, None);
        assert_eq!(s.call("c3").unwrap().unwrap().recording, None);
    }

    #[test]
    fn since_filters_by_store_time() {
        let (_d, s) = open();
        s.record_call(&call("c1", "+1")).unwrap();
        let later = Timestamp(Timestamp::now().0 + 60_000);
        assert!(s.leads_since(Some(later)).unwrap().is_empty());
        assert_eq!(s.leads_since(Some(Timestamp(0))).unwrap().len(), 1);
    }

    #[test]
    fn oversized_input_is_refused_with_the_limit() {
        let (_d, s) = open();
        let mut c = call("c1", "+1");
        c.turns[1].caller_text = "x".repeat(MAX_TEXT_BYTES + 1);
        let err = s.record_call(&c).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "turn text is {} bytes, the limit is 4096",
                MAX_TEXT_BYTES + 1
            )
        );
        assert_eq!(s.outbox_depth().unwrap(), 0);
    }

    #[test]
    fn retention_never_deletes_an_undelivered_lead() {
        let (_d, s) = open();
        for i in 0..40 {
            s.record_call(&call(&format!("c{i:02}"), "+1")).unwrap();
        }
        // Deliver everything of the first 30 calls.
        for i in 0..30 {
            s.mark_delivered(&format!("c{i:02}:call")).unwrap();
            s.mark_delivered(&format!("c{i:02}:lead")).unwrap();
        }
        // The call message of c35 is delivered, its lead is not.
        s.mark_delivered("c35:call").unwrap();
        let r = s
            .enforce_retention(&Retention {
                max_bytes: u64::MAX,
                max_calls: 5,
            })
            .unwrap();
        assert_eq!(r.deleted_calls, 30);
        assert_eq!(r.calls_left, 10);
        assert!(r.over_budget);
        let leads = s.leads_since(None).unwrap();
        assert_eq!(leads.len(), 10);
        assert!(leads.iter().all(|l| !l.delivered));
        assert_eq!(s.outbox_depth().unwrap(), 19);
    }

    #[test]
    fn retention_by_bytes_frees_space() {
        let (_d, s) = open();
        for i in 0..200 {
            let mut c = call(&format!("c{i:03}"), "+1");
            c.record = json!({"pad": "p".repeat(2000)});
            s.record_call(&c).unwrap();
            s.mark_delivered(&format!("c{i:03}:call")).unwrap();
            s.mark_delivered(&format!("c{i:03}:lead")).unwrap();
        }
        let before = s.used_bytes().unwrap();
        let budget = before / 4;
        let r = s
            .enforce_retention(&Retention {
                max_bytes: budget,
                max_calls: u64::MAX,
            })
            .unwrap();
        assert!(!r.over_budget);
        assert!(r.bytes_after <= budget, "{r:?}");
        assert!(r.deleted_calls > 100);
        // The newest calls are the ones kept.
        assert_eq!(s.recent_calls(1).unwrap()[0].id, "c199");
    }

    #[test]
    fn config_history_keeps_the_applied_one_current() {
        let (_d, s) = open();
        s.record_config(1, "{\"a\":1}", ConfigOutcome::Applied, &[])
            .unwrap();
        s.record_config(2, "{", ConfigOutcome::Rejected, &["bad json".into()])
            .unwrap();
        let cur = s.current_config().unwrap().unwrap();
        assert_eq!(cur.version, 1);
        let h = s.config_history(10).unwrap();
        assert_eq!(h[0].version, 2);
        assert_eq!(h[0].errors, vec!["bad json".to_string()]);
        // The last word on a version wins: applied, then failed to start.
        s.record_config(3, "{}", ConfigOutcome::Applied, &[])
            .unwrap();
        s.record_config(3, "{}", ConfigOutcome::Rejected, &["no start".into()])
            .unwrap();
        let three = s.config_outcome(3).unwrap().unwrap();
        assert_eq!(three.outcome, ConfigOutcome::Rejected);
        assert_eq!(s.current_config().unwrap().unwrap().version, 1);
        assert_eq!(
            s.config_outcome(2).unwrap().unwrap().errors,
            vec!["bad json".to_string()]
        );
        assert!(s.config_outcome(9).unwrap().is_none());
    }

    #[test]
    fn reopening_keeps_everything_and_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.db");
        {
            let s = Store::open(&path).unwrap();
            s.record_call(&call("c1", "+1")).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.outbox_depth().unwrap(), 2);
        let conn = s.conn();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::LATEST);
    }

    #[test]
    fn forwarders_keep_their_own_cursor_apart_from_the_mqtt_flag() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("box.db")).unwrap();
        s.record_call(&call("c1", "+1")).unwrap();
        s.record_call(&call("c2", "+2")).unwrap();
        // MQTT delivery does not hide a message from a forwarder.
        assert!(s.mark_delivered("c1:call").unwrap());
        let all = s
            .forwarder_pending("hook", &[Topic::Leads, Topic::Calls], 10)
            .unwrap();
        let ids: Vec<_> = all.iter().map(|m| m.msg_id.as_str()).collect();
        assert_eq!(ids, ["c1:call", "c1:lead", "c2:call", "c2:lead"]);
        let leads = s.forwarder_pending("hook", &[Topic::Leads], 10).unwrap();
        assert_eq!(leads.len(), 2);
        assert_eq!(s.forwarder_cursor("hook").unwrap(), 0);
        s.forwarder_done("hook", &all[0], 1, None).unwrap();
        s.forwarder_done("hook", &all[1], 3, Some("HTTP 400: bad field"))
            .unwrap();
        // A lower seq never moves the cursor back.
        s.forwarder_done("hook", &all[0], 1, None).unwrap();
        assert_eq!(s.forwarder_cursor("hook").unwrap(), all[1].seq);
        let left = s
            .forwarder_pending("hook", &[Topic::Leads, Topic::Calls], 10)
            .unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].msg_id, "c2:call");
        // Another forwarder starts from the beginning.
        assert_eq!(
            s.forwarder_pending("crm", &[Topic::Leads, Topic::Calls], 10)
                .unwrap()
                .len(),
            4
        );
        let f = s.forwarder_failures("hook", 10).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].msg_id, "c1:lead");
        assert_eq!(f[0].attempts, 3);
        assert_eq!(f[0].error, "HTTP 400: bad field");
        // The MQTT side is untouched.
        assert_eq!(s.outbox_depth().unwrap(), 3);
    }

    #[test]
    fn retention_keeps_what_a_registered_forwarder_has_not_passed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("box.db")).unwrap();
        s.forwarder_register("hook").unwrap();
        for i in 0..3 {
            s.record_call(&call(&format!("c{i}"), "+1")).unwrap();
        }
        for m in s.pending(100).unwrap() {
            s.mark_delivered(&m.msg_id).unwrap();
        }
        let budget = Retention {
            max_bytes: u64::MAX,
            max_calls: 0,
        };
        // Delivered over MQTT, but the webhook has not sent any of them.
        let r = s.enforce_retention(&budget).unwrap();
        assert_eq!((r.deleted_calls, r.over_budget), (0, true));
        // It passes the first call's two messages: that call may go.
        let p = s
            .forwarder_pending("hook", &[Topic::Leads, Topic::Calls], 2)
            .unwrap();
        for m in &p {
            s.forwarder_done("hook", m, 1, None).unwrap();
        }
        let r = s.enforce_retention(&budget).unwrap();
        assert_eq!((r.deleted_calls, r.calls_left), (1, 2));
        // Removed from the config: retention stops waiting for it.
        s.forwarder_remove("hook").unwrap();
        let r = s.enforce_retention(&budget).unwrap();
        assert_eq!((r.deleted_calls, r.calls_left), (2, 0));
    }

    #[test]
    fn a_version_1_store_is_migrated_to_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(schema::MIGRATIONS[0]).unwrap();
            c.execute_batch("PRAGMA user_version = 1").unwrap();
            c.execute(
                "INSERT INTO outbox (msg_id, topic, payload, created_at) VALUES ('m1', 'leads', '{}', 0)",
                [],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let v: i64 = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::LATEST);
        let p = s.forwarder_pending("hook", &[Topic::Leads], 10).unwrap();
        assert_eq!(p.len(), 1);
        s.forwarder_done("hook", &p[0], 1, None).unwrap();
        assert!(s
            .forwarder_pending("hook", &[Topic::Leads], 10)
            .unwrap()
            .is_empty());
        // Version 3's queue tables are there too.
        assert!(s.queue_stats().unwrap().running);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn timestamps_round_trip_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-29T10:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T08:00:00.000Z");
    }
}
