//! One call's RTP media: a UDP socket pair (RTP, RTCP), a paced sender that
//! drains the robot's [`Playout`] every 20 ms, and a receiver that reorders
//! caller packets through the jitter buffer and hands the call loop one
//! [`LineEvent::Audio`] frame per tick (concealment for losses), plus digits
//! from RFC 4733 events.
//!
//! One task owns both sockets; the sender's clock is the vb-rtp [`Pacer`]
//! (deadlines from the start instant, so no drift over a long call).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vb_audio::g711::Law;
use vb_audio::line::{LineEvent, Playout};
use vb_audio::Frame8k;
use vb_rtp::jitter::{JitterBuffer, JitterConfig, Playout as JitterOut};
use vb_rtp::pacer::Pacer;
use vb_rtp::packet::{self, RtpHeader};
use vb_rtp::rtcp::{self, SenderInfo};
use vb_rtp::sdp::{Codec, Direction};
use vb_rtp::stats::RecvStats;
use vb_rtp::DtmfReceiver;

use crate::error::SipError;

/// Capacity of the line-event channel to the call loop: 5 s of frames. Full
/// policy: drop the newest frame and count it (the call loop is wedged or
/// far behind; the media task must keep its 20 ms clock).
pub const LINE_CHANNEL: usize = 250;
/// Robot speech the playout queue holds: 60 s at 8 kHz.
pub const PLAYOUT_SAMPLES: usize = 8000 * 60;
/// Largest datagram read; anything longer is truncated and dropped as bad.
const MAX_DATAGRAM: usize = 2048;
/// Interval between RTCP reports (RFC 3550 minimum for a two-party session).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// Where the far end is and what we send it; changed by re-INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaParams {
    /// The far end's RTP address from its SDP (replaced by the source of its
    /// packets once they arrive: symmetric RTP).
    pub remote: SocketAddr,
    /// Voice codec.
    pub codec: Codec,
    /// The far end's telephone-event payload type.
    pub dtmf_payload_type: Option<u8>,
    /// Our direction: on hold (`sendonly`/`inactive` from us) we send nothing
    /// and do not expect packets.
    pub direction: Direction,
}

/// Counters of one media session, readable while it runs.
#[derive(Debug, Default)]
pub struct MediaStats {
    /// RTP packets sent.
    pub sent: AtomicU64,
    /// Voice (non-silence) frames sent.
    pub voice_sent: AtomicU64,
    /// RTP packets received and accepted.
    pub received: AtomicU64,
    /// Datagrams that were not valid RTP, or of an unknown payload type.
    pub bad: AtomicU64,
    /// Frames concealed because their packet was lost or late.
    pub concealed: AtomicU64,
    /// Frames dropped because the call loop was behind.
    pub line_dropped: AtomicU64,
    /// Digits received as RFC 4733 events.
    pub dtmf: AtomicU64,
    /// RTCP reports sent.
    pub rtcp_sent: AtomicU64,
    /// RTCP reports received.
    pub rtcp_received: AtomicU64,
    /// Worst lateness of a send tick (µs).
    pub max_send_late_us: AtomicU64,
    /// Packets counted lost by the receive statistics (RFC 3550).
    pub lost: AtomicU64,
    /// Interarrival jitter (RFC 3550), in µs.
    pub jitter_us: AtomicU64,
}

/// A bound RTP/RTCP socket pair, before the far end is known.
#[derive(Debug)]
pub struct RtpSocket {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    local: SocketAddr,
}

impl RtpSocket {
    /// Binds an even RTP port and the next odd one for RTCP, in `ports`.
    pub async fn bind(ip: IpAddr, ports: (u16, u16)) -> Result<Self, SipError> {
        let (low, high) = ports;
        let first = low + (low % 2);
        let span = u32::from(high.saturating_sub(first)) / 2 + 1;
        let offset = crate::random_u32() % span.max(1);
        for i in 0..span {
            let port = first + (((offset + i) % span) * 2) as u16;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)).await else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await else {
                continue;
            };
            let local = rtp.local_addr().map_err(|source| SipError::Bind {
                addr: SocketAddr::new(ip, port),
                source,
            })?;
            return Ok(RtpSocket { rtp, rtcp, local });
        }
        Err(SipError::NoMediaPort { ip, low, high })
    }

    /// The local RTP address (for our SDP).
    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

/// A running media session: the call loop's ends of it.
#[derive(Debug)]
pub struct MediaSession {
    /// Caller frames and digits, one frame per 20 ms.
    pub events: mpsc::Receiver<LineEvent>,
    /// A sender into the same channel, for digits arriving by SIP INFO.
    pub events_tx: mpsc::Sender<LineEvent>,
    /// Robot speech to send.
    pub playout: Arc<Playout>,
    /// Counters.
    pub stats: Arc<MediaStats>,
    /// Re-INVITE changes (hold, codec, address).
    pub params: watch::Sender<MediaParams>,
    /// Set when no packet arrived for the RTP timeout while not on hold.
    pub timed_out: CancellationToken,
}

