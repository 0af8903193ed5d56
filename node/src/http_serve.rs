//! Serving one port's HTTP/1.1: the accept loop, the cap on open
//! connections and the timeouts that keep slow, idle or hostile clients
//! from holding descriptors and memory.
//!
//! - A request's headers must arrive within [`ConnectionLimits::header_read_timeout`]
//!   (hyper's timer), and each piece of its body within
//!   [`ConnectionLimits::body_read_timeout`]; otherwise the connection is
//!   closed.
//! - A connection with no request in progress (no request being read, no
//!   response being written) for [`ConnectionLimits::idle_timeout`] is
//!   closed.
//! - At most [`ConnectionLimits::max_connections`] are open. A new one
//!   beyond that closes an idle connection to make room: the oldest of
//!   those that never sent a request, else the one idle the longest. A
//!   flood of connections that send nothing thus never pushes out a client
//!   that is between two requests. If none is idle, the new one is refused
//!   (closed at once). Open connections therefore never exhaust the
//!   process's descriptors (see [`crate::fd_budget`]).
//! - Failing to accept (out of descriptors, say) is logged at most every
//!   few seconds and retried after a pause instead of spinning.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::Service as _;
use tower_http::timeout::TimeoutBody;

use crate::auth::CertificateName;
use crate::metrics::{CountGauge, Held, Metrics, Port, PortLabels};
use crate::tls::ReloadingTls;

/// How long the accept loop waits, after closing an idle connection to
/// make room, for its socket to be closed before it accepts another.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// The pause after a failed accept.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The least time between two logs of failed accepts.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The bounds one port's connections are held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time to receive a request's headers, from its first byte (or from
    /// the connection's opening, for the first request).
    pub header_read_timeout: Duration,
    /// Time to receive each piece of a request's body.
    pub body_read_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    /// The client port's defaults (`raftcfg serve`'s flags start here).
    pub const CLIENT_DEFAULTS: Self = Self {
        max_connections: 4096,
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };
}

/// Serves `router` on `listener` (`port` in the metrics) within `limits`,
/// over TLS if `tls` is given, until `stopping` turns true; then stops
/// accepting, lets requests in progress finish and closes every
/// connection.
pub async fn serve(
    listener: TcpListener,
    port: Port,
    router: axum::Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadingTls>>,
    metrics: Arc<Metrics>,
    mut stopping: watch::Receiver<bool>,
) {
    let registry = Arc::new(Registry {
        counted: metrics
            .open_connections
            .get_or_create_owned(&PortLabels { port }),
        ..Registry::default()
    });
    let shared = Arc::new(Shared {
        handshake_failures: metrics
            .tls_handshake_failures
            .get_or_create_owned(&PortLabels { port }),
        router,
        limits,
        tls,
        registry: registry.clone(),
        metrics: metrics.clone(),
    });
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                metrics.accept_errors.inc();
                accept_errors.log(&error);
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let Some((connection, evicted)) = registry.admit(limits.max_connections, &metrics) else {
            metrics.connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let served = open_connection(stream, connection.clone(), shared.clone(), stopping.clone());
        // hyper wakes the task from inside its own poll for each request
        // with a body; `repoll` keeps that from becoming a yield.
        let served = crate::repoll::repoll(served);
        connections.spawn(async move {
            served.await;
            // Its socket is closed now.
            connection.ended.notify_one();
        });
        // A flood of new connections must not outrun the closing of those
        // evicted for them: that would take descriptors beyond the budget.
        if let Some(evicted) = evicted {
            let _ = tokio::time::timeout(EVICTION_WAIT, evicted.ended.notified()).await;
        }
    }
    registry.close_all();
    while connections.join_next().await.is_some() {}
}

/// What every connection of a port shares.
struct Shared {
    /// This port's failed TLS handshakes.
    handshake_failures: prometheus_client::metrics::counter::Counter,
    router: axum::Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadingTls>>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

/// Completes the TLS handshake if the port has TLS (within the time for
/// a request's headers), then serves the connection.
async fn open_connection(
    stream: TcpStream,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
    stopping: watch::Receiver<bool>,
) {
    let Some(tls) = &shared.tls else {
        return serve_connection(stream, None, connection, shared, stopping).await;
    };
    let handshake = tls.acceptor().accept(stream);
    match tokio::time::timeout(shared.limits.header_read_timeout, handshake).await {
        Ok(Ok(stream)) => {
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| crate::tls::common_name(leaf))
                .map(CertificateName);
            serve_connection(stream, certificate, connection, shared, stopping).await;
        }
        Ok(Err(error)) => {
            shared.handshake_failures.inc();
            tracing::debug!(%error, "a TLS handshake failed");
            shared.registry.remove(connection.id);
        }
        Err(_) => {
            shared.handshake_failures.inc();
            shared.registry.remove(connection.id);
        }
    }
}

