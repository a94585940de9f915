//! The HTTPS webhook forwarder: off the call path, it reads lead and call
//! messages from the outbox and POSTs each as JSON to a configured URL, with
//! capped exponential backoff, an `Idempotency-Key` header carrying the
//! message's stable id, and its own delivery cursor in the store (apart from
//! the MQTT delivered flag, so neither side waits for or hides from the other).
//!
//! ```toml
//! [sync.webhook]
//! url = "https://crm.example.com/hooks/voiceblock"
//! secret_file = "/etc/voiceblock/webhook.secret"   # optional: "Authorization: Bearer <first line>"
//! ca_file = "/etc/voiceblock/crm-ca.pem"           # optional: trust only this CA (default: Mozilla's roots)
//! timeout_s = 10                                   # per request
//! backoff_max_s = 300                              # longest wait between retries
//! topics = ["leads", "calls"]
//! ```
//!
//! What an answer means: 2xx delivered; 408, 429, 5xx, a timeout or a
//! network/TLS error: retried (the same message, so messages stay in order);
//! any other status (400, 401, 404, 3xx, ...): given up, recorded with the
//! status and the start of the body in `forwarder_failures`, and the
//! forwarder moves on.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use vb_store::{OutboxMessage, Store, Topic};

use crate::backoff::{seed_of, Backoff};

/// The forwarder's name in the store (its cursor and failures).
pub const FORWARDER: &str = "webhook";
/// Messages read from the store at once.
const BATCH: usize = 32;
/// Bytes of an error response kept for the failure record.
const ERROR_BODY_BYTES: u64 = 512;
/// Shortest retry delay.
const BACKOFF_MIN: Duration = Duration::from_millis(500);

/// `[sync.webhook]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// The endpoint; `https://` only.
    pub url: String,
    /// File whose first line is the bearer secret.
    pub secret_file: Option<PathBuf>,
    /// PEM file with the CA to trust instead of Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout in seconds (default 10, 1-120).
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Longest retry delay in seconds (default 300, 1-3600).
    #[serde(default = "default_backoff_max")]
    pub backoff_max_s: u64,
    /// Outbox topics forwarded (default both `leads` and `calls`).
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
}

fn default_timeout() -> u64 {
    10
}
fn default_backoff_max() -> u64 {
    300
}
fn default_topics() -> Vec<String> {
    vec!["leads".into(), "calls".into()]
}

/// A validated webhook.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The endpoint.
    pub url: String,
    /// Bearer secret.
    pub bearer: Option<String>,
    /// CA PEM to trust (else Mozilla's roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Outbox topics forwarded.
    pub topics: Vec<Topic>,
    /// Dev mode: log each POST (URL and body) instead of sending it, and
    /// count it delivered.
    pub simulate: bool,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("bearer", &self.bearer.as_ref().map(|_| "<set>"))
            .field("custom_ca", &self.ca_pem.is_some())
            .field("timeout", &self.timeout)
            .field("backoff_max", &self.backoff_max)
            .field("topics", &self.topics)
            .field("simulate", &self.simulate)
            .finish()
    }
}

