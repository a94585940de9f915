//! SDP offer/answer for one audio stream (RFC 4566, RFC 3264): read the
//! caller's offer with named limits, choose PCMU or PCMA at 8 kHz and
//! telephone-event (RFC 4733), and write the answer.

use std::net::IpAddr;

use thiserror::Error;

/// Largest SDP body accepted (a phone offer is well under 2 KiB).
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// Most media sections considered.
pub const MAX_MEDIA: usize = 16;

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Body over [`MAX_SDP_BYTES`].
    #[error("SDP body of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_MEDIA`] m= lines.
    #[error("SDP has more than {0} media sections")]
    TooManyMedia(usize),
    /// A line that is not `x=value`, or a field that does not parse.
    #[error("SDP line {line}: {reason}: {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line, cut to 80 characters.
        text: String,
    },
    /// No audio stream with a port.
    #[error("SDP offers no active audio stream")]
    NoAudio,
    /// No usable address for the audio stream.
    #[error("SDP audio stream has no connection address (c=)")]
    NoAddress,
    /// Neither PCMU nor PCMA offered.
    #[error("SDP offers none of our codecs (PCMU/8000, PCMA/8000); offered payload types: {0:?}")]
    NoCommonCodec(Vec<u8>),
}

/// Our audio codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 mu-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// The static payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Stream direction (RFC 3264 section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The offerer only sends (it put us on hold: we only receive).
    SendOnly,
    /// The offerer only receives.
    RecvOnly,
    /// On hold both ways.
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the side holding this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side holding this direction expects media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction we answer with for this offered one.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What was agreed: where to send, in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The far end's RTP address.
    pub remote_ip: IpAddr,
    /// The far end's RTP port.
    pub remote_port: u16,
    /// The voice codec.
    pub codec: Codec,
    /// The offerer's telephone-event payload type, if it offered one at 8 kHz.
    pub dtmf_payload_type: Option<u8>,
    /// The offered direction.
    pub direction: Direction,
    /// Packetisation time the offer asked for (ms), if any.
    pub ptime: Option<u32>,
}

struct AudioSection {
    port: u16,
    formats: Vec<u8>,
    rtpmap: Vec<(u8, String, u32)>,
    address: Option<IpAddr>,
    direction: Option<Direction>,
    ptime: Option<u32>,
}

fn bad(line: usize, reason: &'static str, text: &str) -> SdpError {
    SdpError::BadLine {
        line,
        reason,
        text: text.chars().take(80).collect(),
    }
}

fn parse_connection(line: usize, value: &str) -> Result<Option<IpAddr>, SdpError> {
    let mut parts = value.split_whitespace();
    let (Some("IN"), Some(kind), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(line, "expected c=IN IP4|IP6 <address>", value));
    };
    if kind != "IP4" && kind != "IP6" {
        return Err(bad(line, "unknown address type", value));
    }
    // Multicast TTL suffixes ("/127") are cut; an FQDN is not resolved here.
    let addr = addr.split('/').next().unwrap_or(addr);
    Ok(addr.parse().ok())
}

