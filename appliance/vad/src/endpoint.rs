//! Endpointing: turns a stream of per-frame speech/non-speech decisions into
//! utterances. A pure state machine: no I/O and no clock; time is the count
//! of frames pushed times `frame_ms`, so tests run in microseconds and the
//! call loop decides where decisions and frames come from.
//!
//! ```text
//!           voiced                 min_speech reached
//!   Idle ───────────▶ Candidate ─────────────────────▶ Speech ──┐ voiced: reset silence
//!    ▲   gap > max_start_gap │                          │  ▲    │
//!    └───────────────────────┘   silence >= hangover or │  └────┘
//!    ◀────────────────────────── max_utterance (forced) ┘
//! ```

use std::collections::VecDeque;

use crate::VadError;

/// Longest pre-roll accepted; more is never useful and costs memory per call.
pub const MAX_PRE_ROLL_MS: u32 = 2_000;
/// Longest utterance accepted; bounds the audio one endpointer buffers.
pub const MAX_UTTERANCE_LIMIT_MS: u32 = 60_000;

/// Endpointing parameters, all in milliseconds (rounded up to whole frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Length of each frame pushed: 10, 20 or 30.
    pub frame_ms: u32,
    /// Voiced time needed before speech is believed; shorter bursts are
    /// clicks, breaths, line noise.
    pub min_speech_ms: u32,
    /// Unvoiced gap tolerated while still gathering `min_speech_ms`
    /// (WebRTC decisions flicker inside real speech); a longer gap discards
    /// the candidate as noise.
    pub max_start_gap_ms: u32,
    /// Silence that ends an utterance under [`Patience::Normal`].
    pub hangover_ms: u32,
    /// Silence that ends an utterance under [`Patience::Digits`]: longer,
    /// because callers pause between digit groups of a phone number.
    pub digits_hangover_ms: u32,
    /// Audio kept from before the first voiced frame, so the first
    /// syllable (whose onset the VAD misses) is not clipped.
    pub pre_roll_ms: u32,
    /// Audio kept after the last voiced frame (trailing fricatives are
    /// often classed unvoiced); at most `hangover_ms`.
    pub post_roll_ms: u32,
    /// An utterance this long is ended by force (`forced: true`).
    pub max_utterance_ms: u32,
    /// Silence after which a [`EndpointEvent::Pause`] offers the utterance
    /// so far, before the hangover decides it is over: recognition can
    /// start on it speculatively and be ready when the end is confirmed.
    /// 0 turns it off; otherwise at least `post_roll_ms` (so the pause's
    /// audio is the audio the end will carry) and below `hangover_ms`.
    pub pause_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            frame_ms: 20,
            min_speech_ms: 120,
            max_start_gap_ms: 60,
            hangover_ms: 600,
            digits_hangover_ms: 1_500,
            pre_roll_ms: 200,
            post_roll_ms: 100,
            max_utterance_ms: 15_000,
            pause_ms: 200,
        }
    }
}

/// One thing wrong with an [`EndpointConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// Frame length WebRTC VAD cannot use.
    #[error("frame_ms = {frame_ms}: must be 10, 20 or 30")]
    FrameMs {
        /// Value given.
        frame_ms: u32,
    },
    /// A duration that must span at least one frame.
    #[error("{field} = {value} ms is shorter than one frame ({frame_ms} ms)")]
    BelowOneFrame {
        /// Field name.
        field: &'static str,
        /// Value given.
        value: u32,
        /// Frame length.
        frame_ms: u32,
    },
    /// Digits patience would be less patient than normal.
    #[error("digits_hangover_ms = {digits} is shorter than hangover_ms = {normal}")]
    DigitsShorterThanNormal {
        /// digits_hangover_ms.
        digits: u32,
        /// hangover_ms.
        normal: u32,
    },
    /// Post-roll longer than the silence that ends an utterance.
    #[error("post_roll_ms = {post_roll} exceeds hangover_ms = {hangover}")]
    PostRollExceedsHangover {
        /// post_roll_ms.
        post_roll: u32,
        /// hangover_ms.
        hangover: u32,
    },
    /// A value above its hard limit.
    #[error("{field} = {value} ms exceeds the limit of {limit} ms")]
    AboveLimit {
        /// Field name.
        field: &'static str,
        /// Value given.
        value: u32,
        /// The limit.
        limit: u32,
    },
    /// The pause would not come before the end, or would cut the post-roll.
    #[error("pause_ms = {pause} must be 0 (off) or from post_roll_ms = {post_roll} up to below hangover_ms = {hangover}")]
    PauseOutOfRange {
        /// pause_ms.
        pause: u32,
        /// post_roll_ms.
        post_roll: u32,
        /// hangover_ms.
        hangover: u32,
    },
    /// The forced end would come before speech could even start.
    #[error("max_utterance_ms = {max} must exceed min_speech_ms = {min}")]
    MaxNotAboveMin {
        /// max_utterance_ms.
        max: u32,
        /// min_speech_ms.
        min: u32,
    },
}

