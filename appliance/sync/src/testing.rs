//! A real mosquitto for integration tests (feature `test-broker`): a CA and
//! server certificate made with the openssl CLI, a password file made with
//! `mosquitto_passwd`, an ACL that keeps each device in
//! `voiceblock/<user>/#` and gives `admin` the whole tree, persistence on,
//! TLS on an ephemeral 127.0.0.1 port, everything in a temp dir.
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
        let openssl = need("openssl");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
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
            .arg(d.join("server.key"))
            .arg("-out")
            .arg(d.join("server.csr")));
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new(&openssl)
            .args(["x509", "-req", "-days", "3", "-CAcreateserial"])
            .arg("-in")
            .arg(d.join("server.csr"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-CAkey")
            .arg(d.join("ca.key"))
            .arg("-out")
            .arg(d.join("server.pem"))
            .arg("-extfile")
            .arg(d.join("ext.cnf")));
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
