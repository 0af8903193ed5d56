//! `/v1/cluster`: the member list, membership changes, leadership transfer,
//! bootstrap, and forcing a new cluster on the survivor of a lost quorum. A change asked of a follower is relayed to the leader
//! over the peer port, as a write is, and answered with the status and code
//! the leader would have given.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use raftcfg_client::wire::{
    self, AddMemberRequest, BootstrapResponse, ForceNewClusterResponse, LeaderResponse, Member,
    MemberList, MemberRole, MembershipResponse, TransferLeaderRequest, TransferLeaderResponse,
    UpdateMemberRequest, UpdateMemberResponse,
};
use raftcfg_raft::{MembershipChange, NodeId};
use serde::de::DeserializeOwned;

use super::ApiState;
use super::browser::require_json;
use super::error::ApiError;
use super::params::Params;
use crate::auth::Caller;
use crate::driver::DriverError;
use crate::kv::MemberAddress;
use crate::transport::{CheckScope, ClusterRequest, check_new_member};
use axum::Extension;

/// `GET /v1/cluster/members`.
pub async fn list_members(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<MemberList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let view = state.node.view();
    if !view.initialized() {
        return Err(DriverError::NotInitialized.into());
    }
    let status = &view.status;
    let leading = view.is_leader();
    let members = status
        .membership
        .members()
        .map(|id| {
            let address = view.addresses.get(&id);
            let text = |field: fn(&MemberAddress) -> &String| {
                address.map(|a| field(a).clone()).unwrap_or_default()
            };
            Member {
                id: wire::NodeId(id.get()),
                name: text(|a| &a.name),
                peer_url: text(|a| &a.peer_url),
                client_url: text(|a| &a.client_url),
                role: if status.membership.is_voter(id) {
                    MemberRole::Voter
                } else {
                    MemberRole::Learner
                },
                leader: status.leader_id == Some(id),
                match_index: if leading && id == view.identity.node_id {
                    Some(wire::LogIndex(status.last_index.get()))
                } else if leading {
                    status
                        .progress
                        .get(&id)
                        .map(|p| wire::LogIndex(p.matched.get()))
                } else {
                    None
                },
                healthy: if id == view.identity.node_id {
                    Some(view.stopped.is_none())
                } else if leading {
                    Some(view.healthy_peers.contains(&id))
                } else {
                    None
                },
            }
        })
        .collect();
    Ok(Json(MemberList {
        members,
        leader_id: status.leader_id.map(|id| wire::NodeId(id.get())),
        commit_index: wire::LogIndex(status.commit.get()),
        membership_change_pending: status.membership_change_pending,
    }))
}

/// `POST /v1/cluster/members`: add a node as a learner.
pub async fn add_member(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: AddMemberRequest = json_body(&headers, &body)?;
    let id = member_id_value(request.node_id.get())?;
    let address = MemberAddress {
        name: check_name(&request.name)?,
        peer_url: check_peer_url(&state, &request.peer_url)?,
        client_url: check_url("client_url", &request.client_url)?,
    };
    // A follower checks what does not depend on its view being current;
    // the leader, what a relayed request is checked for too.
    let view = state.node.view();
    let scope = if view.is_leader() {
        CheckScope::Full
    } else {
        CheckScope::Identity
    };
    check_new_member(
        &view,
        id,
        &address.client_url,
        scope,
        state.client_tls.as_ref(),
    )
    .await?;
    let local = state
        .node
        .change_membership(MembershipChange::AddLearner(id), Some(address.clone()))
        .await;
    membership_answer(
        &state,
        &caller,
        local,
        ClusterRequest::AddLearner { id, address },
    )
    .await
}

/// `POST /v1/cluster/members/{id}/promote`.
pub async fn promote_member(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let id = member_id(&id)?;
    let membership = state.node.view().status.membership;
    if membership.is_voter(id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_voter",
            format!("node {id} is already a voter"),
        ));
    }
    if !membership.is_learner(id) {
        return Err(ApiError::not_found_code(
            "unknown_member",
            format!("node {id} is not a member; add it as a learner first"),
        ));
    }
    let local = state
        .node
        .change_membership(MembershipChange::PromoteLearner(id), None)
        .await;
    membership_answer(&state, &caller, local, ClusterRequest::Promote(id)).await
}

