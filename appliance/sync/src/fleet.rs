//! The fleet side: an operator's MQTT client with admin credentials. Lists
//! devices from their retained status, tails leads (de-duplicated by id),
//! pushes configs and waits for the devices' reports, sends commands and
//! robot updates and waits for the reply.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::BrokerConn;
use crate::error::SyncError;
use crate::remote::DesiredConfig;
use crate::tls;
use crate::topics::{self, Topics, ROOT};

/// A message received by the fleet client.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// It was a retained message.
    pub retain: bool,
    publish: Publish,
}

impl Message {
    /// The payload as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

enum Ack {
    Sub(Vec<SubscribeReasonCode>),
    Pub(PubAckReason),
}

/// Messages buffered between the connection task and the caller. Full
/// policy: the connection task waits (back-pressure to the broker, which
/// queues for our session), so nothing is dropped.
const INBOX: usize = 1024;

/// An admin connection.
pub struct FleetClient {
    client: AsyncClient,
    inbox: mpsc::Receiver<Message>,
    acks: mpsc::Receiver<Ack>,
    manual_acks: bool,
    conn: BrokerConn,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FleetClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One device as its retained status shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceStatus {
    /// Device id.
    pub device: String,
    /// `online` or `offline`.
    pub state: String,
    /// Firmware version.
    pub version: Option<String>,
    /// Since when.
    pub since: Option<String>,
    /// Health as the device reports it.
    pub health: Value,
}

const WAIT: Duration = Duration::from_secs(10);

impl FleetClient {
    /// Connects as `client_id`. `persistent` keeps the session (and queued
    /// messages) across runs; `manual_acks` leaves each QoS 1 message
    /// unacknowledged until [`FleetClient::ack`] (so a crash before it is
    /// saved makes the broker send it again).
    pub async fn connect(
        conn: &BrokerConn,
        client_id: &str,
        persistent: bool,
        manual_acks: bool,
    ) -> Result<FleetClient, SyncError> {
        tls::install_crypto_provider();
        let tls = Arc::new(tls::client_config(conn).map_err(SyncError::TlsSetup)?);
        let mut o = tls::mqtt_options(conn, client_id, tls);
        o.set_clean_start(!persistent);
        if persistent {
            o.set_session_expiry_interval(Some(crate::agent::SESSION_EXPIRY_S));
        }
        o.set_manual_acks(manual_acks);
        let (client, mut el) = AsyncClient::new(o, 256);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(SyncError::from_connect(conn, e)),
            }
        }
        let (tx, inbox) = mpsc::channel(INBOX);
        let (atx, acks) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let m = Message {
                            topic: String::from_utf8_lossy(&p.topic).to_string(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            publish: p,
                        };
                        if tx.send(m).await.is_err() {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        let _ = atx.send(Ack::Sub(s.return_codes)).await;
                    }
                    Ok(Event::Incoming(Packet::PubAck(a))) => {
                        let _ = atx.send(Ack::Pub(a.reason)).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet: connection lost, reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(FleetClient {
            client,
            inbox,
            acks,
            manual_acks,
            conn: conn.clone(),
            task,
        })
    }

    /// Subscribes (QoS 1) and waits for the broker's answer.
    pub async fn subscribe(&mut self, filter: &str) -> Result<(), SyncError> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|_| SyncError::ClientGone)?;
        loop {
            match tokio::time::timeout(WAIT, self.acks.recv()).await {
                Ok(Some(Ack::Sub(codes))) => {
                    return match codes.first() {
                        Some(SubscribeReasonCode::Success(_)) => Ok(()),
                        other => Err(SyncError::SubscribeRefused {
                            filter: filter.into(),
                            reason: format!("{other:?}"),
                        }),
                    }
                }
                Ok(Some(Ack::Pub(_))) => {}
                Ok(None) => return Err(SyncError::ClientGone),
                Err(_) => {
                    return Err(SyncError::NoAnswer {
                        topic: filter.into(),
                        secs: WAIT.as_secs(),
                    })
                }
            }
        }
    }

