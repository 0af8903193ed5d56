//! The raftcfg Kubernetes operator.
//!
//! It owns the `RaftCluster` custom resource ([`crd`]) and runs a StatefulSet
//! of raftcfg nodes for each one, changing Raft membership one member at a
//! time. A reconcile observes the cluster ([`observed`]), asks the pure
//! [`planner`] for the single next step, and carries it out. It talks to
//! nodes only through `raftcfg-client`; it never links RocksDB or the Raft
//! core.

pub mod controller;
pub mod crd;
pub mod credentials;
pub mod http;
pub mod kube_platform;
pub mod lease;
pub mod metrics;
pub mod observed;
pub mod pki;
pub mod planner;
pub mod reconcile;
pub mod resources;
pub mod status;
pub mod world;
