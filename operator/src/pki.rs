//! The certificates the operator issues itself when a cluster has TLS on
//! and no cert-manager issuer: one cluster CA, and leaf certificates signed
//! by it (each member's, for both ports, and the operator's own client
//! certificate). Keys are ECDSA P-256, made here and never leave the
//! cluster's Secrets.
//!
//! Leaves last [`LEAF_VALIDITY`] and are issued again once less than
//! [`RENEW_WITHIN`] remains (or their names are no longer the ones
//! wanted); the CA lasts [`CA_VALIDITY`] and is not rotated.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

/// How long a leaf certificate is valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// A leaf with less than this left is issued again.
pub const RENEW_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long the cluster CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far back a new certificate's validity starts, for clocks behind
/// the operator's.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PkiError(String);

impl From<rcgen::Error> for PkiError {
    fn from(error: rcgen::Error) -> Self {
        Self(error.to_string())
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// Never shows the key.
impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey").finish_non_exhaustive()
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A member: it serves both ports and dials its peers.
    Member,
    /// A client only (the operator).
    Client,
}

/// The leaf certificate to issue.
#[derive(Clone, Debug)]
pub struct LeafRequest<'a> {
    /// Its subject's common name (for a client, the user it signs in as).
    pub common_name: &'a str,
    /// The DNS names it holds (a member also holds 127.0.0.1).
    pub dns_names: &'a [String],
    /// What it is for.
    pub usage: Usage,
}

/// The cluster CA, able to sign.
pub struct Authority {
    pem: CertifiedKey,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new CA named `common_name`, valid from now for [`CA_VALIDITY`].
    pub fn generate(common_name: &str, now: SystemTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = at(now - BACKDATE);
        params.not_after = at(now + CA_VALIDITY);
        let cert_pem = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Self::from_pem(&CertifiedKey { cert_pem, key_pem })
    }

    /// The CA kept in a Secret.
    pub fn from_pem(pem: &CertifiedKey) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&pem.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&pem.cert_pem, key)?;
        Ok(Self {
            pem: pem.clone(),
            issuer,
        })
    }

    /// Its certificate and key.
    pub fn pem(&self) -> &CertifiedKey {
        &self.pem
    }

    /// A new key and a certificate for it, valid from now for
    /// [`LEAF_VALIDITY`].
    pub fn issue(
        &self,
        request: &LeafRequest<'_>,
        now: SystemTime,
    ) -> Result<CertifiedKey, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(request.dns_names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, request.common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match request.usage {
            Usage::Member => {
                params
                    .subject_alt_names
                    .push(SanType::IpAddress([127, 0, 0, 1].into()));
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            }
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now - BACKDATE);
        params.not_after = at(now + LEAF_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Why a leaf certificate must be issued again, or `None` if it is good:
/// it does not parse, it expires within [`RENEW_WITHIN`] of `now`, or its
/// DNS names are not `dns_names`.
pub fn renewal_reason(cert_pem: &str, dns_names: &[String], now: SystemTime) -> Option<String> {
    let (_, pem) = match x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) {
        Ok(parsed) => parsed,
        Err(error) => return Some(format!("it is not a PEM certificate: {error}")),
    };
    let cert = match pem.parse_x509() {
        Ok(cert) => cert,
        Err(error) => return Some(format!("it does not parse: {error}")),
    };
    let not_after = cert.validity().not_after.timestamp();
    let renew_at = not_after - RENEW_WITHIN.as_secs() as i64;
    if unix_seconds(now) >= renew_at {
        return Some("it expires within 30 days".to_owned());
    }
    let mut held: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(names)) => names
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(error) => return Some(format!("its names do not parse: {error}")),
    };
    let mut wanted = dns_names.to_vec();
    held.sort();
    wanted.sort();
    (held != wanted).then(|| "its names are not the ones wanted".to_owned())
}

fn at(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(time)
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn names() -> Vec<String> {
        vec!["config-0.config-peer.prod.svc".into(), "localhost".into()]
    }

    #[test]
    fn a_ca_read_back_from_its_pem_signs_the_same_chain() {
        let now = SystemTime::now();
        let ca = Authority::generate("raftcfg prod/config CA", now).unwrap();
        let again = Authority::from_pem(ca.pem()).unwrap();
        let leaf = again
            .issue(
                &LeafRequest {
                    common_name: "config-0",
                    dns_names: &names(),
                    usage: Usage::Member,
                },
                now,
            )
            .unwrap();
        let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(leaf.cert_pem.as_bytes()).unwrap();
        let leaf_cert = leaf_pem.parse_x509().unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.pem().cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        assert_eq!(leaf_cert.issuer(), ca_cert.subject());
        leaf_cert
            .verify_signature(Some(ca_cert.public_key()))
            .expect("the leaf is signed by the CA's key");
        assert!(ca_cert.is_ca());
        let usages = leaf_cert.extended_key_usage().unwrap().unwrap().value;
        assert!(usages.server_auth && usages.client_auth);
        let days = (leaf_cert.validity().not_after.timestamp()
            - leaf_cert.validity().not_before.timestamp())
            / DAY.as_secs() as i64;
        assert_eq!(days, 90, "90 days and the hour it is backdated by");
    }

    #[test]
    fn a_client_certificate_names_its_user_and_cannot_serve() {
        let now = SystemTime::now();
        let ca = Authority::generate("ca", now).unwrap();
        let leaf = ca
            .issue(
                &LeafRequest {
                    common_name: "root",
                    dns_names: &[],
                    usage: Usage::Client,
                },
                now,
            )
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.cert_pem.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "root");
        let usages = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(usages.client_auth && !usages.server_auth);
    }

    #[test]
    fn leaves_are_renewed_thirty_days_before_expiry_or_when_names_change() {
        let issued = SystemTime::now();
        let ca = Authority::generate("ca", issued).unwrap();
        let leaf = ca
            .issue(
                &LeafRequest {
                    common_name: "config-0",
                    dns_names: &names(),
                    usage: Usage::Member,
                },
                issued,
            )
            .unwrap();
        assert_eq!(renewal_reason(&leaf.cert_pem, &names(), issued), None);
        assert_eq!(
            renewal_reason(&leaf.cert_pem, &names(), issued + 59 * DAY),
            None
        );
        let late = renewal_reason(&leaf.cert_pem, &names(), issued + 61 * DAY);
        assert!(late.unwrap().contains("expires within 30 days"));
        let mut other = names();
        other.push("config-client".into());
        let renamed = renewal_reason(&leaf.cert_pem, &other, issued);
        assert!(renamed.unwrap().contains("names"));
        assert!(renewal_reason("garbage", &names(), issued).is_some());
    }

    #[test]
    fn certified_keys_never_show_their_key_in_debug_output() {
        let ca = Authority::generate("ca", SystemTime::now()).unwrap();
        let shown = format!("{:?}", ca.pem());
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}
