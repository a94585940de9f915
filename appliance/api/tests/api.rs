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

struct Server {
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

async fn start_with(config: ApiConfig, health: Option<Arc<dyn HealthSource>>) -> Server {
    // reqwest is built without a default rustls provider (the workspace uses
    // ring only); plain http needs none, but the builder asks for one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    store.record_call(&call("c1", 1_000_000, true)).unwrap();
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
    state = state.with_box_config(json!({ "sip": { "user": "robot", "password": "set" } }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(vb_api::serve(listener, state, cancel.clone()));
    Server {
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
    ("GET", "/api/leads"),
    ("GET", "/api/leads.csv"),
    ("GET", "/api/leads/c1"),
    ("GET", "/api/robots"),
    ("POST", "/api/robots/validate"),
    ("GET", "/api/config"),
    ("GET", "/api/openapi.json"),
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
    let mut served = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "c1");
            let r = match method.as_str() {
                "get" => s.get(&concrete).await,
                "post" => s
                    .http
                    .post(s.url(&concrete))
                    .bearer_auth(TOKEN)
                    .json(&json!({"name": "front-desk"}))
                    .send()
                    .await
                    .unwrap(),
                other => panic!("undocumented method {other}"),
            };
            assert_eq!(r.status(), StatusCode::OK, "{method} {path}");
            served.push((method.to_uppercase(), concrete));
        }
    }
    // The table the auth test walks covers the document too.
    for (method, path) in PROTECTED {
        assert!(
            served.iter().any(|(m, p)| m == method && p == path),
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
