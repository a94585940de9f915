//! The per-call driver: takes the caller's final transcript and yields what
//! the robot says, sentence by sentence, through a bounded channel, in the
//! robot's mode (`script`, `llm`, `llm_script`). It owns the time budgets:
//! a filler when the model is slow to start, and a fall back to the script
//! (keeping what was captured) when it fails, stalls or misbehaves, so the
//! caller never hears more than [`crate::DEAD_AIR_MS`] of silence.
//!
//! ```text
//!  caller text ──> turn() ──┬─ script ─────────────> Dialog::on_caller ─────────────┐
//!                           ├─ llm ──> LlmClient ──> sentences ──> Say(Llm)           ├──> mpsc (bounded) ──> TTS
//!                           │            │  tools ──> Validator ──> Action/Rejected   │
//!                           │            └─ late/failed ──> filler / Dialog::resume ──┤
//!                           └─ llm_script ──> phrase id ──> allowed? Dialog::say ─────┘
//!  CancellationToken (barge-in) stops it at once; the HTTP stream is dropped.
//! ```

use crate::breaker::SharedBreaker;
use crate::chunk::{StreamItem, ToolCall};
use crate::client::{ChatRequest, LlmClient};
use crate::error::LlmError;
use crate::memory::{Conversation, MemoryBudget, Message, Role};
use crate::sentence::SentenceSplitter;
use crate::tools::{self, Action, Rejection, StructuredFilter, Validator};
use serde::Serialize;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vb_dialog::{
    Dialog, Expect, Interest, Language, Lead, Mode, PhraseId, Prefill, Reply, ReplyPart, Robot,
};

/// Capacity of the reply channel a turn writes to. Full policy: the turn
/// waits (text and control must not be dropped); a barge-in cancels the
/// wait. Eight sentences is more than a phone reply holds.
pub const REPLY_CHANNEL: usize = 8;
/// Most transcript messages kept for the post-call summary.
const MAX_TRANSCRIPT: usize = 400;

/// Where a spoken line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Written by the model.
    Llm,
    /// A filler while the model is slow.
    Filler,
    /// The script dialog's reply.
    Script,
    /// A scripted phrase the model picked (`llm_script`).
    Phrase,
}

/// One thing to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// The text for the TTS.
    pub text: String,
    /// A pre-recorded WAV to play instead, if any.
    pub audio: Option<PathBuf>,
    /// Where it came from.
    pub source: Source,
    /// Fixed text the TTS may cache.
    pub cacheable: bool,
    /// Hang up after saying it.
    pub end_call: bool,
    /// The script's phrase id, when the script or a phrase pick said it.
    pub phrase_id: Option<String>,
    /// The script's phrases it is made of (per-phrase recordings and cache).
    pub parts: Vec<ReplyPart>,
}

impl Utterance {
    fn from_reply(r: Reply, source: Source) -> Utterance {
        Utterance {
            text: r.text,
            audio: r.audio,
            source,
            cacheable: r.cacheable,
            end_call: r.end_call,
            phrase_id: Some(r.phrase_id),
            parts: r.parts,
        }
    }

    fn llm(text: String) -> Utterance {
        Utterance {
            text,
            audio: None,
            source: Source::Llm,
            cacheable: false,
            end_call: false,
            phrase_id: None,
            parts: Vec::new(),
        }
    }

    /// As a dialog reply for the TTS: a script line keeps its phrases;
    /// a model's line is one uncached part whose phrase id is its source
    /// (`llm`, `filler`).
    pub fn to_reply(&self) -> Reply {
        Reply {
            text: self.text.clone(),
            phrase_id: self
                .phrase_id
                .clone()
                .unwrap_or_else(|| self.source.code().to_owned()),
            audio: self.audio.clone(),
            end_call: self.end_call,
            cacheable: self.cacheable,
            parts: self.parts.clone(),
        }
    }
}

