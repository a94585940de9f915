//! The media session against a raw UDP peer on loopback: paced sending with
//! RFC 3550 numbering, reordering through the jitter buffer, RFC 4733
//! digits, the RTP timeout, RTCP reports, symmetric RTP.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vb_audio::g711::Law;
use vb_audio::line::LineEvent;
use vb_rtp::packet::{self, RtpHeader};
use vb_rtp::sdp::{Codec, Direction};
use vb_sip::{MediaParams, RtpSocket};

fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn params(remote: SocketAddr) -> MediaParams {
    MediaParams {
        remote,
        codec: Codec::Pcmu,
        dtmf_payload_type: Some(101),
        direction: Direction::SendRecv,
    }
}

fn rtp(seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    packet::write(
        &RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 0x1234_5678,
        },
        payload,
        &mut out,
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_paced_numbered_g711_and_plays_the_robot() {
    let (peer, peer_addr) = peer();
    let socket = RtpSocket::bind("127.0.0.1".parse().unwrap(), (41000, 41999))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let session = vb_sip::media::start(
        socket,
        params(peer_addr),
        Duration::from_secs(30),
        cancel.clone(),
    );
    session.playout.push(&[8000i16; 1600]);
    let got = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 2048];
        let mut packets = Vec::new();
        let t0 = Instant::now();
        while packets.len() < 50 {
            let (n, _) = peer.recv_from(&mut buf).expect("RTP from the session");
            let p = packet::parse(&buf[..n]).unwrap();
            packets.push((p.header, p.payload.to_vec(), t0.elapsed()));
        }
        packets
    })
    .await
    .unwrap();
    cancel.cancel();
    for w in got.windows(2) {
        assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
        assert_eq!(w[1].0.timestamp, w[0].0.timestamp.wrapping_add(160));
        assert_eq!(w[1].0.ssrc, w[0].0.ssrc);
    }
    // 49 intervals of 20 ms: one second, whatever the scheduler did.
    let span = got[49].2 - got[0].2;
    assert!(
        span > Duration::from_millis(900),
        "packets came faster than 20 ms apart: {span:?}"
    );
    // Robot speech first (10 frames), then silence.
    let voiced = got
        .iter()
        .filter(|(_, p, _)| Law::Mu.decode(p[0]).abs() > 4000)
        .count();
    assert_eq!(voiced, 10);
    assert!(got
        .iter()
        .all(|(h, p, _)| h.payload_type == 0 && p.len() == 160));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorders_caller_audio_and_reports_digits() {
    let (peer, peer_addr) = peer();
    let socket = RtpSocket::bind("127.0.0.1".parse().unwrap(), (42000, 42999))
        .await
        .unwrap();
    let local = socket.local();
    let cancel = CancellationToken::new();
    let mut session = vb_sip::media::start(
        socket,
        params(peer_addr),
        Duration::from_secs(30),
        cancel.clone(),
    );
    // Frames k = 0..10, each a constant level 100*(k+1), sent with 3 and 4
    // swapped; then digit 5 as three RFC 4733 packets (one event).
    let order = [0u16, 1, 2, 4, 3, 5, 6, 7, 8, 9];
    for k in order {
        let level = 100 * (i16::try_from(k).unwrap() + 1);
        let payload = [Law::Mu.encode(level); 160];
        peer.send_to(&rtp(1000 + k, 160 * u32::from(k), 0, &payload), local)
            .unwrap();
    }
    for end in [false, false, true] {
        let ev = vb_rtp::TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration: 800,
        };
        peer.send_to(&rtp(1010, 1600, 101, &ev.to_bytes()), local)
            .unwrap();
    }
    let mut levels = Vec::new();
    let mut digits = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && (levels.len() < 10 || digits.is_empty()) {
        match tokio::time::timeout(Duration::from_millis(500), session.events.recv()).await {
            Ok(Some(LineEvent::Audio(f))) => {
                let l = f.0[80];
                if l != 0 {
                    levels.push(l);
                }
            }
            Ok(Some(LineEvent::Dtmf(d))) => digits.push(d),
            _ => {}
        }
    }
    cancel.cancel();
    // After the last frame the buffer conceals, then idles: compare the
    // frames that were sent.
    levels.truncate(10);
    let expected: Vec<i16> = (1..=10)
        .map(|k| Law::Mu.decode(Law::Mu.encode(100 * k)))
        .collect();
    assert_eq!(levels, expected, "frames in sequence order");
    assert_eq!(digits, vec!['5'], "one digit for one event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_on_the_wire_ends_the_call_and_rtcp_is_sent() {
    let (peer, peer_addr) = peer();
    let rtcp_peer = UdpSocket::bind(("127.0.0.1", peer_addr.port() + 1));
    let socket = RtpSocket::bind("127.0.0.1".parse().unwrap(), (43000, 43999))
        .await
        .unwrap();
    let local = socket.local();
    let cancel = CancellationToken::new();
    let session = vb_sip::media::start(
        socket,
        params(peer_addr),
        Duration::from_millis(600),
        cancel.clone(),
    );
    peer.send_to(&rtp(1, 0, 0, &[0xff; 160]), local).unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.timed_out.cancelled())
        .await
        .expect("the RTP timeout fired");
    // RTCP after its 5 s interval, when the odd port was free to listen on.
    if let Ok(rtcp) = rtcp_peer {
        rtcp.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
        let got = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 512];
            rtcp.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec())
        })
        .await
        .unwrap()
        .expect("an RTCP report");
        let parsed = vb_rtp::rtcp::parse(&got).expect("valid RTCP");
        assert_eq!(parsed.blocks.len(), 1, "a report block about the caller");
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_rtp_answers_where_the_caller_sends_from() {
    // The SDP names one port, the caller's packets come from another (NAT):
    // the session must send to the second.
    let (_sdp_peer, sdp_addr) = peer();
    let (real, _) = peer();
    let socket = RtpSocket::bind("127.0.0.1".parse().unwrap(), (44000, 44999))
        .await
        .unwrap();
    let local = socket.local();
    let cancel = CancellationToken::new();
    let _session = vb_sip::media::start(
        socket,
        params(sdp_addr),
        Duration::from_secs(30),
        cancel.clone(),
    );
    real.send_to(&rtp(1, 0, 0, &[0xff; 160]), local).unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 512];
        real.recv_from(&mut buf).map(|(n, _)| n)
    })
    .await
    .unwrap();
    cancel.cancel();
    assert_eq!(got.expect("RTP at the latched address"), 172);
}
