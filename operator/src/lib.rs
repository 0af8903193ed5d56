//! The raftcfg Kubernetes operator.
//!
//! This crate will own the `RaftCluster` custom resource, a kube-rs controller
//! that reconciles a StatefulSet of raftcfg nodes and changes Raft membership
//! one node at a time when `spec.replicas` changes, and the `crdgen` binary that
//! writes `crds/raftcluster.yaml`. It talks to nodes only through
//! `raftcfg-client`; it never links RocksDB or the Raft core.
