//! The client HTTP API (docs/design.md §3): [`router`] over an [`ApiState`].
//!
//! Handlers are grouped by resource — `kv` (keys), `watch` (Server-Sent
//! Events), `cluster` (members, leadership, bootstrap) and `node` (this
//! node, backups, health and metrics) — and fail with [`ApiError`]. Any node
//! accepts writes (a follower forwards them to the leader over the peer
//! transport), linearizable reads (ReadIndex through the leader) and
//! membership changes (relayed to the leader over the peer port).

mod auth;
mod browser;
mod cluster;
mod error;
mod kv;
mod node;
mod params;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;

use crate::auth::Caller;
use crate::driver::{Consistency, DriverError, NodeHandle, Query, QueryResult};
use crate::kv::{Command, Digest, Limits, Outcome};
use crate::metrics::Metrics;
use crate::storage::Db;
use crate::tls::TlsFiles;
use crate::transport::Transport;
use raftcfg_raft::NodeId;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The driver.
    pub node: NodeHandle,
    /// The node's database, for backups and digests, which read a RocksDB
    /// snapshot on a blocking thread instead of the driver's.
    pub db: Db,
    /// The last digest computed and the applied index it is at.
    pub digest: Arc<tokio::sync::Mutex<Option<(raftcfg_raft::LogIndex, Digest)>>>,
    /// Forwards writes to the leader.
    pub transport: Arc<Transport>,
    /// Key and value limits.
    pub limits: Limits,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// How long a write waits for its entry to be applied.
    pub write_timeout: Duration,
    /// How long a read waits for its ReadIndex and the state.
    pub read_timeout: Duration,
    /// Web origins whose pages may change state (see `browser.rs`).
    pub allowed_origins: Arc<Vec<String>>,
    /// The client port's TLS files, for asking a new member's client port
    /// who it is.
    pub client_tls: Option<TlsFiles>,
    /// How long a token issued for a password is good for.
    pub token_ttl: Duration,
}

impl ApiState {
    /// State with default timeouts (writes 10 s, reads 5 s).
    pub fn new(
        node: NodeHandle,
        db: Db,
        transport: Arc<Transport>,
        limits: Limits,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            node,
            db,
            digest: Arc::default(),
            transport,
            limits,
            metrics,
            write_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(5),
            allowed_origins: Arc::default(),
            client_tls: None,
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }

    /// Proposes `command` for `caller`, on this node if it leads, else
    /// forwarded to the leader (which checks the caller again). A timeout
    /// is an unknown outcome, never a failure.
    async fn write(&self, caller: &Caller, command: Command) -> Result<Outcome, ApiError> {
        let local = tokio::time::timeout(self.write_timeout, self.node.propose(command.clone()));
        let leader = match local.await {
            Err(_) => return Err(ApiError::outcome_unknown()),
            Ok(Err(DriverError::NotLeader {
                leader: Some(leader),
            })) => leader,
            Ok(answer) => return answer.map_err(ApiError::from),
        };
        self.transport
            .forward_propose(
                &self.leader_peer_url(leader)?,
                &command,
                caller.user(),
                self.write_timeout,
            )
            .await
            .map_err(ApiError::from)
    }

    /// Where `leader`'s peer port is, to forward a request to it; unknown
    /// is 503 `no_leader`, as if there were none.
    fn leader_peer_url(&self, leader: NodeId) -> Result<String, ApiError> {
        self.node
            .view()
            .addresses
            .get(&leader)
            .map(|address| address.peer_url.clone())
            .filter(|url| !url.is_empty())
            .ok_or_else(|| ApiError::from(DriverError::NotLeader { leader: None }))
    }

    /// Reads with `consistency`; a timeout is a 503 (reads are safe to retry).
    async fn read(&self, query: Query, consistency: Consistency) -> Result<QueryResult, ApiError> {
        match tokio::time::timeout(self.read_timeout, self.node.read(query, consistency)).await {
            Err(_) => Err(ApiError::unavailable(
                "timeout",
                "the read did not complete in time (no leader or no quorum?); retry shortly",
            )),
            Ok(answer) => answer.map_err(ApiError::from),
        }
    }
}

