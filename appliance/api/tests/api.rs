//! The API against a real server on 127.0.0.1:0, a real SQLite store in a
//! tempdir filled through `Store::record_call`, real robot folders, and a
//! real HTTP client (reqwest).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{header, Client, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vb_api::{ApiConfig, ApiError, AppState, Check, HealthSource, Metrics, Stage};
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, Timestamp};

const TOKEN: &str = "test-token-0123456789";

/// A failing readiness source, as the daemon's SIP check would be.
struct SipDown;

impl HealthSource for SipDown {
    fn checks(&self) -> Vec<Check> {
        vec![
            Check::ok("models"),
            Check::failed("sip", "not registered with pbx.example: 403 Forbidden"),
        ]
    }
}

/// Test calls as the daemon's bounded queue takes them: two wait, a third
/// is refused as busy.
#[derive(Default)]
struct TestCallQueue(std::sync::Mutex<Vec<String>>);

impl vb_api::TestCalls for TestCallQueue {
    fn test_call(&self, target: &str) -> Result<(), String> {
        let mut q = self.0.lock().unwrap();
        if q.len() >= 2 {
            return Err("busy: 2 test calls are waiting".into());
        }
        q.push(target.to_string());
        Ok(())
    }
}

/// The daemon's robot switch as the API sees it: knows `front-desk` and the
/// built-ins, refuses `broken`.
#[derive(Default)]
struct Switch(std::sync::Mutex<Option<String>>);

impl vb_api::RobotSwitch for Switch {
    fn active(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "reception-en".into())
    }
    fn activate(&self, name: &str) -> Result<Value, vb_api::ActivateError> {
        match name {
            "front-desk" | "reception-en" | "reception-ru" => {
                *self.0.lock().unwrap() = Some(name.into());
                Ok(json!({ "active": name, "takes_effect": "now" }))
            }
            "broken" => Err(vb_api::ActivateError::Invalid(vec![
                "language: \"fr\" is not valid".into(),
            ])),
            n if n.contains('.') => Err(vb_api::ActivateError::BadName(n.into())),
            n => Err(vb_api::ActivateError::NotFound(n.into())),
        }
    }
}

struct Server {
    switch: Arc<Switch>,
    test_calls: Arc<TestCallQueue>,
    base: String,
    http: Client,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), ApiError>>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after cancel")
            .unwrap()
            .unwrap();
    }
}

fn call(id: &str, ended_ms: i64, lead: bool) -> NewCall {
    NewCall {
        id: Some(id.into()),
        caller: Some("+15550000".into()),
        started_at: Timestamp(ended_ms - 60_000),
        ended_at: Timestamp(ended_ms),
        end_reason: "completed".into(),
        robot: "reception-en".into(),
        mode: "script".into(),
        language: "en".into(),
        turns: vec![
            NewTurn {
                index: 0,
                speaker: Speaker::Robot,
                caller_text: String::new(),
                robot_text: "Hello, how can I help?".into(),
                timings: json!({}),
            },
            NewTurn {
                index: 1,
                speaker: Speaker::Caller,
                caller_text: "A room for two, please".into(),
                robot_text: "What is your name?".into(),
                timings: json!({"stt_ms": 210, "llm_first_token_ms": 340}),
            },
        ],
        lead: lead.then(|| NewLead {
            name: Some(format!("Ann {id}")),
            phone: Some("+15551234567".into()),
            request: Some("a room, with a view".into()),
            interest: "hot".into(),
            consent: true,
            ..Default::default()
        }),
        record: json!({"robot": "reception-en"}),
    }
}

fn robots_dir(root: &Path) -> PathBuf {
    let dir = root.join("robots");
    let good = dir.join("front-desk");
    std::fs::create_dir_all(&good).unwrap();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots/reception-en/robot.toml");
    let text = std::fs::read_to_string(shipped)
        .unwrap()
        .replace("name = \"reception-en\"", "name = \"front-desk\"");
    std::fs::write(good.join("robot.toml"), text).unwrap();
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("robot.toml"),
        "name = \"broken\"\nlanguage = \"fr\"\nmode = \"script\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("not-a-robot")).unwrap();
    dir
}

