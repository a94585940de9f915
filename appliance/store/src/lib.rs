//! vb-store: the box's durable memory. Calls, their turns and leads, the
//! outbox of messages still to deliver, and the history of pushed configs,
//! in one SQLite file (WAL, `synchronous=FULL` for every write that carries a
//! lead). It knows nothing of MQTT: the sync crate reads the outbox and marks
//! rows delivered when the broker acknowledges them.
//!
//! # Layout
//!
//! ```text
//!  call ends ──NewCall──► Store::record_call ── one transaction (synchronous=FULL) ──┐
//!                                                                                  ▼
//!                              calls ◄─ turns ◄─ leads        outbox (seq order, stable msg ids)
//!                                │                  │             │
//!         Store::enforce_retention (byte/row budget; never a call │ Store::pending ─► sync (publish QoS1)
//!         with an undelivered outbox row)                          │ Store::mark_delivered ◄─ PUBACK
//!                                │
//!  Store::leads_since / lead / calls (CallFilter) / call ──► HTTP API (vb-api)
//!  Store::leads_since ──export::write_csv | write_json──► `voiceblock leads export`
//!
//!  outbound queue ──Store::queue_add / queue_claim / queue_finish──► outbound_jobs + outbound_attempts
//!                 (dnc, settings: the running flag)
//!
//!  config pushes ──Store::record_config──► config_history (applied | rejected, with errors)
//!
//!  outbox ──Store::forwarder_pending(name)──► forwarder (webhook) ──Store::forwarder_done──►
//!         forwarder_cursors (per forwarder, apart from the MQTT flag) + forwarder_failures
//! ```
//!
//! - [`store`]: opening (integrity check, migrations), writes, queries (lists,
//!   one call with its turns, one lead), retention.
//! - [`schema`]: the versioned migrations (`PRAGMA user_version`).
//! - [`queue`]: the outbound call queue's jobs, attempts, do-not-call list
//!   and running flag (the policy is vb-outbound's).
//! - [`model`]: the rows going in and coming out (this crate's own types; the
//!   binary converts call records and dialog leads into them).
//! - [`export`]: CSV and JSON writers for leads.
//! - [`error`]: [`StoreError`], which tells a full disk and a corrupt file apart
//!   from everything else.

pub mod error;
pub mod export;
pub mod model;
pub mod queue;
pub mod schema;
pub mod store;

pub use error::StoreError;
pub use model::{
    CallDetail, CallFilter, CallSummary, ConfigEntry, ConfigOutcome, Direction, ForwarderFailure,
    LeadRow, NewCall, NewLead, NewTurn, OutboxMessage, Speaker, Timestamp, TurnRow,
};
pub use store::{Retention, RetentionReport, Store, Topic};