impl Source {
    /// The source's name in records.
    pub fn code(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Filler => "filler",
            Source::Script => "script",
            Source::Phrase => "phrase",
        }
    }
}

/// What a turn sends, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Speak this next.
    Say(Utterance),
    /// A validated tool call took effect (store the lead fields; transfer;
    /// hang up after what is queued has been said).
    Action(Action),
    /// A tool call or phrase pick was refused (for the call record).
    Rejected(Rejection),
    /// The model failed; this call runs the script from now on.
    FellBack {
        /// What went wrong.
        reason: String,
    },
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Everything for this turn was sent.
    Done,
    /// The cancellation token fired (barge-in) or the receiver went away.
    Cancelled,
    /// The model failed during this turn; the script answered.
    FellBack,
}

/// What the last turn's model stream did, measured from the turn's start
/// (for the call record and the benchmark). All `None` on a scripted turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// The first text or tool call from the model.
    pub first_token: Option<Duration>,
    /// The first sentence of the model's handed to the call loop.
    pub first_sentence: Option<Duration>,
    /// The model's stream ended (finished, failed or cancelled).
    pub stream_done: Option<Duration>,
}

/// The endpoint and breaker shared by all calls of a robot. Cheap to clone
/// (the HTTP client and the breaker are shared handles): clone it per call.
#[derive(Debug, Clone)]
pub struct LlmEngine {
    /// The client.
    pub client: LlmClient,
    /// The breaker every call consults.
    pub breaker: SharedBreaker,
}

impl LlmEngine {
    /// An engine for `client` with a breaker from its config.
    pub fn new(client: LlmClient) -> LlmEngine {
        let breaker = SharedBreaker::new(client.config().breaker);
        LlmEngine { client, breaker }
    }
}

/// The state of one LLM turn's time budget.
struct Clock {
    start: Instant,
    last_output: Instant,
    said_llm: usize,
    filler_said: bool,
    first_token: Duration,
    stall: Duration,
    reply_end: Instant,
}

impl Clock {
    /// The next deadline and whether it is the filler's.
    fn deadline(&self) -> (Instant, bool) {
        let (at, filler) = if self.said_llm == 0 && !self.filler_said {
            (self.start + self.first_token, true)
        } else {
            (self.last_output + self.stall, false)
        };
        (at.min(self.reply_end), filler && at < self.reply_end)
    }
}

/// The model's text of one turn: the splitter and what was said.
struct TurnText {
    splitter: SentenceSplitter,
    said: String,
}

impl TurnText {
    /// The held-back text, when it already ends like a sentence.
    fn take_complete(&mut self) -> Option<String> {
        let pending = self.splitter.pending().trim_end();
        let complete = pending
            .chars()
            .last()
            .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…'));
        if !complete {
            return None;
        }
        let s = self.splitter.finish()?;
        self.said.push_str(&s);
        self.said.push(' ');
        Some(s)
    }
}

enum Raced<T> {
    Ready(T),
    Cancelled,
    TimedOut(LlmError),
}

/// One call's responder.
#[derive(Debug)]
pub struct Responder {
    robot: Robot,
    mode: Mode,
    engine: Option<LlmEngine>,
    dialog: Dialog,
    memory: Conversation,
    validator: Validator,
    captured: Prefill,
    classified: Option<(Interest, String)>,
    transferred: bool,
    scripted: bool,
    fallback: Option<String>,
    fillers: Vec<String>,
    next_filler: usize,
    transcript: Vec<Message>,
    turns: u32,
    stats: TurnStats,
}

async fn send(out: &mpsc::Sender<Output>, cancel: &CancellationToken, o: Output) -> bool {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => false,
        r = out.send(o) => r.is_ok(),
    }
}

