//! The outbound dialler: the daemon's task that places the queue's calls.
//!
//! It takes the next due job from the store (priority, then due time, then
//! age), dials it through the same SIP agent that answers inbound calls, so
//! the call limit is shared (a slot in use by an inbound call is a slot the
//! queue waits for), and runs the robot on an answered call exactly as on
//! an inbound one. The robot's `[outbound]` policy (vb-outbound) decides the
//! calling window and what follows a busy line, no answer or a failure;
//! every attempt is stored with its result and SIP code before the next one
//! begins, so a restart loses none, and an attempt cut off by a stop is
//! finished as `interrupted` at the next start.
//!
//! Wake-ups: the API's changes (jobs added, queue started) notify at once;
//! otherwise the dialler looks again when the next job falls due, when the
//! window opens, when a line frees up (polled each second while full), or
//! after [`IDLE_POLL`] at most.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vb_outbound::{classify, AttemptResult, Next, Policy};
use vb_sip::{SipAgent, SipError};
use vb_store::queue::{AttemptEnd, Claimed, Finish};
use vb_store::{Store, Timestamp};

/// Longest sleep between two looks at the queue.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// How soon a job is retried when the box's own call limit was reached
/// between taking it and dialling (not counted as an attempt).
const LIMIT_RETRY: Duration = Duration::from_secs(2);

/// What the dialler needs.
pub(crate) struct Dialler {
    /// Jobs and attempts.
    pub store: Arc<Store>,
    /// The SIP agent (its call limit is shared with inbound calls).
    pub agent: SipAgent,
    /// The robot in force: its `[outbound]` policy is the calling window
    /// and retry rule (read at each step, so an activation applies at once).
    pub robot: Arc<crate::robots::ActiveRobot>,
    /// The daemon's call limit.
    pub max_calls: usize,
    /// Calls whose loop is still running (it outlives the SIP dialog by the
    /// summary and the store write, and holds an engine set until then).
    pub in_progress: Arc<dyn Fn() -> usize + Send + Sync>,
    /// Woken by the API and the fleet when the queue changes.
    pub wake: Arc<Notify>,
    /// Dev mode: log each call instead of dialling it, and finish the job
    /// as `simulated`.
    pub simulate: bool,
}

fn finish_of(next: Next) -> Finish {
    match next {
        Next::Done => Finish::Done,
        Next::Retry { at_ms } => Finish::Retry { at_ms },
        Next::GiveUp { reason } => Finish::GiveUp { reason },
    }
}

/// Closes the attempts a stop cut off (power cut, restart, crash) as
/// `interrupted`, and applies the policy to them. Returns how many.
pub(crate) fn recover(store: &Store, policy: &Policy) -> Result<usize, vb_store::StoreError> {
    let cut = store.queue_interrupted()?;
    let now = Timestamp::now().0;
    for (id, n) in &cut {
        let next = finish_of(policy.after(AttemptResult::Interrupted, *n, now));
        store.queue_finish(
            id,
            *n,
            &AttemptEnd {
                result: AttemptResult::Interrupted.as_str(),
                sip_code: None,
                call_id: None,
                detail: Some("the box stopped during this attempt"),
            },
            &next,
        )?;
    }
    Ok(cut.len())
}

