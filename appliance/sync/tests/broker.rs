//! vb-sync against a real mosquitto 2.0 (TLS with a CA made at test time,
//! password file, per-device ACL), started by the harness in
//! `vb_sync::testing`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, Timestamp};
use vb_sync::fleet::{Dedup, FleetClient};
use vb_sync::testing::Broker;
use vb_sync::{Agent, AgentEvent, DesiredConfig, Device, SyncConfig, SyncError, SyncHandle};

/// The daemon side of the seam, for these tests: accepts configs that name a
/// robot, counts reloads.
#[derive(Default)]
struct TestDevice {
    applied: Mutex<Option<(u64, Value)>>,
    reloads: AtomicU32,
    validations: AtomicU32,
    outbound: Mutex<bool>,
    robots: Option<std::path::PathBuf>,
}

impl Device for TestDevice {
    fn apply_config(&self, version: u64, config: &Value) -> Result<(), Vec<String>> {
        self.validations.fetch_add(1, Ordering::SeqCst);
        let mut errors = Vec::new();
        if !config["robot"].is_string() {
            errors.push("robot: missing (a robot name is required)".to_string());
        }
        if let Some(t) = config.get("max_turns") {
            if !t.as_u64().is_some_and(|t| (1..=100).contains(&t)) {
                errors.push(format!("max_turns: {t} is not 1-100"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        *self.applied.lock().unwrap() = Some((version, config.clone()));
        Ok(())
    }
    fn reload(&self) -> Result<Value, String> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(json!({"reloaded": true}))
    }
    fn recent_logs(&self, lines: usize) -> Result<Vec<String>, String> {
        Ok((0..lines.min(3)).map(|i| format!("line {i}")).collect())
    }
    fn outbound_queue(&self, run: bool) -> Result<Value, String> {
        *self.outbound.lock().unwrap() = run;
        Ok(json!({ "running": run }))
    }
    fn health(&self) -> Value {
        json!({"ok": true})
    }
    fn metrics(&self) -> Value {
        json!({})
    }
    fn robots_dir(&self) -> Option<std::path::PathBuf> {
        self.robots.clone()
    }
}

fn call(i: usize) -> NewCall {
    NewCall {
        id: Some(format!("call-{i:04}")),
        caller: Some("+15550000".into()),
        started_at: Timestamp(1_700_000_000_000),
        ended_at: Timestamp(1_700_000_060_000),
        end_reason: "completed".into(),
        robot: "reception-en".into(),
        mode: "script".into(),
        language: "en".into(),
        turns: vec![NewTurn {
            index: 1,
            speaker: Speaker::Caller,
            caller_text: "a table for two".into(),
            robot_text: "your name?".into(),
            timings: json!({}),
        }],
        lead: Some(NewLead {
            name: Some(format!("Caller {i}")),
            phone: Some(format!("+1555{i:07}")),
            interest: "hot".into(),
            consent: true,
            ..Default::default()
        }),
        record: json!({"n": i}),
    }
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    events: mpsc::Receiver<AgentEvent>,
    handle: SyncHandle,
}

fn config(broker: &Broker, device: &str, user: &str, store: &std::path::Path) -> SyncConfig {
    let path = broker.dir().join(format!("{device}-{user}.toml"));
    std::fs::write(&path, broker.sync_toml(device, user, store)).unwrap();
    SyncConfig::load(&path).unwrap()
}

fn start(store: Arc<Store>, cfg: SyncConfig, device: Arc<dyn Device>) -> Running {
    let (tx, events) = mpsc::channel(10_000);
    let (agent, handle) = Agent::new(store, cfg, device, Some(tx)).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent.run(cancel.clone()));
    Running {
        cancel,
        task,
        events,
        handle,
    }
}

impl Running {
    async fn wait_for(
        &mut self,
        what: &str,
        secs: u64,
        pred: impl Fn(&AgentEvent) -> bool,
    ) -> AgentEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => {}
                _ => panic!("no {what} event within {secs} s"),
            }
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("agent stops")
            .unwrap();
    }
}

