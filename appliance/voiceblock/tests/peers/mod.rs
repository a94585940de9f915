//! Real SIP peers for the telephony tests, started on 127.0.0.1 with
//! ephemeral ports in a temporary directory and killed on drop: kamailio
//! (registrar/proxy with digest auth), baresip (caller/callee playing a WAV
//! and recording what it hears, through a PulseAudio null sink), SIPp.
//! `scripts/setup` installs them all.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "secret";

/// Fails with the package to install when a tool is missing.
pub fn need(binary: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(binary).is_file();
    assert!(
        found,
        "{binary} is not installed: run scripts/setup (it installs kamailio, baresip, sip-tester, pulseaudio, espeak-ng)"
    );
}

/// A UDP port on 127.0.0.1 that is free, with `port + 1` free too (baresip
/// binds TLS there, RTP takes pairs).
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = a.local_addr().unwrap().port();
        if port % 2 == 1 || port > 60000 {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

/// A child process killed (and reaped) on drop, with its output collected.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .ok();
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(f) = file.as_mut() {
                        let _ = writeln!(f, "{line}");
                    }
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            log,
        }
    }

    /// Waits for an output line containing `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Result<String, String> {
        self.wait_for_all(&[needle], limit)
            .map(|mut lines| lines.remove(0))
    }

    /// Waits until every needle has appeared in an output line, in any
    /// order: stdout and stderr are read by threads of their own, so lines
    /// from the two streams can arrive in either order. The matching lines,
    /// in the order of `needles`.
    pub fn wait_for_all(&self, needles: &[&str], limit: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + limit;
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        loop {
            let missing: Vec<&str> = needles
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(n, _)| *n)
                .collect();
            if missing.is_empty() {
                return Ok(found.into_iter().flatten().collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{}: no line with {missing:?} within {limit:?}; log: {}\n{}",
                    self.name,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = (0..needles.len())
                        .find(|&i| found[i].is_none() && line.contains(needles[i]))
                    {
                        found[i] = Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{} exited before printing {missing:?}; log:\n{}",
                        self.name,
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    ))
                }
            }
        }
    }

    /// Waits for the process to exit by itself; its exit code, or `None` if
    /// it is still running after `limit` (then it is killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status code.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kamailio on 127.0.0.1:`port` with the test password.
pub fn kamailio(dir: &Path) -> (Proc, u16) {
    need("kamailio");
    let port = free_port_pair();
    let template = include_str!("kamailio.cfg");
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(
        &cfg,
        template
            .replace("@PORT@", &port.to_string())
            .replace("@PASSWORD@", PASSWORD),
    )
    .unwrap();
    let run = dir.join("kamailio-run");
    std::fs::create_dir_all(&run).unwrap();
    let mut cmd = Command::new("kamailio");
    cmd.args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .arg("-Y")
        .arg(&run)
        .arg("-P")
        .arg(run.join("kamailio.pid"));
    let proc = Proc::spawn("kamailio", cmd, dir);
    // Ready once it answers an OPTIONS (any response).
    let deadline = Instant::now() + Duration::from_secs(10);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    loop {
        let msg = format!(
            "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe-{}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            Instant::now().elapsed().as_nanos(),
            port
        );
        let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", port));
        let mut buf = [0u8; 2048];
        if sock.recv_from(&mut buf).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kamailio did not answer on 127.0.0.1:{port}; log:\n{}",
            std::fs::read_to_string(&proc.log).unwrap_or_default()
        );
    }
    (proc, port)
}

/// A PulseAudio daemon with a null sink, for baresip's paced player.
pub fn pulse(dir: &Path) -> (Proc, PathBuf) {
    pulse_with(dir, &[])
}