impl RawWebhook {
    /// Validates, reading the secret and CA files (relative to `base`);
    /// problems go to `problems`, prefixed `webhook.`.
    pub fn validate(&self, base: &Path, problems: &mut Vec<String>) -> Option<WebhookConfig> {
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let before = problems.len();
        let host = self.url.strip_prefix("https://").unwrap_or("");
        if host.is_empty() || host.starts_with('/') || self.url.chars().any(char::is_whitespace) {
            problems.push(format!(
                "webhook.url {:?} must be an https:// URL with a host",
                self.url
            ));
        }
        if !(1..=120).contains(&self.timeout_s) {
            problems.push(format!(
                "webhook.timeout_s is {}, allowed 1-120",
                self.timeout_s
            ));
        }
        if !(1..=3600).contains(&self.backoff_max_s) {
            problems.push(format!(
                "webhook.backoff_max_s is {}, allowed 1-3600",
                self.backoff_max_s
            ));
        }
        let mut topics = Vec::new();
        for t in &self.topics {
            match t.as_str() {
                "leads" => topics.push(Topic::Leads),
                "calls" => topics.push(Topic::Calls),
                other => problems.push(format!(
                    "webhook.topics: {other:?} is not one of \"leads\", \"calls\""
                )),
            }
        }
        if self.topics.is_empty() {
            problems.push("webhook.topics is empty: name \"leads\" and/or \"calls\"".into());
        }
        let bearer = self.secret_file.as_ref().and_then(|p| {
            let path = at(p);
            match std::fs::read(&path) {
                Ok(b) if b.len() > crate::config::MAX_SECRET_BYTES => {
                    problems.push(format!(
                        "webhook.secret_file {} is {} bytes, the limit is {}",
                        path.display(),
                        b.len(),
                        crate::config::MAX_SECRET_BYTES
                    ));
                    None
                }
                Ok(b) => match String::from_utf8(b) {
                    Ok(s) if header_safe(s.lines().next().unwrap_or("").trim()) => {
                        Some(s.lines().next().unwrap_or("").trim().to_string())
                    }
                    Ok(s) if !s.lines().next().unwrap_or("").trim().is_empty() => {
                        problems.push(format!(
                            "webhook.secret_file {}: the secret must be visible ASCII without spaces (it goes in an HTTP header)",
                            path.display()
                        ));
                        None
                    }
                    Ok(_) => {
                        problems.push(format!("webhook.secret_file {} is empty", path.display()));
                        None
                    }
                    Err(_) => {
                        problems.push(format!(
                            "webhook.secret_file {} is not UTF-8",
                            path.display()
                        ));
                        None
                    }
                },
                Err(e) => {
                    problems.push(format!(
                        "cannot read webhook.secret_file {}: {e}",
                        path.display()
                    ));
                    None
                }
            }
        });
        let ca_pem = self.ca_file.as_ref().and_then(|p| {
            let path = at(p);
            match std::fs::read(&path) {
                Ok(b) if b.len() > crate::config::MAX_CA_BYTES => {
                    problems.push(format!(
                        "webhook.ca_file {} is {} bytes, the limit is {}",
                        path.display(),
                        b.len(),
                        crate::config::MAX_CA_BYTES
                    ));
                    None
                }
                Ok(b) if crate::tls::parse_ca(&b).is_err() => {
                    problems.push(format!(
                        "webhook.ca_file {} holds no PEM certificate",
                        path.display()
                    ));
                    None
                }
                Ok(b) => Some(b),
                Err(e) => {
                    problems.push(format!(
                        "cannot read webhook.ca_file {}: {e}",
                        path.display()
                    ));
                    None
                }
            }
        });
        (problems.len() == before).then(|| WebhookConfig {
            url: self.url.clone(),
            bearer,
            ca_pem,
            timeout: Duration::from_secs(self.timeout_s),
            backoff_max: Duration::from_secs(self.backoff_max_s),
            topics,
            simulate: false,
        })
    }
}

/// True for text usable as an HTTP header value here: visible ASCII, no
/// spaces or control characters.
fn header_safe(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic())
}

/// What one POST's result means for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Worth trying again later (408, 429, 5xx, timeout, network, TLS).
    Retry(String),
    /// Will not get better by retrying (other 4xx, 3xx): record and move on.
    GiveUp(String),
}

/// Sorts an HTTP status (with the start of the body, for the record).
pub fn verdict(status: u16, body: &str) -> Verdict {
    let why = || {
        let body = body.trim();
        if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        }
    };
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry(why()),
        _ => Verdict::GiveUp(why()),
    }
}

/// The JSON body POSTed for one outbox message: its id, the device, the
/// topic, and the message itself (as JSON when it parses, else as a string).
pub fn body(device: &str, msg: &OutboxMessage) -> Value {
    let message = serde_json::from_str::<Value>(&msg.payload)
        .unwrap_or_else(|_| Value::String(msg.payload.clone()));
    json!({
        "id": msg.msg_id,
        "device": device,
        "topic": msg.topic,
        "message": message,
    })
}

/// The HTTP side: one blocking ureq agent (rustls with ring), no redirects
/// followed (a POST that is redirected is a misconfigured URL).
pub struct Poster {
    agent: ureq::Agent,
    url: String,
    bearer: Option<String>,
    device: String,
    simulate: bool,
}

