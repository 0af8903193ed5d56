//! Before a node is added: asking it who it is. A node is added under the
//! id its own data directory holds, to a cluster it does not belong to
//! yet; anything else would leave a member that never catches up, or two
//! clusters' logs in one directory.

use std::time::Duration;

use raftcfg_client::wire::NodeStatus;
use raftcfg_raft::NodeId;

use super::sender::{MAX_ANSWER_BYTES, read_bounded};
use crate::driver::{DriverError, MemberRefusal, NodeView};
use crate::tls::{TlsFiles, client_port_client};

/// Time for a node about to be added to say who it is.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What to check of a node about to be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckScope {
    /// Its id and its cluster: what any member can check.
    Identity,
    /// Also that it was not removed from this cluster, which only the
    /// leader's current membership can say.
    Full,
}

/// Asks the node at `client_url` who it is, and refuses to add it as `id`
/// unless it is that node and belongs to no other cluster (with
/// [`CheckScope::Full`], nor was removed from this one). A member being
/// added again is left to the leader, which refuses a duplicate.
pub async fn check_new_member(
    view: &NodeView,
    id: NodeId,
    client_url: &str,
    scope: CheckScope,
    tls: Option<&TlsFiles>,
) -> Result<(), DriverError> {
    let refuse = |refusal, message| Err(DriverError::MemberRefused { refusal, message });
    let node = match node_at(client_url, tls).await {
        Ok(node) => node,
        Err(why) => {
            return refuse(
                MemberRefusal::Unreachable,
                format!(
                    "cannot ask the node at {client_url} who it is ({why}); start it before \
                     adding it, and give its client URL"
                ),
            );
        }
    };
    if node.node_id.get() != id.get() {
        return refuse(
            MemberRefusal::WrongNode,
            format!(
                "the node at {client_url} is node {}, not node {id}; add it with its own id",
                node.node_id.get()
            ),
        );
    }
    let (Some(theirs), Some(ours)) = (node.cluster_id, view.status.cluster_id) else {
        return Ok(());
    };
    if theirs.get() != ours.get() {
        return refuse(
            MemberRefusal::ForeignCluster,
            format!(
                "node {id} belongs to cluster {}, not to this one ({ours}); a node joins a \
                 cluster with an empty data directory",
                theirs.get()
            ),
        );
    }
    if scope == CheckScope::Full && !view.status.membership.contains(id) {
        return refuse(
            MemberRefusal::Removed,
            format!(
                "node {id} was removed from this cluster and keeps its old data; start it with \
                 an empty data directory and add it under its new id"
            ),
        );
    }
    Ok(())
}

/// What the node whose client API is at `client_url` says of itself, or
/// why it said nothing usable. (A client of its own, with the client
/// port's TLS files: adding a member is rare, and its client port is not
/// a peer.)
async fn node_at(client_url: &str, tls: Option<&TlsFiles>) -> Result<NodeStatus, String> {
    let response = client_port_client(tls)?
        .get(format!("{client_url}/v1/node"))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let body = read_bounded(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|_| "its answer was cut off or too long".to_owned())?;
    serde_json::from_slice(&body).map_err(|_| "it is not a raftcfg client port".to_owned())
}
