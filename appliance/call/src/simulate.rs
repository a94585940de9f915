//! A whole call without a phone line: the robot greets, each caller turn comes
//! from a WAV file (or from a built-in demo caller who answers what the robot
//! asks), and both sides are recorded into one audio track in order.

use std::path::PathBuf;

use vb_audio::{resample, wav, Pcm};
use vb_dialog::{Dialog, Language, Reply, Robot};
use vb_tts::Synthesizer;

use crate::engine::{CallEngine, CallError};
use crate::record::{CallRecord, Speaker, TurnRecord, TurnTimings};

/// Where caller turns come from.
pub trait CallerSource {
    /// The caller's next turn, given what the robot just said; `None` when
    /// the caller has nothing more to say (the caller hangs up).
    fn next_turn(&mut self, robot_said: &Reply) -> Result<Option<Pcm>, CallError>;
}

/// Caller turns from WAV files, one file a turn, in order.
pub struct WavCaller {
    files: std::vec::IntoIter<PathBuf>,
}

impl WavCaller {
    /// Reads the files lazily, in order.
    pub fn new(files: Vec<PathBuf>) -> Self {
        WavCaller {
            files: files.into_iter(),
        }
    }
}

impl CallerSource for WavCaller {
    fn next_turn(&mut self, _robot_said: &Reply) -> Result<Option<Pcm>, CallError> {
        match self.files.next() {
            Some(path) => Ok(Some(wav::read(&path)?)),
            None => Ok(None),
        }
    }
}

/// A built-in caller for the demo and the end-to-end tests: it answers the
/// robot's question (by phrase id) with a fixed line, spoken by a synthesizer
/// (a different voice from the robot's).
pub struct DemoCaller<'a> {
    voice: &'a mut dyn Synthesizer,
    answers: Vec<(&'static str, String)>,
    used: usize,
    max_turns: usize,
}

impl<'a> DemoCaller<'a> {
    /// The demo caller for a robot language, speaking with `voice`.
    pub fn new(language: Language, voice: &'a mut dyn Synthesizer) -> Self {
        Self::with_answers(voice, demo_answers(language))
    }

    /// A caller with its own answers: (phrase id asked by the robot, line).
    pub fn with_answers(
        voice: &'a mut dyn Synthesizer,
        answers: Vec<(&'static str, String)>,
    ) -> Self {
        DemoCaller {
            voice,
            answers,
            used: 0,
            max_turns: 12,
        }
    }
}

/// The demo conversation: what a caller answers to each robot question.
pub fn demo_answers(language: Language) -> Vec<(&'static str, String)> {
    let lines: &[(&str, &str)] = match language {
        Language::Ru => &[
            (
                "greeting",
                "Здравствуйте, я хочу записаться на консультацию.",
            ),
            ("ask_need", "Я хочу записаться на консультацию."),
            ("ask_name", "Меня зовут Иван Петров."),
            (
                "ask_phone",
                "Восемь девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь.",
            ),
            ("ask_dates", "В пятницу после обеда."),
            ("ask_city", "Москва."),
            ("confirm", "Да, всё верно."),
            ("confirm_retry", "Да."),
            ("did_not_catch", "Я хочу записаться на консультацию."),
        ],
        Language::En => &[
            (
                "greeting",
                "Hi, I would like to book a table for four people.",
            ),
            ("ask_need", "I would like to book a table for four people."),
            ("ask_name", "My name is John Smith."),
            (
                "ask_phone",
                "Five five five, one two three, four five six seven.",
            ),
            ("ask_dates", "Friday evening."),
            ("ask_city", "Boston."),
            ("confirm", "Yes, that is right."),
            ("confirm_retry", "Yes."),
            ("did_not_catch", "I would like to book a table."),
        ],
    };
    lines
        .iter()
        .map(|(id, l)| (*id, (*l).to_string()))
        .collect()
}

impl CallerSource for DemoCaller<'_> {
    fn next_turn(&mut self, robot_said: &Reply) -> Result<Option<Pcm>, CallError> {
        if robot_said.end_call || self.used >= self.max_turns {
            return Ok(None);
        }
        let Some((_, line)) = self
            .answers
            .iter()
            .find(|(id, _)| *id == robot_said.phrase_id)
        else {
            return Ok(None);
        };
        self.used += 1;
        let mut audio = self.voice.synthesize(line)?;
        // A little room before and after, as on a phone line.
        let mut padded = Pcm::silence(audio.rate, 300);
        padded.append(&audio)?;
        audio = padded;
        Ok(Some(audio))
    }
}

