//! The YAML the project ships agrees with the operator's types: the
//! committed CRD is exactly what `crdgen` prints, and the example
//! RaftCluster is one the operator accepts.

use raftcfg_operator::crd::{RaftCluster, RaftTuning};

fn repo_file(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"))
}

#[test]
fn committed_crd_matches_crdgen_output() {
    let generated = raftcfg_operator::crd::crd_yaml().unwrap();
    assert!(
        repo_file("crds/raftcluster.yaml") == generated,
        "crds/raftcluster.yaml differs from crdgen's output; run `make crds`"
    );
    assert!(
        repo_file("charts/raftcfg-operator/crds/raftcluster.yaml") == generated,
        "the chart's CRD differs from crdgen's output; run `make crds`"
    );
}

#[test]
fn the_example_cluster_is_valid() {
    let cluster: RaftCluster = serde_saphyr::from_str(&repo_file("examples/raftcluster.yaml"))
        .expect("examples/raftcluster.yaml is a RaftCluster");
    assert_eq!(cluster.spec.validate(), Ok(()));
    let tuning = serde_json::to_value(&cluster.spec.raft).unwrap();
    assert!(RaftTuning::validate_cel(&tuning, None).is_ok());
    assert_eq!(cluster.spec.replicas, 3);
}
