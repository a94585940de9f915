//! vb-outbound: the policy of the outbound call queue, free of I/O and of
//! the clock (every function takes "now" as an argument), so windows across
//! DST changes and whole retry schedules are tested in microseconds.
//!
//! # Layout
//!
//! ```text
//!  API / CSV upload ── "+1 (555) 123-4567", "sip:bob@pbx" ──> number::Target (E.164 or SIP URI, DNC key)
//!
//!  robot.toml [outbound] ──> RawPolicy ──validate()──> Policy
//!                                                        ├── Window: days + local hours in the robot's time zone
//!                                                        └── Retry: attempt limit, base delay per result, doubling
//!
//!  daemon: SIP final answer ──classify()──> AttemptResult ──Policy::after()──> Next (done / retry at T / give up)
//!          queue idle ──Policy::next_open(now)──> when the window opens
//! ```
//!
//! - [`number`]: [`Target`], what may be dialled, and its do-not-call key.
//! - [`policy`]: [`Policy`], [`Window`], [`Retry`], [`AttemptResult`],
//!   [`Next`] and [`classify`].
//!
//! # Example
//!
//! ```
//! use vb_outbound::{AttemptResult, Next, Policy, RawPolicy};
//!
//! let policy = Policy::from_raw(&RawPolicy {
//!     timezone: Some("Europe/Moscow".into()),
//!     window: Some("09:00-20:00".into()),
//!     days: Some(vec!["mon-fri".into()]),
//!     max_attempts: Some(3),
//!     ..RawPolicy::default()
//! })
//! .expect("valid policy");
//! // Monday 2026-11-30 21:30 in Moscow (18:30 UTC): the window has closed,
//! // a busy line is retried the next morning at 09:00 (06:00 UTC).
//! let monday_evening = 1_796_063_400_000;
//! match policy.after(AttemptResult::Busy, 1, monday_evening) {
//!     Next::Retry { at_ms } => assert_eq!(at_ms, 1_796_104_800_000),
//!     other => panic!("{other:?}"),
//! }
//! ```

pub mod number;
pub mod policy;

pub use number::{NumberError, Target};
pub use policy::{classify, AttemptResult, Next, Policy, PolicyError, RawPolicy, Retry, Window};
