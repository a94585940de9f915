//! Test harness shared by this crate's tests and the call loop's (feature
//! `testing`): running a turn and timing what it says, tiny fault servers
//! on 127.0.0.1, and the real llama.cpp server
//! (`scripts/setup.d/40-llm.sh` installs it).

use crate::{LlmClient, LlmConfig, LlmEngine, Output, Responder, TurnOutcome, REPLY_CHANNEL};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_dialog::{Language, Robot};

/// What a turn sent, with when.
pub struct Timed {
    /// Since the turn started.
    pub at: Duration,
    /// What was sent.
    pub out: Output,
}

/// Runs one turn, collecting every output with its time since the start.
pub async fn run_turn(
    r: &mut Responder,
    caller: &str,
    cancel: &CancellationToken,
) -> (TurnOutcome, Vec<Timed>, Duration) {
    let (tx, mut rx) = mpsc::channel(REPLY_CHANNEL);
    let start = Instant::now();
    let mut got = Vec::new();
    let outcome = {
        let turn = r.turn(caller, &tx, cancel);
        tokio::pin!(turn);
        loop {
            tokio::select! {
                o = &mut turn => break o,
                Some(out) = rx.recv() => got.push(Timed { at: start.elapsed(), out }),
            }
        }
    };
    let end = start.elapsed();
    drop(tx);
    while let Ok(out) = rx.try_recv() {
        got.push(Timed { at: end, out });
    }
    (outcome, got, end)
}

/// The longest silence: from the start to the first thing said, and
/// between consecutive things said.
pub fn max_gap(got: &[Timed]) -> Duration {
    let mut last = Duration::ZERO;
    let mut max = Duration::ZERO;
    for t in got {
        if matches!(t.out, Output::Say(_)) {
            max = max.max(t.at - last);
            last = t.at;
        }
    }
    max
}

/// What was said, in order, with where it came from.
pub fn said(got: &[Timed]) -> Vec<(crate::Source, String)> {
    got.iter()
        .filter_map(|t| match &t.out {
            Output::Say(u) => Some((u.source, u.text.clone())),
            _ => None,
        })
        .collect()
}

/// Whether the turn fell back to the script.
pub fn fell_back(got: &[Timed]) -> bool {
    got.iter().any(|t| matches!(t.out, Output::FellBack { .. }))
}

/// A built-in robot (`robots/<name>`) with its mode changed to `mode`, loaded
/// from a temporary folder (with its prompt).
pub fn robot(name: &str, mode: &str) -> Robot {
    let base = Robot::builtin(name).expect("builtin robot");
    let dir = tempfile::tempdir().unwrap();
    let toml = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../robots/{name}/robot.toml")),
    )
    .unwrap();
    let toml = toml.replacen("mode = \"script\"", &format!("mode = \"{mode}\""), 1);
    std::fs::write(dir.path().join("robot.toml"), toml).unwrap();
    std::fs::write(dir.path().join("prompt.md"), base.prompt.clone().unwrap()).unwrap();
    let r = Robot::load(dir.path()).unwrap();
    assert_eq!(r.config.mode.code(), mode);
    r
}

/// An engine for a local OpenAI-compatible server at `base_url`.
pub fn engine(base_url: &str, tools: bool) -> LlmEngine {
    let mut cfg = LlmConfig::local(base_url, "smollm2", Language::En);
    cfg.tools = tools;
    LlmEngine::new(LlmClient::new(&cfg).expect("client"))
}

/// A port nobody listens on.
pub fn dead_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// How a fault server answers each connection.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Accept, read the request, never answer.
    Silent,
    /// Answer 200 and stream `n` tokens, then stall with the socket open.
    TokensThenStall(usize),
    /// Answer 429 with `Retry-After: secs`.
    TooMany(u64),
    /// Answer 200 with an event stream of garbage bytes.
    GarbageStream,
    /// Answer garbage instead of HTTP.
    GarbageHttp,
    /// Stream a sentence every 100 ms, forever.
    Endless,
    /// Answer 200 with this SSE body (.0); then close, or stall when .1.
    Body(&'static str, bool),
}

/// A fault server: counts connections and whether the last one was closed
/// by the client.
pub struct FaultServer {
    /// Its base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    /// Connections accepted.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Notified when a connection ends.
    pub closed: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn chunk(text: &str) -> String {
    format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::to_string(text).unwrap()
    )
}

