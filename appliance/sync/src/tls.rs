//! TLS and MQTT options: one rustls crypto provider (ring) for the whole
//! process, because the SIP stack uses ring and mixing it with aws-lc-rs
//! panics on the first handshake.

use std::sync::Arc;

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::BrokerConn;

/// Largest MQTT packet the box accepts (CONNECT's Maximum Packet Size: the
/// broker drops bigger messages instead of sending them). Just above every
/// application limit, the largest being a robot push
/// ([`crate::robot_update::MAX_MESSAGE_BYTES`], about 21.3 MiB), so an
/// oversized push reaches the box and gets a reply naming the real limit
/// instead of silence.
pub const MAX_PACKET_BYTES: u32 = 24 * 1024 * 1024;

/// Installs ring as the process's rustls provider; harmless when called
/// again or when ring is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Certificates in a PEM file's contents.
pub fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(rustls::pki_types::pem::Error::NoItemsFound);
    }
    Ok(certs)
}

/// A rustls client config trusting only the configured CA.
pub fn client_config(conn: &BrokerConn) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = parse_ca(&conn.ca_pem)
        .map_err(|_| rustls::Error::General("CA file holds no certificate".into()))?;
    roots.add_parsable_certificates(certs);
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// rumqttc v5 options for `client_id` on `conn`, TLS only.
pub fn mqtt_options(
    conn: &BrokerConn,
    client_id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, conn.host.clone(), conn.port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    o.set_keep_alive(conn.keepalive);
    o.set_connection_timeout(10);
    o.set_max_packet_size(Some(MAX_PACKET_BYTES));
    if let Some(user) = &conn.username {
        o.set_credentials(user.clone(), conn.password.clone().unwrap_or_default());
    }
    o
}
