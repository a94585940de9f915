//! vb-api: the box's HTTP API. Calls with their turns, leads (JSON and CSV),
//! robots (list and validate), health (live and ready) and Prometheus
//! metrics, on axum, behind a bearer token. It reads the store and the robots
//! directory; it changes nothing on the box. The daemon binds the listener,
//! builds an [`AppState`] and runs [`serve`] until its cancel token fires.
//!
//! # Layout
//!
//! ```text
//!  TcpListener ──► serve(listener, AppState, CancellationToken)   graceful stop on cancel,
//!                     │                                          forced after shutdown_grace
//!                     ▼
//!  router ── in-flight cap (503) ── body limit (413 naming it) ── fallback 404 (JSON)
//!    │
//!    ├─ /, /console/* ── console (embedded files, CSP) ─ open
//!    ├─ /api/talk ── token (query or header) ─ WebSocket ─► daemon's TalkHandler
//!    ├─ /api/health/live ───────────────────────────── open
//!    ├─ /metrics ── [auth unless metrics_public] ─────► Metrics::render (+ outbox depth, RSS)
//!    └─ /api/* ──── auth: Bearer, constant time; ────► routes (spawn_blocking for SQLite / fs)
//!                   401 WWW-Authenticate; 429 after      ├─ calls, calls/{id}   ─► Store (vb-store)
//!                   N failures per peer in a window      ├─ leads, leads/{id}, leads.csv (export::write_csv)
//!                   (FailureLimiter, bounded table)      ├─ robots, robots/validate ─► vb_dialog::Robot
//!                                                        ├─ queue, queue/bulk (JSON | CSV), queue/{id}[/cancel],
//!                                                        │  queue/stats|start|stop, dnc ─► Store::queue_* (+ wake the dialler)
//!                                                        ├─ health/ready ─► DiskSpace + daemon's HealthSources
//!                                                        ├─ config ─► the daemon's redacted box config
//!                                                        └─ openapi.json ─► openapi::DOCUMENT
//! ```
//!
//! - [`config`]: [`ApiConfig`] and its `validate()`; [`RawApi`], the `[api]`
//!   section of the daemon's TOML.
//! - [`error`]: [`ApiError`] (startup and serving) and the JSON error body.
//! - `auth` (private): token check and the failed-attempt limiter.
//! - [`health`]: [`HealthSource`], [`Check`] and the built-in [`DiskSpace`].
//! - [`metrics`]: [`Metrics`], what the daemon updates and `/metrics` shows.
//! - [`routes`]: the handlers and the route table.
//! - [`queue`]: the outbound queue and do-not-call handlers (numbers checked
//!   by vb-outbound, bulk uploads all or none).
//! - [`audio`]: a recorded call's WAV, streamed from the recordings
//!   directory ([`AppState::with_recordings`]), with one `Range`.
//! - [`openapi`]: the OpenAPI 3.1 document, tested against the route table.
//! - [`console`]: the web console's embedded files and their headers.
//! - [`talk`]: the talk page's WebSocket and [`TalkHandler`], the daemon's
//!   side of it.
//! - `sys` (private): statvfs and the page size through libc.

#![deny(unsafe_code)]

pub mod audio;
mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod queue;
pub mod routes;
mod sys;
pub mod talk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::Router;
use tokio_util::sync::CancellationToken;
use vb_store::Store;

pub use config::{ApiConfig, RawApi};
pub use error::{ApiError, ConfigIssue};
pub use health::{Check, DiskSpace, HealthSource};
pub use metrics::{Metrics, Stage};
pub use talk::{TalkHandler, TalkIn, TalkOut, TalkRefused, TalkSocket};

use auth::{FailureLimiter, Token};
use routes::Access;

