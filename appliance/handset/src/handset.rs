//! The handset's three threads and the handle the call side holds.
//!
//! - **capture** (real-time): `readi` a period, cut it into 8 kHz frames,
//!   push them into the capture ring. Full policy: **drop the newest and
//!   count it** ([`FrameRing`]'s policy: the real-time producer never
//!   waits; a full ring means the call side is 1.26 s behind).
//! - **playback** (real-time): pop a frame from the playback ring (empty:
//!   play silence and count a gap), `writei` it.
//! - **pump** (not real-time): keeps the 3-frame playback ring topped up
//!   from the call loop's [`Playout`], whose short mutex the audio threads
//!   therefore never touch.
//!
//! The audio threads allocate and log only when a device is opened or
//! lost, never per period. On a lost device (unplugged, its sound server
//! died, no data for `stall`) a thread closes it, counts a loss and
//! reopens with backoff; the call side sees [`Handset::losses`] move and
//! ends the conversation.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use vb_audio::line::Playout;
use vb_audio::ring::{FrameConsumer, FrameProducer, FrameRing};
use vb_audio::Frame8k;

use crate::device::{self, classify, Device, Direction, ErrorKind};
use crate::error::HandsetError;
use crate::framing::{Backoff, CaptureFramer, Pacer, PlaybackShaper};

/// Capture ring: 63 frames (1.26 s) between the capture thread and the
/// call loop's listener, which normally keeps it nearly empty.
const CAPTURE_RING: usize = 64;
/// Playback ring: 3 frames (60 ms) queued ahead of the device; short, so a
/// barge-in silences the robot quickly.
const PLAYBACK_RING: usize = 4;
/// Robot speech the playout queue holds: 60 s, as on a SIP line.
const PLAYOUT_SAMPLES: usize = 8000 * 60;
/// The audio threads wake at least this often to notice a stop or a stall.
const WAIT_MS: u32 = 200;

type Producer = FrameProducer<'static, 160>;
type Consumer = FrameConsumer<'static, 160>;

/// Which device and how patiently to wait for it.
#[derive(Debug, Clone)]
pub struct HandsetConfig {
    /// ALSA device name (`default`, `plughw:CARD=Device`, a name from an
    /// asoundrc).
    pub device: String,
    /// First delay before reopening a lost device.
    pub reopen_min: Duration,
    /// Longest delay between reopen attempts.
    pub reopen_max: Duration,
    /// A device that gives or takes no audio for this long is lost.
    pub stall: Duration,
}

impl HandsetConfig {
    /// Defaults for `device`: reopen after 100 ms .. 2 s, stalled after 3 s.
    pub fn new(device: impl Into<String>) -> Self {
        HandsetConfig {
            device: device.into(),
            reopen_min: Duration::from_millis(100),
            reopen_max: Duration::from_secs(2),
            stall: Duration::from_secs(3),
        }
    }
}

/// Counters of the handset since it started.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HandsetStats {
    /// The ALSA device.
    pub device: String,
    /// The capture side's rate (8000 unless the device cannot).
    pub capture_rate: u32,
    /// The playback side's rate.
    pub playback_rate: u32,
    /// 20 ms frames captured into the ring.
    pub captured_frames: u64,
    /// Frames dropped because the capture ring was full.
    pub capture_dropped: u64,
    /// Capture overruns recovered.
    pub capture_xruns: u64,
    /// Playback underruns recovered.
    pub playback_xruns: u64,
    /// Frames of silence played because the playback ring was empty.
    pub playback_gaps: u64,
    /// Times a device side was lost (each side counts).
    pub device_losses: u64,
    /// Times a device side was opened.
    pub opens: u64,
}

#[derive(Default)]
struct State {
    stop: AtomicBool,
    capture_online: AtomicBool,
    playback_online: AtomicBool,
    losses: AtomicU64,
    opens: AtomicU64,
    captured: AtomicU64,
    capture_xruns: AtomicU64,
    playback_xruns: AtomicU64,
    playback_gaps: AtomicU64,
    capture_rate: AtomicU32,
    playback_rate: AtomicU32,
}

