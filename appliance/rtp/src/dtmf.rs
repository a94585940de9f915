//! RFC 4733 telephone events (DTMF) in both directions: parse an event
//! payload, turn a stream of event packets into one digit per key press, and
//! build the packets that send a digit.

use crate::RtpError;

/// One telephone-event payload (RFC 4733 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`.
    pub event: u8,
    /// The E bit: the last packets of the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first four bytes of a payload (more may follow: ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, RtpError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(RtpError::EventTooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The four payload bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The key this event stands for.
    pub fn digit(self) -> Result<char, RtpError> {
        digit_of(self.event)
    }
}

/// The key for a DTMF event code.
pub fn digit_of(event: u8) -> Result<char, RtpError> {
    Ok(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        other => return Err(RtpError::NotDtmf(other)),
    })
}

/// The event code for a key (`0-9 * # A-D`), if it is one.
pub fn event_of(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// Turns event packets into key presses: an event is identified by its RTP
/// timestamp (constant for all its packets, end retransmissions included), so
/// each press is reported once, on its first packet, however many arrive.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    last_timestamp: Option<u32>,
}

impl DtmfReceiver {
    /// A receiver with no event seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns the key on a new press.
    /// Non-DTMF events (tones, flash) are ignored.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Result<Option<char>, RtpError> {
        let event = TelephoneEvent::parse(payload)?;
        if self.last_timestamp == Some(timestamp) {
            return Ok(None);
        }
        self.last_timestamp = Some(timestamp);
        match event.digit() {
            Ok(d) => Ok(Some(d)),
            Err(RtpError::NotDtmf(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The payloads that send one key press lasting `duration_ms`, one per 20 ms
/// packet at 8 kHz, the final (end) payload three times as RFC 4733 section
/// 2.5.1.4 recommends. All share one RTP timestamp; the first carries the marker.
pub fn press(digit: char, duration_ms: u32) -> Option<Vec<TelephoneEvent>> {
    let event = event_of(digit)?;
    let packets = (duration_ms / 20).max(1);
    let mut out = Vec::with_capacity(packets as usize + 2);
    for i in 1..=packets {
        let duration = u16::try_from(i * 160).unwrap_or(u16::MAX);
        let end = i == packets;
        let e = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        };
        out.push(e);
        if end {
            out.push(e);
            out.push(e);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_rfc4733_example() {
        // Event 5, end bit, volume 10, duration 1280.
        let e = TelephoneEvent::parse(&[5, 0x8a, 0x05, 0x00]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 1280
            }
        );
        assert_eq!(e.to_bytes(), [5, 0x8a, 0x05, 0x00]);
        assert_eq!(e.digit(), Ok('5'));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2]),
            Err(RtpError::EventTooShort(2))
        );
        assert_eq!(digit_of(16), Err(RtpError::NotDtmf(16)));
    }

    #[test]
    fn one_digit_per_press_despite_retransmitted_end_packets() {
        let mut rx = DtmfReceiver::new();
        let mut keys = String::new();
        for (ts, digit) in [(1000, '0'), (3000, '#'), (5000, '0')] {
            for e in press(digit, 100).unwrap() {
                if let Some(k) = rx.on_packet(ts, &e.to_bytes()).unwrap() {
                    keys.push(k);
                }
            }
        }
        assert_eq!(keys, "0#0");
    }

    #[test]
    fn press_shape() {
        let p = press('*', 100).unwrap();
        assert_eq!(p.len(), 7);
        assert!(p[..4].iter().all(|e| !e.end));
        assert!(p[4..].iter().all(|e| e.end && e.duration == 800));
        assert!(press('x', 100).is_none());
    }

    #[test]
    fn keys_round_trip() {
        for k in "0123456789*#ABCD".chars() {
            assert_eq!(digit_of(event_of(k).unwrap()), Ok(k));
        }
    }

    proptest! {
        #[test]
        fn receiver_never_panics(ts in any::<u32>(), bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = DtmfReceiver::new().on_packet(ts, &bytes);
        }
    }
}
