//! `voiceblock run` under a fake systemd: a real datagram socket where
//! `$NOTIFY_SOCKET` points, `$WATCHDOG_USEC` set. The daemon sends READY
//! once it listens, WATCHDOG pings while healthy, stops them when a call's
//! loop wedges (the listener is made to block for good by the daemon's
//! fault-injection variable), says why in STATUS, and sends STOPPING on
//! SIGTERM.

mod peers;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Messages from the daemon, with when they arrived.
fn listen(sock: UnixDatagram) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx
                .send((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).to_string(),
                ))
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

fn wait_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    limit: Duration,
    seen: &mut Vec<(Instant, String)>,
) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, m)) => {
                seen.push((at, m.clone()));
                if m.lines().any(|l| l.starts_with(needle)) {
                    return at;
                }
            }
            Err(_) => panic!("no {needle:?} within {limit:?}; got {seen:#?}"),
        }
    }
}

#[test]
fn ready_watchdog_pings_stop_when_a_call_wedges_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let rx = listen(sock);
    let (sip, rtp) = (peers::free_port_pair(), peers::free_port_pair());
    let notify = path.display().to_string();
    let daemon = peers::voiceblock_env(
        "voiceblock-notify",
        &[
            "run".into(),
            "--listen".into(),
            format!("127.0.0.1:{sip}"),
            "--rtp-ports".into(),
            format!("{rtp}-{}", rtp + 9),
            "--drain".into(),
            "1".into(),
        ],
        d,
        &[
            ("NOTIFY_SOCKET", notify.clone()),
            // 10 s: a ping every 5 s.
            ("WATCHDOG_USEC", "10000000".to_string()),
            // Each call's listener blocks for good after 3 s of frames.
            ("VOICEBLOCK_FAULT_WEDGE_AFTER_FRAMES", "150".to_string()),
        ],
    );
    let mut seen = Vec::new();
    let ready = wait_for(&rx, "READY=1", Duration::from_secs(180), &mut seen);
    // Healthy and idle: pings keep coming.
    wait_for(&rx, "WATCHDOG=1", Duration::from_secs(12), &mut seen);
    wait_for(&rx, "WATCHDOG=1", Duration::from_secs(12), &mut seen);
    assert!(
        seen.iter()
            .all(|(at, m)| !m.contains("WATCHDOG=1") || *at >= ready),
        "no ping before READY: {seen:#?}"
    );

    // A call whose loop wedges 3 s in.
    let mut caller = peers::box_caller("voiceblock-caller", sip, 40, d);
    daemon
        .wait_for("the listener wedges now", Duration::from_secs(90))
        .unwrap();
    let wedged = Instant::now();
    let status = wait_for(
        &rx,
        "STATUS=call loop wedged",
        Duration::from_secs(20),
        &mut seen,
    );
    // From the STATUS on, no ping for 12 s (more than the 10 s timeout:
    // systemd would restart the box).
    let quiet_until = status + Duration::from_secs(12);
    while Instant::now() < quiet_until {
        if let Ok((at, m)) = rx.recv_timeout(quiet_until.saturating_duration_since(Instant::now()))
        {
            assert!(
                !m.contains("WATCHDOG=1"),
                "a ping {:?} after the wedge: {m}",
                at - wedged
            );
            seen.push((at, m));
        }
    }
    let why = seen
        .iter()
        .find(|(_, m)| m.contains("STATUS=call loop wedged"))
        .unwrap();
    assert!(why.1.contains("listener read no frame"), "{}", why.1);

    // SIGTERM: STOPPING, and the daemon exits.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.child.id().to_string())
        .status();
    wait_for(&rx, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let mut daemon = daemon;
    assert!(
        daemon.wait_exit(Duration::from_secs(30)).is_some(),
        "the daemon exits"
    );
    let _ = caller.wait_exit(Duration::from_secs(60));
}
