//! The SIP user agent: one endpoint on one UDP address, registration with
//! refresh and backoff, inbound INVITE handling up to the call limit,
//! outbound calls, in-dialog requests (BYE, re-INVITE, INFO, OPTIONS, REFER
//! progress) and graceful shutdown (503, drain, un-REGISTER).
//!
//! Every established call is handed over as a [`Call`]: media running, a
//! [`CallControl`] for hangup and transfer, and a token cancelled when the
//! far end ends it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateSender, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::dialog::registration::{RefreshOutcome, Registration};
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode, Uri};
use rsipstack::transaction::endpoint::Endpoint;
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::TransportLayer;
use rsipstack::EndpointBuilder;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vb_audio::line::LineEvent;
use vb_rtp::sdp::{self, Codec, Direction};

use crate::error::SipError;
use crate::media::{self, MediaParams, MediaSession, RtpSocket};

/// Our telephone-event payload type in offers.
const DTMF_PT: u8 = 101;
/// Longest wait for the ACK after our 200 OK, and for an outbound answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(32);
/// Longest wait for a REFER's final NOTIFY before we hang up anyway.
const REFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-call dialog-event queue. Full policy: the router waits (control
/// events must not be lost; a leg drains its queue within microseconds).
const LEG_EVENTS: usize = 32;
/// Call-control commands queued per call. Full policy: the sender waits.
const LEG_COMMANDS: usize = 8;

/// How the agent reaches the network and the PBX.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Address SIP listens on. A specific address, not 0.0.0.0: Via and
    /// Contact are built from it.
    pub listen: SocketAddr,
    /// Our user part (`robot` in `sip:robot@pbx`).
    pub user: String,
    /// Registrar/proxy `host:port`; `None` for direct calls to our address.
    pub registrar: Option<String>,
    /// Digest password (from the secrets file).
    pub password: Option<String>,
    /// Digest user when it differs from `user`.
    pub auth_user: Option<String>,
    /// Registration lifetime asked for (s).
    pub register_expires: u32,
    /// Calls at once; one more gets 486 Busy Here.
    pub max_calls: usize,
    /// Address put in our SDP and bound for RTP (default: the listen IP).
    pub media_ip: Option<IpAddr>,
    /// RTP port range, inclusive.
    pub rtp_ports: (u16, u16),
    /// A call whose RTP stops this long (not on hold) is ended.
    pub rtp_timeout: Duration,
    /// Preferred codec when both are offered.
    pub prefer: Codec,
    /// User-Agent header.
    pub user_agent: String,
    /// How long an inbound call rings (180) before the box answers: staff
    /// at the desk can pick up first, and a caller who hangs up meanwhile
    /// (CANCEL) is never answered. Zero answers at once. At most
    /// [`MAX_RING`].
    pub ring: Duration,
}

/// The longest ring [`SipConfig::ring`] may ask for.
pub const MAX_RING: Duration = Duration::from_secs(30);

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5070)),
            user: "robot".into(),
            registrar: None,
            password: None,
            auth_user: None,
            register_expires: 300,
            max_calls: 4,
            media_ip: None,
            rtp_ports: (20_000, 20_999),
            rtp_timeout: Duration::from_secs(15),
            prefer: Codec::Pcmu,
            user_agent: concat!("VoiceBlock/", env!("CARGO_PKG_VERSION")).into(),
            ring: Duration::ZERO,
        }
    }
}

/// Registration state, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegState {
    /// No registrar configured: direct calls only.
    NotConfigured,
    /// Trying.
    Registering,
    /// Registered; `expires` granted.
    Registered {
        /// Seconds granted.
        expires: u32,
    },
    /// The registrar refused (wrong password: 401/403) or is unreachable;
    /// retried with backoff.
    Failed {
        /// What happened.
        reason: String,
    },
    /// Un-registered at shutdown.
    Unregistered,
}

/// Which side placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// The far end called us.
    Inbound,
    /// We called.
    Outbound,
}

/// Facts about an established call.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// SIP Call-ID.
    pub call_id: String,
    /// The From header value (the caller on inbound calls).
    pub from: String,
    /// The To header value.
    pub to: String,
    /// Who called.
    pub direction: CallDirection,
    /// Negotiated codec.
    pub codec: Codec,
    /// Our RTP address.
    pub local_rtp: SocketAddr,
    /// The far end's RTP address from its SDP.
    pub remote_rtp: SocketAddr,
    /// When the INVITE arrived or was sent.
    pub started: SystemTime,
    /// When the call was answered (ACK received or 200 received).
    pub answered: SystemTime,
}

enum LegCommand {
    Hangup(Option<String>),
    Transfer(String, oneshot::Sender<Result<(), SipError>>),
}

