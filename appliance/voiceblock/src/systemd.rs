//! systemd integration for `Type=notify`: an `sd_notify` client over
//! `$NOTIFY_SOCKET` and a watchdog that pings only while the call loop is
//! healthy, so a wedged pipeline gets the box restarted.
//!
//! ```text
//!  call loop ──beat()──► Heartbeat ◄──check()── HeartbeatProbe
//!                                                    │ every WATCHDOG_USEC / 2
//!  daemon ──ready()/status()/stopping()──┐           ▼
//!                                        ├──► Notifier ──datagram──► $NOTIFY_SOCKET (systemd)
//!  Watchdog thread ──WATCHDOG=1 (healthy only)─┘
//! ```
//!
//! No libsystemd: the protocol is one datagram of `KEY=VALUE` lines to a unix
//! socket (a path, or an abstract name written with a leading `@`).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Environment variable naming systemd's notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// Environment variable with the watchdog timeout in microseconds.
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// Environment variable naming the process the watchdog applies to.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

/// Longest STATUS= text sent; longer texts are cut at a character boundary
/// (systemd shows one line in `systemctl status`).
pub const MAX_STATUS_BYTES: usize = 512;

/// Shortest watchdog interval accepted: below this the pinging thread would
/// spin (systemd's own floor for WatchdogSec is 1 ms, nobody sets it).
pub const MIN_WATCHDOG: Duration = Duration::from_millis(2);

/// What can go wrong talking to systemd.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an `@abstract` name.
    #[error(
        "{NOTIFY_SOCKET_ENV}={value:?}: expected an absolute path or an @abstract socket name"
    )]
    BadSocket {
        /// The variable's value.
        value: String,
    },
    /// The socket address could not be built (too long for sun_path, NUL byte).
    #[error("{NOTIFY_SOCKET_ENV}={value:?}: {source}")]
    Address {
        /// The variable's value.
        value: String,
        /// Why the address is invalid.
        source: std::io::Error,
    },
    /// Creating the local datagram socket failed.
    #[error("cannot create a unix datagram socket for sd_notify: {0}")]
    Socket(#[source] std::io::Error),
    /// Sending the notification failed (systemd gone, socket removed).
    #[error("sd_notify {what:?} to {socket}: {source}")]
    Send {
        /// The first line of the message.
        what: String,
        /// The socket as given in the environment.
        socket: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// `$WATCHDOG_USEC` is not a positive integer.
    #[error("{WATCHDOG_USEC_ENV}={value:?}: expected a positive number of microseconds")]
    BadWatchdogUsec {
        /// The variable's value.
        value: String,
    },
    /// `$WATCHDOG_USEC` is below [`MIN_WATCHDOG`].
    #[error("{WATCHDOG_USEC_ENV}={usec}: below the {min:?} minimum this daemon can ping at")]
    WatchdogTooShort {
        /// The value in microseconds.
        usec: u64,
        /// The floor.
        min: Duration,
    },
}

/// One state assignment in a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'a> {
    /// Start-up finished: config valid, models loaded, listeners up.
    Ready,
    /// Free-form status line for `systemctl status`.
    Status(&'a str),
    /// Keep-alive ping for `WatchdogSec=`.
    Watchdog,
    /// Shutdown began (drain in progress).
    Stopping,
    /// A reload began (the daemon starts again in place); `READY=1` ends it.
    /// Carries `CLOCK_MONOTONIC` in microseconds, which systemd requires.
    Reloading(u64),
}

impl State<'_> {
    fn write(&self, out: &mut String) {
        match self {
            State::Ready => out.push_str("READY=1"),
            State::Watchdog => out.push_str("WATCHDOG=1"),
            State::Stopping => out.push_str("STOPPING=1"),
            State::Reloading(usec) => {
                out.push_str("RELOADING=1\nMONOTONIC_USEC=");
                out.push_str(&usec.to_string());
            }
            State::Status(text) => {
                out.push_str("STATUS=");
                // One line: a newline would start a new assignment.
                let mut end = text.len().min(MAX_STATUS_BYTES);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend(
                    text[..end]
                        .chars()
                        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
                );
            }
        }
    }
}

/// Renders a notification datagram: one `KEY=VALUE` per line.
pub fn render(states: &[State<'_>]) -> String {
    let mut out = String::new();
    for (i, s) in states.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        s.write(&mut out);
    }
    out
}