/// `PUT /v1/cluster/members/{id}`: `{"peer_url": ..., "client_url": ...}`,
/// a member's new URLs (its name stays).
pub async fn update_member(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<UpdateMemberResponse>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let id = member_id(&id)?;
    let request: UpdateMemberRequest = json_body(&headers, &body)?;
    let peer_url = check_peer_url(&state, &request.peer_url)?;
    let client_url = check_url("client_url", &request.client_url)?;
    let local = state
        .node
        .update_member(id, peer_url.clone(), client_url.clone())
        .await;
    let relayed = ClusterRequest::UpdateMember {
        id,
        peer_url: peer_url.clone(),
        client_url: client_url.clone(),
    };
    match local {
        Ok(_) => {}
        Err(DriverError::NotLeader {
            leader: Some(leader),
        }) => {
            relay(&state, &caller, leader, relayed).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let name = state
        .node
        .view()
        .addresses
        .get(&id)
        .map(|address| address.name.clone())
        .unwrap_or_default();
    Ok(Json(UpdateMemberResponse {
        node_id: wire::NodeId(id.get()),
        name,
        peer_url,
        client_url,
    }))
}

/// `DELETE /v1/cluster/members/{id}`.
pub async fn remove_member(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let id = member_id(&id)?;
    let local = state
        .node
        .change_membership(MembershipChange::Remove(id), None)
        .await;
    membership_answer(&state, &caller, local, ClusterRequest::Remove(id)).await
}

/// `GET /v1/cluster/leader`: the leader this node follows (503
/// `no_leader` while there is none).
pub async fn leader(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Json<LeaderResponse>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let view = state.node.view();
    if !view.initialized() {
        return Err(DriverError::NotInitialized.into());
    }
    let Some(leader) = view.leader() else {
        return Err(DriverError::NotLeader { leader: None }.into());
    };
    let address = view.addresses.get(&leader);
    Ok(Json(LeaderResponse {
        leader_id: wire::NodeId(leader.get()),
        name: address.map(|a| a.name.clone()).unwrap_or_default(),
        client_url: address.map(|a| a.client_url.clone()).unwrap_or_default(),
        term: wire::Term(view.status.term.get()),
    }))
}

/// `POST /v1/cluster/leader`: `{"to": id}` or `{}` (the most caught-up voter).
pub async fn transfer_leader(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let request: TransferLeaderRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TransferLeaderRequest::default()
    } else {
        json_body(&headers, &body)?
    };
    let to = request.to.map(|to| member_id_value(to.get())).transpose()?;
    let leader_id = match state.node.transfer_leader(to).await {
        Ok(leader) => leader.get(),
        Err(DriverError::NotLeader {
            leader: Some(leader),
        }) => {
            relay(
                &state,
                &caller,
                leader,
                ClusterRequest::TransferLeader { to },
            )
            .await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(TransferLeaderResponse {
        leader_id: wire::NodeId(leader_id),
    })
    .into_response())
}

/// `POST /v1/cluster/bootstrap`: found a one-member cluster.
pub async fn bootstrap(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BootstrapResponse>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    require_no_body("bootstrap", &headers, &body)?;
    let cluster_id = state.node.bootstrap().await?;
    Ok(Json(BootstrapResponse {
        cluster_id: wire::ClusterId(cluster_id.get()),
        node_id: wire::NodeId(state.node.view().identity.node_id.get()),
    }))
}

/// `POST /v1/cluster/force-new-cluster`: make this node, a voter that
/// knows no leader, its cluster's only voter, keeping its data (root only
/// with auth on). For a quorum lost for good; the other members are then
/// added back as new nodes.
pub async fn force_new_cluster(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ForceNewClusterResponse>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    require_no_body("force-new-cluster", &headers, &body)?;
    let forced = state.node.force_new_cluster().await?;
    Ok(Json(ForceNewClusterResponse {
        cluster_id: wire::ClusterId(forced.cluster_id.get()),
        node_id: wire::NodeId(state.node.view().identity.node_id.get()),
        removed: forced
            .removed
            .iter()
            .map(|id| wire::NodeId(id.get()))
            .collect(),
        last_index: wire::LogIndex(forced.last_index.get()),
        last_term: wire::Term(forced.last_term.get()),
        commit: wire::LogIndex(forced.commit.get()),
    }))
}

/// Refuses a body other than nothing or `{}` (as JSON, if any) for
/// `action`, which takes none.
fn require_no_body(action: &str, headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
    require_json(headers, body)?;
    if !body.iter().all(u8::is_ascii_whitespace) && body.as_ref() != b"{}" {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("{action} takes no request body"),
        ));
    }
    Ok(())
}

