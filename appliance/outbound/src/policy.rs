//! When the queue may call and what it does after each attempt.
//!
//! A [`Policy`] comes from the robot's `[outbound]` table: the calling
//! window (days of the week and local hours, in the robot's IANA time zone,
//! DST included) and the retry rule (an attempt limit and a base delay per
//! kind of failure, doubled after each further attempt, capped at a day).
//! Times are unix milliseconds; nothing here reads the clock.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

/// Most attempts a job may be given.
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest wait between two attempts, however many were made.
pub const MAX_DELAY_S: u64 = 24 * 3600;

/// The `[outbound]` table of robot.toml, as written. Every key is optional;
/// [`Policy::from_raw`] fills in the defaults and checks the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// IANA time zone of the people called (default: the box's own zone).
    pub timezone: Option<String>,
    /// Local hours, `HH:MM-HH:MM`, start inclusive, end exclusive
    /// (default `09:00-20:00`).
    pub window: Option<String>,
    /// Days, e.g. `["mon-fri", "sat"]` (default every day).
    pub days: Option<Vec<String>>,
    /// Attempts per job, 1 to 20 (default 3).
    pub max_attempts: Option<i64>,
    /// First retry after a busy line, seconds (default 600).
    pub retry_busy_s: Option<i64>,
    /// First retry after no answer, seconds (default 1800).
    pub retry_no_answer_s: Option<i64>,
    /// First retry after a failure (network, 5xx), seconds (default 900).
    pub retry_failed_s: Option<i64>,
}

/// Why an `[outbound]` table is refused; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[outbound]: {}", .0.join("; "))]
pub struct PolicyError(pub Vec<String>);

/// Local calling hours on chosen days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after local midnight, inclusive.
    pub start_min: u16,
    /// Minutes after local midnight, exclusive; after `start_min`.
    pub end_min: u16,
}

/// The retry rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per job.
    pub max_attempts: u32,
    /// Base delay after a busy line, seconds.
    pub busy_s: u64,
    /// Base delay after no answer, seconds.
    pub no_answer_s: u64,
    /// Base delay after a failure, seconds.
    pub failed_s: u64,
}

/// A validated outbound policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The time zone's name, as configured.
    pub timezone: String,
    tz: TimeZone,
    /// When calls may be placed.
    pub window: Window,
    /// What happens after a failed attempt.
    pub retry: Retry,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// Answered: the robot had its conversation.
    Answered,
    /// 486/600: the line was busy.
    Busy,
    /// No final answer, 408, 480 or 487.
    NoAnswer,
    /// 603: the person declined. Not retried.
    Declined,
    /// 404, 410, 484, 485, 604: the number does not exist. Not retried.
    BadNumber,
    /// Anything else: network, 5xx, SDP.
    Failed,
    /// The box stopped (power cut, restart) while dialling.
    Interrupted,
    /// Dev mode: the call was logged, not placed. The job is done.
    Simulated,
}

impl AttemptResult {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Answered => "answered",
            AttemptResult::Busy => "busy",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Declined => "declined",
            AttemptResult::BadNumber => "bad_number",
            AttemptResult::Failed => "failed",
            AttemptResult::Interrupted => "interrupted",
            AttemptResult::Simulated => "simulated",
        }
    }
}

/// What to do with a job after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Answered: the job is done.
    Done,
    /// Call again, not before `at_ms`.
    Retry {
        /// Unix ms.
        at_ms: i64,
    },
    /// No more attempts.
    GiveUp {
        /// Why, for the record.
        reason: String,
    },
}

/// The attempt's result from the SIP outcome: the final status code of the
/// INVITE when there was one, `timed_out` when none came in time.
pub fn classify(code: Option<u16>, timed_out: bool) -> AttemptResult {
    match code {
        Some(200..=299) => AttemptResult::Answered,
        Some(486 | 600) => AttemptResult::Busy,
        Some(408 | 480 | 487) => AttemptResult::NoAnswer,
        Some(603) => AttemptResult::Declined,
        Some(404 | 410 | 484 | 485 | 604) => AttemptResult::BadNumber,
        Some(_) => AttemptResult::Failed,
        None if timed_out => AttemptResult::NoAnswer,
        None => AttemptResult::Failed,
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::from_raw(&RawPolicy::default()).expect("the defaults are valid")
    }
}

