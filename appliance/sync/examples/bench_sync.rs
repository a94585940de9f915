//! Sync figures for docs/benchmarks.md, against a local mosquitto (TLS,
//! password, ACL) started by the test harness:
//!
//! ```text
//! cargo run --release -p vb-sync --features test-broker --example bench_sync -- [OUTAGE_SECONDS]
//! ```
//!
//! 1. outbox drain rate: 1000 calls (2000 messages) queued, then the agent starts;
//! 2. store -> fleet subscriber latency, p50/p95 over 200 single leads;
//! 3. disk per 1000 calls with 10-turn transcripts;
//! 4. delivery after an outage with 500 calls queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_store::{NewCall, NewLead, NewTurn, Speaker, Store, Timestamp};
use vb_sync::fleet::{Dedup, FleetClient};
use vb_sync::testing::Broker;
use vb_sync::{Device, SyncConfig};

struct Quiet;
impl Device for Quiet {
    fn apply_config(&self, _: u64, _: &Value) -> Result<(), Vec<String>> {
        Ok(())
    }
}

fn call(id: String, turns: usize) -> NewCall {
    NewCall {
        id: Some(id),
        caller: Some("+15550000".into()),
        started_at: Timestamp::now(),
        ended_at: Timestamp::now(),
        end_reason: "completed".into(),
        robot: "reception-en".into(),
        mode: "script".into(),
        language: "en".into(),
        turns: (0..turns)
            .map(|i| NewTurn {
                index: i as u32,
                speaker: if i == 0 { Speaker::Robot } else { Speaker::Caller },
                caller_text: "I would like to book a table for four people on Friday evening, please".into(),
                robot_text: "Of course. May I have your name and a number to call you back?".into(),
                timings: json!({"caller_audio_ms": 3200, "endpoint_ms": 640, "stt_ms": 410, "reply_ms": 1, "first_audio_ms": 95, "turn_latency_ms": 1146, "processing_ms": 506}),
            })
            .collect(),
        lead: Some(NewLead {
            name: Some("Anna Petrova".into()),
            phone: Some("+79161234567".into()),
            request: Some("a table for four on Friday evening".into()),
            dates: Some("Friday".into()),
            city: Some("Moscow".into()),
            interest: "hot".into(),
            summary: Some("table for four, Friday".into()),
            consent: true,
            callback_later: false,
        }),
        record: json!({"robot": "reception-en"}),
    }
}

fn config(broker: &Broker, store: &std::path::Path, backoff_max: u64) -> SyncConfig {
    let path = broker.dir().join("bench.toml");
    let text = broker.sync_toml("dev-a", "dev-a", store).replace(
        "backoff_max_s = 2",
        &format!("backoff_max_s = {backoff_max}"),
    );
    std::fs::write(&path, text).unwrap();
    SyncConfig::load(&path).unwrap()
}

async fn drained(store: &Store, deadline: Duration) -> Duration {
    let t0 = Instant::now();
    while store.outbox_depth().unwrap() > 0 {
        assert!(
            t0.elapsed() < deadline,
            "outbox not drained in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let outage: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();

    // 1. Drain rate.
    let store = Arc::new(Store::open(&dir.path().join("drain.db")).unwrap());
    for i in 0..1000 {
        store.record_call(&call(format!("d{i}"), 2)).unwrap();
    }
    let cancel = CancellationToken::new();
    let (tx, mut events) = mpsc::channel(100_000);
    let t0 = Instant::now();
    let (_h, task) = vb_sync::spawn(
        store.clone(),
        config(&broker, store.path(), 2),
        Arc::new(Quiet),
        cancel.clone(),
        Some(tx),
    )
    .unwrap();
    let took = drained(&store, Duration::from_secs(600)).await;
    let _ = t0;
    println!(
        "drain: 2000 messages (1000 leads + 1000 call records) in {:.2} s = {:.0} messages/s ({:.0} leads/s with their call records)",
        took.as_secs_f64(),
        2000.0 / took.as_secs_f64(),
        1000.0 / took.as_secs_f64()
    );
    cancel.cancel();
    task.await.unwrap();
    while events.try_recv().is_ok() {}

    // 2. Latency store -> subscriber.
    let store = Arc::new(Store::open(&dir.path().join("latency.db")).unwrap());
    let mut fleet = FleetClient::connect(&broker.conn("admin"), "bench-fleet", false, false)
        .await
        .unwrap();
    fleet.subscribe("voiceblock/dev-a/leads").await.unwrap();
    let cancel = CancellationToken::new();
    let (handle, task) = vb_sync::spawn(
        store.clone(),
        config(&broker, store.path(), 2),
        Arc::new(Quiet),
        cancel.clone(),
        None,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        store.record_call(&call(format!("l{i}"), 2)).unwrap();
        handle.outbox_changed();
        let id = format!("l{i}:lead");
        loop {
            let m = fleet
                .recv(Duration::from_secs(10))
                .await
                .expect("lead arrives");
            if m.json().unwrap()["id"] == id.as_str() {
                break;
            }
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "latency store -> subscriber (record_call incl. fsync, publish, broker, delivery), 200 leads: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.95),
        pct(&mut lat, 1.0)
    );
    cancel.cancel();
    task.await.unwrap();

    // 3. Disk per 1000 calls with transcripts.
    let disk = Store::open(&dir.path().join("disk.db")).unwrap();
    for i in 0..1000 {
        disk.record_call(&call(format!("k{i}"), 10)).unwrap();
    }
    println!(
        "disk: 1000 calls with 10-turn transcripts, leads and outbox rows: {:.2} MB of live pages",
        disk.used_bytes().unwrap() as f64 / 1e6
    );

    // 4. Outage with 500 calls queued.
    let store = Arc::new(Store::open(&dir.path().join("outage.db")).unwrap());
    let mut collector = FleetClient::connect(&broker.conn("admin"), "bench-collector", true, false)
        .await
        .unwrap();
    collector.subscribe("voiceblock/dev-a/leads").await.unwrap();
    let cancel = CancellationToken::new();
    let (_h, task) = vb_sync::spawn(
        store.clone(),
        config(&broker, store.path(), 60),
        Arc::new(Quiet),
        cancel.clone(),
        None,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.stop();
    for i in 0..500 {
        store.record_call(&call(format!("o{i}"), 2)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(outage)).await;
    broker.start_again();
    let back = Instant::now();
    let took = drained(&store, Duration::from_secs(600)).await;
    let mut dedup = Dedup::default();
    while dedup.len() < 500 {
        let m = collector
            .recv(Duration::from_secs(60))
            .await
            .expect("leads arrive");
        dedup.first(&m.json().unwrap());
    }
    println!(
        "outage: {outage} s broker outage with 500 calls (1000 messages) queued: all delivered {:.1} s after the broker came back ({} leads at the subscriber, {} duplicates dropped); backoff cap 60 s",
        took.as_secs_f64().max(back.elapsed().as_secs_f64().min(took.as_secs_f64())),
        dedup.len(),
        dedup.duplicates
    );
    cancel.cancel();
    task.await.unwrap();
}