/// Runs a whole simulated call.
pub struct Simulation<'e, 'a> {
    engine: &'e mut CallEngine<'a>,
    robot: &'a Robot,
    voice_name: String,
    stt_model: String,
}

impl<'e, 'a> Simulation<'e, 'a> {
    /// A simulation over `engine` for `robot`; the names go into the record.
    pub fn new(
        engine: &'e mut CallEngine<'a>,
        robot: &'a Robot,
        voice_name: String,
        stt_model: String,
    ) -> Self {
        Simulation {
            engine,
            robot,
            voice_name,
            stt_model,
        }
    }

    /// Runs the call to its end and returns the record and both sides' audio.
    pub fn run(&mut self, caller: &mut dyn CallerSource) -> Result<(CallRecord, Pcm), CallError> {
        let rate = self.engine.out_rate();
        let mut dialog = Dialog::new(self.robot);
        let mut track = Pcm::new(rate, Vec::new());
        let mut turns = Vec::new();

        let greeting = dialog.start();
        let spoken = self.engine.speak(&greeting)?;
        track.append(&spoken.audio)?;
        turns.push(TurnRecord {
            index: 0,
            speaker: Speaker::Robot,
            caller_transcript: String::new(),
            caller_language: None,
            filtered: None,
            utterances: 0,
            robot_reply: greeting.text.clone(),
            phrase_id: greeting.phrase_id.clone(),
            audio_source: spoken.source,
            robot_audio_ms: spoken.audio.duration_ms(),
            timings: TurnTimings {
                first_audio_ms: spoken.first_audio_ms,
                processing_ms: spoken.first_audio_ms,
                turn_latency_ms: spoken.first_audio_ms,
                ..TurnTimings::default()
            },
        });

        let mut last = greeting;
        let end_reason = loop {
            if last.end_call || dialog.is_finished() {
                break dialog
                    .lead()
                    .end
                    .and_then(|e| serde_json::to_value(e).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "ended".to_string());
            }
            let Some(audio) = caller.next_turn(&last)? else {
                break "caller_hung_up".to_string();
            };
            let (heard, reply, spoken, timings) = self.engine.turn(&mut dialog, &audio)?;
            track.append(&resample::resample(&audio, rate)?)?;
            // The caller hears silence while the box thinks.
            track.append_silence(timings.processing_ms.min(10_000) as u32);
            track.append(&spoken.audio)?;
            turns.push(TurnRecord {
                index: turns.len(),
                speaker: Speaker::Caller,
                caller_transcript: heard.text,
                caller_language: heard.language,
                filtered: heard.filtered,
                utterances: heard.utterances,
                robot_reply: reply.text.clone(),
                phrase_id: reply.phrase_id.clone(),
                audio_source: spoken.source,
                robot_audio_ms: spoken.audio.duration_ms(),
                timings,
            });
            last = reply;
        };

        let record = CallRecord {
            robot: self.robot.name.clone(),
            language: self.robot.language.code().to_string(),
            mode: "script".to_string(),
            voice: self.voice_name.clone(),
            stt_model: self.stt_model.clone(),
            turns,
            lead: dialog.lead().clone(),
            end_reason,
            duration_ms: track.duration_ms(),
            audio_rate: rate,
        };
        Ok((record, track))
    }
}
