//! TLS for both ports, made from PEM files and made again whenever one of
//! them changes, so a certificate that Kubernetes rotates in a mounted
//! Secret is used without a restart. A connection keeps the configuration
//! it began with; files that do not make a valid configuration (half
//! rotated, say) are logged and the previous configuration stays until
//! they do.
//!
//! - The client port serves `--cert-file`/`--key-file`, and with
//!   `--trusted-ca-file` and `--client-cert-auth` asks clients for a
//!   certificate.
//! - The peer port is mutual TLS: it serves `--peer-cert-file` and accepts
//!   only peers presenting a certificate from `--peer-trusted-ca-file`; a
//!   member dialling a peer presents the same certificate and trusts only
//!   that CA ([`ReloadingTls::client_config`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
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
        load(self).map(drop)
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
    loaded: Arc<Loaded>,
    /// What the files looked like when `loaded` was made from them.
    stamps: Vec<Option<FileStamp>>,
    checked: Instant,
}

/// What one version of the files makes.
struct Loaded {
    acceptor: TlsAcceptor,
    /// The certificate and key, also presented when dialling out.
    identity: Arc<CertifiedKey>,
    /// What checks the certificate of a server dialled, if the files name
    /// a CA.
    server_verifier: Option<Arc<WebPkiServerVerifier>>,
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
        let loaded = load(&files)?;
        Ok(Self {
            files,
            current: Mutex::new(Current {
                loaded: Arc::new(loaded),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.loaded().acceptor.clone()
    }

    /// A client configuration for dialling the servers this port's CA
    /// signed, presenting this port's certificate: mutual TLS between
    /// members. Each handshake uses the files as they are then.
    pub fn client_config(self: &Arc<Self>) -> Result<ClientConfig, String> {
        if self.files.trusted_ca.is_none() {
            return Err("dialling out needs the CA that signed the servers".to_owned());
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CurrentCa(self.clone())))
            .with_client_cert_resolver(Arc::new(CurrentIdentity(self.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// What the files make now: made again first if a file changed since
    /// (looked at no more than once a second).
    fn loaded(&self) -> Arc<Loaded> {
        let mut current = self.current.lock().expect("TLS lock is never poisoned");
        if current.checked.elapsed() >= RECHECK_INTERVAL {
            current.checked = Instant::now();
            let stamps: Vec<Option<FileStamp>> =
                self.files.paths().into_iter().map(stamp).collect();
            if stamps != current.stamps {
                current.stamps = stamps;
                match load(&self.files) {
                    Ok(loaded) => {
                        current.loaded = Arc::new(loaded);
                        tracing::info!(cert = %self.files.cert.display(), "TLS files reloaded");
                    }
                    // Tried again at the next change of a file.
                    Err(error) => {
                        tracing::warn!(%error, "TLS files changed but cannot be used; still using the previous ones");
                    }
                }
            }
        }
        current.loaded.clone()
    }
}

/// Presents the files' current certificate when dialling out.
struct CurrentIdentity(Arc<ReloadingTls>);

impl std::fmt::Debug for CurrentIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CurrentIdentity({})", self.0.files.cert.display())
    }
}

impl ResolvesClientCert for CurrentIdentity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.loaded().identity.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Checks a dialled server's certificate against the files' current CA.
struct CurrentCa(Arc<ReloadingTls>);

impl std::fmt::Debug for CurrentCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CurrentCa({:?})", self.0.files.trusted_ca)
    }
}

impl CurrentCa {
    fn verifier(&self) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        self.0
            .loaded()
            .server_verifier
            .clone()
            .ok_or_else(|| rustls::Error::General("no CA to check servers against".to_owned()))
    }
}

impl ServerCertVerifier for CurrentCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
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

/// What `files` make.
fn load(files: &TlsFiles) -> Result<Loaded, String> {
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
    let identity = Arc::new(certified);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (builder, server_verifier) = match &files.trusted_ca {
        None => (builder.with_no_client_auth(), None),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate in {} is not a CA: {e}", ca.display()))?;
            }
            let roots = Arc::new(roots);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = if files.client_cert_auth {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| e.to_string())?;
            (
                builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?),
                Some(server_verifier),
            )
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(OneCert(identity.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        identity,
        server_verifier,
    })
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

/// The common name of a certificate's subject, if it has one (a client
/// certificate's is the user it signs in as).
pub fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}
