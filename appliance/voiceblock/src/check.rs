//! `voiceblock check`: validates an installed box and prints one PASS, FAIL
//! or SKIP line per item: config, secrets permissions, models' sha256, the
//! ALSA device, and reachability of the SIP registrar, MQTT broker and LLM.
//!
//! The wire formats it speaks (a SIP OPTIONS request, an MQTT 3.1.1 CONNECT)
//! are built and parsed by pure functions here; only [`run_checks`] does I/O.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vb_models::{Manifest, ModelStore};

use crate::config::{Config, ConfigError, HostPort, Mqtt, RawConfig, Secrets};

/// Outcome of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Pass,
    /// Broken: `check` exits non-zero.
    Fail,
    /// Not configured or not checkable here.
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One report line.
#[derive(Debug, Clone)]
pub struct Line {
    /// Outcome.
    pub status: Status,
    /// What was checked (`config`, `model whisper-base`, `mqtt`).
    pub item: String,
    /// What was found, and what to do when it failed.
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Default)]
pub struct Report {
    /// In check order.
    pub lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, status: Status, item: impl Into<String>, detail: impl Into<String>) {
        self.lines.push(Line {
            status,
            item: item.into(),
            detail: detail.into(),
        });
    }

    /// Lines with this status.
    pub fn count(&self, s: Status) -> usize {
        self.lines.iter().filter(|l| l.status == s).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.lines.iter().map(|l| l.item.len()).max().unwrap_or(0);
        for l in &self.lines {
            // Multi-line details (a TOML parse error's excerpt) stay under
            // their line, indented past the status and item columns.
            let mut detail = l.detail.lines();
            writeln!(
                f,
                "{}  {:<width$}  {}",
                l.status,
                l.item,
                detail.next().unwrap_or("")
            )?;
            for more in detail {
                writeln!(f, "      {:<width$}  {more}", "")?;
            }
        }
        write!(
            f,
            "check: {} PASS, {} FAIL, {} SKIP",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip)
        )
    }
}

/// What to check against.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Config file.
    pub config: PathBuf,
    /// Model manifest (the built-in one unless a test passes its own).
    pub manifest: Manifest,
    /// Model directory.
    pub store: PathBuf,
    /// The uid that must own the secrets file (the service user).
    pub secrets_owner: u32,
    /// How the owner is called in messages.
    pub secrets_owner_name: String,
    /// Budget for each network check.
    pub timeout: Duration,
}

/// `voiceblock check` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Config file (default: $VOICEBLOCK_CONFIG or /etc/voiceblock/voiceblock.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The user the daemon runs as, who must own the secrets file (default: you).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Budget for each network check, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Model manifest instead of the built-in one.
    #[arg(long, value_name = "FILE", hide = true)]
    pub manifest: Option<PathBuf>,
}

