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
        let whisper_config = WhisperConfig {
            threads: config.threads,
            // The plain path has no deadline: time both to completion, so a
            // stall shows up as time rather than as a truncated run.
            budget: Budget {
                base_deadline_ms: 600_000,
                ..Budget::default()
            },
            ..WhisperConfig::default()
        };
        let mut t = WhisperTranscriber::load(model, whisper_config)?;
        let name = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
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