/// A handle to end or transfer a call; cheap to clone.
#[derive(Clone, Debug)]
pub struct CallControl {
    commands: mpsc::Sender<LegCommand>,
    end_reason: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for LegCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegCommand::Hangup(r) => write!(f, "Hangup({r:?})"),
            LegCommand::Transfer(t, _) => write!(f, "Transfer({t})"),
        }
    }
}

impl CallControl {
    /// Sends BYE (once); `reason` is recorded as the end reason.
    pub async fn hangup(&self, reason: &str) {
        let _ = self
            .commands
            .send(LegCommand::Hangup(Some(reason.to_string())))
            .await;
    }

    /// Blind transfer: REFER the far end to `target` (a SIP URI or a user
    /// at our registrar). Ok once the far end accepted the REFER and the
    /// transfer progressed; the call is then ended with BYE.
    pub async fn transfer(&self, target: &str) -> Result<(), SipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(LegCommand::Transfer(target.to_string(), tx))
            .await
            .map_err(|_| SipError::CallEnded)?;
        rx.await.map_err(|_| SipError::CallEnded)?
    }

    /// Why the call ended, once it has.
    pub fn end_reason(&self) -> Option<String> {
        self.end_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An established call.
#[derive(Debug)]
pub struct Call {
    /// Who, when, which codec.
    pub info: CallInfo,
    /// Caller frames in, robot speech out.
    pub media: MediaSession,
    /// Hangup and transfer.
    pub control: CallControl,
    /// Cancelled when the call is over (either side, RTP timeout, shutdown).
    pub ended: CancellationToken,
}

struct Inner {
    config: SipConfig,
    media_ip: IpAddr,
    endpoint: Endpoint,
    layer: Arc<DialogLayer>,
    contact: Uri,
    credential: Option<Credential>,
    states: DialogStateSender,
    routes: Mutex<HashMap<String, mpsc::Sender<DialogState>>>,
    active: AtomicUsize,
    accepting: AtomicBool,
    registration: watch::Sender<RegState>,
    calls_tx: mpsc::Sender<Call>,
    /// Parent of every call's token: cancelled at the end of the drain.
    calls_cancel: CancellationToken,
    /// Stops the endpoint and the registration loop.
    cancel: CancellationToken,
}

/// The running user agent.
#[derive(Clone)]
pub struct SipAgent {
    inner: Arc<Inner>,
}

/// Holds one slot of the call limit until dropped.
struct Slot(Arc<Inner>);

/// A place in the call limit held by a call SIP does not carry (the web
/// console's talk page), so every kind of call shares `max_calls`: while
/// it is held, one INVITE fewer is answered. Freed when dropped.
pub struct CallSlot {
    _slot: Slot,
}

impl std::fmt::Debug for CallSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallSlot")
    }
}

/// Why [`SipAgent::reserve_slot`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefused {
    /// Every slot is taken.
    #[error("all {max_calls} call slots are in use")]
    Busy {
        /// The call limit.
        max_calls: usize,
    },
    /// The agent is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn parse_uri(text: &str) -> Result<Uri, SipError> {
    let with_scheme = if text.starts_with("sip:") || text.starts_with("sips:") {
        text.to_string()
    } else {
        format!("sip:{text}")
    };
    Uri::try_from(with_scheme.as_str()).map_err(|e| SipError::BadUri {
        uri: text.to_string(),
        reason: e.to_string(),
    })
}

/// How [`wait_dialog`] ended.
enum Waited {
    /// The dialog was confirmed (the caller's ACK).
    Confirmed,
    /// The dialog ended (CANCEL, BYE, an error), with the reason.
    Ended(String),
    /// Neither within the limit.
    TimedOut,
}

/// Waits up to `limit` on an inbound leg's dialog states for its end, or,
/// when `confirm`, for its confirmation too.
async fn wait_dialog(
    states: &mut mpsc::Receiver<DialogState>,
    limit: Duration,
    confirm: bool,
) -> Waited {
    let wait = async {
        while let Some(state) = states.recv().await {
            match state {
                DialogState::Confirmed(..) if confirm => return Waited::Confirmed,
                DialogState::Terminated(_, r) => return Waited::Ended(terminated_reason(&r)),
                _ => {}
            }
        }
        Waited::Ended("dialog gone".to_string())
    };
    tokio::time::timeout(limit, wait)
        .await
        .unwrap_or(Waited::TimedOut)
}

fn terminated_reason(r: &TerminatedReason) -> String {
    match r {
        TerminatedReason::Timeout => "sip timeout".into(),
        TerminatedReason::UacCancel => "caller cancelled".into(),
        TerminatedReason::UacBye => "far end hung up".into(),
        TerminatedReason::UasBye => "far end hung up".into(),
        TerminatedReason::UacBusy | TerminatedReason::UasBusy => "busy".into(),
        TerminatedReason::UasDecline => "declined".into(),
        TerminatedReason::ProxyError(c) => format!("proxy error {c}"),
        TerminatedReason::ProxyAuthRequired => "proxy authentication failed".into(),
        TerminatedReason::UacOther(c) | TerminatedReason::UasOther(c) => format!("ended: {c}"),
    }
}

