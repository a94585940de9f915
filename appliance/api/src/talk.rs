//! The console's "talk to the robot" WebSocket (`GET /api/talk`): the API
//! checks the token (a `token` query parameter, since browsers cannot set
//! headers on a WebSocket), upgrades, and hands the session to the daemon's
//! [`TalkHandler`] as two bounded channels. The API knows nothing of calls;
//! the daemon knows nothing of WebSockets.
//!
//! ```text
//!  browser ══ws══► pump ── TalkIn (cap TALK_IN; audio: drop+count) ──► daemon's session
//!          ◄══════ pump ◄─ TalkOut (cap TALK_OUT; the daemon try_sends) ─┘
//!                   └─ a send stuck for SEND_TIMEOUT ends the session
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::Problem;
use crate::Shared;

/// The route.
pub const TALK_PATH: &str = "/api/talk";
/// Messages from the browser queued for the daemon: 50 audio messages are
/// one second of 20 ms frames. Full policy: audio is dropped and counted
/// (the call loop is behind; waiting would only grow the delay).
pub const TALK_IN: usize = 50;
/// Messages queued for the browser. The daemon `try_send`s: when full, it
/// drops audio (counted) so a slow browser never stalls the call loop.
pub const TALK_OUT: usize = 100;
/// Largest message accepted from the browser (a 20 ms frame is 320 bytes;
/// JS may batch a few).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A browser that takes longer than this to accept one message is gone:
/// the session ends.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// From the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TalkIn {
    /// Caller audio: 16-bit little-endian mono PCM at 8 kHz.
    Audio(Vec<u8>),
    /// A JSON control message (`{"type":"hangup"}`).
    Text(String),
}

/// To the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TalkOut {
    /// Robot audio: 16-bit little-endian mono PCM at 8 kHz.
    Audio(Vec<u8>),
    /// A JSON event (hello, turn, end).
    Text(String),
    /// Close the socket with this reason (the session is over).
    Close(String),
}

/// One session's browser side, as the daemon gets it.
#[derive(Debug)]
pub struct TalkSocket {
    /// The browser's messages; closed when the browser leaves.
    pub from_browser: mpsc::Receiver<TalkIn>,
    /// Messages for the browser; use `try_send` (see [`TALK_OUT`]).
    pub to_browser: mpsc::Sender<TalkOut>,
    /// The browser's address.
    pub peer: SocketAddr,
}

/// Why a session was not started; the browser is told in words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TalkRefused {
    /// Every call slot is taken (SIP calls and talk sessions share them).
    #[error("the box is busy: all {limit} call slots are in use; try again later")]
    Busy {
        /// The call limit.
        limit: usize,
    },
    /// The daemon is stopping.
    #[error("the box is shutting down")]
    ShuttingDown,
    /// Something on the box failed (engines, a thread).
    #[error("cannot start a session: {what}: {detail}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// The underlying error, in words.
        detail: String,
    },
}

/// What the daemon provides: starts a talk session on an upgraded socket.
/// Called on an async thread: hand the work to a thread or task, return at
/// once.
pub trait TalkHandler: Send + Sync {
    /// Takes the session, or refuses it (the browser gets the reason).
    fn start(&self, socket: TalkSocket) -> Result<(), TalkRefused>;
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TalkQuery {
    token: Option<String>,
}

/// `GET /api/talk`: token check, then upgrade.
pub(crate) async fn talk(
    State(shared): State<Arc<Shared>>,
    extensions: Extensions,
    headers: HeaderMap,
    Query(q): Query<TalkQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let peer_ip = crate::auth::peer_of(&extensions);
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let query_token = q.token.as_deref().map(str::as_bytes);
    if let Err(p) =
        crate::auth::admit_presented(&shared, peer_ip, TALK_PATH, authorization, query_token)
    {
        return p.into_response();
    }
    let Some(handler) = shared.talk.clone() else {
        return Problem::not_found("the talk page is not available on this box").into_response();
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return Problem::new(e.status(), e.body_text()).into_response(),
    };
    let peer = extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from((peer_ip, 0)), |c| c.0);
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| pump(socket, handler, peer))
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

fn close(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes.
    let mut reason = reason.to_string();
    while reason.len() > 120 {
        reason.pop();
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// After our close frame: waits (briefly) for the browser's, so the close
/// is clean and the page sees its reason.
async fn finish_close(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Moves messages between the socket and the daemon's session until either
/// side ends.
async fn pump(mut socket: WebSocket, handler: Arc<dyn TalkHandler>, peer: SocketAddr) {
    let (in_tx, in_rx) = mpsc::channel(TALK_IN);
    let (out_tx, mut out_rx) = mpsc::channel(TALK_OUT);
    let session = TalkSocket {
        from_browser: in_rx,
        to_browser: out_tx,
        peer,
    };
    if let Err(refused) = handler.start(session) {
        tracing::info!(%peer, reason = %refused, "talk session refused");
        let text = json!({ "type": "error", "message": refused.to_string() }).to_string();
        let _ = send(&mut socket, Message::Text(text.into())).await;
        // 1013: try again later.
        let _ = send(&mut socket, close(1013, "refused")).await;
        return;
    }
    let mut dropped: u64 = 0;
    loop {
        tokio::select! {
            received = socket.recv() => {
                let message = match received {
                    Some(Ok(m)) => m,
                    Some(Err(_)) | None => break,
                };
                let to_daemon = match message {
                    Message::Binary(b) => TalkIn::Audio(b.to_vec()),
                    Message::Text(t) => TalkIn::Text(t.as_str().to_owned()),
                    Message::Close(_) => break,
                    // Pings are answered by the WebSocket layer.
                    _ => continue,
                };
                match in_tx.try_send(to_daemon) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            out = out_rx.recv() => {
                let ok = match out {
                    Some(TalkOut::Audio(b)) => send(&mut socket, Message::Binary(b.into())).await,
                    Some(TalkOut::Text(t)) => send(&mut socket, Message::Text(t.into())).await,
                    Some(TalkOut::Close(reason)) => {
                        if send(&mut socket, close(1000, &reason)).await {
                            finish_close(&mut socket).await;
                        }
                        false
                    }
                    None => {
                        if send(&mut socket, close(1000, "session ended")).await {
                            finish_close(&mut socket).await;
                        }
                        false
                    }
                };
                if !ok {
                    break;
                }
            }
        }
    }
    if dropped > 0 {
        tracing::info!(%peer, dropped, "talk session: browser audio dropped (the call loop was behind)");
    }
    tracing::debug!(%peer, "talk socket closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let Message::Close(Some(frame)) = close(1000, &"é".repeat(100)) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.as_str().len() <= 123);
    }

    #[test]
    fn refusals_say_why_in_words() {
        let busy = TalkRefused::Busy { limit: 2 }.to_string();
        assert!(busy.contains("busy") && busy.contains('2'), "{busy}");
    }
}
