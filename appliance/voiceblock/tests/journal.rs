//! Started by systemd (`JOURNAL_STREAM` set), the daemon logs to the journal
//! natively, with its fields as journal fields: every record a call's thread
//! writes carries `F_CALL_ID`. The journal here is a datagram socket of the
//! test's, put where journald's is (`/run/systemd/journal/socket`) in a
//! private mount namespace (`unshare -m`, root, as the tmpfs store test);
//! the records are parsed as journald's native protocol.

mod peers;

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

/// One native-protocol record: `KEY=value` lines, or `KEY\n<u64 le
/// length><bytes>\n` for values that may hold newlines.
fn parse(d: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut i = 0;
    while i < d.len() {
        let Some(j) = d[i..].iter().position(|&b| b == b'\n').map(|j| i + j) else {
            break;
        };
        let line = &d[i..j];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).to_string(),
                String::from_utf8_lossy(&line[eq + 1..]).to_string(),
            );
            i = j + 1;
        } else {
            let Some(len) = d.get(j + 1..j + 9) else {
                break;
            };
            let n = u64::from_le_bytes(len.try_into().unwrap()) as usize;
            let value = d.get(j + 9..j + 9 + n).unwrap_or_default();
            out.insert(
                String::from_utf8_lossy(line).to_string(),
                String::from_utf8_lossy(value).to_string(),
            );
            i = j + 9 + n + 1;
        }
    }
    out
}

#[test]
fn under_systemd_a_calls_records_go_to_the_journal_with_its_call_id() {
    peers::need("unshare");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock_path = d.join("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    // Read all along, as journald does: a full socket would block the
    // daemon's logging.
    let (tx, records) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx.send(parse(&buf[..n])).is_err() {
                return;
            }
        }
    });
    let (sip, rtp) = (peers::free_port_pair(), peers::free_port_pair());
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && ln -s {} /run/systemd/journal/socket && exec {} run --listen 127.0.0.1:{sip} --api off --rtp-ports {rtp}-{}",
        sock_path.display(),
        env!("CARGO_BIN_EXE_voiceblock"),
        rtp + 9
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script])
        .env("JOURNAL_STREAM", "8:12345")
        .env("VOICEBLOCK_LOG", "info,rsipstack=warn")
        .env("STATE_DIRECTORY", d)
        .env_remove("VOICEBLOCK_CONFIG");
    let mut daemon = peers::Proc::spawn("voiceblock-journal", cmd, d);
    daemon
        .wait_for("voiceblock: listening", Duration::from_secs(180))
        .unwrap();
    let mut caller = peers::box_caller("voiceblock-caller", sip, 8, d);
    assert_eq!(
        caller.wait_exit(Duration::from_secs(120)),
        Some(0),
        "the caller did not finish"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    let ended = loop {
        assert!(
            Instant::now() < deadline,
            "no 'call ended' record among {seen} from the daemon"
        );
        let Ok(r) = records.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        seen += 1;
        if r.get("MESSAGE").map(String::as_str) == Some("call ended") {
            break r;
        }
    };
    assert_eq!(
        ended.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("voiceblock"),
        "{ended:?}"
    );
    assert_eq!(
        ended.get("SPAN_NAME").map(String::as_str),
        Some("call"),
        "{ended:?}"
    );
    assert_eq!(
        ended.get("PRIORITY").map(String::as_str),
        Some("5"),
        "info is notice: {ended:?}"
    );
    let call_id = ended
        .get("F_CALL_ID")
        .expect("the call's id as a journal field");
    assert!(call_id.len() > 8, "{ended:?}");
    // Its record is the call the caller made.
    let records = std::fs::read_dir(d.join("calls")).unwrap().count();
    assert_eq!(records, 1);
    daemon.stop(Duration::from_secs(20));
    // Nothing went to stderr but what `run` prints itself: the journal has it.
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        !log.contains(" INFO "),
        "tracing lines on stderr besides the journal:\n{log}"
    );
}
