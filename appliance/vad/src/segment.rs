//! Offline segmentation: split a whole recording into utterances with the
//! same detector and endpointer the live call uses, so long files can be
//! transcribed piece by piece.

use vb_audio::{resample, Pcm};

use crate::{
    Aggressiveness, EndpointConfig, EndpointEvent, Endpointer, Patience, Vad, VadError, WebRtcVad,
};

/// Rate utterances are returned at (what the VAD and whisper use).
pub const SEGMENT_RATE: u32 = 16_000;

/// Parameters of [`segment`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentConfig {
    /// Endpointing parameters.
    pub endpoint: EndpointConfig,
    /// WebRTC aggressiveness.
    pub aggressiveness: Aggressiveness,
    /// Pause tolerance for the whole file.
    pub patience: Patience,
}

/// One utterance found by [`segment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// Start of the first voiced frame, ms from the start of the input.
    pub start_ms: u64,
    /// End of the last voiced frame, ms from the start of the input.
    pub end_ms: u64,
    /// Pre-roll + speech + post-roll at [`SEGMENT_RATE`].
    pub samples: Vec<i16>,
    /// True when `max_utterance_ms` cut it.
    pub forced: bool,
}

impl Utterance {
    /// The audio as a [`Pcm`] at [`SEGMENT_RATE`].
    pub fn to_pcm(&self) -> Pcm {
        Pcm::from_i16(SEGMENT_RATE, &self.samples)
    }
}

/// Finds the utterances in `pcm` (any rate; resampled to 16 kHz first).
/// A final partial frame is padded with silence; speech running to the end
/// of the input is returned as a finished utterance.
pub fn segment(pcm: &Pcm, cfg: &SegmentConfig) -> Result<Vec<Utterance>, VadError> {
    let mut endpointer = Endpointer::new(cfg.endpoint.clone())?;
    endpointer.set_patience(cfg.patience);
    let mut vad = WebRtcVad::new(SEGMENT_RATE, cfg.aggressiveness)?;
    let samples = resample(pcm, SEGMENT_RATE)?.to_i16();
    let frame_len = (SEGMENT_RATE * cfg.endpoint.frame_ms / 1000) as usize;

    let mut utterances = Vec::new();
    let mut padded = vec![0i16; frame_len];
    for chunk in samples.chunks(frame_len) {
        let frame = if chunk.len() == frame_len {
            chunk
        } else {
            padded[..chunk.len()].copy_from_slice(chunk);
            &padded[..]
        };
        let speech = vad.is_speech(frame)?;
        if let Some(event) = endpointer.push(frame, speech) {
            utterances.extend(to_utterance(event));
        }
    }
    if let Some(event) = endpointer.finish() {
        utterances.extend(to_utterance(event));
    }
    Ok(utterances)
}

fn to_utterance(event: EndpointEvent) -> Option<Utterance> {
    match event {
        EndpointEvent::SpeechStart { .. } | EndpointEvent::Pause { .. } => None,
        EndpointEvent::SpeechEnd {
            start_ms,
            end_ms,
            audio,
            forced,
        } => Some(Utterance {
            start_ms,
            end_ms,
            samples: audio,
            forced,
        }),
    }
}
