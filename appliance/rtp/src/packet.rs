//! RTP packets (RFC 3550 section 5.1): parse a datagram into a header and a
//! borrowed payload, and write one back.

use crate::RtpError;

/// The largest payload accepted: 1200 bytes covers 150 ms of G.711 and keeps
/// every packet inside one Ethernet frame; anything bigger is not a voice packet.
pub const MAX_PAYLOAD: usize = 1200;

/// Fixed header fields we act on (CSRCs and header extensions are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (start of a talkspurt, or the first packet of an event).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8 kHz units for G.711 and telephone-event).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A parsed packet: header and the payload without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload, padding removed.
    pub payload: &'a [u8],
}

/// Parses one datagram. Never panics; every rejection is an [`RtpError`].
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < 12 {
        return Err(RtpError::TooShort {
            len: buf.len(),
            need: 12,
        });
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrc_count = usize::from(buf[0] & 0x0f);
    let mut offset = 12 + 4 * csrc_count;
    if buf.len() < offset {
        return Err(RtpError::TooShort {
            len: buf.len(),
            need: offset,
        });
    }
    if extension {
        if buf.len() < offset + 4 {
            return Err(RtpError::TooShort {
                len: buf.len(),
                need: offset + 4,
            });
        }
        let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
        offset += 4 + 4 * words;
        if buf.len() < offset {
            return Err(RtpError::TooShort {
                len: buf.len(),
                need: offset,
            });
        }
    }
    let mut end = buf.len();
    if padding {
        let available = end - offset;
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > available {
            return Err(RtpError::BadPadding {
                padding: pad,
                available,
            });
        }
        end -= pad;
    }
    let payload = &buf[offset..end];
    if payload.len() > MAX_PAYLOAD {
        return Err(RtpError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(RtpPacket {
        header: RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        },
        payload,
    })
}

/// Writes a version-2 packet without padding, CSRCs or extension into `out`
/// (cleared first, so one buffer serves a whole call without allocating).
pub fn write(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x80);
    out.push((u8::from(header.marker) << 7) | (header.payload_type & 0x7f));
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write(&header(), &[1, 2, 3], &mut buf);
        let p = parse(&buf).unwrap();
        assert_eq!(p.header, header());
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut buf = vec![0x80 | 0x20 | 0x10 | 2, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        buf.extend_from_slice(&[0; 8]); // two CSRCs
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // one-word extension
        buf.extend_from_slice(&[42, 43]); // payload
        buf.extend_from_slice(&[0, 0, 3]); // padding of 3
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload, &[42, 43]);
        assert_eq!(p.header.timestamp, 160);
        assert_eq!(p.header.ssrc, 9);
    }

    #[test]
    fn rejects_bad_input_by_name() {
        assert_eq!(
            parse(&[0x80; 5]),
            Err(RtpError::TooShort { len: 5, need: 12 })
        );
        let mut v1 = vec![0x40; 12];
        v1[1] = 0;
        assert_eq!(parse(&v1), Err(RtpError::BadVersion(1)));
        let mut csrc = vec![0x8f];
        csrc.extend_from_slice(&[0; 20]);
        assert_eq!(parse(&csrc), Err(RtpError::TooShort { len: 21, need: 72 }));
        let mut ext = vec![0x90];
        ext.extend_from_slice(&[0; 11]);
        ext.extend_from_slice(&[0, 0, 0xff, 0xff]);
        assert!(matches!(parse(&ext), Err(RtpError::TooShort { .. })));
        let mut pad = vec![0xa0];
        pad.extend_from_slice(&[0; 11]);
        pad.extend_from_slice(&[1, 9]);
        assert_eq!(
            parse(&pad),
            Err(RtpError::BadPadding {
                padding: 9,
                available: 2
            })
        );
        let mut huge = vec![0x80];
        huge.extend_from_slice(&[0; 11]);
        huge.extend_from_slice(&vec![0xff; MAX_PAYLOAD + 1]);
        assert_eq!(
            parse(&huge),
            Err(RtpError::PayloadTooLarge {
                len: MAX_PAYLOAD + 1,
                max: MAX_PAYLOAD
            })
        );
        let err = parse(&huge).unwrap_err().to_string();
        assert!(err.contains("1200-byte limit"), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_written_packet_parses_back(
            marker in any::<bool>(), pt in 0u8..128, seq in any::<u16>(),
            ts in any::<u32>(), ssrc in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..MAX_PAYLOAD),
        ) {
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let mut buf = Vec::new();
            write(&h, &payload, &mut buf);
            let p = parse(&buf).unwrap();
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
