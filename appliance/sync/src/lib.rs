//! vb-sync: the box's link to its fleet over MQTT 5 (rumqttc over rustls with
//! the ring provider). One task, the [`agent`], owns the connection: it drains
//! the store's outbox (QoS 1, a row is marked delivered only on PUBACK),
//! keeps a retained status with an "offline" last will, publishes metrics,
//! applies pushed configs and answers commands through the [`Device`] trait
//! the daemon implements. Everything else holds a bounded [`SyncHandle`].
//! [`fleet`] is the other end: the operator's client for listing devices,
//! tailing leads, pushing configs and sending commands.
//!
//! # Layout
//!
//! ```text
//!  vb-store outbox ──pending()──► agent ──PUBLISH QoS1──► broker ──► fleet subscribers
//!        ▲                          │  ◄──PUBACK(pkid)──┘            (de-duplicate by "id")
//!        └──mark_delivered(msg id)──┘
//!                                   │  retained status (+ last will "offline"), metrics
//!  broker ──config/desired──► remote::parse_desired ──► Device::apply_config ──► config/reported
//!  broker ──cmd/<id>────────► remote::parse_command ──► Device::{reload,logs,outbound,place_test_call} ──► cmd/<id>/reply
//!  broker ──robot/<id>──────► robot_update::verify (size, sha256) ──► unpack (limits, no links/..)
//!            into robots/.robot-incoming-*/ ──► Device::validate_robot ──► rename swap (old → <name>.prev)
//!            ──► Device::robot_installed (Err → roll back) ──► robot/<id>/reply
//!
//!  SyncHandle (bounded, coalescing) ──"outbox changed"──► agent
//!  vb-store outbox ──forwarder_pending("webhook")──► webhook::run ──POST JSON, Idempotency-Key──► HTTPS endpoint
//!        ▲                                             │ 2xx: delivered; 4xx: given up (recorded); 408/429/5xx/timeout: retry
//!        └──forwarder_done (own cursor, apart from the MQTT flag)──┘
//!  connection lost ──backoff::Backoff (capped exponential, jitter)──► fresh session (clean_start=false)
//! ```
//!
//! - [`config`]: the `[sync]` TOML section, validated into [`SyncConfig`] with every problem listed.
//! - [`topics`]: the topic tree (`voiceblock/<device>/...`), pure.
//! - [`remote`]: config pushes and commands: size limits, parsing, replies; pure.
//! - [`robot_update`]: robot pushes (tar.gz + sha256): limits, safe unpack,
//!   validation, atomic swap with rollback, and the packer the fleet uses.
//! - [`backoff`]: reconnect delays; pure.
//! - [`tls`]: the rustls client config (ring) and rumqttc options.
//! - [`agent`]: the device-side task.
//! - [`webhook`]: the HTTPS webhook forwarder (off the call path, own delivery cursor).
//! - [`fleet`]: the fleet-side client.
//! - [`error`]: [`SyncError`], with one variant per thing an operator must fix.

pub mod agent;
pub mod backoff;
pub mod config;
pub mod error;
pub mod fleet;
pub mod remote;
pub mod robot_update;
#[cfg(feature = "test-broker")]
pub mod testing;
pub mod tls;
pub mod topics;
pub mod webhook;

pub use agent::{Agent, AgentEvent, SyncHandle};
pub use config::{BrokerConn, ConfigError, SyncConfig};
pub use error::SyncError;
pub use remote::{DesiredConfig, Device, DeviceCommand};
pub use topics::Topics;

use std::sync::Arc;

/// Starts the device-side agent as a task. `voiceblock sync` calls this, and
/// the daemon (`voiceblock run`) starts the same agent inside itself with its
/// own store handle and cancellation token. The task ends when `cancel`
/// fires (after publishing "offline" and disconnecting).
pub fn spawn(
    store: Arc<vb_store::Store>,
    config: SyncConfig,
    device: Arc<dyn Device>,
    cancel: tokio_util::sync::CancellationToken,
    events: Option<tokio::sync::mpsc::Sender<AgentEvent>>,
) -> Result<(SyncHandle, tokio::task::JoinHandle<()>), SyncError> {
    let (agent, handle) = Agent::new(store, config, device, events)?;
    Ok((handle, tokio::spawn(agent.run(cancel))))
}