impl Responder {
    /// A responder for one call. Without an engine (no `llm.toml`, or the
    /// client could not be built) LLM robots run the script.
    pub fn new(robot: &Robot, engine: Option<LlmEngine>) -> Responder {
        let mode = robot.config.mode;
        let (memory, fillers) = match &engine {
            Some(e) => (e.client.config().memory, e.client.config().fillers.clone()),
            None => (
                MemoryBudget::default(),
                crate::config::default_fillers(robot.language),
            ),
        };
        Responder {
            robot: robot.clone(),
            mode,
            scripted: mode == Mode::Script || engine.is_none(),
            engine,
            dialog: Dialog::new(robot),
            memory: Conversation::new(memory),
            validator: Validator::for_robot(robot),
            captured: Prefill::default(),
            classified: None,
            transferred: false,
            fallback: None,
            fillers,
            next_filler: 0,
            transcript: Vec::new(),
            turns: 0,
            stats: TurnStats::default(),
        }
    }

    /// The robot's mode (from robot.toml).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether this call now runs the script (mode `script`, no engine, or
    /// fallen back).
    pub fn is_scripted(&self) -> bool {
        self.scripted
    }

    /// Why the call fell back to the script, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Whether a transfer to a person was accepted.
    pub fn transfer_requested(&self) -> bool {
        self.transferred
    }

    /// What the model's stream did in the last turn.
    pub fn last_turn(&self) -> TurnStats {
        self.stats
    }

    /// What [`Responder::turn`] would say to `caller` now, when the script
    /// answers this turn, without taking the turn (the dialog is not moved
    /// on). None when the model would answer, since its reply is not known
    /// before it is asked. For preparing the reply's audio while the call
    /// waits to be sure the caller has finished.
    pub fn preview(&self, caller: &str) -> Option<Reply> {
        if !self.scripted || self.dialog.is_finished() {
            return None;
        }
        Some(self.dialog.clone().on_caller(caller))
    }

    /// What the script waits for now (digits while it asks for a number).
    pub fn expect(&self) -> Expect {
        self.dialog.expect()
    }

    /// Whether the caller's words so far hold a whole phone number while the
    /// script asks for one (`vb_dialog::Dialog::hears_whole_number`).
    pub fn hears_whole_number(&self, caller: &str) -> bool {
        self.dialog.hears_whole_number(caller)
    }

    /// Whether the script has ended the call.
    pub fn is_finished(&self) -> bool {
        self.dialog.is_finished()
    }

    /// The call has lasted as long as the robot allows: the script's polite
    /// goodbye, with what the model captured kept.
    pub fn on_max_duration(&mut self) -> Utterance {
        self.dialog.adopt(&self.captured);
        let r = self.dialog.on_max_duration();
        self.log(Role::Assistant, &r.text);
        Utterance::from_reply(r, Source::Script)
    }

    /// The greeting (always the robot's fixed, cacheable phrase: no model
    /// latency on answer).
    pub fn greet(&mut self) -> Utterance {
        let r = self.dialog.start();
        self.log(Role::Assistant, &r.text);
        Utterance::from_reply(r, Source::Script)
    }

    /// The caller said nothing until the silence timeout.
    pub fn on_silence(&mut self) -> Utterance {
        self.sync_dialog();
        let r = self.dialog.on_silence();
        self.log(Role::Assistant, &r.text);
        Utterance::from_reply(r, Source::Script)
    }

    /// What is captured so far, classified: the model's validated class
    /// when it gave one, else the script's rules.
    pub fn lead(&self) -> Lead {
        let mut d = self.dialog.clone();
        d.adopt(&self.captured);
        let mut lead = d.lead().clone();
        if let Some((interest, _)) = &self.classified {
            lead.interest = *interest;
        }
        lead
    }

    /// The model's classification and its reason, if it gave a valid one.
    pub fn classification(&self) -> Option<(Interest, &str)> {
        self.classified.as_ref().map(|(i, r)| (*i, r.as_str()))
    }

    /// The call's transcript (robot and caller), for the summary and record.
    pub fn transcript(&self) -> &[Message] {
        &self.transcript
    }

    /// The engine, if this robot has one.
    pub fn engine(&self) -> Option<&LlmEngine> {
        self.engine.as_ref()
    }

