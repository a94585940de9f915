//! The outbound call queue and the do-not-call list over HTTP. Every input
//! is checked before anything is stored: a bulk upload with one bad row is
//! refused whole, with each bad row named (by its line) and the limit it
//! broke. The daemon's dialler does the calling; these handlers only change
//! the store and wake it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vb_outbound::Target;
use vb_store::queue::{Cancel, JobState, NewJob, MAX_WAITING_JOBS};
use vb_store::StoreError;

use crate::error::Problem;
use crate::routes::{blocking, json_problem, parse_limit, parse_since, store_problem};
use crate::Shared;

/// Most jobs in one bulk upload.
pub const MAX_BULK_JOBS: usize = 10_000;
/// Bad rows named in one error answer (the count says how many in all).
const MAX_ROW_ERRORS: usize = 50;
/// Priorities run from -100 to 100; higher is called first.
pub const PRIORITY_RANGE: (i32, i32) = (-100, 100);
/// Longest name or note, characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// One job as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobRequest {
    number: Option<String>,
    name: Option<String>,
    note: Option<String>,
    priority: Option<i64>,
    not_before: Option<String>,
}

/// Checks one job; the error says which field and why.
fn validate(req: JobRequest) -> Result<NewJob, String> {
    let number = req.number.unwrap_or_default();
    let target = Target::parse(&number).map_err(|e| format!("number: {e}"))?;
    let priority = match req.priority {
        None => 0,
        Some(p) if (PRIORITY_RANGE.0 as i64..=PRIORITY_RANGE.1 as i64).contains(&p) => p as i32,
        Some(p) => {
            return Err(format!(
                "priority {p} is out of range ({} to {})",
                PRIORITY_RANGE.0, PRIORITY_RANGE.1
            ))
        }
    };
    let field = |key: &str, v: Option<String>| -> Result<Option<String>, String> {
        match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            Some(s) if s.chars().count() > MAX_FIELD_CHARS => Err(format!(
                "{key} is {} characters, the limit is {MAX_FIELD_CHARS}",
                s.chars().count()
            )),
            Some(s) if s.chars().any(char::is_control) => {
                Err(format!("{key} has control characters"))
            }
            other => Ok(other),
        }
    };
    let not_before = match req
        .not_before
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(t) => Some(
            parse_since(Some(t))
                .map_err(|_| format!("not_before {t:?} is neither RFC 3339 nor Unix milliseconds"))?
                .map(|ts| ts.0)
                .unwrap_or_default(),
        ),
    };
    Ok(NewJob {
        dnc_key: target.dnc_key(),
        number: String::from(target),
        name: field("name", req.name)?,
        note: field("note", req.note)?,
        priority,
        not_before,
    })
}

fn wake(shared: &Shared) {
    if let Some(w) = &shared.queue_wake {
        w.notify_one();
    }
}

fn queue_problem(what: &'static str) -> impl Fn(StoreError) -> Problem {
    move |e| match e {
        StoreError::QueueFull { .. } => {
            Problem::new(StatusCode::CONFLICT, e.to_string()).with_limit(MAX_WAITING_JOBS)
        }
        StoreError::TooLarge { max, .. } => Problem::bad_request(e.to_string()).with_limit(max),
        e => store_problem(what)(e),
    }
}

/// `POST /api/queue`: one job.
pub(crate) async fn add(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| json_problem(e, shared.config.max_body_bytes))?;
    let job = validate(req).map_err(Problem::bad_request)?;
    let number = job.number.clone();
    let store = shared.store.clone();
    let added = blocking("adding to the queue", move || {
        store
            .queue_add(&[job])
            .map_err(queue_problem("adding to the queue"))
    })
    .await?;
    if !added.on_dnc.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("{number} is on the do-not-call list: not queued"),
        ));
    }
    wake(&shared);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": added.ids[0], "number": number })),
    )
        .into_response())
}

