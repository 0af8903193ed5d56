//! The NetworkPolicy `<name>` over the cluster's pods: Raft's peer port
//! open to the cluster's own pods only, so nothing else can send Raft
//! messages, forwarded writes or snapshots; the client port open to
//! `spec.clientAccess`, or to everyone when it is absent. Every other port
//! of the pods is closed to ingress.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;

use super::{CLIENT_PORT, PEER_PORT, object_meta, selector_labels};
use crate::crd::RaftCluster;

/// The cluster's NetworkPolicy (applied only while
/// `spec.networkPolicy.enabled`).
pub fn network_policy(rc: &RaftCluster) -> NetworkPolicy {
    let pods = LabelSelector {
        match_labels: Some(selector_labels(rc)),
        ..LabelSelector::default()
    };
    let port = |number: u16| {
        Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(number))),
            protocol: Some("TCP".to_owned()),
            end_port: None,
        }])
    };
    NetworkPolicy {
        metadata: object_meta(rc, rc.name_any()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods.clone()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: port(PEER_PORT),
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(pods),
                        ..NetworkPolicyPeer::default()
                    }]),
                },
                NetworkPolicyIngressRule {
                    ports: port(CLIENT_PORT),
                    from: rc.spec.client_access.clone(),
                },
            ]),
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::test_cluster;

    #[test]
    fn the_peer_port_is_open_to_the_clusters_pods_only_and_the_client_port_to_all() {
        let policy = serde_json::to_value(network_policy(&test_cluster(3))).unwrap();
        let selector = json!({"matchLabels": {
            "app.kubernetes.io/instance": "config",
            "app.kubernetes.io/name": "raftcfg",
        }});
        assert_eq!(policy["spec"]["podSelector"], selector);
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
        let rules = &policy["spec"]["ingress"];
        assert_eq!(
            rules[0]["ports"],
            json!([{"port": 7380, "protocol": "TCP"}])
        );
        assert_eq!(rules[0]["from"], json!([{"podSelector": selector}]));
        assert_eq!(
            rules[1]["ports"],
            json!([{"port": 7379, "protocol": "TCP"}])
        );
        assert!(rules[1].get("from").is_none(), "no from: every source");
        assert_eq!(
            policy["metadata"]["ownerReferences"][0]["kind"],
            "RaftCluster"
        );
    }

    #[test]
    fn turning_the_policy_off_or_narrowing_access_rolls_no_pod() {
        let rc = test_cluster(3);
        let mut changed = rc.spec.clone();
        changed.network_policy.enabled = false;
        changed.client_access = Some(Vec::new());
        assert_eq!(
            crate::resources::config_hash(&rc.spec),
            crate::resources::config_hash(&changed)
        );
    }

    #[test]
    fn client_access_narrows_the_client_port() {
        let mut rc = test_cluster(3);
        let peers: Vec<NetworkPolicyPeer> = serde_json::from_value(json!([
            {"namespaceSelector": {"matchLabels": {"team": "payments"}}},
        ]))
        .unwrap();
        rc.spec.client_access = Some(peers);
        let policy = serde_json::to_value(network_policy(&rc)).unwrap();
        assert_eq!(
            policy["spec"]["ingress"][1]["from"],
            json!([{"namespaceSelector": {"matchLabels": {"team": "payments"}}}])
        );
    }
}