/// Reads an offer and chooses what to answer, preferring `prefer` when both
/// G.711 laws are offered, otherwise following the offerer's order.
pub fn negotiate(offer: &str, prefer: Codec) -> Result<Negotiated, SdpError> {
    if offer.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge {
            len: offer.len(),
            max: MAX_SDP_BYTES,
        });
    }
    let mut session_addr = None;
    let mut session_dir = None;
    let mut sections: Vec<AudioSection> = Vec::new();
    let mut in_audio = false;
    let mut media_count = 0;
    for (i, raw) in offer.lines().enumerate() {
        let n = i + 1;
        let text = raw.trim_end_matches('\r');
        if text.is_empty() {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(bad(n, "not a type=value line", text));
        };
        if key.len() != 1 {
            return Err(bad(n, "type must be one letter", text));
        }
        let in_media = media_count > 0;
        match key {
            "m" => {
                media_count += 1;
                if media_count > MAX_MEDIA {
                    return Err(SdpError::TooManyMedia(MAX_MEDIA));
                }
                let mut parts = value.split_whitespace();
                let (Some(kind), Some(port), Some(proto)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(n, "expected m=<media> <port> <proto> <fmt>...", text));
                };
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad(n, "port is not 0..=65535", text))?;
                in_audio = kind == "audio" && proto.starts_with("RTP/AVP");
                if in_audio {
                    let formats = parts
                        .filter_map(|f| f.parse::<u8>().ok())
                        .filter(|f| *f < 128)
                        .collect();
                    sections.push(AudioSection {
                        port,
                        formats,
                        rtpmap: Vec::new(),
                        address: None,
                        direction: None,
                        ptime: None,
                    });
                }
            }
            "c" => {
                let addr = parse_connection(n, value)?;
                if !in_media {
                    session_addr = addr;
                } else if in_audio {
                    if let Some(s) = sections.last_mut() {
                        s.address = addr;
                    }
                }
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if !in_media {
                    if dir.is_some() {
                        session_dir = dir;
                    }
                    continue;
                }
                let Some(s) = sections.last_mut().filter(|_| in_audio) else {
                    continue;
                };
                if dir.is_some() {
                    s.direction = dir;
                } else if name == "rtpmap" {
                    let mut it = arg.splitn(2, ' ');
                    let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                    let enc = it.next().unwrap_or("");
                    let mut enc_parts = enc.split('/');
                    let codec = enc_parts.next().unwrap_or("").to_ascii_uppercase();
                    let rate = enc_parts.next().and_then(|r| r.parse::<u32>().ok());
                    match (pt, rate) {
                        (Some(pt), Some(rate)) => s.rtpmap.push((pt, codec, rate)),
                        _ => return Err(bad(n, "rtpmap is not <pt> <name>/<rate>", text)),
                    }
                } else if name == "ptime" {
                    s.ptime = arg.trim().parse().ok();
                }
            }
            _ => {}
        }
    }
    let audio = sections
        .into_iter()
        .find(|s| s.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let remote_ip = audio.address.or(session_addr).ok_or(SdpError::NoAddress)?;
    let name_of = |pt: u8| -> Option<(String, u32)> {
        audio
            .rtpmap
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|(_, n, r)| (n.clone(), *r))
    };
    let codec_of = |pt: u8| -> Option<Codec> {
        match name_of(pt) {
            Some((n, 8000)) if n == "PCMU" => Some(Codec::Pcmu),
            Some((n, 8000)) if n == "PCMA" => Some(Codec::Pcma),
            Some(_) => None,
            None if pt == 0 => Some(Codec::Pcmu),
            None if pt == 8 => Some(Codec::Pcma),
            None => None,
        }
    };
    let offered: Vec<Codec> = audio
        .formats
        .iter()
        .filter_map(|pt| codec_of(*pt))
        .collect();
    let codec = if offered.contains(&prefer) {
        prefer
    } else {
        *offered
            .first()
            .ok_or_else(|| SdpError::NoCommonCodec(audio.formats.clone()))?
    };
    let dtmf_payload_type = audio
        .formats
        .iter()
        .copied()
        .find(|pt| name_of(*pt).is_some_and(|(n, r)| n == "TELEPHONE-EVENT" && r == 8000));
    Ok(Negotiated {
        remote_ip,
        remote_port: audio.port,
        codec,
        dtmf_payload_type,
        direction: audio
            .direction
            .or(session_dir)
            .unwrap_or(Direction::SendRecv),
        ptime: audio.ptime,
    })
}

