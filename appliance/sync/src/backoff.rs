//! Reconnect delays: capped exponential with per-device jitter, so a fleet
//! that lost its broker does not come back all in the same second.

use std::time::Duration;

/// Delay state for one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// Starts at `base`, doubles per failure up to `cap`; `seed` (e.g. a hash
    /// of the device id) spreads devices apart.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
            seed,
        }
    }

    /// After a connection that worked: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt: between half and all of
    /// `min(cap, base * 2^attempt)`.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let full = self.base.saturating_mul(1 << exp).min(self.cap);
        // xorshift64* of (seed, attempt): deterministic, different per device.
        let mut x = self.seed ^ (u64::from(self.attempt) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let frac = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(0.5 + 0.5 * frac)
    }
}

/// A stable seed from a device id (FNV-1a).
pub fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 7);
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = Duration::from_millis(500 * (1 << i.min(20))).min(Duration::from_secs(30));
            assert!(
                *d >= full / 2 && *d <= full,
                "attempt {i}: {d:?} vs {full:?}"
            );
        }
        assert!(delays[11] >= Duration::from_secs(15));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn devices_spread_apart() {
        let a = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            seed_of("a"),
        )
        .next_delay();
        let b = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            seed_of("b"),
        )
        .next_delay();
        assert_ne!(a, b);
    }
}