    /// The robot.
    pub fn robot(&self) -> &Robot {
        &self.robot
    }

    fn log(&mut self, role: Role, text: &str) {
        if self.transcript.len() < MAX_TRANSCRIPT && !text.trim().is_empty() {
            self.transcript.push(Message {
                role,
                content: text.trim().to_owned(),
            });
        }
    }

    /// Brings the script up to what the model captured, without speaking.
    fn sync_dialog(&mut self) {
        if self.mode == Mode::Llm {
            self.dialog.adopt(&self.captured);
            let _ = self.dialog.resume();
        }
    }

    /// One caller turn: sends what to say (and tool actions) to `out` until
    /// the turn is complete or `cancel` fires. Start it as soon as the final
    /// transcript is in; the budgets count from then.
    pub async fn turn(
        &mut self,
        caller: &str,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        self.log(Role::User, caller);
        self.turns = self.turns.saturating_add(1);
        self.stats = TurnStats::default();
        if self.dialog.is_finished() {
            let r = self.dialog.start();
            return self.say_reply(r, Source::Script, out, cancel).await;
        }
        if self.scripted {
            let r = self.dialog.on_caller(caller);
            return self.say_reply(r, Source::Script, out, cancel).await;
        }
        if self.mode == Mode::Llm && self.turns > self.robot.config.max_turns {
            self.sync_dialog();
            let r = self.dialog.say(PhraseId::MaxTurnsGoodbye);
            let r = Reply {
                end_call: true,
                ..r
            };
            return self.say_reply(r, Source::Script, out, cancel).await;
        }
        let t0 = Instant::now();
        let outcome = match self.mode {
            Mode::LlmScript => self.llm_script_turn(caller, out, cancel).await,
            _ => self.llm_turn(caller, out, cancel).await,
        };
        // A turn cancelled while waiting to hand over a sentence: the
        // stream was dropped on the way out.
        if self.stats.first_token.is_some() && self.stats.stream_done.is_none() {
            self.stats.stream_done = Some(t0.elapsed());
        }
        outcome
    }

    async fn say_reply(
        &mut self,
        r: Reply,
        source: Source,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        self.log(Role::Assistant, &r.text);
        if send(out, cancel, Output::Say(Utterance::from_reply(r, source))).await {
            TurnOutcome::Done
        } else {
            TurnOutcome::Cancelled
        }
    }