/// How long a token is good for unless `--auth-token-ttl` says otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The largest request body accepted: the value limit plus room for the
/// JSON of admin requests. Larger values get a JSON 413 from the handler.
fn body_limit(limits: &Limits) -> usize {
    limits.max_value_bytes.saturating_add(1)
}

/// The client port's one layer around its routes (each layer costs every
/// request a boxed future and a clone of the services beneath it; four of
/// the five layers the port had cost lone writes about 3.5% of their
/// throughput). It counts and times the request and makes its error
/// answer the JSON envelope ([`crate::http_metrics::answer`]); inside
/// that, it checks a web page's origin
/// ([`browser::foreign_origin_refusal`]) and a removed member
/// ([`removed_refusal`]), then signs the caller in ([`auth::sign_in`]).
async fn admit(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let metrics = state.metrics.clone();
    crate::http_metrics::answer(
        &metrics,
        crate::metrics::CLIENT_PORT,
        request,
        |request| async move {
            if let Some(refusal) = browser::foreign_origin_refusal(&state, &request)
                .or_else(|| removed_refusal(&state, &request))
            {
                return refusal;
            }
            auth::sign_in(axum::extract::State(state), request, next).await
        },
    )
    .await
}

/// A member removed from its cluster answers every request `410 removed`,
/// but for those that say what it is: `/v1/node` (role `removed`),
/// `/healthz` (the process is fine) and `/metrics`.
fn removed_refusal(
    state: &ApiState,
    request: &axum::extract::Request,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let describes_itself = matches!(request.uri().path(), "/v1/node" | "/healthz" | "/metrics");
    (state.node.is_removed() && !describes_itself)
        .then(|| error::ApiError::from(DriverError::Removed).into_response())
}

/// The client API's router, its requests counted in the node's metrics.
pub fn router(state: ApiState) -> Router {
    // Shared, not copied: every request's middlewares and handler each
    // take the state, and a copy of its handles and paths is not free.
    let state = Arc::new(state);
    Router::new()
        .route("/v1/kv", get(kv::list))
        .route("/v1/kv/", axum::routing::any(node::empty_key))
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/watch", get(watch::watch))
        .route(
            "/v1/cluster/members",
            get(cluster::list_members).post(cluster::add_member),
        )
        .route(
            "/v1/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member).put(cluster::update_member),
        )
        .route(
            "/v1/cluster/members/{id}/promote",
            post(cluster::promote_member),
        )
        .route(
            "/v1/cluster/leader",
            get(cluster::leader).post(cluster::transfer_leader),
        )
        .route("/v1/cluster/bootstrap", post(cluster::bootstrap))
        .route(
            "/v1/cluster/force-new-cluster",
            post(cluster::force_new_cluster),
        )
        .route("/v1/auth/status", get(auth::status))
        .route("/v1/auth/token", post(auth::issue_token))
        .route("/v1/auth/enable", post(auth::enable))
        .route("/v1/auth/disable", post(auth::disable))
        .route("/v1/auth/users", get(auth::list_users).post(auth::add_user))
        .route(
            "/v1/auth/users/{name}",
            axum::routing::delete(auth::delete_user),
        )
        .route(
            "/v1/auth/users/{name}/password",
            axum::routing::put(auth::set_password),
        )
        .route(
            "/v1/auth/users/{name}/roles/{role}",
            axum::routing::put(auth::grant_role).delete(auth::revoke_role),
        )
        .route("/v1/auth/roles", get(auth::list_roles).post(auth::add_role))
        .route(
            "/v1/auth/roles/{name}",
            axum::routing::delete(auth::delete_role),
        )
        .route(
            "/v1/auth/roles/{name}/permissions",
            axum::routing::put(auth::grant_permission).delete(auth::revoke_permission),
        )
        .route("/v1/node", get(node::status))
        .route("/v1/snapshot", get(node::snapshot))
        .route("/healthz", get(node::healthz))
        .route("/readyz", get(node::readyz))
        .route("/metrics", get(node::metrics))
        .fallback(node::no_route)
        .method_not_allowed_fallback(node::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .layer(DefaultBodyLimit::max(body_limit(&state.limits)))
        .with_state(state)
}
