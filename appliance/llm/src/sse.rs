//! Server-sent events, bytes in and events out: the line protocol under the
//! streaming chat API. No I/O; chunks may split lines (and UTF-8 characters)
//! anywhere, and every line and event meets a size limit.

use crate::error::StreamError;

/// Limits on what the server may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Longest line in bytes (a `data:` line carries one JSON chunk).
    pub max_line: usize,
    /// Largest event (all its `data:` lines joined) in bytes.
    pub max_event: usize,
}

impl Default for SseLimits {
    fn default() -> SseLimits {
        SseLimits {
            max_line: 64 * 1024,
            max_event: 256 * 1024,
        }
    }
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (`"error"` for an `error:` line, as the
    /// llama.cpp server sends mid-stream).
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// The SSE line decoder (WHATWG event-stream rules, minus `id`/`retry`,
/// which a chat stream has no use for).
#[derive(Debug)]
pub struct SseDecoder {
    limits: SseLimits,
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    line_no: u64,
}

impl SseDecoder {
    /// A decoder with `limits`.
    pub fn new(limits: SseLimits) -> SseDecoder {
        SseDecoder {
            limits,
            line: Vec::new(),
            skip_lf: false,
            data: String::new(),
            has_data: false,
            event: None,
            line_no: 0,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        for &b in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(out)?,
                b'\r' => {
                    self.end_line(out)?;
                    self.skip_lf = true;
                }
                _ => {
                    if self.line.len() >= self.limits.max_line {
                        return Err(StreamError::LineTooLong {
                            limit: self.limits.max_line,
                        });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// The body ended: an unterminated last line still counts, and a pending
    /// event is dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        self.line_no += 1;
        if self.line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        // Lines end at ASCII bytes, so a character split across chunks is
        // whole again here; only a really broken line fails.
        let line =
            String::from_utf8(line).map_err(|_| StreamError::InvalidUtf8 { line: self.line_no })?;
        if line.starts_with(':') {
            // Comment: keep-alive (`: ping`), ignored.
            return Ok(());
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "data" => self.add_data(value)?,
            "event" => self.event = Some(value.to_owned()),
            "error" => {
                self.event = Some("error".to_owned());
                self.add_data(value)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn add_data(&mut self, value: &str) -> Result<(), StreamError> {
        let extra = value.len() + usize::from(self.has_data);
        if self.data.len() + extra > self.limits.max_event {
            return Err(StreamError::EventTooLarge {
                limit: self.limits.max_event,
            });
        }
        if self.has_data {
            self.data.push('\n');
        }
        self.data.push_str(value);
        self.has_data = true;
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, StreamError> {
        let mut d = SseDecoder::new(SseLimits::default());
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn events_comments_and_line_endings() {
        let ev = all(&[
            b": ping\r\n\r\ndata: a\r\ndata:b\r",
            b"\n\r\nevent: x\ndata: c\n\n",
        ])
        .unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "a\nb");
        assert_eq!(ev[0].event, None);
        assert_eq!(ev[1].event.as_deref(), Some("x"));
        assert_eq!(ev[1].data, "c");
    }

    #[test]
    fn utf8_split_inside_a_character_is_whole() {
        let s = "data: привет\n\n".as_bytes();
        // Split in the middle of "и" (two bytes).
        let ev = all(&[&s[..10], &s[10..]]).unwrap();
        assert_eq!(ev[0].data, "привет");
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let s = b"data: {\"x\":1}\n\ndata: [DONE]\n\n";
        let parts: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(all(&parts).unwrap(), all(&[s]).unwrap());
    }

    #[test]
    fn limits_are_named() {
        let mut d = SseDecoder::new(SseLimits {
            max_line: 8,
            max_event: 10,
        });
        let mut out = Vec::new();
        let e = d.push(b"data: 123456789", &mut out).unwrap_err();
        assert_eq!(e, StreamError::LineTooLong { limit: 8 });
        let mut d = SseDecoder::new(SseLimits {
            max_line: 100,
            max_event: 10,
        });
        let e = d
            .push(b"data: 123456\ndata: 123456\n", &mut out)
            .unwrap_err();
        assert_eq!(e, StreamError::EventTooLarge { limit: 10 });
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let e = all(&[b"data: ok\n\ndata: \xff\xfe\n\n"]).unwrap_err();
        assert_eq!(e, StreamError::InvalidUtf8 { line: 3 });
    }

    #[test]
    fn error_field_is_an_error_event() {
        let ev = all(&[b"error: {\"message\":\"boom\"}\n\n"]).unwrap();
        assert_eq!(ev[0].event.as_deref(), Some("error"));
    }
}
