//! Per-clip decoding budget: the encoder window (`audio_ctx`), the token cap and
//! the deadline. The numbers live here, with their evidence, so they have one home.
//!
//! First evidence (shared/docs/models-and-crates.md, "what a smaller encoder
//! window buys", whisper.cpp 1.8.3, 2 threads, medians of 5 runs on read speech):
//!
//! | model, language | full window 1500 | smaller window           | WER change |
//! |-----------------|------------------|--------------------------|------------|
//! | base, English   | 1179 ms          | fixed 768: 498 ms        | none       |
//! | base, Russian   | 1338 ms          | floor 1024: 808 ms       | +1.0       |
//! | tiny.en         | 545 ms           | fixed 1024: 310 ms       | +2.1       |
//!
//! Windows sized tightly to the clip were faster still but made the models
//! loop: a short answer followed by silence comes back said twice or five
//! times over. The English floors were then swept on 20 caller lines sent
//! through the phone path (`voiceblock bench stt-window`, docs/benchmarks.md,
//! 2026-11-30), with the filter's echo rule cutting whole-phrase loops:
//!
//! | model   | floor 256            | floor 320         | floor 768         |
//! |---------|----------------------|-------------------|-------------------|
//! | base    | WER 0.069, 349 ms    | WER 0.019, 385 ms | WER 0.019, 1147 ms|
//! | tiny.en | WER 0.299, 232 ms    | WER 0.044, 189 ms | WER 0.027, 397 ms |
//!
//! (WER over all 20 lines, median time per line.) 320 is the lowest floor
//! with no loss against 768 for base, and tiny.en's one extra error there
//! is a loop the filter trims; at 256 both mis-hear and loop.
//!
//! Russian stays at 1024. The espeak Russian of that sweep was beyond base
//! at every window; people's speech gives the first evidence
//! (`voiceblock bench stt-window --human`, docs/benchmarks.md, 2026-11-30):
//! 24 Russian telephone prompts recorded by a person, 1-5 s, sent through
//! the phone path, base q8_0:
//!
//! | floor | 256 | 320 | 384 | 512 | 768 | 1024 |
//! |-------|-----|-----|-----|-----|-----|------|
//! | WER   | 0.131 | 0.131 | 0.124 | 0.124 | 0.124 | 0.131 |
//! | median, ms | 152 | 182 | 213 | 277 | 443 | 698 |
//!
//! On these prompts 384 loses no word against 1024 in a third of the time.
//! But the scripted Russian call (`appliance/call/tests/pipeline.rs`, a
//! Festival voice dictating "восемь девятьсот шестнадцать ...") comes back
//! with a wrong digit at 384 and at 512 and right at 1024, and no person
//! dictating a Russian number has been recorded yet. So Russian turns use
//! 384, and a turn where the dialog waits for digits
//! ([`crate::TranscribeOptions::digits`]) keeps 1024 ([`WindowFloors::ru_digits`]).
//! The same sweep on ten English
//! recordings of people gave base 0.054 at 320 and 0.043 at 384 and above
//! (one clip, "five five", flips), which keeps English at 320, digits or not
//! (the scripted English call's number is right at 320).
//!
//! So the rule is: a per-model, per-language floor, grown with the clip (50
//! encoder frames per second plus a margin of trailing padding) and capped
//! at the model's 1500. The fallback stays on; the token cap and the
//! deadline bound what a loop can cost.

use crate::Lang;

/// Encoder positions per second of audio: whisper's 1500 positions span 30 s.
pub const FRAMES_PER_SECOND: u32 = 50;

/// The full encoder window of every whisper model (30 s).
pub const FULL_WINDOW: u32 = 1500;

/// Extra encoder positions past the end of the speech (64 = 1.28 s): the models
/// need to see some padding after the last word or they run on into a loop.
pub const WINDOW_MARGIN: u32 = 64;

