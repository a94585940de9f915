//! The web console's files and the talk WebSocket against a real server on
//! 127.0.0.1:0: content types, cache headers and the CSP; the socket's token
//! check, its hand-over to the daemon's handler (a test handler that echoes)
//! and a refusal in words.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use vb_api::{ApiConfig, AppState, Metrics, TalkHandler, TalkIn, TalkOut, TalkRefused, TalkSocket};
use vb_store::Store;

const TOKEN: &str = "test-token-0123456789";

/// Echoes audio back and reports each message; `hangup` closes.
struct Echo;

impl TalkHandler for Echo {
    fn start(&self, socket: TalkSocket) -> Result<(), TalkRefused> {
        let TalkSocket {
            mut from_browser,
            to_browser,
            peer,
        } = socket;
        tokio::spawn(async move {
            let hello = json!({ "type": "hello", "peer": peer.ip().to_string() });
            let _ = to_browser.send(TalkOut::Text(hello.to_string())).await;
            while let Some(m) = from_browser.recv().await {
                match m {
                    TalkIn::Audio(b) => {
                        let n = b.len();
                        let _ = to_browser.send(TalkOut::Audio(b)).await;
                        let ev = json!({ "type": "got", "bytes": n });
                        let _ = to_browser.send(TalkOut::Text(ev.to_string())).await;
                    }
                    TalkIn::Text(t) if t.contains("hangup") => {
                        let _ = to_browser.send(TalkOut::Close("bye".into())).await;
                        break;
                    }
                    TalkIn::Text(_) => {}
                }
            }
        });
        Ok(())
    }
}

struct Busy;

impl TalkHandler for Busy {
    fn start(&self, _socket: TalkSocket) -> Result<(), TalkRefused> {
        Err(TalkRefused::Busy { limit: 2 })
    }
}

struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start(token: Option<&str>, talk: Option<Arc<dyn TalkHandler>>) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let config = ApiConfig {
        token: token.map(str::to_string),
        auth_failures: 1000,
        ..ApiConfig::default()
    };
    let mut state = AppState::new(
        config,
        store,
        dir.path().join("robots"),
        Arc::new(Metrics::new()),
    );
    if let Some(t) = talk {
        state = state.with_talk(t);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(vb_api::serve(listener, state, cancel.clone()));
    Server {
        addr,
        cancel,
        _dir: dir,
    }
}

#[tokio::test]
async fn console_files_are_served_without_the_token_with_types_cache_headers_and_csp() {
    let s = start(Some(TOKEN), None).await;
    let http = Client::builder().build().unwrap();
    for (path, ctype) in [
        ("/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/talk-worklet.js", "text/javascript; charset=utf-8"),
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let r = http
            .get(format!("http://{}{path}", s.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], ctype, "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        assert!(!r.bytes().await.unwrap().is_empty());
        // A browser revalidating gets 304 and no body.
        let again = http
            .get(format!("http://{}{path}", s.addr))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let html = http
        .get(format!("http://{}/", s.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for link in [
        "#/calls", "#/leads", "#/queue", "#/health", "#/config", "#/talk",
    ] {
        assert!(html.contains(link), "the console links {link}");
    }
    s.cancel.cancel();
}

fn ws_url(s: &Server, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("ws://{}/api/talk?token={t}", s.addr),
        None => format!("ws://{}/api/talk", s.addr),
    }
}

fn refused_status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message within 10 s")
        .expect("the socket is open")
        .expect("a message")
}

fn json_of(m: Message) -> Value {
    match m {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn the_talk_socket_needs_the_token_then_carries_audio_both_ways() {
    let s = start(Some(TOKEN), Some(Arc::new(Echo))).await;
    let e = tokio_tungstenite::connect_async(ws_url(&s, None))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 401, "no token");
    let e = tokio_tungstenite::connect_async(ws_url(&s, Some("wrong-token-0123456789")))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 401, "wrong token");

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&s, Some(TOKEN)))
        .await
        .unwrap();
    let hello = json_of(next(&mut ws).await);
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["peer"], "127.0.0.1");
    let frame: Vec<u8> = (0..320).map(|i| i as u8).collect();
    ws.send(Message::Binary(frame.clone().into()))
        .await
        .unwrap();
    match next(&mut ws).await {
        Message::Binary(b) => assert_eq!(b.as_ref(), frame.as_slice()),
        other => panic!("expected audio back, got {other:?}"),
    }
    assert_eq!(json_of(next(&mut ws).await)["bytes"], 320);
    ws.send(Message::Text(r#"{"type":"hangup"}"#.into()))
        .await
        .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(f.reason.as_str(), "bye"),
        other => panic!("expected a close, got {other:?}"),
    }
    s.cancel.cancel();
}

#[tokio::test]
async fn a_refused_session_is_told_why_and_closed_with_try_again_later() {
    let s = start(Some(TOKEN), Some(Arc::new(Busy))).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&s, Some(TOKEN)))
        .await
        .unwrap();
    let m = json_of(next(&mut ws).await);
    assert_eq!(m["type"], "error");
    assert!(m["message"].as_str().unwrap().contains("busy"), "{m}");
    match next(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1013),
        other => panic!("expected a close, got {other:?}"),
    }
    s.cancel.cancel();
}

#[tokio::test]
async fn without_a_handler_the_talk_route_is_404_and_without_a_token_it_is_open_on_loopback() {
    let s = start(Some(TOKEN), None).await;
    let e = tokio_tungstenite::connect_async(ws_url(&s, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 404);
    s.cancel.cancel();

    let s = start(None, Some(Arc::new(Echo))).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&s, None))
        .await
        .unwrap();
    assert_eq!(json_of(next(&mut ws).await)["type"], "hello");
    s.cancel.cancel();
}

#[tokio::test]
async fn a_plain_get_of_the_talk_route_is_a_clear_4xx() {
    let s = start(Some(TOKEN), Some(Arc::new(Echo))).await;
    let r = Client::builder()
        .build()
        .unwrap()
        .get(format!("http://{}/api/talk?token={TOKEN}", s.addr))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    s.cancel.cancel();
}
