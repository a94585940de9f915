//! Against the real llama.cpp server (llama-cpp-python) with SmolLM2-135M,
//! started here on an ephemeral port: streaming, sentence splitting,
//! cancellation mid-stream, the `llm` and `llm_script` modes, the breaker
//! and the summary. The model's answers are poor: these assert mechanics.
//! Run with `--test-threads=1` (one server at a time on a small machine).

mod common;

use common::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vb_dialog::{Language, PhraseId};
use vb_llm::{
    BreakerState, ChatRequest, LlmClient, LlmConfig, LlmEngine, Message, Output, Responder, Role,
    SentenceSplitter, Source, StreamItem, SummarySource, TurnOutcome,
};

/// Budgets for mechanics tests on a loaded 2-core machine: generous, so a
/// slow first token does not turn a mechanics test into a fallback test
/// (the fallback has its own tests in faults.rs).
fn relaxed(url: &str, tools: bool, max_tokens: u32) -> LlmEngine {
    let mut cfg = LlmConfig::local(url, "smollm2", Language::En);
    cfg.tools = tools;
    cfg.max_tokens = max_tokens;
    cfg.timeouts.first_token = Duration::from_secs(20);
    cfg.timeouts.stall = Duration::from_secs(20);
    cfg.timeouts.reply = Duration::from_secs(60);
    LlmEngine::new(LlmClient::new(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_mechanics() {
    let server = LlamaServer::start().await;

    // 1. Streaming: many text deltas, then a finish; the splitter makes
    //    sentences of them as they come.
    let engine = relaxed(&server.url, false, 80);
    let request = ChatRequest {
        messages: vec![
            Message {
                role: Role::System,
                content: "You are a helpful receptionist.".into(),
            },
            Message {
                role: Role::User,
                content: "Describe your hotel in three sentences.".into(),
            },
        ],
        tools: None,
        max_tokens: None,
    };
    let mut stream = engine.client.stream(&request).await.expect("stream");
    let mut deltas = 0;
    let mut finished = false;
    let mut splitter = SentenceSplitter::default();
    let mut sentences = Vec::new();
    let mut text = String::new();
    while let Some(item) = stream.next().await.expect("well-formed stream") {
        match item {
            StreamItem::Text(t) => {
                deltas += 1;
                text.push_str(&t);
                sentences.extend(splitter.push(&t));
            }
            StreamItem::Finished { .. } => finished = true,
            StreamItem::ToolCalls(_) => {}
        }
    }
    sentences.extend(splitter.finish());
    assert!(finished);
    assert!(deltas > 5, "not streamed: {deltas} deltas for {text:?}");
    assert!(!sentences.is_empty());
    assert_eq!(
        sentences.join(" ").split_whitespace().collect::<Vec<_>>(),
        text.split_whitespace().collect::<Vec<_>>(),
        "the splitter loses nothing"
    );

    // 2. `llm` mode: the reply is spoken sentence by sentence by the model;
    //    tool lines (structured output) never reach the TTS.
    let robot_llm = robot("reception-en", "llm");
    let mut call = Responder::new(&robot_llm, Some(relaxed(&server.url, false, 60)));
    call.greet();
    let (outcome, got, _) = run_turn(
        &mut call,
        "Hi, I would like to book a room for next weekend.",
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, TurnOutcome::Done, "{:?}", call.fallback_reason());
    let spoken = said(&got);
    assert!(spoken.iter().any(|s| s.0 == Source::Llm), "{spoken:?}");
    assert!(
        spoken
            .iter()
            .all(|s| !s.1.trim().is_empty() && !s.1.contains("TOOL {")),
        "{spoken:?}"
    );
    assert!(!call.is_scripted());
    assert!(matches!(
        engine.breaker.state(),
        BreakerState::Closed { failures: 0 }
    ));

    // 3. Cancellation mid-stream: barge in after the first sentence of a
    //    long reply; the turn stops at once and the server stays usable.
    let mut call = Responder::new(&robot_llm, Some(relaxed(&server.url, false, 400)));
    call.greet();
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(vb_llm::REPLY_CHANNEL);
    {
        let turn = call.turn(
            "Please tell me a very long story about your hotel, its history and every room.",
            &tx,
            &cancel,
        );
        tokio::pin!(turn);
        let mut first = None;
        while first.is_none() {
            tokio::select! {
                o = &mut turn => panic!("the turn ended before its first sentence: {o:?}"),
                Some(o) = rx.recv() => if let Output::Say(u) = o { if u.source == Source::Llm { first = Some(u.text) } },
            }
        }
        let t = std::time::Instant::now();
        cancel.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(1), &mut turn)
            .await
            .expect("cancel is prompt");
        assert_eq!(outcome, TurnOutcome::Cancelled);
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "cancel took {:?}",
            t.elapsed()
        );
    }
    drop(tx);
    assert!(!call.is_scripted(), "a barge-in is not a failure");
    // The next turn of the same call works.
    let (outcome, got, _) = run_turn(
        &mut call,
        "What time is check in?",
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome, TurnOutcome::Done);
    assert!(!said_texts(&got).is_empty());

    // 4. `llm_script` mode: the model picks a phrase id; a valid pick is
    //    played from the robot, anything else is rejected and the script
    //    decides. Either way exactly one scripted phrase is said.
    let robot_ls = robot("reception-en", "llm_script");
    let mut call = Responder::new(&robot_ls, Some(relaxed(&server.url, false, 16)));
    call.greet();
    let (outcome, got, _) = run_turn(&mut call, "I need a room", &CancellationToken::new()).await;
    assert_eq!(outcome, TurnOutcome::Done);
    let spoken = said(&got);
    assert_eq!(spoken.len(), 1, "{spoken:?}");
    let rejected = got.iter().any(|t| matches!(t.out, Output::Rejected(_)));
    let phrases: Vec<String> = PhraseId::ALL
        .iter()
        .map(|id| robot_ls.phrase_by_id(*id).text.clone())
        .collect();
    match spoken[0].0 {
        Source::Phrase => assert!(!rejected && phrases.contains(&spoken[0].1), "{spoken:?}"),
        Source::Script => {
            assert!(rejected, "the script spoke without a rejection: {spoken:?}");
            // The script's own next question after "I need a room".
            assert_eq!(spoken[0].1, robot_ls.phrase_by_id(PhraseId::AskName).text);
        }
        other => panic!("unexpected source {other:?}"),
    }
    // The script captured the request whatever the model picked.
    assert_eq!(call.lead().request.as_deref(), Some("I need a room"));

    // 5. The summary: the model's JSON when usable, rules otherwise, within
    //    its budget.
    let s = call.summarize(Duration::from_secs(30)).await;
    assert!(!s.summary.is_empty());
    assert!(matches!(
        s.source,
        SummarySource::Llm | SummarySource::Rules
    ));

    // 6. The breaker with the real server gone: failures open it, and then
    //    calls go straight to the script.
    let url = server.url.clone();
    drop(server);
    let mut cfg = LlmConfig::local(&url, "smollm2", Language::En);
    cfg.breaker.failures_to_open = 2;
    let engine = LlmEngine::new(LlmClient::new(&cfg).unwrap());
    for _ in 0..2 {
        let mut c = Responder::new(&robot_llm, Some(engine.clone()));
        c.greet();
        let (outcome, _, _) = run_turn(&mut c, "hello", &CancellationToken::new()).await;
        assert_eq!(outcome, TurnOutcome::FellBack);
    }
    assert!(matches!(engine.breaker.state(), BreakerState::Open { .. }));
    let mut c = Responder::new(&robot_llm, Some(engine.clone()));
    c.greet();
    let (_, got, took) = run_turn(&mut c, "hello", &CancellationToken::new()).await;
    assert!(got.iter().any(
        |t| matches!(&t.out, Output::FellBack { reason } if reason.contains("circuit breaker"))
    ));
    assert!(
        took < Duration::from_millis(100),
        "an open breaker answers at once: {took:?}"
    );
}

fn said_texts(got: &[Timed]) -> Vec<String> {
    said(got).into_iter().map(|s| s.1).collect()
}