/// Windows are rounded up to this many positions so that nearby clip lengths
/// share one size (fewer distinct graph shapes for ggml to plan).
pub const WINDOW_STEP: u32 = 32;

/// Smallest encoder window per language for one model, measured to cost no or
/// little accuracy (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFloors {
    /// Floor for English speech.
    pub en: u32,
    /// Floor for Russian speech (and for language detection, which must serve both).
    pub ru: u32,
    /// Floor for Russian speech on a turn where the caller dictates digits.
    pub ru_digits: u32,
}

impl WindowFloors {
    /// whisper base: 320 costs English nothing, 384 costs Russian sentences
    /// nothing; dictated Russian numbers keep 1024 (see the module notes).
    pub const BASE: Self = Self {
        en: 320,
        ru: 384,
        ru_digits: 1024,
    };
    /// whisper tiny / tiny.en: 320 for English (loops there are trimmed by
    /// the filter); multilingual tiny's Russian is unmeasured, so 1024.
    pub const TINY: Self = Self {
        en: 320,
        ru: 1024,
        ru_digits: 1024,
    };
    /// Models not measured yet (small, medium, ...): a conservative 1024.
    pub const UNMEASURED: Self = Self {
        en: 1024,
        ru: 1024,
        ru_digits: 1024,
    };

    /// Floors for a model by whisper.cpp's type name ("tiny", "base", ...).
    pub fn for_model_type(model_type: &str) -> Self {
        match model_type {
            "base" => Self::BASE,
            "tiny" => Self::TINY,
            _ => Self::UNMEASURED,
        }
    }

    /// Floor for one language; `digits` when the caller is expected to
    /// dictate a number.
    pub fn for_lang(&self, lang: Lang, digits: bool) -> u32 {
        match (lang, digits) {
            (Lang::En, _) => self.en,
            (Lang::Ru, false) => self.ru,
            (Lang::Ru, true) => self.ru_digits,
        }
    }

    /// Floor when the language is not known yet: the larger, so detection and
    /// decoding both see enough.
    pub fn for_unknown(&self) -> u32 {
        self.en.max(self.ru)
    }
}

/// Encoder window for a clip of `audio_ms` with the given floor: the larger of
/// the floor and the clip's frames plus margin, rounded up to [`WINDOW_STEP`],
/// never above [`FULL_WINDOW`].
pub fn audio_ctx_for(audio_ms: u32, floor: u32) -> u32 {
    let clip_frames = (u64::from(audio_ms) * u64::from(FRAMES_PER_SECOND)).div_ceil(1000);
    let needed = clip_frames.saturating_add(u64::from(WINDOW_MARGIN));
    let wanted = needed.max(u64::from(floor));
    let rounded = wanted.div_ceil(u64::from(WINDOW_STEP)) * u64::from(WINDOW_STEP);
    // Capped, so the conversion back to u32 cannot truncate.
    rounded.min(u64::from(FULL_WINDOW)) as u32
}

/// Bounds on one call's decoding, on top of whisper's own temperature fallback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Tokens always allowed, however short the clip.
    pub base_tokens: u32,
    /// Tokens allowed per second of audio. Fast speech is ~3 words/s and
    /// Russian averages ~3 tokens a word in whisper's multilingual vocabulary,
    /// so 12/s leaves room for real speech and cuts a loop short.
    pub tokens_per_second: u32,
    /// Time always allowed (model warm-up, scheduling on a busy box).
    pub base_deadline_ms: u32,
    /// Time allowed per second of audio, in ms (1000 = real time). The reduced
    /// window runs at ~0.1-0.25 x real time on 2 idle x86 cores; a Pi is
    /// slower and a box under load slower still. The deadline is the last
    /// resort against a stalled fallback loop, not a latency target.
    pub deadline_ms_per_second: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            base_tokens: 16,
            tokens_per_second: 12,
            base_deadline_ms: 4000,
            deadline_ms_per_second: 1500,
        }
    }
}

/// whisper's decoder context is 448 tokens and half of it is the prompt's.
pub const MAX_TOKENS_CAP: u32 = 224;