    /// Publishes (QoS 1) and waits for PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), SyncError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|_| SyncError::ClientGone)?;
        loop {
            match tokio::time::timeout(WAIT, self.acks.recv()).await {
                Ok(Some(Ack::Pub(reason))) => {
                    return match reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        r => Err(SyncError::PublishRefused {
                            topic: topic.into(),
                            reason: format!("{r:?}"),
                            code: if r == PubAckReason::NotAuthorized {
                                135
                            } else {
                                128
                            },
                        }),
                    }
                }
                Ok(Some(Ack::Sub(_))) => {}
                Ok(None) => return Err(SyncError::ClientGone),
                Err(_) => {
                    return Err(SyncError::NoAnswer {
                        topic: topic.into(),
                        secs: WAIT.as_secs(),
                    })
                }
            }
        }
    }

    /// The next message, or `None` after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// Acknowledges a message (with `manual_acks`).
    pub async fn ack(&self, m: &Message) -> Result<(), SyncError> {
        if self.manual_acks {
            self.client
                .ack(&m.publish)
                .await
                .map_err(|_| SyncError::ClientGone)?;
        }
        Ok(())
    }

    /// Devices from their retained status. A marker message published after
    /// the subscription tells when every retained status has arrived.
    pub async fn devices(&mut self) -> Result<Vec<DeviceStatus>, SyncError> {
        let marker = format!("{ROOT}/_fleet/{}", uuid::Uuid::new_v4());
        self.subscribe(&format!("{ROOT}/+/status")).await?;
        self.subscribe(&marker).await?;
        self.publish(&marker, b"end".to_vec(), false).await?;
        let mut out = Vec::new();
        while let Some(m) = self.recv(WAIT).await {
            self.ack(&m).await?;
            if m.topic == marker {
                out.sort_by(|a: &DeviceStatus, b| a.device.cmp(&b.device));
                return Ok(out);
            }
            let Some((device, "status")) = topics::split(&m.topic) else {
                continue;
            };
            let v = m.json().unwrap_or(Value::Null);
            out.push(DeviceStatus {
                device: device.to_string(),
                state: v["state"].as_str().unwrap_or("unknown").to_string(),
                version: v["version"].as_str().map(str::to_string),
                since: v["since"].as_str().map(str::to_string),
                health: v["health"].clone(),
            });
        }
        Err(SyncError::NoAnswer {
            topic: marker,
            secs: WAIT.as_secs(),
        })
    }

    /// Sends a command and waits for the device's reply.
    pub async fn command(
        &mut self,
        device: &str,
        command: &Value,
        timeout: Duration,
    ) -> Result<Value, SyncError> {
        let t = Topics::new(device);
        let id = uuid::Uuid::new_v4().to_string();
        let reply = t.cmd_reply(&id);
        self.subscribe(&reply).await?;
        self.publish(&t.cmd(&id), command.to_string().into_bytes(), false)
            .await?;
        self.wait_for(&reply, timeout, |_| true).await
    }

    /// Sends a robot folder's archive (a tar.gz, see
    /// [`crate::robot_update::pack`]) to `device` as `name`, and waits for
    /// the reply: `{"ok": true, "result": ...}` or `{"ok": false, "error": ...}`
    /// (inside the reply envelope, under `"reply"`).
    pub async fn push_robot(
        &mut self,
        device: &str,
        name: &str,
        archive: &[u8],
        timeout: Duration,
    ) -> Result<Value, SyncError> {
        let t = Topics::new(device);
        let id = uuid::Uuid::new_v4().to_string();
        let reply = t.robot_reply(&id);
        self.subscribe(&reply).await?;
        self.publish(
            &t.robot(&id),
            crate::robot_update::push_message(name, archive),
            false,
        )
        .await?;
        self.wait_for(&reply, timeout, |_| true).await
    }

    /// Pushes a config (retained) to each device and waits for each report
    /// naming this version. Returns the reports in the order of `devices`.
    pub async fn push_config(
        &mut self,
        devices: &[String],
        desired: &DesiredConfig,
        timeout: Duration,
    ) -> Result<Vec<(String, Value)>, SyncError> {
        self.push_raw(
            devices,
            serde_json::to_vec(desired).unwrap_or_default(),
            Some(desired.version),
            timeout,
        )
        .await
    }

    /// Pushes raw bytes as a config (for tests of malformed pushes); waits
    /// for a report whose `requested_version` is `version` (or any report
    /// newer than the push when `None`).
    pub async fn push_raw(
        &mut self,
        devices: &[String],
        payload: Vec<u8>,
        version: Option<u64>,
        timeout: Duration,
    ) -> Result<Vec<(String, Value)>, SyncError> {
        let mut out = Vec::new();
        for d in devices {
            let t = Topics::new(d);
            let reported = t.config_reported();
            self.subscribe(&reported).await?;
            // The retained report from before the push arrives first; skip it.
            let marker = format!("{ROOT}/_fleet/{}", uuid::Uuid::new_v4());
            self.subscribe(&marker).await?;
            self.publish(&marker, b"end".to_vec(), false).await?;
            loop {
                match self.recv(WAIT).await {
                    Some(m) if m.topic == marker => break,
                    Some(m) => self.ack(&m).await?,
                    None => {
                        return Err(SyncError::NoAnswer {
                            topic: marker,
                            secs: WAIT.as_secs(),
                        })
                    }
                }
            }
            self.publish(&t.config_desired(), payload.clone(), true)
                .await?;
            let r = self
                .wait_for(&reported, timeout, |v| match version {
                    Some(ver) => v["requested_version"] == ver,
                    None => true,
                })
                .await?;
            out.push((d.clone(), r));
        }
        Ok(out)
    }

    /// Waits for a device's config report (the retained one, or one
    /// published later) that `pred` accepts.
    pub async fn config_report(
        &mut self,
        device: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, SyncError> {
        let reported = Topics::new(device).config_reported();
        self.subscribe(&reported).await?;
        self.wait_for(&reported, timeout, pred).await
    }

    async fn wait_for(
        &mut self,
        topic: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, SyncError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = self.recv(left).await else {
                return Err(SyncError::NoAnswer {
                    topic: topic.into(),
                    secs: timeout.as_secs(),
                });
            };
            self.ack(&m).await?;
            if m.topic == topic {
                if let Some(v) = m.json() {
                    if pred(&v) {
                        return Ok(v);
                    }
                }
            }
        }
    }

    /// The broker this client talks to.
    pub fn broker(&self) -> &BrokerConn {
        &self.conn
    }
}

/// Drops messages whose `"id"` was seen before (at-least-once delivery
/// becomes exactly-once for the reader).
#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashSet<String>,
    /// Duplicates dropped.
    pub duplicates: u64,
}

impl Dedup {
    /// True the first time an id is seen (and for messages without an id).
    pub fn first(&mut self, v: &Value) -> bool {
        match v["id"].as_str() {
            Some(id) => {
                let new = self.seen.insert(id.to_string());
                if !new {
                    self.duplicates += 1;
                }
                new
            }
            None => true,
        }
    }

    /// Ids seen.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// None seen.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
