//! vb-sip: the box's telephone line. A SIP user agent on rsipstack (the
//! signalling) and our own RTP media session on vb-rtp (pacing, jitter
//! buffer, RFC 4733, RTCP). It knows nothing of speech: an established call
//! is a stream of [`vb_audio::line::LineEvent`]s in and a
//! [`vb_audio::line::Playout`] queue out.
//!
//! # Layout
//!
//! ```text
//!            PBX (kamailio, ...) / caller's phone
//!                 │ SIP/UDP                  │ RTP/UDP (+RTCP)
//!   agent::SipAgent                     media::MediaSession (one task per call)
//!    ├ REGISTER keep-alive (backoff)      ├ Pacer: 1 frame / 20 ms out of Playout
//!    ├ INVITE -> 100/180/200, ACK gate    ├ JitterBuffer -> LineEvent::Audio per tick
//!    ├ Leg task per call: BYE, re-INVITE, ├ RFC 4733 -> LineEvent::Dtmf
//!    │  INFO (DTMF), REFER, RTP timeout   └ RTCP SR/RR every 5 s
//!    └ shutdown: 503, drain, BYE, un-REGISTER
//!                 │
//!                 ▼ agent::Call { info, media, control, ended }  ──▶ call loop (vb-call)
//! ```
//!
//! - [`agent`]: the user agent, calls in and out, call control.
//! - [`media`]: sockets and the per-call media task.
//! - [`SipError`]: what went wrong, with the address or limit.

pub mod agent;
pub mod error;
pub mod media;

pub use agent::{
    Call, CallControl, CallDirection, CallInfo, CallSlot, RegState, SipAgent, SipConfig,
    SlotRefused, MAX_RING,
};
pub use error::SipError;
pub use media::{MediaParams, MediaSession, MediaStats, RtpSocket};

/// A random 32-bit value for SSRCs, sequence starts and SDP session ids
/// (RFC 3550 wants them unpredictable, not cryptographic).
pub(crate) fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}
