//! Chat-completions stream chunks, SSE events in and reply text and tool
//! calls out: the OpenAI format and the dialects of Ollama's and llama.cpp's
//! OpenAI-compatible endpoints (whole tool calls in one chunk, `error:`
//! events, usage-only chunks). No I/O.

use crate::error::StreamError;
use crate::sse::{SseDecoder, SseEvent, SseLimits};
use serde::Deserialize;

/// Limits on one streamed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// SSE line and event limits.
    pub sse: SseLimits,
    /// Longest reply text, in characters.
    pub max_reply_chars: usize,
    /// Most tool calls in one reply.
    pub max_tool_calls: usize,
    /// Longest arguments of one tool call, in bytes.
    pub max_tool_args: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            sse: SseLimits::default(),
            max_reply_chars: 4000,
            max_tool_calls: 8,
            max_tool_args: 4096,
        }
    }
}

/// A complete tool call as the model made it (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call id, when the server gives one.
    pub id: Option<String>,
    /// The function name.
    pub name: String,
    /// The arguments: JSON text, as streamed.
    pub arguments: String,
}

/// What a stream yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// Reply text (any size, any boundary).
    Text(String),
    /// The tool calls of the reply, complete, when it finished.
    ToolCalls(Vec<ToolCall>),
    /// The reply is complete.
    Finished {
        /// `finish_reason` (`"stop"`, `"length"`, `"tool_calls"`), if given.
        reason: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// An `error:` event's payload: wrapped (`{"error": {...}}`) or bare.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorEvent {
    Wrapped { error: ErrorBody },
    Bare(ErrorBody),
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Bytes of one streamed chat reply in, [`StreamItem`]s out.
#[derive(Debug)]
pub struct ChatStreamParser {
    sse: SseDecoder,
    limits: StreamLimits,
    reply_chars: usize,
    calls: Vec<PartialCall>,
    finished: bool,
    events: Vec<SseEvent>,
}

fn snippet(s: &str) -> String {
    s.chars().take(120).collect()
}

impl ChatStreamParser {
    /// A parser for one reply.
    pub fn new(limits: StreamLimits) -> ChatStreamParser {
        ChatStreamParser {
            sse: SseDecoder::new(limits.sse),
            limits,
            reply_chars: 0,
            calls: Vec::new(),
            finished: false,
            events: Vec::new(),
        }
    }

    /// Whether the reply is complete (a finish reason or `[DONE]` arrived).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds body bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamItem>, StreamError> {
        let mut events = std::mem::take(&mut self.events);
        self.sse.push(bytes, &mut events)?;
        let out = self.handle(&mut events);
        self.events = events;
        out
    }

    /// The body ended.
    pub fn finish(&mut self) -> Result<Vec<StreamItem>, StreamError> {
        let mut events = std::mem::take(&mut self.events);
        self.sse.finish(&mut events)?;
        let mut out = self.handle(&mut events)?;
        if !self.finished {
            // Some servers close after the finish reason without [DONE];
            // closing before any finish reason is a broken stream.
            return Err(StreamError::Truncated);
        }
        out.shrink_to_fit();
        Ok(out)
    }

    fn handle(&mut self, events: &mut Vec<SseEvent>) -> Result<Vec<StreamItem>, StreamError> {
        let mut out = Vec::new();
        for ev in events.drain(..) {
            if self.finished {
                // After the finish reason only [DONE] or usage chunks follow.
                continue;
            }
            self.event(ev, &mut out)?;
        }
        Ok(out)
    }

    fn event(&mut self, ev: SseEvent, out: &mut Vec<StreamItem>) -> Result<(), StreamError> {
        let data = ev.data.trim();
        if ev.event.as_deref() == Some("error") {
            let body = match serde_json::from_str::<ErrorEvent>(data) {
                Ok(ErrorEvent::Wrapped { error }) | Ok(ErrorEvent::Bare(error)) => error,
                Err(_) => ErrorBody {
                    message: Some(snippet(data)),
                    code: None,
                    kind: None,
                },
            };
            return Err(server_error(body));
        }
        if data == "[DONE]" {
            self.finish_reply(None, out);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| StreamError::BadChunk {
            detail: e.to_string(),
            snippet: snippet(data),
        })?;
        if let Some(err) = chunk.error {
            return Err(server_error(err));
        }
        // n = 1: only the first choice is ours. A usage-only chunk has none.
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        let delta = choice.delta.unwrap_or_default();
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.reply_chars += text.chars().count();
            if self.reply_chars > self.limits.max_reply_chars {
                return Err(StreamError::ReplyTooLong {
                    limit: self.limits.max_reply_chars,
                });
            }
            out.push(StreamItem::Text(text));
        }
        for (pos, tc) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
            self.tool_delta(pos, tc)?;
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reply(Some(reason), out);
        }
        Ok(())
    }

    fn tool_delta(&mut self, pos: usize, tc: ToolCallDelta) -> Result<(), StreamError> {
        // Ollama may omit `index` when it sends whole calls: take the
        // position within the chunk.
        let index = tc.index.unwrap_or(pos);
        if index >= self.limits.max_tool_calls {
            return Err(StreamError::TooManyToolCalls {
                limit: self.limits.max_tool_calls,
            });
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, PartialCall::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = tc.id.filter(|i| !i.is_empty()) {
            call.id = Some(id);
        }
        if let Some(f) = tc.function {
            if let Some(name) = f.name {
                call.name.push_str(&name);
            }
            match f.arguments {
                Some(serde_json::Value::String(s)) => call.arguments.push_str(&s),
                // Some servers send the arguments as an object.
                Some(serde_json::Value::Null) | None => {}
                Some(v) => call.arguments.push_str(&v.to_string()),
            }
            if call.arguments.len() > self.limits.max_tool_args || call.name.len() > 64 {
                return Err(StreamError::ToolArgumentsTooLong {
                    limit: self.limits.max_tool_args,
                });
            }
        }
        Ok(())
    }

    fn finish_reply(&mut self, reason: Option<String>, out: &mut Vec<StreamItem>) {
        let calls: Vec<ToolCall> = std::mem::take(&mut self.calls)
            .into_iter()
            .filter(|c| !c.name.is_empty() || !c.arguments.is_empty())
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect();
        if !calls.is_empty() {
            out.push(StreamItem::ToolCalls(calls));
        }
        out.push(StreamItem::Finished { reason });
        self.finished = true;
    }
}