/// Writes our SDP: an answer (the one negotiated codec and the offerer's
/// telephone-event type) or our own offer for an outbound call (both laws, in
/// order of preference, and our telephone-event type).
pub fn write(
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    codecs: &[Codec],
    dtmf_payload_type: Option<u8>,
    direction: Direction,
) -> String {
    let ip_kind = if local_ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut fmts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(pt) = dtmf_payload_type {
        fmts.push(pt.to_string());
    }
    let mut s = format!(
        "v=0\r\no=voiceblock {session_id} {version} IN {ip_kind} {local_ip}\r\ns=voiceblock\r\nc=IN {ip_kind} {local_ip}\r\nt=0 0\r\nm=audio {local_port} RTP/AVP {}\r\n",
        fmts.join(" ")
    );
    for c in codecs {
        s.push_str(&format!(
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            c.name()
        ));
    }
    if let Some(pt) = dtmf_payload_type {
        s.push_str(&format!(
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        ));
    }
    s.push_str(&format!("a=ptime:20\r\na={}\r\n", direction.attr()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BARESIP: &str = "v=0\r\no=- 123 456 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn answers_a_baresip_offer() {
        let n = negotiate(BARESIP, Codec::Pcmu).unwrap();
        assert_eq!(n.remote_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(n.remote_port, 10000);
        assert_eq!(
            n.codec,
            Codec::Pcmu,
            "preference wins when both are offered"
        );
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(n.ptime, Some(20));
        let answer = write(
            n.remote_ip,
            20000,
            1,
            1,
            &[n.codec],
            n.dtmf_payload_type,
            n.direction.answer(),
        );
        let back = negotiate(&answer, Codec::Pcma).unwrap();
        assert_eq!(
            (back.remote_port, back.codec, back.dtmf_payload_type),
            (20000, Codec::Pcmu, Some(101))
        );
    }

    #[test]
    fn sipp_offer_without_rtpmap_and_hold() {
        let offer = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\na=sendonly\n";
        let n = negotiate(offer, Codec::Pcma).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.direction, Direction::SendOnly);
        assert_eq!(n.direction.answer(), Direction::RecvOnly);
        assert_eq!(n.dtmf_payload_type, None);
    }

    #[test]
    fn media_level_address_and_second_stream() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\nm=audio 0 RTP/AVP 0\r\nm=audio 7000 RTP/AVP 8\r\nc=IN IP4 127.0.0.2\r\n";
        let n = negotiate(offer, Codec::Pcmu).unwrap();
        assert_eq!((n.remote_port, n.codec), (7000, Codec::Pcma));
        assert_eq!(n.remote_ip, "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_offers_are_named() {
        let cases: &[(&str, &str)] = &[
            (
                "v=0\r\nm=audio 5000 RTP/AVP 18\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:18 G729/8000\r\n",
                "none of our codecs",
            ),
            ("v=0\r\nm=audio 5000 RTP/AVP 0\r\n", "no connection address"),
            (
                "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n",
                "no active audio",
            ),
            ("v=0\r\ngarbage\r\n", "line 2: not a type=value line"),
            ("v=0\r\nm=audio 99999 RTP/AVP 0\r\n", "port is not"),
            ("v=0\r\nc=IN IPX foo\r\n", "unknown address type"),
            (
                "v=0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:zero PCMU\r\n",
                "rtpmap is not",
            ),
        ];
        for (offer, want) in cases {
            let err = negotiate(offer, Codec::Pcmu).unwrap_err().to_string();
            assert!(err.contains(want), "{offer:?}: {err}");
        }
        let big = "a=x\r\n".repeat(MAX_SDP_BYTES);
        assert!(negotiate(&big, Codec::Pcmu)
            .unwrap_err()
            .to_string()
            .contains("16384-byte limit"));
        let many = format!("v=0\r\n{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
        assert_eq!(
            negotiate(&many, Codec::Pcmu),
            Err(SdpError::TooManyMedia(MAX_MEDIA))
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "(?s).{0,400}") {
            let _ = negotiate(&text, Codec::Pcmu);
        }

        #[test]
        fn never_panics_on_sdp_like_lines(lines in proptest::collection::vec("[vocmat]=[ -~]{0,40}", 0..20)) {
            let _ = negotiate(&lines.join("\r\n"), Codec::Pcma);
        }
    }
}
