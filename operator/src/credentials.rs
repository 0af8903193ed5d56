//! The Secrets the operator keeps for a cluster with TLS or auth on, and
//! the [`Access`] to its nodes they give it.
//!
//! - With TLS and no cert-manager issuer: the cluster CA (`<name>-ca`,
//!   read by the operator only), every member's certificate and key plus
//!   the CA certificate (`<name>-tls`, mounted by the pods) and the
//!   operator's client certificate, common name `root`
//!   (`<name>-operator-tls`). Certificates are issued for every ordinal a
//!   cluster may have, so a pod added by a scale-out finds its files
//!   already mounted, and are issued again well before they expire (the
//!   nodes reload them; nothing restarts).
//! - With TLS from cert-manager: the operator applies the cluster's
//!   Certificates; cert-manager writes `<name>-tls` and
//!   `<name>-operator-tls` from them, and the operator reads the latter
//!   (it waits, reconciling nothing else, until it exists).
//! - With `spec.auth`: the root user's name and password (`<name>-root`),
//!   generated once. A Secret the user made beforehand is used as it is.
//!
//! A cluster with neither touches no Secret.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use kube::ResourceExt as _;
use raftcfg_client::{ClientTls, Credentials};

use crate::crd::{MAX_REPLICAS, RaftCluster};
use crate::observed::pod_name;
use crate::pki::{Authority, CertifiedKey, LeafRequest, Usage, renewal_reason};
use crate::resources::{
    CA_CERT_KEY, ROOT_USER, ca_secret_name, member_dns_names, member_secret_name, namespace,
    operator_secret_name, root_secret_name,
};
use crate::world::{Platform, PlatformError};

/// The data of a Secret, key by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The CA's key in `<name>-ca`.
const CA_KEY_KEY: &str = "ca.key";
/// The certificate and key of a `kubernetes.io/tls` Secret.
const TLS_CERT_KEY: &str = "tls.crt";
const TLS_KEY_KEY: &str = "tls.key";
/// The root user's name and password in `<name>-root`.
pub const USERNAME_KEY: &str = "username";
pub const PASSWORD_KEY: &str = "password";

/// How the operator reaches a cluster's nodes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The CA it trusts and the client certificate it presents.
    pub tls: ClientTls,
    /// How it signs in without a client certificate.
    pub credentials: Option<Credentials>,
}

/// Shows what is used, never a key or a password.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("ca", &self.tls.ca_pem.is_some())
            .field("client_certificate", &self.tls.identity_pem.is_some())
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// What [`ensure`] leaves the reconcile with.
#[derive(Clone, Default)]
pub struct Secured {
    /// How to reach the nodes.
    pub access: Access,
    /// The root user's password, when `spec.auth` is set.
    pub root_password: Option<String>,
}

/// Reads the cluster's Secrets, writes those missing or due for renewal,
/// and answers how to reach its nodes.
pub async fn ensure(
    platform: &impl Platform,
    rc: &RaftCluster,
    now: SystemTime,
) -> Result<Secured, PlatformError> {
    let mut secured = Secured::default();
    if rc.spec.tls_enabled() {
        let operator = if rc.spec.cert_manager_issuer().is_some() {
            platform.apply_certificates(rc).await?;
            let name = operator_secret_name(rc);
            platform.secret(rc, &name).await?.ok_or_else(|| {
                PlatformError::new(
                    format!("read Secret {name}"),
                    "cert-manager has not issued it yet (see `kubectl describe certificate`)",
                )
            })?
        } else {
            issue_own(platform, rc, now).await?
        };
        secured.access.tls = client_tls(&operator).map_err(|problem| {
            PlatformError::new(format!("read Secret {}", operator_secret_name(rc)), problem)
        })?;
    }
    if rc.spec.auth.is_some() {
        let name = root_secret_name(rc);
        let existing = platform.secret(rc, &name).await?;
        let data = match existing.as_ref().and_then(root_password) {
            Some(_) => existing.expect("a password was read from it"),
            None => {
                let data = new_root_secret();
                platform.apply_secret(rc, &name, &data).await?;
                data
            }
        };
        let password = root_password(&data).expect("the root Secret holds a password");
        if !rc.spec.tls_enabled() {
            secured.access.credentials = Some(Credentials::Password {
                user: ROOT_USER.to_owned(),
                password: password.clone(),
            });
        }
        secured.root_password = Some(password);
    }
    Ok(secured)
}

