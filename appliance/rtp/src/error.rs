//! The crate's error type: every rejection names the limit it broke.

use thiserror::Error;

/// Why a datagram is not an RTP packet we accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Fewer bytes than the header (fixed part, CSRCs, extension) needs.
    #[error("RTP packet too short: {len} bytes, the header needs {need}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the header declares.
        need: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0} is not supported (only version 2, RFC 3550)")]
    BadVersion(u8),
    /// The padding count is zero or longer than the payload.
    #[error("RTP padding of {padding} bytes does not fit a {available}-byte payload")]
    BadPadding {
        /// Padding length from the last byte.
        padding: usize,
        /// Payload bytes available for it.
        available: usize,
    },
    /// The payload is larger than any audio frame we accept.
    #[error("RTP payload of {len} bytes is over the {max}-byte limit")]
    PayloadTooLarge {
        /// Payload bytes.
        len: usize,
        /// The limit ([`crate::MAX_PAYLOAD`]).
        max: usize,
    },
    /// An RFC 4733 event payload shorter than 4 bytes.
    #[error("telephone-event payload too short: {0} bytes, RFC 4733 needs 4")]
    EventTooShort(usize),
    /// An RFC 4733 event code outside the DTMF range 0..=15.
    #[error("telephone-event {0} is not a DTMF event (0..=15)")]
    NotDtmf(u8),
}
