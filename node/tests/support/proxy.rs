//! A fault-injecting proxy in front of each node's peer port. Every peer
//! request and stream names its sender (`x-raftcfg-sender-url`), so the
//! proxy can cut any directed link: a request from a sender the rules block
//! is dropped (its connection closed without an answer), as a lost packet
//! would be; a stream of messages (an upgraded connection, relayed byte
//! for byte) is broken as soon as its link is cut, and a new one is
//! refused while the cut lasts. Majority/minority splits, an isolated
//! leader, a bridge and one-way loss are all sets of blocked (from, to)
//! links. With peer TLS, a proxy ends the members' TLS with a member's own
//! certificate and speaks TLS to the node it fronts, so it still reads the
//! sender of each request.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use raftcfg_node::http_serve::{self, ConnectionLimits};
use raftcfg_node::metrics::{Metrics, PEER_PORT};
use raftcfg_node::tls::{ReloadingTls, TlsFiles};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// The header naming a peer request's sender.
const SENDER_URL: &str = "x-raftcfg-sender-url";
/// How long a request on a cut link is held before it fails.
const LOST_REQUEST_DELAY: Duration = Duration::from_millis(200);
/// How often a relayed stream checks whether its link was cut.
const CUT_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// The links currently cut, as (from, to) node indexes.
#[derive(Clone, Default)]
pub struct Links(Arc<Mutex<BTreeSet<(usize, usize)>>>);

impl Links {
    /// Cuts every link from a node in `from` to a node in `to`.
    pub fn cut(&self, from: &[usize], to: &[usize]) {
        let mut cut = self.0.lock().unwrap();
        for &a in from {
            for &b in to {
                if a != b {
                    cut.insert((a, b));
                }
            }
        }
    }

    /// Cuts both directions between the two groups.
    pub fn partition(&self, left: &[usize], right: &[usize]) {
        self.cut(left, right);
        self.cut(right, left);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.0.lock().unwrap().clear();
    }

    fn is_cut(&self, from: usize, to: usize) -> bool {
        self.0.lock().unwrap().contains(&(from, to))
    }
}

/// What one proxy needs: whom it fronts and how to name senders.
#[derive(Clone)]
struct Proxy {
    target: usize,
    upstream_port: u16,
    /// Each node's advertised (proxy) peer URL, by index.
    peer_urls: Arc<Mutex<Vec<String>>>,
    links: Links,
    http: reqwest::Client,
    /// TLS to the node, when the peer port has it.
    upstream_tls: Option<TlsConnector>,
}

/// The proxies of a cluster.
pub struct Proxies {
    /// The links to cut and heal.
    pub links: Links,
    peer_urls: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    /// The members' peer TLS, when on: served to them and used upstream.
    tls: Option<Arc<ReloadingTls>>,
}

impl Proxies {
    pub fn new() -> Self {
        Self {
            links: Links::default(),
            peer_urls: Arc::default(),
            http: reqwest::Client::new(),
            tls: None,
        }
    }

    /// Proxies for members whose peer ports serve mutual TLS with `files`
    /// (a member's certificate, valid for 127.0.0.1, and the peer CA).
    pub fn with_tls(files: TlsFiles) -> Self {
        let tls = Arc::new(ReloadingTls::load(files).unwrap());
        let config = tls.client_config().unwrap();
        Self {
            links: Links::default(),
            peer_urls: Arc::default(),
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .build()
                .unwrap(),
            tls: Some(tls),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Starts a proxy for node `index` forwarding to `upstream_port`;
    /// returns the proxy's port (the node's advertised peer port).
    pub async fn front(&self, index: usize, upstream_port: u16) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        {
            let mut urls = self.peer_urls.lock().unwrap();
            if urls.len() <= index {
                urls.resize(index + 1, String::new());
            }
            urls[index] = format!("{}://127.0.0.1:{port}", self.scheme());
        }
        let proxy = Proxy {
            target: index,
            upstream_port,
            peer_urls: self.peer_urls.clone(),
            links: self.links.clone(),
            http: self.http.clone(),
            upstream_tls: self
                .tls
                .as_ref()
                .map(|tls| TlsConnector::from(Arc::new(tls.client_config().unwrap()))),
        };
        let router = Router::new().fallback(forward).with_state(proxy);
        match &self.tls {
            None => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                });
            }
            Some(tls) => {
                let (stop, stopping) = tokio::sync::watch::channel(false);
                // Served until the test ends.
                std::mem::forget(stop);
                tokio::spawn(http_serve::serve(
                    listener,
                    PEER_PORT,
                    router,
                    ConnectionLimits::CLIENT_DEFAULTS,
                    Some(tls.clone()),
                    Arc::new(Metrics::default()),
                    stopping,
                ));
            }
        }
        port
    }
}

impl Proxy {
    /// The index of the node whose peer URL `headers` name as the sender.
    fn sender(&self, headers: &HeaderMap) -> Option<usize> {
        let url = headers.get(SENDER_URL)?.to_str().ok()?;
        self.peer_urls
            .lock()
            .unwrap()
            .iter()
            .position(|known| known == url)
    }

    fn cuts(&self, from: Option<usize>) -> bool {
        from.is_some_and(|from| self.links.is_cut(from, self.target))
    }
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let from = proxy.sender(request.headers());
    if proxy.cuts(from) {
        // A lost request: hold it a while, then fail it without forwarding.
        tokio::time::sleep(LOST_REQUEST_DELAY).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if request.headers().contains_key(header::UPGRADE) {
        return relay_stream(proxy, from, request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    forward_request(&proxy, parts.method, parts.uri, parts.headers, body).await
}

/// Opens the same upgrade upstream and, once both sides switched, relays
/// bytes both ways until either side closes or the link is cut.
async fn relay_stream(proxy: Proxy, from: Option<usize>, mut request: Request) -> Response {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", proxy.upstream_port)).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut sender = match &proxy.upstream_tls {
        None => {
            let Ok((sender, connection)) =
                hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
            else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            tokio::spawn(connection.with_upgrades());
            sender
        }
        Some(tls) => {
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let Ok(upstream) = tls.connect(name, upstream).await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            let Ok((sender, connection)) =
                hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await
            else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            tokio::spawn(connection.with_upgrades());
            sender
        }
    };
    let mut onward = Request::builder()
        .method(request.method())
        .uri(request.uri().clone())
        .body(Body::empty())
        .unwrap();
    *onward.headers_mut() = request.headers().clone();
    let Ok(mut answer) = sender.send_request(onward).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let downstream = hyper::upgrade::on(&mut request);
        let upstream = hyper::upgrade::on(&mut answer);
        tokio::spawn(async move {
            let (Ok(downstream), Ok(upstream)) = (downstream.await, upstream.await) else {
                return;
            };
            let (mut downstream, mut upstream) = (TokioIo::new(downstream), TokioIo::new(upstream));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => {}
                () = async {
                    while !proxy.cuts(from) {
                        tokio::time::sleep(CUT_CHECK_INTERVAL).await;
                    }
                } => {}
            }
        });
    }
    let mut relayed = Response::new(Body::empty());
    *relayed.status_mut() = status;
    *relayed.headers_mut() = headers;
    relayed
}

async fn forward_request(
    proxy: &Proxy,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let scheme = if proxy.upstream_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let upstream = format!("{scheme}://127.0.0.1:{}", proxy.upstream_port);
    let mut request = proxy
        .http
        .request(method, format!("{upstream}{path}"))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let mut answer = (status, body).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    answer.headers_mut().insert(name, value.clone());
                }
            }
            answer
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
