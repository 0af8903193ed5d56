//! TLS for the client port: the server configuration made from PEM files
//! (`--cert-file`, `--key-file`, and `--trusted-ca-file` with
//! `--client-cert-auth`), made again whenever one of the files changes, so
//! a certificate that Kubernetes rotates in a mounted Secret is served
//! without a restart. A connection keeps the configuration it began with;
//! files that do not make a valid configuration (half rotated, say) are
//! logged and the previous configuration stays until they do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How often, at most, the files are looked at for a change.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The files a TLS port is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA whose client certificates are accepted (PEM), if any.
    pub trusted_ca: Option<PathBuf>,
    /// Whether a client must present a certificate from `trusted_ca`.
    pub client_cert_auth: bool,
}

impl TlsFiles {
    /// Why these files cannot serve TLS, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.client_cert_auth && self.trusted_ca.is_none() {
            return Err(
                "--client-cert-auth needs --trusted-ca-file: the CA whose client certificates \
                 are accepted"
                    .to_owned(),
            );
        }
        build(self).map(drop)
    }

    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.trusted_ca.as_deref());
        paths
    }
}

/// A port's TLS configuration, kept current with its files.
pub struct ReloadingTls {
    files: TlsFiles,
    current: Mutex<Current>,
}

struct Current {
    acceptor: TlsAcceptor,
    /// What the files looked like when `acceptor` was made from them.
    stamps: Vec<Option<FileStamp>>,
    checked: Instant,
}

/// What tells that a file changed: Kubernetes replaces a Secret's files by
/// swapping a symlink, which changes the inode; an editor rewrites it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok()?,
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl ReloadingTls {
    /// Loads the files; an error says which one is wrong and how.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        files.check()?;
        let stamps = files.paths().into_iter().map(stamp).collect();
        let config = build(&files)?;
        Ok(Self {
            files,
            current: Mutex::new(Current {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection: made again first if a file
    /// changed since it was made (looked at no more than once a second).
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().expect("TLS lock is never poisoned");
        if current.checked.elapsed() >= RECHECK_INTERVAL {
            current.checked = Instant::now();
            let stamps: Vec<Option<FileStamp>> =
                self.files.paths().into_iter().map(stamp).collect();
            if stamps != current.stamps {
                match build(&self.files) {
                    Ok(config) => {
                        current.acceptor = TlsAcceptor::from(Arc::new(config));
                        current.stamps = stamps;
                        tracing::info!(cert = %self.files.cert.display(), "TLS files reloaded");
                    }
                    // Tried again at the next change of a file.
                    Err(error) => {
                        current.stamps = stamps;
                        tracing::warn!(%error, "TLS files changed but cannot be used; still serving the previous ones");
                    }
                }
            }
        }
        current.acceptor.clone()
    }
}

/// A client for another node's client port (asking a new member who it
/// is), made afresh for each use so it follows rotated files: with `files`
/// it trusts only their CA and presents their certificate (which then
/// must allow client authentication where the other node requires it).
pub fn client_port_client(files: Option<&TlsFiles>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(files) = files {
        if let Some(ca) = &files.trusted_ca {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("cannot read certificates from {}: {e}", ca.display()))?;
            builder = builder.tls_certs_only(certs);
        }
        let mut pem = std::fs::read(&files.cert)
            .map_err(|e| format!("cannot read {}: {e}", files.cert.display()))?;
        pem.extend(
            std::fs::read(&files.key)
                .map_err(|e| format!("cannot read {}: {e}", files.key.display()))?,
        );
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            format!(
                "cannot use {} as a client certificate: {e}",
                files.cert.display()
            )
        })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| e.to_string())
}

/// The crypto the node uses everywhere (as reqwest and kube do).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration from `files`.
fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let provider = provider();
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            files.key.display()
        )
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key in {} cannot sign: {e}", files.key.display()))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        format!(
            "the key in {} is not the certificate's in {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.trusted_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate in {} is not a CA: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(OneCert(Arc::new(certified))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The one certificate a port serves, whatever name a client asks for.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