/// What the handlers share.
pub(crate) struct Shared {
    config: ApiConfig,
    token: Option<Token>,
    limiter: Mutex<FailureLimiter>,
    in_flight: Arc<tokio::sync::Semaphore>,
    store: Arc<Store>,
    robots_dir: PathBuf,
    metrics: Arc<Metrics>,
    disk: DiskSpace,
    health: Vec<Arc<dyn HealthSource>>,
    queue_wake: Option<Arc<tokio::sync::Notify>>,
    test_calls: Option<Arc<dyn TestCalls>>,
    robot_switch: Option<Arc<dyn RobotSwitch>>,
    talk: Option<Arc<dyn TalkHandler>>,
    box_config: Option<serde_json::Value>,
    recordings_dir: Option<PathBuf>,
}

/// Switches the robot in force for `POST /api/robots/{name}/activate`.
pub trait RobotSwitch: Send + Sync {
    /// The name of the robot new calls use.
    fn active(&self) -> String;
    /// Loads and validates robot `name` and puts it in force; the answer
    /// says when it takes effect.
    fn activate(&self, name: &str) -> Result<serde_json::Value, ActivateError>;
}

/// Why a robot could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// Not a robot name.
    #[error("{0:?} is not a robot name (1-64 of a-z, 0-9, '-', '_')")]
    BadName(String),
    /// No folder and no built-in of that name.
    #[error("no robot {0:?} (neither a folder under the robots directory nor a built-in)")]
    NotFound(String),
    /// It does not validate; every problem listed.
    #[error("the robot does not validate: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Places a test call for `POST /api/calls/test` (the daemon's SIP agent).
pub trait TestCalls: Send + Sync {
    /// Queues a call to `target` (an E.164 number or a SIP URI, already
    /// checked); `Err` says why it cannot be placed now (e.g. busy).
    fn test_call(&self, target: &str) -> Result<(), String>;
}

/// Everything the API serves from: its config, the store, the robots
/// directory, the metrics and the daemon's health sources.
pub struct AppState {
    config: ApiConfig,
    store: Arc<Store>,
    robots_dir: PathBuf,
    metrics: Arc<Metrics>,
    health: Vec<Arc<dyn HealthSource>>,
    queue_wake: Option<Arc<tokio::sync::Notify>>,
    test_calls: Option<Arc<dyn TestCalls>>,
    robot_switch: Option<Arc<dyn RobotSwitch>>,
    talk: Option<Arc<dyn TalkHandler>>,
    box_config: Option<serde_json::Value>,
    recordings_dir: Option<PathBuf>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .field("store", &self.store.path())
            .field("robots_dir", &self.robots_dir)
            .field("recordings_dir", &self.recordings_dir)
            .field("health_sources", &self.health.len())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state for `config`, reading `store` and the robot folders under
    /// `robots_dir`, showing `metrics`. The readiness check of free disk
    /// space where the store lives is always included.
    pub fn new(
        config: ApiConfig,
        store: Arc<Store>,
        robots_dir: PathBuf,
        metrics: Arc<Metrics>,
    ) -> AppState {
        AppState {
            config,
            store,
            robots_dir,
            metrics,
            health: Vec::new(),
            queue_wake: None,
            test_calls: None,
            robot_switch: None,
            talk: None,
            box_config: None,
            recordings_dir: None,
        }
    }

    /// Serves recorded calls' audio from `dir`, the box's recordings
    /// directory (`GET /api/calls/{id}/audio`). Without it, recording is off
    /// on this box and that route answers 404 saying so.
    pub fn with_recordings(mut self, dir: PathBuf) -> AppState {
        self.recordings_dir = Some(dir);
        self
    }

    /// Lets `POST /api/robots/{name}/activate` switch the robot (without
    /// it: 503), and marks the robot in force in `GET /api/robots`.
    pub fn with_robot_switch(mut self, switch: Arc<dyn RobotSwitch>) -> AppState {
        self.robot_switch = Some(switch);
        self
    }