/// A small valid WAV: 16-bit PCM, `channels` interleaved, `frames` frames
/// of a ramp.
fn wav(rate: u32, channels: u16, frames: u32) -> Vec<u8> {
    let data = frames * u32::from(channels) * 2;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    w.extend_from_slice(&(channels * 2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for i in 0..frames * u32::from(channels) {
        w.extend_from_slice(&((i % 2000) as i16 * 16).to_le_bytes());
    }
    w
}

/// The `recording` object the daemon puts in a recorded call's record.
fn recording(file: &str, bytes: usize) -> Value {
    json!({
        "file": file, "format": "wav", "channels": 2, "sample_rate": 8000,
        "duration_ms": 250, "bytes": bytes,
    })
}

async fn start_with(config: ApiConfig, health: Option<Arc<dyn HealthSource>>) -> Server {
    start_full(config, health, true).await
}

/// Recordings (when `recordings`) live in `<tempdir>/recordings`; c1 is
/// recorded there (`c1.wav`, a quarter second of stereo 8 kHz).
async fn start_full(
    config: ApiConfig,
    health: Option<Arc<dyn HealthSource>>,
    recordings: bool,
) -> Server {
    // reqwest is built without a default rustls provider (the workspace uses
    // ring only); plain http needs none, but the builder asks for one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let rec_dir = dir.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let c1_wav = wav(8000, 2, 2000);
    std::fs::write(rec_dir.join("c1.wav"), &c1_wav).unwrap();
    let mut c1 = call("c1", 1_000_000, true);
    c1.record = json!({"robot": "reception-en", "direction": "inbound", "recording": recording("c1.wav", c1_wav.len())});
    store.record_call(&c1).unwrap();
    store.record_call(&call("c2", 2_000_000, true)).unwrap();
    store.record_call(&call("c3", 3_000_000, false)).unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut state = AppState::new(
        config,
        store.clone(),
        robots_dir(dir.path()),
        metrics.clone(),
    );
    if let Some(h) = health {
        state = state.with_health(h);
    }
    if recordings {
        state = state.with_recordings(rec_dir);
    }
    let test_calls = Arc::new(TestCallQueue::default());
    state = state.with_test_calls(test_calls.clone());
    let switch = Arc::new(Switch::default());
    state = state.with_robot_switch(switch.clone());
    state = state.with_box_config(json!({ "sip": { "user": "robot", "password": "set" } }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(vb_api::serve(listener, state, cancel.clone()));
    Server {
        switch,
        test_calls,
        base: format!("http://{addr}"),
        http: Client::builder().build().unwrap(),
        cancel,
        task,
        store,
        metrics,
        _dir: dir,
    }
}

fn config() -> ApiConfig {
    ApiConfig {
        token: Some(TOKEN.into()),
        ..ApiConfig::default()
    }
}

async fn start() -> Server {
    start_with(config(), None).await
}

/// Every documented route with its path parameters filled in.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/api/health/ready"),
    ("GET", "/api/calls"),
    ("GET", "/api/calls/c1"),
    ("GET", "/api/calls/c1/audio"),
    ("POST", "/api/calls/test"),
    ("GET", "/api/leads"),
    ("GET", "/api/leads.csv"),
    ("GET", "/api/leads/c1"),
    ("GET", "/api/robots"),
    ("POST", "/api/robots/validate"),
    ("POST", "/api/robots/front-desk/activate"),
    ("GET", "/api/config"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/queue"),
    ("POST", "/api/queue"),
    ("POST", "/api/queue/bulk"),
    ("GET", "/api/queue/stats"),
    ("POST", "/api/queue/start"),
    ("POST", "/api/queue/stop"),
    ("GET", "/api/queue/x"),
    ("POST", "/api/queue/x/cancel"),
    ("GET", "/api/dnc"),
    ("POST", "/api/dnc"),
    ("DELETE", "/api/dnc/+15551234567"),
];

#[tokio::test]
async fn every_api_route_but_live_refuses_a_missing_or_wrong_token() {
    // 27 failures from one address: raise the limit, its own test covers it.
    let s = start_with(
        ApiConfig {
            auth_failures: 1000,
            ..config()
        },
        None,
    )
    .await;
    for (method, path) in PROTECTED {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789"),
            Some("Basic dGVzdA=="),
        ] {
            let mut req = s.http.request(method.clone(), s.url(path));
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        }
    }
    let r = s.http.get(s.url("/api/health/live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "live");
    // /metrics is public by default.
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The right token opens them.
    let (status, _) = s.get_json("/api/calls").await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_peer_get_429_until_the_window_passes() {
    let s = start_with(
        ApiConfig {
            auth_failures: 3,
            auth_window: Duration::from_secs(2),
            ..config()
        },
        None,
    )
    .await;
    let wrong = || {
        s.http
            .get(s.url("/api/calls"))
            .bearer_auth("wrong-token-0123456789")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(wrong().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    // Blocked now, even with the right token.
    let r = s.get("/api/calls").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["limit"], 3);
    assert_eq!(
        wrong().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Liveness is never limited.
    let r = s.http.get(s.url("/api/health/live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.get("/api/calls").await.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn calls_list_newest_first_and_one_call_has_its_turns_and_timings() {
    let s = start().await;
    let (status, body) = s.get_json("/api/calls").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("c3"), json!("c2"), json!("c1")]);
    assert_eq!(body["calls"][0]["turns"], 2);

    let (_, body) = s.get_json("/api/calls?limit=1").await;
    assert_eq!(body["calls"].as_array().unwrap().len(), 1);
    let (_, body) = s.get_json("/api/calls?since=1970-01-01T00:33:20Z").await;
    assert_eq!(
        body["calls"].as_array().unwrap().len(),
        2,
        "ended at or after 2_000_000 ms"
    );
    let (_, body) = s.get_json("/api/calls?since=2500000&limit=1000").await;
    assert_eq!(body["calls"].as_array().unwrap().len(), 1);

    let (status, c1) = s.get_json("/api/calls/c1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c1["id"], "c1");
    assert_eq!(c1["has_lead"], true);
    assert_eq!(c1["turns"][1]["speaker"], "caller");
    assert_eq!(c1["turns"][1]["caller_text"], "A room for two, please");
    assert_eq!(c1["turns"][1]["timings"]["llm_first_token_ms"], 340);

    let (status, body) = s.get_json("/api/calls/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no call"));
    s.stop().await;
}

#[tokio::test]
async fn leads_as_json_one_by_id_and_as_csv() {
    let s = start().await;
    let (status, body) = s.get_json("/api/leads").await;
    assert_eq!(status, StatusCode::OK);
    let leads = body["leads"].as_array().unwrap();
    assert_eq!(leads.len(), 2);
    assert_eq!(leads[0]["call_id"], "c1");
    assert_eq!(body["more"], false);
    let (_, body) = s.get_json("/api/leads?limit=1").await;
    assert_eq!(body["leads"].as_array().unwrap().len(), 1);
    assert_eq!(body["more"], true);
    let (_, body) = s.get_json("/api/leads?since=2999-01-01T00:00:00Z").await;
    assert!(body["leads"].as_array().unwrap().is_empty());

    let (status, lead) = s.get_json("/api/leads/c2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lead["name"], "Ann c2");
    assert_eq!(lead["phone"], "+15551234567");
    for unknown in ["/api/leads/c3", "/api/leads/nope"] {
        let (status, body) = s.get_json(unknown).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert!(body["error"].is_string());
    }

    let r = s.get("/api/leads.csv").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], vb_store::export::CSV_COLUMNS.join(","));
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("c1,"));
    assert!(lines[1].contains("\"a room, with a view\""));
    s.stop().await;
}

#[tokio::test]
async fn robots_are_listed_and_validated_with_every_error() {
    let s = start().await;
    let (status, body) = s.get_json("/api/robots").await;
    assert_eq!(status, StatusCode::OK);
    let robots = body["robots"].as_array().unwrap();
    let names: Vec<_> = robots.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["broken", "front-desk", "reception-en", "reception-ru"]
    );
    assert_eq!(robots[0]["valid"], false);
    assert!(!robots[0]["errors"].as_array().unwrap().is_empty());
    assert_eq!(robots[1]["valid"], true);
    assert_eq!(robots[1]["source"], "folder");
    assert_eq!(robots[1]["language"], "en");
    assert_eq!(robots[2]["source"], "builtin");

    let (status, body) = s
        .post_json("/api/robots/validate", &json!({"name": "front-desk"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], true);
    assert_eq!(body["name"], "front-desk");
    let (_, body) = s
        .post_json("/api/robots/validate", &json!({"name": "reception-ru"}))
        .await;
    assert_eq!(body["valid"], true, "built-ins validate by name");
    let (status, body) = s
        .post_json("/api/robots/validate", &json!({"name": "broken"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "every problem at once: {errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("language")),
        "{errors:?}"
    );

    let toml = "name = \"x\"\nlanguage = \"en\"\nmode = \"nonsense\"\n";
    let (status, body) = s
        .post_json("/api/robots/validate", &json!({"toml": toml}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["valid"], false);
    assert!(body["errors"][0].as_str().unwrap().contains("robot.toml"));

    let (status, _) = s
        .post_json("/api/robots/validate", &json!({"name": "nobody"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in [
        json!({"name": "../broken"}),
        json!({"name": "Front"}),
        json!({}),
        json!({"name": "front-desk", "toml": ""}),
    ] {
        let (status, body) = s.post_json("/api/robots/validate", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string());
    }
    s.stop().await;
}

async fn snapshot(store: &Store) -> (usize, usize, u64) {
    (
        store.recent_calls(1000).unwrap().len(),
        store.leads_since(None).unwrap().len(),
        store.outbox_depth().unwrap(),
    )
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let s = start().await;
    let before = snapshot(&s.store).await;

    let r = s
        .http
        .post(s.url("/api/robots/validate"))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("EOF"), "{body}");

    let (status, body) = s
        .post_json("/api/robots/validate", &json!({"path": "/etc"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field: {body}"
    );
    assert!(body["error"].as_str().unwrap().contains("path"));

    let r = s
        .http
        .post(s.url("/api/robots/validate"))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    for q in ["limit=0", "limit=100000", "limit=-3", "limit=ten"] {
        for path in ["/api/calls", "/api/leads"] {
            let (status, body) = s.get_json(&format!("{path}?{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{q}");
            assert_eq!(body["limit"], 1000, "{body}");
            assert!(body["error"].as_str().unwrap().contains("limit"));
        }
    }
    let (status, body) = s.get_json("/api/calls?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("RFC 3339"));

    let big = format!("{{\"toml\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = s
        .http
        .post(s.url("/api/robots/validate"))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["limit"], 1024 * 1024, "{body}");
    assert!(body["error"].as_str().unwrap().contains("1048576"));

    let (status, body) = s.get_json("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no such route"));

    assert_eq!(snapshot(&s.store).await, before);
    s.stop().await;
}

/// `name{labels} value` or `name value`, value a number.
fn is_sample(line: &str) -> bool {
    let (name_part, value) = match line.rsplit_once(' ') {
        Some(x) => x,
        None => return false,
    };
    let name = match name_part.find('{') {
        Some(i) => {
            if !name_part.ends_with('}') {
                return false;
            }
            &name_part[..i]
        }
        None => name_part,
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    let value_ok = value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value);
    name_ok && value_ok
}

#[tokio::test]
async fn metrics_text_parses_and_carries_what_the_daemon_recorded() {
    let s = start().await;
    s.metrics.call_started();
    s.metrics.call_ended("completed");
    s.metrics
        .observe_stage(Stage::Wire, Duration::from_millis(800));
    s.metrics.set_mqtt_connected(true);
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let text = r.text().await.unwrap();
    let mut samples = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(is_sample(line), "not a sample: {line:?}");
        samples += 1;
    }
    assert!(samples > 20, "{text}");
    for line in [
        "voiceblock_calls_total{result=\"completed\"} 1",
        "voiceblock_turn_latency_seconds_count{stage=\"wire\"} 1",
        "voiceblock_mqtt_connected 1",
        "voiceblock_outbox_depth 5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}\n{text}");
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("voiceblock_process_resident_bytes ")));
    s.stop().await;

    let s = start_with(
        ApiConfig {
            metrics_public: false,
            ..config()
        },
        None,
    )
    .await;
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.get("/metrics").await.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn readiness_is_503_with_reasons_when_a_source_fails() {
    let s = start().await;
    let (status, body) = s.get_json("/api/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["checks"][0]["name"], "disk");
    assert_eq!(body["checks"][1]["name"], "store");
    s.stop().await;

    let s = start_with(config(), Some(Arc::new(SipDown))).await;
    let (status, body) = s.get_json("/api/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["reasons"],
        json!(["sip: not registered with pbx.example: 403 Forbidden"])
    );
    assert_eq!(
        body["checks"].as_array().unwrap().len(),
        4,
        "disk, store, models, sip"
    );
    s.stop().await;

    let s = start_with(
        ApiConfig {
            min_free_disk_bytes: u64::MAX,
            ..config()
        },
        None,
    )
    .await;
    let (status, body) = s.get_json("/api/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["reasons"][0].as_str().unwrap().starts_with("disk: "));
    s.stop().await;
}

#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let s = start().await;
    let (status, doc) = s.get_json("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    // A job for the queue's {id} routes (paths come sorted: the DNC entry is
    // added before it is deleted).
    let (_, job) = s
        .post_json("/api/queue", &json!({"number": "+15550100099"}))
        .await;
    let job = job["id"].as_str().unwrap().to_string();
    let mut served = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = if path.starts_with("/api/queue") {
                path.replace("{id}", &job)
            } else {
                path.replace("{id}", "c1")
                    .replace("{number}", "+15550100002")
                    .replace("{name}", "front-desk")
            };
            let body = match path.as_str() {
                "/api/queue" => json!({"number": "+15550100001"}),
                "/api/queue/bulk" => json!([{"number": "+15550100003"}]),
                "/api/dnc" => json!({"number": "+15550100002"}),
                "/api/calls/test" => json!({"target": "sip:bob@127.0.0.1:5062"}),
                _ => json!({"name": "front-desk"}),
            };
            let r = match method.as_str() {
                "get" => s.get(&concrete).await,
                "post" => s
                    .http
                    .post(s.url(&concrete))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
                "delete" => s
                    .http
                    .delete(s.url(&concrete))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap(),
                other => panic!("undocumented method {other}"),
            };
            let st = r.status();
            assert!(
                st == StatusCode::OK || st == StatusCode::CREATED || st == StatusCode::ACCEPTED,
                "{method} {path}: {st} {}",
                r.text().await.unwrap_or_default()
            );
            served.push((method.to_uppercase(), path.clone()));
        }
    }
    // The table the auth test walks covers the document too.
    for (method, path) in PROTECTED {
        let template = path
            .replace("/c1", "/{id}")
            .replace("/x", "/{id}")
            .replace("/+15551234567", "/{number}")
            .replace("/front-desk/activate", "/{name}/activate");
        assert!(
            served.iter().any(|(m, p)| m == method && *p == template),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(served.len(), PROTECTED.len() + 2, "plus live and /metrics");
    s.stop().await;
}

#[tokio::test]
async fn serve_refuses_a_bad_config_and_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = AppState::new(
        ApiConfig {
            token: Some("short".into()),
            ..ApiConfig::default()
        },
        store,
        dir.path().join("robots"),
        Arc::new(Metrics::new()),
    );
    let err = vb_api::serve(listener, state, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Config { .. }), "{err}");

    let s = start().await;
    let addr = s.base.clone();
    s.stop().await;
    let client = Client::new();
    assert!(client
        .get(format!("{addr}/api/health/live"))
        .send()
        .await
        .is_err());
}

/// A readiness source that holds its request until released, to keep one
/// request in flight.
struct Held {
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl HealthSource for Held {
    fn checks(&self) -> Vec<Check> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self
            .release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        vec![Check::ok("held")]
    }
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_503_at_once() {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let held = Held {
        entered: std::sync::Mutex::new(entered_tx),
        release: std::sync::Mutex::new(release_rx),
    };
    let s = start_with(
        ApiConfig {
            max_in_flight: 1,
            ..config()
        },
        Some(Arc::new(held)),
    )
    .await;
    let first = {
        let req = s.http.get(s.url("/api/health/ready")).bearer_auth(TOKEN);
        tokio::spawn(async move { req.send().await.unwrap().status() })
    };
    tokio::task::spawn_blocking(move || entered_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    let r = s.get("/api/calls").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    assert_eq!(r.json::<Value>().await.unwrap()["limit"], 1);
    let r = s.http.get(s.url("/api/health/live")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "liveness is never refused");
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(s.get("/api/calls").await.status(), StatusCode::OK);
    s.stop().await;
}

impl Server {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ctype: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .header(header::CONTENT_TYPE, ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }
}

#[tokio::test]
async fn queue_jobs_are_added_listed_cancelled_and_counted() {
    let s = start().await;
    let (st, v) = s
        .post_json(
            "/api/queue",
            &json!({"number": "+1 (555) 010-0001", "name": "Ann", "priority": 5}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["number"], "+15550100001");
    let first = v["id"].as_str().unwrap().to_string();
    let (st, v) = s
        .post_json("/api/queue", &json!({"number": "sip:bob@127.0.0.1:5099"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s.get_json("/api/queue?state=queued").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2);
    let (st, v) = s.get_json(&format!("/api/queue/{first}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["job"]["name"], "Ann");
    assert_eq!(v["job"]["priority"], 5);
    assert_eq!(v["attempts"], json!([]));
    let (st, v) = s
        .post_json(&format!("/api/queue/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post_json(&format!("/api/queue/{first}/cancel"), &json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("is cancelled"), "{v}");
    let (st, _) = s.post_json("/api/queue/stop", &json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = s.get_json("/api/queue/stats").await;
    assert_eq!(
        (
            v["running"].as_bool(),
            v["queued"].as_u64(),
            v["cancelled"].as_u64()
        ),
        (Some(false), Some(1), Some(1)),
        "{v}"
    );
    s.post_json("/api/queue/start", &json!({})).await;
    assert!(s.store.queue_running().unwrap());
    s.stop().await;
}

#[tokio::test]
async fn bulk_uploads_take_csv_and_json_all_or_none() {
    let s = start().await;
    let csv = "number,name,priority\n+15550100001,Ann,1\n\"+1 555 010 0002\",\"Smith, Bob\",\n";
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "text/csv",
            csv.into(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["added"], 2);
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "application/json",
            serde_json::to_vec(
                &json!([{"number": "+15550100003"}, {"number": "+15550100004", "note": "VIP"}]),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // One bad row: refused whole, each bad row named by its line.
    let bad = "number,name\n+15550100005,Ann\n5550100006,Bob\n+1555,Cy\n";
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "text/csv",
            bad.into(),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("2 bad line(s), nothing was queued"), "{e}");
    assert!(
        e.contains("line 3: number") && e.contains("line 4: number"),
        "{e}"
    );
    assert_eq!(
        s.store.queue_stats().unwrap().queued,
        4,
        "nothing from the bad upload"
    );
    // DNC numbers are skipped and listed.
    let (st, _) = s
        .post_json(
            "/api/dnc",
            &json!({"number": "+15550100009", "reason": "asked"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "text/csv",
            "number\n+15550100009\n+15550100010\n".into(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["added"].as_u64(), v["skipped"][0]["number"].as_str()),
        (Some(1), Some("+15550100009"))
    );
    let (st, v) = s
        .post_json("/api/queue", &json!({"number": "+15550100009"}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("do-not-call"), "{v}");
    s.stop().await;
}

#[tokio::test]
async fn queue_bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let s = start().await;
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "/api/queue",
            "application/json",
            b"{\"number\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "/api/queue",
            "application/json",
            br#"{"number": "+15550100001", "colour": "red"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "/api/queue",
            "application/json",
            br#"{"number": "555-0100"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "E.164",
        ),
        (
            "/api/queue",
            "application/json",
            br#"{"number": "+15550100001", "priority": 1000}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "-100 to 100",
        ),
        (
            "/api/queue",
            "application/json",
            format!(
                r#"{{"number": "+15550100001", "name": "{}"}}"#,
                "n".repeat(201)
            )
            .into_bytes(),
            StatusCode::BAD_REQUEST,
            "limit is 200",
        ),
        (
            "/api/queue",
            "application/json",
            br#"{"number": "+15550100001", "not_before": "tomorrow"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "not_before",
        ),
        (
            "/api/queue/bulk",
            "text/plain",
            b"+15550100001".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/csv",
        ),
        (
            "/api/queue/bulk",
            "text/csv",
            b"phone\n+15550100001\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "\"phone\" is unknown",
        ),
        (
            "/api/queue/bulk",
            "text/csv",
            b"number\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "no jobs",
        ),
        (
            "/api/queue/bulk",
            "text/csv",
            b"number,priority\n+15550100001,high\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "line 2: priority",
        ),
        (
            "/api/queue/bulk",
            "application/json",
            b"{\"number\": \"+15550100001\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON array",
        ),
        (
            "/api/dnc",
            "application/json",
            br#"{"number": "call me"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "number",
        ),
    ];
    for (path, ctype, body, want, needle) in cases {
        let (st, v) = s.send(reqwest::Method::POST, path, ctype, body).await;
        assert_eq!(st, want, "{path} {v}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{path}: {needle} in {v}"
        );
    }
    // Over the job count limit (the rows are small, so the body fits).
    let mut many = String::from("number\n");
    for i in 0..10_001 {
        many.push_str(&format!("+1555{i:07}\n"));
    }
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "text/csv",
            many.into(),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["limit"], 10_000);
    // Over the body limit (1 MiB by default).
    let huge = format!("number,note\n{}", "+15550100001,x\n".repeat(80_000));
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            "/api/queue/bulk",
            "text/csv",
            huge.into(),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    for (method, path, want) in [
        (
            reqwest::Method::GET,
            "/api/queue/nope",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::POST,
            "/api/queue/nope/cancel",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::GET,
            "/api/queue?state=lost",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::GET,
            "/api/queue?offset=-1",
            StatusCode::BAD_REQUEST,
        ),
        (
            reqwest::Method::DELETE,
            "/api/dnc/+15550100001",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::DELETE,
            "/api/dnc/12",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, v) = s.send(method, path, "application/json", Vec::new()).await;
        assert_eq!(st, want, "{path} {v}");
        assert!(v["error"].is_string(), "{path} {v}");
    }
    let stats = s.store.queue_stats().unwrap();
    assert_eq!((stats.queued, stats.dnc), (0, 0), "nothing changed");
    s.stop().await;
}

#[tokio::test]
async fn test_calls_are_queued_checked_and_refused_when_busy() {
    let s = start().await;
    let (st, v) = s
        .post_json("/api/calls/test", &json!({"target": "+1 555 010 0001"}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["queued"], "+15550100001");
    let (st, v) = s
        .post_json("/api/calls/test", &json!({"target": "555"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("target:"), "{v}");
    let (st, v) = s
        .post_json(
            "/api/calls/test",
            &json!({"target": "sip:a@b", "when": "now"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, _) = s
        .post_json("/api/calls/test", &json!({"target": "sip:a@b"}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, v) = s
        .post_json("/api/calls/test", &json!({"target": "sip:c@d"}))
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("busy"), "{v}");
    assert_eq!(
        *s.test_calls.0.lock().unwrap(),
        vec!["+15550100001".to_string(), "sip:a@b".to_string()]
    );
    s.stop().await;
}

#[tokio::test]
async fn robots_are_activated_and_the_active_one_is_marked() {
    let s = start().await;
    let (st, v) = s
        .post_json("/api/robots/front-desk/activate", &json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["takes_effect"], "now");
    let (_, v) = s.get_json("/api/robots").await;
    assert_eq!(v["active"], "front-desk", "{v}");
    let marked: Vec<&str> = v["robots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["active"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(marked, vec!["front-desk"]);
    for (name, want, needle) in [
        (
            "broken",
            StatusCode::UNPROCESSABLE_ENTITY,
            "does not validate",
        ),
        ("nobody", StatusCode::NOT_FOUND, "no robot"),
        ("a.b", StatusCode::BAD_REQUEST, "not a robot name"),
    ] {
        let (st, v) = s
            .post_json(&format!("/api/robots/{name}/activate"), &json!({}))
            .await;
        assert_eq!(st, want, "{name}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{name}: {v}");
    }
    assert_eq!(
        s.switch.0.lock().unwrap().as_deref(),
        Some("front-desk"),
        "unchanged by refusals"
    );
    s.stop().await;
}

/// Ids of `GET /api/calls?{q}`, asserting 200.
async fn call_ids(s: &Server, q: &str) -> Vec<String> {
    let (status, body) = s.get_json(&format!("/api/calls?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{q}: {body}");
    body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn calls_are_filtered_by_every_parameter_and_paged() {
    let s = start().await;
    // Beside c1..c3 (inbound, reception-en, completed, caller +15550000):
    // an outbound call, a timed-out one from another robot, a talk-page one.
    let mut o1 = call("o1", 4_000_000, false);
    o1.caller = Some("+493012345".into());
    o1.record = json!({"direction": "outbound"});
    s.store.record_call(&o1).unwrap();
    let mut t1 = call("t1", 5_000_000, true);
    t1.robot = "sales-ru".into();
    t1.end_reason = "timeout".into();
    t1.caller = Some("sip:50%_off@pbx".into());
    s.store.record_call(&t1).unwrap();
    let mut w1 = call("w1", 6_000_000, false);
    w1.caller = Some("web:127.0.0.1".into());
    w1.record = json!({"direction": "web"});
    s.store.record_call(&w1).unwrap();

    assert_eq!(call_ids(&s, "").await, ["w1", "t1", "o1", "c3", "c2", "c1"]);
    assert_eq!(call_ids(&s, "until=3000000").await, ["c2", "c1"]);
    assert_eq!(
        call_ids(&s, "since=1970-01-01T00:33:20Z&until=1970-01-01T01:23:20Z").await,
        ["o1", "c3", "c2"],
        "2_000_000 <= ended < 5_000_000"
    );
    assert_eq!(call_ids(&s, "robot=sales-ru").await, ["t1"]);
    assert!(call_ids(&s, "robot=sales").await.is_empty(), "exact");
    assert_eq!(call_ids(&s, "result=timeout").await, ["t1"]);
    assert_eq!(call_ids(&s, "caller=%2B4930").await, ["o1"]);
    assert_eq!(
        call_ids(&s, "caller=%25_").await,
        ["t1"],
        "% and _ are literal"
    );
    assert!(call_ids(&s, "caller=%27%20OR%201%3D1%20--")
        .await
        .is_empty());
    assert_eq!(call_ids(&s, "lead=true").await, ["t1", "c2", "c1"]);
    assert_eq!(call_ids(&s, "lead=false").await, ["w1", "o1", "c3"]);
    assert_eq!(call_ids(&s, "direction=outbound").await, ["o1"]);
    assert_eq!(
        call_ids(&s, "direction=inbound").await,
        ["w1", "t1", "c3", "c2", "c1"]
    );
    assert_eq!(
        call_ids(
            &s,
            "robot=reception-en&result=completed&lead=false&direction=inbound"
        )
        .await,
        ["w1", "c3"]
    );
    assert_eq!(
        call_ids(&s, "robot=&result=&caller=&lead=&direction=")
            .await
            .len(),
        6,
        "empty filters match everything"
    );
    assert_eq!(call_ids(&s, "limit=2&offset=2").await, ["o1", "c3"]);
    assert!(call_ids(&s, "offset=1000000").await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn bad_call_filters_get_a_400_naming_the_parameter_and_its_limit() {
    let s = start().await;
    let long = "x".repeat(129);
    let cases: Vec<(String, &str, Option<u64>)> = vec![
        ("direction=sideways".into(), "direction", None),
        ("direction=OUTBOUND".into(), "direction", None),
        ("lead=yes".into(), "lead", None),
        ("lead=1".into(), "lead", None),
        ("limit=-1".into(), "limit", Some(1000)),
        ("limit=1001".into(), "limit", Some(1000)),
        ("offset=-1".into(), "offset", Some(1_000_000)),
        ("offset=1000001".into(), "offset", Some(1_000_000)),
        ("since=yesterday".into(), "since", None),
        ("until=tomorrow".into(), "until", None),
        ("until=2026-13-01T00:00:00Z".into(), "until", None),
        (format!("robot={long}"), "robot", Some(128)),
        (format!("result={long}"), "result", Some(128)),
        (format!("caller={long}"), "caller", Some(128)),
        ("robt=sales-ru".into(), "robt", None),
    ];
    for (q, names, limit) in cases {
        let (status, body) = s.get_json(&format!("/api/calls?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(names), "{q}: {error}");
        match limit {
            Some(l) => {
                assert_eq!(body["limit"], l, "{q}: {body}");
                assert!(error.contains(&l.to_string()), "{q}: {error}");
            }
            None => assert!(body.get("limit").is_none(), "{q}: {body}"),
        }
    }
    // 128 bytes is still fine.
    assert!(call_ids(&s, &format!("robot={}", "x".repeat(128)))
        .await
        .is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_recorded_calls_audio_is_linked_streamed_whole_and_in_ranges() {
    let s = start().await;
    let (_, c1) = s.get_json("/api/calls/c1").await;
    assert_eq!(c1["audio"], "/api/calls/c1/audio");
    assert!(c1.get("recording").is_none(), "{c1}");
    let (_, c3) = s.get_json("/api/calls/c3").await;
    assert_eq!(c3["audio"], Value::Null);

    let expected = wav(8000, 2, 2000);
    let len = expected.len();
    let r = s.get("/api/calls/c1/audio").await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "audio/wav");
    assert_eq!(h[header::CONTENT_LENGTH], len.to_string().as_str());
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(
        h[header::CONTENT_DISPOSITION],
        "inline; filename=\"c1.wav\""
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), expected.as_slice());

    let ranged = |range: String| {
        s.http
            .get(s.url("/api/calls/c1/audio"))
            .bearer_auth(TOKEN)
            .header(header::RANGE, range)
            .send()
    };
    let r = ranged("bytes=0-3".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes 0-3/{len}").as_str()
    );
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "4");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"RIFF");

    let r = ranged(format!("bytes={}-", len - 10)).await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &expected[len - 10..]);
    let r = ranged("bytes=-6".into()).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &expected[len - 6..]);
    let r = ranged("bytes=40-2000000".into()).await.unwrap();
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes 40-{}/{len}", len - 1).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &expected[40..]);

    let r = ranged(format!("bytes={len}-")).await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes */{len}").as_str()
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["limit"], len);
    // Several ranges are not served as multipart: the whole file.
    let r = ranged("bytes=0-1,4-5".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), len);
    s.stop().await;
}

#[tokio::test]
async fn audio_says_why_it_is_missing_and_never_leaves_the_recordings_directory() {
    let s = start().await;
    let rec_dir = s._dir.path().join("recordings");
    let (status, body) = s.get_json("/api/calls/nope/audio").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("unknown call"),
        "{body}"
    );
    let (status, body) = s.get_json("/api/calls/c3/audio").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("no recording"),
        "{body}"
    );

    // Removed by retention: the record still names it.
    let mut gone = call("gone", 4_000_000, false);
    gone.record = json!({"recording": recording("gone.wav", 44)});
    s.store.record_call(&gone).unwrap();
    let (status, body) = s.get_json("/api/calls/gone/audio").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("retention"),
        "{body}"
    );

    // Names that would leave the directory, next to files they would reach.
    std::fs::write(s._dir.path().join("secret.wav"), b"not for you").unwrap();
    let long = "x".repeat(256);
    let bad = [
        "../secret.wav",
        "..",
        "/etc/passwd",
        "sub/../../secret.wav",
        "..\\secret.wav",
        "a\0.wav",
        "",
        long.as_str(),
    ];
    for (i, name) in bad.iter().enumerate() {
        let id = format!("bad{i}");
        let mut c = call(&id, 5_000_000 + i as i64, false);
        c.record = json!({"recording": recording(name, 11)});
        s.store.record_call(&c).unwrap();
        let r = s.get(&format!("/api/calls/{id}/audio")).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{name:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("corrupt record"),
            "{name:?}: {body}"
        );
    }
    // Not a string, not WAV, not a plain file.
    let others = [
        ("num", json!({"recording": {"file": 7, "format": "wav"}})),
        (
            "mp3",
            json!({"recording": {"file": "c1.wav", "format": "mp3"}}),
        ),
        ("str", json!({"recording": "c1.wav"})),
    ];
    for (id, record) in others {
        let mut c = call(id, 6_000_000, false);
        c.record = record;
        s.store.record_call(&c).unwrap();
        let r = s.get(&format!("/api/calls/{id}/audio")).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{id}");
    }
    std::os::unix::fs::symlink(s._dir.path().join("secret.wav"), rec_dir.join("link.wav")).unwrap();
    std::fs::create_dir(rec_dir.join("dir.wav")).unwrap();
    for (id, name) in [("link", "link.wav"), ("dir", "dir.wav")] {
        let mut c = call(id, 7_000_000, false);
        c.record = json!({"recording": recording(name, 11)});
        s.store.record_call(&c).unwrap();
        let r = s.get(&format!("/api/calls/{id}/audio")).await;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{id}");
        let text = r.text().await.unwrap();
        assert!(text.contains("corrupt record"), "{id}: {text}");
        assert!(!text.contains("not for you"));
    }
    s.stop().await;
}

#[tokio::test]
async fn with_recording_off_the_audio_route_says_so() {
    let s = start_full(config(), None, false).await;
    let (status, body) = s.get_json("/api/calls/c1/audio").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"],
        "call recording is off on this box ([recording] in the box config)"
    );
    let (status, body) = s.get_json("/api/calls/nope/audio").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("unknown call"));
    s.stop().await;
}
