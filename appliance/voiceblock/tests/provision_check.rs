//! `voiceblock provision` and `voiceblock check` through the real binary:
//! files and permissions provision writes, check's report on a good and on a
//! broken install, and check against a real mosquitto broker.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn voiceblock(args: &[&str], models_dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voiceblock"))
        .args(args)
        .arg("--models-dir")
        .arg(models_dir)
        .env_remove("VOICEBLOCK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run voiceblock");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "voiceblock panicked: {text}");
    (out.status.success(), text)
}

/// A model directory with one small "model" and a manifest pinning it.
struct Install {
    dir: tempfile::TempDir,
}

impl Install {
    fn new() -> Install {
        let dir = tempfile::tempdir().expect("tempdir");
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).expect("mkdir");
        let content = b"not really a model, but pinned like one\n";
        std::fs::write(models.join("tiny.bin"), content).expect("write model");
        let sha = hex::encode(Sha256::digest(content));
        let manifest = format!(
            r#"schema = 1
[[model]]
name = "tiny"
role = "tts"
file = "tiny.bin"
size = {size}
sha256 = "{sha}"
licence = "MIT"
official = {{ url = "https://example.invalid/tiny.bin" }}
[model.airgap]
conversion = "copy"
[[model.airgap.packages]]
name = "pkg"
version = "1"
archive = "pkg-1-py3-none-any.whl"
sha256 = "{sha}"
members = ["pkg/tiny.bin"]
"#,
            size = content.len()
        );
        std::fs::write(dir.path().join("manifest.toml"), manifest).expect("write manifest");
        Install { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8").to_owned()
    }

    fn provision(&self, extra: &[&str]) -> (bool, String) {
        let config = self.s("etc/voiceblock.toml");
        let mut args = vec![
            "provision",
            "--config",
            &config,
            "--device-id",
            "vb-test-01",
            "--sip-user",
            "reception",
            "--sip-domain",
            "example.com",
        ];
        args.extend_from_slice(extra);
        voiceblock(&args, &self.path("models"))
    }

    fn check(&self) -> (bool, String) {
        let config = self.s("etc/voiceblock.toml");
        let manifest = self.s("manifest.toml");
        voiceblock(
            &[
                "check",
                "--config",
                &config,
                "--manifest",
                &manifest,
                "--timeout-ms",
                "1500",
            ],
            &self.path("models"),
        )
    }
}

/// A port nothing listens on (bound, read, released).
fn closed_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

fn closed_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("ephemeral port")
        .port()
}

fn line<'a>(report: &'a str, status: &str, item: &str) -> Option<&'a str> {
    report
        .lines()
        .find(|l| l.starts_with(status) && l[4..].trim_start().starts_with(item))
}

#[test]
fn provision_writes_a_0600_secrets_file_and_refuses_to_overwrite() {
    let inst = Install::new();
    let (ok, out) = inst.provision(&[]);
    assert!(ok, "{out}");
    let secrets = inst.path("etc/secrets.toml");
    let mode = std::fs::metadata(&secrets)
        .expect("secrets")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "secrets mode {mode:o}");
    let text = std::fs::read_to_string(&secrets).expect("read secrets");
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("api_token = \""))
        .and_then(|t| t.strip_suffix('"'))
        .expect("api_token line");
    assert_eq!(token.len(), 64, "{token}");
    assert!(
        out.contains(token),
        "the generated token is printed once: {out}"
    );
    let config = std::fs::read_to_string(inst.path("etc/voiceblock.toml")).expect("config");
    assert!(
        config.contains("id = \"vb-test-01\"") && !config.contains(token),
        "{config}"
    );

    // A second run must not clobber the box's identity.
    let (ok, out) = inst.provision(&[]);
    assert!(
        !ok && out.contains("exists") && out.contains("--force"),
        "{out}"
    );
    let (ok, out) = inst.provision(&["--force", "--api-token", &"k".repeat(40)]);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&secrets).expect("read secrets");
    assert!(text.contains(&"k".repeat(40)), "{text}");

    // Invalid values are refused before anything is written, each by name.
    let (ok, out) = inst.provision(&["--force", "--sip-listen", "nowhere", "--max-calls", "0"]);
    assert!(
        !ok && out.contains("sip.listen") && out.contains("sip.max_calls"),
        "{out}"
    );
}

