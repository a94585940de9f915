//! First-token latency against a running OpenAI-compatible server: the
//! server's own time to first token (raw HTTP on a bare socket, no client
//! library), the time to first token through `LlmClient`, the time to the
//! first complete sentence through the `Responder` (what would go to the
//! TTS), and the overhead the box adds on top of the server.
//!
//! ```text
//! cargo run --release -p vb-llm --example bench_llm -- http://127.0.0.1:8080/v1 [runs]
//! ```

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use vb_dialog::{Language, Robot};
use vb_llm::{
    ChatRequest, LlmClient, LlmConfig, LlmEngine, Message, Output, Responder, Role, Source,
    StreamItem,
};

const PROMPT: &str = "I would like to book a room for next weekend.";
const SYSTEM: &str = "You are the receptionist of a small hotel. Answer in two short sentences.";

/// Time to the first chunk that carries content, over a bare socket.
async fn raw_ttft(url: &str, nonce: &str) -> Duration {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let body = serde_json::json!({
        "model": "smollm2", "stream": true, "max_tokens": 40, "temperature": 0.3,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": format!("{PROMPT} {nonce}")}]
    })
    .to_string();
    let req = format!(
        "POST /{path}/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now();
    let mut s = TcpStream::connect(host).await.expect("connect");
    s.set_nodelay(true).unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let mut ttft = None;
    loop {
        let n = s.read(&mut tmp).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
        if ttft.is_none() && String::from_utf8_lossy(&buf).contains("\"content\"") {
            ttft = Some(start.elapsed());
        }
    }
    ttft.expect("no content in the reply")
}

async fn client_ttft(engine: &LlmEngine, nonce: &str) -> Duration {
    let req = ChatRequest {
        messages: vec![
            Message {
                role: Role::System,
                content: SYSTEM.into(),
            },
            Message {
                role: Role::User,
                content: format!("{PROMPT} {nonce}"),
            },
        ],
        tools: None,
        max_tokens: Some(40),
    };
    let start = Instant::now();
    let mut stream = engine.client.stream(&req).await.expect("stream");
    let mut first = None;
    while let Some(item) = stream.next().await.expect("stream") {
        if first.is_none() && matches!(item, StreamItem::Text(_)) {
            first = Some(start.elapsed());
        }
    }
    first.expect("no text")
}

async fn first_sentence(engine: &LlmEngine, robot: &Robot) -> (Duration, Duration) {
    let mut r = Responder::new(robot, Some(engine.clone()));
    r.greet();
    let (tx, mut rx) = tokio::sync::mpsc::channel(vb_llm::REPLY_CHANNEL);
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let turn = r.turn(PROMPT, &tx, &cancel);
    tokio::pin!(turn);
    let mut first = None;
    loop {
        tokio::select! {
            _ = &mut turn => break,
            Some(o) = rx.recv() => if let Output::Say(u) = o {
                if u.source == Source::Llm && first.is_none() { first = Some(start.elapsed()); }
            },
        }
    }
    (first.unwrap_or(Duration::MAX), start.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8080/v1".into());
    let runs: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
    let mut cfg = LlmConfig::local(&url, "smollm2", Language::En);
    cfg.max_tokens = 40;
    cfg.tools = false;
    // Measure the model, not the fallback.
    cfg.timeouts.first_token = Duration::from_secs(30);
    cfg.timeouts.stall = Duration::from_secs(30);
    let engine = LlmEngine::new(LlmClient::new(&cfg).expect("client"));
    let mut robot = Robot::builtin("reception-en").unwrap();
    robot.config.mode = vb_dialog::Mode::Llm;
    robot.prompt = Some(SYSTEM.into());
    // Warm up (model load, prompt cache).
    raw_ttft(&url, "Ticket 0a.").await;
    client_ttft(&engine, "Ticket 0b.").await;
    let (mut raw, mut client, mut sentence) = (vec![], vec![], vec![]);
    for i in 1..=runs {
        sentence.push(first_sentence(&engine, &robot).await.0);
        // Put the bench's system prompt back in the server's prompt cache,
        // then the same system prompt with a fresh caller line of the same
        // length for each path: both pay the same prompt work.
        client_ttft(&engine, &format!("Ticket {i}w.")).await;
        // Alternate which path goes first, so neither gets a warmer server.
        if i % 2 == 0 {
            raw.push(raw_ttft(&url, &format!("Ticket {i}a.")).await);
            client.push(client_ttft(&engine, &format!("Ticket {i}b.")).await);
        } else {
            client.push(client_ttft(&engine, &format!("Ticket {i}b.")).await);
            raw.push(raw_ttft(&url, &format!("Ticket {i}a.")).await);
        }
    }
    let fmt = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("raw ms:      {}", fmt(&raw));
    println!("client ms:   {}", fmt(&client));
    println!("sentence ms: {}", fmt(&sentence));
    let (r, c, s) = (median(raw), median(client), median(sentence));
    println!("runs: {runs} (medians)");
    println!(
        "server time to first token (bare socket): {:>7.1} ms",
        r.as_secs_f64() * 1e3
    );
    println!(
        "time to first token via LlmClient:        {:>7.1} ms",
        c.as_secs_f64() * 1e3
    );
    println!(
        "time to first sentence via Responder:     {:>7.1} ms",
        s.as_secs_f64() * 1e3
    );
    println!(
        "box overhead on first token:              {:>7.1} ms",
        (c.as_secs_f64() - r.as_secs_f64()) * 1e3
    );
    // The box's own work per chunk: SSE + JSON + sentence split of a
    // recorded OpenAI stream, without any I/O.
    let body = include_bytes!("../tests/fixtures/openai_text.sse");
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let items = vb_llm::chunk::parse_body(&[body], vb_llm::StreamLimits::default()).unwrap();
        let mut sp = vb_llm::SentenceSplitter::default();
        for i in &items {
            if let StreamItem::Text(x) = i {
                std::hint::black_box(sp.push(x));
            }
        }
    }
    let chunks = 8.0;
    println!(
        "parse + split per chunk (no I/O):         {:>7.1} us",
        t.elapsed().as_secs_f64() * 1e6 / (n as f64 * chunks)
    );
}
