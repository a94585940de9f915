//! The live loop with the language model in it: a robot in `llm` mode on an
//! in-memory line, the real llama.cpp server (SmolLM2-135M) streaming its
//! replies, whisper (tiny.en on one thread: on a loaded box ggml threads
//! spinning against each other blow the stt deadline) and Piper for the audio. The caller answers each time
//! the robot has been quiet for a while. Mechanics, not wisdom: the model's
//! words are poor. Run with `--test-threads=1`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vb_audio::line::{LineEvent, Playout};
use vb_audio::Frame8k;
use vb_call::{
    run_call, CallEngine, CallRecord, EngineConfig, Line, LineEvents, LiveConfig, LiveStats,
    Models, LINE_RATE,
};
use vb_dialog::{Language, Robot};
use vb_llm::testing::{robot, Fault, FaultServer, LlamaServer};

use vb_llm::{LlmClient, LlmConfig, LlmEngine, Responder};

/// Robot quiet this long after speaking: the caller's turn.
const QUIET_FRAMES: usize = 75;
/// The line gives up after this many frames (150 s), so a test always ends.
const MAX_FRAMES: usize = 7_500;

/// A caller who says `lines` in order, each once the robot has spoken and
/// then been quiet for [`QUIET_FRAMES`], and hangs up after the last reply.
/// Drains the playout every 20 ms like an RTP sender.
struct CallerLine {
    playout: Arc<Playout>,
    next: Instant,
    hung_up: Arc<AtomicBool>,
    lines: Vec<Vec<i16>>,
    playing: Option<(usize, usize)>,
    started: usize,
    quiet: usize,
    robot_spoke: bool,
    frame: usize,
    /// Lines from this index on start 1.2 s into a stretch of robot speech
    /// (a barge-in) instead of after it.
    interrupt_from: usize,
    /// Consecutive frames of robot voice.
    talk_frames: usize,
    /// Hang up this many frames after the last line, whatever the robot does.
    hang_up_after_last: Option<usize>,
    /// Frame the last line ended on.
    last_ended: Option<usize>,
    /// Called as caller line `k` starts.
    on_line: Box<dyn FnMut(usize) + Send>,
}

impl LineEvents for CallerLine {
    fn next_event(&mut self) -> Option<LineEvent> {
        if self.hung_up.load(Ordering::SeqCst) || self.frame >= MAX_FRAMES {
            return None;
        }
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += Duration::from_millis(20);
        self.frame += 1;
        let mut sent = Frame8k::default();
        if self.playout.next_frame(&mut sent, Instant::now()) {
            self.quiet = 0;
            self.talk_frames += 1;
            self.robot_spoke = true;
        } else {
            self.quiet += 1;
            self.talk_frames = 0;
        }
        if let (Some(after), Some(ended)) = (self.hang_up_after_last, self.last_ended) {
            if self.frame >= ended + after {
                return None;
            }
        }
        let turn_to_talk = if self.started >= self.interrupt_from {
            self.talk_frames >= 60
        } else {
            self.robot_spoke && self.quiet >= QUIET_FRAMES
        };
        if self.playing.is_none() && turn_to_talk {
            if self.started == self.lines.len() {
                return None;
            }
            eprintln!(
                "caller line {} starts at frame {} ({} samples)",
                self.started,
                self.frame,
                self.lines[self.started].len()
            );
            (self.on_line)(self.started);
            self.playing = Some((self.started, 0));
            self.started += 1;
            self.robot_spoke = false;
            self.talk_frames = 0;
        }
        let mut frame = Frame8k::default();
        if let Some((k, pos)) = self.playing {
            let line = &self.lines[k];
            for (i, s) in frame.0.iter_mut().enumerate() {
                *s = line.get(pos + i).copied().unwrap_or(0);
            }
            self.playing = (pos + 160 < line.len()).then_some((k, pos + 160));
            if self.playing.is_none() && k + 1 == self.lines.len() {
                self.last_ended = Some(self.frame);
            }
        }
        Some(LineEvent::Audio(frame))
    }
}

struct Control(Arc<AtomicBool>);

impl Line for Control {
    fn hangup(&self, _reason: &str) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn transfer(&self, _target: &str) -> Result<(), String> {
        Err("no transfer on this line".into())
    }
    fn end_reason(&self) -> Option<String> {
        None
    }
}

/// Budgets for mechanics on a loaded 2-core machine: a slow first token
/// must not turn this into a fallback test.
fn relaxed(url: &str, tools: bool) -> LlmEngine {
    let mut cfg = LlmConfig::local(url, "smollm2", Language::En);
    cfg.tools = tools;
    cfg.max_tokens = 60;
    cfg.timeouts.first_token = Duration::from_secs(20);
    cfg.timeouts.stall = Duration::from_secs(20);
    cfg.timeouts.reply = Duration::from_secs(60);
    LlmEngine::new(LlmClient::new(&cfg).unwrap())
}

/// Runs one call of `robot` with `llm`; the caller says `lines`.
/// How the caller behaves beyond its lines.
#[derive(Clone, Copy)]
struct Manner {
    interrupt_from: usize,
    hang_up_after_last: Option<usize>,
}