impl EndpointConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), VadError> {
        let mut problems = Vec::new();
        let f = self.frame_ms;
        if ![10, 20, 30].contains(&f) {
            problems.push(ConfigProblem::FrameMs { frame_ms: f });
        }
        for (field, value) in [
            ("min_speech_ms", self.min_speech_ms),
            ("hangover_ms", self.hangover_ms),
            ("digits_hangover_ms", self.digits_hangover_ms),
            ("max_utterance_ms", self.max_utterance_ms),
        ] {
            if value < f {
                problems.push(ConfigProblem::BelowOneFrame {
                    field,
                    value,
                    frame_ms: f,
                });
            }
        }
        if self.digits_hangover_ms < self.hangover_ms {
            problems.push(ConfigProblem::DigitsShorterThanNormal {
                digits: self.digits_hangover_ms,
                normal: self.hangover_ms,
            });
        }
        if self.post_roll_ms > self.hangover_ms {
            problems.push(ConfigProblem::PostRollExceedsHangover {
                post_roll: self.post_roll_ms,
                hangover: self.hangover_ms,
            });
        }
        for (field, value, limit) in [
            ("pre_roll_ms", self.pre_roll_ms, MAX_PRE_ROLL_MS),
            (
                "max_utterance_ms",
                self.max_utterance_ms,
                MAX_UTTERANCE_LIMIT_MS,
            ),
            (
                "digits_hangover_ms",
                self.digits_hangover_ms,
                MAX_UTTERANCE_LIMIT_MS,
            ),
            ("max_start_gap_ms", self.max_start_gap_ms, MAX_PRE_ROLL_MS),
        ] {
            if value > limit {
                problems.push(ConfigProblem::AboveLimit {
                    field,
                    value,
                    limit,
                });
            }
        }
        if self.pause_ms != 0
            && (self.pause_ms < self.post_roll_ms.max(f) || self.pause_ms >= self.hangover_ms)
        {
            problems.push(ConfigProblem::PauseOutOfRange {
                pause: self.pause_ms,
                post_roll: self.post_roll_ms,
                hangover: self.hangover_ms,
            });
        }
        if self.max_utterance_ms <= self.min_speech_ms {
            problems.push(ConfigProblem::MaxNotAboveMin {
                max: self.max_utterance_ms,
                min: self.min_speech_ms,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VadError::Config { problems })
        }
    }

    /// Whole frames covering `ms` (rounded up); only meaningful once validated.
    fn frames(&self, ms: u32) -> u64 {
        u64::from(ms.div_ceil(self.frame_ms.max(1)))
    }
}

/// How long a pause must be before the caller is taken to have finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Patience {
    /// Ordinary conversation: `hangover_ms`.
    #[default]
    Normal,
    /// The dialog is asking for a number: `digits_hangover_ms`.
    Digits,
}

/// What the endpointer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Speech has lasted `min_speech_ms`; it began at `at_ms` (the first
    /// voiced frame). Barge-in acts on this.
    SpeechStart {
        /// Start of the first voiced frame, ms since the endpointer started.
        at_ms: u64,
    },
    /// The caller has been silent for `pause_ms` (not yet the hangover):
    /// the utterance so far, as the [`EndpointEvent::SpeechEnd`] would
    /// carry it should no voice follow. A `SpeechEnd` with the same
    /// `end_ms` confirms it; any voiced frame first makes it stale.
    Pause {
        /// Same as the matching `SpeechStart::at_ms`.
        start_ms: u64,
        /// End of the last voiced frame.
        end_ms: u64,
        /// Pre-roll + utterance + post-roll, as pushed.
        audio: Vec<i16>,
    },
    /// The utterance is over.
    SpeechEnd {
        /// Same as the matching `SpeechStart::at_ms`.
        start_ms: u64,
        /// End of the last voiced frame.
        end_ms: u64,
        /// Pre-roll + utterance + post-roll, as pushed.
        audio: Vec<i16>,
        /// True when `max_utterance_ms` cut it, not silence.
        forced: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Candidate {
        start: u64,
        voiced: u64,
        gap: u64,
    },
    Speech {
        start: u64,
        last_voiced: u64,
        silence: u64,
    },
}

