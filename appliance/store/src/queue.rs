//! The outbound call queue's durable state: jobs (one number each), their
//! attempts, the do-not-call list and the queue's running flag. The policy
//! (windows, retry delays, limits) is `vb-outbound`'s; this module only
//! stores what the daemon decided, each change in one transaction, so a
//! restart or power cut loses no job and no attempt.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::model::Timestamp;
use crate::store::{check_len, check_opt, Store, MAX_TEXT_BYTES};
use crate::StoreError;

/// Jobs waiting (queued or dialling) at most: a bulk upload beyond it is
/// refused whole.
pub const MAX_WAITING_JOBS: u64 = 100_000;
/// Longest number or do-not-call key, bytes.
pub const MAX_NUMBER_BYTES: usize = 256;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its time, the window and a free line.
    Queued,
    /// An attempt is under way.
    Dialing,
    /// Answered: the robot had its call.
    Done,
    /// Given up (attempt limit, declined, no such number).
    Failed,
    /// Cancelled by an operator.
    Cancelled,
    /// Its number went on the do-not-call list before it was called.
    Blocked,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Dialing => "dialing",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Blocked => "blocked",
        }
    }

    /// Parses a stored name or an API filter.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "dialing" => JobState::Dialing,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            "blocked" => JobState::Blocked,
            _ => return None,
        })
    }
}

/// A job to add; `number` and `dnc_key` come from `vb_outbound::Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// What to dial.
    pub number: String,
    /// The do-not-call key of `number`.
    pub dnc_key: String,
    /// Who is called, for the operator.
    pub name: Option<String>,
    /// Free text for the operator.
    pub note: Option<String>,
    /// Higher is called first.
    pub priority: i32,
    /// Not before this time (unix ms); now if `None`.
    pub not_before: Option<i64>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Stable id.
    pub id: String,
    /// What is dialled.
    pub number: String,
    /// The do-not-call key.
    #[serde(skip)]
    pub dnc_key: String,
    /// Who is called.
    pub name: Option<String>,
    /// Operator's note.
    pub note: Option<String>,
    /// Higher first.
    pub priority: i32,
    /// Where it stands.
    pub state: JobState,
    /// Attempts made.
    pub attempts: u32,
    /// Earliest next attempt (RFC 3339), meaningful while queued.
    pub next_at: String,
    /// Added (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// The last attempt's result.
    pub last_result: Option<String>,
    /// The answered call's id (see /api/v1/calls).
    pub call_id: Option<String>,
    /// Why it failed or was blocked.
    pub reason: Option<String>,
}

/// One dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1 for the first.
    pub n: u32,
    /// Dialling began (RFC 3339).
    pub started_at: String,
    /// It ended (RFC 3339); `None` while under way.
    pub ended_at: Option<String>,
    /// `answered`, `busy`, `no_answer`, ... (`vb_outbound::AttemptResult`).
    pub result: Option<String>,
    /// The SIP final status, when one came.
    pub sip_code: Option<u16>,
    /// The call's id when answered.
    pub call_id: Option<String>,
    /// The error text, when it failed.
    pub detail: Option<String>,
}

/// What to do with a job after an attempt (from `vb_outbound::Next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Answered.
    Done,
    /// Queue again for `at_ms`.
    Retry {
        /// Unix ms.
        at_ms: i64,
    },
    /// No more attempts.
    GiveUp {
        /// Why.
        reason: String,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd<'a> {
    /// `vb_outbound::AttemptResult::as_str`.
    pub result: &'a str,
    /// SIP final status.
    pub sip_code: Option<u16>,
    /// The call's id when answered.
    pub call_id: Option<&'a str>,
    /// Error text.
    pub detail: Option<&'a str>,
}

/// What adding jobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Added {
    /// Ids of the jobs added, in input order (skipping refused ones).
    pub ids: Vec<String>,
    /// Input positions (0-based) refused as on the do-not-call list.
    pub on_dnc: Vec<usize>,
}

/// Counts by state and the running flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Whether the queue places calls.
    pub running: bool,
    /// Jobs by state.
    pub queued: u64,
    /// Under way.
    pub dialing: u64,
    /// Answered.
    pub done: u64,
    /// Given up.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Blocked by the do-not-call list.
    pub blocked: u64,
    /// Attempts made, all jobs.
    pub attempts: u64,
    /// Attempts answered.
    pub answered: u64,
    /// Entries on the do-not-call list.
    pub dnc: u64,
    /// The earliest next attempt among queued jobs (RFC 3339).
    pub next_at: Option<String>,
}

