//! One call: caller audio in -> VAD/endpointing -> STT -> dialog -> TTS -> robot audio out.
//!
//! The call loop knows audio, not transports: the `converse` simulator hands it
//! WAV files today; RTP, an ALSA handset and the browser's WebSocket will hand
//! it 20 ms frames through the same [`CallEngine`].
//!
//! # Layout
//!
//! ```text
//!  caller audio (any rate) ──resample 16 kHz──► 20 ms frames
//!        │
//!        ▼
//!  WebRtcVad + Endpointer (vb-vad) ──utterance──► Transcriber (vb-stt)
//!        ▲ patience: Digits while the dialog waits for a phone number      │ text
//!        │                                                                 ▼
//!        └──── Responder (vb-llm: script / llm / llm_script; wraps the ◄───┘
//!              Dialog, falls back to it; a tokio task per live turn)
//!                                   │ sentences as they stream (text, phrase id,
//!                                   │ recorded WAV?), tool actions, fallback
//!                                   ▼
//!                 Tts (vb-tts: Piper / espeak fallback, sentence streaming, cache)
//!                                   │
//!                                   ▼
//!                         robot audio (out_rate) + TurnRecord timings
//!   after the call: summary + interest class (the model's, or rules) -> CallRecord
//! ```
//!
//! - [`engine`]: the turn engine shared by every transport: one caller turn in,
//!   one robot reply (audio + timings) out.
//! - [`live`]: the real-time loop on a phone line's 20 ms frames: a listener
//!   thread (VAD, endpointing, barge-in, echo guard) and a speaker thread
//!   (STT, the responder's turn on the runtime, each sentence to the TTS as
//!   it arrives, into the line's playout queue).
//! - [`simulate`]: drives a whole call from caller WAVs or a built-in demo
//!   caller, recording both sides into one WAV (the `converse` command).
//! - [`record`]: the per-call record (turns, timings, lead) written as JSON.
//! - [`setup`]: finds the models in the cache and opens the engines.

pub mod engine;
pub mod live;
pub mod record;
pub mod setup;
pub mod simulate;

pub use engine::{CallEngine, CallError, EngineConfig, Heard};
pub use live::{
    run_call, Line, LineEvents, LiveConfig, LiveStats, Progress, RecordingSetup, LINE_RATE,
};
pub use record::{CallRecord, RecordingInfo, Speaker, TurnRecord, TurnTimings};
pub use setup::{Models, SetupError, DEFAULT_STT_MODEL};
pub use simulate::{CallerSource, DemoCaller, Simulation, WavCaller};
