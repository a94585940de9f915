//! vb-audio: the audio core every VoiceBlock crate builds on. Pure
//! computation except for reading and writing WAV files.
//!
//! # Layout
//!
//! ```text
//!  WAV file ──wav::read──▶ Pcm (mono f32, any supported rate) ──wav::write──▶ WAV file
//!                           │
//!                           ├─ resample::resample / StreamResampler ─▶ Pcm at 8k / 16k / 22.05k
//!                           │
//!                           └─ Pcm::to_i16 ─▶ Framer<N> ─▶ Frame<N> (20 ms, [i16; N])
//!                                                            │
//!   real-time thread (ALSA, RTP) ◀─ FrameRing (SPSC, drop-newest) ─▶ call loop
//!                                                            │
//!                                       g711::Law::{encode,decode} ◀─▶ PCMU / PCMA payloads
//! ```
//!
//! - [`pcm`]: [`Pcm`], the owned buffer, with levels (RMS, dBFS) and
//!   concatenation for the call recorder.
//! - [`wav`]: WAV reading with explicit limits and fix-it errors; 16-bit writing.
//! - [`mod@resample`]: band-limited rate conversion, whole-buffer and streaming.
//! - [`g711`]: mu-law and A-law.
//! - [`frame`]: fixed 20 ms frames and the allocation-free [`frame::Framer`].
//! - [`recorder`]: call recording, caller left and robot right, written as the call goes.
//! - [`ring`]: the lock-free frame ring between a real-time thread and the rest.
//! - [`mod@line`]: what a phone line exchanges with the call loop: [`line::LineEvent`]s in,
//!   the [`line::Playout`] queue of robot speech out (flushed on barge-in).
//! - [`AudioError`]: the crate's error type.

pub mod error;
pub mod frame;
pub mod g711;
pub mod line;
pub mod pcm;
pub mod recorder;
pub mod resample;
pub mod ring;
pub mod wav;

pub use error::AudioError;
pub use frame::{Frame, Frame16k, Frame8k, Framer, FRAME_MS};
pub use pcm::Pcm;
pub use resample::{resample, StreamResampler};
