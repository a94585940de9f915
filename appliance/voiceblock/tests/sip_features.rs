//! Mid-call SIP features against a real peer (SIPp) calling the daemon
//! directly: a key pressed as RFC 4733 events in the RTP stream reaches the
//! dialog; hold and unhold by re-INVITE are answered with the matching
//! direction; a key sent as SIP INFO (`0`, "a person") makes the box
//! transfer the caller with REFER, and once the peer reports the transfer
//! done (NOTIFY, sipfrag 200) the box hangs up and records "transferred".

mod peers;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn sdp(direction: &str) -> String {
    format!(
        "v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a={direction}
"
    )
}

/// A re-INVITE putting the call in `direction`, whose answer must say
/// `expect`, then its ACK.
fn reinvite(cseq: u32, direction: &str, expect: &str) -> String {
    format!(
        r#"  <send retrans="500">
    <![CDATA[
      {head}
      Content-Type: application/sdp
      Content-Length: [len]

      {sdp}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200">
    <action>
      <ereg regexp="a={expect}" search_in="body" check_it="true" assign_to="dir{cseq}"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      {ack}
      Content-Length: 0

    ]]>
  </send>
"#,
        head = peers::sipp_request("INVITE", cseq, true),
        sdp = sdp(direction),
        ack = peers::sipp_request("ACK", cseq, true),
    )
}

fn scenario(pcap: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="DTMF, hold, transfer">
  <send retrans="500">
    <![CDATA[
      {invite}
      Content-Type: application/sdp
      Content-Length: [len]

      {offer}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200">
    <action>
      <ereg regexp="telephone-event/8000" search_in="body" check_it="true" assign_to="te"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      {ack}
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="1500"/>
  <nop>
    <action>
      <exec play_pcap_audio="{pcap}"/>
    </action>
  </nop>
  <pause milliseconds="2500"/>
{hold}  <pause milliseconds="500"/>
{unhold}  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      {info}
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal=0
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
  <recv request="REFER" timeout="20000">
    <action>
      <ereg regexp="Refer-To: *&lt;?sip:person@127.0.0.1" search_in="msg" check_it="true" assign_to="to"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 202 Accepted
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      {notify}
      Event: refer
      Subscription-State: terminated;reason=noresource
      Content-Type: message/sipfrag;version=2.0
      Content-Length: [len]

      SIP/2.0 200 OK
    ]]>
  </send>
  <recv response="200"/>
  <recv request="BYE" timeout="10000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <Reference variables="te,dir2,dir3,to"/>
</scenario>
"#,
        invite = peers::sipp_request("INVITE", 1, false),
        offer = sdp("sendrecv"),
        ack = peers::sipp_request("ACK", 1, true),
        pcap = pcap.display(),
        hold = reinvite(2, "sendonly", "recvonly"),
        unhold = reinvite(3, "sendrecv", "sendrecv"),
        info = peers::sipp_request("INFO", 4, true),
        notify = peers::sipp_request("NOTIFY", 5, true),
    )
}

/// A pcap of one key press as RFC 4733 telephone-events (payload type 101),
/// as a phone sends it: 20 ms apart, the duration growing, three end
/// packets. SIPp replays the UDP payloads to the daemon's media port.
fn dtmf_pcap(path: &Path, digit: u8) {
    let mut out = Vec::new();
    // Global header: magic, v2.4, zone 0, sigfigs 0, snaplen, Ethernet.
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    let steps: Vec<(u16, bool)> = (1..=6)
        .map(|i| (i * 160, false))
        .chain([(1120, true), (1120, true), (1120, true)])
        .collect();
    for (n, (duration, end)) in steps.into_iter().enumerate() {
        let mut rtp = vec![0x80, if n == 0 { 0x80 | 101 } else { 101 }];
        rtp.extend((1000 + n as u16).to_be_bytes());
        rtp.extend(48_000u32.to_be_bytes());
        rtp.extend(0x5eed_f00du32.to_be_bytes());
        rtp.extend([digit, if end { 0x80 | 10 } else { 10 }]);
        rtp.extend(duration.to_be_bytes());
        let udp_len = 8 + rtp.len() as u16;
        let mut udp = Vec::new();
        udp.extend(40000u16.to_be_bytes());
        udp.extend(6000u16.to_be_bytes());
        udp.extend(udp_len.to_be_bytes());
        udp.extend(0u16.to_be_bytes());
        udp.extend(&rtp);
        let mut ip = vec![0x45, 0];
        ip.extend((20 + udp_len).to_be_bytes());
        ip.extend([0, 0, 0, 0, 64, 17, 0, 0]);
        ip.extend([127, 0, 0, 1, 127, 0, 0, 1]);
        let mut frame = vec![0u8; 12];
        frame.extend(0x0800u16.to_be_bytes());
        frame.extend(&ip);
        frame.extend(&udp);
        let at_us = n as u32 * 20_000;
        out.extend((at_us / 1_000_000).to_le_bytes());
        out.extend((at_us % 1_000_000).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend(&frame);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn dtmf_both_ways_hold_unhold_and_refer_transfer_with_sipp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = peers::free_port_pair();
    let mut daemon = peers::daemon(
        d,
        "voiceblock-run",
        port,
        &[
            "--robot",
            "reception-en",
            "--model",
            "whisper-tiny.en",
            "--transfer-to",
            "sip:person@127.0.0.1:9",
        ],
    );
    let pcap = d.join("dtmf5.pcap");
    dtmf_pcap(&pcap, 5);
    let xml = d.join("features.xml");
    std::fs::write(&xml, scenario(&pcap)).unwrap();
    let sip = peers::free_port_pair();
    let media = peers::free_port_pair();
    let log = d.join("sipp.log");
    let out = Command::new("sipp")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-sf")
        .arg(&xml)
        .args(["-mi", "127.0.0.1", "-i", "127.0.0.1", "-p"])
        .arg(sip.to_string())
        .arg("-mp")
        .arg(media.to_string())
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .args(["-trace_err", "-error_file"])
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .expect("sipp");
    assert!(
        out.status.success(),
        "sipp failed ({}): {}\n{}\nerrors: {}\ndaemon log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );

    // The record: the RFC 4733 key became a caller turn, the transfer ended
    // the call.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let record: Value = loop {
        let found = std::fs::read_dir(d.join("calls")).ok().and_then(|r| {
            r.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
        });
        if let Some(p) = found {
            break serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call record; daemon log:\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(record["end_reason"], "transferred", "{record:#}");
    let keyed = record["turns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["caller_transcript"] == "5");
    assert!(keyed, "the RFC 4733 key 5 reached the dialog: {record:#}");
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        log.matches("re-INVITE").count() >= 2,
        "hold and unhold: {log}"
    );
    let code = daemon.stop(Duration::from_secs(30));
    assert_eq!(code, Some(0));
}
