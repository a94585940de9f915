//! Talk to a robot in text, in its mode (`script`, `llm`, `llm_script`):
//! each stdin line is a caller turn; every output is printed with its time
//! and source; at the end the lead and the post-call summary as JSON.
//!
//! ```text
//! cargo run -p vb-llm --example chat -- robots/reception-en [BASE_URL] [llm|llm_script|script]
//! ```
//! BASE_URL overrides `llm.toml` (e.g. `http://127.0.0.1:8080/v1`); the mode
//! overrides robot.toml's.

use std::io::BufRead;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vb_dialog::{Mode, Robot};
use vb_llm::{LlmClient, LlmConfig, LlmEngine, Output, Responder, REPLY_CHANNEL};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map_or("robots/reception-en", String::as_str));
    let mut robot = Robot::load(&dir)?;
    if let Some(mode) = args.get(3) {
        robot.config.mode = Mode::from_code(mode).ok_or("mode: script, llm or llm_script")?;
    }
    let mut cfg = LlmConfig::load(&dir, robot.language)?;
    if let Some(url) = args.get(2).filter(|u| !u.is_empty()) {
        let mut c = cfg.unwrap_or_else(|| LlmConfig::local(url, "smollm2", robot.language));
        c.base_url = url.trim_end_matches('/').to_owned();
        cfg = Some(c);
    }
    let engine = match cfg {
        Some(c) => Some(LlmEngine::new(LlmClient::new(&c)?)),
        None => None,
    };
    let mut call = Responder::new(&robot, engine);
    println!(
        "robot: {} ({})",
        call.greet().text,
        robot.config.mode.code()
    );
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(REPLY_CHANNEL);
        let cancel = CancellationToken::new();
        let start = Instant::now();
        let mut end_call = false;
        let mut show = |o: Output| {
            let ms = start.elapsed().as_millis();
            match o {
                Output::Say(u) => {
                    end_call |= u.end_call;
                    println!("{ms:>6} ms  {:?}: {}", u.source, u.text);
                }
                other => println!("{ms:>6} ms  {other:?}"),
            }
        };
        {
            let turn = call.turn(&line, &tx, &cancel);
            tokio::pin!(turn);
            loop {
                tokio::select! {
                    _ = &mut turn => break,
                    Some(o) = rx.recv() => show(o),
                }
            }
        }
        while let Ok(o) = rx.try_recv() {
            show(o);
        }
        if end_call {
            break;
        }
    }
    println!("lead: {}", serde_json::to_string(&call.lead())?);
    println!(
        "summary: {}",
        serde_json::to_string(&call.summarize(Duration::from_secs(20)).await)?
    );
    Ok(())
}