/// Starts the media task for a call; it runs until `cancel`.
pub fn start(
    socket: RtpSocket,
    params: MediaParams,
    rtp_timeout: Duration,
    cancel: CancellationToken,
) -> MediaSession {
    let (events_tx, events) = mpsc::channel(LINE_CHANNEL);
    let playout = Arc::new(Playout::new(PLAYOUT_SAMPLES));
    let stats = Arc::new(MediaStats::default());
    let (params_tx, params_rx) = watch::channel(params);
    let timed_out = CancellationToken::new();
    let task = MediaTask {
        socket,
        params: params_rx,
        line: events_tx.clone(),
        playout: playout.clone(),
        stats: stats.clone(),
        rtp_timeout,
        timed_out: timed_out.clone(),
    };
    tokio::spawn(task.run(cancel));
    MediaSession {
        events,
        events_tx,
        playout,
        stats,
        params: params_tx,
        timed_out,
    }
}

struct MediaTask {
    socket: RtpSocket,
    params: watch::Receiver<MediaParams>,
    line: mpsc::Sender<LineEvent>,
    playout: Arc<Playout>,
    stats: Arc<MediaStats>,
    rtp_timeout: Duration,
    timed_out: CancellationToken,
}

fn law(codec: Codec) -> Law {
    match codec {
        Codec::Pcmu => Law::Mu,
        Codec::Pcma => Law::A,
    }
}

/// NTP timestamp (RFC 3550 §4) of now.
fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