/// A do-not-call entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DncEntry {
    /// The number (E.164) or SIP URI.
    pub number: String,
    /// Added (RFC 3339).
    pub added_at: String,
    /// Why, if given.
    pub reason: Option<String>,
}

/// A job taken for dialling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The job (state `dialing`, attempts counted).
    pub job: Job,
    /// This attempt's number.
    pub n: u32,
}

/// Result of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It was waiting and is now cancelled.
    Cancelled,
    /// Nothing done: the job is in this state (dialling or finished).
    NotWaiting(JobState),
    /// No such job.
    Unknown,
}

const JOB_SELECT: &str =
    "SELECT id, number, dnc_key, name, note, priority, state, attempts, next_at,
        created_at, updated_at, last_result, call_id, reason FROM outbound_jobs";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(6)?;
    Ok(Job {
        id: r.get(0)?,
        number: r.get(1)?,
        dnc_key: r.get(2)?,
        name: r.get(3)?,
        note: r.get(4)?,
        priority: r.get(5)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        attempts: r.get(7)?,
        next_at: Timestamp(r.get(8)?).to_rfc3339(),
        created_at: Timestamp(r.get(9)?).to_rfc3339(),
        updated_at: Timestamp(r.get(10)?).to_rfc3339(),
        last_result: r.get(11)?,
        call_id: r.get(12)?,
        reason: r.get(13)?,
    })
}

