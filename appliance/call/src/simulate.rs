//! A whole call without a phone line: the robot greets, each caller turn comes
//! from a WAV file (or from a built-in demo caller who answers what the robot
//! asks), and both sides are recorded into one audio track in order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vb_audio::{resample, wav, Pcm};
use vb_dialog::{Language, Reply, Robot};
use vb_llm::{Action, LlmEngine, Output, Responder, Utterance, REPLY_CHANNEL};
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

/// What the demo caller says, in order, to a robot whose model writes its
/// own questions.
const LLM_ORDER: [&str; 5] = ["ask_need", "ask_name", "ask_phone", "ask_dates", "confirm"];

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
        let line = if robot_said.phrase_id == vb_llm::Source::Llm.code() {
            // The model's own words have no phrase id: answer the script's
            // questions in order, as a caller telling their story would.
            let next = self
                .answers
                .iter()
                .filter(|(id, _)| LLM_ORDER.contains(id))
                .nth(self.used);
            match next {
                Some((_, line)) => line,
                None => return Ok(None),
            }
        } else {
            match self
                .answers
                .iter()
                .find(|(id, _)| *id == robot_said.phrase_id)
            {
                Some((_, line)) => line,
                None => return Ok(None),
            }
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
    llm: Option<LlmEngine>,
    voice_name: String,
    stt_model: String,
}

/// The longest wait for the model's post-call summary in a simulation.
const SUMMARY_BUDGET: Duration = Duration::from_secs(30);

impl<'e, 'a> Simulation<'e, 'a> {
    /// A simulation over `engine` for `robot`; the names go into the record.
    /// Without [`Simulation::with_llm`] the robot runs the script.
    pub fn new(
        engine: &'e mut CallEngine<'a>,
        robot: &'a Robot,
        voice_name: String,
        stt_model: String,
    ) -> Self {
        Simulation {
            engine,
            robot,
            llm: None,
            voice_name,
            stt_model,
        }
    }

    /// The model endpoint for a robot in `llm` or `llm_script` mode.
    pub fn with_llm(mut self, llm: Option<LlmEngine>) -> Self {
        self.llm = llm;
        self
    }

