//! Sync errors, one variant per thing the operator must fix: the broker's
//! certificate, the credentials, the ACL, the network.

use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::ConnectionError;

use crate::config::{BrokerConn, ConfigError};

/// Everything the sync side can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The broker's certificate does not chain to the configured CA (or does
    /// not name the host).
    #[error("broker {addr}: its TLS certificate is not trusted by the CA in {ca_file} ({detail}); check ca_file and that the certificate names the host")]
    UntrustedServer {
        /// host:port.
        addr: String,
        /// The CA file used.
        ca_file: String,
        /// rustls's reason.
        detail: String,
    },
    /// User name or password wrong.
    #[error("broker {addr} refused user {user:?}: wrong user name or password (check username and password_file)")]
    BadCredentials {
        /// host:port.
        addr: String,
        /// The user name sent.
        user: String,
    },
    /// Connecting without credentials is refused.
    #[error("broker {addr} refuses anonymous connections: set username and password_file")]
    AnonymousRefused {
        /// host:port.
        addr: String,
    },
    /// The broker refused the client for another reason.
    #[error("broker {addr} refused the connection: {code:?}")]
    Refused {
        /// host:port.
        addr: String,
        /// MQTT 5 reason.
        code: ConnectReturnCode,
    },
    /// TCP/TLS failed before MQTT.
    #[error("cannot reach broker {addr}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: ConnectionError,
    },
    /// The broker did not answer in time.
    #[error("broker {addr} did not answer within {secs} s")]
    Timeout {
        /// host:port.
        addr: String,
        /// The wait.
        secs: u64,
    },
    /// An established connection broke.
    #[error("connection to broker {addr} lost")]
    Lost {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: ConnectionError,
    },
    /// The broker refused a publish (MQTT 5 reason code; 135 is the ACL).
    #[error("broker refused publishing to {topic}: {reason} (code {code}){hint}", hint = if *code == 135 { "; the broker's ACL does not let this user write there: the device id must equal the MQTT user name" } else { "" })]
    PublishRefused {
        /// The topic.
        topic: String,
        /// Reason name.
        reason: String,
        /// Reason code.
        code: u8,
    },
    /// The broker refused a subscription.
    #[error("broker refused subscribing to {filter}: {reason}")]
    SubscribeRefused {
        /// The filter.
        filter: String,
        /// Reason name.
        reason: String,
    },
    /// A request to the broker could not be queued (the connection task ended).
    #[error("the MQTT connection task has stopped")]
    ClientGone,
    /// Waited for an answer that did not come.
    #[error("no answer on {topic} within {secs} s")]
    NoAnswer {
        /// Where the answer was expected.
        topic: String,
        /// The wait.
        secs: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] vb_store::StoreError),
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS config could not be built.
    #[error("TLS setup")]
    TlsSetup(#[source] rustls::Error),
}

/// rustls's error somewhere in a connection error's chain, if any.
fn rustls_error(err: &ConnectionError) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                    return Some(r);
                }
            }
        }
        cur = e.source();
    }
    None
}

impl SyncError {
    /// Sorts a failure to connect into what the operator must fix.
    pub fn from_connect(conn: &BrokerConn, err: ConnectionError) -> SyncError {
        let addr = conn.addr();
        if let Some(r) = rustls_error(&err) {
            if matches!(r, rustls::Error::InvalidCertificate(_)) {
                return SyncError::UntrustedServer {
                    addr,
                    ca_file: conn.ca_file.display().to_string(),
                    detail: r.to_string(),
                };
            }
        }
        match err {
            ConnectionError::ConnectionRefused(code) => match (code, &conn.username) {
                (ConnectReturnCode::BadUserNamePassword, Some(user)) => SyncError::BadCredentials {
                    addr,
                    user: user.clone(),
                },
                (
                    ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
                    None,
                ) => SyncError::AnonymousRefused { addr },
                (ConnectReturnCode::NotAuthorized, Some(user)) => SyncError::BadCredentials {
                    addr,
                    user: user.clone(),
                },
                (code, _) => SyncError::Refused { addr, code },
            },
            ConnectionError::Timeout(_) => SyncError::Timeout { addr, secs: 10 },
            source => SyncError::Unreachable { addr, source },
        }
    }

    /// True when retrying cannot help until someone changes a file
    /// (certificate, credentials).
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            SyncError::UntrustedServer { .. }
                | SyncError::BadCredentials { .. }
                | SyncError::AnonymousRefused { .. }
                | SyncError::Refused { .. }
        )
    }
}
