//! [`Pcm`]: an owned mono buffer of f32 samples at a known rate, the unit
//! every non-real-time stage (WAV files, resampling, STT input, TTS output,
//! the call recorder) passes around.

use crate::AudioError;

/// Scale between i16 and f32 samples. 32768 (not 32767) so that every i16
/// survives `from_i16` -> `to_i16` exactly.
const I16_SCALE: f32 = 32768.0;

/// Mono audio: `samples` are nominally in [-1, 1] at `rate` Hz.
///
/// Values outside [-1, 1] are allowed in the buffer (a mix may overshoot);
/// they are clipped only when converted to integers ([`Pcm::to_i16`],
/// [`crate::wav::write`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pcm {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Samples, one channel.
    pub samples: Vec<f32>,
}

impl Pcm {
    /// Wraps samples at a rate.
    pub fn new(rate: u32, samples: Vec<f32>) -> Self {
        Self { rate, samples }
    }

    /// `ms` milliseconds of digital silence.
    pub fn silence(rate: u32, ms: u32) -> Self {
        Self {
            rate,
            samples: vec![0.0; samples_for_ms(rate, ms)],
        }
    }

    /// Converts 16-bit samples (full scale 32768).
    pub fn from_i16(rate: u32, samples: &[i16]) -> Self {
        Self {
            rate,
            samples: samples.iter().map(|&s| f32::from(s) / I16_SCALE).collect(),
        }
    }

    /// Converts to 16-bit samples, clipping to the i16 range (NaN becomes 0).
    pub fn to_i16(&self) -> Vec<i16> {
        self.samples.iter().map(|&s| f32_to_i16(s)).collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Duration in whole milliseconds (rounded down); 0 when `rate` is 0.
    pub fn duration_ms(&self) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / u64::from(self.rate)
    }

    /// Appends `ms` milliseconds of silence (the call recorder pads turns
    /// with it so the recording keeps real time).
    pub fn append_silence(&mut self, ms: u32) {
        let n = samples_for_ms(self.rate, ms);
        self.samples.resize(self.samples.len() + n, 0.0);
    }

    /// Appends another buffer of the same rate.
    ///
    /// An empty `self` with rate 0 (the [`Default`]) adopts the other rate,
    /// so a recorder can start from `Pcm::default()`.
    pub fn append(&mut self, other: &Pcm) -> Result<(), AudioError> {
        if self.rate == 0 && self.samples.is_empty() {
            self.rate = other.rate;
        }
        if other.rate != self.rate {
            return Err(AudioError::RateMismatch {
                expected: self.rate,
                found: other.rate,
            });
        }
        self.samples.extend_from_slice(&other.samples);
        Ok(())
    }

    /// Root-mean-square level (linear, full scale 1.0); 0 for an empty buffer.
    pub fn rms(&self) -> f32 {
        rms(&self.samples)
    }

    /// RMS level in dBFS (a full-scale sine is about -3 dBFS); `-inf` for
    /// digital silence.
    pub fn dbfs(&self) -> f32 {
        to_dbfs(self.rms())
    }

    /// Peak absolute sample value.
    pub fn peak(&self) -> f32 {
        self.samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()))
    }
}

/// Number of samples in `ms` milliseconds at `rate`, rounded to nearest.
pub fn samples_for_ms(rate: u32, ms: u32) -> usize {
    ((u64::from(rate) * u64::from(ms) + 500) / 1000) as usize
}

/// Converts one f32 sample to i16 with clipping; NaN maps to 0.
pub fn f32_to_i16(s: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is exactly the clipping wanted.
    (s * I16_SCALE).round() as i16
}

/// RMS of f32 samples; 0 for an empty slice.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// RMS of i16 samples on the same full scale as [`rms`].
pub fn rms_i16(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| {
            let x = f64::from(s) / f64::from(I16_SCALE);
            x * x
        })
        .sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Linear level to dBFS; `-inf` for 0.
pub fn to_dbfs(level: f32) -> f32 {
    20.0 * level.log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_round_trip_is_exact_for_every_value() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        assert_eq!(Pcm::from_i16(8000, &all).to_i16(), all);
    }

    #[test]
    fn to_i16_clips_and_maps_nan_to_zero() {
        let p = Pcm::new(8000, vec![2.0, -2.0, f32::NAN, 1.0, -1.0]);
        assert_eq!(p.to_i16(), vec![32767, -32768, 0, 32767, -32768]);
    }

    #[test]
    fn duration_counts_whole_milliseconds() {
        assert_eq!(Pcm::silence(16000, 1500).duration_ms(), 1500);
        assert_eq!(Pcm::new(22050, vec![0.0; 22049]).duration_ms(), 999);
        assert_eq!(Pcm::new(0, vec![0.0; 10]).duration_ms(), 0);
    }

    #[test]
    fn append_checks_rate_and_default_adopts_it() {
        let mut rec = Pcm::default();
        rec.append(&Pcm::silence(8000, 20)).unwrap();
        rec.append_silence(10);
        assert_eq!((rec.rate, rec.len()), (8000, 240));
        let err = rec.append(&Pcm::silence(16000, 20)).unwrap_err();
        assert!(matches!(
            err,
            AudioError::RateMismatch {
                expected: 8000,
                found: 16000
            }
        ));
        assert_eq!(
            rec.len(),
            240,
            "a refused append must not change the buffer"
        );
    }

    #[test]
    fn levels_of_a_full_scale_sine() {
        let p = Pcm::new(
            8000,
            (0..8000)
                .map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 8000.0).sin())
                .collect(),
        );
        assert!((p.dbfs() + 3.01).abs() < 0.05, "{}", p.dbfs());
        assert!((p.peak() - 1.0).abs() < 1e-6);
        assert_eq!(Pcm::silence(8000, 10).dbfs(), f32::NEG_INFINITY);
        assert!((rms_i16(&[16384, -16384]) - 0.5).abs() < 1e-6);
    }
}