/// Serves one connection until it closes, is closed for idleness, or the
/// server stops. Each request carries the name of the client certificate
/// the handshake verified, if any.
async fn serve_connection<S>(
    stream: S,
    certificate: Option<CertificateName>,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Shared {
        router,
        limits,
        registry,
        metrics,
        ..
    } = &*shared;
    let limits = *limits;
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::begin(&connection);
            let mut router = router.clone();
            let mut request =
                request.map(|body| Body::new(TimeoutBody::new(limits.body_read_timeout, body)));
            if let Some(name) = &certificate {
                request.extensions_mut().insert(name.clone());
            }
            async move {
                let response = router.call(request).await?;
                Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _busy: busy })))
            }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(crate::http_errors::HYPER_MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service)
        // A peer stream takes the connection over (see `transport`); the
        // connection then leaves this registry.
        .with_upgrades();
    tokio::pin!(served);
    let mut idle_check = tokio::time::interval(IDLE_CHECK_INTERVAL);
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    if error.is_timeout() {
                        metrics.connections_timed_out.inc();
                    }
                    tracing::debug!(%error, "a connection ended with an error");
                }
                break;
            }
            _ = connection.close.notified(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick(), if !closing => {
                if connection.idle_for() >= Some(limits.idle_timeout) {
                    closing = true;
                    metrics.connections_closed_idle.inc();
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    registry.remove(connection.id);
}

/// One open connection, as the registry and its own task see it.
struct Connection {
    id: u64,
    /// Requests in progress (being read, handled or answered).
    busy: AtomicUsize,
    /// Whether a request has ever begun on it.
    served: AtomicBool,
    /// When the connection last finished a request (or opened), in
    /// milliseconds since the registry's epoch.
    last_active_ms: AtomicU64,
    epoch: Instant,
    /// Tells the connection's task to close it once idle.
    close: Notify,
    /// Signalled once the connection's socket is closed.
    ended: Notify,
    /// Counts it in `raftcfg_open_connections` while it lives.
    _counted: Held,
}

impl Connection {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// How strongly it should be closed to make room, if it is idle: a
    /// connection that never sent a request before any that did, then the
    /// longer idle first.
    fn eviction_rank(&self) -> Option<(bool, Duration)> {
        let idle = self.idle_for()?;
        Some((!self.served.load(Ordering::Relaxed), idle))
    }

    /// How long it has had no request in progress, if none is.
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

/// Marks a request in progress on a connection until dropped (when the
/// response's body is finished or abandoned).
struct Busy(Arc<Connection>);

impl Busy {
    fn begin(connection: &Arc<Connection>) -> Self {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        connection.served.store(true, Ordering::Relaxed);
        Self(connection.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request marked in progress.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The open connections of one port.
#[derive(Default)]
struct Registry {
    open: Mutex<Open>,
    /// The port's `raftcfg_open_connections` series.
    counted: CountGauge,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Connection>>,
    epoch: Option<Instant>,
}

impl Registry {
    /// Registers a new connection, closing an idle one (see
    /// [`Connection::eviction_rank`]) to make room at `max`, and returns it
    /// with the one closed for it; `None` if the port is full of busy ones.
    fn admit(
        &self,
        max: usize,
        metrics: &Metrics,
    ) -> Option<(Arc<Connection>, Option<Arc<Connection>>)> {
        let mut open = self.open.lock().expect("registry lock is never poisoned");
        let mut evicted = None;
        if open.connections.len() >= max {
            let victim = open
                .connections
                .values()
                .filter_map(|c| c.eviction_rank().map(|rank| (rank, c.id)))
                .max()
                .map(|(_, id)| id)?;
            let victim = open.connections.remove(&victim)?;
            victim.close.notify_one();
            metrics.connections_closed_idle.inc();
            evicted = Some(victim);
        }
        let epoch = *open.epoch.get_or_insert_with(Instant::now);
        open.next_id += 1;
        let connection = Arc::new(Connection {
            id: open.next_id,
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(0),
            epoch,
            close: Notify::new(),
            ended: Notify::new(),
            _counted: Held::new(&self.counted),
        });
        connection.touch();
        open.connections.insert(connection.id, connection.clone());
        Some((connection, evicted))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .expect("registry lock is never poisoned")
            .connections
            .remove(&id);
    }

    fn close_all(&self) {
        let open = self.open.lock().expect("registry lock is never poisoned");
        for connection in open.connections.values() {
            connection.close.notify_one();
        }
    }
}

/// Rate-limited logging of failed accepts.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    since_logged: u64,
}

impl AcceptErrors {
    fn log(&mut self, error: &std::io::Error) {
        self.since_logged += 1;
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < ACCEPT_ERROR_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            %error,
            failures = self.since_logged,
            "cannot accept connections; retrying"
        );
        self.last_logged = Some(Instant::now());
        self.since_logged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(registry: &Registry) -> Vec<u64> {
        let open = registry.open.lock().unwrap();
        let mut ids: Vec<u64> = open.connections.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn at_the_cap_a_silent_connection_makes_room_before_a_client_between_requests() {
        let (registry, metrics) = (Registry::default(), Metrics::default());
        let client = registry.admit(2, &metrics).unwrap().0;
        drop(Busy::begin(&client));
        std::thread::sleep(Duration::from_millis(20));
        // The client has been idle longer than this silent connection.
        let _silent = registry.admit(2, &metrics).unwrap().0;
        let newcomer = registry.admit(2, &metrics).unwrap().0;
        assert_eq!(ids(&registry), vec![client.id, newcomer.id]);
        assert_eq!(metrics.connections_closed_idle.get(), 1);
    }

    #[test]
    fn among_clients_the_one_idle_the_longest_makes_room_and_a_busy_one_never() {
        let (registry, metrics) = (Registry::default(), Metrics::default());
        let busy = registry.admit(2, &metrics).unwrap().0;
        let _request = Busy::begin(&busy);
        let idle = registry.admit(2, &metrics).unwrap().0;
        drop(Busy::begin(&idle));
        let newcomer = registry.admit(2, &metrics).unwrap().0;
        assert_eq!(ids(&registry), vec![busy.id, newcomer.id]);
        let _in_progress = Busy::begin(&newcomer);
        assert!(
            registry.admit(2, &metrics).is_none(),
            "refused when every connection is busy"
        );
    }
}