/// The operator's own CA mode: the CA, the members' Secret and the
/// operator's; answers the operator's Secret.
async fn issue_own(
    platform: &impl Platform,
    rc: &RaftCluster,
    now: SystemTime,
) -> Result<SecretData, PlatformError> {
    let failed = |name: String| move |e: crate::pki::PkiError| PlatformError::new(name, e);
    let ca_name = ca_secret_name(rc);
    let authority = match platform.secret(rc, &ca_name).await? {
        Some(data) => {
            let pem = certified_key(&data, CA_CERT_KEY, CA_KEY_KEY)
                .map_err(|problem| PlatformError::new(format!("read Secret {ca_name}"), problem))?;
            Authority::from_pem(&pem).map_err(failed(format!("read Secret {ca_name}")))?
        }
        None => {
            let common_name = format!("raftcfg {}/{} CA", namespace(rc), rc.name_any());
            let authority = Authority::generate(&common_name, now)
                .map_err(failed("make the cluster CA".to_owned()))?;
            let pem = authority.pem();
            let data = SecretData::from([
                (CA_CERT_KEY.to_owned(), pem.cert_pem.clone().into_bytes()),
                (CA_KEY_KEY.to_owned(), pem.key_pem.clone().into_bytes()),
            ]);
            platform.apply_secret(rc, &ca_name, &data).await?;
            authority
        }
    };
    let members_name = member_secret_name(rc);
    let members = platform.secret(rc, &members_name).await?;
    if let Some(data) = member_secret(&authority, members.as_ref(), rc, now)
        .map_err(failed(format!("issue the certificates of {members_name}")))?
    {
        platform.apply_secret(rc, &members_name, &data).await?;
    }
    let operator_name = operator_secret_name(rc);
    let existing = platform.secret(rc, &operator_name).await?;
    match operator_secret(&authority, existing.as_ref(), now)
        .map_err(failed(format!("issue the certificate of {operator_name}")))?
    {
        Some(data) => {
            platform.apply_secret(rc, &operator_name, &data).await?;
            Ok(data)
        }
        None => Ok(existing.expect("an unchanged Secret exists")),
    }
}

/// The members' Secret as it should be: the CA certificate and, for every
/// ordinal up to [`MAX_REPLICAS`], `<pod>.crt` and `<pod>.key`. `None` when
/// `existing` already is that: a certificate is kept while it was signed
/// by this CA, holds the names wanted and is not due for renewal.
pub fn member_secret(
    authority: &Authority,
    existing: Option<&SecretData>,
    rc: &RaftCluster,
    now: SystemTime,
) -> Result<Option<SecretData>, crate::pki::PkiError> {
    let ca_pem = authority.pem().cert_pem.as_bytes();
    let empty = SecretData::new();
    let existing = existing.unwrap_or(&empty);
    let same_ca = existing.get(CA_CERT_KEY).map(Vec::as_slice) == Some(ca_pem);
    let mut data = SecretData::from([(CA_CERT_KEY.to_owned(), ca_pem.to_vec())]);
    let mut changed = !same_ca;
    for ordinal in 0..MAX_REPLICAS as u32 {
        let pod = pod_name(&rc.name_any(), ordinal);
        let (cert_key, key_key) = (format!("{pod}.crt"), format!("{pod}.key"));
        let dns_names = member_dns_names(rc, ordinal);
        let kept = certified_key(existing, &cert_key, &key_key)
            .ok()
            .filter(|pem| same_ca && renewal_reason(&pem.cert_pem, &dns_names, now).is_none());
        let pem = match kept {
            Some(pem) => pem,
            None => {
                changed = true;
                let request = LeafRequest {
                    common_name: &pod,
                    dns_names: &dns_names,
                    usage: Usage::Member,
                };
                authority.issue(&request, now)?
            }
        };
        data.insert(cert_key, pem.cert_pem.into_bytes());
        data.insert(key_key, pem.key_pem.into_bytes());
    }
    Ok(changed.then_some(data))
}

/// The operator's Secret as it should be (`ca.crt`, `tls.crt`, `tls.key`
/// of a client certificate named root), or `None` when `existing` is.
pub fn operator_secret(
    authority: &Authority,
    existing: Option<&SecretData>,
    now: SystemTime,
) -> Result<Option<SecretData>, crate::pki::PkiError> {
    let ca_pem = authority.pem().cert_pem.as_bytes();
    let good = existing.is_some_and(|data| {
        data.get(CA_CERT_KEY).map(Vec::as_slice) == Some(ca_pem)
            && certified_key(data, TLS_CERT_KEY, TLS_KEY_KEY)
                .is_ok_and(|pem| renewal_reason(&pem.cert_pem, &[], now).is_none())
    });
    if good {
        return Ok(None);
    }
    let request = LeafRequest {
        common_name: ROOT_USER,
        dns_names: &[],
        usage: Usage::Client,
    };
    let pem = authority.issue(&request, now)?;
    Ok(Some(SecretData::from([
        (CA_CERT_KEY.to_owned(), ca_pem.to_vec()),
        (TLS_CERT_KEY.to_owned(), pem.cert_pem.into_bytes()),
        (TLS_KEY_KEY.to_owned(), pem.key_pem.into_bytes()),
    ])))
}

/// What the operator trusts and presents, from its Secret.
fn client_tls(operator: &SecretData) -> Result<ClientTls, String> {
    let ca = operator
        .get(CA_CERT_KEY)
        .ok_or("it has no ca.crt (the issuer must be a CA issuer that writes one)")?;
    let pem = certified_key(operator, TLS_CERT_KEY, TLS_KEY_KEY)?;
    Ok(ClientTls {
        ca_pem: Some(ca.clone()),
        identity_pem: Some(format!("{}\n{}", pem.cert_pem, pem.key_pem).into_bytes()),
    })
}

