//! The outbound queue against real peers: kamailio (registrar/proxy with
//! digest auth), baresip answering automatically, and a SIPp UAS that
//! answers every INVITE with 486 Busy Here (registered at kamailio by a
//! second SIPp run). One test walks the queue's life across a restart:
//!
//! 1. The box starts with a robot whose calling window is closed now: jobs
//!    added over the API wait (no INVITE reaches anyone); a number put on
//!    the do-not-call list blocks its queued job, and a listed number is
//!    refused. The box is stopped.
//! 2. It starts again on the same store with the window open, one call at
//!    a time: the busy number (priority 10) is tried first, retried with
//!    the robot's backoff and given up after `max_attempts` (3 INVITEs, each
//!    answered 486); baresip's job is answered and the robot talks; no retry
//!    is dialled while that call holds the only line; the blocked job is
//!    never dialled.

mod peers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use peers::{Baresip, Proc, PASSWORD};
use serde_json::{json, Value};

/// A robot folder: the shipped English robot with the given `[outbound]`.
fn robot(dir: &Path, name: &str, outbound: &str) -> String {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../robots/reception-en/robot.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    let cut = text
        .find("\n[outbound]")
        .expect("the shipped robot has [outbound]");
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("robot.toml"),
        format!("{}\n[outbound]\n{outbound}\n", &text[..cut])
            .replace("name = \"reception-en\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    folder.display().to_string()
}

/// A one-hour window that does not contain the current UTC hour.
fn closed_window() -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 2)
        % 24;
    format!("{hour:02}:00-{:02}:00", hour + 1)
}

const UAS_486: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="always busy">
  <recv request="INVITE" />
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" />
</scenario>
"#;

/// Registers `busy` at kamailio with the UAS's address as its contact.
const REGISTER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="register busy">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:127.0.0.1:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:busy@127.0.0.1>;tag=[pid]reg[call_number]
      To: <sip:busy@127.0.0.1>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:busy@127.0.0.1:@UAS@>
      Max-Forwards: 70
      Expires: 600
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true" />
  <send retrans="500">
    <![CDATA[
      REGISTER sip:127.0.0.1:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:busy@127.0.0.1>;tag=[pid]reg[call_number]
      To: <sip:busy@127.0.0.1>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:busy@127.0.0.1:@UAS@>
      [authentication username=busy password=@PASSWORD@]
      Max-Forwards: 70
      Expires: 600
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" />
</scenario>
"#;

fn api(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let (status, answer) = peers::http(
        port,
        method,
        path,
        None,
        text.as_deref().map(|t| ("application/json", t)),
    );
    (
        status,
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}")),
    )
}

fn daemon(d: &Path, name: &str, robot: &str, kport: u16, sip: u16, api_port: u16) -> Proc {
    let rtp = peers::free_port_pair();
    let p = peers::voiceblock(
        name,
        &[
            "run".into(),
            "--listen".into(),
            format!("127.0.0.1:{sip}"),
            "--registrar".into(),
            format!("127.0.0.1:{kport}"),
            "--password-file".into(),
            d.join("sip.secret").display().to_string(),
            "--robot".into(),
            robot.into(),
            "--max-calls".into(),
            "1".into(),
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 9),
            "--db".into(),
            d.join("box.db").display().to_string(),
            "--api".into(),
            format!("127.0.0.1:{api_port}"),
            "--drain".into(),
            "2".into(),
        ],
        d,
    );
    p.wait_for("registered", Duration::from_secs(180)).unwrap();
    p
}

fn job(port: u16, id: &str) -> Value {
    let (status, v) = api(port, "GET", &format!("/api/queue/{id}"), None);
    assert_eq!(status, 200, "{v}");
    v
}

fn ms(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    vb_store::Timestamp::parse_rfc3339(text).unwrap().0
}

