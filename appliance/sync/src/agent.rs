//! The device-side task: the only owner of the MQTT connection.
//!
//! Each connection is a fresh rumqttc session object with `clean_start =
//! false` and a session expiry, so the broker keeps the box's subscriptions
//! and queued commands while it is away; the store, not rumqttc's memory, is
//! the source of truth for what still has to go out. A message is marked
//! delivered only when its PUBACK comes back with a success code; after a
//! reconnect everything unacknowledged is sent again under the same id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use rumqttc::Outgoing;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vb_store::{ConfigOutcome, Store, Timestamp};

use crate::backoff::{seed_of, Backoff};
use crate::config::SyncConfig;
use crate::error::SyncError;
use crate::remote::{self, ConfigDecision, Device};
use crate::robot_update;
use crate::tls;
use crate::topics::{Incoming, Topics};

/// Outbox messages in flight (published, PUBACK pending) at once. Below
/// mosquitto's default receive maximum (20) so the broker never stalls us.
pub const WINDOW: usize = 16;
/// rumqttc request channel. Publishing uses `try_publish`: when full, the
/// outbox fill stops until the connection task has drained it (no message is
/// lost: it stays in the store).
const REQUEST_CAPACITY: usize = 128;
/// Session kept by the broker while the box is away (7 days).
pub const SESSION_EXPIRY_S: u32 = 7 * 24 * 3600;

/// What the agent reports to whoever watches it (logs, tests, the console).
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// Connected (and whether the broker still had our session).
    Connected {
        /// The broker kept the session.
        session_present: bool,
    },
    /// The connection failed or broke; the message says what to fix.
    ConnectionFailed {
        /// The error, with its chain.
        message: String,
        /// Retrying cannot help until a file changes.
        needs_operator: bool,
    },
    /// A message got its PUBACK and was marked delivered.
    Delivered {
        /// Its id.
        msg_id: String,
    },
    /// The broker refused a message (e.g. ACL, code 135); it stays queued.
    PublishRefused {
        /// Its id.
        msg_id: String,
        /// The error.
        message: String,
    },
    /// The broker refused a subscription.
    SubscribeRefused {
        /// The error.
        message: String,
    },
    /// A config push was applied.
    ConfigApplied {
        /// Its version.
        version: u64,
    },
    /// A config push was refused; the old config stays.
    ConfigRejected {
        /// Its version, if it could be read.
        version: Option<u64>,
        /// Why.
        errors: Vec<String>,
    },
    /// A robot update was installed (`ok`) or refused.
    RobotUpdate {
        /// Request id.
        request_id: String,
        /// It was installed.
        ok: bool,
    },
    /// A command was answered.
    CommandAnswered {
        /// Request id.
        request_id: String,
        /// It succeeded.
        ok: bool,
    },
}

/// A bounded handle for the rest of the daemon.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    wake: mpsc::Sender<()>,
}

impl SyncHandle {
    /// Tells the agent the outbox has new rows. Never blocks: the channel
    /// holds one wake-up and further ones coalesce into it (the agent reads
    /// the whole outbox when it wakes).
    pub fn outbox_changed(&self) {
        let _ = self.wake.try_send(());
    }
}

/// The device-side agent.
pub struct Agent {
    store: Arc<Store>,
    config: SyncConfig,
    device: Arc<dyn Device>,
    topics: Topics,
    wake: mpsc::Receiver<()>,
    events: Option<mpsc::Sender<AgentEvent>>,
    dropped_events: u64,
    tls: Arc<rustls::ClientConfig>,
}

enum Tag {
    Outbox(String),
    Other,
}

struct Session {
    client: AsyncClient,
    /// What each queued publish was, in request order (rumqttc reports
    /// `Outgoing::Publish(pkid)` in the same order).
    fifo: VecDeque<Tag>,
    /// pkid -> message id, waiting for PUBACK.
    inflight: HashMap<u16, String>,
    /// Message ids in the fifo or in flight.
    busy: HashSet<String>,
    /// Refused by the broker in this session: not sent again until the next.
    refused: HashSet<String>,
}

impl Agent {
    /// Builds the agent and its handle. `events` (optional) receives
    /// [`AgentEvent`]s; when it is full, events are dropped and counted,
    /// because a slow observer must not stall the connection.
    pub fn new(
        store: Arc<Store>,
        config: SyncConfig,
        device: Arc<dyn Device>,
        events: Option<mpsc::Sender<AgentEvent>>,
    ) -> Result<(Agent, SyncHandle), SyncError> {
        tls::install_crypto_provider();
        let tls = Arc::new(tls::client_config(&config.broker).map_err(SyncError::TlsSetup)?);
        let (tx, rx) = mpsc::channel(1);
        Ok((
            Agent {
                topics: Topics::new(&config.device_id),
                store,
                config,
                device,
                wake: rx,
                events,
                dropped_events: 0,
                tls,
            },
            SyncHandle { wake: tx },
        ))
    }

