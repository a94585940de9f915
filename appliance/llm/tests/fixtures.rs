//! Recorded streams in the exact formats of OpenAI, Ollama and llama.cpp
//! (see fixtures/README.md), parsed whole and split at every byte: split
//! UTF-8, `[DONE]`, keep-alive comments, tool-call deltas, errors mid-stream.

use std::path::Path;
use vb_dialog::{Interest, Prefill, Robot};
use vb_llm::chunk::{parse_body, text_of};
use vb_llm::{
    Action, SentenceSplitter, StreamError, StreamItem, StreamLimits, ToolCall, Validator,
};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Parses the fixture whole, then split in two at every byte offset, then
/// byte by byte; all must agree.
fn parse_every_split(name: &str) -> Result<Vec<StreamItem>, StreamError> {
    let body = fixture(name);
    let whole = parse_body(&[&body], StreamLimits::default());
    for cut in 1..body.len() {
        let split = parse_body(&[&body[..cut], &body[cut..]], StreamLimits::default());
        assert_eq!(split, whole, "{name} split at byte {cut}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        parse_body(&bytes, StreamLimits::default()),
        whole,
        "{name} byte by byte"
    );
    whole
}

fn calls(items: &[StreamItem]) -> Vec<ToolCall> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::ToolCalls(c) => Some(c.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn finish_reason(items: &[StreamItem]) -> Option<String> {
    match items.last() {
        Some(StreamItem::Finished { reason }) => reason.clone(),
        other => panic!("last item is not Finished: {other:?}"),
    }
}

fn sentences(text: &str) -> Vec<String> {
    let mut s = SentenceSplitter::default();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

#[test]
fn openai_text_stream() {
    let items = parse_every_split("openai_text.sse").unwrap();
    let text = text_of(&items);
    assert_eq!(
        text,
        "Hello! Dr. Lee sees patients at 3.30 today. What is your name?"
    );
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
    assert_eq!(
        sentences(&text),
        [
            "Hello!",
            "Dr. Lee sees patients at 3.30 today.",
            "What is your name?"
        ]
    );
}

#[test]
fn openai_parallel_tool_calls_in_fragments() {
    let items = parse_every_split("openai_tools.sse").unwrap();
    assert_eq!(text_of(&items), "");
    assert_eq!(finish_reason(&items).as_deref(), Some("tool_calls"));
    let c = calls(&items);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].id.as_deref(), Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"));
    assert_eq!(c[0].name, "record_lead");
    assert_eq!(
        c[0].arguments,
        r#"{"name": "Анна", "phone": "555 123 4567"}"#
    );
    assert_eq!(c[1].name, "classify_interest");

    // And they validate: the name in Cyrillic, the phone to E.164, then the
    // class (which needs the phone just recorded).
    let v = Validator::for_robot(&Robot::builtin("reception-en").unwrap());
    let mut captured = Prefill::default();
    let Action::RecordLead(f) = v.validate(&c[0], &captured).unwrap() else {
        panic!()
    };
    assert_eq!(f.phone.as_deref(), Some("+15551234567"));
    vb_llm::tools::merge(&mut captured, &f);
    assert_eq!(
        v.validate(&c[1], &captured).unwrap(),
        Action::Classify {
            interest: Interest::Warm,
            reason: "asked about prices".into()
        }
    );
}

#[test]
fn openai_error_mid_stream() {
    let e = parse_every_split("openai_error.sse").unwrap_err();
    let StreamError::Server { message, code } = e else {
        panic!("{e:?}")
    };
    assert!(message.starts_with("The server had an error"), "{message}");
    assert_eq!(code.as_deref(), Some("server_error"));
}

#[test]
fn ollama_text_stream_in_russian() {
    let items = parse_every_split("ollama_text.sse").unwrap();
    let text = text_of(&items);
    assert_eq!(text, "Здравствуйте! Мы на ул. Ленина, д. 5. Как вас зовут?");
    assert_eq!(
        sentences(&text),
        ["Здравствуйте!", "Мы на ул. Ленина, д. 5.", "Как вас зовут?"]
    );
}

#[test]
fn ollama_whole_tool_call_in_one_chunk() {
    let items = parse_every_split("ollama_tools.sse").unwrap();
    let c = calls(&items);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].name, "end_call");
    let v = Validator::for_robot(&Robot::builtin("reception-ru").unwrap());
    assert_eq!(
        v.validate(&c[0], &Prefill::default()).unwrap(),
        Action::EndCall {
            reason: "caller said goodbye".into()
        }
    );
    // Ollama says "stop" even after tool calls.
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
}

#[test]
fn llamacpp_text_with_timings_and_split_utf8() {
    let items = parse_every_split("llamacpp_text.sse").unwrap();
    let text = text_of(&items);
    assert_eq!(text, "Цена 3.5 тыс. руб. Вам удобно?");
    assert_eq!(sentences(&text), ["Цена 3.5 тыс. руб.", "Вам удобно?"]);
}

#[test]
fn llamacpp_tool_call_deltas() {
    let items = parse_every_split("llamacpp_tools.sse").unwrap();
    let c = calls(&items);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].name, "transfer_to_person");
    assert_eq!(c[0].arguments, r#"{"reason": "wants a manager"}"#);
}

#[test]
fn llamacpp_error_field_mid_stream() {
    let e = parse_every_split("llamacpp_error.sse").unwrap_err();
    assert_eq!(
        e,
        StreamError::Server {
            message: "the request exceeds the available context size, try increasing it".into(),
            code: Some("500".into())
        }
    );
}

#[test]
fn llamacpp_python_crlf_and_keepalive_pings() {
    let items = parse_every_split("llamacpp_python_ping.sse").unwrap();
    assert_eq!(text_of(&items), "Hi there. How can I help?");
    assert_eq!(finish_reason(&items).as_deref(), Some("stop"));
}

#[test]
fn cut_off_fixture_is_truncated_not_a_panic() {
    let body = fixture("openai_text.sse");
    let cut = body.len() / 2;
    let e = parse_body(&[&body[..cut]], StreamLimits::default()).unwrap_err();
    assert!(
        matches!(e, StreamError::Truncated | StreamError::BadChunk { .. }),
        "{e:?}"
    );
}
