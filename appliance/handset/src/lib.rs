//! vb-handset: a local ALSA capture/playback device (a USB phone or headset)
//! as a phone line for the call loop: 20 ms caller frames in, the robot's
//! [`Playout`](vb_audio::line::Playout) out, surviving the device being
//! unplugged and plugged back in.
//!
//! A crate of its own, not a module of the daemon, for the same reason as
//! the engines: it links a native library (libasound through `alsa-sys`),
//! and the SIP-only or test builds of the other crates need not. It knows
//! audio frames and ALSA only: the `voiceblock handset` command adapts it to
//! the call loop's `LineEvents`/`Line`, as the daemon does for SIP.
//!
//! # Layout
//!
//! ```text
//!  ALSA capture ──readi──► capture thread ──CaptureFramer (8 kHz, 20 ms)──► FrameRing (63 frames,
//!   (device rate,           (real-time: no locks,            drop newest + count)
//!    any channels)           no allocation per period)                 │ Handset::next_frame
//!                                                                      ▼
//!                                                        call loop's listener (VAD, barge-in)
//!
//!  call loop's speaker ──► Playout (mutex, flushed on barge-in)
//!                              │ pump thread: tops the ring up, one 20 ms frame at a time
//!                              ▼
//!                          FrameRing (3 frames) ──► playback thread ──writei──► ALSA playback
//!                                                    (empty ring: silence, counted)
//!
//!  either thread: device error ─► recover (xrun) or close, count a loss,
//!                 reopen with backoff (100 ms .. 2 s) until stopped
//! ```
//!
//! - [`device`]: opening and configuring a PCM (8 kHz mono S16 when the
//!   device takes it, its own rate and channels otherwise) and sorting its
//!   errors into recoverable and lost.
//! - [`framing`]: the pure parts: device samples to 8 kHz frames and back,
//!   and the pacer that keeps unpaced devices (the ALSA `file`/`null`
//!   plugins) at real time.
//! - [`handset`]: the threads, the rings and the [`Handset`] handle.
//! - [`HandsetError`]: the crate's error type.

pub mod device;
pub mod error;
pub mod framing;
pub mod handset;

pub use error::HandsetError;
pub use handset::{Handset, HandsetConfig, HandsetStats};