/// Parses a bulk body: a JSON array of jobs, or CSV with a header line
/// naming the columns (number, and any of name, note, priority, not_before).
fn parse_bulk(content_type: &str, body: &[u8]) -> Result<Vec<(usize, JobRequest)>, Problem> {
    if content_type.starts_with("application/json") {
        let rows: Vec<JobRequest> = serde_json::from_slice(body).map_err(|e| {
            Problem::bad_request(format!("the body is not a JSON array of jobs: {e}"))
        })?;
        return Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r))
            .collect());
    }
    if !content_type.starts_with("text/csv") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bulk uploads are application/json (an array of jobs) or text/csv (a header line with number, name, note, priority, not_before)",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| Problem::bad_request(format!("CSV header line: {e}")))?
        .clone();
    let known = ["number", "name", "note", "priority", "not_before"];
    if let Some(h) = headers
        .iter()
        .find(|h| !known.contains(&h.to_ascii_lowercase().as_str()))
    {
        return Err(Problem::bad_request(format!(
            "CSV column {h:?} is unknown (columns: {})",
            known.join(", ")
        )));
    }
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(number) = col("number") else {
        return Err(Problem::bad_request("CSV has no \"number\" column"));
    };
    let (name, note, priority, not_before) =
        (col("name"), col("note"), col("priority"), col("not_before"));
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        if rows.len() + errors.len() >= MAX_BULK_JOBS {
            return Err(too_many());
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).map(str::to_string);
        let priority = match get(priority).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match p.parse::<i64>() {
                Ok(p) => Some(p),
                Err(_) => {
                    errors.push(format!("line {line}: priority {p:?} is not a whole number"));
                    continue;
                }
            },
        };
        rows.push((
            line,
            JobRequest {
                number: get(Some(number)),
                name: get(name),
                note: get(note),
                priority,
                not_before: get(not_before),
            },
        ));
    }
    if !errors.is_empty() {
        return Err(row_errors(errors, "line"));
    }
    Ok(rows)
}

fn too_many() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("more than {MAX_BULK_JOBS} jobs in one upload: split it"),
    )
    .with_limit(MAX_BULK_JOBS)
}

fn row_errors(errors: Vec<String>, unit: &str) -> Problem {
    let total = errors.len();
    let shown: Vec<String> = errors.into_iter().take(MAX_ROW_ERRORS).collect();
    Problem::bad_request(format!(
        "{total} bad {unit}(s), nothing was queued: {}{}",
        shown.join("; "),
        if total > MAX_ROW_ERRORS { "; ..." } else { "" }
    ))
}

/// `POST /api/queue/bulk`: many jobs, all or none.
pub(crate) async fn bulk(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let limit = shared.config.max_body_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                e.status(),
                format!("request body is larger than the limit of {limit} bytes"),
            )
            .with_limit(limit)
        } else {
            Problem::new(e.status(), e.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rows = parse_bulk(&content_type, &body)?;
    if rows.len() > MAX_BULK_JOBS {
        return Err(too_many());
    }
    if rows.is_empty() {
        return Err(Problem::bad_request("no jobs in the upload"));
    }
    let unit = if content_type.starts_with("text/csv") {
        "line"
    } else {
        "item"
    };
    let mut jobs = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (at, req) in rows {
        match validate(req) {
            Ok(j) => jobs.push(j),
            Err(e) => errors.push(format!("{unit} {at}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(row_errors(errors, unit));
    }
    let numbers: Vec<String> = jobs.iter().map(|j| j.number.clone()).collect();
    let store = shared.store.clone();
    let added = blocking("adding to the queue", move || {
        store
            .queue_add(&jobs)
            .map_err(queue_problem("adding to the queue"))
    })
    .await?;
    wake(&shared);
    let skipped: Vec<Value> = added
        .on_dnc
        .iter()
        .map(|&i| json!({ "number": numbers[i], "reason": "on the do-not-call list" }))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "added": added.ids.len(), "ids": added.ids, "skipped": skipped })),
    )
        .into_response())
}

/// Query of `GET /api/queue`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /api/queue`: jobs, newest first.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = parse_limit(q.limit.as_deref())?;
    let offset = parse_offset(q.offset.as_deref())?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            Problem::bad_request(format!(
                "state {s:?} is not one of queued, dialing, done, failed, cancelled, blocked"
            ))
        })?),
    };
    let store = shared.store.clone();
    let jobs = blocking("listing the queue", move || {
        store
            .queue_list(state, limit, offset)
            .map_err(store_problem("listing the queue"))
    })
    .await?;
    Ok(Json(json!({ "jobs": jobs })))
}

/// Largest `offset` on the paged lists.
pub const MAX_OFFSET: usize = 1_000_000;

pub(crate) fn parse_offset(text: Option<&str>) -> Result<usize, Problem> {
    match text {
        None => Ok(0),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if n <= MAX_OFFSET => Ok(n),
            _ => Err(Problem::bad_request(format!(
                "offset {t:?} is not a whole number in 0..={MAX_OFFSET}"
            ))
            .with_limit(MAX_OFFSET)),
        },
    }
}

/// `GET /api/queue/{id}`: one job with its attempts.
pub(crate) async fn job(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    let store = shared.store.clone();
    match blocking("reading a job", move || {
        store.queue_job(&id).map_err(store_problem("reading a job"))
    })
    .await?
    {
        Some((job, attempts)) => Ok(Json(json!({ "job": job, "attempts": attempts }))),
        None => Err(Problem::not_found("no queued job with this id")),
    }
}