/// Runs `voiceblock check`, prints the report, fails when any line failed.
pub fn command(models: &vb_call::Models, args: CheckArgs) -> anyhow::Result<()> {
    let (owner, owner_name) = match &args.user {
        Some(name) => (crate::provision::lookup_user(name)?.0, name.clone()),
        None => {
            let uid = crate::provision::euid();
            (uid, format!("uid {uid} (you)"))
        }
    };
    let manifest = match &args.manifest {
        Some(p) => Manifest::load(p)?,
        None => models.manifest.clone(),
    };
    if !(100..=60_000).contains(&args.timeout_ms) {
        anyhow::bail!("--timeout-ms {}: must be 100 to 60000", args.timeout_ms);
    }
    let opts = CheckOptions {
        config: args.config.unwrap_or_else(crate::config::default_path),
        manifest,
        store: models.store.root().to_owned(),
        secrets_owner: owner,
        secrets_owner_name: owner_name,
        timeout: Duration::from_millis(args.timeout_ms),
    };
    println!("voiceblock check: {}", opts.config.display());
    let report = run_checks(&opts);
    println!("{report}");
    let failed = report.count(Status::Fail);
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// Runs every check.
pub fn run_checks(opts: &CheckOptions) -> Report {
    let mut r = Report::default();

    // Config and secrets: parse the config first so the secrets path is known
    // even when validation fails.
    let raw = match RawConfig::load(&opts.config) {
        Ok(raw) => Some(raw),
        Err(e) => {
            r.push(Status::Fail, "config", e.to_string());
            None
        }
    };
    let secrets_path = raw.as_ref().map_or_else(
        || {
            opts.config
                .parent()
                .unwrap_or(Path::new("."))
                .join(crate::config::DEFAULT_SECRETS_NAME)
        },
        |raw| raw.secrets_path(&opts.config),
    );
    let secrets = check_secrets_file(&mut r, &secrets_path, opts);
    let config = match (&raw, secrets) {
        (Some(raw), Some(secrets)) => match raw.validate(&opts.config, secrets) {
            Ok(c) => {
                r.push(
                    Status::Pass,
                    "config",
                    format!("{} is valid", opts.config.display()),
                );
                Some(c)
            }
            Err(ConfigError::Invalid { problems, .. }) => {
                for p in problems.0 {
                    r.push(
                        Status::Fail,
                        "config",
                        format!("{}: {p}", opts.config.display()),
                    );
                }
                None
            }
            Err(e) => {
                r.push(Status::Fail, "config", e.to_string());
                None
            }
        },
        (Some(_), None) => {
            r.push(
                Status::Skip,
                "config",
                "not validated: the secrets file is unusable",
            );
            None
        }
        (None, _) => None,
    };

    check_models(&mut r, opts);

    match &config {
        None => {
            for item in ["alsa", "sip", "mqtt", "llm"] {
                r.push(Status::Skip, item, "needs a valid config");
            }
        }
        Some(c) => {
            check_alsa(&mut r, c);
            check_sip(&mut r, c, opts.timeout);
            check_mqtt(&mut r, c, opts.timeout);
            check_llm(&mut r, c, opts.timeout);
        }
    }
    r
}

fn check_secrets_file(r: &mut Report, path: &Path, opts: &CheckOptions) -> Option<Secrets> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.push(
                Status::Fail,
                "secrets",
                format!("{}: {e} (run `voiceblock provision`)", path.display()),
            );
            return None;
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    let mut ok = true;
    if mode & 0o077 != 0 {
        r.push(
            Status::Fail,
            "secrets",
            format!(
                "{}: mode {mode:04o} lets group/others read it: chmod 600 {}",
                path.display(),
                path.display()
            ),
        );
        ok = false;
    }
    if meta.uid() != opts.secrets_owner {
        r.push(
            Status::Fail,
            "secrets",
            format!(
                "{}: owned by uid {}, not {} (uid {}): chown {} {}",
                path.display(),
                meta.uid(),
                opts.secrets_owner_name,
                opts.secrets_owner,
                opts.secrets_owner_name,
                path.display()
            ),
        );
        ok = false;
    }
    let secrets = match Secrets::load(path) {
        Ok(s) => s,
        Err(e) => {
            r.push(Status::Fail, "secrets", e.to_string());
            return None;
        }
    };
    if ok {
        r.push(
            Status::Pass,
            "secrets",
            format!(
                "{}: mode {mode:04o}, owner {}",
                path.display(),
                opts.secrets_owner_name
            ),
        );
    }
    Some(secrets)
}

fn check_models(r: &mut Report, opts: &CheckOptions) {
    let store = ModelStore::new(opts.store.clone());
    let arch = std::env::consts::ARCH;
    for m in opts.manifest.models.iter().filter(|m| m.fits_arch(arch)) {
        let item = format!("model {}", m.name);
        match store.verify(&opts.manifest, &m.name) {
            Ok(path) => r.push(
                Status::Pass,
                item,
                format!("sha256 ok ({})", path.display()),
            ),
            Err(e) => r.push(Status::Fail, item, e.to_string()),
        }
    }
}