const POLITE: Manner = Manner {
    interrupt_from: usize::MAX,
    hang_up_after_last: None,
};

fn call(
    robot: &Robot,
    llm: LlmEngine,
    runtime: &tokio::runtime::Runtime,
    lines: &[&str],
    on_line: Box<dyn FnMut(usize) + Send>,
) -> CallRecord {
    call_with(robot, llm, runtime, lines, on_line, POLITE).0
}

fn call_with(
    robot: &Robot,
    llm: LlmEngine,
    runtime: &tokio::runtime::Runtime,
    lines: &[&str],
    on_line: Box<dyn FnMut(usize) + Send>,
    manner: Manner,
) -> (CallRecord, LiveStats) {
    let models = Models::open(None);
    let mut stt = models.transcriber("whisper-tiny.en", 1).unwrap();
    let mut tts = models.tts().unwrap();
    let lines: Vec<Vec<i16>> = lines
        .iter()
        .map(|l| {
            let mut pcm = vec![0i16; 2400];
            pcm.extend(tts.synthesize_cached("en", l, LINE_RATE).unwrap().to_i16());
            pcm
        })
        .collect();
    let mut engine = CallEngine::new(
        &mut stt,
        &mut tts,
        robot,
        EngineConfig {
            out_rate: LINE_RATE,
            ..EngineConfig::default()
        },
    );
    let playout = Arc::new(Playout::new(8000 * 60));
    let hung_up = Arc::new(AtomicBool::new(false));
    let line = CallerLine {
        playout: playout.clone(),
        next: Instant::now(),
        hung_up: hung_up.clone(),
        lines,
        playing: None,
        started: 0,
        quiet: 0,
        robot_spoke: false,
        frame: 0,
        interrupt_from: manner.interrupt_from,
        talk_frames: 0,
        hang_up_after_last: manner.hang_up_after_last,
        last_ended: None,
        on_line,
    };
    let config = LiveConfig {
        silence_timeout: Duration::from_secs(30),
        max_duration: Duration::from_secs(140),
        summary_budget: Duration::from_secs(15),
        ..LiveConfig::default()
    };
    let (record, stats) = run_call(
        &mut engine,
        Responder::new(robot, Some(llm)),
        runtime.handle(),
        Box::new(line),
        &Control(hung_up),
        playout,
        &config,
        ("piper", "tiny.en"),
    )
    .unwrap();
    for t in &record.turns {
        eprintln!(
            "turn {}: caller {:?} -> robot {:?} [{:?}] first token {:?} ms, first sentence {:?} ms, first audio {:?} ms, stream done {:?} ms, fallback {:?}, filtered {:?}",
            t.index,
            t.caller_transcript,
            t.robot_reply,
            t.reply_source,
            t.timings.llm_first_token_ms,
            t.timings.llm_first_sentence_ms,
            t.timings.first_reply_audio_ms,
            t.timings.llm_done_ms,
            t.fallback,
            t.filtered
        );
    }
    eprintln!(
        "summary ({:?}, {:?}): {:?}",
        record.interest, record.summary_source, record.summary
    );
    (record, stats)
}

#[test]
fn the_robot_speaks_the_models_first_sentence_while_the_rest_streams() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(LlamaServer::start());
    let robot = robot("reception-en", "llm");
    let record = call(
        &robot,
        relaxed(&server.url, false),
        &runtime,
        &[
            "I would like to book a room for two nights, please.",
            "My name is John Smith.",
            "Five five five, one two three, four five six seven.",
        ],
        Box::new(|_| {}),
    );
    drop(server);

    assert_eq!(record.mode, "llm");
    assert_eq!(record.fallback, None, "record: {record:#?}");
    let llm_turns: Vec<_> = record
        .turns
        .iter()
        .filter(|t| {
            t.reply_source
                .as_deref()
                .is_some_and(|s| s.split(',').any(|s| s == "llm"))
        })
        .collect();
    assert!(
        !llm_turns.is_empty(),
        "no turn spoken by the model: {record:#?}"
    );
    for t in &llm_turns {
        assert!(t.timings.llm_first_token_ms.is_some(), "turn {t:#?}");
        assert!(t.timings.llm_first_sentence_ms.is_some(), "turn {t:#?}");
        assert!(t.robot_audio_ms > 0, "turn {t:#?}");
    }
    // Sentence streaming: in some turn the robot's first audio was queued
    // for sending before the model's stream had finished.
    assert!(
        llm_turns.iter().any(|t| matches!(
            (t.timings.first_reply_audio_ms, t.timings.llm_done_ms),
            (Some(audio), Some(done)) if audio < done
        )),
        "no reply started before its stream ended: {llm_turns:#?}"
    );
    assert!(record.summary.as_deref().is_some_and(|s| !s.is_empty()));
    assert!(matches!(
        record.interest.as_deref(),
        Some("hot" | "warm" | "cold" | "not_interested")
    ));
}