async fn read_request(s: &mut TcpStream) {
    // Read until the end of headers plus the body (Content-Length).
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut tmp).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let Ok(n) = s.read(&mut tmp).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return;
        }
    }
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

async fn wait_closed(s: &mut TcpStream) {
    let mut tmp = [0u8; 256];
    loop {
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn serve(mut s: TcpStream, fault: Fault, closed: std::sync::Arc<tokio::sync::Notify>) {
    read_request(&mut s).await;
    match fault {
        Fault::Silent => wait_closed(&mut s).await,
        Fault::TokensThenStall(n) => {
            let _ = s.write_all(SSE_HEAD.as_bytes()).await;
            let words = [
                "Hello", " there", ".", " I", " can", " help", " you", " with", " that", " booking",
            ];
            for i in 0..n {
                let _ = s.write_all(chunk(words[i % words.len()]).as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            wait_closed(&mut s).await;
        }
        Fault::TooMany(secs) => {
            let body = r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#;
            let resp = format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: {secs}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
        Fault::GarbageStream => {
            let _ = s.write_all(SSE_HEAD.as_bytes()).await;
            let _ = s.write_all(b"data: \xff\xfe\x00garbage{{{\n\n").await;
            wait_closed(&mut s).await;
        }
        Fault::GarbageHttp => {
            let _ = s
                .write_all(b"\x16\x03\x01garbage, not HTTP\r\n\r\n\xff\xff")
                .await;
            wait_closed(&mut s).await;
        }
        Fault::Body(body, stall) => {
            let _ = s.write_all(SSE_HEAD.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
            if stall {
                wait_closed(&mut s).await;
            }
        }
        Fault::Endless => {
            let _ = s.write_all(SSE_HEAD.as_bytes()).await;
            let mut i = 0u64;
            loop {
                i += 1;
                if s.write_all(chunk(&format!("Sentence number {i}. ")).as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                // The client closes: a read returns 0 or an error.
                match tokio::time::timeout(Duration::from_millis(100), s.read(&mut [0u8; 16])).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    _ => {}
                }
            }
        }
    }
    closed.notify_one();
}

impl FaultServer {
    /// Starts one on an ephemeral port (inside a tokio runtime).
    pub async fn start(fault: Fault) -> FaultServer {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", l.local_addr().unwrap());
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed = std::sync::Arc::new(tokio::sync::Notify::new());
        let (c, n) = (connections.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(serve(s, fault, n.clone()));
            }
        });
        FaultServer {
            url,
            connections,
            closed,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The real llama.cpp server (llama-cpp-python), killed on drop.
pub struct LlamaServer {
    /// Its base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    child: Child,
    _log: tempfile::NamedTempFile,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cache_file(name: &str) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let base = std::env::var_os("VOICEBLOCK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache/voiceblock"));
    std::fs::read_to_string(base.join("llm").join(name))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl LlamaServer {
    /// Starts the server on an ephemeral port and waits (bounded) until it
    /// serves. Fails, naming the setup script, when it is not installed.
    pub async fn start() -> LlamaServer {
        let python = std::env::var("VB_LLM_PYTHON").ok().or_else(|| cache_file("python.path")).expect(
            "llama.cpp server not installed: run scripts/setup.d/40-llm.sh (or set VB_LLM_PYTHON and VB_LLM_MODEL)",
        );
        let model = std::env::var("VB_LLM_MODEL")
            .ok()
            .or_else(|| cache_file("model.path"))
            .expect(
                "SmolLM2 GGUF not installed: run scripts/setup.d/40-llm.sh (or set VB_LLM_MODEL)",
            );
        assert!(
            std::path::Path::new(&model).is_file(),
            "model {model} missing: run scripts/setup.d/40-llm.sh"
        );
        let port = dead_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--model",
                &model,
                "--model_alias",
                "smollm2",
            ])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
                "--verbose",
                "false",
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {python} -m llama_cpp.server: {e}; run scripts/setup.d/40-llm.sh"
                )
            });
        let mut server = LlamaServer {
            url: format!("http://127.0.0.1:{port}/v1"),
            child,
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(server._log.path()).unwrap_or_default();
                panic!("llama.cpp server exited with {status}:\n{log}");
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let req = "GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
                if s.write_all(req.as_bytes()).await.is_ok() {
                    let mut buf = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
                    if buf.starts_with(b"HTTP/1.1 200") {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "llama.cpp server did not serve within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }
}