/// Answers a membership change done here, or relays it to the leader.
async fn membership_answer(
    state: &ApiState,
    caller: &Caller,
    local: Result<raftcfg_raft::LogIndex, DriverError>,
    request: ClusterRequest,
) -> Result<Response, ApiError> {
    let index = match local {
        Ok(index) => index.get(),
        Err(DriverError::NotLeader {
            leader: Some(leader),
        }) => relay(state, caller, leader, request).await?,
        Err(e) => return Err(e.into()),
    };
    Ok(Json(MembershipResponse {
        index: wire::LogIndex(index),
    })
    .into_response())
}

/// Has the leader carry out `request` for `caller` and returns its answer
/// (a log index or the new leader's id).
async fn relay(
    state: &ApiState,
    caller: &Caller,
    leader: NodeId,
    request: ClusterRequest,
) -> Result<u64, ApiError> {
    let leader_peer_url = state.leader_peer_url(leader)?;
    state
        .transport
        .forward_cluster(
            &leader_peer_url,
            &request,
            caller.user(),
            state.write_timeout,
        )
        .await
        .map_err(ApiError::from)
}

/// A JSON request body of type `T` (`application/json` required).
pub(super) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    require_json(headers, body)?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("invalid JSON body: {e}")))
}

fn member_id(text: &str) -> Result<NodeId, ApiError> {
    let value = text.parse::<u64>().map_err(|_| {
        ApiError::bad_request(
            "bad_member_id",
            format!("'{text}' is not a node id (a positive integer)"),
        )
    })?;
    member_id_value(value)
}

fn member_id_value(value: u64) -> Result<NodeId, ApiError> {
    if value == 0 {
        return Err(ApiError::bad_request(
            "bad_member_id",
            "node id 0 is not valid",
        ));
    }
    Ok(NodeId(value))
}

fn check_name(name: &str) -> Result<String, ApiError> {
    crate::kv::check_member_name(name)
        .map_err(|reason| ApiError::bad_request("bad_member", reason))?;
    Ok(name.to_owned())
}

/// A member's peer URL, whose scheme must be this member's: members talk
/// over TLS to each other or not at all.
fn check_peer_url(state: &ApiState, url: &str) -> Result<String, ApiError> {
    let url = check_url("peer_url", url)?;
    match (state.transport.uses_tls(), url.starts_with("https://")) {
        (true, false) => Err(ApiError::bad_request(
            "bad_member",
            format!(
                "peer_url: {url} is http://, but this cluster's members talk over TLS; give its https:// URL"
            ),
        )),
        (false, true) => Err(ApiError::bad_request(
            "bad_member",
            format!(
                "peer_url: {url} is https://, but this cluster's members talk plain HTTP (no --peer-cert-file)"
            ),
        )),
        _ => Ok(url),
    }
}

fn check_url(field: &str, url: &str) -> Result<String, ApiError> {
    crate::kv::check_member_url(url)
        .map_err(|reason| ApiError::bad_request("bad_member", format!("{field}: {reason}")))?;
    Ok(url.to_owned())
}
