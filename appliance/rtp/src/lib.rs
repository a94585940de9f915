//! vb-rtp: the media side of a phone call that no good crate does for us:
//! RTP packets (RFC 3550), receive statistics, RFC 4733 telephone events,
//! the receive jitter buffer and the 20 ms send pacer. Pure computation: no
//! sockets and no clocks of its own (callers pass `Instant`s), so every rule
//! is tested without a network.
//!
//! # Layout
//!
//! ```text
//!  UDP datagram ──packet::parse──► RtpPacket (header + payload, borrowed)
//!        │                              │
//!        │          stats::RecvStats ◄──┤ extended sequence, loss, RFC 3550 jitter
//!        │                              │
//!        │   PT telephone-event ──dtmf::DtmfReceiver──► digit once per event
//!        │                              │
//!        │   PT PCMU/PCMA ──jitter::JitterBuffer──► every 20 ms: Frame | Lost (conceal)
//!        │
//!  robot audio ──pacer::Pacer (deadline n = start + n·20 ms, no drift)──► packet::write ──► UDP
//! ```
//!
//! - [`packet`]: header parsing with named limits ([`RtpError`]) and writing.
//! - [`stats`]: RFC 3550 A.1 sequence extension and A.8 interarrival jitter.
//! - [`dtmf`]: RFC 4733 event payloads, both directions.
//! - [`jitter`]: reorder, drop late and duplicate packets, report losses.
//! - [`pacer`]: send deadlines from a monotonic start, and their lateness.
//! - [`rtcp`]: sender/receiver reports with SDES, and a reader for the far end's.
//! - [`sdp`]: offer/answer for one audio stream: PCMU/PCMA + telephone-event.

pub mod dtmf;
pub mod error;
pub mod jitter;
pub mod pacer;
pub mod packet;
pub mod rtcp;
pub mod sdp;
pub mod stats;

pub use dtmf::{DtmfReceiver, TelephoneEvent};
pub use error::RtpError;
pub use jitter::{JitterBuffer, JitterConfig, Playout, PushOutcome};
pub use pacer::Pacer;
pub use packet::{RtpHeader, RtpPacket, MAX_PAYLOAD};
pub use sdp::{Codec, Direction, Negotiated, SdpError};
pub use stats::RecvStats;
