//! `GET /api/calls/{id}/audio`: a recorded call's WAV file, streamed from
//! the box's recordings directory, with one `Range` for seeking. The file
//! name comes from the stored call record and must be a plain name: the
//! handler never opens anything outside the directory.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::Problem;
use crate::routes::{blocking, store_problem};
use crate::Shared;

/// Longest recording file name accepted (the usual file system limit).
pub const MAX_FILE_NAME: usize = 255;

/// Why `GET /api/calls/{id}/audio` answers 404 on a box that never set a
/// recordings directory.
pub const RECORDING_OFF: &str = "call recording is off on this box ([recording] in the box config)";

/// The URL path of call `id`'s audio (the id percent-encoded).
pub(crate) fn audio_path(id: &str) -> String {
    let mut out = String::from("/api/calls/");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("/audio");
    out
}

/// The recording's file name, when `recording` (the record's `recording`
/// object) names a plain file: not empty, at most [`MAX_FILE_NAME`] bytes,
/// no `/`, `\`, `..` or NUL. `Err` says what is wrong.
pub(crate) fn plain_file_name(recording: &Value) -> Result<&str, String> {
    let Some(obj) = recording.as_object() else {
        return Err("its recording is not an object".into());
    };
    if let Some(format) = obj.get("format") {
        if format.as_str() != Some("wav") {
            return Err(format!("its recording format is {format}, not \"wav\""));
        }
    }
    let Some(name) = obj.get("file").and_then(Value::as_str) else {
        return Err("its recording has no file name".into());
    };
    if name.is_empty() {
        return Err("its recording file name is empty".into());
    }
    if name.len() > MAX_FILE_NAME {
        return Err(format!(
            "its recording file name is {} bytes, the limit is {MAX_FILE_NAME}",
            name.len()
        ));
    }
    if name.contains(['/', '\\', '\0']) || name.contains("..") {
        return Err(format!(
            "its recording file name {name:?} is not a plain file name"
        ));
    }
    Ok(name)
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// No range, or one this server ignores (several ranges, bad syntax):
    /// the whole file.
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that starts at or past the end: 416.
    Unsatisfiable,
}

/// Reads a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110
/// 14.1.2). Anything else is ignored, as the RFC allows.
pub(crate) fn ranged(header: Option<&str>, len: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| {
        let (unit, spec) = h.trim().split_once('=')?;
        unit.trim()
            .eq_ignore_ascii_case("bytes")
            .then_some(spec.trim())
    }) else {
        return Ranged::Full;
    };
    if spec.contains(',') {
        return Ranged::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ranged::Full;
    };
    let number = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match number(n) {
            None => Ranged::Full,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        (a, "") => match number(a) {
            None => Ranged::Full,
            Some(a) if a >= len => Ranged::Unsatisfiable,
            Some(a) => Ranged::Part {
                start: a,
                end: len - 1,
            },
        },
        (a, b) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= len {
                    Ranged::Unsatisfiable
                } else {
                    Ranged::Part {
                        start: a,
                        end: b.min(len - 1),
                    }
                }
            }
            _ => Ranged::Full,
        },
    }
}

/// `Content-Disposition` for call `id`'s audio: the id, with anything but
/// letters, digits, `-`, `_`, `.` and `@` made `_`, so the header is always
/// valid and quoting cannot be broken.
fn disposition(id: &str) -> HeaderValue {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    HeaderValue::from_str(&format!("inline; filename=\"{safe}.wav\""))
        .unwrap_or_else(|_| HeaderValue::from_static("inline"))
}

fn corrupt(why: String) -> Problem {
    tracing::error!(%why, "API: corrupt call record");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("corrupt record: {why}"),
    )
}

/// `GET /api/calls/{id}/audio`.
pub(crate) async fn audio(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let store = shared.store.clone();
    let lookup = id.clone();
    let found = blocking("reading a call", move || {
        store.call(&lookup).map_err(store_problem("reading a call"))
    })
    .await?;
    let Some(call) = found else {
        return Err(Problem::not_found("unknown call: no call with this id"));
    };
    let Some(dir) = shared.recordings_dir.as_ref() else {
        return Err(Problem::not_found(RECORDING_OFF));
    };
    let Some(recording) = call.recording.as_ref() else {
        return Err(Problem::not_found("this call has no recording"));
    };
    let name = plain_file_name(recording).map_err(corrupt)?;
    let path = dir.join(name);

    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    // A link in the recordings directory is not followed out of it.
    options.custom_flags(libc::O_NOFOLLOW);
    let mut file = match options.open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::not_found(format!(
                "the recording of this call ({name}) is no longer on the box (removed by retention)"
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(corrupt(format!(
                "its recording {name:?} is a symbolic link"
            )))
        }
        Err(e) => return Err(Problem::internal("opening a recording", &e)),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| Problem::internal("reading a recording", &e))?;
    if !meta.is_file() {
        return Err(corrupt(format!("its recording {name:?} is not a file")));
    }
    let len = meta.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match ranged(range, len) {
        Ranged::Full => (StatusCode::OK, 0, len),
        Ranged::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Ranged::Unsatisfiable => {
            let mut r = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!(
                    "range {:?} is outside the recording's {len} bytes",
                    range.unwrap_or("")
                ),
            )
            .with_limit(len)
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| Problem::internal("reading a recording", &e))?;
    }
    let body = Body::from_stream(ReaderStream::new(file.take(count)));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_DISPOSITION, disposition(&call.id));
    // A caller's voice: kept by no cache between the box and the operator.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_plain_file_names_pass() {
        let rec = |file: Value| json!({ "file": file, "format": "wav" });
        assert_eq!(plain_file_name(&rec(json!("c1.wav"))), Ok("c1.wav"));
        assert_eq!(
            plain_file_name(&json!({ "file": "a b.wav" })),
            Ok("a b.wav"),
            "format is optional"
        );
        let long = "x".repeat(MAX_FILE_NAME + 1);
        for bad in [
            json!(""),
            json!("../etc/passwd"),
            json!(".."),
            json!("a/b.wav"),
            json!("/etc/passwd"),
            json!("a\\b.wav"),
            json!("a\0.wav"),
            json!(long),
            json!(3),
            json!(null),
        ] {
            assert!(plain_file_name(&rec(bad.clone())).is_err(), "{bad}");
        }
        assert!(plain_file_name(&json!("c1.wav")).is_err(), "not an object");
        assert!(plain_file_name(&json!({ "file": "c1.wav", "format": "mp3" })).is_err());
        assert!(plain_file_name(&json!({})).is_err());
    }

    #[test]
    fn one_byte_range_is_read_and_the_rest_ignored() {
        use Ranged::*;
        let r = |h: &str| ranged(Some(h), 100);
        assert_eq!(ranged(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Part { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Part { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000"), Part { start: 0, end: 99 });
        assert_eq!(r("bytes=50-1000"), Part { start: 50, end: 99 });
        assert_eq!(r("Bytes = 1-1"), Part { start: 1, end: 1 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(ranged(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(ranged(Some("bytes=-5"), 0), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=x-1",
            "bytes=-",
            "bytes=+1-2",
            "items=0-1",
            "bytes",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(r(ignored), Full, "{ignored}");
        }
    }

    #[test]
    fn audio_paths_and_file_names_are_safe() {
        assert_eq!(audio_path("c1"), "/api/calls/c1/audio");
        assert_eq!(audio_path("a b/c"), "/api/calls/a%20b%2Fc/audio");
        assert_eq!(
            disposition("x\"; y").to_str().unwrap(),
            "inline; filename=\"x___y.wav\""
        );
    }
}