impl Policy {
    /// Checks a raw table and fills in the defaults.
    pub fn from_raw(raw: &RawPolicy) -> Result<Policy, PolicyError> {
        let mut issues = Vec::new();
        let (timezone, tz) = match &raw.timezone {
            // The box's own zone (/etc/localtime, $TZ), UTC if it has none.
            None => {
                let tz = TimeZone::try_system().unwrap_or(TimeZone::UTC);
                (tz.iana_name().unwrap_or("UTC").to_string(), tz)
            }
            Some(name) => match TimeZone::get(name) {
                Ok(tz) => (name.clone(), tz),
                Err(_) => {
                    issues.push(format!(
                        "timezone {name:?} is not an IANA time zone name (e.g. \"Europe/Moscow\", \"America/New_York\", \"UTC\")"
                    ));
                    (name.clone(), TimeZone::UTC)
                }
            },
        };
        let (start_min, end_min) = match parse_hours(raw.window.as_deref().unwrap_or("09:00-20:00"))
        {
            Ok(w) => w,
            Err(e) => {
                issues.push(e);
                (0, 1)
            }
        };
        let days = match &raw.days {
            None => [true; 7],
            Some(list) => match parse_days(list) {
                Ok(d) => d,
                Err(e) => {
                    issues.push(e);
                    [true; 7]
                }
            },
        };
        let mut number = |key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64| match v {
            None => default as u64,
            Some(v) if (lo..=hi).contains(&v) => v as u64,
            Some(v) => {
                issues.push(format!("{key} = {v} is out of range ({lo} to {hi})"));
                default as u64
            }
        };
        let max_attempts =
            number("max_attempts", raw.max_attempts, 3, 1, MAX_ATTEMPTS as i64) as u32;
        let day = MAX_DELAY_S as i64;
        let busy_s = number("retry_busy_s", raw.retry_busy_s, 600, 1, day);
        let no_answer_s = number("retry_no_answer_s", raw.retry_no_answer_s, 1800, 1, day);
        let failed_s = number("retry_failed_s", raw.retry_failed_s, 900, 1, day);
        if !issues.is_empty() {
            return Err(PolicyError(issues));
        }
        Ok(Policy {
            timezone,
            tz,
            window: Window {
                days,
                start_min,
                end_min,
            },
            retry: Retry {
                max_attempts,
                busy_s,
                no_answer_s,
                failed_s,
            },
        })
    }

