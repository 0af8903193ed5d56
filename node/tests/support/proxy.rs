//! A fault-injecting proxy in front of each node's peer port. Every peer
//! request names its sender (`x-raftcfg-sender-url`), so the proxy can cut
//! any directed link: a request from a sender the rules block is dropped
//! (its connection closed without an answer), as a lost packet would be.
//! Majority/minority splits, an isolated leader, a bridge and one-way loss
//! are all sets of blocked (from, to) links.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

/// The header naming a peer request's sender.
const SENDER_URL: &str = "x-raftcfg-sender-url";

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
    upstream: String,
    /// Each node's advertised (proxy) peer URL, by index.
    peer_urls: Arc<Mutex<Vec<String>>>,
    links: Links,
    http: reqwest::Client,
}

/// The proxies of a cluster.
pub struct Proxies {
    /// The links to cut and heal.
    pub links: Links,
    peer_urls: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Proxies {
    pub fn new() -> Self {
        Self {
            links: Links::default(),
            peer_urls: Arc::default(),
            http: reqwest::Client::new(),
        }
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
            urls[index] = format!("http://127.0.0.1:{port}");
        }
        let proxy = Proxy {
            target: index,
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            peer_urls: self.peer_urls.clone(),
            links: self.links.clone(),
            http: self.http.clone(),
        };
        let router = Router::new().fallback(forward).with_state(proxy);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        port
    }
}

async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sender = headers
        .get(SENDER_URL)
        .and_then(|value| value.to_str().ok())
        .and_then(|url| {
            proxy
                .peer_urls
                .lock()
                .unwrap()
                .iter()
                .position(|known| known == url)
        });
    if let Some(from) = sender
        && proxy.links.is_cut(from, proxy.target)
    {
        // A lost request: hold it a while, then fail it without forwarding.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
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