    fn language_line(&self) -> &'static str {
        match self.robot.language {
            Language::En => "Speak English.",
            Language::Ru => "Говори по-русски.",
        }
    }

    fn system_prompt(&self) -> String {
        let c = &self.captured;
        let known: Vec<String> = [
            ("name", &c.name),
            ("phone", &c.phone),
            ("request", &c.request),
            ("dates", &c.dates),
            ("city", &c.city),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
        .collect();
        let mut s = self.robot.prompt.clone().unwrap_or_default();
        s.push_str("\n\nYou are on a phone call. Answer in one to three short sentences, no lists or markdown. ");
        s.push_str(self.language_line());
        s.push_str("\nKnown about the caller: ");
        if known.is_empty() {
            s.push_str("nothing yet.");
        } else {
            s.push_str(&known.join("; "));
        }
        if self
            .engine
            .as_ref()
            .is_some_and(|e| !e.client.config().tools)
        {
            s.push('\n');
            s.push_str(&tools::structured_instructions());
        }
        s
    }

    fn filler(&mut self) -> Utterance {
        let text = self
            .fillers
            .get(self.next_filler % self.fillers.len().max(1))
            .cloned()
            .unwrap_or_else(|| "…".to_owned());
        self.next_filler += 1;
        Utterance {
            text,
            audio: None,
            source: Source::Filler,
            cacheable: true,
            end_call: false,
            phrase_id: None,
            parts: Vec::new(),
        }
    }

    /// Awaits `fut` within the turn's budget; says a filler when the first
    /// sentence is late.
    async fn race<T>(
        &mut self,
        fut: impl Future<Output = T>,
        clock: &mut Clock,
        text: &mut TurnText,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> Raced<T> {
        tokio::pin!(fut);
        loop {
            let (deadline, is_filler) = clock.deadline();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Raced::Cancelled,
                v = &mut fut => return Raced::Ready(v),
                _ = tokio::time::sleep_until(deadline) => {
                    // A sentence held back only to see what follows its
                    // full stop is said rather than a filler or a give-up.
                    if let Some(s) = text.take_complete() {
                        clock.said_llm += 1;
                        clock.last_output = Instant::now();
                        self.stats.first_sentence.get_or_insert(clock.start.elapsed());
                        if !send(out, cancel, Output::Say(Utterance::llm(s))).await {
                            return Raced::Cancelled;
                        }
                        continue;
                    }
                    if is_filler {
                        let f = self.filler();
                        self.log(Role::Assistant, &f.text);
                        clock.filler_said = true;
                        clock.last_output = Instant::now();
                        if !send(out, cancel, Output::Say(f)).await {
                            return Raced::Cancelled;
                        }
                        continue;
                    }
                    let now = Instant::now();
                    let (stage, after) = if now >= clock.reply_end {
                        ("reply", clock.reply_end - clock.start)
                    } else if clock.said_llm == 0 {
                        ("first sentence", clock.first_token + clock.stall)
                    } else {
                        ("next sentence", clock.stall)
                    };
                    return Raced::TimedOut(LlmError::Timeout { stage, after });
                }
            }
        }
    }

    fn apply_tool(&mut self, call: &ToolCall) -> Output {
        match self.validator.validate(call, &self.captured) {
            Ok(action) => {
                match &action {
                    Action::RecordLead(f) => tools::merge(&mut self.captured, f),
                    Action::Classify { interest, reason } => {
                        self.classified = Some((*interest, reason.clone()));
                    }
                    Action::Transfer { .. } => self.transferred = true,
                    Action::EndCall { .. } => {}
                }
                Output::Action(action)
            }
            Err(r) => {
                tracing::info!(tool = %call.name, "tool call rejected: {r}");
                Output::Rejected(r)
            }
        }
    }

    async fn llm_turn(
        &mut self,
        caller: &str,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        let Some(engine) = self.engine.clone() else {
            return self.fall_back("no LLM engine".into(), out, cancel).await;
        };
        let cfg = engine.client.config().clone();
        let start = Instant::now();
        if let Err(retry_in) = engine.breaker.try_acquire(start.into_std()) {
            let e = LlmError::BreakerOpen { retry_in };
            return self.fall_back(e.to_string(), out, cancel).await;
        }
        self.memory.push(Role::User, caller);
        let request = ChatRequest {
            messages: self.memory.messages(&self.system_prompt()),
            tools: cfg.tools.then(tools::definitions),
            max_tokens: None,
        };
        let mut clock = Clock {
            start,
            last_output: start,
            said_llm: 0,
            filler_said: false,
            first_token: cfg.timeouts.first_token,
            stall: cfg.timeouts.stall,
            reply_end: start + cfg.timeouts.reply,
        };
        let mut text = TurnText {
            splitter: SentenceSplitter::default(),
            said: String::new(),
        };
        let mut filter = (!cfg.tools).then(|| StructuredFilter::new(4096));
        let mut end_call = false;

        let result: Result<(), LlmError> = 'turn: {
            let mut stream = match self
                .race(
                    engine.client.stream(&request),
                    &mut clock,
                    &mut text,
                    out,
                    cancel,
                )
                .await
            {
                Raced::Ready(Ok(s)) => s,
                Raced::Ready(Err(e)) | Raced::TimedOut(e) => break 'turn Err(e),
                Raced::Cancelled => {
                    engine.breaker.on_cancel(Instant::now().into_std());
                    return TurnOutcome::Cancelled;
                }
            };
            loop {
                let item = match self
                    .race(stream.next(), &mut clock, &mut text, out, cancel)
                    .await
                {
                    Raced::Ready(Ok(Some(i))) => {
                        self.stats.first_token.get_or_insert(clock.start.elapsed());
                        i
                    }
                    Raced::Ready(Ok(None)) => break 'turn Ok(()),
                    Raced::Ready(Err(e)) | Raced::TimedOut(e) => break 'turn Err(e),
                    Raced::Cancelled => {
                        drop(stream);
                        self.stats.stream_done = Some(start.elapsed());
                        engine.breaker.on_cancel(Instant::now().into_std());
                        self.memory.push(Role::Assistant, &text.said);
                        self.log(Role::Assistant, &text.said);
                        return TurnOutcome::Cancelled;
                    }
                };
                let (speech, calls, finished) = match item {
                    StreamItem::Text(t) => match filter.as_mut() {
                        Some(f) => {
                            let o = f.push(&t);
                            (o.speech, o.calls, false)
                        }
                        None => (t, Vec::new(), false),
                    },
                    StreamItem::ToolCalls(c) => (String::new(), c, false),
                    StreamItem::Finished { .. } => match filter.as_mut() {
                        Some(f) => {
                            let o = f.finish();
                            (o.speech, o.calls, true)
                        }
                        None => (String::new(), Vec::new(), true),
                    },
                };
                for c in &calls {
                    let o = self.apply_tool(c);
                    end_call |= matches!(o, Output::Action(Action::EndCall { .. }));
                    if !send(out, cancel, o).await {
                        return TurnOutcome::Cancelled;
                    }
                }
                let mut sentences = text.splitter.push(&speech);
                if finished {
                    sentences.extend(text.splitter.finish());
                }
                for s in sentences {
                    text.said.push_str(&s);
                    text.said.push(' ');
                    clock.said_llm += 1;
                    clock.last_output = Instant::now();
                    self.stats.first_sentence.get_or_insert(start.elapsed());
                    if !send(out, cancel, Output::Say(Utterance::llm(s))).await {
                        return TurnOutcome::Cancelled;
                    }
                }
                if finished {
                    break 'turn Ok(());
                }
            }
        };

        self.stats.stream_done = Some(start.elapsed());
        match result {
            Ok(()) => {
                engine.breaker.on_success();
                self.memory.push(Role::Assistant, &text.said);
                self.log(Role::Assistant, &text.said);
                if end_call {
                    let phrase = if self
                        .classified
                        .as_ref()
                        .is_some_and(|c| c.0 == Interest::NotInterested)
                    {
                        PhraseId::NotInterested
                    } else if self.captured.phone.is_some() {
                        PhraseId::Goodbye
                    } else {
                        PhraseId::MaxTurnsGoodbye
                    };
                    self.sync_dialog();
                    let r = Reply {
                        end_call: true,
                        ..self.dialog.say(phrase)
                    };
                    return self.say_reply(r, Source::Script, out, cancel).await;
                }
                if clock.said_llm == 0 {
                    // Only tool calls, or nothing: the script asks the next
                    // open question, so the caller is never left waiting.
                    self.sync_dialog();
                    let r = self.dialog.resume();
                    return self.say_reply(r, Source::Script, out, cancel).await;
                }
                TurnOutcome::Done
            }
            Err(e) => {
                engine
                    .breaker
                    .on_failure(Instant::now().into_std(), e.retry_after());
                tracing::warn!("LLM failed, call continues on the script: {e}");
                if !text.said.is_empty() {
                    self.memory.push(Role::Assistant, &text.said);
                    self.log(Role::Assistant, &text.said);
                }
                self.fall_back(e.to_string(), out, cancel).await
            }
        }
    }

    /// This call runs the script from now on, from what is captured.
    async fn fall_back(
        &mut self,
        reason: String,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        self.fallback = Some(reason.clone());
        self.scripted = true;
        if !send(out, cancel, Output::FellBack { reason }).await {
            return TurnOutcome::Cancelled;
        }
        let r = match self.mode {
            // llm_script already ran the script on this turn.
            Mode::LlmScript => return TurnOutcome::FellBack,
            _ => {
                self.dialog.adopt(&self.captured);
                self.dialog.resume()
            }
        };
        match self.say_reply(r, Source::Script, out, cancel).await {
            TurnOutcome::Done => TurnOutcome::FellBack,
            other => other,
        }
    }

    /// Phrases the model may pick now.
    fn allowed_phrases(&self, script: &Reply) -> Vec<PhraseId> {
        let lead = self.dialog.lead();
        let ask = self.robot.config.ask;
        let mut ids = vec![PhraseId::WhoIsThis, PhraseId::DidNotCatch];
        if lead.request.is_none() {
            ids.push(PhraseId::AskNeed);
        }
        if lead.name.is_none() {
            ids.push(PhraseId::AskName);
        }
        if lead.phone.is_none() {
            ids.push(PhraseId::AskPhone);
        }
        if ask.dates && lead.dates.is_none() {
            ids.push(PhraseId::AskDates);
        }
        if ask.city && lead.city.is_none() {
            ids.push(PhraseId::AskCity);
        }
        if lead.phone.is_some() {
            ids.push(PhraseId::Confirm);
        }
        if let Some(p) = script.parts.first() {
            if !ids.contains(&p.phrase) {
                ids.push(p.phrase);
            }
        }
        ids
    }

    async fn llm_script_turn(
        &mut self,
        caller: &str,
        out: &mpsc::Sender<Output>,
        cancel: &CancellationToken,
    ) -> TurnOutcome {
        // The script always understands the caller and captures fields;
        // the model only picks what to say next.
        let script = self.dialog.on_caller(caller);
        if script.end_call {
            return self.say_reply(script, Source::Script, out, cancel).await;
        }
        let Some(engine) = self.engine.clone() else {
            return self.say_reply(script, Source::Script, out, cancel).await;
        };
        let start = Instant::now();
        if let Err(retry_in) = engine.breaker.try_acquire(start.into_std()) {
            let e = LlmError::BreakerOpen { retry_in };
            self.fallback = Some(e.to_string());
            return self.say_reply(script, Source::Script, out, cancel).await;
        }
        let allowed = self.allowed_phrases(&script);
        let menu: Vec<String> = allowed
            .iter()
            .map(|id| format!("{id}: {}", self.dialog.say(*id).text))
            .collect();
        let mut system = self.robot.prompt.clone().unwrap_or_default();
        system.push_str(&format!(
            "\n\nYou choose what the receptionist says next. Answer with only one phrase id from this list, nothing else:\n{}\nThe script suggests: {}",
            menu.join("\n"),
            script.phrase_id
        ));
        self.memory.push(Role::User, caller);
        let request = ChatRequest {
            messages: self.memory.messages(&system),
            tools: None,
            max_tokens: Some(16),
        };
        let budget = engine.client.config().timeouts.first_token;
        let pick = async {
            let mut stream = engine.client.stream(&request).await?;
            let mut text = String::new();
            while let Some(item) = stream.next().await? {
                if let StreamItem::Text(t) = item {
                    text.push_str(&t);
                }
            }
            Ok::<String, LlmError>(text)
        };
        let answer = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                engine.breaker.on_cancel(Instant::now().into_std());
                return TurnOutcome::Cancelled;
            }
            r = tokio::time::timeout(budget, pick) => r.unwrap_or(Err(LlmError::Timeout { stage: "phrase pick", after: budget })),
        };
        let text = match answer {
            Ok(t) => {
                engine.breaker.on_success();
                t
            }
            Err(e) => {
                engine
                    .breaker
                    .on_failure(Instant::now().into_std(), e.retry_after());
                tracing::info!("phrase pick failed, the script decides: {e}");
                self.memory.push(Role::Assistant, &script.phrase_id);
                return self.say_reply(script, Source::Script, out, cancel).await;
            }
        };
        match pick_phrase(&text, &allowed) {
            Ok(id) => {
                self.memory.push(Role::Assistant, id.as_str());
                let r = self.dialog.say(id);
                self.say_reply(r, Source::Phrase, out, cancel).await
            }
            Err(rejection) => {
                self.memory.push(Role::Assistant, &script.phrase_id);
                if !send(out, cancel, Output::Rejected(rejection)).await {
                    return TurnOutcome::Cancelled;
                }
                self.say_reply(script, Source::Script, out, cancel).await
            }
        }
    }
}

