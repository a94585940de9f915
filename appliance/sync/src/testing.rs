//! A real mosquitto for integration tests (feature `test-broker`): a CA and
//! server certificate made with the openssl CLI, a password file made with
//! `mosquitto_passwd`, an ACL that keeps each device in
//! `voiceblock/<user>/#` and gives `admin` the whole tree, persistence on,
//! TLS on an ephemeral 127.0.0.1 port, everything in a temp dir. Also a
//! scripted HTTPS server ([`HttpsServer`]) for the webhook forwarder's tests.
//!
//! mosquitto, mosquitto_passwd and openssl come from `scripts/setup` (apt
//! packages `mosquitto`, `mosquitto-clients`, `openssl`); a missing one fails
//! the test with that message rather than skipping it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::BrokerConn;

/// Users the broker knows, with their passwords.
pub const USERS: &[(&str, &str)] = &[
    ("dev-a", "pass-a"),
    ("dev-b", "pass-b"),
    ("admin", "admin-pass"),
];

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running (or stopped) test broker.
pub struct Broker {
    dir: tempfile::TempDir,
    /// TLS port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

fn need(bin: &str) -> String {
    let found = if bin.starts_with('/') {
        Path::new(bin).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    assert!(
        found,
        "{bin} is missing: run scripts/setup (apt packages mosquitto, mosquitto-clients, openssl)"
    );
    bin.to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA (`<name>.pem`, `<name>.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let openssl = need("openssl");
    let pem = dir.join(format!("{name}.pem"));
    run(Command::new(&openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&pem)
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
    pem
}

/// Makes a server certificate (`<name>.pem`, `<name>.key`) for `localhost`
/// and 127.0.0.1, signed by the CA `<ca>` made by [`make_ca`] in `dir`.
pub fn make_server_cert(dir: &Path, ca: &str, name: &str) -> (PathBuf, PathBuf) {
    let openssl = need("openssl");
    let (pem, key, csr) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
    );
    run(Command::new(&openssl)
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    let ext = dir.join(format!("{name}.ext.cnf"));
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new(&openssl)
        .args(["x509", "-req", "-days", "3", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(dir.join(format!("{ca}.pem")))
        .arg("-CAkey")
        .arg(dir.join(format!("{ca}.key")))
        .arg("-out")
        .arg(&pem)
        .arg("-extfile")
        .arg(&ext));
    (pem, key)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

impl Broker {
    /// Writes the CA, certificates, users, ACL and config, and starts mosquitto.
    pub fn start() -> Broker {
        need(MOSQUITTO);
        let passwd = need("mosquitto_passwd");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
        make_server_cert(d, "ca", "server");
        let pw = d.join("passwd");
        for (i, (user, pass)) in USERS.iter().enumerate() {
            let mut c = Command::new(&passwd);
            if i == 0 {
                c.arg("-c");
            }
            run(c.arg("-b").arg(&pw).args([user, pass]));
        }
        std::fs::write(
            d.join("acl"),
            "user admin\ntopic readwrite voiceblock/#\n\npattern readwrite voiceblock/%u/#\n",
        )
        .unwrap();
        for (user, pass) in USERS {
            std::fs::write(d.join(format!("{user}.secret")), format!("{pass}\n")).unwrap();
        }
        std::fs::write(d.join("wrong.secret"), "not-the-password\n").unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        let port = free_port();
        let conf = format!(
            "user root\n\
             per_listener_settings false\n\
             allow_anonymous false\n\
             password_file {pw}\n\
             acl_file {acl}\n\
             persistence true\n\
             persistence_location {data}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             log_dest file {log}\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n",
            pw = pw.display(),
            acl = d.join("acl").display(),
            data = d.join("data").display(),
            log = d.join("mosquitto.log").display(),
            ca = d.join("ca.pem").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
        );
        std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            child: None,
        };
        b.resume_process();
        b
    }

    /// The temp dir (certificates, secrets, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn resume_process(&mut self) {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "mosquitto exited ({status}); log:\n{}",
                    std::fs::read_to_string(self.dir().join("mosquitto.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            run(Command::new("kill").args([sig, &c.id().to_string()]));
        }
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, with its saved state.
    pub fn restart(&mut self) {
        self.stop();
        self.resume_process();
    }

    /// Starts it after [`Broker::stop`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.resume_process();
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Connection settings for `user` with its own password, trusting the test CA.
    pub fn conn(&self, user: &str) -> BrokerConn {
        let pass = USERS
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.to_string());
        BrokerConn {
            host: "127.0.0.1".into(),
            port: self.port,
            ca_file: self.dir().join("ca.pem"),
            ca_pem: std::fs::read(self.dir().join("ca.pem")).unwrap(),
            username: Some(user.into()),
            password: pass,
            keepalive: Duration::from_secs(5),
        }
    }

    /// A TOML `[sync]` file for `device` connecting as `user`, store at `store`.
    pub fn sync_toml(&self, device: &str, user: &str, store: &Path) -> String {
        format!(
            "[sync]\ndevice_id = \"{device}\"\nstore = \"{store}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             ca_file = \"{ca}\"\nusername = \"{user}\"\npassword_file = \"{pw}\"\nkeepalive_s = 5\n\
             backoff_max_s = 2\noutbox_poll_ms = 100\nmetrics_interval_s = 0\n",
            store = store.display(),
            port = self.port,
            ca = self.dir().join("ca.pem").display(),
            pw = self.dir().join(format!("{user}.secret")).display(),
        )
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One request the [`HttpsServer`] received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method and path, e.g. `POST /hook`.
    pub line: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The status it was answered with (0: not answered, the connection
    /// was held and then closed).
    pub status: u16,
}

impl HttpRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTPS/1.1 server on 127.0.0.1 (std threads + rustls), for webhook
/// tests. It answers requests in turn with the statuses of its script, then
/// 200; a scripted 0 holds the connection for `stall` without answering
/// (a timeout for the client). Every request is recorded.
pub struct HttpsServer {
    /// Its port.
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<HttpRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpsServer {
    /// Starts it with a certificate from the CA `ca` in `dir` (see
    /// [`make_ca`]).
    pub fn start(dir: &Path, ca: &str, script: Vec<u16>, stall: Duration) -> HttpsServer {
        use rustls::pki_types::pem::PemObject;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let (pem, key) = make_server_cert(dir, ca, "https-server");
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&pem)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((sock, _)) => {
                            let (config, requests, script) =
                                (config.clone(), requests.clone(), script.clone());
                            std::thread::spawn(move || {
                                let _ = serve_one(sock, config, &requests, &script, stall);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        HttpsServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>/hook`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    sock: std::net::TcpStream,
    config: std::sync::Arc<rustls::ServerConfig>,
    requests: &std::sync::Mutex<Vec<HttpRequest>>,
    script: &std::sync::Mutex<std::collections::VecDeque<u16>>,
    stall: Duration,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let status = script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
        .unwrap_or(200);
    requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(HttpRequest {
            line,
            headers,
            body,
            status,
        });
    if status == 0 {
        std::thread::sleep(stall);
        return Ok(());
    }
    let text = if status == 200 {
        "ok"
    } else {
        "scripted failure"
    };
    write!(
        tls,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