    /// Runs the call to its end and returns the record and both sides' audio.
    /// Blocking: the model's turns run on a runtime of its own.
    pub fn run(&mut self, caller: &mut dyn CallerSource) -> Result<(CallRecord, Pcm), CallError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| {
                CallError::Audio(vb_audio::AudioError::Io {
                    file: "tokio runtime".into(),
                    source,
                })
            })?;
        let rate = self.engine.out_rate();
        let mut responder = Responder::new(self.robot, self.llm.clone());
        let mut track = Pcm::new(rate, Vec::new());
        let mut turns = Vec::new();

        let greeting = responder.greet();
        let spoken = self.engine.speak(&greeting.to_reply())?;
        track.append(&spoken.audio)?;
        turns.push(TurnRecord {
            index: 0,
            speaker: Speaker::Robot,
            caller_transcript: String::new(),
            caller_language: None,
            filtered: None,
            utterances: 0,
            robot_reply: greeting.text.clone(),
            phrase_id: greeting.phrase_id.clone().unwrap_or_default(),
            audio_source: spoken.source,
            robot_audio_ms: spoken.audio.duration_ms(),
            reply_source: Some(greeting.source.code().to_string()),
            fallback: None,
            timings: TurnTimings {
                first_audio_ms: spoken.first_audio_ms,
                processing_ms: spoken.first_audio_ms,
                turn_latency_ms: spoken.first_audio_ms,
                ..TurnTimings::default()
            },
        });

        let mut last = greeting.to_reply();
        let mut completed_by_model = false;
        let end_reason = loop {
            if last.end_call || responder.is_finished() {
                break responder
                    .lead()
                    .end
                    .and_then(|e| serde_json::to_value(e).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| {
                        if completed_by_model {
                            "completed"
                        } else {
                            "ended"
                        }
                        .to_string()
                    });
            }
            let Some(audio) = caller.next_turn(&last)? else {
                break "caller_hung_up".to_string();
            };
            let heard = self.engine.hear(&audio, responder.expect())?;
            let t_reply = Instant::now();
            let (said, fallback) =
                if heard.utterances == 0 || (heard.text.is_empty() && heard.filtered.is_some()) {
                    (vec![(Duration::ZERO, responder.on_silence())], None)
                } else {
                    let turn = run_turn(&runtime, &mut responder, &heard.text);
                    completed_by_model |= turn.end_action;
                    (turn.said, turn.fallback)
                };
            let reply_ms = said
                .first()
                .map(|(at, _)| at.as_millis() as u64)
                .unwrap_or_else(|| t_reply.elapsed().as_millis() as u64);
            let stats = responder.last_turn();
            track.append(&resample::resample(&audio, rate)?)?;
            let mut reply_audio = Pcm::new(rate, Vec::new());
            let mut first_audio_ms = None;
            let mut audio_sources: Vec<&'static str> = Vec::new();
            let mut reply_sources: Vec<&'static str> = Vec::new();
            let mut texts = Vec::new();
            let mut reply: Option<Reply> = None;
            let mut end_call = false;
            for (_, u) in &said {
                let r = u.to_reply();
                let spoken = self.engine.speak(&r)?;
                first_audio_ms.get_or_insert(spoken.first_audio_ms);
                if !audio_sources.contains(&spoken.source) {
                    audio_sources.push(spoken.source);
                }
                if reply_sources.last() != Some(&u.source.code()) {
                    reply_sources.push(u.source.code());
                }
                reply_audio.append(&spoken.audio)?;
                texts.push(u.text.trim().to_string());
                end_call |= u.end_call;
                if u.source != vb_llm::Source::Filler {
                    reply = Some(r);
                }
            }
            let first_audio_ms = first_audio_ms.unwrap_or(0);
            let processing_ms = heard.stt_ms + reply_ms + first_audio_ms;
            // The caller hears silence while the box thinks.
            track.append_silence(processing_ms.min(10_000) as u32);
            track.append(&reply_audio)?;
            let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
            let mut reply = reply.unwrap_or_else(|| Reply {
                text: String::new(),
                phrase_id: String::new(),
                audio: None,
                end_call: false,
                cacheable: false,
                parts: Vec::new(),
            });
            reply.end_call = end_call;
            turns.push(TurnRecord {
                index: turns.len(),
                speaker: Speaker::Caller,
                caller_transcript: heard.text,
                caller_language: heard.language,
                filtered: heard.filtered,
                utterances: heard.utterances,
                robot_reply: texts.join(" "),
                phrase_id: said
                    .first()
                    .map(|(_, u)| u.to_reply().phrase_id)
                    .unwrap_or_default(),
                audio_source: match audio_sources.as_slice() {
                    [one] => one,
                    [] => "none",
                    _ => "mixed",
                },
                robot_audio_ms: reply_audio.duration_ms(),
                reply_source: (!reply_sources.is_empty()).then(|| reply_sources.join(",")),
                fallback,
                timings: TurnTimings {
                    caller_audio_ms: audio.duration_ms(),
                    endpoint_ms: heard.endpoint_ms,
                    stt_ms: heard.stt_ms,
                    stt_speculative_ms: None,
                    reply_ms,
                    first_audio_ms,
                    turn_latency_ms: heard.endpoint_ms + processing_ms,
                    processing_ms,
                    llm_first_token_ms: ms(stats.first_token),
                    llm_first_sentence_ms: ms(stats.first_sentence),
                    llm_done_ms: ms(stats.stream_done),
                    first_reply_audio_ms: Some(reply_ms + first_audio_ms),
                    tts_rtf: None,
                },
            });
            last = reply;
        };

        let summary = runtime.block_on(responder.summarize(SUMMARY_BUDGET));
        let mut record = CallRecord {
            robot: self.robot.name.clone(),
            language: self.robot.language.code().to_string(),
            mode: responder.mode().code().to_string(),
            fallback: responder.fallback_reason().map(str::to_string),
            voice: self.voice_name.clone(),
            stt_model: self.stt_model.clone(),
            turns,
            lead: responder.lead(),
            end_reason,
            duration_ms: track.duration_ms(),
            audio_rate: rate,
            summary: None,
            interest: None,
            interest_reason: None,
            summary_source: None,
            recording: None,
        };
        record.set_summary(&summary);
        Ok((record, track))
    }
}

/// What one responder turn said, with when (since the turn started).
#[derive(Default)]
struct SimTurn {
    said: Vec<(Duration, Utterance)>,
    end_action: bool,
    fallback: Option<String>,
}

impl SimTurn {
    fn take(&mut self, out: Output, start: Instant) {
        match out {
            Output::Say(u) => self.said.push((start.elapsed(), u)),
            Output::Action(Action::EndCall { .. }) => self.end_action = true,
            Output::FellBack { reason } => self.fallback = Some(reason),
            Output::Action(_) | Output::Rejected(_) => {}
        }
    }
}

/// Runs one responder turn to its end, collecting what it says.
fn run_turn(runtime: &tokio::runtime::Runtime, responder: &mut Responder, caller: &str) -> SimTurn {
    let (tx, mut rx) = tokio::sync::mpsc::channel(REPLY_CHANNEL);
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let mut got = SimTurn::default();
    runtime.block_on(async {
        let turn = responder.turn(caller, &tx, &cancel);
        tokio::pin!(turn);
        loop {
            tokio::select! {
                _ = &mut turn => break,
                Some(out) = rx.recv() => got.take(out, start),
            }
        }
    });
    drop(tx);
    while let Ok(out) = rx.try_recv() {
        got.take(out, start);
    }
    got
}
