//! The two Services of a cluster: the headless peer Service that gives each
//! pod a stable DNS name, and the client Service that balances over the
//! ready pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CLIENT_PORT, PEER_PORT, client_selector_labels, client_service_name, object_meta,
    peer_service_name, selector_labels,
};
use crate::crd::RaftCluster;

/// The headless Service `<name>-peer` (the StatefulSet's `serviceName`):
/// `<pod>.<name>-peer.<namespace>.svc` resolves to each pod, with its peer
/// and client ports.
///
/// It publishes not-ready addresses: a node becomes ready only once it is a
/// member that knows its leader, which it cannot do before the others can
/// reach it by name (bootstrap, a new learner, an election after a restart).
pub fn peer_service(rc: &RaftCluster) -> Service {
    Service {
        metadata: object_meta(rc, peer_service_name(rc)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(rc)),
            ports: Some(vec![
                service_port("peer", PEER_PORT),
                service_port("client", CLIENT_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The ClusterIP Service `<name>-client` on port 7379. Only ready pods
/// (members that know their leader) that are not leaving (see
/// [`SERVING_LABEL`](super::SERVING_LABEL)) receive traffic.
pub fn client_service(rc: &RaftCluster) -> Service {
    Service {
        metadata: object_meta(rc, client_service_name(rc)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(client_selector_labels(rc)),
            ports: Some(vec![service_port("client", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// A TCP port targeting the container port of the same name; the protocol
/// is spelled out because it is part of the list's key under server-side
/// apply.
fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_cluster;

    fn ports(service: &Service) -> Vec<(String, i32)> {
        service
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| (p.name.clone().unwrap_or_default(), p.port))
            .collect()
    }

    #[test]
    fn the_peer_service_is_headless_and_publishes_not_ready_addresses() {
        let rc = test_cluster(3);
        let service = peer_service(&rc);
        assert_eq!(service.metadata.name.as_deref(), Some("config-peer"));
        let spec = service.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector, Some(selector_labels(&rc)));
        assert_eq!(
            ports(&service),
            [("peer".to_owned(), 7380), ("client".to_owned(), 7379)]
        );
    }

    #[test]
    fn the_client_service_balances_over_ready_pods_that_are_not_leaving() {
        let rc = test_cluster(3);
        let service = client_service(&rc);
        assert_eq!(service.metadata.name.as_deref(), Some("config-client"));
        let spec = service.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.publish_not_ready_addresses, None);
        let mut selector = selector_labels(&rc);
        selector.insert("raftcfg.io/serving".into(), "true".into());
        assert_eq!(spec.selector, Some(selector));
        assert_eq!(ports(&service), [("client".to_owned(), 7379)]);
    }
}