    fn emit(&mut self, e: AgentEvent) {
        if let Some(tx) = &self.events {
            if tx.try_send(e).is_err() {
                self.dropped_events += 1;
            }
        }
    }

    fn status(&self, state: &str) -> Vec<u8> {
        json!({
            "state": state,
            "device": self.config.device_id,
            "version": env!("CARGO_PKG_VERSION"),
            "since": Timestamp::now().to_rfc3339(),
            "health": if state == "online" { self.device.health() } else { Value::Null },
        })
        .to_string()
        .into_bytes()
    }

    /// Runs until `cancel` fires: connects, drains, reconnects with backoff.
    /// Returns only on cancellation (errors are reported as events and logs
    /// and retried, since the box must keep trying for days).
    pub async fn run(mut self, cancel: CancellationToken) {
        // Retention runs beside the connection, off the call path.
        let retention = {
            let store = self.store.clone();
            let budget = self.config.retention;
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    let store = store.clone();
                    match tokio::task::spawn_blocking(move || store.enforce_retention(&budget))
                        .await
                    {
                        Ok(Ok(r)) if r.over_budget => tracing::warn!(
                            ?r,
                            "store over its budget: the rest are undelivered and kept"
                        ),
                        Ok(Ok(r)) if r.deleted_calls > 0 => tracing::info!(?r, "retention"),
                        Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                        _ => {}
                    }
                }
            })
        };
        // The webhook forwarder, also beside the connection: it keeps its
        // own cursor and works whether the broker is reachable or not.
        // Registered so that retention keeps what it has not sent; forgotten
        // when it is taken out of the config, so retention stops waiting.
        {
            let store = self.store.clone();
            let configured = self.config.webhook.is_some();
            let r = tokio::task::spawn_blocking(move || {
                if configured {
                    store.forwarder_register(crate::webhook::FORWARDER)
                } else {
                    store.forwarder_remove(crate::webhook::FORWARDER)
                }
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::error!(error = %e, "webhook: cannot update its registration in the store");
            }
        }
        let webhook = self.config.webhook.clone().map(|w| {
            tokio::spawn(crate::webhook::run(
                self.store.clone(),
                w,
                self.config.device_id.clone(),
                self.config.outbox_poll,
                cancel.clone(),
                None,
            ))
        });
        self.connect_loop(&cancel).await;
        retention.abort();
        if let Some(w) = webhook {
            // It ends on the same cancellation; an in-flight POST is bounded
            // by its timeout.
            let _ = w.await;
        }
    }

    async fn connect_loop(&mut self, cancel: &CancellationToken) {
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            self.config.backoff_max,
            seed_of(&self.config.device_id),
        );
        while !cancel.is_cancelled() {
            let (connected, result) = self.session(cancel).await;
            if connected {
                backoff.reset();
            }
            match result {
                Ok(()) => break,
                Err(e) => {
                    let message = format!("{}", DisplayChain(&e));
                    tracing::warn!(error = %message, "mqtt: {}", if connected { "connection lost" } else { "cannot connect" });
                    let needs_operator = e.needs_operator();
                    self.emit(AgentEvent::ConnectionFailed {
                        message,
                        needs_operator,
                    });
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Connects once and reports the result (for `voiceblock sync --check`).
    pub async fn probe(config: &SyncConfig) -> Result<(), SyncError> {
        tls::install_crypto_provider();
        let tls = Arc::new(tls::client_config(&config.broker).map_err(SyncError::TlsSetup)?);
        let mut o = tls::mqtt_options(&config.broker, &format!("{}-probe", config.device_id), tls);
        o.set_clean_start(true);
        let (client, mut el) = AsyncClient::new(o, 4);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => return Err(SyncError::from_connect(&config.broker, e)),
            }
        }
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), el.poll()).await;
        Ok(())
    }

    /// One connection, from CONNECT until it breaks or `cancel` fires.
    /// Returns whether CONNACK was received.
    async fn session(&mut self, cancel: &CancellationToken) -> (bool, Result<(), SyncError>) {
        let mut o = tls::mqtt_options(
            &self.config.broker,
            &self.config.device_id,
            self.tls.clone(),
        );
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(SESSION_EXPIRY_S));
        o.set_last_will(LastWill::new(
            self.topics.status(),
            self.status("offline"),
            QoS::AtLeastOnce,
            true,
            None,
        ));
        let (client, mut el) = AsyncClient::new(o, REQUEST_CAPACITY);
        // CONNACK first.
        let session_present = loop {
            tokio::select! {
                _ = cancel.cancelled() => return (false, Ok(())),
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => break ack.session_present,
                    Ok(_) => {}
                    Err(e) => return (false, Err(SyncError::from_connect(&self.config.broker, e))),
                }
            }
        };
        tracing::info!(session_present, broker = %self.config.broker.addr(), "mqtt: connected");
        self.emit(AgentEvent::Connected { session_present });
        let mut s = Session {
            client,
            fifo: VecDeque::new(),
            inflight: HashMap::new(),
            busy: HashSet::new(),
            refused: HashSet::new(),
        };
        let status = self.status("online");
        self.publish_other(&mut s, self.topics.status(), status, true);
        for filter in [
            self.topics.config_desired(),
            self.topics.cmd_filter(),
            self.topics.robot_filter(),
        ] {
            if s.client.try_subscribe(filter, QoS::AtLeastOnce).is_err() {
                return (true, Err(SyncError::ClientGone));
            }
        }
        let mut poll = tokio::time::interval(self.config.outbox_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let metrics_period = self
            .config
            .metrics_interval
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut metrics =
            tokio::time::interval_at(tokio::time::Instant::now() + metrics_period, metrics_period);
        loop {
            if let Err(e) = self.fill(&mut s).await {
                return (true, Err(e));
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.goodbye(&mut s, &mut el).await;
                    return (true, Ok(()));
                }
                _ = self.wake.recv() => {}
                _ = poll.tick() => {}
                _ = metrics.tick(), if self.config.metrics_interval.is_some() => {
                    let m = self.metrics_payload().await;
                    let _ = s.client.try_publish(self.topics.metrics(), QoS::AtMostOnce, false, m);
                    s.fifo.push_back(Tag::Other);
                }
                ev = el.poll() => match ev {
                    Ok(ev) => if let Err(e) = self.on_event(&mut s, ev).await {
                        return (true, Err(e));
                    },
                    Err(e) => {
                        return (true, Err(SyncError::Lost { addr: self.config.broker.addr(), source: e }));
                    }
                }
            }
        }
    }

    /// Publishes "offline" (the will only fires on an unclean end) and
    /// disconnects, waiting briefly for both to leave.
    async fn goodbye(&mut self, s: &mut Session, el: &mut rumqttc::v5::EventLoop) {
        let offline = self.status("offline");
        let _ = s
            .client
            .try_publish(self.topics.status(), QoS::AtLeastOnce, true, offline);
        let _ = s.client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(ev) = el.poll().await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }

    fn publish_other(&self, s: &mut Session, topic: String, payload: Vec<u8>, retain: bool) {
        match s
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => s.fifo.push_back(Tag::Other),
            Err(e) => tracing::warn!(error = %e, "mqtt: request queue full, a reply is dropped"),
        }
    }

    async fn metrics_payload(&self) -> Vec<u8> {
        let store = self.store.clone();
        let (depth, bytes) = tokio::task::spawn_blocking(move || {
            (store.outbox_depth().ok(), store.used_bytes().ok())
        })
        .await
        .unwrap_or((None, None));
        json!({
            "at": Timestamp::now().to_rfc3339(),
            "outbox_depth": depth,
            "store_bytes": bytes,
            "load_avg": std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string)),
            "mem_available_kb": meminfo_available(),
            "version": env!("CARGO_PKG_VERSION"),
            "daemon": self.device.metrics(),
        })
        .to_string()
        .into_bytes()
    }

    /// Tops the window up from the store.
    async fn fill(&mut self, s: &mut Session) -> Result<(), SyncError> {
        let in_flight = s.busy.len();
        if in_flight >= WINDOW {
            return Ok(());
        }
        let store = self.store.clone();
        let want = WINDOW + in_flight + s.refused.len();
        let pending = tokio::task::spawn_blocking(move || store.pending(want))
            .await
            .map_err(|_| SyncError::ClientGone)??;
        for m in pending {
            if s.busy.len() >= WINDOW {
                break;
            }
            if s.busy.contains(&m.msg_id) || s.refused.contains(&m.msg_id) {
                continue;
            }
            let topic = self.topics.sub(&m.topic);
            match s
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, m.payload.into_bytes())
            {
                Ok(()) => {
                    s.fifo.push_back(Tag::Outbox(m.msg_id.clone()));
                    s.busy.insert(m.msg_id.clone());
                    let store = self.store.clone();
                    let id = m.msg_id;
                    tokio::task::spawn_blocking(move || store.note_attempt(&id, None))
                        .await
                        .map_err(|_| SyncError::ClientGone)??;
                }
                // Full: the connection task has not caught up; try later.
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, s: &mut Session, ev: Event) -> Result<(), SyncError> {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Tag::Outbox(id)) = s.fifo.pop_front() {
                    s.inflight.insert(pkid, id);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let Some(id) = s.inflight.remove(&ack.pkid) else {
                    return Ok(());
                };
                s.busy.remove(&id);
                match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                        let store = self.store.clone();
                        let id2 = id.clone();
                        tokio::task::spawn_blocking(move || store.mark_delivered(&id2))
                            .await
                            .map_err(|_| SyncError::ClientGone)??;
                        self.emit(AgentEvent::Delivered { msg_id: id });
                    }
                    reason => {
                        let topic = self
                            .store
                            .pending(usize::MAX)
                            .ok()
                            .and_then(|p| {
                                p.into_iter()
                                    .find(|m| m.msg_id == id)
                                    .map(|m| self.topics.sub(&m.topic))
                            })
                            .unwrap_or_default();
                        let err = SyncError::PublishRefused {
                            topic,
                            reason: format!("{reason:?}"),
                            code: puback_code(reason),
                        };
                        let message = err.to_string();
                        tracing::error!(msg_id = %id, "mqtt: {message}");
                        let store = self.store.clone();
                        let (id2, m2) = (id.clone(), message.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            store.note_attempt(&id2, Some(&m2))
                        })
                        .await;
                        s.refused.insert(id.clone());
                        self.emit(AgentEvent::PublishRefused {
                            msg_id: id,
                            message,
                        });
                    }
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                for code in ack.return_codes {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        let message = SyncError::SubscribeRefused {
                            filter: self.topics.base().to_string()
                                + "/{config/desired,cmd/+,robot/+}",
                            reason: format!("{code:?}"),
                        }
                        .to_string();
                        tracing::error!("mqtt: {message}");
                        self.emit(AgentEvent::SubscribeRefused { message });
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => self.on_publish(s, p).await?,
            Event::Incoming(Packet::Disconnect(d)) => {
                tracing::warn!(reason = ?d.reason_code, "mqtt: the broker disconnected us");
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_publish(&mut self, s: &mut Session, p: Publish) -> Result<(), SyncError> {
        let topic = String::from_utf8_lossy(&p.topic).to_string();
        match self.topics.classify(&topic) {
            Incoming::ConfigDesired => {
                // An empty retained message clears the push: nothing to do.
                if !p.payload.is_empty() {
                    self.on_config(s, &p.payload).await?;
                }
            }
            Incoming::Command(request_id) => {
                let reply = match remote::parse_command(&p.payload) {
                    Ok(cmd) => {
                        let device = self.device.clone();
                        tokio::task::spawn_blocking(move || remote::execute(device.as_ref(), &cmd))
                            .await
                            .unwrap_or_else(|_| remote::refusal("the command handler panicked"))
                    }
                    Err(why) => remote::refusal(&why),
                };
                let ok = reply["ok"] == true;
                let reply = json!({ "request_id": request_id, "device": self.config.device_id, "reply": reply });
                self.publish_other(
                    s,
                    self.topics.cmd_reply(&request_id),
                    reply.to_string().into_bytes(),
                    false,
                );
                self.emit(AgentEvent::CommandAnswered { request_id, ok });
            }
            Incoming::RobotUpdate(request_id) => {
                // Unpacking up to 64 MiB is blocking work; the connection
                // waits for it, as for any command (one at a time).
                let device = self.device.clone();
                let payload = p.payload.clone();
                let reply = tokio::task::spawn_blocking(move || {
                    robot_update::handle(device.as_ref(), &payload)
                })
                .await
                .unwrap_or_else(|_| remote::refusal("the robot update handler panicked"));
                let ok = reply["ok"] == true;
                if ok {
                    tracing::info!(%request_id, result = %reply["result"], "robot update installed");
                } else {
                    tracing::warn!(%request_id, error = %reply["error"], "robot update refused; the robot in force stays");
                }
                let reply = json!({ "request_id": request_id, "device": self.config.device_id, "reply": reply });
                self.publish_other(
                    s,
                    self.topics.robot_reply(&request_id),
                    reply.to_string().into_bytes(),
                    false,
                );
                self.emit(AgentEvent::RobotUpdate { request_id, ok });
            }
            Incoming::BadRequestId => {
                tracing::warn!(%topic, "mqtt: command with an invalid request id ignored (no reply topic can be formed)");
            }
            Incoming::Other => {}
        }
        Ok(())
    }

    async fn on_config(&mut self, s: &mut Session, payload: &[u8]) -> Result<(), SyncError> {
        let store = self.store.clone();
        let current = tokio::task::spawn_blocking(move || store.current_config())
            .await
            .map_err(|_| SyncError::ClientGone)??
            .map(|c| c.version);
        let body = String::from_utf8_lossy(
            &payload[..payload.len().min(vb_store::store::MAX_CONFIG_BYTES)],
        )
        .to_string();
        let (version, errors) = match remote::parse_desired(payload) {
            Err(errors) => (None, errors),
            Ok(d) => match remote::decide(d.version, current) {
                ConfigDecision::Unchanged => {
                    let r = remote::reported(current, Some(d.version), &[]);
                    self.publish_other(
                        s,
                        self.topics.config_reported(),
                        r.to_string().into_bytes(),
                        true,
                    );
                    return Ok(());
                }
                ConfigDecision::Stale { current } => (
                    Some(d.version),
                    vec![format!(
                        "version {} is older than the applied version {current}",
                        d.version
                    )],
                ),
                ConfigDecision::Apply => {
                    // The same push refused before (invalid, or set aside
                    // when it failed to start) is refused again as it was,
                    // not retried: the retained push comes back at every
                    // connect, and retrying one that cannot start would
                    // restart the box in a loop. A changed push is judged
                    // afresh.
                    let store = self.store.clone();
                    let version = d.version;
                    let before = tokio::task::spawn_blocking(move || store.config_outcome(version))
                        .await
                        .map_err(|_| SyncError::ClientGone)??;
                    if let Some(e) =
                        before.filter(|e| e.outcome == ConfigOutcome::Rejected && e.body == body)
                    {
                        tracing::warn!(version, errors = ?e.errors, "config push refused before: still refused");
                        let r = remote::reported(current, Some(d.version), &e.errors);
                        self.publish_other(
                            s,
                            self.topics.config_reported(),
                            r.to_string().into_bytes(),
                            true,
                        );
                        return Ok(());
                    }
                    let device = self.device.clone();
                    let d2 = d.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        device.apply_config(d2.version, &d2.config)
                    })
                    .await
                    .unwrap_or_else(|_| Err(vec!["the config handler panicked".into()]));
                    (Some(d.version), r.err().unwrap_or_default())
                }
            },
        };
        let outcome = if errors.is_empty() {
            ConfigOutcome::Applied
        } else {
            ConfigOutcome::Rejected
        };
        let store = self.store.clone();
        let errs = errors.clone();
        tokio::task::spawn_blocking(move || {
            store.record_config(version.unwrap_or(0), &body, outcome, &errs)
        })
        .await
        .map_err(|_| SyncError::ClientGone)??;
        let applied = if errors.is_empty() { version } else { current };
        let r = remote::reported(applied, version, &errors);
        self.publish_other(
            s,
            self.topics.config_reported(),
            r.to_string().into_bytes(),
            true,
        );
        if errors.is_empty() {
            tracing::info!(version = ?version, "config applied");
            self.emit(AgentEvent::ConfigApplied {
                version: version.unwrap_or(0),
            });
        } else {
            tracing::warn!(?errors, "config push rejected, the previous config stays");
            self.emit(AgentEvent::ConfigRejected { version, errors });
        }
        Ok(())
    }
}

fn puback_code(r: PubAckReason) -> u8 {
    match r {
        PubAckReason::Success => 0,
        PubAckReason::NoMatchingSubscribers => 16,
        PubAckReason::UnspecifiedError => 128,
        PubAckReason::ImplementationSpecificError => 131,
        PubAckReason::NotAuthorized => 135,
        PubAckReason::TopicNameInvalid => 144,
        PubAckReason::PacketIdentifierInUse => 145,
        PubAckReason::QuotaExceeded => 151,
        PubAckReason::PayloadFormatInvalid => 153,
    }
}

fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Shows an error with its sources, `a: b: c`.
pub struct DisplayChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}
