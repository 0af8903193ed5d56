//! The two things a reconcile acts on, as traits: the [`Platform`] that runs
//! pods (Kubernetes in production, local processes in the end-to-end
//! tests) and the raftcfg [`Nodes`] in those pods (HTTP in both).
//!
//! The reconcile loop is written against these traits only, so the same
//! code runs against a mocked API server, against real node processes, and
//! in a cluster.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use raftcfg_client::StatusCode;
use raftcfg_client::http::{Client, ClientError, ClientOptions};
use raftcfg_client::wire::{
    AddMemberRequest, BootstrapResponse, ForceNewClusterResponse, MemberList, MembershipResponse,
    NodeId, NodeStatus, TransferLeaderResponse,
};

use crate::crd::{RaftCluster, RaftClusterStatus};
use crate::credentials::{Access, SecretData};
use crate::resources::ROOT_USER;

/// One pod of a cluster's StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Its ordinal.
    pub ordinal: u32,
    /// Being deleted.
    pub terminating: bool,
    /// The configuration hash its template carried.
    pub config_hash: Option<String>,
    /// Whether it carries [`SERVING_LABEL`](crate::resources::SERVING_LABEL)`=true`,
    /// so the client Service may send it clients.
    pub serving: bool,
    /// Where its node's client API answers, once it has an address.
    pub client_url: Option<String>,
    /// Where its peers reach it (the address a new member is added with).
    pub peer_url: String,
    /// The client URL a member is added with (stable across restarts).
    pub advertised_client_url: String,
}

/// The StatefulSet and its pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSet {
    /// The StatefulSet's replicas, `None` when it does not exist.
    pub statefulset_replicas: Option<u32>,
    /// Its pods.
    pub pods: Vec<Pod>,
    /// Ordinals whose data volume claim exists.
    pub claims: Vec<u32>,
}

/// A Kubernetes event about a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning rather than normal.
    pub warning: bool,
    /// A CamelCase reason, e.g. `AddLearner`.
    pub reason: String,
    /// One sentence.
    pub note: String,
}

/// Why an operation on the platform failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {source}")]
pub struct PlatformError {
    /// What was attempted, e.g. `apply StatefulSet config`.
    pub operation: String,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PlatformError {
    /// Wraps `source` as the failure of `operation`.
    pub fn new(
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            operation: operation.into(),
            source: source.into(),
        }
    }
}