/// The endpointing state machine. Feed it every frame with its VAD decision.
#[derive(Debug, Clone)]
pub struct Endpointer {
    cfg: EndpointConfig,
    patience: Patience,
    state: State,
    /// Index of the next frame to be pushed.
    frame: u64,
    /// Recent audio while idle, at most `pre_roll` frames' worth.
    pre_roll: VecDeque<i16>,
    /// Audio of the current candidate or utterance, pre-roll first.
    utterance: Vec<i16>,
    /// `utterance.len()` once the post-roll after the last voiced frame is in.
    keep_len: usize,
}

impl Endpointer {
    /// A validated endpointer, idle, at time 0, with [`Patience::Normal`].
    pub fn new(cfg: EndpointConfig) -> Result<Self, VadError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            patience: Patience::Normal,
            state: State::Idle,
            frame: 0,
            pre_roll: VecDeque::new(),
            utterance: Vec::new(),
            keep_len: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Switches patience; takes effect on the current pause too.
    pub fn set_patience(&mut self, patience: Patience) {
        self.patience = patience;
    }

    /// Current patience.
    pub fn patience(&self) -> Patience {
        self.patience
    }

    /// Time pushed so far (ms since start).
    pub fn now_ms(&self) -> u64 {
        self.frame * u64::from(self.cfg.frame_ms)
    }

    /// True between `SpeechStart` and `SpeechEnd`.
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// Feeds one frame and its VAD decision; returns at most one event.
    pub fn push(&mut self, frame: &[i16], is_speech: bool) -> Option<EndpointEvent> {
        let idx = self.frame;
        self.frame += 1;
        match self.state {
            State::Idle => {
                if !is_speech {
                    self.remember_pre_roll(frame);
                    return None;
                }
                self.utterance.clear();
                self.utterance.extend(self.pre_roll.drain(..));
                self.utterance.extend_from_slice(frame);
                self.state = State::Candidate {
                    start: idx,
                    voiced: 1,
                    gap: 0,
                };
                self.keep_len = self.utterance.len();
                self.maybe_start()
            }
            State::Candidate { start, voiced, gap } => {
                self.utterance.extend_from_slice(frame);
                if is_speech {
                    self.keep_len = self.utterance.len();
                    self.state = State::Candidate {
                        start,
                        voiced: voiced + 1,
                        gap: 0,
                    };
                    return self.maybe_start();
                }
                if gap + 1 > self.cfg.frames(self.cfg.max_start_gap_ms) {
                    // Noise: what was gathered becomes pre-roll for the next try.
                    let tail = self
                        .utterance
                        .len()
                        .saturating_sub(self.pre_roll_cap(frame.len()));
                    self.pre_roll.clear();
                    self.pre_roll.extend(self.utterance.drain(tail..));
                    self.utterance.clear();
                    self.state = State::Idle;
                } else {
                    self.state = State::Candidate {
                        start,
                        voiced,
                        gap: gap + 1,
                    };
                }
                None
            }
            State::Speech {
                start,
                last_voiced,
                silence,
            } => {
                self.utterance.extend_from_slice(frame);
                let (last_voiced, silence) = if is_speech {
                    self.keep_len = self.utterance.len();
                    (idx, 0)
                } else {
                    if silence < self.cfg.frames(self.cfg.post_roll_ms) {
                        self.keep_len = self.utterance.len();
                    }
                    (last_voiced, silence + 1)
                };
                self.state = State::Speech {
                    start,
                    last_voiced,
                    silence,
                };
                if idx + 1 - start >= self.cfg.frames(self.cfg.max_utterance_ms) {
                    return Some(self.end(start, last_voiced, true, frame.len()));
                }
                if silence >= self.cfg.frames(self.hangover_ms()) {
                    return Some(self.end(start, last_voiced, false, frame.len()));
                }
                if self.cfg.pause_ms != 0 && silence == self.cfg.frames(self.cfg.pause_ms) {
                    let fm = u64::from(self.cfg.frame_ms);
                    return Some(EndpointEvent::Pause {
                        start_ms: start * fm,
                        end_ms: (last_voiced + 1) * fm,
                        audio: self.utterance[..self.keep_len].to_vec(),
                    });
                }
                None
            }
        }
    }

