//! The handlers, one per route, and the route table (`routes()`) that both
//! builds the router and is checked against the OpenAPI document.

use std::path::Path;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vb_dialog::{Robot, RobotError};
use vb_store::{CallFilter, Direction, StoreError, Timestamp};

use crate::audio;
use crate::error::Problem;
use crate::health::{Check, HealthSource};
use crate::queue;
use crate::Shared;

/// Largest `limit` on list endpoints.
pub const MAX_LIST_LIMIT: usize = 1000;
/// `limit` when none is given.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Longest robot name accepted by `POST /api/robots/validate`.
pub const MAX_ROBOT_NAME: usize = 64;
/// Largest robot.toml text accepted by `POST /api/robots/validate`.
pub const MAX_ROBOT_TOML: usize = 64 * 1024;
/// Longest text filter (`robot`, `result`, `caller`) on `GET /api/calls`.
pub const MAX_FILTER_BYTES: usize = 128;
/// Robot folders listed at most (a robots directory is small; this bounds
/// the work of one request).
pub const MAX_ROBOTS: usize = 256;

/// The liveness route (open, never limited).
pub const LIVE_PATH: &str = "/api/health/live";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (liveness).
    Open,
    /// Bearer token.
    Token,
    /// Open unless `metrics_public` is false.
    Metrics,
}

/// One route: method (lowercase, as in OpenAPI), path, access, handler.
pub(crate) struct Route {
    // The handler carries the method for routing; this copy is what the
    // OpenAPI test compares with the document.
    #[cfg_attr(not(test), allow(dead_code))]
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<Arc<Shared>>,
}

fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: MethodRouter<Arc<Shared>>,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

/// Every route the API serves.
pub(crate) fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        route("get", LIVE_PATH, Open, get(live)),
        route("get", "/api/health/ready", Token, get(ready)),
        route("get", "/api/calls", Token, get(calls)),
        route("get", "/api/calls/{id}", Token, get(call)),
        route("get", "/api/calls/{id}/audio", Token, get(audio::audio)),
        route("post", "/api/calls/test", Token, post(queue::test_call)),
        route("get", "/api/leads", Token, get(leads)),
        route("get", "/api/leads.csv", Token, get(leads_csv)),
        route("get", "/api/leads/{id}", Token, get(lead)),
        route("get", "/api/robots", Token, get(robots)),
        route("post", "/api/robots/validate", Token, post(validate_robot)),
        route(
            "post",
            "/api/robots/{name}/activate",
            Token,
            post(activate_robot),
        ),
        route("get", "/api/queue", Token, get(queue::list)),
        route("post", "/api/queue", Token, post(queue::add)),
        route("post", "/api/queue/bulk", Token, post(queue::bulk)),
        route("get", "/api/queue/stats", Token, get(queue::stats)),
        route("post", "/api/queue/start", Token, post(queue::start)),
        route("post", "/api/queue/stop", Token, post(queue::stop)),
        route("get", "/api/queue/{id}", Token, get(queue::job)),
        route("post", "/api/queue/{id}/cancel", Token, post(queue::cancel)),
        route("get", "/api/dnc", Token, get(queue::dnc_list)),
        route("post", "/api/dnc", Token, post(queue::dnc_add)),
        route(
            "delete",
            "/api/dnc/{number}",
            Token,
            delete(queue::dnc_remove),
        ),
        route("get", "/api/config", Token, get(box_config)),
        route("get", "/api/openapi.json", Token, get(openapi)),
        route("get", "/metrics", Metrics, get(metrics)),
    ]
}

/// Runs blocking work (SQLite, the file system) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(Problem::internal(what, &e)),
    }
}

pub(crate) fn store_problem(what: &'static str) -> impl Fn(StoreError) -> Problem {
    move |e| {
        if e.is_disk_full() {
            let mut p = Problem::internal(what, &e);
            p.status = StatusCode::INSUFFICIENT_STORAGE;
            p
        } else {
            Problem::internal(what, &e)
        }
    }
}

/// Query parameters of the list endpoints, as text: parsed here so every
/// mistake gets a JSON error naming the parameter and its limit.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    since: Option<String>,
}

fn query(q: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::bad_request(e.body_text()))
}

pub(crate) fn parse_limit(text: Option<&str>) -> Result<usize, Problem> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIST_LIMIT);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(n),
        _ => Err(Problem::bad_request(format!(
            "limit {text:?} is not a whole number in 1..={MAX_LIST_LIMIT}"
        ))
        .with_limit(MAX_LIST_LIMIT)),
    }
}