#[test]
fn the_queue_keeps_its_window_retries_busy_lines_shares_the_line_and_survives_a_restart() {
    peers::need("sipp");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_kam, kport) = peers::kamailio(d);
    let (_pulse, pulse_socket) = peers::pulse(d);
    std::fs::write(d.join("sip.secret"), format!("{PASSWORD}\n")).unwrap();

    // The callee: says a few words, then hangs up when its track ends.
    let track = d.join("callee.wav");
    peers::caller_track(&track, &[(2.5, "Hello? Yes, this is Bob.")], 9.0, "en");
    let bob = Baresip::start(d, "bob", kport, &track, &pulse_socket, true);
    bob.proc
        .wait_for("200 OK", Duration::from_secs(20))
        .unwrap();

    // The busy line: a SIPp UAS answering 486, registered as `busy`.
    let uas_port = peers::free_port_pair();
    let uas_file = d.join("uas-486.xml");
    std::fs::write(&uas_file, UAS_486).unwrap();
    let mut uas = Command::new("sipp");
    uas.arg("-sf")
        .arg(&uas_file)
        .args(["-i", "127.0.0.1", "-p"])
        .arg(uas_port.to_string())
        .args([
            "-m",
            "3",
            "-nostdin",
            "-timeout",
            "400s",
            "-timeout_error",
            "-trace_msg",
            "-message_file",
        ])
        .arg(d.join("uas-messages.log"));
    let mut uas = Proc::spawn("sipp-uas-486", uas, d);
    let reg_file = d.join("register.xml");
    std::fs::write(
        &reg_file,
        REGISTER
            .replace("@UAS@", &uas_port.to_string())
            .replace("@PASSWORD@", PASSWORD),
    )
    .unwrap();
    let reg = Command::new("sipp")
        .arg(format!("127.0.0.1:{kport}"))
        .arg("-sf")
        .arg(&reg_file)
        .args(["-i", "127.0.0.1", "-p"])
        .arg(peers::free_port_pair().to_string())
        .args([
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-au",
            "busy",
            "-ap",
            PASSWORD,
        ])
        .output()
        .expect("sipp");
    assert!(
        reg.status.success(),
        "registering busy at kamailio: {}",
        String::from_utf8_lossy(&reg.stderr)
    );

    let robots = d.join("robots");
    let closed = robot(
        &robots,
        "closed",
        &format!("timezone = \"UTC\"\nwindow = \"{}\"", closed_window()),
    );
    let open = robot(
        &robots,
        "open",
        "timezone = \"UTC\"\nwindow = \"00:00-24:00\"\nmax_attempts = 3\nretry_busy_s = 3\nretry_no_answer_s = 3\nretry_failed_s = 3",
    );
    let sip = peers::free_port_pair();
    let api_port = peers::free_port_pair();

    // 1. Window closed: jobs wait.
    let mut first = daemon(d, "voiceblock-closed", &closed, kport, sip, api_port);
    let add = |number: &str, priority: i32| {
        let (status, v) = api(
            api_port,
            "POST",
            "/api/queue",
            Some(json!({"number": number, "priority": priority})),
        );
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    };
    let busy = add(&format!("sip:busy@127.0.0.1:{kport}"), 10);
    let bob_job = add(&format!("sip:bob@127.0.0.1:{kport}"), 0);
    let carol = add(&format!("sip:+15550100007@127.0.0.1:{kport}"), 50);
    let (status, v) = api(
        api_port,
        "POST",
        "/api/dnc",
        Some(json!({"number": "+15550100007", "reason": "asked not to be called"})),
    );
    assert_eq!((status, v["jobs_blocked"].as_u64()), (201, Some(1)), "{v}");
    let (status, v) = api(
        api_port,
        "POST",
        "/api/queue",
        Some(json!({"number": "+1 555 010 0007"})),
    );
    assert_eq!(status, 409, "a listed number is refused: {v}");
    std::thread::sleep(Duration::from_secs(4));
    let (_, stats) = api(api_port, "GET", "/api/queue/stats", None);
    assert_eq!(
        (
            stats["queued"].as_u64(),
            stats["blocked"].as_u64(),
            stats["attempts"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "nothing is dialled outside the window: {stats}"
    );
    assert!(stats["next_at"].is_string(), "{stats}");
    sigterm(&first);
    assert_eq!(first.wait_exit(Duration::from_secs(30)), Some(0));

    // 2. Window open, after a restart on the same store.
    let second = daemon(d, "voiceblock-open", &open, kport, sip, api_port);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (b, o) = (job(api_port, &busy), job(api_port, &bob_job));
        if b["job"]["state"] == "failed" && o["job"]["state"] == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue not finished in 300 s: busy {b}\nbob {o}\nlog: {}",
            std::fs::read_to_string(&second.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        uas.wait_exit(Duration::from_secs(30)),
        Some(0),
        "SIPp UAS got its 3 INVITEs and answered 486 to each"
    );

    let b = job(api_port, &busy);
    let attempts = b["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{b}");
    for a in attempts {
        assert_eq!(
            (a["result"].as_str(), a["sip_code"].as_u64()),
            (Some("busy"), Some(486)),
            "{b}"
        );
    }
    assert!(
        b["job"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_attempts = 3"),
        "{b}"
    );
    // Backoff: 3 s, then 6 s (doubling), at least.
    let start: Vec<i64> = attempts.iter().map(|a| ms(&a["started_at"])).collect();
    let end: Vec<i64> = attempts.iter().map(|a| ms(&a["ended_at"])).collect();
    assert!(start[1] - end[0] >= 3000 - 50, "first retry after 3 s: {b}");
    assert!(
        start[2] - end[1] >= 6000 - 50,
        "second retry after 6 s: {b}"
    );

    let o = job(api_port, &bob_job);
    let answered = &o["attempts"][0];
    assert_eq!(answered["result"], "answered", "{o}");
    let call_id = answered["call_id"]
        .as_str()
        .expect("the answered call's id")
        .to_string();
    // The job is done when answered; the call is stored when it ends.
    let path = format!("/api/calls/{}", call_id.replace('@', "%40"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let call = loop {
        let (status, call) = api(api_port, "GET", &path, None);
        if status == 200 {
            break call;
        }
        assert!(
            Instant::now() < deadline,
            "the answered call {call_id} is not stored: {call}; calls: {}",
            api(api_port, "GET", "/api/calls", None).1
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        call["turns"][0]["robot_text"]
            .as_str()
            .unwrap()
            .contains("Hello"),
        "the robot greeted: {call}"
    );
    // One line: no busy retry was dialled while Bob's call held it.
    let (call_start, call_end) = (
        call["started_at"].as_i64().unwrap(),
        call["ended_at"].as_i64().unwrap(),
    );
    for (i, s) in start.iter().enumerate() {
        assert!(
            *s < call_start || *s >= call_end - 1000,
            "busy attempt {} began at {s}, during the call ({call_start}..{call_end})",
            i + 1
        );
    }
    let c = job(api_port, &carol);
    assert_eq!(
        (
            c["job"]["state"].as_str(),
            c["attempts"].as_array().map(Vec::len)
        ),
        (Some("blocked"), Some(0)),
        "{c}"
    );
    let (_, stats) = api(api_port, "GET", "/api/queue/stats", None);
    assert_eq!(
        (
            stats["done"].as_u64(),
            stats["failed"].as_u64(),
            stats["attempts"].as_u64(),
            stats["answered"].as_u64()
        ),
        (Some(1), Some(1), Some(4), Some(1)),
        "{stats}"
    );
    bob.command("quit", "");
    drop(second);
}

/// SIGTERM, as systemd stops the daemon.
fn sigterm(p: &Proc) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(p.child.id().to_string())
        .status();
}

/// Dev mode: a queued call is logged and recorded as `simulated`, never
/// dialled (the target would refuse it), and every turn of a real inbound
/// call is logged with its stages' timings and its words.
#[test]
fn dev_mode_simulates_outbound_calls_and_logs_every_turn() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let open = robot(
        &d.join("robots"),
        "open",
        "timezone = \"UTC\"\nwindow = \"00:00-24:00\"",
    );
    let (sip, api_port, rtp) = (
        peers::free_port_pair(),
        peers::free_port_pair(),
        peers::free_port_pair(),
    );
    let mut dev = peers::voiceblock(
        "voiceblock-dev",
        &[
            "run".into(),
            "--dev".into(),
            "--listen".into(),
            format!("127.0.0.1:{sip}"),
            "--robot".into(),
            open,
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 9),
            "--api".into(),
            format!("127.0.0.1:{api_port}"),
            "--drain".into(),
            "2".into(),
        ],
        d,
    );
    dev.wait_for("dev mode:", Duration::from_secs(180)).unwrap();
    dev.wait_for("listening on", Duration::from_secs(30))
        .unwrap();
    // Port 9 (discard) has no SIP agent: a real dial would fail.
    let (status, v) = api(
        api_port,
        "POST",
        "/api/queue",
        Some(json!({"number": "sip:nobody@127.0.0.1:9"})),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let j = loop {
        let j = job(api_port, &id);
        if j["job"]["state"] == "done" {
            break j;
        }
        assert!(Instant::now() < deadline, "not finished: {j}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(j["attempts"][0]["result"], "simulated", "{j}");
    dev.wait_for("outbound call simulated", Duration::from_secs(5))
        .unwrap();
    // A test call from the API: simulated too.
    let (status, v) = api(
        api_port,
        "POST",
        "/api/calls/test",
        Some(json!({"target": "sip:nobody@127.0.0.1:9"})),
    );
    assert_eq!(
        (status, v["queued"].as_str()),
        (202, Some("sip:nobody@127.0.0.1:9")),
        "{v}"
    );
    dev.wait_for("test call simulated", Duration::from_secs(10))
        .unwrap();

    // Another robot activated over the API answers the next call, without
    // a restart; one in another language waits for the next start.
    let other = robot(&d.join("robots"), "other", "window = \"00:00-24:00\"");
    let toml = Path::new(&other).join("robot.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let greeting = text
        .lines()
        .find(|l| l.starts_with("greeting = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &toml,
        text.replace(
            &greeting,
            "greeting = \"Good day, this is the other robot. How can I help?\"",
        ),
    )
    .unwrap();
    let (status, v) = api(api_port, "POST", "/api/robots/other/activate", None);
    assert_eq!(
        (status, v["takes_effect"].as_str()),
        (200, Some("now")),
        "{v}"
    );
    let (_, v) = api(api_port, "GET", "/api/robots", None);
    assert_eq!(v["active"], "other", "{v}");

    // An inbound call (the caller hangs up after 12 s): its turns are logged.
    let mut caller = peers::box_caller("voiceblock-caller", sip, 12, d);
    assert_eq!(
        caller.wait_exit(Duration::from_secs(150)),
        Some(0),
        "the caller did not finish"
    );
    let line = dev.wait_for("dev: turn", Duration::from_secs(30)).unwrap();
    for needle in [
        "\"index\":0",
        "\"robot_reply\":\"Good day, this is the other robot",
        "\"stt_ms\"",
        "\"first_audio_ms\"",
        "\"turn_latency_ms\"",
    ] {
        assert!(line.contains(needle), "{needle} in {line}");
    }
    let (status, v) = api(api_port, "POST", "/api/robots/reception-ru/activate", None);
    assert_eq!(
        (status, v["takes_effect"].as_str()),
        (200, Some("at the next start")),
        "{v}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("active-robot"))
            .unwrap()
            .trim(),
        "reception-ru"
    );
    let (status, v) = api(api_port, "POST", "/api/robots/nobody/activate", None);
    assert_eq!(status, 404, "{v}");
    sigterm(&dev);
    assert_eq!(dev.wait_exit(Duration::from_secs(30)), Some(0));
}