/// Sends notifications to systemd. Cheap to share: every send is one
/// `sendto` on an unconnected datagram socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    name: String,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`, or `None` when the daemon was not
    /// started by systemd with `Type=notify` (then every notification is moot).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var(NOTIFY_SOCKET_ENV) {
            Ok(v) if !v.is_empty() => Notifier::connect(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for an explicit socket: `/abs/path` or `@abstract-name`.
    pub fn connect(socket: &str) -> Result<Notifier, NotifyError> {
        let addr = if let Some(name) = socket.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())
        } else if socket.starts_with('/') {
            SocketAddr::from_pathname(socket)
        } else {
            return Err(NotifyError::BadSocket {
                value: socket.to_owned(),
            });
        }
        .map_err(|source| NotifyError::Address {
            value: socket.to_owned(),
            source,
        })?;
        let sock = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Notifier {
            socket: sock,
            addr,
            name: socket.to_owned(),
        })
    }

    /// Sends several assignments in one datagram (atomic for systemd).
    pub fn notify(&self, states: &[State<'_>]) -> Result<(), NotifyError> {
        let msg = render(states);
        self.socket
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(|_| ())
            .map_err(|source| NotifyError::Send {
                what: msg.lines().next().unwrap_or_default().to_owned(),
                socket: self.name.clone(),
                source,
            })
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Ready, State::Status(status)])
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Status(status)])
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.notify(&[State::Watchdog])
    }

    /// `RELOADING=1` with the time and a status line: the daemon is about
    /// to start again in place; its next `READY=1` ends the reload.
    pub fn reloading(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Reloading(monotonic_usec()), State::Status(status)])
    }

    /// `STOPPING=1` with a status line (e.g. "draining 2 calls, 20 s").
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&[State::Stopping, State::Status(status)])
    }
}

/// `CLOCK_MONOTONIC` in microseconds.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// The watchdog timeout systemd expects pings within, from the values of
/// `$WATCHDOG_USEC` and `$WATCHDOG_PID`: `None` when there is no watchdog or
/// it is meant for another process (`WATCHDOG_PID` names a different pid).
pub fn parse_watchdog(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Some(pid) = pid.filter(|s| !s.is_empty()) {
        // A pid we cannot read is not ours either.
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return Ok(None);
        }
    }
    let n: u64 = match usec.trim().parse() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(NotifyError::BadWatchdogUsec {
                value: usec.to_owned(),
            })
        }
    };
    let d = Duration::from_micros(n);
    if d < MIN_WATCHDOG {
        return Err(NotifyError::WatchdogTooShort {
            usec: n,
            min: MIN_WATCHDOG,
        });
    }
    Ok(Some(d))
}

/// [`parse_watchdog`] on this process's environment.
pub fn watchdog_from_env() -> Result<Option<Duration>, NotifyError> {
    let usec = std::env::var(WATCHDOG_USEC_ENV).ok();
    let pid = std::env::var(WATCHDOG_PID_ENV).ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// What a health probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Keep pinging.
    Healthy,
    /// Stop pinging; the text goes to STATUS= and the log.
    Unhealthy(String),
}

/// A check the watchdog runs before each ping.
pub trait HealthProbe: Send + 'static {
    /// The current health; must be quick and must not block.
    fn check(&self) -> Health;
}

impl<F: Fn() -> Health + Send + 'static> HealthProbe for F {
    fn check(&self) -> Health {
        self()
    }
}

/// A counter the call loop advances on every iteration; cloned handles
/// share it. Lock-free, so the loop pays one atomic store per beat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds since `origin` at the last beat.
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    /// A heartbeat that counts as beaten now.
    pub fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records that the loop made progress.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// Records progress at `now` (tests pass their own clock).
    pub fn beat_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.origin).as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Time since the last beat, as seen at `now`.
    pub fn age_at(&self, now: Instant) -> Duration {
        let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// A probe that is healthy while the last beat is at most `max_age` old.
    pub fn probe(&self, max_age: Duration) -> HeartbeatProbe {
        HeartbeatProbe {
            heartbeat: self.clone(),
            max_age,
        }
    }
}

/// "The call loop's heartbeat advanced within `max_age`".
#[derive(Debug, Clone)]
pub struct HeartbeatProbe {
    heartbeat: Heartbeat,
    max_age: Duration,
}

impl HeartbeatProbe {
    /// The verdict at `now`.
    pub fn check_at(&self, now: Instant) -> Health {
        let age = self.heartbeat.age_at(now);
        if age <= self.max_age {
            Health::Healthy
        } else {
            Health::Unhealthy(format!(
                "call loop stalled: no heartbeat for {:.1} s (limit {:.1} s)",
                age.as_secs_f64(),
                self.max_age.as_secs_f64()
            ))
        }
    }
}

impl HealthProbe for HeartbeatProbe {
    fn check(&self) -> Health {
        self.check_at(Instant::now())
    }
}

/// What one watchdog tick decides; kept apart from the socket so the policy
/// is tested without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Healthy: send WATCHDOG=1.
    Ping,
    /// Healthy again after a bad spell: send WATCHDOG=1 and this status.
    Recovered(String),
    /// Just became unhealthy: no ping, report why once.
    Withhold(String),
    /// Still unhealthy: no ping, nothing new to say.
    StillWithheld,
}