#[test]
fn check_passes_a_good_install() {
    let inst = Install::new();
    let (ok, out) = inst.provision(&[]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(ok, "{report}");
    for item in ["secrets", "config", "model tiny"] {
        assert!(
            line(&report, "PASS", item).is_some(),
            "{item} should pass: {report}"
        );
    }
    for item in ["alsa", "sip", "mqtt", "llm"] {
        assert!(
            line(&report, "SKIP", item).is_some(),
            "{item} is not configured: {report}"
        );
    }
    assert!(report.contains("check: 3 PASS, 0 FAIL, 4 SKIP"), "{report}");
}

#[test]
fn check_names_each_problem_of_a_broken_install() {
    let inst = Install::new();
    let registrar = format!("127.0.0.1:{}", closed_udp_port());
    let broker = format!("127.0.0.1:{}", closed_tcp_port());
    let llm = format!("http://127.0.0.1:{}/v1", closed_tcp_port());
    let (ok, out) = inst.provision(&[
        "--sip-registrar",
        &registrar,
        "--sip-password",
        "sip-secret",
        "--mqtt-broker",
        &broker,
        "--mqtt-no-tls",
        "--mqtt-password",
        "mqtt-secret",
        "--llm-url",
        &llm,
        "--alsa-device",
        "hw:7,0",
    ]);
    assert!(ok, "{out}");
    // Break it: a model with the wrong bytes, secrets readable by others.
    std::fs::write(
        inst.path("models/tiny.bin"),
        b"NOT really a model, but pinned like one\n",
    )
    .expect("corrupt model");
    std::fs::set_permissions(
        inst.path("etc/secrets.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");

    let (ok, report) = inst.check();
    assert!(!ok, "a broken install must fail: {report}");
    let fail = |item: &str, needles: &[&str]| {
        let l = line(&report, "FAIL", item)
            .unwrap_or_else(|| panic!("no FAIL line for {item}: {report}"));
        for n in needles {
            assert!(l.contains(n), "{item}: expected {n:?} in {l:?}");
        }
    };
    fail("secrets", &["secrets.toml", "0644", "chmod 600"]);
    fail("model tiny", &["sha256", "tiny.bin"]);
    fail("alsa", &["hw:7,0", "/dev/snd/pcmC7D0"]);
    fail("sip", &[&registrar]);
    fail("mqtt", &[&broker, "TCP connect"]);
    fail("llm", &["/v1/models"]);
    assert!(out_line_count(&report, "FAIL") >= 6, "{report}");
    assert!(report.contains("check(s) failed"), "{report}");
}

fn out_line_count(report: &str, status: &str) -> usize {
    report.lines().filter(|l| l.starts_with(status)).count()
}

#[test]
fn check_reports_an_unreadable_config_by_name() {
    let inst = Install::new();
    std::fs::create_dir_all(inst.path("etc")).expect("mkdir");
    std::fs::write(
        inst.path("etc/voiceblock.toml"),
        "[device]\nid = \"x\"\ncolour = 1\n",
    )
    .expect("write");
    let (ok, report) = inst.check();
    assert!(!ok, "{report}");
    let l = line(&report, "FAIL", "config").expect("config FAIL line");
    assert!(l.contains("voiceblock.toml"), "{l}");
    assert!(report.contains("unknown field `colour`"), "{report}");
    assert!(line(&report, "SKIP", "mqtt").is_some(), "{report}");
}

/// mosquitto on an ephemeral loopback port with one user, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!("{bin} not found: scripts/setup installs it (apt package mosquitto)");
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(need("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        "/CN=voiceblock test CA",
    ]);
    openssl(dir, &a);
    let key = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    openssl(dir, &a);
    let ext = dir.join(format!("{name}-san.ext"));
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write ext");
    let cert = format!("{name}-server.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            ext.to_str().expect("utf-8"),
        ],
    );
    Pki {
        ca: dir.join(ca),
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

fn start_mosquitto(user: &str, password: &str, tls: Option<&Pki>) -> Mosquitto {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let passwd = dir.path().join("passwd");
    let st = Command::new(need("mosquitto_passwd"))
        .args(["-c", "-b"])
        .arg(&passwd)
        .args([user, password])
        .status()
        .expect("mosquitto_passwd");
    assert!(st.success(), "mosquitto_passwd failed");
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let port = closed_tcp_port();
    // Running as root, mosquitto would switch to user `mosquitto`; keep root
    // so it can read the temp dir.
    let user_line = if is_root() { "user root\n" } else { "" };
    let tls_lines = tls.map_or_else(String::new, |p| {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            p.ca.display(),
            p.cert.display(),
            p.key.display()
        )
    });
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{user_line}listener {port} 127.0.0.1\n{tls_lines}allow_anonymous false\npassword_file {}\npersistence false\nlog_dest stderr\n",
            passwd.display()
        ),
    )
    .expect("write conf");
    let child = Command::new(need("mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let mut m = Mosquitto {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = m.child.try_wait() {
            panic!("mosquitto exited at start: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port} within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    m
}

fn is_root() -> bool {
    // The owner of /proc/self is this process's effective uid.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn check_logs_in_to_a_real_mosquitto_and_names_a_wrong_password() {
    let broker = start_mosquitto("vb-test-01", "right-password", None);
    let inst = Install::new();
    let addr = format!("127.0.0.1:{}", broker.port);
    let (ok, out) = inst.provision(&[
        "--mqtt-broker",
        &addr,
        "--mqtt-no-tls",
        "--mqtt-password",
        "right-password",
    ]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(ok, "{report}");
    let l = line(&report, "PASS", "mqtt").expect("mqtt PASS");
    assert!(l.contains("accepted") && l.contains(&addr), "{l}");

    let (ok, out) = inst.provision(&[
        "--force",
        "--mqtt-broker",
        &addr,
        "--mqtt-no-tls",
        "--mqtt-password",
        "wrong-password",
    ]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(!ok, "{report}");
    let l = line(&report, "FAIL", "mqtt").expect("mqtt FAIL");
    assert!(
        l.contains("refused")
            && (l.contains("not authorized") || l.contains("bad username or password")),
        "{l}"
    );
}

#[test]
fn check_completes_a_tls_handshake_with_the_configured_ca_and_names_a_wrong_one() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(pki_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let good = make_pki(pki_dir.path(), "good");
    let other = make_pki(pki_dir.path(), "other");
    for f in [&good.key, &good.cert, &good.ca] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let broker = start_mosquitto("vb-test-01", "pw", Some(&good));
    let inst = Install::new();
    let addr = format!("127.0.0.1:{}", broker.port);
    let ca = good.ca.to_str().expect("utf-8").to_owned();
    let (ok, out) = inst.provision(&[
        "--mqtt-broker",
        &addr,
        "--mqtt-ca",
        &ca,
        "--mqtt-password",
        "pw",
    ]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(ok, "{report}");
    let l = line(&report, "PASS", "mqtt").expect("mqtt PASS");
    assert!(l.contains("TLS") && l.contains("accepted"), "{l}");

    let wrong = other.ca.to_str().expect("utf-8").to_owned();
    let (ok, out) = inst.provision(&[
        "--force",
        "--mqtt-broker",
        &addr,
        "--mqtt-ca",
        &wrong,
        "--mqtt-password",
        "pw",
    ]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(!ok, "{report}");
    let l = line(&report, "FAIL", "mqtt").expect("mqtt FAIL");
    assert!(l.contains("TLS handshake"), "{l}");
}

/// kamailio answering every request with 200 on an ephemeral loopback UDP
/// port, killed on drop.
struct Kamailio {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_kamailio() -> Kamailio {
    let bin = need("kamailio");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_udp_port();
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(
        &cfg,
        format!(
            "#!KAMAILIO\ndebug=1\nlog_stderror=yes\nchildren=1\ndisable_tcp=yes\n\
             listen=udp:127.0.0.1:{port}\nloadmodule \"sl.so\"\n\
             request_route {{\n    sl_send_reply(\"200\", \"OK\");\n}}\n"
        ),
    )
    .expect("write cfg");
    let child = Command::new(bin)
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .arg("-Y")
        .arg(dir.path())
        .arg("-P")
        .arg(dir.path().join("kamailio.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kamailio");
    let mut k = Kamailio {
        child,
        port,
        _dir: dir,
    };
    // Ready when the kernel lists the port as bound (probing by binding it
    // ourselves could steal it from kamailio).
    let needle = format!("0100007F:{port:04X}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&needle)) {
        if let Ok(Some(st)) = k.child.try_wait() {
            panic!("kamailio exited at start ({st}): run `kamailio -c -f` on the test's config");
        }
        assert!(
            Instant::now() < deadline,
            "kamailio did not bind udp {port} within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}

#[test]
fn check_gets_an_options_answer_from_a_real_kamailio() {
    let kam = start_kamailio();
    let inst = Install::new();
    let registrar = format!("127.0.0.1:{}", kam.port);
    let (ok, out) = inst.provision(&["--sip-registrar", &registrar, "--sip-password", "secret"]);
    assert!(ok, "{out}");
    let (ok, report) = inst.check();
    assert!(ok, "{report}");
    let l = line(&report, "PASS", "sip").expect("sip PASS");
    assert!(
        l.contains("SIP/2.0 200 OK") && l.contains(&registrar),
        "{l}"
    );
}