/// The `/dev/snd` nodes behind an ALSA `hw:`/`plughw:` name, or `None` for
/// names only alsa-lib can resolve (`default`, plugins).
pub fn alsa_nodes(
    name: &str,
    cards: &dyn Fn(&str) -> Option<u32>,
) -> Option<Result<[String; 2], String>> {
    let spec = name
        .strip_prefix("plughw:")
        .or_else(|| name.strip_prefix("hw:"))?;
    let mut card = None;
    let mut dev = 0u32;
    for (i, part) in spec.split(',').enumerate() {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k, v),
            None if i == 0 => ("CARD", part),
            None => ("DEV", part),
        };
        match key {
            "CARD" => {
                card = Some(match value.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => match cards(value) {
                        Some(n) => n,
                        None => return Some(Err(format!("no sound card named {value:?}"))),
                    },
                })
            }
            "DEV" => match value.parse() {
                Ok(n) => dev = n,
                Err(_) => return Some(Err(format!("device number {value:?} is not a number"))),
            },
            _ => return Some(Err(format!("unknown key {key:?} in {name:?}"))),
        }
    }
    let card = match card {
        Some(c) => c,
        None => return Some(Err(format!("{name:?} names no card"))),
    };
    Some(Ok([
        format!("/dev/snd/pcmC{card}D{dev}c"),
        format!("/dev/snd/pcmC{card}D{dev}p"),
    ]))
}

fn card_by_id(id: &str) -> Option<u32> {
    // /proc/asound/<id> is a link to card<N>.
    let target = std::fs::read_link(Path::new("/proc/asound").join(id)).ok()?;
    target.to_str()?.strip_prefix("card")?.parse().ok()
}

fn check_alsa(r: &mut Report, c: &Config) {
    let Some(dev) = &c.alsa_device else {
        r.push(Status::Skip, "alsa", "no device.alsa_device configured");
        return;
    };
    match alsa_nodes(dev, &card_by_id) {
        None => r.push(
            Status::Skip,
            "alsa",
            format!("{dev:?} is not a hw:/plughw: device: only the daemon (alsa-lib) can open it"),
        ),
        Some(Err(why)) => r.push(Status::Fail, "alsa", format!("{dev:?}: {why}")),
        Some(Ok(nodes)) => {
            let mut problems = Vec::new();
            for node in &nodes {
                if let Err(e) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(node)
                {
                    problems.push(format!("{node}: {e}"));
                }
            }
            if problems.is_empty() {
                r.push(
                    Status::Pass,
                    "alsa",
                    format!("{dev}: capture and playback open"),
                );
            } else {
                r.push(
                    Status::Fail,
                    "alsa",
                    format!("{dev}: {}", problems.join("; ")),
                );
            }
        }
    }
}

/// A SIP OPTIONS request to `target` from `local` (RFC 3261 section 11).
pub fn sip_options(
    target: &HostPort,
    user: &str,
    domain: &str,
    local: SocketAddr,
    token: &str,
) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{domain}>;tag={token}\r\n\
         To: <sip:{target}>\r\n\
         Call-ID: {token}@voiceblock-check\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         User-Agent: voiceblock-check\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The status line of a SIP response answering Call-ID `token`, if `bytes` is one.
pub fn sip_response_status(bytes: &[u8], token: &str) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let status = text.lines().next()?;
    if !status.starts_with("SIP/2.0 ") {
        return None;
    }
    let call_id = format!("{token}@voiceblock-check");
    let matches = text.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            (k.eq_ignore_ascii_case("call-id") || k.eq_ignore_ascii_case("i"))
                && v.trim() == call_id
        })
    });
    matches.then(|| status.trim().to_owned())
}

fn resolve(hp: &HostPort) -> Result<SocketAddr, String> {
    (hp.host.as_str(), hp.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", hp.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", hp.host))
}

fn check_sip(r: &mut Report, c: &Config, timeout: Duration) {
    let Some(reg) = &c.sip.registrar else {
        r.push(
            Status::Skip,
            "sip",
            "no sip.registrar configured (direct calls only)",
        );
        return;
    };
    match sip_ping(reg, c, timeout) {
        Ok((status, took)) => r.push(
            Status::Pass,
            "sip",
            format!(
                "registrar {reg} answered OPTIONS over UDP: {status} ({} ms)",
                took.as_millis()
            ),
        ),
        Err(why) => r.push(Status::Fail, "sip", format!("registrar {reg}: {why}")),
    }
}

