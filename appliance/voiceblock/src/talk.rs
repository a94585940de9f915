//! The console's talk page, the daemon's side: a browser's microphone as a
//! phone line. vb-api upgrades the WebSocket and hands over two bounded
//! channels ([`vb_api::TalkSocket`]); here they become the call loop's
//! [`LineEvents`] and [`Line`], with the robot's [`Playout`] paced every
//! 20 ms back to the browser. A session takes an engine set from the pool
//! and a slot of the SIP agent's call limit, exactly like a SIP call, and
//! is kept in the store like one (transport "web").
//!
//! ```text
//!  browser PCM 8 kHz ─► TalkIn ─► TalkEvents (20 ms frames) ─► run_call ─► Playout
//!                                   idle > timeout: line closed      │
//!  browser ◄─ TalkOut (try_send: full drops audio, counts) ◄─ pacer (20 ms) ◄┘
//!          ◄─ {"type":"turn"} from TalkLine::turn_done; {"type":"end"} at hangup
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_api::{TalkIn, TalkOut, TalkRefused, TalkSocket};
use vb_audio::line::{LineEvent, Playout};
use vb_audio::Frame8k;
use vb_call::{
    run_call, CallEngine, CallRecord, EngineConfig, Line, LineEvents, LiveStats, TurnRecord,
};
use vb_sip::{SipAgent, SlotRefused};

use crate::daemon::{unix_ms, Calling, KeptCall};

/// Robot speech queued at most (as on a SIP line: 60 s at 8 kHz).
const PLAYOUT_SAMPLES: usize = 8000 * 60;
/// Samples in one 20 ms frame at 8 kHz.
const FRAME: usize = 160;

/// The daemon's [`vb_api::TalkHandler`].
pub(crate) struct WebTalk {
    calling: Calling,
    agent: SipAgent,
    /// Cancelled when the daemon stops taking calls: sessions hang up.
    stopping: CancellationToken,
    /// A browser that sends no audio for this long is gone.
    idle_timeout: Duration,
    sessions: AtomicU64,
}

impl WebTalk {
    pub(crate) fn new(
        calling: Calling,
        agent: SipAgent,
        stopping: CancellationToken,
        idle_timeout: Duration,
    ) -> WebTalk {
        WebTalk {
            calling,
            agent,
            stopping,
            idle_timeout,
            sessions: AtomicU64::new(0),
        }
    }
}

impl vb_api::TalkHandler for WebTalk {
    fn start(&self, socket: TalkSocket) -> Result<(), TalkRefused> {
        let slot = self.agent.reserve_slot().map_err(|e| match e {
            SlotRefused::Busy { max_calls } => TalkRefused::Busy { limit: max_calls },
            SlotRefused::ShuttingDown => TalkRefused::ShuttingDown,
        })?;
        let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let call_id = format!("web-{}-{n}", unix_ms(SystemTime::now()));
        let c = self.calling.clone();
        let stop = self.stopping.child_token();
        let idle = self.idle_timeout;
        std::thread::Builder::new()
            .name("vb-talk".into())
            .spawn(move || {
                // The slot is held until the session's record is kept.
                let _slot = slot;
                let peer = socket.peer;
                c.sink.status.call_started();
                let result = serve_talk(socket, &call_id, &c, stop, idle);
                c.sink
                    .status
                    .call_ended(result.as_ref().ok().map(|r| (&r.call, &r.live, None)));
                match result {
                    Ok(r) => tracing::info!(%call_id, %peer, end = %r.call.end_reason, turns = r.call.turns.len(), "talk session ended"),
                    Err(e) => tracing::error!(%call_id, %peer, error = %format!("{e:#}"), "talk session failed"),
                }
            })
            .map_err(|e| TalkRefused::Internal {
                what: "starting the session thread",
                detail: e.to_string(),
            })?;
        Ok(())
    }
}