pub(crate) fn parse_since(text: Option<&str>) -> Result<Option<Timestamp>, Problem> {
    parse_time("since", text)
}

/// A time parameter `name`: RFC 3339 or Unix milliseconds.
pub(crate) fn parse_time(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, Problem> {
    let Some(text) = text else {
        return Ok(None);
    };
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(Some(Timestamp(ms)));
    }
    Timestamp::parse_rfc3339(text.trim())
        .map(Some)
        .map_err(|e| {
            Problem::bad_request(format!(
                "{name} {text:?} is neither RFC 3339 (2026-11-29T10:00:00Z) nor Unix milliseconds: {e}"
            ))
        })
}

/// A text filter `name`: absent or empty matches everything; longer than
/// [`MAX_FILTER_BYTES`] is refused.
fn parse_text(name: &str, text: Option<String>) -> Result<Option<String>, Problem> {
    match text {
        None => Ok(None),
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.len() > MAX_FILTER_BYTES => Err(Problem::bad_request(format!(
            "{name} is {} bytes, the limit is {MAX_FILTER_BYTES}",
            t.len()
        ))
        .with_limit(MAX_FILTER_BYTES)),
        Some(t) => Ok(Some(t)),
    }
}

/// Query of `GET /api/calls`, as text; an unknown parameter is a 400 (a
/// misspelt filter must not silently list every call).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallsQuery {
    limit: Option<String>,
    offset: Option<String>,
    since: Option<String>,
    until: Option<String>,
    robot: Option<String>,
    result: Option<String>,
    caller: Option<String>,
    lead: Option<String>,
    direction: Option<String>,
}

impl CallsQuery {
    /// The store's filter, limit and offset, or the first bad parameter.
    fn parse(self) -> Result<(CallFilter, usize, usize), Problem> {
        let limit = parse_limit(self.limit.as_deref())?;
        let offset = queue::parse_offset(self.offset.as_deref())?;
        let lead = match self.lead.as_deref() {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "lead {other:?} is neither true nor false"
                )))
            }
        };
        let direction = match self.direction.as_deref() {
            None | Some("") => None,
            Some(d) => Some(Direction::parse(d).ok_or_else(|| {
                Problem::bad_request(format!("direction {d:?} is neither inbound nor outbound"))
            })?),
        };
        let filter = CallFilter {
            since: parse_time("since", self.since.as_deref())?,
            until: parse_time("until", self.until.as_deref())?,
            robot: parse_text("robot", self.robot)?,
            end_reason: parse_text("result", self.result)?,
            caller: parse_text("caller", self.caller)?,
            lead,
            direction,
        };
        Ok((filter, limit, offset))
    }
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

async fn ready(State(shared): State<Arc<Shared>>) -> Result<Response, Problem> {
    let checks: Vec<Check> = blocking("readiness checks", move || {
        let mut checks = shared.disk.checks();
        checks.push(match shared.store.outbox_depth() {
            Ok(depth) => Check {
                name: "store".into(),
                ok: true,
                reason: Some(format!("{depth} messages waiting in the outbox")),
            },
            Err(e) => Check::failed("store", e.to_string()),
        });
        for source in &shared.health {
            checks.extend(source.checks());
        }
        Ok(checks)
    })
    .await?;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reasons: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("failed")))
        .collect();
    Ok((
        status,
        Json(json!({ "ready": ready, "reasons": reasons, "checks": checks })),
    )
        .into_response())
}

async fn calls(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(|e| Problem::bad_request(e.body_text()))?;
    let (filter, limit, offset) = q.parse()?;
    let calls = blocking("reading calls", move || {
        shared
            .store
            .calls(&filter, limit, offset)
            .map_err(store_problem("reading calls"))
    })
    .await?;
    Ok(Json(json!({ "calls": calls })))
}

async fn call(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    let found = blocking("reading a call", move || {
        shared
            .store
            .call(&id)
            .map_err(store_problem("reading a call"))
    })
    .await?;
    match found {
        Some(call) => {
            let audio = call
                .recording
                .as_ref()
                .filter(|r| r.is_object())
                .map(|_| audio::audio_path(&call.id));
            let mut body = json!(call);
            body["audio"] = json!(audio);
            Ok(Json(body))
        }
        None => Err(Problem::not_found("no call with this id")),
    }
}