/// `POST /api/queue/{id}/cancel`.
pub(crate) async fn cancel(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    let store = shared.store.clone();
    match blocking("cancelling a job", move || {
        store
            .queue_cancel(&id)
            .map_err(store_problem("cancelling a job"))
    })
    .await?
    {
        Cancel::Cancelled => Ok(Json(json!({ "state": "cancelled" }))),
        Cancel::NotWaiting(state) => Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "the job is {}: only queued jobs can be cancelled",
                state.as_str()
            ),
        )),
        Cancel::Unknown => Err(Problem::not_found("no queued job with this id")),
    }
}

/// `GET /api/queue/stats`.
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, Problem> {
    let store = shared.store.clone();
    let stats = blocking("counting the queue", move || {
        store
            .queue_stats()
            .map_err(store_problem("counting the queue"))
    })
    .await?;
    Ok(Json(json!(stats)))
}

async fn set_running(shared: Arc<Shared>, running: bool) -> Result<Json<Value>, Problem> {
    let store = shared.store.clone();
    blocking("starting or stopping the queue", move || {
        store
            .queue_set_running(running)
            .map_err(store_problem("starting or stopping the queue"))
    })
    .await?;
    wake(&shared);
    Ok(Json(json!({ "running": running })))
}

/// `POST /api/queue/start`.
pub(crate) async fn start(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, Problem> {
    set_running(shared, true).await
}

/// `POST /api/queue/stop`: no new calls; calls under way finish.
pub(crate) async fn stop(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, Problem> {
    set_running(shared, false).await
}

/// Body of `POST /api/dnc`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DncRequest {
    number: String,
    reason: Option<String>,
}

/// `GET /api/dnc`.
pub(crate) async fn dnc_list(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = parse_limit(q.limit.as_deref())?;
    let offset = parse_offset(q.offset.as_deref())?;
    let store = shared.store.clone();
    let entries = blocking("reading the do-not-call list", move || {
        store
            .dnc_list(limit, offset)
            .map_err(store_problem("reading the do-not-call list"))
    })
    .await?;
    Ok(Json(json!({ "numbers": entries })))
}

/// `POST /api/dnc`: queued jobs for the number are blocked at once.
pub(crate) async fn dnc_add(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<DncRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| json_problem(e, shared.config.max_body_bytes))?;
    let target =
        Target::parse(&req.number).map_err(|e| Problem::bad_request(format!("number: {e}")))?;
    if let Some(r) = &req.reason {
        if r.chars().count() > MAX_FIELD_CHARS {
            return Err(Problem::bad_request(format!(
                "reason is longer than {MAX_FIELD_CHARS} characters"
            ))
            .with_limit(MAX_FIELD_CHARS));
        }
    }
    let key = target.dnc_key();
    let store = shared.store.clone();
    let k = key.clone();
    let blocked = blocking("adding to the do-not-call list", move || {
        store
            .dnc_add(&k, &k, req.reason.as_deref())
            .map_err(queue_problem("adding to the do-not-call list"))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "number": key, "jobs_blocked": blocked })),
    )
        .into_response())
}

/// `DELETE /api/dnc/{number}`.
pub(crate) async fn dnc_remove(
    State(shared): State<Arc<Shared>>,
    UrlPath(number): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    let key = Target::parse(&number)
        .map_err(|e| Problem::bad_request(format!("number: {e}")))?
        .dnc_key();
    let store = shared.store.clone();
    let removed = blocking("removing from the do-not-call list", move || {
        store
            .dnc_remove(&key)
            .map_err(store_problem("removing from the do-not-call list"))
    })
    .await?;
    if removed {
        Ok(Json(json!({ "removed": true })))
    } else {
        Err(Problem::not_found(
            "the number is not on the do-not-call list",
        ))
    }
}

/// Body of `POST /api/calls/test`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestCallRequest {
    target: String,
}

/// `POST /api/calls/test`: the box calls `target` now and runs its robot
/// (outside the queue: no window, no retries).
pub(crate) async fn test_call(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<TestCallRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| json_problem(e, shared.config.max_body_bytes))?;
    let target =
        Target::parse(&req.target).map_err(|e| Problem::bad_request(format!("target: {e}")))?;
    let Some(calls) = &shared.test_calls else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no SIP agent serves this API: test calls are placed by `voiceblock run`",
        ));
    };
    calls
        .test_call(target.dial_string())
        .map_err(|why| Problem::new(StatusCode::SERVICE_UNAVAILABLE, why))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": target.dial_string() })),
    )
        .into_response())
}