/// Finds the phrase id in the model's answer: the first word that is a
/// phrase id. A real id outside `allowed` is refused, as is an answer with
/// no id.
pub fn pick_phrase(answer: &str, allowed: &[PhraseId]) -> Result<PhraseId, Rejection> {
    let found = answer
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .find_map(|w| PhraseId::parse(&w.to_ascii_lowercase()));
    match found {
        Some(id) if allowed.contains(&id) => Ok(id),
        Some(id) => Err(Rejection::PhraseNotAllowed {
            id: id.as_str().to_owned(),
        }),
        None => Err(Rejection::UnknownPhrase {
            value: answer.chars().take(80).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_picks() {
        let allowed = [PhraseId::AskName, PhraseId::AskPhone];
        assert_eq!(pick_phrase("ask_phone", &allowed), Ok(PhraseId::AskPhone));
        assert_eq!(
            pick_phrase("  \"ASK_NAME\".", &allowed),
            Ok(PhraseId::AskName)
        );
        assert_eq!(
            pick_phrase("I think `ask_phone` fits", &allowed),
            Ok(PhraseId::AskPhone)
        );
        assert!(matches!(
            pick_phrase("goodbye", &allowed),
            Err(Rejection::PhraseNotAllowed { .. })
        ));
        assert!(matches!(
            pick_phrase("ask_fax please", &allowed),
            Err(Rejection::UnknownPhrase { .. })
        ));
        assert!(matches!(
            pick_phrase("", &allowed),
            Err(Rejection::UnknownPhrase { .. })
        ));
    }

    #[test]
    fn script_mode_needs_no_engine() {
        let robot = Robot::builtin("reception-en").unwrap();
        let mut r = Responder::new(&robot, None);
        assert!(r.is_scripted());
        assert_eq!(r.greet().source, Source::Script);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::channel(REPLY_CHANNEL);
        let cancel = CancellationToken::new();
        let outcome = rt.block_on(r.turn("I need a room", &tx, &cancel));
        assert_eq!(outcome, TurnOutcome::Done);
        let Some(Output::Say(u)) = rx.try_recv().ok() else {
            panic!()
        };
        assert_eq!(u.text, robot.phrase("ask_name").unwrap().text);
    }

    #[test]
    fn preview_is_the_scripted_turn_without_taking_it() {
        let robot = Robot::builtin("reception-en").unwrap();
        let mut r = Responder::new(&robot, None);
        r.greet();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        for caller in [
            "I need a room",
            "My name is Anna Petrova",
            "five five five one two three four five six seven",
        ] {
            let preview = r.preview(caller).expect("the script answers");
            // Previewing twice gives the same: the dialog did not move.
            assert_eq!(r.preview(caller), Some(preview.clone()));
            let (tx, mut rx) = mpsc::channel(REPLY_CHANNEL);
            assert_eq!(rt.block_on(r.turn(caller, &tx, &cancel)), TurnOutcome::Done);
            let Some(Output::Say(u)) = rx.try_recv().ok() else {
                panic!("{caller}: nothing said")
            };
            assert_eq!(u.text, preview.text, "{caller}");
        }
        assert_eq!(r.lead().name.as_deref(), Some("Anna Petrova"));
    }
}
