//! vb-llm: the language model in the loop.
//!
//! A client for any OpenAI-compatible chat-completions endpoint (cloud,
//! Ollama, llama.cpp server) streaming over SSE on rustls (ring provider
//! only), and the per-call [`Responder`] that turns a caller's transcript
//! into sentences for the TTS in the robot's mode (`script`, `llm`,
//! `llm_script`), with validated tools, a filler when the model is slow and
//! a fall back to the script when it fails. Everything that parses the wire
//! or decides is pure and tested without I/O; only [`client`] talks HTTP.
//!
//! # Layout
//!
//! ```text
//!  robots/<name>/llm.toml ──> config (LlmConfig, validate: all issues at once)
//!                                  │
//!                                  v
//!  HTTP body bytes ──> client ──> sse (lines, limits) ──> chunk (deltas, tool calls, errors) ──> StreamItem
//!                                                                                                   │
//!  caller text ──> responder ──(memory: bounded history)──> client.stream() ─────────────────────────┘
//!                    │   text ──> sentence (splitter) ──> Output::Say ──> mpsc(8) ──> call loop ──> TTS
//!                    │   tool calls ──> tools (Validator, no I/O; StructuredFilter fallback) ──> Output::Action
//!                    │   slow ──> filler;  failed/stalled/4xx/5xx/429/garbage ──> vb_dialog::Dialog::resume
//!                    └── breaker (shared by all calls, time passed in)
//!  after the call: summary (LLM JSON, checked; rules otherwise)
//! ```
//!
//! - [`sse`]: server-sent events decoder.
//! - [`chunk`]: chat-completions chunks (OpenAI, Ollama, llama.cpp dialects).
//! - [`sentence`]: streaming sentence splitter (English, Russian).
//! - [`tools`]: tool definitions, the validator, the structured-output filter.
//! - [`memory`]: bounded conversation.
//! - [`breaker`]: circuit breaker.
//! - [`config`]: the `llm.toml` file.
//! - [`client`]: HTTP + TLS.
//! - [`responder`]: the per-call driver the call loop uses.
//! - [`summary`]: post-call summary and interest class.
//! - [`error`]: error enums.
//! - `testing` (feature `testing`): the real llama.cpp server and fault
//!   servers for tests, here and in the call loop's.
//!
//! # Using it from the call loop
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vb_llm::{LlmClient, LlmConfig, LlmEngine, Output, Responder, REPLY_CHANNEL};
//! use tokio_util::sync::CancellationToken;
//!
//! let robot = vb_dialog::Robot::load("robots/reception-en".as_ref())?;
//! let engine = match LlmConfig::load(robot.dir.as_deref().unwrap(), robot.language)? {
//!     Some(cfg) => Some(LlmEngine::new(LlmClient::new(&cfg)?)), // once per robot, shared by calls
//!     None => None,
//! };
//! let mut call = Responder::new(&robot, engine);
//! let _greeting = call.greet();
//! let (tx, mut rx) = tokio::sync::mpsc::channel(REPLY_CHANNEL);
//! let barge_in = CancellationToken::new(); // the call loop cancels it on caller speech
//! let turn = call.turn("I'd like to book a room", &tx, &barge_in);
//! let speak = async {
//!     while let Some(out) = rx.recv().await {
//!         if let Output::Say(u) = out { /* synthesize u.text */ let _ = u; }
//!     }
//! };
//! tokio::pin!(turn);
//! tokio::select! { _ = &mut turn => {}, _ = speak => {} }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod breaker;
pub mod chunk;
pub mod client;
pub mod config;
pub mod error;
pub mod memory;
pub mod responder;
pub mod sentence;
pub mod sse;
pub mod summary;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tools;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, SharedBreaker};
pub use chunk::{ChatStreamParser, StreamItem, StreamLimits, ToolCall};
pub use client::{ChatRequest, ChatStream, LlmClient};
pub use config::{ApiKey, LlmConfig, Timeouts, DEAD_AIR_MS, LLM_FILE};
pub use error::{ClientError, ConfigError, ConfigIssue, LlmError, StreamError};
pub use memory::{Conversation, MemoryBudget, Message, Role};
pub use responder::{
    LlmEngine, Output, Responder, Source, TurnOutcome, TurnStats, Utterance, REPLY_CHANNEL,
};
pub use sentence::SentenceSplitter;
pub use sse::{SseDecoder, SseEvent, SseLimits};
pub use summary::{class_code, rules_summary, CallSummary, SummarySource};
pub use tools::{Action, Rejection, StructuredFilter, Validator};