/// What a talk session's record holds: the call loop's record plus the
/// web transport's facts (the SIP record's counterpart).
#[derive(Debug, Serialize)]
pub struct WebCallRecord {
    /// `web-<unix ms>-<n>`.
    pub call_id: String,
    /// Always "web".
    pub transport: &'static str,
    /// Always "web": a browser on the console.
    pub direction: &'static str,
    /// `web:<browser address>`.
    pub from: String,
    /// Unix ms: session started.
    pub started_ms: u64,
    /// Unix ms: ended.
    pub ended_ms: u64,
    /// Robot audio messages not sent because the browser was behind.
    pub audio_dropped_to_browser: u64,
    /// Barge-ins, echo suppressed, digits.
    pub live: LiveStats,
    /// Turns, transcript, timings, lead, end reason.
    #[serde(flatten)]
    pub call: CallRecord,
}

/// The browser-bound half, shared by the pacer and the line.
struct ToBrowser {
    tx: mpsc::Sender<TalkOut>,
    audio_dropped: AtomicU64,
    text_dropped: AtomicU64,
}

impl ToBrowser {
    /// Never waits: a full queue drops (audio is counted; a dropped event
    /// is logged, the browser being that far behind).
    fn audio(&self, frame: &Frame8k) {
        let bytes: Vec<u8> = frame.0.iter().flat_map(|s| s.to_le_bytes()).collect();
        if self.tx.try_send(TalkOut::Audio(bytes)).is_err() {
            self.audio_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn event(&self, value: serde_json::Value) {
        if self.tx.try_send(TalkOut::Text(value.to_string())).is_err() {
            self.text_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "talk session: an event for the browser was dropped (browser behind or gone)"
            );
        }
    }

    fn close(&self, reason: &str) {
        let _ = self.tx.try_send(TalkOut::Close(reason.to_string()));
    }
}

/// Sends the robot's speech to the browser at the line's pace.
async fn pace(playout: Arc<Playout>, out: Arc<ToBrowser>, done: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut frame = Frame8k::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if playout.next_frame(&mut frame, Instant::now()) {
                    out.audio(&frame);
                }
            }
            () = done.cancelled() => break,
        }
    }
}

/// The end of a session, once known: by the robot (hangup), the browser
/// (its hangup message or leaving), the idle timer, or the daemon stopping.
#[derive(Default)]
struct Ending {
    over: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Ending {
    fn set(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.to_string());
        }
        self.over.store(true, Ordering::SeqCst);
    }

    fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The browser's audio as 20 ms line frames.
struct TalkEvents {
    rx: mpsc::Receiver<TalkIn>,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
    idle: Duration,
    ending: Arc<Ending>,
    pending: Vec<i16>,
    /// A byte left over from an odd-length message.
    odd: Option<u8>,
}

impl TalkEvents {
    fn frame(&mut self) -> Option<LineEvent> {
        if self.pending.len() < FRAME {
            return None;
        }
        let mut f = Frame8k::default();
        f.0.copy_from_slice(&self.pending[..FRAME]);
        self.pending.drain(..FRAME);
        Some(LineEvent::Audio(f))
    }
}

impl LineEvents for TalkEvents {
    fn next_event(&mut self) -> Option<LineEvent> {
        loop {
            if self.ending.over.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(f) = self.frame() {
                return Some(f);
            }
            let (rx, stop, idle) = (&mut self.rx, &self.stop, self.idle);
            let received = self.runtime.block_on(async move {
                tokio::select! {
                    m = tokio::time::timeout(idle, rx.recv()) => Some(m),
                    () = stop.cancelled() => None,
                }
            });
            match received {
                None => {
                    self.ending.set("shutdown");
                    return None;
                }
                Some(Err(_)) => {
                    tracing::info!(idle = ?self.idle, "talk session: no audio from the browser; ending");
                    self.ending.set("media_timeout");
                    return None;
                }
                Some(Ok(None)) => {
                    self.ending.set("caller_hung_up");
                    return None;
                }
                Some(Ok(Some(TalkIn::Audio(bytes)))) => {
                    let mut bytes = bytes.as_slice();
                    if let Some(first) = self.odd.take() {
                        if let Some((&second, rest)) = bytes.split_first() {
                            self.pending.push(i16::from_le_bytes([first, second]));
                            bytes = rest;
                        }
                    }
                    let chunks = bytes.chunks_exact(2);
                    self.odd = chunks.remainder().first().copied();
                    self.pending
                        .extend(chunks.map(|c| i16::from_le_bytes([c[0], c[1]])));
                }
                Some(Ok(Some(TalkIn::Text(text)))) => {
                    let kind = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)));
                    if kind.as_deref() == Some("hangup") {
                        self.ending.set("caller_hung_up");
                        return None;
                    }
                }
            }
        }
    }
}

