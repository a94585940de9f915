//! `voiceblock run` on a provisioned box: the config written by `voiceblock
//! provision` drives the SIP account, the store and fleet sync; a call the
//! daemon answers is kept in the store and reaches a fleet subscriber on a
//! real mosquitto (TLS, ACLs) through the outbox; the fleet sees the daemon's
//! health in its retained status. The caller is a second `voiceblock`
//! placing a call (`voiceblock call`), so both ends run the real models.

mod peers;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vb_store::Store;
use vb_sync::fleet::FleetClient;
use vb_sync::testing::Broker;

fn provision(d: &Path, broker: &Broker, sip_port: u16) {
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
        .args(["--robot", "reception-en"])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_by_run_reaches_the_fleet_from_the_store() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let box_port = peers::free_port_pair();
    provision(d, &broker, box_port);

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

    // Another box calls this one and hangs up after 12 s.
    let caller_port = peers::free_port_pair();
    let caller_rtp = peers::free_port_pair();
    let mut caller = peers::voiceblock(
        "voiceblock-call",
        &[
            "call".into(),
            format!("sip:robot@127.0.0.1:{box_port}"),
            "--listen".into(),
            format!("127.0.0.1:{caller_port}"),
            "--user".into(),
            "caller".into(),
            "--rtp-ports".into(),
            format!("{caller_rtp}-{}", caller_rtp + 9),
            "--max-duration".into(),
            "12".into(),
            "--records".into(),
            d.join("caller-calls").display().to_string(),
            "--db".into(),
            d.join("caller.db").display().to_string(),
        ],
        d,
    );
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

    let code = daemon.stop(Duration::from_secs(30));
    assert_eq!(code, Some(0), "daemon exit status");
}
