//! Benchmark: this crate's short-clip path against the plain whisper.cpp path
//! (default `full()` on the 30 s window), same model, same clips, same threads.
//! Not a timed test: run it on the target box (`voiceblock bench stt`).

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use crate::window::Budget;
use crate::{
    word_error_rate, Lang, Language, SttError, TranscribeOptions, Transcriber, WhisperConfig,
    WhisperTranscriber,
};

/// One clip to time.
#[derive(Debug, Clone)]
pub struct BenchClip {
    /// Name shown in the report ("en 2 s").
    pub name: String,
    /// Mono 16 kHz audio.
    pub audio_16k: Vec<f32>,
    /// Language spoken.
    pub lang: Lang,
    /// What was said, to score both paths; None skips scoring.
    pub reference: Option<String>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Models to compare (ggml files).
    pub models: Vec<PathBuf>,
    /// whisper.cpp threads.
    pub threads: usize,
    /// Timed runs per clip and path; the median is reported.
    pub runs: usize,
}

/// Result for one model and clip.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Model file name.
    pub model: String,
    /// Clip name.
    pub clip: String,
    /// Clip length.
    pub audio_ms: u32,
    /// Encoder window this crate chose.
    pub audio_ctx: u32,
    /// Median wall time of this crate's path.
    pub tuned_ms: f64,
    /// Median wall time of the plain path.
    pub plain_ms: f64,
    /// Text from this crate's path (filtered).
    pub tuned_text: String,
    /// Text from the plain path.
    pub plain_text: String,
    /// Word error rate of each path, when the clip has a reference.
    pub wer: Option<(f32, f32)>,
}

impl BenchRow {
    /// How many times faster this crate's path was.
    pub fn speedup(&self) -> f64 {
        if self.tuned_ms > 0.0 {
            self.plain_ms / self.tuned_ms
        } else {
            0.0
        }
    }
}

/// All rows, printable as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Threads used.
    pub threads: usize,
    /// Runs per median.
    pub runs: usize,
    /// One row per model and clip the model can transcribe.
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "whisper, {} threads, median of {} runs (ms); WER tuned/plain",
            self.threads, self.runs
        )?;
        writeln!(
            f,
            "{:<20} {:<10} {:>8} {:>6} {:>9} {:>9} {:>8} {:>13}",
            "model", "clip", "audio", "ctx", "tuned", "plain", "speedup", "WER"
        )?;
        for r in &self.rows {
            let wer = r
                .wer
                .map(|(t, p)| format!("{t:.2}/{p:.2}"))
                .unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "{:<20} {:<10} {:>8} {:>6} {:>9.0} {:>9.0} {:>7.2}x {:>13}",
                r.model,
                r.clip,
                r.audio_ms,
                r.audio_ctx,
                r.tuned_ms,
                r.plain_ms,
                r.speedup(),
                wer
            )?;
        }
        Ok(())
    }
}