/// The session's call control.
struct TalkLine {
    out: Arc<ToBrowser>,
    ending: Arc<Ending>,
}

impl Line for TalkLine {
    fn hangup(&self, reason: &str) {
        self.ending.set(reason);
        self.out.event(json!({ "type": "end", "reason": reason }));
        self.out.close(reason);
    }

    fn transfer(&self, _target: &str) -> Result<(), String> {
        Err("the talk page cannot be transferred".into())
    }

    fn end_reason(&self) -> Option<String> {
        self.ending.reason()
    }

    fn turn_done(&self, turn: &TurnRecord) {
        self.out.event(json!({ "type": "turn", "turn": turn }));
    }
}

/// Runs the robot on one browser session (blocking: a thread of its own)
/// and keeps its record.
fn serve_talk(
    socket: TalkSocket,
    call_id: &str,
    c: &Calling,
    stop: CancellationToken,
    idle: Duration,
) -> Result<WebCallRecord> {
    let TalkSocket {
        from_browser,
        to_browser,
        peer,
    } = socket;
    let started = SystemTime::now();
    let out = Arc::new(ToBrowser {
        tx: to_browser,
        audio_dropped: AtomicU64::new(0),
        text_dropped: AtomicU64::new(0),
    });
    let ending = Arc::new(Ending::default());
    let playout = Arc::new(Playout::new(PLAYOUT_SAMPLES));
    let line = TalkLine {
        out: out.clone(),
        ending: ending.clone(),
    };
    let mut engines = match c.pool.take() {
        Ok(e) => e,
        Err(e) => {
            out.event(
                json!({ "type": "error", "message": "the robot's engines are not available" }),
            );
            line.hangup("engines unavailable");
            return Err(e);
        }
    };
    // The robot in force when the session starts.
    let robot = c.robot.get();
    out.event(json!({
        "type": "hello",
        "call_id": call_id,
        "robot": robot.name,
        "language": robot.language.code(),
        "rate": vb_call::LINE_RATE,
    }));
    let done = CancellationToken::new();
    c.runtime
        .spawn(pace(playout.clone(), out.clone(), done.clone()));
    let events = TalkEvents {
        rx: from_browser,
        runtime: c.runtime.clone(),
        stop,
        idle,
        ending: ending.clone(),
        pending: Vec::with_capacity(FRAME * 4),
        odd: None,
    };
    let result = {
        let voice = engines.voice.clone();
        let mut engine = CallEngine::new(
            &mut engines.stt,
            &mut engines.tts,
            &robot,
            EngineConfig {
                out_rate: vb_call::LINE_RATE,
                ..EngineConfig::default()
            },
        );
        run_call(
            &mut engine,
            vb_llm::Responder::new(&robot, c.pool.llm.clone()),
            &c.runtime,
            Box::new(events),
            &line,
            playout,
            &c.live,
            (&voice, &c.pool.model),
        )
    };
    c.pool.give(engines);
    done.cancel();
    let (call, live) = match result {
        Ok(r) => r,
        Err(e) => {
            line.hangup("internal error");
            return Err(e.into());
        }
    };
    // The browser may still be there when the caller's side ended it.
    out.close(&call.end_reason);
    let record = WebCallRecord {
        call_id: call_id.to_string(),
        transport: "web",
        direction: "web",
        from: web_caller(peer),
        started_ms: unix_ms(started),
        ended_ms: unix_ms(SystemTime::now()),
        audio_dropped_to_browser: out.audio_dropped.load(Ordering::Relaxed),
        live,
        call,
    };
    c.sink.keep(&record)?;
    Ok(record)
}