fn call_id_of(state: &DialogState) -> &str {
    match state {
        DialogState::Calling(id)
        | DialogState::Trying(id)
        | DialogState::Early(id, _)
        | DialogState::WaitAck(id, _)
        | DialogState::Confirmed(id, _)
        | DialogState::Updated(id, _, _)
        | DialogState::Publish(id, _, _)
        | DialogState::Notify(id, _, _)
        | DialogState::Refer(id, _, _)
        | DialogState::Message(id, _, _)
        | DialogState::Info(id, _, _)
        | DialogState::Options(id, _, _)
        | DialogState::Terminated(id, _) => &id.call_id,
    }
}

/// A digit from a SIP INFO body (`application/dtmf-relay`: `Signal=5`, or
/// `application/dtmf`: `5`).
pub fn info_digit(body: &str) -> Option<char> {
    let value = body
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })
        .unwrap_or(body.trim());
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // "10" is the `*` of some phones, "11" `#`.
        return match value {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

impl SipAgent {
    /// Binds, starts the endpoint, registers if a registrar is configured.
    /// Established calls arrive on the returned receiver (capacity
    /// `max_calls`; the agent waits while it is full, which the call limit
    /// already bounds).
    pub async fn start(
        config: SipConfig,
        cancel: CancellationToken,
    ) -> Result<(SipAgent, mpsc::Receiver<Call>), SipError> {
        if config.listen.ip().is_unspecified() {
            return Err(SipError::Config(format!(
                "listen address {} is unspecified: give the address the PBX reaches us on",
                config.listen
            )));
        }
        if config.max_calls == 0 {
            return Err(SipError::Config("max_calls must be at least 1".into()));
        }
        if config.rtp_ports.0 == 0 || config.rtp_ports.0 >= config.rtp_ports.1 {
            return Err(SipError::Config(format!(
                "rtp_ports {}-{} is not a range of at least two ports",
                config.rtp_ports.0, config.rtp_ports.1
            )));
        }
        let transport = TransportLayer::new(cancel.child_token());
        let conn =
            UdpConnection::create_connection(config.listen, None, Some(cancel.child_token()))
                .await
                .map_err(|e| SipError::Bind {
                    addr: config.listen,
                    source: std::io::Error::other(e.to_string()),
                })?;
        transport.add_transport(conn.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent(&config.user_agent)
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (states, state_rx) = layer.new_dialog_state_channel();
        let contact = parse_uri(&format!("{}@{}", config.user, config.listen))?;
        let credential = config.password.as_ref().map(|password| Credential {
            username: config.user.clone(),
            password: password.clone(),
            realm: None,
            auth_username: config.auth_user.clone(),
        });
        let (calls_tx, calls_rx) = mpsc::channel(config.max_calls);
        let initial = if config.registrar.is_some() {
            RegState::Registering
        } else {
            RegState::NotConfigured
        };
        let media_ip = config.media_ip.unwrap_or(config.listen.ip());
        let inner = Arc::new(Inner {
            media_ip,
            endpoint,
            layer,
            contact,
            credential,
            states,
            routes: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            registration: watch::channel(initial).0,
            calls_tx,
            calls_cancel: CancellationToken::new(),
            cancel,
            config,
        });
        let agent = SipAgent { inner };

        let serve = agent.inner.clone();
        tokio::spawn(async move { serve.endpoint.serve().await });
        tokio::spawn(agent.clone().route_states(state_rx));
        tokio::spawn(agent.clone().dispatch(incoming));
        if let Some(registrar) = agent.inner.config.registrar.clone() {
            let server = parse_uri(&registrar)?;
            tokio::spawn(agent.clone().keep_registered(server));
        }
        Ok((agent, calls_rx))
    }

    /// Current registration state; changes are observable.
    pub fn registration(&self) -> watch::Receiver<RegState> {
        self.inner.registration.subscribe()
    }

    /// Calls in progress (ringing or established).
    pub fn active_calls(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Takes one slot of the call limit for a call that is not SIP (the
    /// console's talk page); refused when the limit is reached or the
    /// agent is stopping.
    pub fn reserve_slot(&self) -> Result<CallSlot, SlotRefused> {
        match self.take_slot() {
            Ok(slot) => Ok(CallSlot { _slot: slot }),
            Err("shutting down") => Err(SlotRefused::ShuttingDown),
            Err(_) => Err(SlotRefused::Busy {
                max_calls: self.inner.config.max_calls,
            }),
        }
    }

    /// Our SIP address.
    pub fn listen(&self) -> SocketAddr {
        self.inner.config.listen
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<DialogState>>> {
        self.inner.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn route_states(self, mut rx: rsipstack::dialog::dialog::DialogStateReceiver) {
        while let Some(state) = rx.recv().await {
            let route = self.lock_routes().get(call_id_of(&state)).cloned();
            match route {
                Some(tx) => {
                    let _ = tx.send(state).await;
                }
                None => match state {
                    // Requests for a dialog whose call task is gone still
                    // need an answer, or the far end retransmits.
                    DialogState::Updated(_, _, h)
                    | DialogState::Info(_, _, h)
                    | DialogState::Options(_, _, h)
                    | DialogState::Notify(_, _, h)
                    | DialogState::Refer(_, _, h)
                    | DialogState::Message(_, _, h)
                    | DialogState::Publish(_, _, h) => {
                        let _ = h.reply(StatusCode::CallTransactionDoesNotExist).await;
                    }
                    _ => {}
                },
            }
        }
    }

    async fn keep_registered(self, server: Uri) {
        let mut registration = Registration::new(
            self.inner.endpoint.inner.clone(),
            self.inner.credential.clone(),
        );
        let token = self.inner.cancel.child_token();
        let states = self.inner.registration.clone();
        let expires = self.inner.config.register_expires;
        registration
            .keep_alive(server.clone(), expires, token, |outcome| {
                let state = match outcome {
                    RefreshOutcome::Registered(_) => RegState::Registered { expires },
                    RefreshOutcome::Rejected(resp) => RegState::Failed {
                        reason: format!("registrar answered {}", resp.status_code),
                    },
                    RefreshOutcome::Failed(e) => RegState::Failed {
                        reason: format!("registrar unreachable: {e}"),
                    },
                };
                match &state {
                    RegState::Registered { .. } => tracing::info!(registrar = %server, "registered"),
                    RegState::Failed { reason } => {
                        tracing::warn!(registrar = %server, %reason, "registration failed; retrying with backoff")
                    }
                    _ => {}
                }
                states.send_replace(state);
            })
            .await;
    }

    async fn dispatch(self, mut incoming: rsipstack::transaction::TransactionReceiver) {
        while let Some(mut tx) = incoming.recv().await {
            let method = tx.original.method;
            let in_dialog = tx
                .original
                .to_header()
                .ok()
                .and_then(|to| to.tag().ok().flatten())
                .is_some();
            match method {
                Method::Invite if !in_dialog => {
                    tokio::spawn(self.clone().on_invite(tx));
                }
                Method::Options if !in_dialog => {
                    let allow = Header::Allow(
                        "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, UPDATE".into(),
                    );
                    let status = if self.inner.accepting.load(Ordering::SeqCst) {
                        StatusCode::OK
                    } else {
                        StatusCode::ServiceUnavailable
                    };
                    let _ = tx.reply_with(status, vec![allow], None).await;
                }
                Method::Ack => {
                    if let Some(rsipstack::dialog::dialog::Dialog::Invite(mut d)) =
                        self.inner.layer.match_dialog(&tx)
                    {
                        let _ = d.handle(&mut tx).await;
                    }
                }
                _ if in_dialog || matches!(method, Method::Bye | Method::Cancel) => {
                    match self.inner.layer.match_dialog(&tx) {
                        Some(rsipstack::dialog::dialog::Dialog::Invite(mut d)) => {
                            tokio::spawn(async move {
                                if let Err(e) = d.handle(&mut tx).await {
                                    tracing::debug!(error = %e, "in-dialog request");
                                }
                            });
                        }
                        _ => {
                            let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                        }
                    }
                }
                _ => {
                    // REGISTER, SUBSCRIBE, PUBLISH, MESSAGE... out of dialog:
                    // a phone robot serves none of them.
                    let allow = Header::Allow("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO".into());
                    let _ = tx
                        .reply_with(StatusCode::MethodNotAllowed, vec![allow], None)
                        .await;
                }
            }
        }
    }

    fn take_slot(&self) -> Result<Slot, &'static str> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Err("shutting down");
        }
        let max = self.inner.config.max_calls;
        let prev = self.inner.active.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.inner.clone());
        if prev >= max {
            drop(slot);
            return Err("call limit reached");
        }
        Ok(slot)
    }

    async fn on_invite(self, mut tx: Transaction) {
        let started = SystemTime::now();
        let from = tx
            .original
            .from_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let to = tx
            .original
            .to_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let offer = String::from_utf8_lossy(&tx.original.body).to_string();
        let negotiated = match sdp::negotiate(&offer, self.inner.config.prefer) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(%from, error = %e, "INVITE with unusable SDP: 488");
                let warning = Header::Warning(format!("399 voiceblock \"{e}\"").into());
                let _ = tx
                    .reply_with(StatusCode::NotAcceptableHere, vec![warning], None)
                    .await;
                return;
            }
        };
        // The slot is taken only for an INVITE that can become a call, and
        // every refusal below lets go of it before its answer goes out: a
        // peer that calls again on the answer must find the slot free.
        let slot = match self.take_slot() {
            Ok(s) => s,
            Err(why) => {
                let code = if why == "shutting down" {
                    StatusCode::ServiceUnavailable
                } else {
                    StatusCode::BusyHere
                };
                tracing::info!(reason = why, "INVITE refused with {code}");
                let _ = tx.reply(code).await;
                return;
            }
        };
        let socket = match RtpSocket::bind(self.inner.media_ip, self.inner.config.rtp_ports).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "no media port: 503");
                drop(slot);
                let _ = tx.reply(StatusCode::ServiceUnavailable).await;
                return;
            }
        };
        let dialog = match self.inner.layer.get_or_create_server_invite(
            &tx,
            self.inner.states.clone(),
            None,
            Some(self.inner.contact.clone()),
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "INVITE not accepted");
                drop(slot);
                let _ = tx.reply(StatusCode::ServerInternalError).await;
                return;
            }
        };
        let call_id = dialog.id().call_id.clone();
        let (leg_tx, mut leg_rx) = mpsc::channel(LEG_EVENTS);
        self.lock_routes().insert(call_id.clone(), leg_tx);
        let _ = tx.send_trying().await;
        let mut handler = dialog.clone();
        tokio::spawn(async move {
            if let Err(e) = handler.handle(&mut tx).await {
                tracing::debug!(error = %e, "INVITE transaction");
            }
        });

        let local = socket.local();
        let session_id = u64::from(crate::random_u32());
        let answer = sdp::write(
            local.ip(),
            local.port(),
            session_id,
            1,
            &[negotiated.codec],
            negotiated.dtmf_payload_type,
            negotiated.direction.answer(),
        );
        let content_type = || vec![Header::ContentType("application/sdp".into())];
        let _ = dialog.ringing(None, None);
        let ring = self.inner.config.ring.min(MAX_RING);
        if !ring.is_zero() {
            // Rings until answered; a CANCEL (or anything ending the dialog)
            // meanwhile ends the call unanswered.
            if let Waited::Ended(reason) = wait_dialog(&mut leg_rx, ring, false).await {
                tracing::info!(%call_id, %from, %reason, "call ended while ringing, not answered");
                self.lock_routes().remove(&call_id);
                return;
            }
        }
        if let Err(e) = dialog.accept(Some(content_type()), Some(answer.into_bytes())) {
            tracing::info!(%call_id, error = %e, "call gone before answer");
            self.lock_routes().remove(&call_id);
            return;
        }
        // Media starts on ACK (Confirmed), not on our 200.
        match wait_dialog(&mut leg_rx, ANSWER_TIMEOUT, true).await {
            Waited::Confirmed => {}
            Waited::Ended(reason) => {
                tracing::info!(%call_id, %reason, "call ended before it was answered");
                self.lock_routes().remove(&call_id);
                return;
            }
            Waited::TimedOut => {
                tracing::warn!(%call_id, "no ACK for our 200 OK within {} s", ANSWER_TIMEOUT.as_secs());
                let _ = dialog.bye().await;
                self.lock_routes().remove(&call_id);
                return;
            }
        }
        let remote = SocketAddr::new(negotiated.remote_ip, negotiated.remote_port);
        let params = MediaParams {
            remote,
            codec: negotiated.codec,
            dtmf_payload_type: negotiated.dtmf_payload_type,
            direction: negotiated.direction.answer(),
        };
        let info = CallInfo {
            call_id,
            from,
            to,
            direction: CallDirection::Inbound,
            codec: negotiated.codec,
            local_rtp: local,
            remote_rtp: remote,
            started,
            answered: SystemTime::now(),
        };
        let call = self.spawn_leg(dialog, info, socket, params, leg_rx, session_id, slot);
        if let Err(mpsc::error::SendError(call)) = self.inner.calls_tx.send(call).await {
            call.control.hangup("daemon not taking calls").await;
        }
    }

    /// Starts media and the signalling task of an answered call.
    #[allow(clippy::too_many_arguments)]
    fn spawn_leg(
        &self,
        dialog: InviteDialog,
        info: CallInfo,
        socket: RtpSocket,
        params: MediaParams,
        leg_rx: mpsc::Receiver<DialogState>,
        session_id: u64,
        slot: Slot,
    ) -> Call {
        let ended = self.inner.calls_cancel.child_token();
        let local = socket.local();
        let media = media::start(socket, params, self.inner.config.rtp_timeout, ended.clone());
        let (cmd_tx, cmd_rx) = mpsc::channel(LEG_COMMANDS);
        let end_reason = Arc::new(Mutex::new(None));
        let leg = Leg {
            agent: self.clone(),
            dialog,
            call_id: info.call_id.clone(),
            states: leg_rx,
            commands: cmd_rx,
            params: media.params.clone(),
            line: media.events_tx.clone(),
            timed_out: media.timed_out.clone(),
            ended: ended.clone(),
            end_reason: end_reason.clone(),
            local,
            session_id,
            session_version: 1,
            prefer: self.inner.config.prefer,
            info_key: None,
            _slot: slot,
        };
        tokio::spawn(leg.run());
        Call {
            info,
            media,
            control: CallControl {
                commands: cmd_tx,
                end_reason,
            },
            ended,
        }
    }

    /// Places a call to `target` (`sip:user@host[:port]`, or `user` at our
    /// registrar) and returns it once answered.
    pub async fn place_call(&self, target: &str) -> Result<Call, SipError> {
        let slot = self.take_slot().map_err(SipError::NotAccepting)?;
        let started = SystemTime::now();
        let callee = if target.contains('@') || self.inner.config.registrar.is_none() {
            parse_uri(target)?
        } else {
            let registrar = self.inner.config.registrar.as_deref().unwrap_or_default();
            parse_uri(&format!("{target}@{registrar}"))?
        };
        let socket = RtpSocket::bind(self.inner.media_ip, self.inner.config.rtp_ports).await?;
        let local = socket.local();
        let session_id = u64::from(crate::random_u32());
        let offer = sdp::write(
            local.ip(),
            local.port(),
            session_id,
            1,
            &[
                self.inner.config.prefer,
                if self.inner.config.prefer == Codec::Pcmu {
                    Codec::Pcma
                } else {
                    Codec::Pcmu
                },
            ],
            Some(DTMF_PT),
            Direction::SendRecv,
        );
        let caller = match &self.inner.config.registrar {
            Some(r) => parse_uri(&format!("{}@{}", self.inner.config.user, r))?,
            None => self.inner.contact.clone(),
        };
        let destination = match &self.inner.config.registrar {
            Some(r) => Some(rsipstack::transport::SipAddr::try_from(&parse_uri(r)?)?),
            None => None,
        };
        let option = InviteOption {
            caller,
            callee: callee.clone(),
            destination,
            content_type: Some("application/sdp".into()),
            offer: Some(offer.into_bytes()),
            contact: self.inner.contact.clone(),
            credential: self.inner.credential.clone(),
            ..Default::default()
        };
        let what = format!("call to {callee}");
        let (leg_tx, leg_rx) = mpsc::channel(LEG_EVENTS);
        let layer = self.inner.layer.clone();
        let states = self.inner.states.clone();
        // The Call-ID is only known once the INVITE is built: route by it
        // as soon as the stack reports the first state.
        let pending = tokio::time::timeout(ANSWER_TIMEOUT, layer.do_invite(option, states));
        let (dialog, resp) = match pending.await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SipError::Timeout {
                    what,
                    seconds: ANSWER_TIMEOUT.as_secs(),
                })
            }
        };
        let resp = resp.ok_or_else(|| SipError::Timeout {
            what: what.clone(),
            seconds: ANSWER_TIMEOUT.as_secs(),
        })?;
        if resp.status_code.kind() != rsipstack::sip::StatusCodeKind::Successful {
            return Err(SipError::Rejected {
                what,
                code: resp.status_code.code(),
                reason: resp.status_code.to_string(),
            });
        }
        let call_id = dialog.id().call_id.clone();
        self.lock_routes().insert(call_id.clone(), leg_tx);
        let answer = String::from_utf8_lossy(&resp.body).to_string();
        let negotiated = match sdp::negotiate(&answer, self.inner.config.prefer) {
            Ok(n) => n,
            Err(source) => {
                let _ = dialog.bye().await;
                self.lock_routes().remove(&call_id);
                return Err(SipError::Sdp {
                    peer: callee.to_string(),
                    source,
                });
            }
        };
        let remote = SocketAddr::new(negotiated.remote_ip, negotiated.remote_port);
        let params = MediaParams {
            remote,
            codec: negotiated.codec,
            dtmf_payload_type: negotiated.dtmf_payload_type.or(Some(DTMF_PT)),
            direction: Direction::SendRecv,
        };
        let from = resp
            .from_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let to = resp
            .to_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let info = CallInfo {
            call_id,
            from,
            to,
            direction: CallDirection::Outbound,
            codec: negotiated.codec,
            local_rtp: local,
            remote_rtp: remote,
            started,
            answered: SystemTime::now(),
        };
        Ok(self.spawn_leg(dialog, info, socket, params, leg_rx, session_id, slot))
    }

    /// Graceful shutdown: new INVITEs get 503 at once; calls in progress may
    /// finish until `drain`, then are ended with BYE; then un-REGISTER.
    pub async fn shutdown(&self, drain: Duration) {
        self.inner.accepting.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + drain;
        while self.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.inner.calls_cancel.cancel();
        // Give the legs a moment to send their BYEs.
        let bye_deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.active_calls() > 0 && tokio::time::Instant::now() < bye_deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(registrar) = self.inner.config.registrar.clone() {
            if let Ok(server) = parse_uri(&registrar) {
                let mut reg = Registration::new(
                    self.inner.endpoint.inner.clone(),
                    self.inner.credential.clone(),
                );
                match tokio::time::timeout(Duration::from_secs(5), reg.register(server, Some(0)))
                    .await
                {
                    Ok(Ok(resp))
                        if resp.status_code.kind()
                            == rsipstack::sip::StatusCodeKind::Successful =>
                    {
                        self.inner.registration.send_replace(RegState::Unregistered);
                    }
                    Ok(Ok(resp)) => {
                        tracing::warn!(status = %resp.status_code, "un-REGISTER refused")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "un-REGISTER failed"),
                    Err(_) => tracing::warn!("un-REGISTER: no answer within 5 s"),
                }
            }
        }
        self.inner.cancel.cancel();
    }
}