impl Poster {
    /// Builds the agent for `config`.
    pub fn new(config: &WebhookConfig, device: &str) -> Poster {
        crate::tls::install_crypto_provider();
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        if let Some(pem) = &config.ca_pem {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .user_agent(concat!("voiceblock/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .new_agent();
        Poster {
            agent,
            url: config.url.clone(),
            bearer: config.bearer.clone(),
            device: device.to_string(),
            simulate: config.simulate,
        }
    }

    /// POSTs one message (blocking) and sorts the outcome.
    pub fn post(&self, msg: &OutboxMessage) -> Verdict {
        if !header_safe(&msg.msg_id) {
            // Retrying could never send it: give up rather than block the
            // messages behind it.
            return Verdict::GiveUp(format!(
                "message id {:?} cannot be sent as an Idempotency-Key header",
                msg.msg_id
            ));
        }
        let body = body(&self.device, msg).to_string();
        if self.simulate {
            tracing::info!(
                target: "voiceblock::dev",
                url = %self.url,
                msg_id = %msg.msg_id,
                %body,
                "dev mode: webhook POST simulated, not sent"
            );
            return Verdict::Delivered;
        }
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &msg.msg_id);
        if let Some(b) = &self.bearer {
            req = req.header("Authorization", &format!("Bearer {b}"));
        }
        match req.send(body.as_bytes()) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let mut text = Vec::new();
                if !(200..300).contains(&status) {
                    let _ = resp
                        .body_mut()
                        .as_reader()
                        .take(ERROR_BODY_BYTES)
                        .read_to_end(&mut text);
                }
                verdict(status, &String::from_utf8_lossy(&text))
            }
            Err(e) => Verdict::Retry(format!("POST {}: {e}", self.url)),
        }
    }
}

/// What the forwarder reports (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardEvent {
    /// A message was accepted by the endpoint.
    Delivered {
        /// Its id.
        msg_id: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// An attempt failed and will be retried.
    Retrying {
        /// Its id.
        msg_id: String,
        /// Why.
        error: String,
    },
    /// The forwarder gave up on a message (recorded in the store).
    GaveUp {
        /// Its id.
        msg_id: String,
        /// Why.
        error: String,
    },
}