impl Budget {
    /// Token cap for a clip of `audio_ms`.
    pub fn max_tokens(&self, audio_ms: u32) -> u32 {
        let per_clip = u64::from(self.tokens_per_second) * u64::from(audio_ms) / 1000;
        (u64::from(self.base_tokens) + per_clip).min(u64::from(MAX_TOKENS_CAP)) as u32
    }

    /// Deadline for a clip of `audio_ms`, counted from the start of `transcribe`.
    pub fn deadline_ms(&self, audio_ms: u32) -> u64 {
        u64::from(self.base_deadline_ms)
            + u64::from(self.deadline_ms_per_second) * u64::from(audio_ms) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_clips_get_the_language_floor() {
        assert_eq!(audio_ctx_for(2000, WindowFloors::BASE.en), 320);
        assert_eq!(audio_ctx_for(2000, WindowFloors::BASE.ru), 384);
        assert_eq!(audio_ctx_for(2000, WindowFloors::BASE.ru_digits), 1024);
        // 5 s = 250 frames + 64 margin = 314 -> still the floor.
        assert_eq!(audio_ctx_for(5000, WindowFloors::BASE.en), 320);
        // 10 s = 500 + 64 = 564 -> 576, past the floor.
        assert_eq!(audio_ctx_for(10_000, WindowFloors::BASE.en), 576);
    }

    #[test]
    fn long_clips_grow_past_the_floor_with_margin() {
        // 14 s = 700 frames + 64 margin = 764 -> floor 768 still covers it.
        assert_eq!(audio_ctx_for(14_000, 768), 768);
        // 16 s = 800 + 64 = 864, already a multiple of 32.
        assert_eq!(audio_ctx_for(16_000, 768), 864);
        // 16.01 s = 801 frames (rounded up) + 64 = 865 -> 896.
        assert_eq!(audio_ctx_for(16_010, 768), 896);
        // The window always covers the whole clip plus margin.
        for ms in (0..30_000).step_by(370) {
            let ctx = audio_ctx_for(ms, 768);
            assert!(ctx >= ms * FRAMES_PER_SECOND / 1000 + WINDOW_MARGIN || ctx == FULL_WINDOW);
            assert!(ctx % WINDOW_STEP == 0 || ctx == FULL_WINDOW);
        }
    }

    #[test]
    fn window_is_capped_at_the_model_maximum() {
        assert_eq!(audio_ctx_for(29_000, 768), FULL_WINDOW);
        assert_eq!(audio_ctx_for(u32::MAX, 768), FULL_WINDOW);
        assert_eq!(audio_ctx_for(1000, 4000), FULL_WINDOW);
    }

    #[test]
    fn floors_by_model_type() {
        assert_eq!(WindowFloors::for_model_type("base"), WindowFloors::BASE);
        assert_eq!(WindowFloors::for_model_type("tiny"), WindowFloors::TINY);
        assert_eq!(
            WindowFloors::for_model_type("medium"),
            WindowFloors::UNMEASURED
        );
        // Detection serves both languages; digits keep the wide window.
        assert_eq!(WindowFloors::BASE.for_unknown(), 384);
        assert_eq!(WindowFloors::BASE.for_lang(Lang::Ru, false), 384);
        assert_eq!(WindowFloors::BASE.for_lang(Lang::Ru, true), 1024);
        assert_eq!(WindowFloors::BASE.for_lang(Lang::En, true), 320);
    }

    #[test]
    fn budget_scales_with_audio_and_is_capped() {
        let b = Budget::default();
        assert_eq!(b.max_tokens(0), 16);
        assert_eq!(b.max_tokens(2000), 40);
        assert_eq!(b.max_tokens(30_000), 224);
        assert_eq!(b.deadline_ms(2000), 7000);
        assert_eq!(b.deadline_ms(u32::MAX), 4000 + u64::from(u32::MAX) * 3 / 2);
    }
}
