//! Band-limited sample-rate conversion between any two rates (8000 for
//! G.711 calls, 16000 for VAD/STT, 22050 for Piper voices, ...), built on
//! rubato's synchronous FFT resampler, whose filter removes everything above
//! the lower Nyquist frequency so downsampling does not alias.
//!
//! [`StreamResampler`] takes chunks of any size (TTS audio sentence by
//! sentence) and its output, once flushed, equals [`resample`] of the whole
//! input: same length, same samples, delay already compensated.

use rubato::{FftFixedIn, Resampler};

use crate::{AudioError, Pcm};

/// Highest rate accepted (well above anything audio hardware produces);
/// bounds the FFT sizes a pair of coprime rates can ask for.
pub const MAX_RATE: u32 = 384_000;

/// Resamples a whole buffer. The output has `round(len * to / from)`
/// samples and is time-aligned with the input (no leading filter delay).
pub fn resample(pcm: &Pcm, to_rate: u32) -> Result<Pcm, AudioError> {
    if pcm.rate == to_rate {
        check_rate(to_rate)?;
        return Ok(pcm.clone());
    }
    let mut rs = StreamResampler::new(pcm.rate, to_rate)?;
    let mut out = Vec::with_capacity(output_len(pcm.len() as u64, pcm.rate, to_rate) as usize);
    rs.push_into(&pcm.samples, &mut out)?;
    rs.flush_into(&mut out)?;
    Ok(Pcm::new(to_rate, out))
}

/// Number of output samples for `input_len` samples converted `from` -> `to`.
pub fn output_len(input_len: u64, from: u32, to: u32) -> u64 {
    if from == 0 {
        return 0;
    }
    (input_len * u64::from(to) + u64::from(from) / 2) / u64::from(from)
}

/// A resampler fed in chunks of any size.
///
/// Output lags input by the filter length (tens of ms), so a push may return
/// fewer samples than its share; [`StreamResampler::flush_into`] at the end of
/// the stream drains the rest and trims to the exact length, then readies
/// the resampler for a new stream. Not for the real-time thread: pushes may
/// grow internal buffers.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` when `from == to`: a copy, no filtering.
    inner: Option<FftFixedIn<f32>>,
    chunk_in: usize,
    /// Input not yet forming a whole chunk.
    pending: Vec<f32>,
    scratch_out: Vec<Vec<f32>>,
    /// Leading output samples still to discard (the filter delay).
    skip: usize,
    delay: usize,
    pushed_in: u64,
    emitted_out: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("chunk_in", &self.chunk_in)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// Builds a resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        check_rate(from)?;
        check_rate(to)?;
        let mut me = Self {
            from,
            to,
            inner: None,
            chunk_in: 0,
            pending: Vec::new(),
            scratch_out: Vec::new(),
            skip: 0,
            delay: 0,
            pushed_in: 0,
            emitted_out: 0,
        };
        if from == to {
            return Ok(me);
        }
        let g = gcd(from, to);
        let unit_in = (from / g) as usize;
        // ~50 ms chunks: long enough for a sharp anti-alias filter (the
        // filter is as long as the FFT), short enough that streamed TTS
        // audio is not held back noticeably (delay is half a chunk).
        let target = (from as usize / 20).max(unit_in);
        let chunk_in = target.div_ceil(unit_in) * unit_in;
        let inner = FftFixedIn::<f32>::new(from as usize, to as usize, chunk_in, 1, 1)
            .map_err(|source| AudioError::ResamplerSetup { from, to, source })?;
        me.delay = inner.output_delay();
        me.skip = me.delay;
        me.scratch_out = inner.output_buffer_allocate(true);
        me.chunk_in = inner.input_frames_next();
        me.pending = Vec::with_capacity(me.chunk_in * 2);
        me.inner = Some(inner);
        Ok(me)
    }

    /// Input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Filter delay in output samples: how far output lags input before a flush.
    pub fn delay(&self) -> usize {
        self.delay
    }

    /// Pushes input and returns whatever output is ready.
    pub fn push(&mut self, input: &[f32]) -> Result<Vec<f32>, AudioError> {
        let mut out = Vec::new();
        self.push_into(input, &mut out)?;
        Ok(out)
    }

    /// Pushes input and appends ready output to `out` (reusing its capacity).
    pub fn push_into(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.pushed_in += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.emitted_out += input.len() as u64;
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        let mut pos = 0;
        while self.pending.len() - pos >= self.chunk_in {
            self.process_chunk(pos, out, u64::MAX)?;
            pos += self.chunk_in;
        }
        self.pending.drain(..pos);
        Ok(())
    }

    /// Ends the stream: returns the remaining output, trimmed so the total
    /// is exactly [`output_len`] of everything pushed, and resets for reuse.
    pub fn flush(&mut self) -> Result<Vec<f32>, AudioError> {
        let mut out = Vec::new();
        self.flush_into(&mut out)?;
        Ok(out)
    }

    /// [`StreamResampler::flush`] appending to `out`.
    pub fn flush_into(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.inner.is_some() {
            let total = output_len(self.pushed_in, self.from, self.to);
            // Zero padding pushes the delayed tail out of the filter.
            while self.emitted_out < total {
                self.pending.resize(self.chunk_in, 0.0);
                self.process_chunk(0, out, total)?;
                self.pending.clear();
            }
        }
        self.reset();
        Ok(())
    }

    /// Drops all buffered audio and filter state.
    pub fn reset(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.reset();
        }
        self.pending.clear();
        self.skip = self.delay;
        self.pushed_in = 0;
        self.emitted_out = 0;
    }

    /// Runs one chunk starting at `pending[pos]`, emitting at most up to
    /// `limit` total output samples.
    fn process_chunk(
        &mut self,
        pos: usize,
        out: &mut Vec<f32>,
        limit: u64,
    ) -> Result<(), AudioError> {
        let (from, to) = (self.from, self.to);
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let input = [&self.pending[pos..pos + self.chunk_in]];
        let (_, produced) = inner
            .process_into_buffer(&input, &mut self.scratch_out, None)
            .map_err(|source| AudioError::Resample { from, to, source })?;
        let mut fresh = &self.scratch_out[0][..produced];
        let skipped = self.skip.min(fresh.len());
        fresh = &fresh[skipped..];
        self.skip -= skipped;
        let room = limit
            .saturating_sub(self.emitted_out)
            .min(fresh.len() as u64) as usize;
        out.extend_from_slice(&fresh[..room]);
        self.emitted_out += room as u64;
        Ok(())
    }
}