/// Runs the forwarder until `cancel` fires: reads past its cursor every
/// `poll`, POSTs messages one at a time in outbox order (a message is
/// retried, with capped exponential backoff, until it is delivered or given
/// up, so a call's messages keep their order). `events` (optional) is
/// written with `try_send`: a slow observer loses events, never stalls it.
pub async fn run(
    store: Arc<Store>,
    config: WebhookConfig,
    device: String,
    poll: Duration,
    cancel: CancellationToken,
    events: Option<tokio::sync::mpsc::Sender<ForwardEvent>>,
) {
    let poster = Arc::new(Poster::new(&config, &device));
    let mut backoff = Backoff::new(BACKOFF_MIN, config.backoff_max, seed_of(&device));
    let emit = |e: ForwardEvent| {
        if let Some(tx) = &events {
            let _ = tx.try_send(e);
        }
    };
    while !cancel.is_cancelled() {
        let s = store.clone();
        let topics = config.topics.clone();
        let pending =
            tokio::task::spawn_blocking(move || s.forwarder_pending(FORWARDER, &topics, BATCH))
                .await;
        let pending = match pending {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "webhook: cannot read the outbox");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        if pending.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(poll) => continue,
            }
        }
        for msg in pending {
            let msg = Arc::new(msg);
            let mut attempts = 0u32;
            backoff.reset();
            loop {
                attempts += 1;
                let (p, m) = (poster.clone(), msg.clone());
                let verdict = tokio::select! {
                    _ = cancel.cancelled() => return,
                    v = tokio::task::spawn_blocking(move || p.post(&m)) => {
                        v.unwrap_or_else(|_| Verdict::Retry("the POST thread panicked".into()))
                    }
                };
                let failure = match verdict {
                    Verdict::Delivered => None,
                    Verdict::GiveUp(e) => Some(e),
                    Verdict::Retry(error) => {
                        tracing::warn!(msg_id = %msg.msg_id, attempts, %error, "webhook: will retry");
                        emit(ForwardEvent::Retrying {
                            msg_id: msg.msg_id.clone(),
                            error,
                        });
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(backoff.next_delay()) => continue,
                        }
                    }
                };
                let (s, m, f) = (store.clone(), msg.clone(), failure.clone());
                let saved = tokio::task::spawn_blocking(move || {
                    s.forwarder_done(FORWARDER, &m, attempts, f.as_deref())
                })
                .await;
                match saved {
                    Ok(Ok(())) => {}
                    // The endpoint has it; if the mark is lost it is sent
                    // again with the same Idempotency-Key.
                    Ok(Err(e)) => tracing::error!(error = %e, "webhook: cannot record a delivery"),
                    Err(_) => tracing::error!("webhook: the store task failed"),
                }
                match failure {
                    None => emit(ForwardEvent::Delivered {
                        msg_id: msg.msg_id.clone(),
                        attempts,
                    }),
                    Some(error) => {
                        tracing::error!(msg_id = %msg.msg_id, %error, "webhook: gave up on a message");
                        emit(ForwardEvent::GaveUp {
                            msg_id: msg.msg_id.clone(),
                            error,
                        });
                    }
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted_into_deliver_retry_give_up() {
        assert_eq!(verdict(200, ""), Verdict::Delivered);
        assert_eq!(verdict(204, ""), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(verdict(s, ""), Verdict::Retry(_)), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert!(matches!(verdict(s, ""), Verdict::GiveUp(_)), "{s}");
        }
        assert_eq!(
            verdict(422, " bad phone \n"),
            Verdict::GiveUp("HTTP 422: bad phone".into())
        );
    }

    /// A webhook at port 9 of loopback, where a real POST is refused.
    fn unreachable(simulate: bool) -> WebhookConfig {
        WebhookConfig {
            url: "https://127.0.0.1:9/never".into(),
            bearer: None,
            ca_pem: None,
            timeout: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1),
            topics: vec![Topic::Leads],
            simulate,
        }
    }

    #[test]
    fn an_id_that_cannot_be_a_header_is_given_up_without_a_request() {
        let config = unreachable(false);
        let m = OutboxMessage {
            seq: 1,
            msg_id: "bad id\r\nX: y".into(),
            call_id: None,
            topic: "leads".into(),
            payload: "{}".into(),
            created_at: vb_store::Timestamp(0),
            attempts: 0,
        };
        let v = Poster::new(&config, "d").post(&m);
        assert!(matches!(v, Verdict::GiveUp(e) if e.contains("Idempotency-Key")));
    }

    #[test]
    fn dev_mode_logs_instead_of_posting() {
        // Port 9 would refuse a real POST (Verdict::Retry).
        let config = unreachable(true);
        let m = OutboxMessage {
            seq: 1,
            msg_id: "c1:lead".into(),
            call_id: Some("c1".into()),
            topic: "leads".into(),
            payload: "{}".into(),
            created_at: vb_store::Timestamp(0),
            attempts: 0,
        };
        assert_eq!(Poster::new(&config, "d").post(&m), Verdict::Delivered);
        let real = WebhookConfig {
            simulate: false,
            ..config
        };
        assert!(matches!(
            Poster::new(&real, "d").post(&m),
            Verdict::Retry(_)
        ));
    }

    #[test]
    fn the_body_carries_id_device_topic_and_message() {
        let m = OutboxMessage {
            seq: 1,
            msg_id: "c1:lead".into(),
            call_id: Some("c1".into()),
            topic: "leads".into(),
            payload: r#"{"id":"c1:lead","name":"Ann"}"#.into(),
            created_at: vb_store::Timestamp(0),
            attempts: 0,
        };
        let b = body("box-1", &m);
        assert_eq!(b["id"], "c1:lead");
        assert_eq!(b["device"], "box-1");
        assert_eq!(b["topic"], "leads");
        assert_eq!(b["message"]["name"], "Ann");
    }

    #[test]
    fn config_problems_are_all_listed() {
        let raw = RawWebhook {
            url: "http://plain.example.com".into(),
            secret_file: Some("missing.secret".into()),
            ca_file: None,
            timeout_s: 0,
            backoff_max_s: 5000,
            topics: vec!["metrics".into()],
        };
        let mut p = Vec::new();
        assert!(raw.validate(Path::new("/nonexistent"), &mut p).is_none());
        assert_eq!(p.len(), 5, "{p:?}");
        assert!(p[0].contains("https://"), "{p:?}");
        let ok = RawWebhook {
            url: "https://h.example.com/x".into(),
            secret_file: None,
            ca_file: None,
            timeout_s: 10,
            backoff_max_s: 300,
            topics: default_topics(),
        };
        let mut p = Vec::new();
        let c = ok.validate(Path::new("/"), &mut p).unwrap();
        assert!(p.is_empty());
        assert_eq!(c.topics, vec![Topic::Leads, Topic::Calls]);
    }
}