    /// Ends the input: an utterance in progress is returned as finished
    /// (`forced: false`); a candidate too short to be speech is dropped.
    pub fn finish(&mut self) -> Option<EndpointEvent> {
        let event = match self.state {
            State::Speech {
                start, last_voiced, ..
            } => Some(self.end(start, last_voiced, false, 0)),
            _ => None,
        };
        self.state = State::Idle;
        self.utterance.clear();
        self.pre_roll.clear();
        event
    }

    /// Back to idle at time 0, keeping config and patience.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.frame = 0;
        self.pre_roll.clear();
        self.utterance.clear();
        self.keep_len = 0;
    }

    fn hangover_ms(&self) -> u32 {
        match self.patience {
            Patience::Normal => self.cfg.hangover_ms,
            Patience::Digits => self.cfg.digits_hangover_ms,
        }
    }

    fn pre_roll_cap(&self, frame_len: usize) -> usize {
        self.cfg.frames(self.cfg.pre_roll_ms) as usize * frame_len
    }

    fn remember_pre_roll(&mut self, frame: &[i16]) {
        let cap = self.pre_roll_cap(frame.len());
        self.pre_roll.extend(frame);
        let excess = self.pre_roll.len().saturating_sub(cap);
        self.pre_roll.drain(..excess);
    }

    fn maybe_start(&mut self) -> Option<EndpointEvent> {
        let State::Candidate { start, voiced, .. } = self.state else {
            return None;
        };
        if voiced < self.cfg.frames(self.cfg.min_speech_ms) {
            return None;
        }
        self.state = State::Speech {
            start,
            last_voiced: self.frame - 1,
            silence: 0,
        };
        Some(EndpointEvent::SpeechStart {
            at_ms: start * u64::from(self.cfg.frame_ms),
        })
    }

    fn end(
        &mut self,
        start: u64,
        last_voiced: u64,
        forced: bool,
        frame_len: usize,
    ) -> EndpointEvent {
        let mut audio = std::mem::take(&mut self.utterance);
        let keep = if forced { audio.len() } else { self.keep_len };
        // The hangover silence after the kept audio is the best pre-roll the
        // next utterance can have (none of it is in this one's audio).
        self.pre_roll.clear();
        if !forced {
            let from = audio
                .len()
                .saturating_sub(self.pre_roll_cap(frame_len))
                .max(keep);
            self.pre_roll.extend(&audio[from..]);
        }
        audio.truncate(keep);
        self.state = State::Idle;
        let fm = u64::from(self.cfg.frame_ms);
        EndpointEvent::SpeechEnd {
            start_ms: start * fm,
            end_ms: (last_voiced + 1) * fm,
            audio,
            forced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const N: usize = 320; // 20 ms at 16 kHz

    /// Drives an endpointer with a pattern of (voiced?, frame count) runs.
    /// Every frame's samples equal its index, so audio content can be traced.
    fn run(ep: &mut Endpointer, pattern: &[(bool, u32)]) -> Vec<EndpointEvent> {
        let mut events = Vec::new();
        for &(voiced, count) in pattern {
            for _ in 0..count {
                let idx = (ep.now_ms() / 20) as i16;
                events.extend(ep.push(&[idx; N], voiced));
            }
        }
        events
    }

    fn ends(events: &[EndpointEvent]) -> Vec<(u64, u64, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                EndpointEvent::SpeechEnd {
                    start_ms,
                    end_ms,
                    forced,
                    ..
                } => Some((*start_ms, *end_ms, *forced)),
                EndpointEvent::SpeechStart { .. } | EndpointEvent::Pause { .. } => None,
            })
            .collect()
    }

    fn ep() -> Endpointer {
        Endpointer::new(EndpointConfig::default()).unwrap()
    }

    #[test]
    fn clicks_shorter_than_min_speech_are_ignored() {
        let mut e = ep();
        // 40 ms bursts every 300 ms for 6 s: a clicking line, never speech.
        let pattern: Vec<(bool, u32)> = (0..20).flat_map(|_| [(true, 2), (false, 13)]).collect();
        assert!(run(&mut e, &pattern).is_empty());
        assert!(!e.in_speech());
    }

    #[test]
    fn start_fires_after_min_speech_and_dates_from_the_first_voiced_frame() {
        let mut e = ep();
        assert!(
            run(&mut e, &[(false, 10), (true, 5)]).is_empty(),
            "100 ms is not yet speech"
        );
        let events = run(&mut e, &[(true, 1)]);
        assert_eq!(events, vec![EndpointEvent::SpeechStart { at_ms: 200 }]);
        assert!(e.in_speech());
    }

    #[test]
    fn flickering_onset_within_the_gap_tolerance_still_starts() {
        let mut e = ep();
        let events = run(&mut e, &[(true, 3), (false, 2), (true, 3)]);
        assert_eq!(events, vec![EndpointEvent::SpeechStart { at_ms: 0 }]);
    }

    #[test]
    fn hangover_joins_a_pause_shorter_than_it() {
        let mut e = ep();
        let events = run(
            &mut e,
            &[(false, 5), (true, 20), (false, 25), (true, 20), (false, 40)],
        );
        // One utterance from frame 5 to frame 69 (end of the last voiced frame).
        assert_eq!(ends(&events), vec![(100, 1400, false)]);
        // Start, a pause offered in each gap, end.
        assert_eq!(events.len(), 4, "{events:?}");
    }

    #[test]
    fn pause_longer_than_hangover_splits() {
        let mut e = ep();
        let events = run(&mut e, &[(true, 20), (false, 35), (true, 20), (false, 40)]);
        assert_eq!(ends(&events), vec![(0, 400, false), (1100, 1500, false)]);
    }

    #[test]
    fn digits_patience_keeps_a_one_second_pause_inside_one_utterance() {
        // Three digit groups separated by 1 s pauses.
        let pattern = [
            (false, 10),
            (true, 40),
            (false, 50),
            (true, 40),
            (false, 50),
            (true, 50),
            (false, 100),
        ];
        let mut normal = ep();
        assert_eq!(ends(&run(&mut normal, &pattern)).len(), 3);

        let mut digits = ep();
        digits.set_patience(Patience::Digits);
        assert_eq!(ends(&run(&mut digits, &pattern)), vec![(200, 4800, false)]);
    }

    #[test]
    fn patience_change_applies_to_the_pause_in_progress() {
        let mut e = ep();
        e.set_patience(Patience::Digits);
        assert_eq!(
            ends(&run(&mut e, &[(true, 20), (false, 40)])),
            vec![],
            "no end yet"
        );
        // 800 ms of silence already: back to Normal ends it at once.
        e.set_patience(Patience::Normal);
        assert_eq!(ends(&run(&mut e, &[(false, 1)])), vec![(0, 400, false)]);
    }

    #[test]
    fn max_utterance_forces_an_end_and_speech_goes_on() {
        let mut e = ep();
        let events = run(&mut e, &[(true, 1000)]);
        let got = ends(&events);
        assert_eq!(got[0], (0, 15_000, true));
        // The rest restarts as new utterances, each forced at the limit.
        assert_eq!(got.len(), 1);
        assert_eq!(
            events.last(),
            Some(&EndpointEvent::SpeechStart { at_ms: 15_000 })
        );
        let EndpointEvent::SpeechEnd { audio, .. } = &events[1] else {
            panic!("second event is the end")
        };
        assert_eq!(audio.len(), 750 * N, "15 s of audio, no pre-roll at time 0");
    }

    #[test]
    fn audio_holds_pre_roll_utterance_and_post_roll() {
        let mut e = ep();
        let events = run(&mut e, &[(false, 30), (true, 20), (false, 40)]);
        let Some(EndpointEvent::SpeechEnd {
            audio, start_ms, ..
        }) = events.last()
        else {
            panic!("no end: {events:?}")
        };
        assert_eq!(*start_ms, 600);
        // 200 ms pre-roll (frames 20..30), 20 voiced, 100 ms post-roll.
        assert_eq!(audio.len(), (10 + 20 + 5) * N);
        assert_eq!(audio[0], 20, "starts with the pre-roll");
        assert_eq!(audio[10 * N], 30, "then the first voiced frame");
        assert_eq!(*audio.last().unwrap(), 54, "ends with the post-roll");
    }

    #[test]
    fn a_pause_offers_the_utterance_before_the_hangover_ends_it() {
        let mut e = ep();
        // 1 s of speech, a 300 ms gap (a pause offered at 200 ms, then the
        // caller goes on), 1 s more, then silence: two pauses, one end.
        let events = run(
            &mut e,
            &[(false, 5), (true, 50), (false, 15), (true, 50), (false, 40)],
        );
        let pauses: Vec<(u64, usize)> = events
            .iter()
            .filter_map(|ev| match ev {
                EndpointEvent::Pause { end_ms, audio, .. } => Some((*end_ms, audio.len())),
                _ => None,
            })
            .collect();
        assert_eq!(pauses.len(), 2, "{events:?}");
        // The first pause is stale (voice followed); the second is the end.
        assert_eq!(pauses[0].0, 1100);
        let Some(EndpointEvent::SpeechEnd { end_ms, audio, .. }) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!((pauses[1].0, pauses[1].1), (*end_ms, audio.len()));
        // The pause came 400 ms before the end (600 ms hangover, 200 ms pause).
        let at = |want: fn(&EndpointEvent) -> bool| events.iter().position(want).unwrap();
        assert!(at(|e| matches!(e, EndpointEvent::Pause { end_ms: 2400, .. })) < events.len() - 1);

        // Off: no pause events at all.
        let mut off = Endpointer::new(EndpointConfig {
            pause_ms: 0,
            ..EndpointConfig::default()
        })
        .unwrap();
        let events = run(&mut off, &[(true, 50), (false, 40)]);
        assert!(events
            .iter()
            .all(|e| !matches!(e, EndpointEvent::Pause { .. })));
        // Out of range: at or past the hangover, or inside the post-roll.
        for pause_ms in [600, 80] {
            let err = EndpointConfig {
                pause_ms,
                ..EndpointConfig::default()
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(err.contains("pause_ms"), "{err}");
        }
    }

    #[test]
    fn finish_returns_speech_in_progress_and_drops_a_candidate() {
        let mut e = ep();
        run(&mut e, &[(true, 20), (false, 3)]);
        assert_eq!(
            ends(&e.finish().into_iter().collect::<Vec<_>>()),
            vec![(0, 400, false)]
        );
        run(&mut e, &[(true, 2)]);
        assert_eq!(e.finish(), None);
    }

    #[test]
    fn validate_reports_every_problem() {
        let cfg = EndpointConfig {
            frame_ms: 25,
            digits_hangover_ms: 100,
            post_roll_ms: 700,
            pre_roll_ms: 5000,
            max_utterance_ms: 100,
            pause_ms: 0,
            ..EndpointConfig::default()
        };
        let Err(VadError::Config { problems }) = cfg.validate() else {
            panic!("invalid config accepted")
        };
        assert_eq!(problems.len(), 5, "{problems:?}");
        let msg = Endpointer::new(cfg).unwrap_err().to_string();
        assert!(
            msg.contains("frame_ms = 25") && msg.contains("pre_roll_ms = 5000"),
            "{msg}"
        );
        assert!(EndpointConfig::default().validate().is_ok());
    }

    proptest! {
        /// Whatever the decisions: events alternate Start/End, each End
        /// matches its Start, times are ordered and audio stays bounded.
        #[test]
        fn events_are_well_formed(decisions in proptest::collection::vec(any::<bool>(), 0..3000)) {
            let cfg = EndpointConfig { max_utterance_ms: 3000, ..EndpointConfig::default() };
            let mut e = Endpointer::new(cfg).unwrap();
            let mut open: Option<u64> = None;
            let mut last_end = 0;
            // The last pause offered in the open utterance, if no voice came since.
            let mut paused: Option<(u64, Vec<i16>)> = None;
            for (i, &d) in decisions.iter().enumerate() {
                let idx = (i % 30_000) as i16;
                if d {
                    paused = None;
                }
                match e.push(&[idx; N], d) {
                    Some(EndpointEvent::Pause { start_ms, end_ms, audio }) => {
                        prop_assert_eq!(open, Some(start_ms));
                        prop_assert!(!d, "a pause comes on a silent frame");
                        prop_assert!(end_ms > start_ms && end_ms <= i as u64 * 20);
                        paused = Some((end_ms, audio));
                    }
                    Some(EndpointEvent::SpeechStart { at_ms }) => {
                        prop_assert!(open.is_none());
                        prop_assert!(at_ms >= last_end && at_ms <= i as u64 * 20);
                        open = Some(at_ms);
                    }
                    Some(EndpointEvent::SpeechEnd { start_ms, end_ms, audio, forced }) => {
                        prop_assert_eq!(open.take(), Some(start_ms));
                        // A pause with no voice after it is exactly the end.
                        if let (Some((p_end, p_audio)), false) = (paused.take(), forced) {
                            prop_assert_eq!(p_end, end_ms);
                            prop_assert!(p_audio == audio, "the pause's audio is the end's");
                        }
                        prop_assert!(end_ms > start_ms && end_ms <= (i as u64 + 1) * 20);
                        prop_assert!(audio.len() <= (150 + 10) * N);
                        last_end = end_ms;
                    }
                    None => {}
                }
            }
        }
    }
}
