//! A circuit breaker shared by all calls: after a run of failures it stops
//! trying the endpoint for a while (longer if the server said
//! `Retry-After`), then lets one trial call through. A pure state machine:
//! time is passed in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open.
    pub open_for: Duration,
    /// Longest `Retry-After` honoured.
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failures_to_open: 3,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(300),
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed {
        /// Failures in a row so far.
        failures: u32,
    },
    /// No requests until `until`.
    Open {
        /// When a trial may go.
        until: Instant,
    },
    /// One trial request is out; others wait for its outcome.
    HalfOpen,
}

/// The breaker's state machine.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a request may be made at `now`; `Err` says for how long not.
    /// When the open time is over, the first caller gets the trial.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(until - now),
            // The trial is out; others keep off until it reports.
            BreakerState::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// The request succeeded.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// The request failed at `now`; `retry_after` is the server's wish.
    pub fn on_failure(&mut self, now: Instant, retry_after: Option<Duration>) {
        let open_for = retry_after
            .map_or(self.config.open_for, |r| r.max(self.config.open_for))
            .min(self.config.max_open_for);
        self.state = match self.state {
            // A server that says when to come back is believed at once.
            _ if retry_after.is_some() => BreakerState::Open {
                until: now + open_for,
            },
            BreakerState::Closed { failures } if failures + 1 < self.config.failures_to_open => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + open_for,
            },
        };
    }

    /// A request was given up by our side (barge-in): neither outcome. A
    /// trial that is cancelled lets the next caller try.
    pub fn on_cancel(&mut self, now: Instant) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open { until: now };
        }
    }
}

/// The breaker shared by every call on the box.
#[derive(Debug, Clone)]
pub struct SharedBreaker(Arc<Mutex<CircuitBreaker>>);

impl SharedBreaker {
    /// A closed shared breaker.
    pub fn new(config: BreakerConfig) -> SharedBreaker {
        SharedBreaker(Arc::new(Mutex::new(CircuitBreaker::new(config))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut CircuitBreaker) -> T) -> T {
        // A panic while holding this lock cannot leave the state half
        // written (every method assigns once), so a poisoned lock is usable.
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// See [`CircuitBreaker::try_acquire`].
    pub fn try_acquire(&self, now: Instant) -> Result<(), Duration> {
        self.with(|b| b.try_acquire(now))
    }
    /// See [`CircuitBreaker::on_success`].
    pub fn on_success(&self) {
        self.with(CircuitBreaker::on_success)
    }
    /// See [`CircuitBreaker::on_failure`].
    pub fn on_failure(&self, now: Instant, retry_after: Option<Duration>) {
        self.with(|b| b.on_failure(now, retry_after))
    }
    /// See [`CircuitBreaker::on_cancel`].
    pub fn on_cancel(&self, now: Instant) {
        self.with(|b| b.on_cancel(now))
    }
    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.with(|b| b.state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_then_half_opens() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        b.on_failure(t0, None);
        b.on_failure(t0, None);
        assert!(b.try_acquire(t0).is_ok());
        b.on_failure(t0, None);
        assert_eq!(
            b.try_acquire(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        assert!(b.try_acquire(t0 + Duration::from_secs(30)).is_ok());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one trial.
        assert!(b.try_acquire(t0 + Duration::from_secs(30)).is_err());
        b.on_failure(t0 + Duration::from_secs(31), None);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.try_acquire(t0 + Duration::from_secs(61)).is_ok());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn retry_after_opens_at_once_and_is_capped() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        b.on_failure(t0, Some(Duration::from_secs(120)));
        assert_eq!(b.try_acquire(t0), Err(Duration::from_secs(120)));
        b.on_success();
        b.on_failure(t0, Some(Duration::from_secs(99_999)));
        assert_eq!(b.try_acquire(t0), Err(Duration::from_secs(300)));
    }

    #[test]
    fn cancelled_trial_frees_the_slot() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failures_to_open: 1,
            ..BreakerConfig::default()
        });
        b.on_failure(t0, None);
        let t1 = t0 + Duration::from_secs(30);
        assert!(b.try_acquire(t1).is_ok());
        b.on_cancel(t1);
        assert!(b.try_acquire(t1).is_ok());
    }
}