/// Times both paths on every clip each model supports (English-only models
/// skip Russian clips). One untimed warm-up per clip and path; the tuned
/// path's deadline is lifted (see [`Budget`]) so both run to completion.
pub fn bench(config: &BenchConfig, clips: &[BenchClip]) -> Result<BenchReport, SttError> {
    let runs = config.runs.max(1);
    let mut rows = Vec::new();
    for model in &config.models {
        let (mut t, name) = load_untimed(model, config.threads, true)?;
        for clip in clips {
            if clip.lang == Lang::Ru && !t.is_multilingual() {
                continue;
            }
            let opts = TranscribeOptions {
                language: match clip.lang {
                    Lang::En => Language::En,
                    Lang::Ru => Language::Ru,
                },
                ..TranscribeOptions::default()
            };
            let mut last = t.transcribe(&clip.audio_16k, &opts)?;
            let mut tuned = Vec::with_capacity(runs);
            for _ in 0..runs {
                let start = Instant::now();
                last = t.transcribe(&clip.audio_16k, &opts)?;
                tuned.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            let mut plain_text = t.transcribe_plain(&clip.audio_16k, clip.lang)?;
            let mut plain = Vec::with_capacity(runs);
            for _ in 0..runs {
                let start = Instant::now();
                plain_text = t.transcribe_plain(&clip.audio_16k, clip.lang)?;
                plain.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            let wer = clip.reference.as_deref().map(|r| {
                (
                    word_error_rate(r, &last.text),
                    word_error_rate(r, &plain_text),
                )
            });
            let row = BenchRow {
                model: name.clone(),
                clip: clip.name.clone(),
                audio_ms: last.audio_ms,
                audio_ctx: last.audio_ctx,
                tuned_ms: median(&mut tuned),
                plain_ms: median(&mut plain),
                tuned_text: last.text,
                plain_text,
                wer,
            };
            // A full run takes minutes on a loaded box: show rows as they land.
            tracing::info!(
                model = %row.model, clip = %row.clip, audio_ctx = row.audio_ctx,
                tuned_ms = row.tuned_ms, plain_ms = row.plain_ms, wer = ?row.wer,
                "bench row"
            );
            rows.push(row);
        }
    }
    Ok(BenchReport {
        threads: config.threads,
        runs,
        rows,
    })
}

/// One model and encoder-window floor over a whole clip set.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    /// Model file name.
    pub model: String,
    /// Floor given to the window rule (0: the clip's own frames plus margin).
    pub floor: u32,
    /// Whether whisper's temperature fallback was on ([`WhisperConfig::fallback`]).
    pub fallback: bool,
    /// Clips transcribed.
    pub clips: usize,
    /// Word error rate over all clips (errors / reference words).
    pub wer: f32,
    /// Clips whose own WER was above [`BAD_CLIP_WER`].
    pub bad: usize,
    /// Median wall time per clip.
    pub median_ms: f64,
    /// The slowest clip's wall time.
    pub max_ms: f64,
    /// Sum of wall times.
    pub total_ms: f64,
}

/// A clip whose word error rate is above this counts as a failed recognition.
pub const BAD_CLIP_WER: f32 = 0.3;

/// Every clip once per model, temperature-fallback setting and floor (after
/// one warm-up transcription per model): what a lower window floor, or
/// decoding without whisper's fallback, costs in accuracy and buys in time.
/// Per-clip results go to the log at info level, with the decoder's
/// confidence, so the failures can be looked at.
pub fn window_sweep(
    config: &BenchConfig,
    clips: &[BenchClip],
    floors: &[u32],
    fallbacks: &[bool],
) -> Result<Vec<WindowRow>, SttError> {
    let mut rows = Vec::new();
    for (model, &fallback) in config
        .models
        .iter()
        .flat_map(|m| fallbacks.iter().map(move |f| (m, f)))
    {
        let (mut t, name) = load_untimed(model, config.threads, fallback)?;
        let usable: Vec<&BenchClip> = clips
            .iter()
            .filter(|c| c.lang == Lang::En || t.is_multilingual())
            .collect();
        if let Some(first) = usable.first() {
            t.transcribe(&first.audio_16k, &TranscribeOptions::default())?;
        }
        for &floor in floors {
            let (mut words, mut errors, mut bad) = (0usize, 0f32, 0usize);
            let mut times = Vec::with_capacity(usable.len());
            for clip in &usable {
                let audio_ms = (clip.audio_16k.len() as u64 * 1000 / 16_000) as u32;
                let opts = TranscribeOptions {
                    language: match clip.lang {
                        Lang::En => Language::En,
                        Lang::Ru => Language::Ru,
                    },
                    audio_ctx: Some(crate::window::audio_ctx_for(audio_ms, floor.max(1))),
                    ..TranscribeOptions::default()
                };
                let start = Instant::now();
                let out = t.transcribe(&clip.audio_16k, &opts)?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                times.push(ms);
                let reference = clip.reference.as_deref().unwrap_or_default();
                let n = crate::wer::wer_words(reference).len();
                let wer = word_error_rate(reference, &out.text);
                words += n;
                errors += wer * n as f32;
                if wer > BAD_CLIP_WER {
                    bad += 1;
                }
                let seg = out.segments.first();
                tracing::info!(
                    model = %name, floor, fallback, clip = %clip.name, audio_ms, audio_ctx = out.audio_ctx,
                    ms = ms as u64, wer, tokens = seg.map(|s| s.tokens),
                    mean_logprob = seg.map(|s| s.mean_logprob), text = %out.raw_text,
                    "window sweep clip"
                );
            }
            let total_ms = times.iter().sum();
            let max_ms = times.iter().copied().fold(0.0, f64::max);
            rows.push(WindowRow {
                model: name.clone(),
                floor,
                fallback,
                clips: usable.len(),
                wer: if words > 0 {
                    errors / words as f32
                } else {
                    0.0
                },
                bad,
                median_ms: median(&mut times),
                max_ms,
                total_ms,
            });
        }
    }
    Ok(rows)
}

/// Loads `model` with the deadline lifted, so every path is timed to
/// completion and a stall shows up as time rather than as a truncated run;
/// returns it with the file's name.
fn load_untimed(
    model: &std::path::Path,
    threads: usize,
    fallback: bool,
) -> Result<(WhisperTranscriber, String), SttError> {
    let whisper_config = WhisperConfig {
        threads,
        fallback,
        budget: Budget {
            base_deadline_ms: 600_000,
            ..Budget::default()
        },
        ..WhisperConfig::default()
    };
    let t = WhisperTranscriber::load(model, whisper_config)?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((t, name))
}

/// Median of a non-empty sample (the mean of the middle two for even counts).
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 0 {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn report_prints_one_line_per_row() {
        let report = BenchReport {
            threads: 2,
            runs: 3,
            rows: vec![BenchRow {
                model: "ggml-base.bin".into(),
                clip: "en 2 s".into(),
                audio_ms: 2000,
                audio_ctx: 768,
                tuned_ms: 400.0,
                plain_ms: 1200.0,
                tuned_text: "hi".into(),
                plain_text: "hi".into(),
                wer: Some((0.0, 0.0)),
            }],
        };
        let text = report.to_string();
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains("3.00x"), "{text}");
    }
}