async fn leads(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let q = query(q)?;
    let limit = parse_limit(q.limit.as_deref())?;
    let since = parse_since(q.since.as_deref())?;
    // One more than asked tells whether there are more.
    let mut leads = blocking("reading leads", move || {
        shared
            .store
            .leads_page(since, limit + 1)
            .map_err(store_problem("reading leads"))
    })
    .await?;
    // Oldest first: a client pages on by asking again with since = the last
    // stored_at it got.
    let more = leads.len() > limit;
    leads.truncate(limit);
    Ok(Json(json!({ "leads": leads, "more": more })))
}

async fn lead(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    let found = blocking("reading a lead", move || {
        shared
            .store
            .lead(&id)
            .map_err(store_problem("reading a lead"))
    })
    .await?;
    match found {
        Some(lead) => Ok(Json(json!(lead))),
        None => Err(Problem::not_found("no lead for this call id")),
    }
}

async fn leads_csv(
    State(shared): State<Arc<Shared>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let since = parse_since(q.since.as_deref())?;
    let csv = blocking("exporting leads", move || {
        let rows = shared
            .store
            .leads_since(since)
            .map_err(store_problem("reading leads"))?;
        let mut out = Vec::new();
        vb_store::export::write_csv(&rows, &mut out).map_err(store_problem("exporting leads"))?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"leads.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

fn robot_errors(err: &RobotError) -> Vec<String> {
    match err {
        RobotError::Invalid { path, issues } => issues
            .iter()
            .map(|i| format!("{}: {i}", path.display()))
            .collect(),
        other => vec![other.to_string()],
    }
}

fn robot_summary(name: &str, source: &str, loaded: Result<Robot, RobotError>) -> Value {
    match loaded {
        Ok(robot) => json!({
            "name": name,
            "source": source,
            "valid": true,
            "language": robot.language.code(),
            "mode": robot.config.mode.code(),
            "errors": [],
        }),
        Err(e) => json!({
            "name": name,
            "source": source,
            "valid": false,
            "errors": robot_errors(&e),
        }),
    }
}

/// Folder names under `dir` that hold a robot.toml, sorted, at most
/// [`MAX_ROBOTS`]. A missing directory holds none.
fn robot_folders(dir: &Path) -> Result<Vec<String>, std::io::Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.path().join(vb_dialog::robot::ROBOT_FILE).is_file() {
            names.push(name);
        }
    }
    names.sort();
    names.truncate(MAX_ROBOTS);
    Ok(names)
}

async fn robots(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, Problem> {
    let active = shared.robot_switch.as_ref().map(|s| s.active());
    let list = blocking("listing robots", move || {
        let dir = &shared.robots_dir;
        let folders = robot_folders(dir).map_err(|e| Problem::internal("listing robots", &e))?;
        let mut list: Vec<Value> = folders
            .iter()
            .map(|name| robot_summary(name, "folder", Robot::load(&dir.join(name))))
            .collect();
        for name in Robot::builtin_names() {
            if !folders.iter().any(|f| f == name) {
                let loaded = Robot::builtin(name).ok_or_else(|| RobotError::NotFound {
                    path: format!("builtin:{name}").into(),
                });
                list.push(robot_summary(name, "builtin", loaded));
            }
        }
        Ok(list)
    })
    .await?;
    let list: Vec<Value> = list
        .into_iter()
        .map(|mut r| {
            if let Some(a) = &active {
                r["active"] = json!(r["name"].as_str() == Some(a.as_str()));
            }
            r
        })
        .collect();
    Ok(Json(json!({ "robots": list, "active": active })))
}

/// `POST /api/robots/{name}/activate`: new calls use robot `name`.
async fn activate_robot(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, Problem> {
    use crate::ActivateError;
    let Some(switch) = shared.robot_switch.clone() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no daemon serves this API: robots are activated in `voiceblock run`",
        ));
    };
    let answer = blocking("activating a robot", move || {
        switch.activate(&name).map_err(|e| match &e {
            ActivateError::BadName(_) => {
                Problem::bad_request(e.to_string()).with_limit(MAX_ROBOT_NAME)
            }
            ActivateError::NotFound(_) => Problem::not_found(e.to_string()),
            ActivateError::Invalid(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            ActivateError::Other(_) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        })
    })
    .await?;
    Ok(Json(answer))
}

/// Body of `POST /api/robots/validate`: a robot folder by name, or
/// robot.toml text. Paths are not accepted: the API never reads files
/// outside the robots directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateRequest {
    name: Option<String>,
    toml: Option<String>,
}