/// A llama.cpp-format stream whose model records the caller's details.
const RECORDS_LEAD: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"record_lead\",\"arguments\":\"{\\\"name\\\":\\\"John\\\",\\\"phone\\\":\\\"555 123 4567\\\",\\\"request\\\":\\\"a room\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn the_endpoint_dying_mid_call_leaves_the_script_to_finish_with_the_lead_kept() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(FaultServer::start(Fault::Body(RECORDS_LEAD, false)));
    let url = server.url.clone();
    // The endpoint goes away (its port closed) as the caller starts the
    // line after the model's first answer. Lines repeat: on a loaded box a
    // recognition can overrun its deadline and count as silence.
    let server = Mutex::new(Some(server));
    let robot = robot("reception-en", "llm");
    let record = call(
        &robot,
        relaxed(&url, true),
        &runtime,
        &[
            "I would like to book a room, please.",
            "I would like to book a room, please.",
            "I would like to book a room, please.",
            "Friday evening.",
            "Yes, that is right.",
        ],
        Box::new(move |_| {
            let mut server = server.lock().unwrap();
            if server.as_ref().is_some_and(|s| s.connections() >= 1) {
                drop(server.take());
            }
        }),
    );

    assert_eq!(record.mode, "llm");
    assert!(record.fallback.is_some(), "no fallback: {record:#?}");
    let fell = record
        .turns
        .iter()
        .position(|t| t.fallback.is_some())
        .expect("a turn records the fallback");
    assert!(
        record.turns[..fell]
            .iter()
            .any(|t| t.timings.llm_first_token_ms.is_some()),
        "the model answered before the fault: {record:#?}"
    );
    // From the same point: the script, not the greeting again.
    assert!(
        record.turns[fell..]
            .iter()
            .all(|t| t.reply_source.as_deref() == Some("script")),
        "record: {record:#?}"
    );
    assert_ne!(record.turns[fell].phrase_id, "greeting");
    // What the model captured before the fault is kept.
    assert_eq!(
        record.lead.name.as_deref(),
        Some("John"),
        "{:#?}",
        record.lead
    );
    assert_eq!(record.lead.phone.as_deref(), Some("+15551234567"));
    assert_eq!(record.summary_source.as_deref(), Some("rules"));
    assert!(record.interest.is_some());
}

#[test]
fn converse_in_llm_mode_with_no_endpoint_runs_the_script_and_summarises() {
    // The `converse` simulation of an `llm` robot whose endpoint is down:
    // the first heard turn falls back, the demo caller finishes the call on
    // the script, and the record carries the mode, the fallback and the
    // rules' summary.
    let url = format!("http://127.0.0.1:{}/v1", vb_llm::testing::dead_port());
    let robot = robot("reception-en", "llm");
    let models = Models::open(None);
    let mut stt = models.transcriber("whisper-tiny.en", 1).unwrap();
    let mut tts = models.tts().unwrap();
    let mut caller_voice = models.caller_voice("en").unwrap();
    let mut caller = vb_call::DemoCaller::new(Language::En, caller_voice.as_mut());
    let mut engine = CallEngine::new(&mut stt, &mut tts, &robot, EngineConfig::default());
    let (record, _audio) = vb_call::Simulation::new(
        &mut engine,
        &robot,
        "robot".into(),
        "whisper-tiny.en".into(),
    )
    .with_llm(Some(relaxed(&url, true)))
    .run(&mut caller)
    .unwrap();
    for t in &record.turns {
        eprintln!(
            "turn {}: {:?} -> {:?} [{:?}] fallback {:?}",
            t.index, t.caller_transcript, t.robot_reply, t.reply_source, t.fallback
        );
    }
    assert_eq!(record.mode, "llm");
    let heard = record.turns.iter().any(|t| !t.caller_transcript.is_empty());
    assert!(heard, "the caller was never heard: {record:#?}");
    assert!(record.fallback.is_some(), "record: {record:#?}");
    assert!(record.turns.iter().any(|t| t.fallback.is_some()));
    assert_eq!(record.summary_source.as_deref(), Some("rules"));
    assert!(record.summary.is_some() && record.interest.is_some());
}

#[test]
fn a_barge_in_cancels_the_models_stream_and_the_queued_speech() {
    // An endpoint that streams a sentence every 100 ms forever: the robot
    // would talk until the reply budget ends. The caller talks over it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(FaultServer::start(Fault::Endless));
    let robot = robot("reception-en", "llm");
    let (record, stats) = call_with(
        &robot,
        relaxed(&server.url, true),
        &runtime,
        &[
            "I would like to book a room, please.",
            "My name is John Smith.",
        ],
        Box::new(|_| {}),
        Manner {
            interrupt_from: 1,
            hang_up_after_last: Some(150),
        },
    );
    assert!(stats.barge_ins >= 1, "no barge-in: {stats:?}");
    let interrupted = record
        .turns
        .iter()
        .find(|t| t.reply_source.as_deref() == Some("llm"))
        .expect("a turn spoken by the model");
    // The endless stream ended (the box dropped it) at the barge-in,
    // before the 60 s reply budget would have.
    assert!(
        interrupted
            .timings
            .llm_done_ms
            .is_some_and(|ms| ms < 55_000),
        "turn: {interrupted:#?}"
    );
    assert!(record.duration_ms < 100_000, "record: {record:#?}");
}