/// [`pulse`] with more modules loaded at start (e.g. a second null sink),
/// so they exist as soon as its socket does.
pub fn pulse_with(dir: &Path, modules: &[&str]) -> (Proc, PathBuf) {
    need("pulseaudio");
    let runtime = dir.join("pulse");
    std::fs::create_dir_all(&runtime).unwrap();
    let socket = runtime.join("native");
    // A restart on the same folder (the handset's unplug test): wait for
    // the new server's socket, not the old one.
    let _ = std::fs::remove_file(&socket);
    let mut cmd = Command::new("pulseaudio");
    cmd.args([
        "-n",
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--disallow-exit",
        "--use-pid-file=no",
        "--system=no",
        "-L",
        "module-null-sink sink_name=loop rate=8000",
    ])
    .arg("-L")
    .arg(format!(
        "module-native-protocol-unix auth-anonymous=1 socket={}",
        socket.display()
    ));
    for m in modules {
        cmd.arg("-L").arg(m);
    }
    cmd.env("HOME", dir)
        .env("PULSE_RUNTIME_PATH", &runtime)
        .env("PULSE_STATE_PATH", &runtime)
        .env("XDG_RUNTIME_DIR", &runtime);
    let proc = Proc::spawn("pulseaudio", cmd, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "pulseaudio did not create {}; log:\n{}",
            socket.display(),
            std::fs::read_to_string(&proc.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, socket)
}

/// A headless baresip user registered at kamailio, playing `source` (an
/// 8 kHz WAV) into every call and recording what it hears as
/// `dump-*-dec.wav` in its directory.
pub struct Baresip {
    pub proc: Proc,
    pub dir: PathBuf,
    pub ctrl: u16,
}

impl Baresip {
    pub fn start(
        dir: &Path,
        user: &str,
        kamailio_port: u16,
        source: &Path,
        pulse_socket: &Path,
        auto_answer: bool,
    ) -> Baresip {
        need("baresip");
        let home = dir.join(format!("baresip-{user}"));
        std::fs::create_dir_all(&home).unwrap();
        let sip = free_port_pair();
        let ctrl = free_port_pair();
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip}\n\
             net_interface 127.0.0.1\n\
             audio_source aufile,{src}\n\
             audio_player pulse,\n\
             audio_alert pulse,\n\
             ausrc_srate 8000\n\
             auplay_srate 8000\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module pulse.so\n\
             module sndfile.so\n\
             module account.so\n\
             module menu.so\n\
             module ctrl_tcp.so\n\
             snd_path {home}\n\
             rtp_ports 30000-39999\n",
            src = source.display(),
            home = home.display(),
        );
        std::fs::write(home.join("config"), config).unwrap();
        let answer = if auto_answer { ";answermode=auto" } else { "" };
        std::fs::write(
            home.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1>;auth_pass={PASSWORD};outbound=\"sip:127.0.0.1:{kamailio_port}\";regint=60;audio_codecs=PCMU{answer}\n"
            ),
        )
        .unwrap();
        std::fs::write(home.join("contacts"), "").unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(&home)
            .current_dir(&home)
            .env("PULSE_SERVER", format!("unix:{}", pulse_socket.display()))
            .env("HOME", &home);
        let proc = Proc::spawn(&format!("baresip-{user}"), cmd, dir);
        Baresip {
            proc,
            dir: home,
            ctrl,
        }
    }

    /// Sends a ctrl_tcp command (netstring-framed JSON).
    pub fn command(&self, command: &str, params: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.ctrl)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "baresip ctrl_tcp: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        let frame = format!("{}:{},", json.len(), json);
        stream.write_all(frame.as_bytes()).unwrap();
        let _ = stream.flush();
        std::thread::sleep(Duration::from_millis(200));
    }

    /// The recording of what this user heard in its (only) call.
    pub fn heard(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump") && n.ends_with("-dec.wav"))
            })
    }
}

/// The box under test: `voiceblock <args>`.
pub fn voiceblock(name: &str, args: &[String], dir: &Path) -> Proc {
    voiceblock_env(name, args, dir, &[])
}