fn check_rate(rate: u32) -> Result<(), AudioError> {
    if rate == 0 || rate > MAX_RATE {
        return Err(AudioError::InvalidRate {
            rate,
            max: MAX_RATE,
        });
    }
    Ok(())
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn tone(rate: u32, hz: f32, ms: u32, amp: f32) -> Pcm {
        let n = crate::pcm::samples_for_ms(rate, ms);
        Pcm::new(
            rate,
            (0..n)
                .map(|i| amp * (2.0 * PI * hz * i as f32 / rate as f32).sin())
                .collect(),
        )
    }

    /// Normalised cross-correlation at lag 0.
    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let ab: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let aa: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        let bb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
        (ab / (aa * bb).sqrt()) as f32
    }

    /// Power of `hz` in `x` by correlating with a quadrature pair (a
    /// one-bin DFT), relative to total power: ~1.0 for a pure tone at `hz`.
    fn share_at(x: &[f32], rate: u32, hz: f32) -> f32 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &s) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f64::from(hz) * i as f64 / f64::from(rate);
            re += f64::from(s) * ph.cos();
            im += f64::from(s) * ph.sin();
        }
        let n = x.len() as f64;
        let tone_power = 2.0 * (re * re + im * im) / (n * n);
        let total: f64 = x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / n;
        (tone_power / total) as f32
    }

    /// Skips the edges, where the filter sees the start/end of the signal.
    fn middle(x: &[f32]) -> &[f32] {
        &x[x.len() / 10..x.len() * 9 / 10]
    }

    #[test]
    fn sine_survives_16k_to_8k_and_back() {
        let orig = tone(16000, 1000.0, 1000, 0.5);
        let down = resample(&orig, 8000).unwrap();
        let back = resample(&down, 16000).unwrap();
        assert_eq!((down.len(), back.len()), (8000, 16000));
        let c = correlation(middle(&orig.samples), middle(&back.samples));
        assert!(c > 0.999, "correlation {c}");
        let gain = back.rms() / orig.rms();
        assert!((gain - 1.0).abs() < 0.02, "gain {gain}");
    }

    #[test]
    fn length_ratio_is_exact_for_the_product_rates() {
        for (from, to, n_in, n_out) in [
            (22050, 8000, 22050, 8000),
            (22050, 16000, 11025, 8000),
            (8000, 22050, 160, 441),
            (44100, 48000, 44100, 48000),
            (16000, 8000, 1001, 501),
            (8000, 16000, 1, 2),
        ] {
            let out = resample(&Pcm::new(from, vec![0.1; n_in]), to).unwrap();
            assert_eq!(out.len(), n_out, "{from} -> {to}");
            assert_eq!(out.rate, to);
        }
    }

    #[test]
    fn out_of_band_tone_does_not_alias_into_8k() {
        // 5 kHz at 22050 Hz would fold to 3 kHz at 8000 Hz without a filter.
        let hi = resample(&tone(22050, 5000.0, 1000, 0.5), 8000).unwrap();
        let leaked = crate::pcm::rms(middle(&hi.samples)) / (0.5 * std::f32::consts::FRAC_1_SQRT_2);
        // Measured -68 dB; the edges are excluded because switching a tone
        // on is itself broadband, not aliasing.
        assert!(
            crate::pcm::to_dbfs(leaked) < -60.0,
            "5 kHz leaked at {} dB",
            crate::pcm::to_dbfs(leaked)
        );
    }

    #[test]
    fn in_band_tone_passes_without_spurious_energy() {
        // 3.5 kHz is inside the 8 kHz output's band (Nyquist 4 kHz): it must
        // survive, and all output energy must sit at 3.5 kHz, not at an alias.
        let out = resample(&tone(22050, 3500.0, 1000, 0.5), 8000).unwrap();
        let m = middle(&out.samples);
        let share = share_at(m, 8000, 3500.0);
        assert!(share > 0.99, "share of energy at 3.5 kHz: {share}");
        let gain = crate::pcm::rms(m) / (0.5 * std::f32::consts::FRAC_1_SQRT_2);
        // Measured: gain 1.000, 99.99999 % of the energy at 3.5 kHz.
        assert!(gain > 0.95, "3.5 kHz attenuated to {gain}");
    }

    #[test]
    fn streaming_in_odd_chunks_equals_whole_buffer() {
        let input = tone(22050, 440.0, 700, 0.3);
        let whole = resample(&input, 8000).unwrap();
        let mut rs = StreamResampler::new(22050, 8000).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        for size in [1usize, 7, 100, 441, 2000, 13].iter().cycle() {
            let end = (pos + size).min(input.len());
            rs.push_into(&input.samples[pos..end], &mut out).unwrap();
            pos = end;
            if pos == input.len() {
                break;
            }
        }
        rs.flush_into(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        let max_diff = out
            .iter()
            .zip(&whole.samples)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(max_diff < 1e-4, "max difference {max_diff}");

        // After a flush the resampler starts a fresh stream.
        let again = [rs.push(&input.samples).unwrap(), rs.flush().unwrap()].concat();
        assert_eq!(again.len(), whole.len());
    }

    #[test]
    fn output_is_time_aligned() {
        // An impulse in the middle stays in the middle after conversion.
        let mut x = vec![0.0f32; 16000];
        x[8000] = 1.0;
        let out = resample(&Pcm::new(16000, x), 8000).unwrap();
        let peak = out
            .samples
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        assert!((peak as i64 - 4000).abs() <= 1, "peak at {peak}");
    }

    #[test]
    fn same_rate_is_a_copy_and_bad_rates_are_errors() {
        let p = tone(16000, 100.0, 10, 0.5);
        assert_eq!(resample(&p, 16000).unwrap(), p);
        assert!(matches!(
            resample(&p, 0),
            Err(AudioError::InvalidRate { rate: 0, .. })
        ));
        assert!(matches!(
            StreamResampler::new(16000, 1_000_000),
            Err(AudioError::InvalidRate {
                rate: 1_000_000,
                ..
            })
        ));
        assert!(resample(&Pcm::new(0, vec![0.0; 4]), 8000).is_err());
    }
}
