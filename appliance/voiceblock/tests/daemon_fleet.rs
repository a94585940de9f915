//! `voiceblock run` on a provisioned box: the config written by `voiceblock
//! provision` drives the SIP account, the store and fleet sync; a call the
//! daemon answers is kept in the store and reaches a fleet subscriber on a
//! real mosquitto (TLS, ACLs) through the outbox; the fleet sees the daemon's
//! health in its retained status, config pushes are checked as box configs, and the daemon's HTTP API lists the call
//! behind its token and counts it in /metrics. The caller is a second `voiceblock`
//! placing a call (`voiceblock call`), so both ends run the real models.

mod peers;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vb_store::Store;
use vb_sync::fleet::FleetClient;
use vb_sync::testing::Broker;

const TOKEN: &str = "test-token-0123456789abcdefghijklmnopqrstuv";

/// One HTTP/1.1 GET on loopback: status and body.
fn provision(d: &Path, broker: &Broker, sip_port: u16, api_port: u16) {
    let conn = broker.conn("dev-a");
    let out = Command::new(env!("CARGO_BIN_EXE_voiceblock"))
        .env_remove("VOICEBLOCK_CONFIG")
        .args(["provision", "--config"])
        .arg(d.join("etc/voiceblock.toml"))
        .args(["--device-id", "dev-a", "--sip-user", "robot"])
        .args(["--sip-domain", "127.0.0.1", "--sip-listen"])
        .arg(format!("127.0.0.1:{sip_port}"))
        .arg("--mqtt-broker")
        .arg(format!("127.0.0.1:{}", conn.port))
        .arg("--mqtt-ca")
        .arg(&conn.ca_file)
        .args(["--mqtt-username", "dev-a", "--mqtt-password"])
        .arg(conn.password.as_deref().unwrap())
        .arg("--store")
        .arg(d.join("box.db"))
        .args(["--robot", "reception-en", "--api-token", TOKEN])
        .arg("--api-listen")
        .arg(format!("127.0.0.1:{api_port}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "provision failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GET whose body is bytes (a WAV): the head as text, the body.
fn get_bytes(port: u16, path: &str, token: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    (
        String::from_utf8_lossy(&all[..at]).into_owned(),
        all[at + 4..].to_vec(),
    )
}

/// The call was recorded: a stereo WAV, the caller (another box's robot)
/// on the left and this box's robot on the right, as long as the call.
fn check_recording(d: &Path) {
    let file = std::fs::read_dir(d.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("the call's JSON record");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let rec = &record["recording"];
    assert_eq!(rec["format"], "wav", "record: {record:#}");
    assert_eq!(rec["channels"], 2);
    assert_eq!(rec["sample_rate"], 8000);
    let path = d.join("recordings").join(rec["file"].as_str().unwrap());
    assert_eq!(
        rec["bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    let wav = hound::WavReader::open(&path).unwrap();
    let spec = wav.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    let samples: Vec<i16> = wav.into_samples().map(Result::unwrap).collect();
    let secs = samples.len() as f64 / 2.0 / 8000.0;
    let call_secs = record["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (secs - call_secs).abs() < 2.0,
        "recording {secs:.1} s against a {call_secs:.1} s call"
    );
    assert_eq!(rec["duration_ms"].as_f64().unwrap() / 1000.0, secs);
    let loud = |ch: usize| {
        samples
            .iter()
            .skip(ch)
            .step_by(2)
            .filter(|s| s.unsigned_abs() > 1000)
            .count()
    };
    // Both robots talk: each side holds at least a second of speech.
    assert!(loud(0) > 8000, "caller side: {} loud samples", loud(0));
    assert!(loud(1) > 8000, "robot side: {} loud samples", loud(1));
}

/// `/metrics` after one real call, read with a Prometheus text-format
/// parser: every metric the operator surfaces promise is there, and the
/// ones one call moves have moved.
/// `recognized`: whether a caller turn of the call was recognised (two
/// robots talking over each other may hear nothing in a call), so the STT
/// real-time factor has an observation.
fn check_metrics_after_a_call(text: &str, recognized: bool) {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
    let value = |name: &str, label: Option<(&str, &str)>| -> Vec<f64> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(b) => {
                    b.iter().map(|c| c.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
            .collect()
    };
    let one = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let v = value(name, label);
        assert_eq!(v.len(), 1, "{name} {label:?}: {v:?} in\n{text}");
        v[0]
    };
    let calls: f64 = value("voiceblock_calls_total", None).iter().sum();
    assert_eq!(calls, 1.0, "one call counted by result:\n{text}");
    assert_eq!(one("voiceblock_active_calls", None), 0.0);
    // Every stage has its histogram; the ones a script call goes through
    // counted this call's turns.
    for stage in [
        "endpoint",
        "stt",
        "llm_first_token",
        "tts_first_audio",
        "wire",
    ] {
        let count = one(
            "voiceblock_turn_latency_seconds_count",
            Some(("stage", stage)),
        );
        let expect_turns = stage != "llm_first_token";
        assert_eq!(
            count > 0.0,
            expect_turns,
            "stage {stage}: count {count}\n{text}"
        );
    }
    assert_eq!(
        one("voiceblock_stt_rtf_count", None) > 0.0,
        recognized,
        "an STT factor for each recognised turn\n{text}"
    );
    assert!(one("voiceblock_tts_rtf_count", None) > 0.0, "{text}");
    for counter in [
        "voiceblock_barge_ins_total",
        "voiceblock_script_fallbacks_total",
        "voiceblock_rtp_packets_lost_total",
    ] {
        assert!(one(counter, None) >= 0.0, "{counter}");
    }
    // No registrar here: direct calls only counts as registered (ready).
    assert_eq!(one("voiceblock_sip_registered", None), 1.0);
    assert!(one("voiceblock_rtp_jitter_ms", None) >= 0.0);
    assert_eq!(one("voiceblock_outbox_depth", None), 0.0, "all delivered");
    assert_eq!(one("voiceblock_mqtt_connected", None), 1.0);
    assert!(
        one("voiceblock_process_resident_bytes", None) > 50e6,
        "models loaded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_by_run_reaches_the_fleet_from_the_store() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let box_port = peers::free_port_pair();
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    provision(d, &broker, box_port, api_port);

    let mut collector = FleetClient::connect(&broker.conn("admin"), "collector", true, false)
        .await
        .unwrap();
    collector.subscribe("voiceblock/dev-a/calls").await.unwrap();
    let mut admin = FleetClient::connect(&broker.conn("admin"), "admin-cli", false, false)
        .await
        .unwrap();

    let rtp = peers::free_port_pair();
    let config = d.join("etc/voiceblock.toml").display().to_string();
    let mut daemon = peers::voiceblock(
        "voiceblock-run",
        &[
            "run".into(),
            "--config".into(),
            config,
            "--records".into(),
            d.join("calls").display().to_string(),
            "--recordings".into(),
            d.join("recordings").display().to_string(),
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 9),
        ],
        d,
    );
    daemon
        .wait_for("voiceblock: listening", Duration::from_secs(120))
        .unwrap();

    // The fleet sees the daemon online, with its SIP state in the health.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let devices = admin.devices().await.unwrap();
        if let Some(s) = devices.iter().find(|s| s.device == "dev-a") {
            if s.state == "online" {
                assert_eq!(s.health["mode"], "daemon", "health: {}", s.health);
                assert_eq!(s.health["sip"], "direct calls only", "{}", s.health);
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dev-a never came online: {devices:?}\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Another box calls this one and hangs up after 25 s: long enough for
    // turns after the greetings (the two robots talk over each other, then
    // each hears the other or prompts after its silence timeout).
    let mut caller = peers::box_caller("voiceblock-call", box_port, 25, d);
    let code = caller.wait_exit(Duration::from_secs(150));
    assert_eq!(
        code,
        Some(0),
        "the caller did not finish; its log:\n{}\ndaemon log:\n{}",
        std::fs::read_to_string(&caller.log).unwrap_or_default(),
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );

    // The call arrives on the fleet side once, from the store's outbox.
    let m = collector
        .recv(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no call message; daemon log:\n{}",
                std::fs::read_to_string(&daemon.log).unwrap_or_default()
            )
        });
    let v = m.json().unwrap();
    let call_id = v["call_id"].as_str().expect("call_id").to_string();
    assert!(
        v["caller"].as_str().unwrap_or_default().contains("caller@"),
        "call message: {v:#}"
    );
    assert_eq!(v["robot"], "reception-en", "call message: {v:#}");

    // The store holds it, delivered, with the SIP facts in the record.
    let store = Store::open(&d.join("box.db")).unwrap();
    let calls = store.recent_calls(10).unwrap();
    assert_eq!(calls.len(), 1, "calls: {calls:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.message_state(&format!("{call_id}:call")).unwrap() != Some((true, 1)) {
        assert!(
            std::time::Instant::now() < deadline,
            "not marked delivered: {:?}",
            store.message_state(&format!("{call_id}:call"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.outbox_depth().unwrap(), 0);

    check_recording(d);

    // The fleet asks the daemon for a test call: queued for its SIP agent.
    let reply = admin
        .command(
            "dev-a",
            &serde_json::json!({ "command": "test_call", "target": "sip:nobody@127.0.0.1:9" }),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply to test_call");
    assert_eq!(reply["reply"]["ok"], true, "test_call reply: {reply:#}");
    assert_eq!(reply["reply"]["result"]["queued"], "sip:nobody@127.0.0.1:9");

    // The daemon's recent log lines, from the fleet.
    let reply = admin
        .command(
            "dev-a",
            &serde_json::json!({ "command": "logs", "lines": 200 }),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply to logs");
    let lines = reply["reply"]["result"].to_string();
    assert!(lines.contains("call answered"), "logs: {reply:#}");

    // The same call through the daemon's HTTP API, behind its token.
    let (status, _) = peers::http_get(api_port, "/api/calls", None);
    assert_eq!(status, 401, "no token");
    let (status, body) = peers::http_get(api_port, "/api/calls", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&call_id), "the call is listed: {body}");
    // Filters: the call came in, so it is not among the outbound ones.
    let (status, body) = peers::http_get(
        api_port,
        "/api/calls?direction=inbound&robot=reception-en",
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&call_id), "inbound: {body}");
    let (status, body) = peers::http_get(api_port, "/api/calls?direction=outbound", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&call_id), "outbound: {body}");
    let (status, body) = peers::http_get(api_port, "/api/calls?direction=sideways", Some(TOKEN));
    assert_eq!(status, 400, "{body}");
    // Its recording, through the API, byte for byte.
    let (status, body) = peers::http_get(api_port, &format!("/api/calls/{call_id}"), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    let audio = detail["audio"]
        .as_str()
        .unwrap_or_else(|| panic!("no audio: {detail:#}"));
    let (head, wav) = get_bytes(api_port, audio, TOKEN);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: audio/wav"),
        "{head}"
    );
    let on_disk = std::fs::read_dir(d.join("recordings"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .next()
        .unwrap();
    assert_eq!(wav, on_disk, "the API serves the recording as written");
    let (status, body) = peers::http_get(api_port, "/api/health/ready", Some(TOKEN));
    assert_eq!(status, 200, "ready: {body}");
    assert!(
        body.contains("mqtt"),
        "the broker is among the checks: {body}"
    );
    let (status, metrics) = peers::http_get(api_port, "/metrics", None);
    assert_eq!(status, 200);
    // Which of the call's turns were recognised, from its stored timings
    // (as the daemon computes the factor: recognition time over audio).
    let detail = store.call(&call_id).unwrap().expect("the call is stored");
    let recognized = detail.turns.iter().any(|t| {
        let ms = |k: &str| t.timings[k].as_u64().unwrap_or(0);
        t.index > 0
            && ms("caller_audio_ms") > 0
            && t.timings["stt_speculative_ms"]
                .as_u64()
                .unwrap_or(ms("stt_ms"))
                > 0
    });
    check_metrics_after_a_call(&metrics, recognized);

    // Config pushes come last: an applied one restarts the daemon (and
    // empties its in-memory log ring) as soon as no call is active, so
    // everything above runs against the first start.
    // Config pushes: one missing its [sip] is refused with the reason and
    // nothing is written; a whole box config is checked and kept for the
    // next start.
    let provisioned: toml::Value =
        toml::from_str(&std::fs::read_to_string(d.join("etc/voiceblock.toml")).unwrap()).unwrap();
    let mut config = serde_json::to_value(&provisioned).unwrap();
    let reports = admin
        .push_config(
            &["dev-a".to_string()],
            &vb_sync::DesiredConfig {
                version: 2,
                config: serde_json::json!({ "device": { "id": "dev-a" } }),
            },
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    let report = &reports[0].1;
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert!(report["errors"].to_string().contains("sip"), "{report:#}");
    assert!(!d.join("pushed-config.toml").exists());
    config["sip"]["max_calls"] = serde_json::json!(3);
    let reports = admin
        .push_config(
            &["dev-a".to_string()],
            &vb_sync::DesiredConfig { version: 3, config },
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    let report = &reports[0].1;
    assert_eq!(report["status"], "applied", "{report:#}");
    let pushed = std::fs::read_to_string(d.join("pushed-config.toml")).unwrap();
    assert!(pushed.contains("max_calls = 3"), "{pushed}");

    // The pushed config (version 3, up to 3 calls) takes effect: with no
    // call active the daemon starts again in place (same pid, so systemd
    // keeps watching it) and runs on it.
    let pid = daemon.child.id();
    for line in [
        "config version 3 from the fleet: restarting in place once no call is active",
        "restarting in place: config version 3",
        "voiceblock: listening",
    ] {
        daemon.wait_for(line, Duration::from_secs(120)).unwrap();
    }
    assert_eq!(daemon.child.try_wait().unwrap(), None, "still running");
    assert_eq!(daemon.child.id(), pid);
    let (status, body) = peers::http_get(api_port, "/api/config", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["sip"]["max_calls"], 3, "{view:#}");

    // A push that validates but cannot start (its API address is taken)
    // is set aside at the restart, and the box goes back to version 3.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bad = serde_json::to_value(&provisioned).unwrap();
    bad["sip"]["max_calls"] = serde_json::json!(4);
    bad["api"]["listen"] = serde_json::json!(taken.local_addr().unwrap().to_string());
    let reports = admin
        .push_config(
            &["dev-a".to_string()],
            &vb_sync::DesiredConfig {
                version: 4,
                config: bad,
            },
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    assert_eq!(reports[0].1["status"], "applied", "{:#}", reports[0].1);
    // The first line is on stderr, the others on stdout: any order.
    daemon
        .wait_for_all(
            &[
                "the pushed config does not start",
                "restarting in place: the pushed config failed to start; the previously pushed config in force",
                "voiceblock: listening",
            ],
            Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(daemon.child.id(), pid);
    let why = std::fs::read_to_string(d.join("pushed-config.failed.why")).unwrap();
    assert!(why.contains("HTTP API"), "{why}");
    assert!(std::fs::read_to_string(d.join("pushed-config.failed.toml"))
        .unwrap()
        .contains("max_calls = 4"));
    let (status, body) = peers::http_get(api_port, "/api/config", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["sip"]["max_calls"], 3, "back on version 3: {view:#}");
    // The fleet hears of it: once the restarted box is back on the broker,
    // version 4 is reported refused with the reason and version 3 in force
    // (and the retained push is not tried again).
    let report = admin
        .config_report("dev-a", Duration::from_secs(30), |v| {
            v["requested_version"] == 4 && v["status"] == "rejected"
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}; daemon log:\n{}",
                std::fs::read_to_string(&daemon.log).unwrap_or_default()
            )
        });
    assert_eq!(report["version"], 3, "{report:#}");
    assert!(
        report["errors"].to_string().contains("did not start"),
        "{report:#}"
    );
    assert!(
        report["errors"].to_string().contains("HTTP API"),
        "{report:#}"
    );
    drop(taken);

    let code = daemon.stop(Duration::from_secs(30));
    assert_eq!(code, Some(0), "daemon exit status");
}