fn sip_ping(reg: &HostPort, c: &Config, timeout: Duration) -> Result<(String, Duration), String> {
    let addr = resolve(reg)?;
    let bind = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = UdpSocket::bind(bind).map_err(|e| format!("binding a UDP socket: {e}"))?;
    // connect() lets the kernel report ICMP port-unreachable as ECONNREFUSED.
    sock.connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let local = sock.local_addr().map_err(|e| e.to_string())?;
    let token = crate::provision::generate_token().map_err(|e| e.to_string())?;
    let token = &token[..20];
    let msg = sip_options(reg, &c.sip.user, &c.sip.domain, local, token);
    let start = Instant::now();
    sock.send(msg.as_bytes())
        .map_err(|e| format!("sending OPTIONS to {addr}: {e}"))?;
    let mut buf = vec![0u8; 8192];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!(
                "no SIP response from {addr} within {} ms",
                timeout.as_millis()
            ));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Some(status) = sip_response_status(&buf[..n], token) {
                    return Ok((status, start.elapsed()));
                }
                // Something else (a stray datagram): keep waiting.
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no SIP response from {addr} within {} ms",
                    timeout.as_millis()
                ))
            }
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    }
}

/// An MQTT 3.1.1 CONNECT packet (clean session, username and password).
pub fn mqtt_connect(client_id: &str, username: &str, password: &str, keepalive_s: u16) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, s: &str) {
        let b = s.as_bytes();
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&b[..usize::from(len)]);
    }
    let mut body = Vec::new();
    field(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0b1100_0010); // username, password, clean session
    body.extend_from_slice(&keepalive_s.to_be_bytes());
    field(&mut body, client_id);
    field(&mut body, username);
    field(&mut body, password);
    let mut out = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    out
}

/// The CONNACK return code, or why `bytes` is not a CONNACK.
pub fn mqtt_connack(bytes: &[u8]) -> Result<u8, String> {
    match bytes {
        [0x20, 0x02, _, code] => Ok(*code),
        [first, ..] => Err(format!(
            "expected CONNACK, got packet type 0x{:02x}",
            first >> 4
        )),
        [] => Err("connection closed before CONNACK".into()),
    }
}

fn connack_meaning(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version",
        2 => "client id rejected",
        3 => "server unavailable",
        4 => "bad username or password",
        5 => "not authorized",
        _ => "unknown return code",
    }
}