    /// Whether a call may be placed at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.next_open(now_ms) == now_ms
    }

    /// `now_ms` if the window is open then, else when it next opens.
    pub fn next_open(&self, now_ms: i64) -> i64 {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return now_ms;
        };
        let mut date = now.to_zoned(self.tz.clone()).date();
        // A week covers every pattern of days; `from_raw` refuses none set.
        for _ in 0..8 {
            let weekday = date.weekday().to_monday_zero_offset() as usize;
            if self.window.days[weekday] {
                let start = self.local_ms(date, self.window.start_min);
                let end = self.local_ms(date, self.window.end_min);
                if now_ms < end {
                    return now_ms.max(start);
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        now_ms
    }

    /// What to do after attempt number `attempts` (1 for the first) ended
    /// with `result` at `now_ms`.
    pub fn after(&self, result: AttemptResult, attempts: u32, now_ms: i64) -> Next {
        let base = match result {
            AttemptResult::Answered | AttemptResult::Simulated => return Next::Done,
            AttemptResult::Declined => {
                return Next::GiveUp {
                    reason: "declined (603): not called again".into(),
                }
            }
            AttemptResult::BadNumber => {
                return Next::GiveUp {
                    reason: "the number does not exist: not called again".into(),
                }
            }
            AttemptResult::Busy => self.retry.busy_s,
            AttemptResult::NoAnswer => self.retry.no_answer_s,
            AttemptResult::Failed => self.retry.failed_s,
            AttemptResult::Interrupted => 0,
        };
        if attempts >= self.retry.max_attempts {
            return Next::GiveUp {
                reason: format!(
                    "{attempts} attempt(s), the limit (max_attempts = {}); last: {}",
                    self.retry.max_attempts,
                    result.as_str()
                ),
            };
        }
        let doublings = attempts.saturating_sub(1).min(16);
        let delay_s = base.saturating_mul(1 << doublings).min(MAX_DELAY_S);
        let due = now_ms.saturating_add(delay_s as i64 * 1000);
        Next::Retry {
            at_ms: self.next_open(due),
        }
    }

    /// Unix ms of `minutes` after midnight on `date` in the policy's zone
    /// (a time skipped by a DST jump maps to just after it).
    fn local_ms(&self, date: Date, minutes: u16) -> i64 {
        let time = if minutes >= 24 * 60 {
            Time::MAX
        } else {
            Time::constant((minutes / 60) as i8, (minutes % 60) as i8, 0, 0)
        };
        match date.to_datetime(time).to_zoned(self.tz.clone()) {
            Ok(z) => {
                let ms = z.timestamp().as_millisecond();
                if minutes >= 24 * 60 {
                    ms + 1
                } else {
                    ms
                }
            }
            Err(_) => i64::MAX,
        }
    }
}

/// `HH:MM-HH:MM` to minutes; `24:00` ends a window at midnight.
fn parse_hours(text: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!("window {text:?} is not HH:MM-HH:MM with the start before the end (e.g. \"09:00-20:00\")")
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let minute = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
    if start >= end {
        return Err(bad());
    }
    Ok((start, end))
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `["mon-fri", "sat"]` to a Monday-first mask.
fn parse_days(list: &[String]) -> Result<[bool; 7], String> {
    let mut mask = [false; 7];
    let day = |s: &str| DAYS.iter().position(|d| s.trim().eq_ignore_ascii_case(d));
    for item in list {
        let bad =
            || format!("days entry {item:?} is not a day (mon..sun) or a range like \"mon-fri\"");
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?);
                let mut d = a;
                loop {
                    mask[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask[day(item).ok_or_else(bad)?] = true,
        }
    }
    if !mask.iter().any(|d| *d) {
        return Err("days is empty: the queue would never call".into());
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn policy(tz: &str, window: &str, days: &[&str]) -> Policy {
        Policy::from_raw(&RawPolicy {
            timezone: Some(tz.into()),
            window: Some(window.into()),
            days: Some(days.iter().map(|d| d.to_string()).collect()),
            ..RawPolicy::default()
        })
        .unwrap()
    }

    #[test]
    fn window_in_the_robots_zone() {
        let p = policy("Europe/Moscow", "09:00-20:00", &["mon-fri"]);
        // Monday 10:00 Moscow = 07:00 UTC: open.
        assert!(p.is_open(ms("2026-11-30T07:00:00Z")));
        // Monday 08:59 Moscow: opens at 09:00.
        assert_eq!(
            p.next_open(ms("2026-11-30T05:59:00Z")),
            ms("2026-11-30T06:00:00Z")
        );
        // Friday 20:00 Moscow (end exclusive): next is Monday 09:00.
        assert_eq!(
            p.next_open(ms("2026-12-04T17:00:00Z")),
            ms("2026-12-07T06:00:00Z")
        );
        // Saturday: Monday.
        assert_eq!(
            p.next_open(ms("2026-12-05T12:00:00Z")),
            ms("2026-12-07T06:00:00Z")
        );
    }

    #[test]
    fn dst_is_followed() {
        let p = policy("America/New_York", "09:00-17:00", &["mon-sun"]);
        // Before the 2026-11-01 change 09:00 EDT is 13:00 UTC, after it 09:00
        // EST is 14:00 UTC.
        assert_eq!(
            p.next_open(ms("2026-10-31T05:00:00Z")),
            ms("2026-10-31T13:00:00Z")
        );
        assert_eq!(
            p.next_open(ms("2026-11-02T05:00:00Z")),
            ms("2026-11-02T14:00:00Z")
        );
    }

    #[test]
    fn midnight_end_and_wrapping_ranges() {
        let p = policy("UTC", "18:00-24:00", &["fri-mon"]);
        assert!(p.is_open(ms("2026-11-30T23:59:00Z"))); // Monday
                                                        // Tuesday 19:00 is outside the days: Friday 18:00.
        assert_eq!(
            p.next_open(ms("2026-12-01T19:00:00Z")),
            ms("2026-12-04T18:00:00Z")
        );
    }

    #[test]
    fn retries_double_and_stop_at_the_limit() {
        let p = Policy::from_raw(&RawPolicy {
            window: Some("00:00-24:00".into()),
            max_attempts: Some(3),
            retry_busy_s: Some(60),
            ..RawPolicy::default()
        })
        .unwrap();
        let t = ms("2026-11-30T12:00:00Z");
        assert_eq!(
            p.after(AttemptResult::Busy, 1, t),
            Next::Retry { at_ms: t + 60_000 }
        );
        assert_eq!(
            p.after(AttemptResult::Busy, 2, t),
            Next::Retry { at_ms: t + 120_000 }
        );
        match p.after(AttemptResult::Busy, 3, t) {
            Next::GiveUp { reason } => assert!(reason.contains("max_attempts = 3"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.after(AttemptResult::Answered, 1, t), Next::Done);
        assert!(matches!(
            p.after(AttemptResult::Declined, 1, t),
            Next::GiveUp { .. }
        ));
        assert!(matches!(
            p.after(AttemptResult::BadNumber, 1, t),
            Next::GiveUp { .. }
        ));
        assert_eq!(
            p.after(AttemptResult::Interrupted, 1, t),
            Next::Retry { at_ms: t }
        );
    }

    #[test]
    fn a_retry_waits_for_the_window() {
        let p = Policy::from_raw(&RawPolicy {
            window: Some("09:00-10:00".into()),
            retry_no_answer_s: Some(1800),
            ..RawPolicy::default()
        })
        .unwrap();
        let t = ms("2026-11-30T09:45:00Z");
        assert_eq!(
            p.after(AttemptResult::NoAnswer, 1, t),
            Next::Retry {
                at_ms: ms("2026-12-01T09:00:00Z")
            }
        );
    }

    #[test]
    fn classify_sip_outcomes() {
        assert_eq!(classify(Some(200), false), AttemptResult::Answered);
        assert_eq!(classify(Some(486), false), AttemptResult::Busy);
        assert_eq!(classify(Some(480), false), AttemptResult::NoAnswer);
        assert_eq!(classify(None, true), AttemptResult::NoAnswer);
        assert_eq!(classify(Some(603), false), AttemptResult::Declined);
        assert_eq!(classify(Some(404), false), AttemptResult::BadNumber);
        assert_eq!(classify(Some(503), false), AttemptResult::Failed);
        assert_eq!(classify(None, false), AttemptResult::Failed);
    }

    #[test]
    fn every_problem_is_listed() {
        let e = Policy::from_raw(&RawPolicy {
            timezone: Some("Mars/Olympus".into()),
            window: Some("20:00-09:00".into()),
            days: Some(vec!["funday".into()]),
            max_attempts: Some(0),
            retry_busy_s: Some(-5),
            ..RawPolicy::default()
        })
        .unwrap_err();
        assert_eq!(e.0.len(), 5, "{e}");
        let text = e.to_string();
        for needle in [
            "Mars/Olympus",
            "20:00-09:00",
            "funday",
            "max_attempts = 0",
            "retry_busy_s = -5",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn next_open_is_open_and_not_before_now(
            now in 1_600_000_000_000i64..2_000_000_000_000i64,
            start in 0u16..23, len in 1u16..60, mask in 1u8..128,
        ) {
            let days: Vec<String> = (0..7).filter(|d| mask & (1 << d) != 0).map(|d| DAYS[d].to_string()).collect();
            let p = policy("Europe/Berlin", &format!("{start:02}:00-{start:02}:{len:02}"), &days.iter().map(String::as_str).collect::<Vec<_>>());
            let at = p.next_open(now);
            proptest::prop_assert!(at >= now);
            proptest::prop_assert!(p.is_open(at));
            proptest::prop_assert!(at - now <= 8 * 24 * 3600 * 1000);
        }
    }
}
