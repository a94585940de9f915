//! Why the telephony side failed, with the address, peer or limit involved.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// Telephony errors. Per-call failures end that call only; only
/// [`SipError::Bind`] and [`SipError::Config`] stop the daemon at start.
#[derive(Debug, Error)]
pub enum SipError {
    /// A socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Every RTP port pair in the configured range is taken.
    #[error(
        "no free RTP port pair on {ip} in {low}-{high} (one pair per call: widen sip.rtp_ports)"
    )]
    NoMediaPort {
        /// Media address.
        ip: IpAddr,
        /// Range start.
        low: u16,
        /// Range end.
        high: u16,
    },
    /// The configuration cannot work.
    #[error("sip config: {0}")]
    Config(String),
    /// A SIP URI did not parse.
    #[error("bad SIP URI {uri:?}: {reason}")]
    BadUri {
        /// The text given.
        uri: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The SIP stack reported an error (boxed: it is large and cold).
    #[error("SIP stack: {0}")]
    Stack(Box<rsipstack::Error>),
    /// The far end's SDP could not be used.
    #[error("SDP from {peer}")]
    Sdp {
        /// Who sent it.
        peer: String,
        /// Why.
        source: vb_rtp::SdpError,
    },
    /// An outbound call or a transfer was answered with a failure.
    #[error("{what} rejected by the far end: {code} {reason}")]
    Rejected {
        /// "call to sip:..." or "transfer to sip:...".
        what: String,
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A request got no final answer in time.
    #[error("{what}: no answer within {seconds} s")]
    Timeout {
        /// What was attempted.
        what: String,
        /// The limit.
        seconds: u64,
    },
    /// The call already ended.
    #[error("the call has ended")]
    CallEnded,
    /// The agent is shutting down or at its call limit.
    #[error("not accepting calls: {0}")]
    NotAccepting(&'static str),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(Box::new(e))
    }
}
