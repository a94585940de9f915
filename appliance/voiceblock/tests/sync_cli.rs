//! `voiceblock sync`, `leads export` and `fleet` as processes, against a real
//! mosquitto: the power-loss case (kill -9 right after a lead is stored,
//! before its PUBACK) and the export formats.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use vb_store::{NewCall, NewLead, Store, Timestamp};
use vb_sync::fleet::{Dedup, FleetClient};
use vb_sync::testing::Broker;

const BIN: &str = env!("CARGO_BIN_EXE_voiceblock");

fn call(id: &str) -> NewCall {
    NewCall {
        id: Some(id.into()),
        caller: Some("+15550000".into()),
        started_at: Timestamp(1_700_000_000_000),
        ended_at: Timestamp(1_700_000_060_000),
        end_reason: "completed".into(),
        robot: "reception-en".into(),
        mode: "script".into(),
        language: "en".into(),
        turns: vec![],
        lead: Some(NewLead {
            name: Some("Ann, \"Annie\"".into()),
            phone: Some("+15551234567".into()),
            interest: "hot".into(),
            consent: true,
            ..Default::default()
        }),
        record: json!({}),
    }
}

fn start_sync(config: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["--log", "info", "sync", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start voiceblock sync")
}

async fn wait_state(fleet: &mut FleetClient, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = fleet.devices().await.unwrap();
        if d.iter().any(|s| s.device == "dev-a" && s.state == state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dev-a never became {state}: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_stored_before_a_power_cut_is_delivered_once_after_restart() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("box.db");
    let cfg = dir.path().join("sync.toml");
    std::fs::write(&cfg, broker.sync_toml("dev-a", "dev-a", &db)).unwrap();
    let log = dir.path().join("sync.log");

    let mut collector = FleetClient::connect(&broker.conn("admin"), "collector", true, false)
        .await
        .unwrap();
    collector.subscribe("voiceblock/dev-a/leads").await.unwrap();
    let mut admin = FleetClient::connect(&broker.conn("admin"), "admin-cli", false, false)
        .await
        .unwrap();

    let mut sync = start_sync(&cfg, &log);
    wait_state(&mut admin, "online").await;

    // The broker stops answering: the box can publish but no PUBACK comes.
    broker.freeze();
    let store = Store::open(&db).unwrap();
    store.record_call(&call("power-cut")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (delivered, attempts) = store.message_state("power-cut:lead").unwrap().unwrap();
        assert!(!delivered, "no PUBACK can have come from a frozen broker");
        if attempts >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never tried to send the lead"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Power cut.
    sync.kill().unwrap();
    sync.wait().unwrap();
    broker.thaw();
    assert_eq!(
        store.message_state("power-cut:lead").unwrap(),
        Some((false, 1))
    );
    // The broker fires the last will.
    wait_state(&mut admin, "offline").await;

    let mut sync = start_sync(&cfg, &log);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.message_state("power-cut:lead").unwrap() != Some((true, 2)) {
        let state = store.message_state("power-cut:lead").unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered after restart: {state:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything the box sent has reached the broker; a marker after it
    // closes the collection.
    admin
        .publish(
            "voiceblock/dev-a/leads",
            br#"{"id":"marker"}"#.to_vec(),
            false,
        )
        .await
        .unwrap();
    let mut dedup = Dedup::default();
    let mut raw = 0;
    loop {
        let m = collector
            .recv(Duration::from_secs(20))
            .await
            .expect("the marker arrives");
        let v = m.json().unwrap();
        if v["id"] == "marker" {
            break;
        }
        assert_eq!(v["id"], "power-cut:lead");
        assert_eq!(v["lead"]["phone"], "+15551234567");
        raw += 1;
        dedup.first(&v);
    }
    assert!(raw >= 1, "the lead never arrived");
    assert_eq!(dedup.len(), 1, "exactly one lead after de-duplication");
    eprintln!("copies received: {raw} (duplicates are dropped by id)");

    // SIGTERM: a clean stop says offline itself.
    Command::new("kill")
        .args(["-TERM", &sync.id().to_string()])
        .status()
        .unwrap();
    let status = sync.wait().unwrap();
    assert!(
        status.success(),
        "voiceblock sync exits 0 on SIGTERM: {status}"
    );
    wait_state(&mut admin, "offline").await;
}

#[test]
fn leads_export_writes_csv_and_json_and_filters_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("box.db");
    let store = Store::open(&db).unwrap();
    store.record_call(&call("c1")).unwrap();
    store.mark_delivered("c1:lead").unwrap();
    drop(store);

    let out = Command::new(BIN)
        .args(["leads", "export", "--csv", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("call_id,stored_at,caller,robot,name,phone"));
    assert!(lines[1].starts_with("c1,"), "{text}");
    assert!(lines[1].contains("\"Ann, \"\"Annie\"\"\""), "{text}");
    assert!(lines[1].ends_with(",hot,,true,false,true"), "{text}");

    let out = Command::new(BIN)
        .args(["leads", "export", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["call_id"], "c1");
    assert_eq!(v[0]["delivered"], true);

    let out = Command::new(BIN)
        .args([
            "leads",
            "export",
            "--json",
            "--since",
            "2999-01-01T00:00:00Z",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!([]));

    let out = Command::new(BIN)
        .args(["leads", "export", "--csv", "--since", "yesterday", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--since \"yesterday\" is not an RFC 3339 time"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["leads", "export", "--csv", "--db"])
        .arg(dir.path().join("missing.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_push_robot_installs_a_folder_on_the_box() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("box.db");
    let cfg = dir.path().join("sync.toml");
    std::fs::write(&cfg, broker.sync_toml("dev-a", "dev-a", &db)).unwrap();
    let fleet_cfg = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet_cfg,
        format!(
            "[fleet]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\nusername = \"admin\"\npassword_file = \"{}\"\n",
            broker.port,
            broker.dir().join("ca.pem").display(),
            broker.dir().join("admin.secret").display(),
        ),
    )
    .unwrap();
    let robots = dir.path().join("robots");
    let log = dir.path().join("sync.log");
    let mut sync = Command::new(BIN)
        .args(["--log", "info", "sync", "--config"])
        .arg(&cfg)
        .arg("--robots-dir")
        .arg(&robots)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start voiceblock sync");
    let mut admin = FleetClient::connect(&broker.conn("admin"), "admin-robot", false, false)
        .await
        .unwrap();
    wait_state(&mut admin, "online").await;

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots/reception-en");
    let (fc, sh) = (fleet_cfg.clone(), shipped.clone());
    let push = move |name: &str| {
        Command::new(BIN)
            .arg("fleet")
            .arg("--config")
            .arg(&fc)
            .args([
                "push-robot",
                "--device",
                "dev-a",
                "--name",
                name,
                "--timeout",
                "30",
            ])
            .arg(&sh)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(move || push("front-desk"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "push-robot failed: {stdout}\n{}\nsync log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    assert_eq!(
        std::fs::read(robots.join("front-desk/robot.toml")).unwrap(),
        std::fs::read(shipped.join("robot.toml")).unwrap()
    );

    // A folder that is not a robot is stopped on the operator's side.
    let bad = dir.path().join("not-a-robot");
    std::fs::create_dir(&bad).unwrap();
    let out = Command::new(BIN)
        .arg("fleet")
        .arg("--config")
        .arg(&fleet_cfg)
        .args(["push-robot", "--device", "dev-a"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a valid robot"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    Command::new("kill")
        .args(["-TERM", &sync.id().to_string()])
        .status()
        .unwrap();
    sync.wait().unwrap();
}