/// One call's signalling task.
struct Leg {
    agent: SipAgent,
    dialog: InviteDialog,
    call_id: String,
    states: mpsc::Receiver<DialogState>,
    commands: mpsc::Receiver<LegCommand>,
    params: watch::Sender<MediaParams>,
    line: mpsc::Sender<LineEvent>,
    timed_out: CancellationToken,
    ended: CancellationToken,
    end_reason: Arc<Mutex<Option<String>>>,
    local: SocketAddr,
    session_id: u64,
    session_version: u64,
    prefer: Codec,
    /// A key from SIP INFO whose 200 is queued but maybe not yet sent.
    /// rsipstack sends the reply from the dialog's own task and only then
    /// moves the dialog back to Confirmed; the key is handed to the call
    /// on that next state, so a transfer it starts cannot put a REFER on
    /// the wire ahead of the INFO's 200 (strict peers such as SIPp refuse
    /// it out of order).
    info_key: Option<char>,
    _slot: Slot,
}

impl Leg {
    fn set_reason(&self, reason: &str) {
        let mut r = self.end_reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert_with(|| reason.to_string());
    }

    async fn run(mut self) {
        let mut transfer: Option<oneshot::Sender<Result<(), SipError>>> = None;
        let mut transfer_deadline: Option<tokio::time::Instant> = None;
        loop {
            let refer_wait = async {
                match transfer_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.ended.cancelled() => {
                    self.set_reason("daemon shutdown");
                    let _ = self.dialog.bye().await;
                    break;
                }
                _ = self.timed_out.cancelled() => {
                    self.set_reason("rtp timeout");
                    tracing::warn!(call_id = %self.call_id, "no RTP from the far end: ending the call");
                    let _ = self.dialog.bye().await;
                    break;
                }
                _ = refer_wait => {
                    // The far end accepted the REFER but never reported the
                    // outcome: the transfer is in its hands; leave.
                    if let Some(t) = transfer.take() {
                        let _ = t.send(Ok(()));
                    }
                    self.set_reason("transferred");
                    let _ = self.dialog.bye().await;
                    break;
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(LegCommand::Hangup(None)) => {
                        self.set_reason("robot hung up");
                        let _ = self.dialog.bye().await;
                        break;
                    }
                    Some(LegCommand::Hangup(Some(reason))) => {
                        self.set_reason(&reason);
                        let _ = self.dialog.bye().await;
                        break;
                    }
                    Some(LegCommand::Transfer(target, reply)) => {
                        let outcome = self.refer(&target).await;
                        match outcome {
                            Ok(()) => {
                                transfer = Some(reply);
                                transfer_deadline = Some(tokio::time::Instant::now() + REFER_TIMEOUT);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                },
                state = self.states.recv() => {
                    let Some(state) = state else { break };
                    if !self.on_state(state, &mut transfer, &mut transfer_deadline).await {
                        break;
                    }
                }
            }
        }
        if let Some(t) = transfer.take() {
            let _ = t.send(Err(SipError::CallEnded));
        }
        self.agent.lock_routes().remove(&self.call_id);
        self.agent.inner.layer.remove_dialog(&self.dialog.id());
        self.ended.cancel();
    }

    async fn refer(&mut self, target: &str) -> Result<(), SipError> {
        let uri = if target.contains('@') || self.agent.inner.config.registrar.is_none() {
            parse_uri(target)?
        } else {
            let registrar = self
                .agent
                .inner
                .config
                .registrar
                .as_deref()
                .unwrap_or_default();
            parse_uri(&format!("{target}@{registrar}"))?
        };
        let what = format!("transfer to {uri}");
        let resp = tokio::time::timeout(REFER_TIMEOUT, self.dialog.refer(uri, None, None))
            .await
            .map_err(|_| SipError::Timeout {
                what: what.clone(),
                seconds: REFER_TIMEOUT.as_secs(),
            })??;
        match resp {
            Some(r) if r.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => Ok(()),
            Some(r) => Err(SipError::Rejected {
                what,
                code: r.status_code.code(),
                reason: r.status_code.to_string(),
            }),
            None => Err(SipError::Timeout {
                what,
                seconds: REFER_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Returns false when the call is over.
    async fn on_state(
        &mut self,
        state: DialogState,
        transfer: &mut Option<oneshot::Sender<Result<(), SipError>>>,
        transfer_deadline: &mut Option<tokio::time::Instant>,
    ) -> bool {
        if !matches!(state, DialogState::Info(..)) {
            if let Some(d) = self.info_key.take() {
                let _ = self.line.try_send(LineEvent::Dtmf(d));
            }
        }
        match state {
            DialogState::Terminated(_, reason) => {
                self.set_reason(&terminated_reason(&reason));
                return false;
            }
            DialogState::Updated(_, req, handle) => {
                if req.method == Method::Invite && !req.body.is_empty() {
                    let offer = String::from_utf8_lossy(&req.body).to_string();
                    match sdp::negotiate(&offer, self.prefer) {
                        Ok(n) => {
                            self.session_version += 1;
                            let ours = n.direction.answer();
                            let answer = sdp::write(
                                self.local.ip(),
                                self.local.port(),
                                self.session_id,
                                self.session_version,
                                &[n.codec],
                                n.dtmf_payload_type,
                                ours,
                            );
                            self.params.send_replace(MediaParams {
                                remote: SocketAddr::new(n.remote_ip, n.remote_port),
                                codec: n.codec,
                                dtmf_payload_type: n.dtmf_payload_type,
                                direction: ours,
                            });
                            tracing::info!(call_id = %self.call_id, direction = ?ours, codec = ?n.codec, "re-INVITE");
                            let _ = handle
                                .respond(
                                    StatusCode::OK,
                                    Some(vec![Header::ContentType("application/sdp".into())]),
                                    Some(answer.into_bytes()),
                                )
                                .await;
                        }
                        Err(e) => {
                            tracing::warn!(call_id = %self.call_id, error = %e, "re-INVITE refused: 488");
                            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                        }
                    }
                } else {
                    let _ = handle.reply(StatusCode::OK).await;
                }
            }
            DialogState::Info(_, req, handle) => {
                // The key waits in `info_key` for the state that follows
                // the sent 200 (see there).
                let _ = handle.reply(StatusCode::OK).await;
                let body = String::from_utf8_lossy(&req.body);
                if let Some(d) = info_digit(&body) {
                    if let Some(earlier) = self.info_key.replace(d) {
                        let _ = self.line.try_send(LineEvent::Dtmf(earlier));
                    }
                }
            }
            DialogState::Options(_, _, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            DialogState::Notify(_, req, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                if let Some(status) = rsipstack::dialog::dialog::ReferStatus::parse(&req) {
                    let code = status.status_code.code();
                    if code >= 200 {
                        if let Some(t) = transfer.take() {
                            *transfer_deadline = None;
                            if code < 300 {
                                let _ = t.send(Ok(()));
                                self.set_reason("transferred");
                                let _ = self.dialog.bye().await;
                                return false;
                            }
                            let _ = t.send(Err(SipError::Rejected {
                                what: "transfer".into(),
                                code,
                                reason: status.status_code.to_string(),
                            }));
                        }
                    }
                }
            }
            DialogState::Refer(_, _, handle) => {
                // A robot is not transferred by the caller's phone.
                let _ = handle.reply(StatusCode::Decline).await;
            }
            DialogState::Message(_, _, handle) | DialogState::Publish(_, _, handle) => {
                let _ = handle.reply(StatusCode::MethodNotAllowed).await;
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies() {
        assert_eq!(info_digit("Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(info_digit("Signal= #\nDuration=100"), Some('#'));
        assert_eq!(info_digit("7"), Some('7'));
        assert_eq!(info_digit("Signal=11"), Some('#'));
        assert_eq!(info_digit("Signal=x"), None);
        assert_eq!(info_digit(""), None);
        assert_eq!(info_digit("Signal=55"), None);
    }

    #[test]
    fn uris() {
        assert!(parse_uri("sip:bob@127.0.0.1:5060").is_ok());
        assert!(parse_uri("bob@127.0.0.1").is_ok());
        assert!(matches!(
            parse_uri("sip:@@::"),
            Err(SipError::BadUri { .. })
        ));
    }
}