fn valid_robot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROBOT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Maps a JSON body rejection to a JSON error: 413 names the body limit,
/// everything else is a 4xx with the parser's message.
pub(crate) fn json_problem(rejection: JsonRejection, max_body: usize) -> Problem {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            status,
            format!("request body is larger than the limit of {max_body} bytes"),
        )
        .with_limit(max_body);
    }
    Problem::new(status, rejection.body_text())
}

async fn validate_robot(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<ValidateRequest>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let Json(req) = body.map_err(|e| json_problem(e, shared.config.max_body_bytes))?;
    let loaded = match (req.name, req.toml) {
        (Some(name), None) => {
            if !valid_robot_name(&name) {
                return Err(Problem::bad_request(format!(
                    "name must be 1..={MAX_ROBOT_NAME} lowercase ASCII letters, digits, '-' or '_'"
                ))
                .with_limit(MAX_ROBOT_NAME));
            }
            let dir = shared.robots_dir.join(&name);
            let loaded = blocking("loading a robot", move || Ok(Robot::load(&dir))).await?;
            match loaded {
                Err(RobotError::NotFound { .. }) => match Robot::builtin(&name) {
                    Some(robot) => Ok(robot),
                    None => return Err(Problem::not_found("no robot with this name")),
                },
                other => other,
            }
        }
        (None, Some(text)) => {
            if text.len() > MAX_ROBOT_TOML {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "toml is {} bytes, the limit is {MAX_ROBOT_TOML}",
                        text.len()
                    ),
                )
                .with_limit(MAX_ROBOT_TOML));
            }
            Robot::from_toml(&text, Path::new("robot.toml"))
        }
        _ => {
            return Err(Problem::bad_request(
                "give exactly one of \"name\" (a robot folder) or \"toml\" (robot.toml text)",
            ))
        }
    };
    Ok(Json(match loaded {
        Ok(robot) => json!({
            "valid": true,
            "name": robot.name,
            "language": robot.language.code(),
            "mode": robot.config.mode.code(),
            "errors": [],
        }),
        Err(e) => json!({ "valid": false, "errors": robot_errors(&e) }),
    }))
}

async fn box_config(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, Problem> {
    match &shared.box_config {
        Some(c) => Ok(Json(c.clone())),
        None => Err(Problem::not_found("this box has not published its config")),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Result<Response, Problem> {
    let text = blocking("rendering metrics", move || {
        // The outbox depth is read from the store itself, so it is right
        // even when nothing told the metrics.
        match shared.store.outbox_depth() {
            Ok(depth) => shared.metrics.set_outbox_depth(depth),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the outbox depth"),
        }
        Ok(shared.metrics.render())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Caps the requests handled at once (`max_in_flight`): one more gets 503
/// with Retry-After at once, so a burst cannot pile blocking SQLite reads
/// onto the threads the calls need. Liveness is exempt: a busy box is
/// alive, and a probe that says otherwise would get it restarted.
pub(crate) async fn limit_in_flight(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path() == LIVE_PATH {
        return next.run(request).await;
    }
    let Ok(_permit) = shared.in_flight.clone().try_acquire_owned() else {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} requests in flight, the limit",
                shared.config.max_in_flight
            ),
        )
        .with_limit(shared.config.max_in_flight);
        p.retry_after = Some(1);
        return p.into_response();
    };
    next.run(request).await
}

/// Any path no route matches.
pub(crate) async fn fallback() -> Problem {
    Problem::not_found("no such route; GET /api/openapi.json lists them")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_named() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIST_LIMIT);
        assert_eq!(parse_limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "x", ""] {
            let p = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(p.status, StatusCode::BAD_REQUEST);
            assert_eq!(p.limit, Some(json!(MAX_LIST_LIMIT)));
        }
    }

    #[test]
    fn since_takes_rfc3339_or_milliseconds() {
        assert_eq!(parse_since(Some("1000")).unwrap(), Some(Timestamp(1000)));
        assert_eq!(
            parse_since(Some("1970-01-01T00:00:01Z")).unwrap(),
            Some(Timestamp(1000))
        );
        assert!(parse_since(Some("yesterday")).is_err());
    }

    #[test]
    fn robot_names_cannot_leave_the_robots_directory() {
        assert!(valid_robot_name("reception-en"));
        for bad in ["", "..", "../etc", "a/b", "A", &"x".repeat(65)] {
            assert!(!valid_robot_name(bad), "{bad:?}");
        }
    }
}
