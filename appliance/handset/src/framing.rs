//! The handset's pure parts, without a device: device samples (any rate,
//! interleaved channels) to 8 kHz 20 ms frames and back, the pacer that
//! holds an unpaced device to real time, and the reopen backoff.
//!
//! Buffers are sized when a device is opened; per period nothing
//! allocates once the resampler (only used when the device cannot run at
//! 8 kHz) has reached its steady size in the first few periods.

use std::time::{Duration, Instant};

use vb_audio::frame::Framer8k;
use vb_audio::{AudioError, Frame8k, StreamResampler};

/// The line's rate: what the call loop takes and gives.
pub const LINE_RATE: u32 = 8_000;

fn to_f32(s: i16) -> f32 {
    f32::from(s) / 32_768.0
}

fn to_i16(s: f32) -> i16 {
    (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// Capture side: interleaved device samples in, 8 kHz mono frames out.
/// Takes the first channel (a headset's microphone is mono; a stereo-only
/// device carries it on both).
#[derive(Debug)]
pub struct CaptureFramer {
    channels: usize,
    resampler: Option<StreamResampler>,
    mono: Vec<i16>,
    mono_f: Vec<f32>,
    out_f: Vec<f32>,
    framer: Framer8k,
}

impl CaptureFramer {
    /// For a device at `rate` Hz with `channels` channels, read `period`
    /// frames at a time.
    pub fn new(rate: u32, channels: usize, period: usize) -> Result<Self, AudioError> {
        let resampler = if rate == LINE_RATE {
            None
        } else {
            Some(StreamResampler::new(rate, LINE_RATE)?)
        };
        // Room for a period and the resampler's burst (its output for a
        // push can include a chunk left over from the previous one).
        let room = period.max(160) * 4;
        Ok(CaptureFramer {
            channels: channels.max(1),
            resampler,
            mono: Vec::with_capacity(room),
            mono_f: Vec::with_capacity(room),
            out_f: Vec::with_capacity(room),
            framer: Framer8k::new(),
        })
    }

    /// Takes one read's worth of interleaved samples and calls `on_frame`
    /// for every 20 ms frame completed.
    pub fn push(&mut self, interleaved: &[i16], mut on_frame: impl FnMut(&Frame8k)) {
        let first = interleaved.iter().step_by(self.channels).copied();
        match &mut self.resampler {
            None => {
                self.mono.clear();
                self.mono.extend(first);
                self.framer.push(&self.mono, &mut on_frame);
            }
            Some(r) => {
                self.mono_f.clear();
                self.mono_f.extend(first.map(to_f32));
                self.out_f.clear();
                // A resampler error cannot happen after construction (it
                // only rejects rates); if it did, this chunk is silence.
                if r.push_into(&self.mono_f, &mut self.out_f).is_err() {
                    self.out_f.clear();
                }
                self.mono.clear();
                self.mono.extend(self.out_f.iter().copied().map(to_i16));
                self.framer.push(&self.mono, &mut on_frame);
            }
        }
    }

    /// Forgets partial frames and filter state (the device was reopened).
    pub fn reset(&mut self) {
        self.framer.clear();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
    }
}

/// Playback side: one 8 kHz frame in, interleaved device samples out.
#[derive(Debug)]
pub struct PlaybackShaper {
    channels: usize,
    resampler: Option<StreamResampler>,
    mono_f: Vec<f32>,
    out_f: Vec<f32>,
    out: Vec<i16>,
}

impl PlaybackShaper {
    /// For a device at `rate` Hz with `channels` channels.
    pub fn new(rate: u32, channels: usize) -> Result<Self, AudioError> {
        let resampler = if rate == LINE_RATE {
            None
        } else {
            Some(StreamResampler::new(LINE_RATE, rate)?)
        };
        let per_frame = (rate as usize / 50).max(160) * 4;
        Ok(PlaybackShaper {
            channels: channels.max(1),
            resampler,
            mono_f: Vec::with_capacity(160),
            out_f: Vec::with_capacity(per_frame),
            out: Vec::with_capacity(per_frame * channels.max(1)),
        })
    }

    /// The device samples for `frame`, every channel carrying it. With a
    /// resampler the count varies from frame to frame (its filter delay
    /// shifts the stream, not the total).
    pub fn shape(&mut self, frame: &Frame8k) -> &[i16] {
        self.out.clear();
        let channels = self.channels;
        match &mut self.resampler {
            None => {
                for &s in frame.iter() {
                    self.out.extend(std::iter::repeat_n(s, channels));
                }
            }
            Some(r) => {
                self.mono_f.clear();
                self.mono_f.extend(frame.iter().copied().map(to_f32));
                self.out_f.clear();
                if r.push_into(&self.mono_f, &mut self.out_f).is_err() {
                    self.out_f.clear();
                }
                for &s in &self.out_f {
                    self.out.extend(std::iter::repeat_n(to_i16(s), channels));
                }
            }
        }
        &self.out
    }
}

/// Holds a device to real time when it is not paced itself (the ALSA
/// `null` slave under the `file` plugin reads and writes as fast as it is
/// called): how long to sleep so the audio moved so far is at most `slack`
/// ahead of the wall clock. A real device blocks in `readi`/`writei` and
/// never gets ahead, so the pacer never sleeps for it.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: u32,
    slack: Duration,
    start: Instant,
    frames: u64,
}

impl Pacer {
    /// Starts the clock at `now`.
    pub fn new(rate: u32, slack: Duration, now: Instant) -> Self {
        Pacer {
            rate: rate.max(1),
            slack,
            start: now,
            frames: 0,
        }
    }

    /// Counts `frames` (device frames, per channel) moved.
    pub fn advance(&mut self, frames: usize) {
        self.frames += frames as u64;
    }

    /// How long to sleep at `now`, if the stream is ahead by more than the slack.
    pub fn ahead(&self, now: Instant) -> Option<Duration> {
        let media = Duration::from_micros(self.frames * 1_000_000 / u64::from(self.rate));
        let elapsed = now.saturating_duration_since(self.start);
        media
            .checked_sub(elapsed + self.slack)
            .filter(|d| !d.is_zero())
    }
}

/// Delays between attempts to reopen a lost device: doubling from `min`
/// up to `max`, back to `min` once the device opens.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The device opened: start from `min` next time.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(framer: &mut CaptureFramer, input: &[i16], chunk: usize) -> Vec<Frame8k> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            framer.push(c, |f| out.push(*f));
        }
        out
    }

    #[test]
    fn capture_at_8k_mono_is_cut_into_frames_unchanged() {
        let input: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let mut framer = CaptureFramer::new(8000, 1, 160).unwrap();
        let out = frames_of(&mut framer, &input, 137);
        assert_eq!(out.len(), 6);
        let flat: Vec<i16> = out.iter().flat_map(|f| f.iter().copied()).collect();
        assert_eq!(&flat[..], &input[..960]);
    }

    #[test]
    fn capture_takes_the_first_channel() {
        let input: Vec<i16> = (0..320).flat_map(|i| [i as i16, -1]).collect();
        let mut framer = CaptureFramer::new(8000, 2, 160).unwrap();
        let out = frames_of(&mut framer, &input, 320);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1][159], 319);
    }

    #[test]
    fn capture_at_48k_comes_out_at_8k_with_the_tone_kept() {
        // One second of a 440 Hz tone at 48 kHz: about 50 frames at 8 kHz.
        let input: Vec<i16> = (0..48_000)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8000.0) as i16)
            .collect();
        let mut framer = CaptureFramer::new(48_000, 1, 960).unwrap();
        let out = frames_of(&mut framer, &input, 960);
        assert!((45..=50).contains(&out.len()), "{} frames", out.len());
        let tail = &out[out.len() - 5];
        let rms = (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0).sqrt();
        assert!((4500.0..6500.0).contains(&rms), "rms {rms}");
    }

    #[test]
    fn playback_duplicates_channels_and_resamples() {
        let frame = Frame8k::from_slice(&[100; 160]).unwrap();
        let mut same = PlaybackShaper::new(8000, 2).unwrap();
        let out = same.shape(&frame);
        assert_eq!(out.len(), 320);
        assert!(out.iter().all(|&s| s == 100));
        let mut up = PlaybackShaper::new(48_000, 1).unwrap();
        let total: usize = (0..50).map(|_| up.shape(&frame).len()).sum();
        // One second in, a second's worth out less the filter delay.
        assert!((45_000..=48_000).contains(&total), "{total}");
    }

    #[test]
    fn pacer_sleeps_only_when_ahead_of_the_wall_clock() {
        let t0 = Instant::now();
        let mut p = Pacer::new(8000, Duration::from_millis(40), t0);
        p.advance(160);
        assert_eq!(p.ahead(t0), None, "20 ms ahead is within the slack");
        p.advance(800);
        // 120 ms of audio at t0: 80 ms beyond the slack.
        assert_eq!(p.ahead(t0), Some(Duration::from_millis(80)));
        assert_eq!(p.ahead(t0 + Duration::from_millis(80)), None);
        // A device that blocks (real time) never triggers a sleep.
        assert_eq!(p.ahead(t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let ms: Vec<u128> = (0..5).map(|_| b.delay().as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.delay().as_millis(), 100);
    }
}
