//! vb-vad: voice activity detection and endpointing, deciding when a
//! caller has started and finished speaking.
//!
//! # Layout
//!
//! ```text
//!  20 ms frame ──▶ Vad::is_speech (WebRtcVad) ──bool──▶ Endpointer::push ──▶ Option<EndpointEvent>
//!       │                                                     ▲                 SpeechStart (barge-in)
//!       └─────────────────── frame audio ─────────────────────┘                 SpeechEnd (audio to STT)
//!
//!  Pcm file ──resample to 16 kHz──▶ segment() = the same loop over a buffer ──▶ Vec<Utterance>
//! ```
//!
//! - [`detector`]: the [`Vad`] trait and [`WebRtcVad`] (libfvad).
//! - [`endpoint`]: [`Endpointer`], a pure state machine over (frame, decision)
//!   with min-speech, hangover, digits patience, pre/post-roll and a forced end.
//! - [`mod@segment`]: [`segment()`] for whole recordings.
//! - [`VadError`]: the crate's error type.

pub mod detector;
pub mod endpoint;
pub mod error;
pub mod segment;

pub use detector::{Aggressiveness, Vad, WebRtcVad};
pub use endpoint::{ConfigProblem, EndpointConfig, EndpointEvent, Endpointer, Patience};
pub use error::VadError;
pub use segment::{segment, SegmentConfig, Utterance, SEGMENT_RATE};
