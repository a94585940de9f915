//! RTCP (RFC 3550 section 6): the sender and receiver reports the box sends
//! every few seconds, and a never-panicking reader of what the far end sends
//! (its sender reports' timestamps feed our LSR/DLSR; BYE ends the stream).

use thiserror::Error;

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// Our sending side, for a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit fixed point seconds since 1900) of now.
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload octets sent so far.
    pub octets: u32,
}

/// Why an RTCP datagram was not read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Shorter than its header or its declared length.
    #[error("RTCP packet truncated: {len} bytes, needs {need}")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes declared.
        need: usize,
    },
    /// Version field is not 2.
    #[error("RTCP version {0} is not supported (only 2)")]
    BadVersion(u8),
}

/// What a received compound packet told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// From a sender report: the sender's SSRC and the middle 32 bits of its NTP time.
    pub sender_report: Option<(u32, u32)>,
    /// Report blocks about our stream (from SR or RR).
    pub blocks: Vec<ReportBlock>,
    /// A BYE was included.
    pub bye: bool,
}

fn push_block(out: &mut Vec<u8>, b: &ReportBlock) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    out.push(b.fraction_lost);
    out.extend_from_slice(&(b.cumulative_lost & 0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.lsr.to_be_bytes());
    out.extend_from_slice(&b.dlsr.to_be_bytes());
}

fn push_sdes(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let mut body = Vec::with_capacity(8 + cname.len());
    body.extend_from_slice(&ssrc.to_be_bytes());
    body.push(1); // CNAME
    body.push(cname.len() as u8);
    body.extend_from_slice(cname);
    body.push(0); // end of items
    while body.len() % 4 != 0 {
        body.push(0);
    }
    out.push(0x81);
    out.push(202);
    out.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&body);
}

/// A compound report: SR when we have sent media (`sender` set), RR otherwise,
/// with at most one report block, then SDES CNAME as RFC 3550 requires.
pub fn report(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<&ReportBlock>,
    cname: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    let count = u8::from(block.is_some());
    let words = 1 + if sender.is_some() { 5 } else { 0 } + 6 * usize::from(count);
    out.push(0x80 | count);
    out.push(if sender.is_some() { 200 } else { 201 });
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(s) = sender {
        out.extend_from_slice(&s.ntp.to_be_bytes());
        out.extend_from_slice(&s.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&s.packets.to_be_bytes());
        out.extend_from_slice(&s.octets.to_be_bytes());
    }
    if let Some(b) = block {
        push_block(&mut out, b);
    }
    push_sdes(&mut out, ssrc, cname);
    out
}

fn read_block(b: &[u8]) -> ReportBlock {
    let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    ReportBlock {
        ssrc: word(0),
        fraction_lost: b[4],
        cumulative_lost: u32::from_be_bytes([0, b[5], b[6], b[7]]),
        highest_seq: word(8),
        jitter: word(12),
        lsr: word(16),
        dlsr: word(20),
    }
}

/// Reads a compound RTCP datagram; unknown packet types are skipped.
pub fn parse(buf: &[u8]) -> Result<Received, RtcpError> {
    let mut out = Received::default();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::Truncated {
                len: rest.len(),
                need: 4,
            });
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let count = usize::from(rest[0] & 0x1f);
        let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        if rest.len() < len {
            return Err(RtcpError::Truncated {
                len: rest.len(),
                need: len,
            });
        }
        let body = &rest[4..len];
        let blocks_at = match rest[1] {
            200 if body.len() >= 24 => {
                let ssrc = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let mid = u32::from_be_bytes([body[6], body[7], body[8], body[9]]);
                out.sender_report = Some((ssrc, mid));
                Some(24)
            }
            201 if body.len() >= 4 => Some(4),
            203 => {
                out.bye = true;
                None
            }
            _ => None,
        };
        if let Some(at) = blocks_at {
            for b in body[at..].chunks_exact(24).take(count) {
                out.blocks.push(read_block(b));
            }
        }
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecvStats;
    use proptest::prelude::*;

    #[test]
    fn sender_report_round_trips_with_stats() {
        let mut stats = RecvStats::new();
        for seq in 0..100u16 {
            if seq % 10 != 3 {
                stats.on_packet(0xabc, seq, u32::from(seq) * 160, u32::from(seq) * 160);
            }
        }
        let block = stats.report_block(0x1234_5678, 6554).unwrap();
        assert_eq!(block.cumulative_lost, 10);
        assert_eq!(block.fraction_lost, 25, "10 of 100 lost = 25/256");
        let sender = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 16000,
            packets: 100,
            octets: 16000,
        };
        let bytes = report(0x55, Some(sender), Some(&block), "voiceblock@box");
        assert_eq!(bytes.len() % 4, 0);
        let got = parse(&bytes).unwrap();
        assert_eq!(got.sender_report, Some((0x55, 0x0304_0506)));
        assert_eq!(got.blocks, vec![block]);
        assert!(!got.bye);
        // The next interval had no loss.
        for seq in 100..150u16 {
            stats.on_packet(0xabc, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        assert_eq!(stats.report_block(0, 0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn receiver_report_and_bad_input() {
        let rr = report(1, None, None, "x");
        assert_eq!(rr[1], 201);
        assert_eq!(parse(&rr).unwrap(), Received::default());
        assert_eq!(
            parse(&rr[..6]),
            Err(RtcpError::Truncated { len: 6, need: 8 })
        );
        assert_eq!(parse(&[0x40, 200, 0, 0]), Err(RtcpError::BadVersion(1)));
        let bye = [0x81, 203, 0, 1, 0, 0, 0, 1];
        assert!(parse(&bye).unwrap().bye);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