impl Store {
    /// Adds jobs in one transaction: all or none. Numbers on the do-not-call
    /// list are skipped and reported by position.
    pub fn queue_add(&self, jobs: &[NewJob]) -> Result<Added, StoreError> {
        for j in jobs {
            check_len("number", &j.number, MAX_NUMBER_BYTES)?;
            check_len("number", &j.dnc_key, MAX_NUMBER_BYTES)?;
            check_opt("name", &j.name)?;
            check_opt("note", &j.note)?;
        }
        let e = self.err("adding to the outbound queue");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        let waiting: u64 = tx
            .query_row(
                "SELECT COUNT(*) FROM outbound_jobs WHERE state IN ('queued', 'dialing')",
                [],
                |r| r.get(0),
            )
            .map_err(&e)?;
        if waiting + jobs.len() as u64 > MAX_WAITING_JOBS {
            return Err(StoreError::QueueFull {
                queued: waiting,
                adding: jobs.len(),
                max: MAX_WAITING_JOBS,
            });
        }
        let now = Timestamp::now().0;
        let mut seq: i64 = tx
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM outbound_jobs", [], |r| {
                r.get(0)
            })
            .map_err(&e)?;
        let mut added = Added::default();
        {
            let mut dnc = tx
                .prepare_cached("SELECT 1 FROM dnc WHERE key = ?1")
                .map_err(&e)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO outbound_jobs (id, seq, number, dnc_key, name, note, priority, state, next_at, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?9)",
                )
                .map_err(&e)?;
            for (i, j) in jobs.iter().enumerate() {
                if dnc.exists([&j.dnc_key]).map_err(&e)? {
                    added.on_dnc.push(i);
                    continue;
                }
                seq += 1;
                let id = uuid::Uuid::new_v4().to_string();
                insert
                    .execute(params![
                        id,
                        seq,
                        j.number,
                        j.dnc_key,
                        j.name,
                        j.note,
                        j.priority,
                        j.not_before.unwrap_or(now),
                        now
                    ])
                    .map_err(&e)?;
                added.ids.push(id);
            }
        }
        tx.commit().map_err(&e)?;
        Ok(added)
    }

    /// Jobs, newest first, optionally of one state.
    pub fn queue_list(
        &self,
        state: Option<JobState>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let conn = self.conn();
        let e = self.err("listing the outbound queue");
        let sql = format!(
            "{JOB_SELECT} WHERE (?1 IS NULL OR state = ?1) ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(&e)?;
        let rows = stmt
            .query_map(
                params![state.map(JobState::as_str), limit as i64, offset as i64],
                job_row,
            )
            .map_err(&e)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&e)
    }

    /// One job with its attempts.
    pub fn queue_job(&self, id: &str) -> Result<Option<(Job, Vec<Attempt>)>, StoreError> {
        let conn = self.conn();
        let e = self.err("reading an outbound job");
        let Some(job) = conn
            .query_row(&format!("{JOB_SELECT} WHERE id = ?1"), [id], job_row)
            .optional()
            .map_err(&e)?
        else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare_cached(
                "SELECT n, started_at, ended_at, result, sip_code, call_id, detail
                 FROM outbound_attempts WHERE job_id = ?1 ORDER BY n",
            )
            .map_err(&e)?;
        let attempts = stmt
            .query_map([id], |r| {
                Ok(Attempt {
                    n: r.get(0)?,
                    started_at: Timestamp(r.get(1)?).to_rfc3339(),
                    ended_at: r
                        .get::<_, Option<i64>>(2)?
                        .map(|t| Timestamp(t).to_rfc3339()),
                    result: r.get(3)?,
                    sip_code: r.get(4)?,
                    call_id: r.get(5)?,
                    detail: r.get(6)?,
                })
            })
            .map_err(&e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&e)?;
        Ok(Some((job, attempts)))
    }

    /// Cancels a waiting job.
    pub fn queue_cancel(&self, id: &str) -> Result<Cancel, StoreError> {
        let conn = self.conn();
        let e = self.err("cancelling an outbound job");
        let n = conn
            .execute(
                "UPDATE outbound_jobs SET state = 'cancelled', updated_at = ?2, reason = 'cancelled by an operator'
                 WHERE id = ?1 AND state = 'queued'",
                params![id, Timestamp::now().0],
            )
            .map_err(&e)?;
        if n == 1 {
            return Ok(Cancel::Cancelled);
        }
        let state: Option<String> = conn
            .query_row("SELECT state FROM outbound_jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        Ok(match state.as_deref().and_then(JobState::parse) {
            Some(s) => Cancel::NotWaiting(s),
            None => Cancel::Unknown,
        })
    }

    /// Takes the job to call now: the highest priority, then the earliest
    /// due, then the oldest, among queued jobs due at `now_ms`. A job whose
    /// number has gone on the do-not-call list is blocked, not returned. The
    /// job becomes `dialing` and its attempt is recorded as begun, in one
    /// transaction.
    pub fn queue_claim(&self, now_ms: i64) -> Result<Option<Claimed>, StoreError> {
        let e = self.err("taking an outbound job");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        let claimed = loop {
            let job = tx
                .query_row(
                    &format!(
                        "{JOB_SELECT} WHERE state = 'queued' AND next_at <= ?1 ORDER BY priority DESC, next_at, seq LIMIT 1"
                    ),
                    [now_ms],
                    job_row,
                )
                .optional()
                .map_err(&e)?;
            let Some(mut job) = job else { break None };
            let on_dnc = tx
                .prepare_cached("SELECT 1 FROM dnc WHERE key = ?1")
                .map_err(&e)?
                .exists([&job.dnc_key])
                .map_err(&e)?;
            if on_dnc {
                tx.execute(
                    "UPDATE outbound_jobs SET state = 'blocked', updated_at = ?2, reason = 'on the do-not-call list' WHERE id = ?1",
                    params![job.id, now_ms],
                )
                .map_err(&e)?;
                continue;
            }
            let n = job.attempts + 1;
            tx.execute(
                "UPDATE outbound_jobs SET state = 'dialing', attempts = ?2, updated_at = ?3 WHERE id = ?1",
                params![job.id, n, now_ms],
            )
            .map_err(&e)?;
            tx.execute(
                "INSERT INTO outbound_attempts (job_id, n, started_at) VALUES (?1, ?2, ?3)",
                params![job.id, n, now_ms],
            )
            .map_err(&e)?;
            job.state = JobState::Dialing;
            job.attempts = n;
            break Some(Claimed { job, n });
        };
        tx.commit().map_err(&e)?;
        Ok(claimed)
    }

    /// Records how attempt `n` of job `id` ended and what happens next.
    pub fn queue_finish(
        &self,
        id: &str,
        n: u32,
        end: &AttemptEnd<'_>,
        next: &Finish,
    ) -> Result<(), StoreError> {
        let detail = end
            .detail
            .map(|d| d.chars().take(MAX_TEXT_BYTES / 4).collect::<String>());
        let e = self.err("recording an outbound attempt");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        let now = Timestamp::now().0;
        tx.execute(
            "UPDATE outbound_attempts SET ended_at = ?3, result = ?4, sip_code = ?5, call_id = ?6, detail = ?7
             WHERE job_id = ?1 AND n = ?2",
            params![id, n, now, end.result, end.sip_code, end.call_id, detail],
        )
        .map_err(&e)?;
        let (state, next_at, reason) = match next {
            Finish::Done => ("done", None, None),
            Finish::Retry { at_ms } => ("queued", Some(*at_ms), None),
            Finish::GiveUp { reason } => ("failed", None, Some(reason.as_str())),
        };
        tx.execute(
            "UPDATE outbound_jobs SET state = ?2, next_at = COALESCE(?3, next_at), updated_at = ?4,
                 last_result = ?5, call_id = COALESCE(?6, call_id), reason = ?7
             WHERE id = ?1",
            params![id, state, next_at, now, end.result, end.call_id, reason],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Puts back a job taken by [`Store::queue_claim`] whose call was never
    /// placed (the box's own call limit was reached in between): the attempt
    /// is forgotten, not counted, and the job is due again at `at_ms`.
    pub fn queue_release(&self, id: &str, n: u32, at_ms: i64) -> Result<(), StoreError> {
        let e = self.err("putting back an outbound job");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        tx.execute(
            "DELETE FROM outbound_attempts WHERE job_id = ?1 AND n = ?2",
            params![id, n],
        )
        .map_err(&e)?;
        tx.execute(
            "UPDATE outbound_jobs SET state = 'queued', attempts = ?2 - 1, next_at = ?3, updated_at = ?4
             WHERE id = ?1 AND state = 'dialing' AND attempts = ?2",
            params![id, n, at_ms, Timestamp::now().0],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(())
    }

    /// Points the job and attempt that placed the call with SIP Call-ID
    /// `sip_call_id` at the stored call `call_id` (the calls table's id),
    /// once the call has ended and been stored. Returns the attempts updated
    /// (0 for a call the queue did not place).
    pub fn queue_link_call(&self, sip_call_id: &str, call_id: &str) -> Result<usize, StoreError> {
        let e = self.err("linking an outbound call");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        let n = tx
            .execute(
                "UPDATE outbound_attempts SET call_id = ?2 WHERE call_id = ?1",
                params![sip_call_id, call_id],
            )
            .map_err(&e)?;
        tx.execute(
            "UPDATE outbound_jobs SET call_id = ?2 WHERE call_id = ?1",
            params![sip_call_id, call_id],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// Jobs left `dialing` by a stop mid-attempt (power cut, restart):
    /// `(id, attempt n)`, for the daemon to finish as interrupted.
    pub fn queue_interrupted(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let conn = self.conn();
        let e = self.err("reading interrupted outbound jobs");
        let mut stmt = conn
            .prepare("SELECT id, attempts FROM outbound_jobs WHERE state = 'dialing' ORDER BY seq")
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&e)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&e)
    }

    /// When the earliest queued job is due (unix ms), if any.
    pub fn queue_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.conn()
            .query_row(
                "SELECT MIN(next_at) FROM outbound_jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("reading the outbound queue"))
    }

    /// Counts by state, attempts, the do-not-call list and the running flag.
    pub fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let running = self.queue_running()?;
        let conn = self.conn();
        let e = self.err("counting the outbound queue");
        let mut stats = QueueStats {
            running,
            ..QueueStats::default()
        };
        let mut stmt = conn
            .prepare_cached("SELECT state, COUNT(*) FROM outbound_jobs GROUP BY state")
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .map_err(&e)?;
        for row in rows {
            let (state, n) = row.map_err(&e)?;
            match JobState::parse(&state) {
                Some(JobState::Queued) => stats.queued = n,
                Some(JobState::Dialing) => stats.dialing = n,
                Some(JobState::Done) => stats.done = n,
                Some(JobState::Failed) => stats.failed = n,
                Some(JobState::Cancelled) => stats.cancelled = n,
                Some(JobState::Blocked) => stats.blocked = n,
                None => {}
            }
        }
        (stats.attempts, stats.answered) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(result = 'answered'), 0) FROM outbound_attempts",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&e)?;
        stats.dnc = conn
            .query_row("SELECT COUNT(*) FROM dnc", [], |r| r.get(0))
            .map_err(&e)?;
        stats.next_at = conn
            .query_row(
                "SELECT MIN(next_at) FROM outbound_jobs WHERE state = 'queued'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(&e)?
            .map(|t| Timestamp(t).to_rfc3339());
        Ok(stats)
    }

    /// Whether the queue places calls (on until an operator stops it).
    pub fn queue_running(&self) -> Result<bool, StoreError> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM settings WHERE key = 'outbound.running'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the queue's running flag"))?;
        Ok(v.as_deref() != Some("false"))
    }

    /// Starts or stops the queue (calls under way finish).
    pub fn queue_set_running(&self, running: bool) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO settings (key, value) VALUES ('outbound.running', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [if running { "true" } else { "false" }],
            )
            .map_err(self.err("setting the queue's running flag"))?;
        Ok(())
    }

    /// Puts a number on the do-not-call list; queued jobs for it are
    /// blocked at once. Returns how many jobs were blocked.
    pub fn dnc_add(
        &self,
        key: &str,
        number: &str,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        check_len("number", key, MAX_NUMBER_BYTES)?;
        check_len("number", number, MAX_NUMBER_BYTES)?;
        if let Some(r) = reason {
            check_len("reason", r, MAX_TEXT_BYTES)?;
        }
        let e = self.err("adding to the do-not-call list");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(&e)?;
        let now = Timestamp::now().0;
        tx.execute(
            "INSERT INTO dnc (key, added_at, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET reason = COALESCE(excluded.reason, dnc.reason)",
            params![key, now, reason],
        )
        .map_err(&e)?;
        let blocked = tx
            .execute(
                "UPDATE outbound_jobs SET state = 'blocked', updated_at = ?2, reason = 'on the do-not-call list'
                 WHERE dnc_key = ?1 AND state = 'queued'",
                params![key, now],
            )
            .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(blocked as u64)
    }

    /// Takes a number off the do-not-call list; false if it was not on it.
    /// Blocked jobs stay blocked (add them again to call).
    pub fn dnc_remove(&self, key: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM dnc WHERE key = ?1", [key])
            .map_err(self.err("removing from the do-not-call list"))?;
        Ok(n == 1)
    }

    /// The do-not-call list, newest first.
    pub fn dnc_list(&self, limit: usize, offset: usize) -> Result<Vec<DncEntry>, StoreError> {
        let conn = self.conn();
        let e = self.err("reading the do-not-call list");
        let mut stmt = conn
            .prepare_cached("SELECT key, added_at, reason FROM dnc ORDER BY added_at DESC, key LIMIT ?1 OFFSET ?2")
            .map_err(&e)?;
        let rows = stmt
            .query_map(params![limit as i64, offset as i64], |r| {
                Ok(DncEntry {
                    number: r.get(0)?,
                    added_at: Timestamp(r.get(1)?).to_rfc3339(),
                    reason: r.get(2)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(number: &str, priority: i32) -> NewJob {
        NewJob {
            number: number.into(),
            dnc_key: number.into(),
            name: Some("Ann".into()),
            note: None,
            priority,
            not_before: Some(0),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("box.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn claim_order_is_priority_then_due_then_age() {
        let (_d, s) = open();
        let a = s
            .queue_add(&[job("+15550000001", 0), job("+15550000002", 5)])
            .unwrap();
        let b = s.queue_add(&[job("+15550000003", 5)]).unwrap();
        let order: Vec<String> =
            std::iter::from_fn(|| s.queue_claim(1000).unwrap().map(|c| c.job.id)).collect();
        assert_eq!(
            order,
            vec![a.ids[1].clone(), b.ids[0].clone(), a.ids[0].clone()]
        );
        assert_eq!(s.queue_stats().unwrap().dialing, 3);
    }

    #[test]
    fn attempts_retry_and_finish() {
        let (_d, s) = open();
        let id = s
            .queue_add(&[job("+15550000001", 0)])
            .unwrap()
            .ids
            .remove(0);
        let c = s.queue_claim(10).unwrap().unwrap();
        assert_eq!((c.n, c.job.state), (1, JobState::Dialing));
        let busy = AttemptEnd {
            result: "busy",
            sip_code: Some(486),
            call_id: None,
            detail: Some("486 Busy Here"),
        };
        s.queue_finish(&id, 1, &busy, &Finish::Retry { at_ms: 5_000 })
            .unwrap();
        assert!(s.queue_claim(4_999).unwrap().is_none(), "not due yet");
        assert_eq!(s.queue_next_due().unwrap(), Some(5_000));
        let c = s.queue_claim(5_000).unwrap().unwrap();
        assert_eq!(c.n, 2);
        let answered = AttemptEnd {
            result: "answered",
            sip_code: Some(200),
            call_id: Some("abc@box"),
            detail: None,
        };
        s.queue_finish(&id, 2, &answered, &Finish::Done).unwrap();
        let (j, attempts) = s.queue_job(&id).unwrap().unwrap();
        assert_eq!(
            (j.state, j.attempts, j.call_id.as_deref()),
            (JobState::Done, 2, Some("abc@box"))
        );
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].sip_code, Some(486));
        assert_eq!(attempts[1].result.as_deref(), Some("answered"));
        let stats = s.queue_stats().unwrap();
        assert_eq!((stats.done, stats.attempts, stats.answered), (1, 2, 1));
    }

    #[test]
    fn dnc_refuses_and_blocks() {
        let (_d, s) = open();
        s.dnc_add(
            "+15550000009",
            "+15550000009",
            Some("asked not to be called"),
        )
        .unwrap();
        let added = s
            .queue_add(&[job("+15550000009", 0), job("+15550000001", 0)])
            .unwrap();
        assert_eq!((added.ids.len(), added.on_dnc.clone()), (1, vec![0]));
        // Listed after being queued: blocked at once, never claimed.
        assert_eq!(s.dnc_add("+15550000001", "+15550000001", None).unwrap(), 1);
        assert!(s.queue_claim(i64::MAX).unwrap().is_none());
        let (j, _) = s.queue_job(&added.ids[0]).unwrap().unwrap();
        assert_eq!(j.state, JobState::Blocked);
        assert!(s.dnc_remove("+15550000001").unwrap());
        assert!(!s.dnc_remove("+15550000001").unwrap());
        assert_eq!(s.dnc_list(10, 0).unwrap().len(), 1);
    }

    #[test]
    fn cancel_only_waiting_jobs() {
        let (_d, s) = open();
        let ids = s
            .queue_add(&[job("+15550000001", 1), job("+15550000002", 0)])
            .unwrap()
            .ids;
        let c = s.queue_claim(10).unwrap().unwrap();
        assert_eq!(c.job.id, ids[0]);
        assert_eq!(
            s.queue_cancel(&ids[0]).unwrap(),
            Cancel::NotWaiting(JobState::Dialing)
        );
        assert_eq!(s.queue_cancel(&ids[1]).unwrap(), Cancel::Cancelled);
        assert_eq!(s.queue_cancel("nope").unwrap(), Cancel::Unknown);
        assert!(s.queue_claim(i64::MAX).unwrap().is_none());
    }

    #[test]
    fn state_survives_reopen_and_interrupted_attempts_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.db");
        {
            let s = Store::open(&path).unwrap();
            s.queue_add(&[job("+15550000001", 0), job("+15550000002", 0)])
                .unwrap();
            s.queue_claim(10).unwrap().unwrap();
            s.queue_set_running(false).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.queue_interrupted().unwrap().len(), 1);
        let stats = s.queue_stats().unwrap();
        assert_eq!((stats.running, stats.queued, stats.dialing), (false, 1, 1));
        s.queue_set_running(true).unwrap();
        assert!(s.queue_running().unwrap());
    }

    #[test]
    fn limits_are_named() {
        let (_d, s) = open();
        let mut big = job("+15550000001", 0);
        big.note = Some("x".repeat(MAX_TEXT_BYTES + 1));
        let e = s.queue_add(&[big]).unwrap_err().to_string();
        assert!(e.contains("limit is 4096"), "{e}");
        assert!(
            s.queue_list(None, 10, 0).unwrap().is_empty(),
            "nothing added"
        );
    }
}