fn check_mqtt(r: &mut Report, c: &Config, timeout: Duration) {
    let Some(m) = &c.mqtt else {
        r.push(Status::Skip, "mqtt", "no [mqtt] configured");
        return;
    };
    let password = c.secrets.mqtt_password.clone().unwrap_or_default();
    match mqtt_probe(m, &c.device_id, &password, timeout) {
        Ok(detail) => r.push(
            Status::Pass,
            "mqtt",
            format!("broker {}: {detail}", m.broker),
        ),
        Err(why) => r.push(Status::Fail, "mqtt", format!("broker {}: {why}", m.broker)),
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut n = 0;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "{}: no PEM certificates in the CA file",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn mqtt_probe(
    m: &Mqtt,
    client_id: &str,
    password: &str,
    timeout: Duration,
) -> Result<String, String> {
    let addr = resolve(&m.broker)?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("TCP connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let connect = mqtt_connect(&format!("{client_id}-check"), &m.username, password, 30);
    let mut reply = [0u8; 4];
    let (got, how) = if m.tls {
        let config = tls_config(m.ca_file.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(m.broker.host.clone())
            .map_err(|e| format!("{}: {e}", m.broker.host))?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        let version = tls
            .conn
            .protocol_version()
            .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}"));
        tls.write_all(&connect)
            .map_err(|e| format!("sending CONNECT: {e}"))?;
        let n = read_up_to(&mut tls, &mut reply).map_err(|e| format!("reading CONNACK: {e}"))?;
        (n, version)
    } else {
        let mut tcp = tcp;
        tcp.write_all(&connect)
            .map_err(|e| format!("sending CONNECT: {e}"))?;
        let n = read_up_to(&mut tcp, &mut reply).map_err(|e| format!("reading CONNACK: {e}"))?;
        (n, "plain TCP".to_owned())
    };
    match mqtt_connack(&reply[..got])? {
        0 => Ok(format!("{how}, CONNECT as {:?} accepted", m.username)),
        code => Err(format!(
            "{how}, CONNECT as {:?} refused: {} (code {code})",
            m.username,
            connack_meaning(code)
        )),
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn check_llm(r: &mut Report, c: &Config, timeout: Duration) {
    let Some(llm) = &c.llm else {
        r.push(Status::Skip, "llm", "no [llm] configured");
        return;
    };
    let url = llm.url.join("/models");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build(),
    );
    match agent.get(&url).call() {
        Ok(resp) if resp.status().is_success() => {
            r.push(Status::Pass, "llm", format!("GET {url}: {}", resp.status()))
        }
        Ok(resp) => r.push(
            Status::Fail,
            "llm",
            format!("GET {url}: HTTP {}", resp.status()),
        ),
        Err(e) => r.push(Status::Fail, "llm", format!("GET {url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_its_response_match_by_call_id() {
        let target = HostPort {
            host: "127.0.0.1".into(),
            port: 5060,
        };
        let msg = sip_options(
            &target,
            "reception",
            "example.com",
            "127.0.0.1:40000".parse().unwrap(),
            "abc123",
        );
        assert!(msg.starts_with("OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"));
        assert!(msg.ends_with("Content-Length: 0\r\n\r\n"));
        let resp = "SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: abc123@voiceblock-check\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            sip_response_status(resp.as_bytes(), "abc123").as_deref(),
            Some("SIP/2.0 200 OK")
        );
        assert_eq!(sip_response_status(resp.as_bytes(), "other"), None);
        assert_eq!(
            sip_response_status(b"OPTIONS sip:x SIP/2.0\r\n", "abc123"),
            None
        );
        assert_eq!(sip_response_status(&[0xff, 0xfe], "abc123"), None);
    }

    #[test]
    fn mqtt_connect_layout() {
        let p = mqtt_connect("c", "u", "p", 30);
        // type, remaining length, "MQTT", level 4, flags, keepalive, 3 one-byte fields
        assert_eq!(p[0], 0x10);
        assert_eq!(usize::from(p[1]), p.len() - 2);
        assert_eq!(&p[2..8], b"\x00\x04MQTT");
        assert_eq!(p[8], 4);
        assert_eq!(p[9], 0b1100_0010);
        assert_eq!(&p[10..12], &30u16.to_be_bytes());
        assert_eq!(mqtt_connack(&[0x20, 2, 0, 5]), Ok(5));
        assert!(mqtt_connack(&[0x30, 2]).is_err());
        assert!(mqtt_connack(&[]).is_err());
        // Long fields need a multi-byte remaining length.
        let long = mqtt_connect("c", "u", &"x".repeat(300), 30);
        assert_eq!(long[1] & 0x80, 0x80);
    }

    #[test]
    fn alsa_names_map_to_device_nodes() {
        let cards = |id: &str| (id == "Headset").then_some(2);
        assert_eq!(
            alsa_nodes("hw:1,0", &cards),
            Some(Ok([
                "/dev/snd/pcmC1D0c".to_string(),
                "/dev/snd/pcmC1D0p".to_string()
            ]))
        );
        assert_eq!(
            alsa_nodes("plughw:CARD=Headset,DEV=3", &cards),
            Some(Ok([
                "/dev/snd/pcmC2D3c".to_string(),
                "/dev/snd/pcmC2D3p".to_string()
            ]))
        );
        assert!(matches!(alsa_nodes("hw:Nope", &cards), Some(Err(e)) if e.contains("Nope")));
        assert_eq!(alsa_nodes("default", &cards), None);
    }
}
