//! Bearer-token authentication and the per-peer limit on failed attempts.
//! [`FailureLimiter`] is pure state (it is given the time), so its window
//! logic is tested without sleeping; the middleware owns the clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Problem;
use crate::Shared;

/// A configured token, kept as its SHA-256 so comparing a presented token
/// takes the same time whatever its length or content.
#[derive(Clone)]
pub(crate) struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(token: &str) -> Token {
        Token(Sha256::digest(token.as_bytes()).into())
    }

    /// Constant-time check of an `Authorization` header value.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = strip_bearer(value) else {
            return false;
        };
        self.matches(presented)
    }

    /// Constant-time check of a bare token (the talk WebSocket's `token`
    /// query parameter: browsers cannot set headers on a WebSocket).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(self.0.ct_eq(&digest))
    }
}

/// The credentials of `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let start = rest.iter().position(|b| *b != b' ')?;
    Some(&rest[start..])
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

/// Counts failed authentications per peer address in a fixed window. A peer
/// that reaches the limit is refused until its window ends.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    peers: HashMap<IpAddr, Failures>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            capacity: capacity.max(1),
            peers: HashMap::new(),
        }
    }

    /// `Err(retry_after)` while `peer` is blocked.
    pub fn check(&mut self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(f) = self.peers.get(&peer).copied() else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(f.first);
        if elapsed >= self.window {
            self.peers.remove(&peer);
            return Ok(());
        }
        if f.count >= self.max_failures {
            return Err(self.window - elapsed);
        }
        Ok(())
    }

    /// Records one failure of `peer`.
    pub fn fail(&mut self, peer: IpAddr, now: Instant) {
        if let Some(f) = self.peers.get_mut(&peer) {
            if now.saturating_duration_since(f.first) >= self.window {
                *f = Failures {
                    first: now,
                    count: 1,
                };
            } else {
                f.count = f.count.saturating_add(1);
            }
            return;
        }
        if self.peers.len() >= self.capacity {
            // Forget the peer whose window started first: O(capacity), paid
            // only when a new peer fails while the table is full.
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, f)| f.first)
                .map(|(ip, _)| *ip)
            {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(
            peer,
            Failures {
                first: now,
                count: 1,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.len()
    }
}

/// Middleware for the routes behind the token.
pub(crate) async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    match admit(&shared, &request) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}

/// The peer's address; without ConnectInfo (a router served some other
/// way) every peer shares one bucket: stricter, never looser.
pub(crate) fn peer_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The decision, apart from the await, so no lock is held across one.
fn admit(shared: &Shared, request: &Request) -> Result<(), Problem> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    admit_presented(
        shared,
        peer_of(request.extensions()),
        request.uri().path(),
        authorization,
        None,
    )
}

/// Checks an `Authorization` header or a bare token (`query_token`, the
/// talk WebSocket's), under the same failed-attempt limit.
pub(crate) fn admit_presented(
    shared: &Shared,
    peer: IpAddr,
    path: &str,
    authorization: Option<&[u8]>,
    query_token: Option<&[u8]>,
) -> Result<(), Problem> {
    let Some(token) = &shared.token else {
        return Ok(());
    };
    let now = Instant::now();
    let mut limiter = shared.limiter.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(wait) = limiter.check(peer, now) {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed authentications from {peer}: {} within {} s; retry after {secs} s",
                shared.config.auth_failures,
                shared.config.auth_window.as_secs()
            ),
        )
        .with_limit(shared.config.auth_failures);
        problem.retry_after = Some(secs);
        return Err(problem);
    }
    let accepted = match query_token {
        Some(t) => token.matches(t),
        None => token.accepts(authorization),
    };
    if accepted {
        return Ok(());
    }
    limiter.fail(peer, now);
    drop(limiter);
    tracing::debug!(%peer, %path, "API: authentication failed");
    let why = if authorization.is_none() && query_token.is_none() {
        "missing Authorization: Bearer <token>"
    } else {
        "invalid bearer token"
    };
    Err(Problem::new(StatusCode::UNAUTHORIZED, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let t = Token::new("0123456789abcdef");
        assert!(t.accepts(Some(b"Bearer 0123456789abcdef")));
        assert!(t.accepts(Some(b"bearer 0123456789abcdef")));
        assert!(!t.accepts(Some(b"Bearer 0123456789abcde")));
        assert!(!t.accepts(Some(b"Bearer 0123456789abcdefg")));
        assert!(!t.accepts(Some(b"Basic 0123456789abcdef")));
        assert!(!t.accepts(Some(b"Bearer ")));
        assert!(!t.accepts(Some(b"Bear")));
        assert!(!t.accepts(None));
    }

    #[test]
    fn a_peer_is_blocked_after_the_limit_until_its_window_ends() {
        let start = Instant::now();
        let window = Duration::from_secs(60);
        let mut l = FailureLimiter::new(3, window, 16);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..3 {
            assert_eq!(l.check(a, start), Ok(()), "failure {i}");
            l.fail(a, start + Duration::from_secs(i));
        }
        let t = start + Duration::from_secs(10);
        assert_eq!(l.check(a, t), Err(Duration::from_secs(50)));
        assert_eq!(l.check(b, t), Ok(()), "another peer is not affected");
        assert_eq!(l.check(a, start + window), Ok(()));
        assert_eq!(l.len(), 0, "an expired window is forgotten");
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_block() {
        let start = Instant::now();
        let mut l = FailureLimiter::new(2, Duration::from_secs(60), 16);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.fail(a, start);
        l.fail(a, start + Duration::from_secs(61));
        assert_eq!(l.check(a, start + Duration::from_secs(62)), Ok(()));
    }

    #[test]
    fn the_peer_table_is_bounded_and_forgets_the_oldest() {
        let start = Instant::now();
        let mut l = FailureLimiter::new(1, Duration::from_secs(60), 4);
        for i in 0..10u8 {
            l.fail(
                IpAddr::from([10, 0, 0, i]),
                start + Duration::from_secs(u64::from(i)),
            );
        }
        assert_eq!(l.len(), 4);
        let now = start + Duration::from_secs(20);
        assert_eq!(l.check(IpAddr::from([10, 0, 0, 0]), now), Ok(()));
        assert!(l.check(IpAddr::from([10, 0, 0, 9]), now).is_err());
    }
}
