//! Load with SIPp as the callers: 10 calls at once, each streaming a spoken
//! line and 30 s on the line over RTP, all answered, all greeted, none
//! dropped; an 11th call beyond `--max-calls 10` gets 486 Busy Here while
//! they are up. Every call leaves a record with its RTP counters.

mod peers;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CALLS: usize = 10;
const HOLD_MS: u64 = 30_000;

/// A UAC: INVITE with PCMU, ACK, stream `audio` (raw mu-law, looped: a
/// phone sends RTP all the time, and a line with no RTP is ended), stay
/// `hold_ms`, BYE.
fn uac_scenario(audio: &Path, hold_ms: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller with audio">
  <send retrans="500">
    <![CDATA[
      {invite}
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      {ack}
      Content-Length: 0

    ]]>
  </send>
  <nop>
    <action>
      <exec rtp_stream="{audio},-1,0"/>
    </action>
  </nop>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500">
    <![CDATA[
      {bye}
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"#,
        audio = audio.display(),
        invite = peers::sipp_request("INVITE", 1, false),
        ack = peers::sipp_request("ACK", 1, true),
        bye = peers::sipp_request("BYE", 2, true),
    )
}

/// A UAC that expects 486 Busy Here and ACKs it.
fn busy_scenario() -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="one call too many">
  <send retrans="500">
    <![CDATA[
      {invite}
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="486"/>
  <send>
    <![CDATA[
      {ack}
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#,
        invite = peers::sipp_request("INVITE", 1, false),
        ack = peers::sipp_request("ACK", 1, true),
    )
}

fn sipp(scenario: &Path, target: &str, port: u16, media_port: u16, calls: usize) -> Command {
    let mut c = Command::new("sipp");
    c.arg(target)
        .arg("-sf")
        .arg(scenario)
        .args(["-mi", "127.0.0.1", "-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("-mp")
        .arg(media_port.to_string())
        .arg("-m")
        .arg(calls.to_string())
        .arg("-l")
        .arg(calls.to_string())
        .args(["-r", "10", "-rp", "1000", "-nostdin", "-timeout", "120s"])
        .args(["-timeout_error", "-trace_err", "-error_file"])
        .arg(scenario.with_extension("errors.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

#[test]
fn ten_sipp_calls_at_once_are_all_answered_and_the_eleventh_is_busy() {
    peers::need("sipp");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The callers' audio: a spoken line, then silence for the rest of the
    // call, as raw mu-law.
    let track = d.join("caller.wav");
    peers::caller_track(
        &track,
        &[(0.5, "Hello, I would like to book a table for two.")],
        (HOLD_MS / 1000) as f32,
        "en",
    );
    let pcm = vb_audio::wav::read(&track).unwrap();
    let ulaw: Vec<u8> = pcm
        .samples
        .iter()
        .map(|&s| vb_audio::g711::ulaw_encode((s * 32767.0) as i16))
        .collect();
    let audio = d.join("caller.ulaw");
    std::fs::write(&audio, ulaw).unwrap();
    let scenario = d.join("uac.xml");
    std::fs::write(&scenario, uac_scenario(&audio, HOLD_MS)).unwrap();
    let busy = d.join("busy.xml");
    std::fs::write(&busy, busy_scenario()).unwrap();

    let box_port = peers::free_port_pair();
    let rtp = peers::free_port_pair();
    let records = d.join("calls");
    let mut daemon = peers::voiceblock(
        "voiceblock-run",
        &[
            "run".into(),
            "--listen".into(),
            format!("127.0.0.1:{box_port}"),
            "--max-calls".into(),
            CALLS.to_string(),
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 2 * CALLS as u16 + 9),
            "--silence-timeout".into(),
            "60".into(),
            "--records".into(),
            records.display().to_string(),
            "--db".into(),
            d.join("box.db").display().to_string(),
        ],
        d,
    );
    daemon
        .wait_for("voiceblock: listening", Duration::from_secs(120))
        .unwrap();
    let target = format!("127.0.0.1:{box_port}");

    let started = Instant::now();
    let load = sipp(
        &scenario,
        &target,
        peers::free_port_pair(),
        peers::free_port_pair(),
        CALLS,
    )
    .spawn()
    .expect("start sipp");

    // While the ten are up, one more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    while answered < CALLS {
        assert!(
            Instant::now() < deadline,
            "only {answered} of {CALLS} calls answered within 60 s; daemon log:\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        if let Ok(line) = daemon.lines.recv_timeout(Duration::from_millis(200)) {
            if line.contains("call answered") {
                answered += 1;
            }
        }
    }
    let out = sipp(
        &busy,
        &target,
        peers::free_port_pair(),
        peers::free_port_pair(),
        1,
    )
    .output()
    .expect("run sipp");
    assert!(
        out.status.success(),
        "the 11th call did not get 486: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(busy.with_extension("errors.log")).unwrap_or_default()
    );

    let out = load.wait_with_output().expect("sipp");
    assert!(
        out.status.success(),
        "sipp: not every call completed ({}): {}\n{}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(scenario.with_extension("errors.log")).unwrap_or_default(),
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );
    assert!(started.elapsed() >= Duration::from_millis(HOLD_MS));

    // Every call left a record: greeted, RTP both ways for the whole call,
    // ended by the caller's BYE.
    // Under ten calls on two cores a call's loop may still be finishing a
    // recognition when the BYE comes; its record follows.
    let deadline = Instant::now() + Duration::from_secs(60);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&records)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= CALLS || Instant::now() > deadline {
            break files;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(files.len(), CALLS, "records: {files:?}");
    for f in &files {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let greeting = &r["turns"][0];
        assert!(
            greeting["robot_reply"]
                .as_str()
                .is_some_and(|t| t.to_lowercase().contains("thank you for calling")),
            "no greeting in {:#}",
            r["turns"]
        );
        assert!(
            greeting["robot_audio_ms"].as_u64().unwrap_or(0) > 1000,
            "{r:#}"
        );
        let sent = r["rtp"]["sent"].as_u64().unwrap();
        let received = r["rtp"]["received"].as_u64().unwrap();
        // 50 packets a second both ways for the 30 s call.
        assert!(sent >= 1200, "sent {sent} packets in a 30 s call: {r:#}");
        assert!(received >= 1200, "received {received}: {r:#}");
        assert_eq!(r["end_reason"], "far end hung up", "{r:#}");
    }
    let code = daemon.stop(Duration::from_secs(30));
    assert_eq!(code, Some(0));
}
