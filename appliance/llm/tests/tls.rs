//! TLS against a real TLS server (`openssl s_server`, installed by
//! scripts/setup) with its own CA: verification is on, so the handshake
//! fails without the CA and succeeds with `ca_file`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vb_dialog::Language;
use vb_llm::{ChatRequest, LlmClient, LlmConfig, LlmError, Message, Role};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: run scripts/setup (it installs openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vb-llm test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message {
            role: Role::User,
            content: "hi".into(),
        }],
        tools: None,
        max_tokens: None,
    }
}

#[tokio::test]
async fn verification_is_on_and_a_custom_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &port.to_string(),
                "-cert",
                "srv.pem",
                "-key",
                "srv.key",
                "-www",
                "-quiet",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "openssl s_server did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}/v1");

    // Without the CA: the handshake fails (an unknown issuer), no bytes of
    // the request are answered.
    let plain = LlmClient::new(&LlmConfig::local(&url, "m", Language::En)).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), plain.stream(&request()))
        .await
        .expect("a failed handshake is reported at once")
        .unwrap_err();
    let LlmError::Request { source, .. } = &err else {
        panic!("expected a TLS failure, got {err}")
    };
    let chain = format!("{source:?}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );

    // With the CA file: the handshake succeeds. s_server -www then waits
    // for a GET and ignores our POST, so success is "no TLS error": a
    // failed handshake is reported at once, as above.
    let mut cfg = LlmConfig::local(&url, "m", Language::En);
    cfg.ca_file = Some(dir.path().join("ca.pem"));
    let trusted = LlmClient::new(&cfg).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), trusted.stream(&request())).await;
    if let Ok(Err(LlmError::Request { source, .. })) = r {
        panic!("TLS failed with the CA: {source:?}");
    }
    drop(server);
}