fn server_error(body: ErrorBody) -> StreamError {
    let code = match body.code {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => body.kind,
    };
    StreamError::Server {
        message: body
            .message
            .map(|m| snippet(&m))
            .unwrap_or_else(|| "no message".to_owned()),
        code,
    }
}

/// Parses a whole recorded body, chunked as given; for tests and tools.
pub fn parse_body(chunks: &[&[u8]], limits: StreamLimits) -> Result<Vec<StreamItem>, StreamError> {
    let mut p = ChatStreamParser::new(limits);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.push(c)?);
    }
    out.extend(p.finish()?);
    Ok(out)
}

/// The reply text of a list of items, joined.
pub fn text_of(items: &[StreamItem]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(body: &str) -> Result<Vec<StreamItem>, StreamError> {
        parse_body(&[body.as_bytes()], StreamLimits::default())
    }

    #[test]
    fn text_and_done() {
        let items = one(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\n\n",
            "data: [DONE]\n\n"
        ))
        .unwrap();
        assert_eq!(
            items,
            vec![
                StreamItem::Text("Hi".into()),
                StreamItem::Finished {
                    reason: Some("stop".into())
                }
            ]
        );
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let e = one("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n").unwrap_err();
        assert_eq!(e, StreamError::Truncated);
    }

    #[test]
    fn garbage_is_a_bad_chunk() {
        let e = one("data: <html>oops</html>\n\n").unwrap_err();
        assert!(matches!(e, StreamError::BadChunk { .. }), "{e:?}");
    }

    #[test]
    fn reply_limit_is_named() {
        let limits = StreamLimits {
            max_reply_chars: 3,
            ..StreamLimits::default()
        };
        let e = parse_body(
            &[b"data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\n"],
            limits,
        )
        .unwrap_err();
        assert_eq!(e, StreamError::ReplyTooLong { limit: 3 });
    }

    #[test]
    fn tool_index_limit_is_named() {
        let e = one("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":99,\"function\":{\"name\":\"x\"}}]}}]}\n\n").unwrap_err();
        assert_eq!(e, StreamError::TooManyToolCalls { limit: 8 });
    }
}
