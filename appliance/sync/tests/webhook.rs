//! The webhook forwarder against a real HTTPS server on 127.0.0.1 (rustls,
//! a certificate from a CA made at test time), started by the harness in
//! `vb_sync::testing`: retries through failures, delivers each message once,
//! gives up on a 4xx and records it, and leaves the MQTT side alone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, Timestamp, Topic};
use vb_sync::testing::{make_ca, HttpsServer};
use vb_sync::webhook::{self, ForwardEvent, RawWebhook, WebhookConfig, FORWARDER};

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

fn webhook_config(dir: &Path, url: &str, timeout_s: u64) -> WebhookConfig {
    std::fs::write(dir.join("hook.secret"), "s3cret\n").unwrap();
    let raw: RawWebhook = toml::from_str(&format!(
        "url = \"{url}\"\nsecret_file = \"hook.secret\"\nca_file = \"ca.pem\"\ntimeout_s = {timeout_s}\nbackoff_max_s = 1\n"
    ))
    .unwrap();
    let mut problems = Vec::new();
    let c = raw.validate(dir, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    c.unwrap()
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    events: mpsc::Receiver<ForwardEvent>,
}

fn start(store: Arc<Store>, config: WebhookConfig) -> Running {
    let (tx, events) = mpsc::channel(1000);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(webhook::run(
        store,
        config,
        "dev-a".into(),
        Duration::from_millis(50),
        cancel.clone(),
        Some(tx),
    ));
    Running {
        cancel,
        task,
        events,
    }
}

impl Running {
    /// Waits until `n` messages are finished (delivered or given up).
    async fn finish(&mut self, n: usize, secs: u64) -> Vec<ForwardEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut all = Vec::new();
        let mut done = 0;
        while done < n {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    if !matches!(e, ForwardEvent::Retrying { .. }) {
                        done += 1;
                    }
                    all.push(e);
                }
                _ => panic!("only {done} of {n} messages finished within {secs} s: {all:?}"),
            }
        }
        all
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the forwarder stops")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_delivered_once_through_503s_and_a_429() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let server = HttpsServer::start(
        dir.path(),
        "ca",
        vec![503, 503, 503, 429, 200, 503],
        Duration::ZERO,
    );
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    for i in 0..10 {
        store.record_call(&call(i)).unwrap();
    }
    let expected: Vec<String> = store
        .forwarder_pending(FORWARDER, &[Topic::Leads, Topic::Calls], 100)
        .unwrap()
        .into_iter()
        .map(|m| m.msg_id)
        .collect();
    assert_eq!(expected.len(), 20);

    let mut fw = start(store.clone(), webhook_config(dir.path(), &server.url(), 5));
    let events = fw.finish(20, 60).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ForwardEvent::Retrying { .. }))
            .count(),
        5,
        "{events:?}"
    );
    // More work arriving later is picked up too.
    store.record_call(&call(10)).unwrap();
    fw.finish(2, 20).await;
    fw.stop().await;

    let requests = server.requests();
    let mut accepted: Vec<String> = Vec::new();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        assert_eq!(r.line, "POST /hook HTTP/1.1");
        assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
        assert!(r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")));
        let key = r
            .header("idempotency-key")
            .expect("an Idempotency-Key")
            .to_string();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], key.as_str());
        assert_eq!(body["device"], "dev-a");
        assert_eq!(body["message"]["id"], key.as_str());
        if r.status == 200 {
            *per_key.entry(key.clone()).or_default() += 1;
            accepted.push(key);
        }
    }
    // Exactly once, nothing lost, in outbox order.
    let mut all = expected.clone();
    all.extend(["call-0010:call".to_string(), "call-0010:lead".to_string()]);
    assert_eq!(accepted, all);
    assert!(per_key.values().all(|&n| n == 1), "{per_key:?}");
    // The first message was tried five times (4 failures, then 200) with the
    // same key.
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.header("idempotency-key") == Some(all[0].as_str()))
            .count(),
        5
    );
    assert!(store.forwarder_failures(FORWARDER, 10).unwrap().is_empty());
    assert!(store
        .forwarder_pending(FORWARDER, &[Topic::Leads, Topic::Calls], 10)
        .unwrap()
        .is_empty());
    // The MQTT side did not move: nothing was marked delivered.
    assert_eq!(store.outbox_depth().unwrap(), 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried_and_a_400_is_given_up_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    // First request: no answer for 3 s (the client gives up after 1 s);
    // second: 400 for the same message; then 200s.
    let server = HttpsServer::start(dir.path(), "ca", vec![0, 400], Duration::from_secs(3));
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    store.record_call(&call(1)).unwrap();
    store.record_call(&call(2)).unwrap();
    let mut fw = start(store.clone(), webhook_config(dir.path(), &server.url(), 1));
    let events = fw.finish(4, 30).await;
    fw.stop().await;
    assert!(
        matches!(&events[0], ForwardEvent::Retrying { msg_id, error } if msg_id == "call-0001:call" && error.contains("imeout")),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], ForwardEvent::GaveUp { msg_id, error } if msg_id == "call-0001:call" && error == "HTTP 400: scripted failure"),
        "{events:?}"
    );
    let failures = store.forwarder_failures(FORWARDER, 10).unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].msg_id, "call-0001:call");
    assert_eq!(failures[0].attempts, 2);
    assert_eq!(failures[0].error, "HTTP 400: scripted failure");
    let delivered: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(
        delivered,
        ["call-0001:lead", "call-0002:call", "call-0002:lead"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_retried_not_given_up() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "other");
    // The server's certificate comes from a CA the forwarder does not trust.
    let server = HttpsServer::start(dir.path(), "other", vec![], Duration::ZERO);
    let store = Arc::new(Store::open(&dir.path().join("box.db")).unwrap());
    store.record_call(&call(1)).unwrap();
    let mut fw = start(store.clone(), webhook_config(dir.path(), &server.url(), 2));
    let e = tokio::time::timeout(Duration::from_secs(20), fw.events.recv())
        .await
        .unwrap()
        .unwrap();
    fw.stop().await;
    assert!(
        matches!(&e, ForwardEvent::Retrying { error, .. } if error.to_lowercase().contains("certificate")),
        "{e:?}"
    );
    assert_eq!(store.forwarder_cursor(FORWARDER).unwrap(), 0);
    assert!(store.forwarder_failures(FORWARDER, 10).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_a_configured_webhook_even_while_the_broker_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    let server = HttpsServer::start(dir.path(), "ca", vec![503], Duration::ZERO);
    let db = dir.path().join("box.db");
    std::fs::write(dir.path().join("hook.secret"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("mqtt.secret"), "pw\n").unwrap();
    // Nothing listens on the broker's port.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("box.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sync]\ndevice_id = \"dev-a\"\nstore = \"box.db\"\nhost = \"127.0.0.1\"\nport = {dead_port}\n\
             ca_file = \"ca.pem\"\nusername = \"dev-a\"\npassword_file = \"mqtt.secret\"\n\
             backoff_max_s = 1\noutbox_poll_ms = 100\nmetrics_interval_s = 0\n\n\
             [sync.webhook]\nurl = \"{}\"\nsecret_file = \"hook.secret\"\nca_file = \"ca.pem\"\nbackoff_max_s = 1\ntopics = [\"leads\"]\n",
            server.url()
        ),
    )
    .unwrap();
    let config = vb_sync::SyncConfig::load(&cfg).unwrap();
    assert!(config.webhook.is_some());
    let store = Arc::new(Store::open(&db).unwrap());
    store.record_call(&call(1)).unwrap();
    store.record_call(&call(2)).unwrap();
    let (agent, _handle) =
        vb_sync::Agent::new(store.clone(), config, Arc::new(NoDevice), None).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent.run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !store
        .forwarder_pending(FORWARDER, &[Topic::Leads], 10)
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent's webhook did not deliver the leads"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the agent stops")
        .unwrap();
    // Only leads (the topics setting), the first after a 503.
    let accepted: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(accepted, ["call-0001:lead", "call-0002:lead"]);
    // Nothing went over MQTT.
    assert_eq!(store.outbox_depth().unwrap(), 4);
}

struct NoDevice;

impl vb_sync::Device for NoDevice {
    fn apply_config(&self, _: u64, _: &Value) -> Result<(), Vec<String>> {
        Err(vec!["not here".into()])
    }
    fn reload(&self) -> Result<Value, String> {
        Err("not here".into())
    }
    fn outbound_queue(&self, _: bool) -> Result<Value, String> {
        Err("not here".into())
    }
}