/// What runs the pods.
pub trait Platform: Send + Sync {
    /// Applies the objects that do not change membership (Services, the
    /// PodDisruptionBudget for `voters`, the NetworkPolicy or its deletion)
    /// and, if the StatefulSet exists, its template.
    fn apply_owned(
        &self,
        cluster: &RaftCluster,
        voters: u32,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Creates the StatefulSet or sets its replicas.
    fn scale(
        &self,
        cluster: &RaftCluster,
        replicas: u32,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// The StatefulSet and its pods.
    fn pods(
        &self,
        cluster: &RaftCluster,
    ) -> impl Future<Output = Result<PodSet, PlatformError>> + Send;
    /// Deletes a pod (the StatefulSet recreates it).
    fn delete_pod(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Sets a pod's [`SERVING_LABEL`](crate::resources::SERVING_LABEL):
    /// whether the client Service may send it clients.
    fn set_serving(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
        serving: bool,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Deletes a pod's volume claim and then the pod, so it restarts empty.
    fn wipe_pod(
        &self,
        cluster: &RaftCluster,
        ordinal: u32,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Writes the status. If `cluster` carries a resourceVersion the write
    /// is conditional on it (and fails if the object changed since); the
    /// answer is the new resourceVersion, if the platform has one.
    fn patch_status(
        &self,
        cluster: &RaftCluster,
        status: &RaftClusterStatus,
    ) -> impl Future<Output = Result<Option<String>, PlatformError>> + Send;
    /// Publishes an event.
    fn publish(
        &self,
        cluster: &RaftCluster,
        event: Event,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// Applies the cluster's cert-manager Certificates
    /// ([`resources::certificates`](crate::resources::certificates)).
    fn apply_certificates(
        &self,
        cluster: &RaftCluster,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
    /// The data of the Secret `name` in the cluster's namespace, if it
    /// exists.
    fn secret(
        &self,
        cluster: &RaftCluster,
        name: &str,
    ) -> impl Future<Output = Result<Option<SecretData>, PlatformError>> + Send;
    /// Creates or replaces the Secret `name`, owned by the cluster.
    fn apply_secret(
        &self,
        cluster: &RaftCluster,
        name: &str,
        data: &SecretData,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

/// The raftcfg nodes, each addressed by its client URL and reached with
/// the cluster's [`Access`].
pub trait Nodes: Send + Sync {
    /// `GET /v1/node`.
    fn status(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<NodeStatus, ClientError>> + Send;
    /// `GET /v1/cluster/members`.
    fn members(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<MemberList, ClientError>> + Send;
    /// `POST /v1/cluster/bootstrap`.
    fn bootstrap(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<BootstrapResponse, ClientError>> + Send;
    /// `POST /v1/cluster/members`.
    fn add_learner(
        &self,
        url: &str,
        access: &Access,
        request: &AddMemberRequest,
    ) -> impl Future<Output = Result<MembershipResponse, ClientError>> + Send;
    /// `POST /v1/cluster/members/{id}/promote`.
    fn promote(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> impl Future<Output = Result<MembershipResponse, ClientError>> + Send;
    /// `DELETE /v1/cluster/members/{id}`.
    fn remove(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> impl Future<Output = Result<MembershipResponse, ClientError>> + Send;
    /// `POST /v1/cluster/leader`.
    fn transfer_leader(
        &self,
        url: &str,
        access: &Access,
        to: NodeId,
    ) -> impl Future<Output = Result<TransferLeaderResponse, ClientError>> + Send;
    /// `POST /v1/cluster/force-new-cluster`: the node becomes its
    /// cluster's only voter, keeping its data.
    fn force_new_cluster(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<ForceNewClusterResponse, ClientError>> + Send;
    /// `GET /v1/auth/status`: whether auth is on.
    fn auth_enabled(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<bool, ClientError>> + Send;
    /// Makes `root` a user with `password` and the root role, then turns
    /// auth on.
    fn enable_auth(
        &self,
        url: &str,
        access: &Access,
        password: &str,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Turns auth off.
    fn disable_auth(
        &self,
        url: &str,
        access: &Access,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// [`Nodes`] over HTTP with `raftcfg-client`, one pooled client per URL
/// (made again when the access to it changes, say a renewed certificate).
#[derive(Debug)]
pub struct HttpNodes {
    options: ClientOptions,
    clients: Mutex<HashMap<String, (Access, Client)>>,
}

impl HttpNodes {
    /// Clients with short timeouts: a reconcile must not hang on one pod.
    pub fn new() -> Self {
        Self {
            options: ClientOptions {
                request_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(2),
                ..ClientOptions::default()
            },
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, url: &str, access: &Access) -> Result<Client, ClientError> {
        let mut clients = self.clients.lock().expect("client cache lock");
        if let Some((cached, client)) = clients.get(url)
            && cached == access
        {
            return Ok(client.clone());
        }
        let options = ClientOptions {
            tls: access.tls.clone(),
            credentials: access.credentials.clone(),
            ..self.options.clone()
        };
        let client = Client::with_options([url], options)?;
        clients.insert(url.to_string(), (access.clone(), client.clone()));
        Ok(client)
    }
}

impl Default for HttpNodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Nodes for HttpNodes {
    async fn status(&self, url: &str, access: &Access) -> Result<NodeStatus, ClientError> {
        self.client(url, access)?.node_status().await
    }

    async fn members(&self, url: &str, access: &Access) -> Result<MemberList, ClientError> {
        self.client(url, access)?.members().await
    }

    async fn bootstrap(
        &self,
        url: &str,
        access: &Access,
    ) -> Result<BootstrapResponse, ClientError> {
        self.client(url, access)?.bootstrap().await
    }

    async fn add_learner(
        &self,
        url: &str,
        access: &Access,
        request: &AddMemberRequest,
    ) -> Result<MembershipResponse, ClientError> {
        self.client(url, access)?.add_member(request).await
    }

    async fn promote(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        self.client(url, access)?.promote(node_id).await
    }

    async fn remove(
        &self,
        url: &str,
        access: &Access,
        node_id: NodeId,
    ) -> Result<MembershipResponse, ClientError> {
        self.client(url, access)?.remove_member(node_id).await
    }

    async fn transfer_leader(
        &self,
        url: &str,
        access: &Access,
        to: NodeId,
    ) -> Result<TransferLeaderResponse, ClientError> {
        self.client(url, access)?.transfer_leader(Some(to)).await
    }

    async fn force_new_cluster(
        &self,
        url: &str,
        access: &Access,
    ) -> Result<ForceNewClusterResponse, ClientError> {
        self.client(url, access)?.force_new_cluster().await
    }

    async fn auth_enabled(&self, url: &str, access: &Access) -> Result<bool, ClientError> {
        Ok(self.client(url, access)?.auth_status().await?.enabled)
    }

    async fn enable_auth(
        &self,
        url: &str,
        access: &Access,
        password: &str,
    ) -> Result<(), ClientError> {
        let client = self.client(url, access)?;
        match client.add_user(ROOT_USER, Some(password)).await {
            Ok(()) => {}
            // It exists (made by hand, or by an earlier try): the Secret's
            // password becomes its password.
            Err(error) if error.status() == Some(StatusCode::CONFLICT) => {
                client.set_password(ROOT_USER, password).await?;
            }
            Err(error) => return Err(error),
        }
        client.grant_role(ROOT_USER, ROOT_USER).await?;
        client.auth_enable().await
    }

    async fn disable_auth(&self, url: &str, access: &Access) -> Result<(), ClientError> {
        self.client(url, access)?.auth_disable().await
    }
}
