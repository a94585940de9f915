//! The HTTP side: one POST to `<base>/chat/completions` with `stream: true`,
//! over rustls with the ring provider only (the SIP stack uses ring; two
//! providers in one process make rustls panic), certificate verification
//! always on, extra CAs from a PEM file for LAN servers.

use crate::chunk::{ChatStreamParser, StreamItem, StreamLimits};
use crate::config::{ApiKey, LlmConfig};
use crate::error::{ClientError, LlmError};
use crate::memory::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Longest error body kept from a failed request.
const MAX_ERROR_BODY: usize = 2048;
/// Longest API key file read.
const MAX_KEY_FILE: u64 = 4096;

/// One chat request.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    /// The conversation, system prompt first.
    pub messages: Vec<Message>,
    /// Tool definitions (function calling); `None` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// Reply cap in tokens, overriding the config's when set.
    #[serde(skip)]
    pub max_tokens: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [Message],
    stream: bool,
    temperature: f32,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a serde_json::Value>,
}

/// A client for one endpoint; cheap to clone, shared by all calls.
#[derive(Debug, Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: Arc<LlmConfig>,
    api_key: Option<String>,
    limits: StreamLimits,
}

/// Reads PEM certificates from `path`.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::CaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::CaPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ClientError::NoCaCerts {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in load_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|source| ClientError::Tls { source })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ClientError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn read_key(key: &ApiKey) -> Result<Option<String>, ClientError> {
    match key {
        ApiKey::None => Ok(None),
        ApiKey::Env(var) => std::env::var(var)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(Some)
            .ok_or_else(|| ClientError::KeyEnv { var: var.clone() }),
        ApiKey::File(path) => {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_KEY_FILE).read_to_string(&mut text))
                .map_err(|source| ClientError::KeyFile {
                    path: path.clone(),
                    source,
                })?;
            Ok(text
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty()))
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is
/// treated as absent).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl LlmClient {
    /// Builds the client: reads the key and the CA file, sets up rustls.
    pub fn new(config: &LlmConfig) -> Result<LlmClient, ClientError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::Http { source })?;
        Ok(LlmClient {
            http,
            config: Arc::new(config.clone()),
            api_key: read_key(&config.api_key)?,
            limits: StreamLimits::default(),
        })
    }

    /// The same client with other stream limits.
    pub fn with_limits(mut self, limits: StreamLimits) -> LlmClient {
        self.limits = limits;
        self
    }

    /// The config it was built from.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Sends the request; resolves once response headers are in. An error
    /// status becomes [`LlmError::Status`] with `Retry-After`. Time limits
    /// are the caller's (the responder races this against its budgets).
    pub async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let url = self.config.chat_url();
        let body = Body {
            model: &self.config.model,
            messages: &request.messages,
            stream: true,
            temperature: self.config.temperature,
            max_tokens: request.max_tokens.unwrap_or(self.config.max_tokens),
            tools: request.tools.as_ref(),
        };
        let mut req = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let mut resp = req.send().await.map_err(|source| LlmError::Request {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let mut body = Vec::new();
            // Read a bounded start of the body: it usually says why.
            while body.len() < MAX_ERROR_BODY {
                match resp.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    Ok(None) | Err(_) => break,
                }
            }
            body.truncate(MAX_ERROR_BODY);
            return Err(LlmError::Status {
                url,
                status: status.as_u16(),
                retry_after,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(ChatStream {
            resp,
            parser: ChatStreamParser::new(self.limits),
            pending: VecDeque::new(),
            ended: false,
        })
    }
}

/// A streaming reply; dropping it closes the connection (that is how a
/// barge-in stops the server's work).
#[derive(Debug)]
pub struct ChatStream {
    resp: reqwest::Response,
    parser: ChatStreamParser,
    pending: VecDeque<StreamItem>,
    ended: bool,
}

impl ChatStream {
    /// The next item; `Ok(None)` after [`StreamItem::Finished`].
    pub async fn next(&mut self) -> Result<Option<StreamItem>, LlmError> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.ended || self.parser.is_finished() {
                return Ok(None);
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.pending.extend(self.parser.push(&bytes)?),
                Ok(None) => {
                    self.ended = true;
                    self.pending.extend(self.parser.finish()?);
                }
                Err(source) => return Err(LlmError::Body { source }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        assert!(matches!(
            load_ca_file(&missing),
            Err(ClientError::CaFile { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            load_ca_file(&empty),
            Err(ClientError::NoCaCerts { .. })
        ));
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load_ca_file(&bad).is_err());
    }

    #[test]
    fn key_sources() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "sk-test\nignored\n").unwrap();
        assert_eq!(
            read_key(&ApiKey::File(f)).unwrap().as_deref(),
            Some("sk-test")
        );
        assert!(matches!(
            read_key(&ApiKey::Env("VB_LLM_TEST_SURELY_UNSET".into())),
            Err(ClientError::KeyEnv { .. })
        ));
        assert_eq!(read_key(&ApiKey::None).unwrap(), None);
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