impl MediaTask {
    async fn run(mut self, cancel: CancellationToken) {
        let start = Instant::now();
        let mut pacer = Pacer::g711(start);
        let ssrc = crate::random_u32();
        let mut seq: u16 = crate::random_u32() as u16;
        let ts_base = crate::random_u32();
        let mut params = *self.params.borrow();
        let mut remote = params.remote;
        let mut rtcp_remote = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
        let mut latched = false;
        let mut jitter = JitterBuffer::new(JitterConfig::default());
        let mut recv_stats = RecvStats::new();
        let mut remote_ssrc = None;
        let mut dtmf = DtmfReceiver::new();
        let mut last_packet = Instant::now();
        let mut last_frame = Frame8k::default();
        let mut concealed_run = 0u32;
        let mut out_frame = Frame8k::default();
        let mut payload = [0u8; 160];
        let mut datagram = Vec::with_capacity(packet::MAX_PAYLOAD + 12);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut rtcp_buf = vec![0u8; MAX_DATAGRAM];
        let mut next_rtcp = start + RTCP_INTERVAL;
        let mut octets: u32 = 0;
        let mut packets: u32 = 0;
        let mut last_sr: Option<(u32, Instant)> = None;

        loop {
            let deadline = tokio::time::Instant::from_std(pacer.deadline());
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                changed = self.params.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let new = *self.params.borrow_and_update();
                    if new.remote != params.remote {
                        remote = new.remote;
                        rtcp_remote = SocketAddr::new(remote.ip(), remote.port().wrapping_add(1));
                        latched = false;
                    }
                    params = new;
                    last_packet = Instant::now();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    let late = pacer.sent(now);
                    let late_us = late.as_micros() as u64;
                    self.stats.max_send_late_us.fetch_max(late_us, Ordering::Relaxed);
                    // A tick more than 100 ms late (the box was starved):
                    // skip the missed frames rather than burst them.
                    pacer.catch_up(now, Duration::from_millis(100));

                    // Send: one frame of robot speech or silence.
                    let voice = self.playout.next_frame(&mut out_frame, now);
                    if params.direction.sends() {
                        law(params.codec).encode_into(&out_frame.0, &mut payload);
                        let header = RtpHeader {
                            marker: false,
                            payload_type: params.codec.payload_type(),
                            sequence: seq,
                            timestamp: ts_base.wrapping_add(pacer.timestamp()),
                            ssrc,
                        };
                        datagram.clear();
                        packet::write(&header, &payload, &mut datagram);
                        if self.socket.rtp.send_to(&datagram, remote).await.is_ok() {
                            seq = seq.wrapping_add(1);
                            packets = packets.wrapping_add(1);
                            octets = octets.wrapping_add(payload.len() as u32);
                            self.stats.sent.fetch_add(1, Ordering::Relaxed);
                            if voice {
                                self.stats.voice_sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }

                    // Receive: one frame out of the jitter buffer per tick.
                    let frame = match jitter.pop() {
                        JitterOut::Frame(bytes) => {
                            let mut f = Frame8k::default();
                            law(params.codec).decode_into(&bytes, &mut f.0);
                            last_frame = f;
                            concealed_run = 0;
                            Some(f)
                        }
                        JitterOut::Lost => {
                            // Concealment: repeat the last frame, fading out
                            // over three frames, then silence.
                            self.stats.concealed.fetch_add(1, Ordering::Relaxed);
                            concealed_run += 1;
                            let gain = match concealed_run {
                                1 => 0.7,
                                2 => 0.4,
                                3 => 0.2,
                                _ => 0.0,
                            };
                            let mut f = Frame8k::default();
                            for (o, s) in f.0.iter_mut().zip(last_frame.0.iter()) {
                                *o = (f32::from(*s) * gain) as i16;
                            }
                            Some(f)
                        }
                        JitterOut::Idle => Some(Frame8k::default()),
                    };
                    if let Some(f) = frame {
                        if self.line.try_send(LineEvent::Audio(f)).is_err() {
                            self.stats.line_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }

                    let on_hold = !params.direction.receives();
                    if !on_hold && now.duration_since(last_packet) > self.rtp_timeout {
                        self.timed_out.cancel();
                    }

                    if now >= next_rtcp {
                        next_rtcp = now + RTCP_INTERVAL;
                        let (lsr, dlsr) = match last_sr {
                            Some((mid, at)) => {
                                let d = now.duration_since(at);
                                (mid, ((d.as_secs_f64()) * 65536.0) as u32)
                            }
                            None => (0, 0),
                        };
                        let block = recv_stats.report_block(lsr, dlsr);
                        let sender = (packets > 0).then(|| SenderInfo {
                            ntp: ntp_now(),
                            rtp_timestamp: ts_base.wrapping_add(pacer.timestamp()),
                            packets,
                            octets,
                        });
                        let report = rtcp::report(ssrc, sender, block.as_ref(), "voiceblock");
                        if self.socket.rtcp.send_to(&report, rtcp_remote).await.is_ok() {
                            self.stats.rtcp_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        self.stats.lost.store(recv_stats.lost(), Ordering::Relaxed);
                        self.stats.jitter_us.store((recv_stats.jitter() / 8.0 * 1000.0) as u64, Ordering::Relaxed);
                    }
                }
                got = self.socket.rtp.recv_from(&mut buf) => {
                    let Ok((len, from)) = got else { continue };
                    let Ok(pkt) = packet::parse(&buf[..len]) else {
                        self.stats.bad.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let h = pkt.header;
                    // Symmetric RTP: answer where the far end sends from
                    // (NAT), once per remote address change.
                    if !latched && from != remote && from.ip() == remote.ip() || !latched && remote.ip().is_unspecified() {
                        remote = from;
                        rtcp_remote = SocketAddr::new(from.ip(), from.port().wrapping_add(1));
                    }
                    latched = true;
                    if Some(h.payload_type) == params.dtmf_payload_type {
                        if let Ok(Some(digit)) = dtmf.on_packet(h.timestamp, pkt.payload) {
                            self.stats.dtmf.fetch_add(1, Ordering::Relaxed);
                            if self.line.try_send(LineEvent::Dtmf(digit)).is_err() {
                                tracing::warn!(digit = %digit, "call loop behind: digit dropped");
                            }
                        }
                        last_packet = Instant::now();
                        continue;
                    }
                    if h.payload_type != Codec::Pcmu.payload_type() && h.payload_type != Codec::Pcma.payload_type() {
                        self.stats.bad.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if pkt.payload.len() != 160 {
                        // Only 20 ms packetisation is negotiated (ptime 20).
                        self.stats.bad.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if remote_ssrc != Some(h.ssrc) {
                        if remote_ssrc.is_some() {
                            // A new source (transfer, re-INVITE): restart the
                            // buffer rather than treat it as a huge jump.
                            jitter = JitterBuffer::new(JitterConfig::default());
                        }
                        remote_ssrc = Some(h.ssrc);
                    }
                    let arrival = (start.elapsed().as_micros() as u64 * 8 / 1000) as u32;
                    if let Some(ext) = recv_stats.on_packet(h.ssrc, h.sequence, h.timestamp, arrival) {
                        jitter.push(ext, pkt.payload);
                    }
                    last_packet = Instant::now();
                    self.stats.received.fetch_add(1, Ordering::Relaxed);
                }
                got = self.socket.rtcp.recv_from(&mut rtcp_buf) => {
                    let Ok((len, _)) = got else { continue };
                    match rtcp::parse(&rtcp_buf[..len]) {
                        Ok(r) => {
                            self.stats.rtcp_received.fetch_add(1, Ordering::Relaxed);
                            if let Some((_, mid)) = r.sender_report {
                                last_sr = Some((mid, Instant::now()));
                            }
                        }
                        Err(_) => {
                            self.stats.bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        // Leave the counters readable after the call.
        self.stats.lost.store(recv_stats.lost(), Ordering::Relaxed);
    }
}