impl KeptCall for WebCallRecord {
    fn call_id(&self) -> &str {
        &self.call_id
    }
    fn started_ms(&self) -> u64 {
        self.started_ms
    }
    fn caller(&self) -> Option<String> {
        Some(self.from.clone())
    }
    fn call(&self) -> &CallRecord {
        &self.call
    }
}

fn web_caller(peer: SocketAddr) -> String {
    format!("web:{peer}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rx: mpsc::Receiver<TalkIn>, rt: &tokio::runtime::Runtime) -> TalkEvents {
        TalkEvents {
            rx,
            runtime: rt.handle().clone(),
            stop: CancellationToken::new(),
            idle: Duration::from_millis(200),
            ending: Arc::new(Ending::default()),
            pending: Vec::new(),
            odd: None,
        }
    }

    #[test]
    fn browser_audio_becomes_20_ms_frames_whatever_the_message_sizes() {
        // Multi-thread, as the daemon's: `Handle::block_on` cannot drive a
        // current-thread runtime's timers.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(8);
        let samples: Vec<i16> = (0..400).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        // Split at odd byte offsets, as a careless client might.
        tx.try_send(TalkIn::Audio(bytes[..101].to_vec())).unwrap();
        tx.try_send(TalkIn::Audio(bytes[101..].to_vec())).unwrap();
        drop(tx);
        let mut e = events(rx, &rt);
        let Some(LineEvent::Audio(f1)) = e.next_event() else {
            panic!("no frame")
        };
        let Some(LineEvent::Audio(f2)) = e.next_event() else {
            panic!("no frame")
        };
        assert_eq!(f1.0[0], 0);
        assert_eq!(f1.0[159], 159);
        assert_eq!(f2.0[0], 160);
        assert_eq!(f2.0[159], 319);
        assert_eq!(
            e.next_event(),
            None,
            "the rest is not a frame; the browser left"
        );
        assert_eq!(e.ending.reason().as_deref(), Some("caller_hung_up"));
    }

    #[test]
    fn a_silent_browser_ends_the_line_after_the_idle_timeout() {
        // Multi-thread, as the daemon's: `Handle::block_on` cannot drive a
        // current-thread runtime's timers.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (_tx, rx) = mpsc::channel(8);
        let mut e = events(rx, &rt);
        assert_eq!(e.next_event(), None);
        assert_eq!(e.ending.reason().as_deref(), Some("media_timeout"));
    }

    #[test]
    fn the_browser_hangs_up_with_a_message() {
        // Multi-thread, as the daemon's: `Handle::block_on` cannot drive a
        // current-thread runtime's timers.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(8);
        tx.try_send(TalkIn::Text(r#"{"type":"hangup"}"#.into()))
            .unwrap();
        let mut e = events(rx, &rt);
        assert_eq!(e.next_event(), None);
        assert_eq!(e.ending.reason().as_deref(), Some("caller_hung_up"));
    }

    #[test]
    fn a_full_browser_queue_drops_audio_and_never_waits() {
        let (tx, mut rx) = mpsc::channel(2);
        let out = ToBrowser {
            tx,
            audio_dropped: AtomicU64::new(0),
            text_dropped: AtomicU64::new(0),
        };
        for _ in 0..5 {
            out.audio(&Frame8k::default());
        }
        assert_eq!(out.audio_dropped.load(Ordering::Relaxed), 3);
        let Some(TalkOut::Audio(b)) = rx.try_recv().ok() else {
            panic!("no audio")
        };
        assert_eq!(b.len(), 320);
    }
}
