//! The cert-manager `Certificate`s of a cluster whose `spec.tls.issuerRef`
//! names an issuer: one for the members, written to the Secret the pods
//! mount ([`member_secret_name`]), and one the operator signs in with
//! ([`operator_secret_name`]).
//!
//! A StatefulSet's pods share one template, so they cannot each mount a
//! Secret of their own: the members' certificate names every member with
//! a wildcard under the headless peer Service. (With its own CA the
//! operator issues one certificate per member instead; see `pki`.)

use kube::ResourceExt as _;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{
    ROOT_USER, client_service_name, member_secret_name, namespace, object_meta,
    operator_secret_name, peer_service_name,
};
use crate::crd::{IssuerRef, RaftCluster};

/// The cert-manager `Certificate` kind (`cert-manager.io/v1`).
pub static CERTIFICATE: std::sync::LazyLock<ApiResource> = std::sync::LazyLock::new(|| {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
});

/// How long cert-manager's certificates last, and how long before expiry
/// it renews them (the same as the operator's own: 90 and 30 days).
const DURATION: &str = "2160h";
const RENEW_BEFORE: &str = "720h";

/// The Certificates for `rc`, or none when cert-manager does not issue its
/// certificates.
pub fn certificates(rc: &RaftCluster) -> Vec<DynamicObject> {
    let Some(issuer) = rc.spec.cert_manager_issuer() else {
        return Vec::new();
    };
    let name = rc.name_any();
    let ns = namespace(rc);
    let peer = peer_service_name(rc);
    let client = client_service_name(rc);
    let members = certificate(
        rc,
        format!("{name}-members"),
        json!({
            "secretName": member_secret_name(rc),
            "commonName": name,
            "dnsNames": [
                format!("*.{peer}.{ns}.svc"),
                format!("*.{peer}.{ns}.svc.cluster.local"),
                client,
                format!("{client}.{ns}"),
                format!("{client}.{ns}.svc"),
                format!("{client}.{ns}.svc.cluster.local"),
                "localhost",
            ],
            "ipAddresses": ["127.0.0.1"],
            // Members dial each other with it, so it is a client
            // certificate too.
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "duration": DURATION,
            "renewBefore": RENEW_BEFORE,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": issuer_ref(issuer),
        }),
    );
    let operator = certificate(
        rc,
        format!("{name}-operator"),
        json!({
            "secretName": operator_secret_name(rc),
            "commonName": ROOT_USER,
            "usages": ["digital signature", "key encipherment", "client auth"],
            "duration": DURATION,
            "renewBefore": RENEW_BEFORE,
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": issuer_ref(issuer),
        }),
    );
    vec![members, operator]
}

fn certificate(rc: &RaftCluster, name: String, spec: serde_json::Value) -> DynamicObject {
    let mut object = DynamicObject::new(&name, &CERTIFICATE).data(json!({ "spec": spec }));
    object.metadata = object_meta(rc, name);
    object
}

fn issuer_ref(issuer: &IssuerRef) -> serde_json::Value {
    json!({
        "name": issuer.name,
        "kind": issuer.kind.as_str(),
        "group": issuer.group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IssuerKind, TlsSettings};
    use crate::resources::test_cluster;

    fn with_issuer(kind: IssuerKind) -> RaftCluster {
        let mut rc = test_cluster(3);
        rc.spec.tls = Some(TlsSettings {
            enabled: true,
            issuer_ref: Some(IssuerRef {
                name: "company-ca".into(),
                kind,
                group: "cert-manager.io".into(),
            }),
        });
        rc
    }

    #[test]
    fn no_certificates_without_an_issuer() {
        let mut rc = test_cluster(3);
        assert!(certificates(&rc).is_empty(), "no tls");
        rc.spec.tls = Some(TlsSettings {
            enabled: true,
            issuer_ref: None,
        });
        assert!(certificates(&rc).is_empty(), "the operator's own CA");
        let mut off = with_issuer(IssuerKind::Issuer);
        off.spec.tls.as_mut().unwrap().enabled = false;
        assert!(certificates(&off).is_empty(), "tls off");
    }

    #[test]
    fn members_and_operator_certificates_name_the_issuer_and_secrets() {
        let certificates = certificates(&with_issuer(IssuerKind::ClusterIssuer));
        let names: Vec<_> = certificates.iter().map(|c| c.name_any()).collect();
        assert_eq!(names, ["config-members", "config-operator"]);
        for certificate in &certificates {
            let types = certificate.types.as_ref().unwrap();
            assert_eq!(types.api_version, "cert-manager.io/v1");
            assert_eq!(types.kind, "Certificate");
            assert_eq!(certificate.metadata.namespace.as_deref(), Some("prod"));
            let owner = &certificate.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(owner.kind, "RaftCluster");
            let spec = &certificate.data["spec"];
            assert_eq!(
                spec["issuerRef"],
                json!({"name": "company-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
            );
            assert_eq!(spec["renewBefore"], "720h");
        }
        let members = &certificates[0].data["spec"];
        assert_eq!(members["secretName"], "config-tls");
        let dns: Vec<_> = members["dnsNames"].as_array().unwrap().iter().collect();
        assert!(dns.contains(&&json!("*.config-peer.prod.svc")), "{dns:?}");
        assert!(dns.contains(&&json!("config-client.prod.svc")), "{dns:?}");
        let usages = members["usages"].as_array().unwrap();
        assert!(usages.contains(&json!("server auth")));
        assert!(usages.contains(&json!("client auth")));
        let operator = &certificates[1].data["spec"];
        assert_eq!(operator["secretName"], "config-operator-tls");
        assert_eq!(operator["commonName"], "root");
        assert!(
            !operator["usages"]
                .as_array()
                .unwrap()
                .contains(&json!("server auth"))
        );
    }
}