fn certified_key(data: &SecretData, cert: &str, key: &str) -> Result<CertifiedKey, String> {
    let text = |name: &str| {
        let bytes = data.get(name).ok_or(format!("it has no {name}"))?;
        String::from_utf8(bytes.clone()).map_err(|_| format!("its {name} is not PEM text"))
    };
    Ok(CertifiedKey {
        cert_pem: text(cert)?,
        key_pem: text(key)?,
    })
}

/// The password of a root Secret, if it holds a usable one.
fn root_password(data: &SecretData) -> Option<String> {
    let password = String::from_utf8(data.get(PASSWORD_KEY)?.clone()).ok()?;
    (!password.is_empty()).then_some(password)
}

/// `username: root` and 32 characters of a fresh random password.
fn new_root_secret() -> SecretData {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretData::from([
        (USERNAME_KEY.to_owned(), ROOT_USER.as_bytes().to_vec()),
        (PASSWORD_KEY.to_owned(), password.into_bytes()),
    ])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resources::test_cluster;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn members_get_a_certificate_each_for_every_possible_ordinal() {
        let rc = test_cluster(3);
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now).unwrap();
        let data = member_secret(&ca, None, &rc, now).unwrap().expect("new");
        assert_eq!(data.len(), 1 + 2 * MAX_REPLICAS as usize);
        assert_eq!(data[CA_CERT_KEY], ca.pem().cert_pem.as_bytes());
        for ordinal in 0..MAX_REPLICAS as u32 {
            let cert = String::from_utf8(data[&format!("config-{ordinal}.crt")].clone()).unwrap();
            assert_eq!(
                renewal_reason(&cert, &member_dns_names(&rc, ordinal), now),
                None
            );
            assert!(data.contains_key(&format!("config-{ordinal}.key")));
        }
        let other = String::from_utf8(data["config-1.crt"].clone()).unwrap();
        assert!(
            renewal_reason(&other, &member_dns_names(&rc, 0), now).is_some(),
            "a member's certificate names that member only"
        );
    }

    #[test]
    fn the_members_secret_is_rewritten_only_for_renewal_or_a_new_ca() {
        let rc = test_cluster(3);
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now).unwrap();
        let first = member_secret(&ca, None, &rc, now).unwrap().unwrap();
        assert_eq!(
            member_secret(&ca, Some(&first), &rc, now + 59 * DAY).unwrap(),
            None
        );

        let renewed = member_secret(&ca, Some(&first), &rc, now + 61 * DAY)
            .unwrap()
            .expect("renewed before expiry");
        assert_ne!(renewed["config-0.crt"], first["config-0.crt"]);
        assert_ne!(renewed["config-0.key"], first["config-0.key"], "a new key");

        let mut one_lost = first.clone();
        one_lost.remove("config-2.key");
        let repaired = member_secret(&ca, Some(&one_lost), &rc, now)
            .unwrap()
            .unwrap();
        assert_eq!(
            repaired["config-0.crt"], first["config-0.crt"],
            "others kept"
        );
        assert_ne!(repaired["config-2.crt"], first["config-2.crt"]);

        let new_ca = Authority::generate("ca", now).unwrap();
        let reissued = member_secret(&new_ca, Some(&first), &rc, now)
            .unwrap()
            .unwrap();
        assert_eq!(reissued[CA_CERT_KEY], new_ca.pem().cert_pem.as_bytes());
        assert_ne!(reissued["config-0.crt"], first["config-0.crt"]);
    }

    #[test]
    fn the_operator_certificate_is_kept_until_it_needs_renewal() {
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now).unwrap();
        let first = operator_secret(&ca, None, now).unwrap().unwrap();
        assert_eq!(operator_secret(&ca, Some(&first), now).unwrap(), None);
        assert!(
            operator_secret(&ca, Some(&first), now + 61 * DAY)
                .unwrap()
                .is_some()
        );
        let tls = client_tls(&first).unwrap();
        assert_eq!(tls.ca_pem.as_deref(), Some(ca.pem().cert_pem.as_bytes()));
        let identity = String::from_utf8(tls.identity_pem.unwrap()).unwrap();
        assert!(identity.contains("BEGIN CERTIFICATE") && identity.contains("PRIVATE KEY"));
    }

    #[test]
    fn root_passwords_are_random_and_a_users_own_secret_is_kept() {
        let one = new_root_secret();
        let two = new_root_secret();
        assert_eq!(one[USERNAME_KEY], b"root");
        let password = root_password(&one).unwrap();
        assert_eq!(password.len(), 32);
        assert_ne!(root_password(&one), root_password(&two));
        let mine = SecretData::from([(PASSWORD_KEY.to_owned(), b"chosen".to_vec())]);
        assert_eq!(root_password(&mine).as_deref(), Some("chosen"));
        let empty = SecretData::from([(PASSWORD_KEY.to_owned(), Vec::new())]);
        assert_eq!(root_password(&empty), None, "an empty password is replaced");
    }
}