impl State {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early on stop.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Why a device's stream ended.
enum Ended {
    /// ALSA reported an error that recovery cannot fix.
    Alsa(alsa::Error),
    /// No audio moved for the stall time.
    Stalled(Duration),
    /// The device's rate has no converter.
    Rate(vb_audio::AudioError),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Alsa(e) => write!(f, "{e}"),
            Ended::Stalled(d) => write!(f, "no audio for {} ms", d.as_millis()),
            Ended::Rate(e) => write!(f, "{e}"),
        }
    }
}

impl From<alsa::Error> for Ended {
    fn from(e: alsa::Error) -> Self {
        Ended::Alsa(e)
    }
}

/// A running handset: its threads, its capture ring's reading end and
/// the playout queue its playback drains.
pub struct Handset {
    device: String,
    state: Arc<State>,
    capture: Mutex<Consumer>,
    playout: Arc<Playout>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Handset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handset")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Handset {
    /// Starts the threads. A device that is absent now is not an error:
    /// the threads keep trying to open it ([`Handset::is_online`] says
    /// when it is there).
    pub fn start(config: HandsetConfig) -> Result<Handset, HandsetError> {
        // The rings live as long as the process: their two ends are
        // borrowed by threads that may outlive this handle by a stop's
        // grace. One handset per process, so this is two fixed blocks
        // (about 21 KiB), not a leak that grows.
        let capture_ring: &'static mut FrameRing<160, CAPTURE_RING> =
            Box::leak(Box::new(FrameRing::new()));
        let playback_ring: &'static mut FrameRing<160, PLAYBACK_RING> =
            Box::leak(Box::new(FrameRing::new()));
        let (capture_tx, capture_rx) = capture_ring.split();
        let (playback_tx, playback_rx) = playback_ring.split();
        let state = Arc::new(State::default());
        let playout = Arc::new(Playout::new(PLAYOUT_SAMPLES));
        let handset = Handset {
            device: config.device.clone(),
            state: state.clone(),
            capture: Mutex::new(capture_rx),
            playout: playout.clone(),
            threads: Mutex::new(Vec::new()),
        };
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|source| HandsetError::Thread { name, source })
        };
        let mut threads = Vec::new();
        {
            let (config, state) = (config.clone(), state.clone());
            threads.push(spawn(
                "vb-hs-capture",
                Box::new(move || capture_thread(&config, &state, capture_tx)),
            )?);
        }
        {
            let (config, state) = (config.clone(), state.clone());
            threads.push(spawn(
                "vb-hs-playback",
                Box::new(move || playback_thread(&config, &state, playback_rx)),
            )?);
        }
        {
            let state = state.clone();
            threads.push(spawn(
                "vb-hs-pump",
                Box::new(move || pump(&playout, &state, playback_tx)),
            )?);
        }
        *handset.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        Ok(handset)
    }

    /// The queue the call loop speaks into.
    pub fn playout(&self) -> Arc<Playout> {
        self.playout.clone()
    }

    fn consumer(&self) -> std::sync::MutexGuard<'_, Consumer> {
        // Only the call side takes this lock (one reader at a time); the
        // capture thread never does.
        self.capture.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest captured frame, if one is waiting.
    pub fn try_frame(&self) -> Option<Frame8k> {
        self.consumer().pop()
    }

    /// The next captured frame, waiting up to `limit` for it.
    pub fn next_frame(&self, limit: Duration) -> Option<Frame8k> {
        let until = Instant::now() + limit;
        loop {
            if let Some(f) = self.try_frame() {
                return Some(f);
            }
            if Instant::now() >= until || self.state.stopped() {
                return None;
            }
            // The ring is filled every 20 ms; 5 ms polling keeps the
            // listener within a quarter frame without a lock or a wakeup
            // call in the capture thread.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Drops every captured frame waiting (stale audio before a new
    /// conversation); returns how many.
    pub fn clear_capture(&self) -> usize {
        let mut rx = self.consumer();
        std::iter::from_fn(|| rx.pop()).count()
    }

    /// True while both sides of the device are open.
    pub fn is_online(&self) -> bool {
        self.state.capture_online.load(Ordering::SeqCst)
            && self.state.playback_online.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for both sides to be open.
    pub fn wait_online(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while !self.is_online() {
            if Instant::now() >= until || self.state.stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Device losses so far: a conversation notes it at its start and ends
    /// when it moves.
    pub fn losses(&self) -> u64 {
        self.state.losses.load(Ordering::SeqCst)
    }

    /// Counters.
    pub fn stats(&self) -> HandsetStats {
        let s = &self.state;
        let capture_dropped = self.consumer().dropped();
        HandsetStats {
            device: self.device.clone(),
            capture_rate: s.capture_rate.load(Ordering::Relaxed),
            playback_rate: s.playback_rate.load(Ordering::Relaxed),
            captured_frames: s.captured.load(Ordering::Relaxed),
            capture_dropped,
            capture_xruns: s.capture_xruns.load(Ordering::Relaxed),
            playback_xruns: s.playback_xruns.load(Ordering::Relaxed),
            playback_gaps: s.playback_gaps.load(Ordering::Relaxed),
            device_losses: s.losses.load(Ordering::Relaxed),
            opens: s.opens.load(Ordering::Relaxed),
        }
    }

    /// Stops the threads and closes the device (waits for the threads,
    /// which notice within 200 ms).
    pub fn stop(&self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Handset {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Recovers from an xrun or an interrupted call, counting it; a lost
/// device is returned as the error.
fn recover(dev: &Device, e: alsa::Error, xruns: &AtomicU64) -> Result<(), Ended> {
    if classify(e.errno()) == ErrorKind::Lost {
        return Err(Ended::Alsa(e));
    }
    xruns.fetch_add(1, Ordering::Relaxed);
    dev.pcm.try_recover(e, true)?;
    Ok(())
}

/// Opens, runs and reopens one side of the device until stopped.
fn supervise(
    config: &HandsetConfig,
    state: &State,
    direction: Direction,
    online: &AtomicBool,
    mut run: impl FnMut(&Device) -> Result<(), Ended>,
) {
    let mut backoff = Backoff::new(config.reopen_min, config.reopen_max);
    let mut reported = false;
    while !state.stopped() {
        let dev = match device::open(&config.device, direction) {
            Ok(d) => d,
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "handset {direction} unavailable; retrying");
                    reported = true;
                }
                state.sleep(backoff.delay());
                continue;
            }
        };
        backoff.reset();
        reported = false;
        state.opens.fetch_add(1, Ordering::Relaxed);
        tracing::info!(device = %config.device, rate = dev.rate, channels = dev.channels,
            period = dev.period, buffer = dev.buffer, "handset {direction} open");
        online.store(true, Ordering::SeqCst);
        let result = run(&dev);
        online.store(false, Ordering::SeqCst);
        drop(dev);
        if let Err(e) = result {
            state.losses.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(device = %config.device, error = %e,
                "handset device lost ({direction}); reopening");
            state.sleep(backoff.delay());
        }
    }
}

fn capture_thread(config: &HandsetConfig, state: &State, mut tx: Producer) {
    supervise(
        config,
        state,
        Direction::Capture,
        &state.capture_online,
        |dev| capture(dev, config, state, &mut tx),
    );
}

fn capture(
    dev: &Device,
    config: &HandsetConfig,
    state: &State,
    tx: &mut Producer,
) -> Result<(), Ended> {
    let io = dev.pcm.io_i16()?;
    let mut buf = vec![0i16; dev.period * dev.channels];
    let mut framer = CaptureFramer::new(dev.rate, dev.channels, dev.period).map_err(Ended::Rate)?;
    state.capture_rate.store(dev.rate, Ordering::Relaxed);
    // Slack of three periods: a real device never gets that far ahead.
    let mut pacer = Pacer::new(dev.rate, Duration::from_millis(60), Instant::now());
    let mut quiet = Duration::ZERO;
    loop {
        if state.stopped() {
            let _ = dev.pcm.drop();
            return Ok(());
        }
        match dev.pcm.wait(Some(WAIT_MS)) {
            Ok(true) => quiet = Duration::ZERO,
            Ok(false) => {
                quiet += Duration::from_millis(WAIT_MS.into());
                if quiet >= config.stall {
                    return Err(Ended::Stalled(quiet));
                }
                continue;
            }
            Err(e) => {
                recover(dev, e, &state.capture_xruns)?;
                let _ = dev.pcm.start();
                continue;
            }
        }
        // The `null` slave reports frames read without writing them: make
        // that silence rather than the previous period again.
        buf.fill(0);
        match io.readi(&mut buf) {
            Ok(n) => {
                framer.push(&buf[..n * dev.channels], |f| {
                    if tx.push(*f) {
                        state.captured.fetch_add(1, Ordering::Relaxed);
                    }
                });
                pacer.advance(n);
                if let Some(d) = pacer.ahead(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            Err(e) => {
                recover(dev, e, &state.capture_xruns)?;
                framer.reset();
                let _ = dev.pcm.start();
            }
        }
    }
}

fn playback_thread(config: &HandsetConfig, state: &State, mut rx: Consumer) {
    supervise(
        config,
        state,
        Direction::Playback,
        &state.playback_online,
        |dev| playback(dev, config, state, &mut rx),
    );
}

fn playback(
    dev: &Device,
    config: &HandsetConfig,
    state: &State,
    rx: &mut Consumer,
) -> Result<(), Ended> {
    let io = dev.pcm.io_i16()?;
    let mut shaper = PlaybackShaper::new(dev.rate, dev.channels).map_err(Ended::Rate)?;
    state.playback_rate.store(dev.rate, Ordering::Relaxed);
    // The device buffer plus two frames: a real device blocks in writei
    // before getting that far ahead.
    let buffer_ms = (dev.buffer as u64 * 1000) / u64::from(dev.rate.max(1));
    let mut pacer = Pacer::new(
        dev.rate,
        Duration::from_millis(buffer_ms + 40),
        Instant::now(),
    );
    loop {
        if state.stopped() {
            let _ = dev.pcm.drop();
            return Ok(());
        }
        let frame = rx.pop_or_silence();
        state.playback_gaps.store(rx.underruns(), Ordering::Relaxed);
        let samples = shaper.shape(&frame);
        let mut off = 0;
        let mut quiet = Duration::ZERO;
        while off < samples.len() {
            if state.stopped() {
                let _ = dev.pcm.drop();
                return Ok(());
            }
            match dev.pcm.wait(Some(WAIT_MS)) {
                Ok(true) => quiet = Duration::ZERO,
                Ok(false) => {
                    quiet += Duration::from_millis(WAIT_MS.into());
                    if quiet >= config.stall {
                        return Err(Ended::Stalled(quiet));
                    }
                    continue;
                }
                Err(e) => {
                    recover(dev, e, &state.playback_xruns)?;
                    continue;
                }
            }
            match io.writei(&samples[off..]) {
                Ok(n) => off += n * dev.channels,
                Err(e) => recover(dev, e, &state.playback_xruns)?,
            }
        }
        pacer.advance(samples.len() / dev.channels);
        if let Some(d) = pacer.ahead(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

/// Moves robot speech from the playout queue into the playback ring as
/// the device takes it (silence when the robot is quiet).
fn pump(playout: &Playout, state: &State, mut tx: Producer) {
    let mut frame = Frame8k::SILENCE;
    while !state.stopped() {
        while tx.has_room() {
            playout.next_frame(&mut frame, Instant::now());
            tx.push(frame);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_device_is_retried_and_stops_cleanly() {
        let mut config = HandsetConfig::new("vb_no_such_device");
        config.reopen_min = Duration::from_millis(10);
        config.reopen_max = Duration::from_millis(20);
        let h = Handset::start(config).unwrap();
        assert!(!h.wait_online(Duration::from_millis(200)));
        assert!(h.next_frame(Duration::from_millis(50)).is_none());
        assert_eq!(h.losses(), 0, "never opened, never lost");
        h.stop();
        assert_eq!(h.stats().opens, 0);
    }
}