    /// Lets `POST /api/calls/test` place calls (without it: 503).
    pub fn with_test_calls(mut self, calls: Arc<dyn TestCalls>) -> AppState {
        self.test_calls = Some(calls);
        self
    }

    /// Woken when the outbound queue changes (jobs added, started), so the
    /// daemon's dialler looks at once instead of at its next tick.
    pub fn with_queue_wake(mut self, wake: Arc<tokio::sync::Notify>) -> AppState {
        self.queue_wake = Some(wake);
        self
    }

    /// Serves the console's talk page through `handler` (without one,
    /// `/api/talk` answers 404).
    pub fn with_talk(mut self, handler: Arc<dyn TalkHandler>) -> AppState {
        self.talk = Some(handler);
        self
    }

    /// What `GET /api/config` shows: the box's resolved config, which the
    /// caller has already stripped of secrets.
    pub fn with_box_config(mut self, config: serde_json::Value) -> AppState {
        self.box_config = Some(config);
        self
    }

    /// Adds a readiness source (models loaded, SIP registered, ...).
    pub fn with_health(mut self, source: Arc<dyn HealthSource>) -> AppState {
        self.health.push(source);
        self
    }

    fn into_shared(self) -> Shared {
        let c = &self.config;
        let store_dir = self
            .store
            .path()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), |p| p.to_path_buf());
        Shared {
            token: c.token.as_deref().map(Token::new),
            limiter: Mutex::new(FailureLimiter::new(
                c.auth_failures,
                c.auth_window,
                c.auth_peers,
            )),
            in_flight: Arc::new(tokio::sync::Semaphore::new(c.max_in_flight)),
            disk: DiskSpace {
                path: store_dir,
                min_free_bytes: c.min_free_disk_bytes,
            },
            config: self.config,
            store: self.store,
            robots_dir: self.robots_dir,
            metrics: self.metrics,
            health: self.health,
            queue_wake: self.queue_wake,
            test_calls: self.test_calls,
            robot_switch: self.robot_switch,
            talk: self.talk,
            box_config: self.box_config,
            recordings_dir: self.recordings_dir,
        }
    }
}

/// The API's router. Serve it with connect info (as [`serve`] does) so the
/// failed-attempt limit is per peer address.
pub fn router(state: AppState) -> Router {
    let shared = Arc::new(state.into_shared());
    let mut router = Router::new();
    for route in routes::routes() {
        let needs_token = match route.access {
            Access::Open => false,
            Access::Token => true,
            Access::Metrics => !shared.config.metrics_public,
        };
        let handler = if needs_token {
            route
                .handler
                .route_layer(from_fn_with_state(shared.clone(), auth::require_token))
        } else {
            route.handler
        };
        router = router.route(route.path, handler);
    }
    // The console's files (open) and the talk WebSocket (its own token
    // check: browsers send it as a query parameter).
    for (path, handler) in console::routes() {
        router = router.route(path, handler);
    }
    router = router.route(talk::TALK_PATH, axum::routing::get(talk::talk));
    router
        .fallback(routes::fallback)
        .layer(DefaultBodyLimit::max(shared.config.max_body_bytes))
        .layer(from_fn_with_state(shared.clone(), routes::limit_in_flight))
        .with_state(shared)
}

/// Serves the API on `listener` until `cancel` fires, then stops accepting,
/// lets requests in flight finish for up to `shutdown_grace`, and returns.
/// The state's config is validated first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> Result<(), ApiError> {
    state.config.validate()?;
    let grace = state.config.shutdown_grace;
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%addr, "HTTP API listening");
    let server =
        axum::serve(listener, app).with_graceful_shutdown(cancel.clone().cancelled_owned());
    let forced = async {
        cancel.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(|source| ApiError::Serve { addr, source })?,
        () = forced => tracing::warn!(%addr, ?grace, "HTTP API: requests still running after the grace period; stopping anyway"),
    }
    tracing::info!(%addr, "HTTP API stopped");
    Ok(())
}