async fn admin(broker: &Broker, id: &str) -> FleetClient {
    FleetClient::connect(&broker.conn("admin"), id, false, false)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_leads_arrive_exactly_once_while_the_broker_restarts() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    // A persistent fleet subscriber: the broker queues for it while it, too,
    // is cut off by the restarts.
    let mut fleet = FleetClient::connect(&broker.conn("admin"), "fleet-collector", true, false)
        .await
        .unwrap();
    fleet.subscribe("voiceblock/+/leads").await.unwrap();
    fleet.subscribe("voiceblock/+/calls").await.unwrap();
    let cfg = config(&broker, "dev-a", "dev-a", store.path());
    let mut agent = start(store.clone(), cfg, Arc::new(TestDevice::default()));
    agent
        .wait_for("connected", 20, |e| {
            matches!(e, AgentEvent::Connected { .. })
        })
        .await;

    let mut dedup = Dedup::default();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut order = 0usize;
    let mut collect = |fleet_msgs: Vec<Value>, dedup: &mut Dedup| {
        for v in fleet_msgs {
            if dedup.first(&v) {
                first_seen.insert(v["id"].as_str().unwrap().to_string(), order);
                order += 1;
            }
        }
    };
    let mut stored = 0;
    let mut cut_with_work_queued = 0;
    for round in 0..5 {
        if round == 2 {
            // A longer outage, with leads stored while the broker is away.
            broker.stop();
        }
        // The 40 are stored before the agent is told, so the cut below
        // finds work queued however fast this machine drains (told after
        // each one, a quick drain kept up with the writes).
        for _ in 0..40 {
            let s = store.clone();
            let i = stored;
            tokio::task::spawn_blocking(move || s.record_call(&call(i)).unwrap())
                .await
                .unwrap();
            stored += 1;
        }
        agent.handle.outbox_changed();
        if round == 2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            broker.start_again();
        }
        // Let a little flow, then cut the connection under the drain.
        tokio::time::sleep(Duration::from_millis(50 * round as u64)).await;
        if store.outbox_depth().unwrap() > 0 {
            cut_with_work_queued += 1;
        }
        broker.restart();
        // The box comes back on its own before the next cut.
        agent
            .wait_for("reconnect", 30, |e| {
                matches!(e, AgentEvent::Connected { .. })
            })
            .await;
        let mut got = Vec::new();
        while let Some(m) = fleet.recv(Duration::from_millis(100)).await {
            got.push(m.json().unwrap());
        }
        collect(got, &mut dedup);
    }
    assert!(
        cut_with_work_queued >= 3,
        "the broker went down with messages queued only {cut_with_work_queued} times"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while dedup.len() < 400 && tokio::time::Instant::now() < deadline {
        if let Some(m) = fleet.recv(Duration::from_secs(1)).await {
            collect(vec![m.json().unwrap()], &mut dedup);
        }
    }
    assert_eq!(
        dedup.len(),
        400,
        "every lead and call record arrives (got {})",
        dedup.len()
    );
    for i in 0..200 {
        let call = first_seen
            .get(&format!("call-{i:04}:call"))
            .expect("call record");
        let lead = first_seen.get(&format!("call-{i:04}:lead")).expect("lead");
        assert!(
            call < lead,
            "call-{i:04}: its call record arrived after its lead"
        );
    }
    eprintln!("duplicates dropped by the fleet side: {}", dedup.duplicates);
    // Every row is marked delivered (PUBACK came back for each).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.outbox_depth().unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox still holds {}",
            store.outbox_depth().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_write_or_read_another_devices_topics_and_says_so() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    store.record_call(&call(1)).unwrap();
    // Misconfigured box: device id dev-b, credentials of dev-a.
    let cfg = config(&broker, "dev-b", "dev-a", store.path());
    let mut agent = start(store.clone(), cfg, Arc::new(TestDevice::default()));
    let e = agent
        .wait_for("publish refused", 20, |e| {
            matches!(e, AgentEvent::PublishRefused { .. })
        })
        .await;
    let AgentEvent::PublishRefused { message, .. } = e else {
        unreachable!()
    };
    assert!(message.contains("voiceblock/dev-b/calls"), "{message}");
    assert!(message.contains("code 135"), "{message}");
    assert!(
        message.contains("device id must equal the MQTT user name"),
        "{message}"
    );
    agent.stop().await;
    let (delivered, attempts) = store.message_state("call-0001:call").unwrap().unwrap();
    assert!(
        !delivered && attempts >= 1,
        "the refused message stays queued"
    );
    assert_eq!(store.outbox_depth().unwrap(), 2);

    // Reading: dev-a subscribes to dev-b's tree and to a topic of its own.
    let mut a = FleetClient::connect(&broker.conn("dev-a"), "dev-a-reader", false, false)
        .await
        .unwrap();
    a.subscribe("voiceblock/dev-b/#").await.ok(); // mosquitto grants it but delivers nothing
    a.subscribe("voiceblock/dev-a/probe").await.unwrap();
    let mut adm = admin(&broker, "admin-writer").await;
    adm.publish(
        "voiceblock/dev-b/leads",
        b"{\"id\":\"secret\"}".to_vec(),
        false,
    )
    .await
    .unwrap();
    adm.publish("voiceblock/dev-a/probe", b"marker".to_vec(), false)
        .await
        .unwrap();
    let m = a
        .recv(Duration::from_secs(10))
        .await
        .expect("the marker arrives");
    assert_eq!(
        m.topic, "voiceblock/dev-a/probe",
        "dev-a read {} of dev-b",
        m.topic
    );
    // Writing directly into dev-b's tree is refused with 135.
    let err = a
        .publish("voiceblock/dev-b/leads", b"{}".to_vec(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::PublishRefused { code: 135, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_wrong_password_and_anonymous_are_refused_clearly() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let good = config(&broker, "dev-a", "dev-a", &dir.path().join("box.db"));
    Agent::probe(&good)
        .await
        .expect("the right settings connect");

    let mut wrong_ca = good.clone();
    wrong_ca.broker.ca_file = broker.dir().join("other-ca.pem");
    wrong_ca.broker.ca_pem = std::fs::read(&wrong_ca.broker.ca_file).unwrap();
    let e = Agent::probe(&wrong_ca).await.unwrap_err();
    assert!(matches!(e, SyncError::UntrustedServer { .. }), "{e}");
    assert!(e.to_string().contains("not trusted by the CA in"), "{e}");
    assert!(e.needs_operator());

    let mut wrong_pw = good.clone();
    wrong_pw.broker.password = Some("not-the-password".into());
    let e = Agent::probe(&wrong_pw).await.unwrap_err();
    assert!(matches!(e, SyncError::BadCredentials { .. }), "{e}");
    assert!(e.to_string().contains("wrong user name or password"), "{e}");

    let mut anon = good.clone();
    anon.broker.username = None;
    anon.broker.password = None;
    let e = Agent::probe(&anon).await.unwrap_err();
    assert!(matches!(e, SyncError::AnonymousRefused { .. }), "{e}");

    // The running agent reports the same and keeps trying.
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let mut agent = start(store, wrong_pw, Arc::new(TestDevice::default()));
    let ev = agent
        .wait_for("connection failed", 20, |e| {
            matches!(e, AgentEvent::ConnectionFailed { .. })
        })
        .await;
    assert!(
        matches!(&ev, AgentEvent::ConnectionFailed { message, needs_operator: true } if message.contains("wrong user name or password")),
        "{ev:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_pushes_are_validated_and_a_bad_one_keeps_the_old_config() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let device = Arc::new(TestDevice::default());
    let cfg = config(&broker, "dev-a", "dev-a", store.path());
    let mut agent = start(store.clone(), cfg, device.clone());
    agent
        .wait_for("connected", 20, |e| {
            matches!(e, AgentEvent::Connected { .. })
        })
        .await;
    let mut adm = admin(&broker, "admin-config").await;
    let devices = vec!["dev-a".to_string()];
    let wait = Duration::from_secs(20);

    let good = DesiredConfig {
        version: 1,
        config: json!({"robot": "reception-en"}),
    };
    let r = adm.push_config(&devices, &good, wait).await.unwrap();
    assert_eq!(r[0].1["status"], "applied", "{r:?}");
    assert_eq!(r[0].1["version"], 1);

    // Invalid content: the device's own validation, all errors listed.
    let bad = DesiredConfig {
        version: 2,
        config: json!({"max_turns": 0}),
    };
    let r = adm.push_config(&devices, &bad, wait).await.unwrap();
    assert_eq!(r[0].1["status"], "rejected", "{r:?}");
    assert_eq!(r[0].1["version"], 1, "the old config stays in force");
    assert_eq!(r[0].1["errors"].as_array().unwrap().len(), 2, "{r:?}");
    // The same push again (as the retained one comes back at a reconnect):
    // refused as before, without a second try (and not recorded twice).
    let r = adm.push_config(&devices, &bad, wait).await.unwrap();
    assert_eq!(r[0].1["status"], "rejected", "{r:?}");
    assert_eq!(r[0].1["errors"].as_array().unwrap().len(), 2, "{r:?}");
    assert_eq!(
        device.validations.load(Ordering::SeqCst),
        2,
        "not validated again"
    );

    // Malformed JSON.
    let r = adm
        .push_raw(
            &devices,
            b"{\"version\": 3, \"config\": {".to_vec(),
            None,
            wait,
        )
        .await
        .unwrap();
    assert_eq!(r[0].1["status"], "rejected");
    assert!(
        r[0].1["errors"][0]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{r:?}"
    );
    assert_eq!(r[0].1["version"], 1);

    // Oversized: the reply names the limit.
    let mut big = json!({"version": 4, "config": {"robot": "x", "pad": "p".repeat(70_000)}})
        .to_string()
        .into_bytes();
    big.truncate(big.len());
    let r = adm.push_raw(&devices, big, None, wait).await.unwrap();
    assert_eq!(r[0].1["status"], "rejected");
    assert!(
        r[0].1["errors"][0]
            .as_str()
            .unwrap()
            .contains("the limit is 65536"),
        "{r:?}"
    );
    assert_eq!(r[0].1["version"], 1);

    // An older version than the one in force.
    let stale = DesiredConfig {
        version: 1,
        config: json!({"robot": "other"}),
    };
    let r = adm.push_config(&devices, &stale, wait).await.unwrap();
    assert_eq!(
        r[0].1["status"], "applied",
        "the same version is reported as in force: {r:?}"
    );
    let applied = device.applied.lock().unwrap().clone().unwrap();
    assert_eq!(
        applied,
        (1, json!({"robot": "reception-en"})),
        "nothing changed"
    );
    let current = store.current_config().unwrap().unwrap();
    assert_eq!(current.version, 1);
    assert_eq!(store.config_history(10).unwrap().len(), 4);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_replies_and_bad_ones_change_nothing() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let device = Arc::new(TestDevice::default());
    let cfg = config(&broker, "dev-a", "dev-a", store.path());
    let mut agent = start(store, cfg, device.clone());
    agent
        .wait_for("connected", 20, |e| {
            matches!(e, AgentEvent::Connected { .. })
        })
        .await;
    let mut adm = admin(&broker, "admin-cmd").await;
    let wait = Duration::from_secs(20);

    let r = adm
        .command("dev-a", &json!({"command": "reload"}), wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], true, "{r}");
    let r = adm
        .command("dev-a", &json!({"command": "logs", "lines": 2}), wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["result"]["lines"], json!(["line 0", "line 1"]));
    let r = adm
        .command(
            "dev-a",
            &json!({"command": "outbound", "action": "start"}),
            wait,
        )
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], true);

    let r = adm
        .command("dev-a", &json!({"command": "format_disk"}), wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], false);
    assert!(
        r["reply"]["error"]
            .as_str()
            .unwrap()
            .contains("unknown variant `format_disk`"),
        "{r}"
    );
    let r = adm
        .command("dev-a", &json!({"command": "logs", "lines": 5000}), wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["error"], "logs: lines is 5000, allowed 1-1000");
    let r = adm
        .command(
            "dev-a",
            &json!({"command": "outbound", "action": "sideways"}),
            wait,
        )
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], false);
    let r = adm
        .command("dev-a", &json!({"command": "reload", "force": true}), wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], false);

    assert_eq!(
        device.reloads.load(Ordering::SeqCst),
        1,
        "bad commands ran nothing"
    );
    assert!(*device.outbound.lock().unwrap());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_retained_online_then_offline() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let cfg = config(&broker, "dev-a", "dev-a", store.path());
    let mut agent = start(store, cfg, Arc::new(TestDevice::default()));
    agent
        .wait_for("connected", 20, |e| {
            matches!(e, AgentEvent::Connected { .. })
        })
        .await;
    let mut adm = admin(&broker, "admin-status").await;
    // Retained status may trail CONNACK by a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = adm.devices().await.unwrap();
        if d.iter().any(|s| s.device == "dev-a" && s.state == "online") {
            assert_eq!(d[0].health["ok"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;
    let mut adm = admin(&broker, "admin-status-2").await;
    let d = adm.devices().await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].state, "offline", "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enforces_retention_but_keeps_undelivered_calls() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    for i in 0..5 {
        store.record_call(&call(i)).unwrap();
    }
    for i in 0..3 {
        store.mark_delivered(&format!("call-{i:04}:call")).unwrap();
        store.mark_delivered(&format!("call-{i:04}:lead")).unwrap();
    }
    // The ACL refuses everything this box sends (device id != user), so the
    // last two calls stay undelivered for the whole test.
    let path = broker.dir().join("retention.toml");
    let text = broker.sync_toml("dev-b", "dev-a", store.path()) + "retention_max_calls = 1\n";
    std::fs::write(&path, text).unwrap();
    let cfg = SyncConfig::load(&path).unwrap();
    let agent = start(store.clone(), cfg, Arc::new(TestDevice::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<String> = store
            .recent_calls(10)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if ids.len() == 2 {
            assert_eq!(
                ids,
                ["call-0004", "call-0003"],
                "the undelivered calls are the ones kept"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not run: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.outbox_depth().unwrap(), 4);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_robot_arrives_installed_and_a_bad_one_changes_nothing() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let robots = dir.path().join("robots");
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    let device = Arc::new(TestDevice {
        robots: Some(robots.clone()),
        ..Default::default()
    });
    let cfg = config(&broker, "dev-a", "dev-a", store.path());
    let mut agent = start(store, cfg, device.clone());
    agent
        .wait_for("connected", 20, |e| {
            matches!(e, AgentEvent::Connected { .. })
        })
        .await;
    let mut adm = admin(&broker, "admin-robot").await;
    let wait = Duration::from_secs(30);

    // The shipped English robot plus 3 MiB of incompressible audio: the push
    // is far over the 1 MiB a plain MQTT message gets here, as real robots
    // with recorded phrases are.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("audio")).unwrap();
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots/reception-en");
    for f in ["robot.toml", "prompt.md"] {
        std::fs::copy(shipped.join(f), src.join(f)).unwrap();
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(src.join("audio/noise.bin"), &noise).unwrap();
    let archive = vb_sync::robot_update::pack(&src).unwrap();
    assert!(archive.len() > 3 * 1024 * 1024);

    let r = adm
        .push_robot("dev-a", "front-desk", &archive, wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], true, "{r}");
    assert_eq!(
        r["reply"]["result"]["robot"]["robot"], "reception-en",
        "{r}"
    );
    assert_eq!(
        std::fs::read(robots.join("front-desk/audio/noise.bin")).unwrap(),
        noise
    );
    assert!(vb_dialog::Robot::load(&robots.join("front-desk")).is_ok());
    agent
        .wait_for("robot update", 10, |e| {
            matches!(e, AgentEvent::RobotUpdate { ok: true, .. })
        })
        .await;

    // A wrong checksum: refused with the reason, the installed robot stays.
    let t = vb_sync::Topics::new("dev-a");
    let reply_topic = t.robot_reply("bad-sum");
    adm.subscribe(&reply_topic).await.unwrap();
    let mut msg: Value =
        serde_json::from_slice(&vb_sync::robot_update::push_message("front-desk", b"other"))
            .unwrap();
    msg["sha256"] = json!(vb_sync::robot_update::sha256_hex(b"something else"));
    adm.publish(&t.robot("bad-sum"), msg.to_string().into_bytes(), false)
        .await
        .unwrap();
    let m = loop {
        let m = adm.recv(wait).await.expect("a reply to the bad push");
        if m.topic == reply_topic {
            break m.json().unwrap();
        }
    };
    assert_eq!(m["reply"]["ok"], false, "{m}");
    assert!(
        m["reply"]["error"]
            .as_str()
            .unwrap()
            .starts_with("sha256 mismatch"),
        "{m}"
    );
    assert_eq!(
        std::fs::read(robots.join("front-desk/audio/noise.bin")).unwrap(),
        noise
    );

    // A path-traversal entry: refused with the entry named, nothing written.
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..13].copy_from_slice(b"../escaped.sh");
    h.set_size(3);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"hi\n"[..]).unwrap();
    let evil = b.into_inner().unwrap().finish().unwrap();
    let r = adm
        .push_robot("dev-a", "front-desk", &evil, wait)
        .await
        .unwrap();
    assert_eq!(r["reply"]["ok"], false, "{r}");
    assert_eq!(
        r["reply"]["error"], "archive entry \"../escaped.sh\" refused: path traversal ('..')",
        "{r}"
    );
    assert!(!robots.join("escaped.sh").exists());
    assert!(!dir.path().join("escaped.sh").exists());
    assert_eq!(
        std::fs::read(robots.join("front-desk/audio/noise.bin")).unwrap(),
        noise
    );
    agent.stop().await;
}
