//! The per-call record: every turn's text and timings, and the lead captured.
//!
//! Written as JSON by `voiceblock converse` (and later by the store), so field
//! names are part of the box's interface: add fields, do not rename them.

use serde::Serialize;
use vb_dialog::Lead;

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The robot (greeting, replies).
    Robot,
    /// The caller.
    Caller,
}

/// Timings of one caller turn, in milliseconds.
///
/// `endpoint_ms` is audio time (how long the endpointer waited after the last
/// voiced frame before it decided the caller had finished); the other stages
/// are wall-clock time measured on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TurnTimings {
    /// Caller audio in this turn, ms.
    pub caller_audio_ms: u64,
    /// End of caller speech -> endpointer decision (the hangover), audio ms.
    pub endpoint_ms: u64,
    /// Endpointer decision -> transcript ready: the recognition still on
    /// the turn's path (0 when a speculative recognition at a pause was
    /// done before the endpoint confirmed the end).
    pub stt_ms: u64,
    /// Recognition wall time when it ran speculatively, from the caller's
    /// pause (`stt_ms` then counts only what was left after the endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt_speculative_ms: Option<u64>,
    /// Transcript -> reply text (the dialog step).
    pub reply_ms: u64,
    /// Reply text -> first robot audio ready (TTS of the first sentence, a cache hit or a pre-recorded phrase).
    pub first_audio_ms: u64,
    /// End of caller speech -> first robot audio: endpoint + stt + reply + first_audio.
    pub turn_latency_ms: u64,
    /// The same without the endpoint hangover: what the box's processing costs.
    pub processing_ms: u64,
    /// Transcript -> the model's first token (LLM turns only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_first_token_ms: Option<u64>,
    /// Transcript -> the model's first complete sentence (LLM turns only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_first_sentence_ms: Option<u64>,
    /// Transcript -> the model's stream ended (LLM turns only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_done_ms: Option<u64>,
    /// Transcript -> first robot audio queued for sending (the reply's
    /// first sentence through the TTS, while the model may still stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_reply_audio_ms: Option<u64>,
    /// Synthesis wall time over the audio it made, for the reply's lines
    /// the TTS synthesized (cached and recorded phrases left out); `None`
    /// when none was synthesized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts_rtf: Option<f32>,
}

impl TurnTimings {
    /// Recognition wall time over the utterance's audio, when both are known.
    pub fn stt_rtf(&self) -> Option<f32> {
        let wall = self.stt_speculative_ms.unwrap_or(self.stt_ms);
        (self.caller_audio_ms > 0 && wall > 0).then(|| wall as f32 / self.caller_audio_ms as f32)
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, Serialize)]
pub struct TurnRecord {
    /// Turn number, 0 for the greeting.
    pub index: usize,
    /// Who started this turn (the greeting is the robot's; others are the caller's).
    pub speaker: Speaker,
    /// What the speech recogniser heard (empty for the greeting or silence).
    pub caller_transcript: String,
    /// Language the recogniser used or detected ("en", "ru").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_language: Option<String>,
    /// Why a transcript was discarded (hallucination filter), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<String>,
    /// Number of utterances the endpointer found in this turn's audio.
    pub utterances: usize,
    /// What the robot said in reply.
    pub robot_reply: String,
    /// The robot's phrase id (from robot.toml), for analytics and `llm_script` later.
    pub phrase_id: String,
    /// How the reply audio was made: "tts", "tts-cache" or "recorded".
    pub audio_source: &'static str,
    /// Robot reply audio duration, ms.
    pub robot_audio_ms: u64,
    /// Where the reply's lines came from ("llm", "script", "filler",
    /// "phrase", comma-separated in order when mixed); absent in old records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_source: Option<String>,
    /// Why the model failed in this turn, when the script took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Stage timings.
    pub timings: TurnTimings,
}

/// A whole call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Robot name.
    pub robot: String,
    /// Robot language.
    pub language: String,
    /// The robot's dialog mode (`script`, `llm`, `llm_script`).
    pub mode: String,
    /// Why the call left the model for the script, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Voice used for the robot.
    pub voice: String,
    /// Speech model used.
    pub stt_model: String,
    /// Turns in order, the greeting first.
    pub turns: Vec<TurnRecord>,
    /// The lead captured.
    pub lead: Lead,
    /// Why the call ended: the dialog's end reason ("completed", "silence",
    /// "max_turns", ...) or "caller_hung_up".
    pub end_reason: String,
    /// Total call audio, ms.
    pub duration_ms: u64,
    /// Sample rate of the recorded call audio.
    pub audio_rate: u32,
    /// The post-call summary (the model's when reachable, rules otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Interest class: `hot`, `warm`, `cold`, `not_interested`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest: Option<String>,
    /// Why that class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interest_reason: Option<String>,
    /// Who wrote the summary: `llm` or `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_source: Option<String>,
    /// The call's audio, when the box records calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingInfo>,
}

/// A call's recording: a stereo WAV, caller left and robot right, in the
/// box's recordings directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingInfo {
    /// File name inside the recordings directory.
    pub file: String,
    /// Container: `wav`.
    pub format: &'static str,
    /// Channels: 2 (caller left, robot right).
    pub channels: u16,
    /// Sample rate.
    pub sample_rate: u32,
    /// Length, ms.
    pub duration_ms: u64,
    /// File size.
    pub bytes: u64,
    /// The length limit cut it short.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Frames lost because the disk could not keep up.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_frames: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RecordingInfo {
    /// The record's view of a finished recording.
    pub fn from_recording(r: &vb_audio::recorder::Recording) -> RecordingInfo {
        RecordingInfo {
            file: r
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format: "wav",
            channels: r.channels,
            sample_rate: r.sample_rate,
            duration_ms: r.duration_ms,
            bytes: r.bytes,
            truncated: r.truncated,
            dropped_frames: r.dropped_frames,
        }
    }
}

impl CallRecord {
    /// Stores the post-call summary in the record.
    pub fn set_summary(&mut self, s: &vb_llm::CallSummary) {
        self.summary = Some(s.summary.clone());
        self.interest = Some(vb_llm::class_code(s).to_string());
        self.interest_reason = Some(s.reason.clone());
        self.summary_source = Some(
            match s.source {
                vb_llm::SummarySource::Llm => "llm",
                vb_llm::SummarySource::Rules => "rules",
            }
            .to_string(),
        );
    }
}
