//! The daemon's last log lines, kept in memory for the fleet's `logs`
//! command: a tracing layer copies every event at `info` and above (whatever
//! the stderr filter says) into a bounded ring; the oldest line goes first.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept (the `logs` command's limit too).
pub const LINES: usize = 1000;
/// Longest line kept; longer ones are cut (a bad SIP message logged whole
/// must not fill the ring's memory).
pub const MAX_LINE: usize = 1024;

static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();

fn ring() -> &'static Mutex<VecDeque<String>> {
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(LINES)))
}

/// Keeps `line`, dropping the oldest when full.
pub fn push(mut line: String) {
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    let mut r = ring().lock().unwrap_or_else(|p| p.into_inner());
    if r.len() == LINES {
        r.pop_front();
    }
    r.push_back(line);
}

/// The last `n` lines, oldest first.
pub fn last(n: usize) -> Vec<String> {
    let r = ring().lock().unwrap_or_else(|p| p.into_inner());
    r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
}

/// The tracing layer feeding the ring.
pub struct RingLayer;

struct LineWriter(String);

impl Visit for LineWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = LineWriter(format!(
            "{} {} {}:",
            vb_store::Timestamp::now().to_rfc3339(),
            meta.level(),
            meta.target()
        ));
        event.record(&mut line);
        push(line.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn events_land_in_the_ring_with_their_fields_and_the_ring_is_bounded() {
        let subscriber = tracing_subscriber::registry().with(RingLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(call_id = "abc", turns = 3, "call ended");
            let got = last(1);
            assert!(got[0].contains("INFO"), "{got:?}");
            assert!(got[0].contains("call ended call_id=abc turns=3"), "{got:?}");
            for i in 0..(LINES + 5) {
                tracing::warn!(i, "line");
            }
            let all = last(LINES + 100);
            assert_eq!(all.len(), LINES);
            assert!(all.last().unwrap().ends_with(&format!("i={}", LINES + 4)));
            tracing::info!("{}", "x".repeat(5000));
            assert!(last(1)[0].len() <= MAX_LINE + 3);
        });
    }
}