/// Runs until `cancel`; `on_answer` runs the robot on each answered call.
pub(crate) async fn run(
    d: Dialler,
    cancel: CancellationToken,
    on_answer: impl Fn(vb_sip::Call) + Clone + Send + Sync + 'static,
) {
    let d = Arc::new(d);
    // Claimed jobs whose dial has not yet taken an agent slot.
    let starting = Arc::new(AtomicUsize::new(0));
    loop {
        // The step reads and writes the store (SQLite, fsync on commit):
        // off the runtime's worker threads, which carry the calls' media.
        let step = {
            let (d, starting, cancel, on_answer) = (
                d.clone(),
                starting.clone(),
                cancel.clone(),
                on_answer.clone(),
            );
            tokio::task::spawn_blocking(move || next_step(&d, &starting, &cancel, on_answer)).await
        };
        let pause = match step {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "outbound queue: store");
                Duration::from_secs(5)
            }
            Err(e) => {
                tracing::error!(error = %e, "outbound queue: the step failed");
                Duration::from_secs(5)
            }
        };
        if pause.is_zero() {
            continue;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = d.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Places at most one call; returns how long to wait before looking again.
fn next_step(
    d: &Arc<Dialler>,
    starting: &Arc<AtomicUsize>,
    cancel: &CancellationToken,
    on_answer: impl Fn(vb_sip::Call) + Send + Sync + 'static,
) -> Result<Duration, vb_store::StoreError> {
    let policy = d.robot.get().config.outbound.clone();
    if !d.store.queue_running()? {
        return Ok(IDLE_POLL);
    }
    let busy = d.agent.active_calls().max((d.in_progress)());
    if busy + starting.load(Ordering::SeqCst) >= d.max_calls {
        // Full: a line frees up when a call ends; look each second.
        return Ok(Duration::from_secs(1));
    }
    let now = Timestamp::now().0;
    let open = policy.next_open(now);
    if open > now {
        return Ok(until(now, open));
    }
    let Some(claimed) = d.store.queue_claim(now)? else {
        return Ok(match d.store.queue_next_due()? {
            Some(due) => until(now, policy.next_open(due.max(now))),
            None => IDLE_POLL,
        });
    };
    starting.fetch_add(1, Ordering::SeqCst);
    let (d, starting, cancel) = (d.clone(), starting.clone(), cancel.clone());
    tokio::spawn(async move {
        let Claimed { job, n } = claimed;
        tracing::info!(job = %job.id, number = %job.number, attempt = n, "outbound: dialling");
        if d.simulate {
            tracing::info!(target: "voiceblock::dev", job = %job.id, number = %job.number, name = ?job.name, "dev mode: outbound call simulated, not dialled");
            starting.fetch_sub(1, Ordering::SeqCst);
            let end = AttemptEnd {
                result: AttemptResult::Simulated.as_str(),
                sip_code: None,
                call_id: None,
                detail: Some("dev mode: not dialled"),
            };
            let id = job.id.clone();
            let stored = blocking(&d, move |s| s.queue_finish(&id, n, &end, &Finish::Done)).await;
            if let Err(e) = stored {
                tracing::error!(job = %job.id, error = %e, "outbound: recording the attempt");
            }
            d.wake.notify_one();
            return;
        }
        let dialled = tokio::select! {
            r = d.agent.place_call(&job.number) => Some(r),
            _ = cancel.cancelled() => None,
        };
        starting.fetch_sub(1, Ordering::SeqCst);
        let Some(dialled) = dialled else {
            // Stopping: left `dialing`, finished as interrupted at the next start.
            return;
        };
        let now = Timestamp::now().0;
        let (result, code, detail, call) = match dialled {
            Ok(call) => (AttemptResult::Answered, Some(200), None, Some(call)),
            Err(SipError::NotAccepting(why)) => {
                tracing::info!(job = %job.id, why, "outbound: not placed, retrying shortly");
                let at = now + LIMIT_RETRY.as_millis() as i64;
                let id = job.id.clone();
                if let Err(e) = blocking(&d, move |s| s.queue_release(&id, n, at)).await {
                    tracing::error!(job = %job.id, error = %e, "outbound: store");
                }
                d.wake.notify_one();
                return;
            }
            Err(e @ SipError::Rejected { code, .. }) => (
                classify(Some(code), false),
                Some(code),
                Some(e.to_string()),
                None,
            ),
            Err(e @ SipError::Timeout { .. }) => {
                (classify(None, true), None, Some(e.to_string()), None)
            }
            Err(e) => (AttemptResult::Failed, None, Some(e.to_string()), None),
        };
        let call_id = call.as_ref().map(|c| c.info.call_id.clone());
        let next = policy.after(result, n, now);
        tracing::info!(job = %job.id, attempt = n, result = result.as_str(), ?code, next = ?next, "outbound: attempt ended");
        let id = job.id.clone();
        let stored = blocking(&d, move |s| {
            let end = AttemptEnd {
                result: result.as_str(),
                sip_code: code,
                call_id: call_id.as_deref(),
                detail: detail.as_deref(),
            };
            s.queue_finish(&id, n, &end, &finish_of(next))
        })
        .await;
        if let Err(e) = stored {
            tracing::error!(job = %job.id, error = %e, "outbound: recording the attempt");
        }
        if let Some(call) = call {
            on_answer(call);
        }
        d.wake.notify_one();
    });
    Ok(Duration::ZERO)
}

/// Runs a store call on the blocking pool (SQLite commits wait for the
/// disk), so the runtime's threads keep moving media.
async fn blocking<T: Send + 'static>(
    d: &Arc<Dialler>,
    f: impl FnOnce(&Store) -> Result<T, vb_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    let d = d.clone();
    match tokio::task::spawn_blocking(move || f(&d.store)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the store call failed: {e}")),
    }
}

/// From `now` to `at` (ms), at most [`IDLE_POLL`], at least 10 ms.
fn until(now: i64, at: i64) -> Duration {
    Duration::from_millis((at - now).clamp(10, IDLE_POLL.as_millis() as i64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vb_outbound::RawPolicy;
    use vb_store::queue::{JobState, NewJob};

    #[test]
    fn attempts_cut_off_by_a_stop_are_closed_as_interrupted_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.db");
        let policy = Policy::from_raw(&RawPolicy {
            timezone: Some("UTC".into()),
            window: Some("00:00-24:00".into()),
            max_attempts: Some(2),
            ..RawPolicy::default()
        })
        .unwrap();
        assert_eq!(policy.after(AttemptResult::Simulated, 1, 0), Next::Done);
        let job = |n: &str| NewJob {
            number: n.into(),
            dnc_key: n.into(),
            name: None,
            note: None,
            priority: 0,
            not_before: Some(0),
        };
        let ids = {
            let store = Store::open(&path).unwrap();
            let ids = store
                .queue_add(&[job("+15550100001"), job("+15550100002")])
                .unwrap()
                .ids;
            // Both dialling when the power goes; the second on its last attempt.
            store.queue_claim(1).unwrap().unwrap();
            let second = store.queue_claim(1).unwrap().unwrap();
            let end = AttemptEnd {
                result: "busy",
                sip_code: Some(486),
                call_id: None,
                detail: None,
            };
            store
                .queue_finish(&second.job.id, 1, &end, &Finish::Retry { at_ms: 2 })
                .unwrap();
            store.queue_claim(2).unwrap().unwrap();
            ids
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(recover(&store, &policy).unwrap(), 2);
        assert_eq!(
            recover(&store, &policy).unwrap(),
            0,
            "nothing left dialling"
        );
        let (first, attempts) = store.queue_job(&ids[0]).unwrap().unwrap();
        assert_eq!(first.state, JobState::Queued, "retried at once");
        assert_eq!(attempts[0].result.as_deref(), Some("interrupted"));
        let (second, attempts) = store.queue_job(&ids[1]).unwrap().unwrap();
        assert_eq!(
            second.state,
            JobState::Failed,
            "its last attempt was cut off"
        );
        assert_eq!(attempts.len(), 2);
    }
}