/// [`voiceblock`] with extra environment (e.g. `HOME` for an asoundrc,
/// `PULSE_SERVER`).
pub fn voiceblock_env(name: &str, args: &[String], dir: &Path, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voiceblock"));
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(args);
    // Daemons started here get no HTTP API unless the test asks for one
    // (`--api`, or a box config naming its address): the default port is
    // one for the whole machine.
    if args.first().is_some_and(|a| a == "run")
        && !args.iter().any(|a| a == "--api" || a == "--config")
    {
        cmd.args(["--api", "off"]);
    }
    // The daemon's state (default store, records, a pushed config) stays
    // in the test's folder, not in the home directory.
    cmd.env("VOICEBLOCK_LOG", "info,rsipstack=warn")
        .env("STATE_DIRECTORY", dir)
        .env_remove("VOICEBLOCK_CONFIG");
    Proc::spawn(name, cmd, dir)
}

/// Waits for a file matching `pred` in `dir`.
pub fn wait_file(dir: &Path, limit: Duration, pred: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if pred(&e.path()) {
                    return Some(e.path());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// An 8 kHz caller track: each (start second, text) spoken by the box's own
/// Piper voice (`voiceblock say`; natural speech survives the 8 kHz
/// telephone band, espeak-ng's "five" does not) at its time, silence
/// elsewhere, `total` seconds long (padded so baresip stays on the line: it
/// hangs up when its file ends).
pub fn caller_track(path: &Path, lines: &[(f32, &str)], total: f32, lang: &str) {
    let rate = 8000usize;
    let mut samples = vec![0f32; (total * rate as f32) as usize];
    for (i, (at, text)) in lines.iter().enumerate() {
        let wav = path.with_extension(format!("part{i}.wav"));
        let out = Command::new(env!("CARGO_BIN_EXE_voiceblock"))
            .args(["say", "--lang", lang, "--rate", "16000", "--out"])
            .arg(&wav)
            .arg(text)
            .output()
            .expect("voiceblock say");
        assert!(
            out.status.success(),
            "voiceblock say failed on {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pcm = vb_audio::wav::read(&wav).expect("espeak wav");
        let pcm = vb_audio::resample(&pcm, rate as u32).expect("resample");
        let start = (*at * rate as f32) as usize;
        for (j, s) in pcm.samples.iter().enumerate() {
            if let Some(slot) = samples.get_mut(start + j) {
                *slot = *s * 0.9;
            }
        }
        let _ = std::fs::remove_file(&wav);
    }
    vb_audio::wav::write(path, &vb_audio::Pcm::new(rate as u32, samples)).expect("write track");
}

/// Runs `voiceblock transcribe` on a WAV and returns the text, lowercased.
pub fn transcribe(wav: &Path, lang: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voiceblock"))
        .args(["transcribe", "--lang", lang])
        .arg(wav)
        .output()
        .expect("voiceblock transcribe");
    assert!(
        out.status.success(),
        "transcribe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One HTTP/1.1 request to the box's API on 127.0.0.1 (no client library:
/// the API's answers carry Content-Length). `body` is (content type, text).
/// Returns the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (ctype, text) = body.unwrap_or(("application/json", ""));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// `GET path` on the box's API.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    http(port, "GET", path, token, None)
}

/// The model cache as the test process sees it, for a child whose `HOME`
/// is changed (the models stay where they are).
pub fn models_dir() -> String {
    std::env::var("VOICEBLOCK_MODELS")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
            format!("{home}/.cache/voiceblock/models")
        })
}

/// Writes a WAV's samples as raw 8 kHz signed 16-bit little-endian mono
/// (what the ALSA `file` plugin's `infile` and `pacat --raw` take).
pub fn wav_to_raw(wav: &Path, raw: &Path) {
    let pcm = vb_audio::wav::read(wav).expect("read wav");
    let pcm = vb_audio::resample(&pcm, 8000).expect("resample");
    let bytes: Vec<u8> = pcm.to_i16().iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(raw, bytes).expect("write raw");
}

/// Reads raw 8 kHz S16LE mono.
pub fn read_raw(raw: &Path) -> Vec<i16> {
    std::fs::read(raw)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What `voiceblock transcribe --model MODEL` printed, even when a later
/// utterance overran the transcriber's deadline (a loaded machine): the
/// lines before it are still what was said.
pub fn transcribe_lenient(wav: &Path, lang: &str, model: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_voiceblock"))
        .args(["transcribe", "--lang", lang, "--model", model])
        .arg(wav)
        .output()
        .expect("voiceblock transcribe");
    if !out.status.success() {
        eprintln!(
            "transcribe {}: {}",
            wav.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

/// Writes raw 8 kHz S16LE mono as a WAV (for `transcribe`).
pub fn raw_to_wav(raw: &Path, wav: &Path) {
    let pcm = vb_audio::Pcm::from_i16(8000, &read_raw(raw));
    vb_audio::wav::write(wav, &pcm).expect("write wav");
}

/// `pactl` against the test's pulseaudio.
pub fn pactl(socket: &Path, args: &[&str]) {
    let out = Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", format!("unix:{}", socket.display()))
        .output()
        .expect("pactl");
    assert!(
        out.status.success(),
        "pactl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Another box calling the box under test: `voiceblock call
/// sip:robot@127.0.0.1:<box_port>` with its own ports, records and store in
/// `dir`, hanging up after `max_duration_s`.
pub fn box_caller(name: &str, box_port: u16, max_duration_s: u32, dir: &Path) -> Proc {
    let (port, rtp) = (free_port_pair(), free_port_pair());
    voiceblock(
        name,
        &[
            "call".into(),
            format!("sip:robot@127.0.0.1:{box_port}"),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--user".into(),
            "caller".into(),
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 9),
            "--max-duration".into(),
            max_duration_s.to_string(),
            "--records".into(),
            dir.join(format!("{name}-calls")).display().to_string(),
            "--db".into(),
            dir.join(format!("{name}.db")).display().to_string(),
        ],
        dir,
    )
}

/// `voiceblock run` taking direct calls on 127.0.0.1:`port`, with `extra`
/// flags, started and listening.
pub fn daemon(d: &Path, name: &str, port: u16, extra: &[&str]) -> Proc {
    let rtp = free_port_pair();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--records".into(),
        d.join("calls").display().to_string(),
        "--rtp-ports".into(),
        format!("{rtp}-{}", rtp + 19),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let daemon = voiceblock(name, &args, d);
    daemon
        .wait_for("voiceblock: listening", Duration::from_secs(120))
        .unwrap();
    daemon
}

/// Packet loss on loopback with nftables: drops `percent` of the UDP
/// packets to and from `ports` (both directions of the box's RTP), at
/// random, until dropped. Root only (CI runs as root).
pub struct Loss {
    table: String,
}

impl Loss {
    pub fn udp_ports(ports: (u16, u16), percent: u32) -> Loss {
        let table = format!("vb_loss_{}_{}", std::process::id(), ports.0);
        let (lo, hi) = ports;
        let script = format!(
            "table inet {table} {{
  chain out {{
    type filter hook output priority 0; policy accept;
    udp dport {lo}-{hi} numgen random mod 100 < {percent} drop
    udp sport {lo}-{hi} numgen random mod 100 < {percent} drop
  }}
}}
"
        );
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (scripts/setup installs nftables)");
        nft.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(nft.wait().unwrap().success(), "nft -f: {script}");
        Loss { table }
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// The head of a request a SIPp UAC scenario sends the box (user `robot`):
/// request line and headers, ending before `Content-Type`/`Content-Length`.
/// `answered`: in the dialog the box's answer made (its To tag).
pub fn sipp_request(method: &str, cseq: u32, answered: bool) -> String {
    let tag = if answered { "[peer_tag_param]" } else { "" };
    format!(
        "{method} sip:robot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:robot@[remote_ip]:[remote_port]>{tag}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70"
    )
}