/// The ping policy: ping while healthy, withhold while not, and report each
/// change once.
#[derive(Debug, Default)]
pub struct WatchdogPolicy {
    unhealthy: bool,
}

impl WatchdogPolicy {
    /// Decides the tick for a probe result.
    pub fn tick(&mut self, health: Health) -> Tick {
        match (health, self.unhealthy) {
            (Health::Healthy, false) => Tick::Ping,
            (Health::Healthy, true) => {
                self.unhealthy = false;
                Tick::Recovered("call loop healthy again".to_owned())
            }
            (Health::Unhealthy(why), false) => {
                self.unhealthy = true;
                Tick::Withhold(why)
            }
            (Health::Unhealthy(_), true) => Tick::StillWithheld,
        }
    }
}

/// Pings at half of `timeout` (systemd's recommendation), from its own
/// thread, only while `probe` is healthy. Dropping or [`Watchdog::stop`]ping
/// the handle ends the thread.
#[derive(Debug)]
pub struct Watchdog {
    stop: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the pinging thread.
    pub fn spawn<P: HealthProbe>(
        notifier: Arc<Notifier>,
        timeout: Duration,
        probe: P,
    ) -> std::io::Result<Watchdog> {
        let period = (timeout / 2).max(MIN_WATCHDOG / 2);
        // Capacity 1, and the only message is "stop": a second stop finds the
        // slot full and is dropped (try_send), which is what it means anyway.
        let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sd-watchdog".into())
            .spawn(move || {
                let mut policy = WatchdogPolicy::default();
                loop {
                    let result = match policy.tick(probe.check()) {
                        Tick::Ping => notifier.watchdog(),
                        Tick::Recovered(status) => {
                            tracing::info!(%status, "watchdog pings resume");
                            notifier.notify(&[State::Watchdog, State::Status(&status)])
                        }
                        Tick::Withhold(why) => {
                            tracing::error!(reason = %why, "watchdog pings withheld: systemd will restart the daemon");
                            notifier.status(&why)
                        }
                        Tick::StillWithheld => Ok(()),
                    };
                    if let Err(e) = result {
                        // systemd restarted or the socket is gone: keep
                        // trying, the next tick may succeed.
                        tracing::warn!(error = %e, "sd_notify failed");
                    }
                    match stop_rx.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Watchdog {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops pinging and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.try_send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A fake systemd: a real datagram socket bound where NOTIFY_SOCKET points.
    struct FakeSystemd {
        sock: UnixDatagram,
        _dir: Option<tempfile::TempDir>,
        name: String,
    }

    impl FakeSystemd {
        fn path() -> FakeSystemd {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("notify.sock");
            let sock = UnixDatagram::bind(&path).expect("bind");
            FakeSystemd {
                sock,
                name: path.to_str().expect("utf-8 path").to_owned(),
                _dir: Some(dir),
            }
        }

        fn abstract_name() -> FakeSystemd {
            let name = format!(
                "voiceblock-test-{}-{:?}",
                std::process::id(),
                Instant::now()
            );
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
            let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
            FakeSystemd {
                sock,
                name: format!("@{name}"),
                _dir: None,
            }
        }

        /// Next datagram, or None after `wait` (a bound for the test, not a
        /// timing claim).
        fn recv(&self, wait: Duration) -> Option<String> {
            self.sock.set_read_timeout(Some(wait)).expect("timeout");
            let mut buf = [0u8; 4096];
            match self.sock.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    None
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    #[test]
    fn ready_status_and_stopping_arrive_as_systemd_expects() {
        for fake in [FakeSystemd::path(), FakeSystemd::abstract_name()] {
            let n = Notifier::connect(&fake.name).expect("connect");
            n.ready("listening on 127.0.0.1:5060").expect("ready");
            assert_eq!(
                fake.recv(Duration::from_secs(5)).as_deref(),
                Some("READY=1\nSTATUS=listening on 127.0.0.1:5060")
            );
            n.watchdog().expect("ping");
            assert_eq!(
                fake.recv(Duration::from_secs(5)).as_deref(),
                Some("WATCHDOG=1")
            );
            n.stopping("draining 1 call\nfor 20 s").expect("stopping");
            assert_eq!(
                fake.recv(Duration::from_secs(5)).as_deref(),
                Some("STOPPING=1\nSTATUS=draining 1 call for 20 s")
            );
        }
    }

    #[test]
    fn bad_socket_values_are_named() {
        let e = Notifier::connect("relative/notify").unwrap_err();
        assert!(e.to_string().contains("relative/notify"), "{e}");
        let long = format!("/{}", "x".repeat(200));
        let e = Notifier::connect(&long).unwrap_err();
        assert!(matches!(e, NotifyError::Address { .. }), "{e}");
        // A socket nobody listens on: the send fails and says where.
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone.sock");
        let n = Notifier::connect(gone.to_str().unwrap()).expect("connect");
        let e = n.ready("x").unwrap_err();
        assert!(
            e.to_string().contains("gone.sock") && e.to_string().contains("READY=1"),
            "{e}"
        );
    }

    #[test]
    fn status_is_one_bounded_line() {
        let long = "й".repeat(MAX_STATUS_BYTES);
        let s = render(&[State::Status(&long)]);
        assert!(s.len() <= "STATUS=".len() + MAX_STATUS_BYTES);
        assert!(!s.contains('\n'));
        assert_eq!(
            render(&[State::Ready, State::Stopping]),
            "READY=1\nSTOPPING=1"
        );
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        assert_eq!(
            render(&[State::Reloading(42), State::Status("config v3")]),
            "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=config v3"
        );
        let (a, b) = (monotonic_usec(), monotonic_usec());
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn watchdog_usec_parsing() {
        assert_eq!(parse_watchdog(None, None, 7).unwrap(), None);
        assert_eq!(parse_watchdog(Some(""), None, 7).unwrap(), None);
        assert_eq!(
            parse_watchdog(Some("30000000"), None, 7).unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7).unwrap(),
            Some(Duration::from_secs(30))
        );
        // Meant for another process (e.g. inherited by a child).
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("8"), 7).unwrap(),
            None
        );
        for bad in ["0", "-5", "30s", "1e6"] {
            let e = parse_watchdog(Some(bad), None, 7).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(matches!(
            parse_watchdog(Some("500"), None, 7),
            Err(NotifyError::WatchdogTooShort { usec: 500, .. })
        ));
    }

    #[test]
    fn heartbeat_probe_goes_unhealthy_when_beats_stop() {
        let hb = Heartbeat::new();
        let probe = hb.probe(Duration::from_secs(10));
        let t0 = Instant::now();
        hb.beat_at(t0);
        assert_eq!(probe.check_at(t0 + Duration::from_secs(9)), Health::Healthy);
        let Health::Unhealthy(why) = probe.check_at(t0 + Duration::from_secs(11)) else {
            panic!("a stalled loop must be unhealthy");
        };
        assert!(why.contains("no heartbeat for 11.0 s"), "{why}");
        hb.beat_at(t0 + Duration::from_secs(20));
        assert_eq!(
            probe.check_at(t0 + Duration::from_secs(21)),
            Health::Healthy
        );
    }

    #[test]
    fn policy_pings_only_while_healthy_and_reports_changes_once() {
        let mut p = WatchdogPolicy::default();
        assert_eq!(p.tick(Health::Healthy), Tick::Ping);
        assert_eq!(
            p.tick(Health::Unhealthy("wedged".into())),
            Tick::Withhold("wedged".into())
        );
        assert_eq!(
            p.tick(Health::Unhealthy("wedged".into())),
            Tick::StillWithheld
        );
        assert!(matches!(p.tick(Health::Healthy), Tick::Recovered(_)));
        assert_eq!(p.tick(Health::Healthy), Tick::Ping);
    }

    #[test]
    fn watchdog_thread_stops_pinging_when_the_call_loop_wedges() {
        let fake = FakeSystemd::path();
        let notifier = Arc::new(Notifier::connect(&fake.name).expect("connect"));
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let probe = move || {
            if flag.load(Ordering::SeqCst) {
                Health::Healthy
            } else {
                Health::Unhealthy("call loop stalled".into())
            }
        };
        // WATCHDOG_USEC=40ms: pings every 20 ms.
        let dog =
            Watchdog::spawn(notifier.clone(), Duration::from_millis(40), probe).expect("spawn");
        let bound = Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(fake.recv(bound).as_deref(), Some("WATCHDOG=1"));
        }

        healthy.store(false, Ordering::SeqCst);
        // Pings already in flight may still arrive; the status line marks the
        // moment the thread saw the wedge.
        loop {
            match fake.recv(bound).as_deref() {
                Some("WATCHDOG=1") => continue,
                Some("STATUS=call loop stalled") => break,
                other => panic!("unexpected notification {other:?}"),
            }
        }
        // From here on: silence. Waiting ten periods can only under-count on
        // a slow machine, never invent a ping.
        assert_eq!(fake.recv(Duration::from_millis(200)), None);

        healthy.store(true, Ordering::SeqCst);
        assert_eq!(
            fake.recv(bound).as_deref(),
            Some("WATCHDOG=1\nSTATUS=call loop healthy again")
        );
        dog.stop();
        // Drain pings sent before the stop (stop joined the thread).
        while fake.recv(Duration::from_millis(100)).is_some() {}
        notifier.stopping("draining").expect("stopping");
        assert_eq!(
            fake.recv(bound).as_deref(),
            Some("STOPPING=1\nSTATUS=draining")
        );
    }
}
