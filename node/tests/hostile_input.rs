//! Input that is not just bad but hostile: arbitrary bytes to the peer
//! message decoder and arbitrary requests to every HTTP endpoint never
//! panic the node and never change its state unless they are valid.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use raftcfg_node::api::{ApiState, router};
use raftcfg_node::codec::{self, MessageBatch};
use raftcfg_node::driver::{self, DriverConfig, NodeHandle};
use raftcfg_node::kv::{Key, Limits, MemberAddress};
use raftcfg_node::metrics::Metrics;
use raftcfg_node::transport::{Transport, peer_router};
use tower::ServiceExt as _;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_peer_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<MessageBatch>(&bytes[..]);
        // Also with a valid version byte, to get past the first check.
        let mut versioned = vec![codec::FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        let _ = codec::decode::<MessageBatch>(&versioned[..]);
    }

    #[test]
    fn the_key_parser_never_panics(text in ".{0,64}") {
        let _ = Key::parse(&text, &Limits::default());
    }
}

/// A bootstrapped one-node cluster and its API and peer routers.
struct Node {
    handle: NodeHandle,
    state: ApiState,
    thread: Option<std::thread::JoinHandle<Result<(), raftcfg_node::replica::ReplicaError>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let address = MemberAddress {
        name: "solo".into(),
        peer_url: "http://127.0.0.1:1".into(),
        client_url: "http://127.0.0.1:1".into(),
    };
    let mut config = DriverConfig::new("solo", address.clone());
    config.tick = Duration::from_millis(5);
    let metrics = Arc::new(Metrics::default());
    let transport = Transport::new(
        address.peer_url.clone(),
        tokio::runtime::Handle::current(),
        metrics.clone(),
    );
    let driver = driver::start(
        dir.path(),
        config,
        Box::new(transport.clone()),
        metrics.clone(),
    )
    .unwrap();
    let handle = driver.handle.clone();
    handle.bootstrap().await.unwrap();
    while !handle.view().is_leader() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let state = ApiState::new(driver.handle, transport, Limits::default(), metrics);
    Node {
        handle,
        state,
        thread: Some(driver.thread),
        _dir: dir,
    }
}

/// The store's revision once earlier rounds are done.
async fn revision(handle: &NodeHandle) -> u64 {
    handle.digest().await.unwrap();
    handle.view().revision.get()
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::HEAD),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let known = prop_oneof![
        Just("/v1/kv/"),
        Just("/v1/kv"),
        Just("/v1/watch"),
        Just("/v1/cluster/members/"),
        Just("/v1/cluster/leader"),
        Just("/v1/cluster/bootstrap"),
        Just("/v1/node"),
        Just("/v1/snapshot"),
        Just("/raft/v1/messages"),
        Just("/raft/v1/propose"),
        Just("/"),
    ];
    (known, "[a-zA-Z0-9%/._~?&=*-]{0,40}").prop_map(|(base, tail)| format!("{base}{tail}"))
}

fn header() -> impl Strategy<Value = Option<(&'static str, String)>> {
    proptest::option::of((
        prop_oneof![
            Just("if-match"),
            Just("if-none-match"),
            Just("content-type"),
            Just("x-raftcfg-sender-url"),
        ],
        "[ -~]{0,20}",
    ))
}

#[test]
fn arbitrary_requests_never_panic_or_change_state_unless_valid() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = runtime.block_on(node());
    let api = router(node.state.clone());
    let peers = peer_router(node.handle.clone());
    let config = ProptestConfig::with_cases(300);
    proptest!(config, |(
        method in method(),
        path in path(),
        header in header(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    )| {
        runtime.block_on(async {
            let before = revision(&node.handle).await;
            let mut request = Request::builder().method(method.clone()).uri(path.as_str());
            if let Some((name, value)) = &header {
                request = request.header(*name, value.as_str());
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return Ok(()); // not even a valid HTTP request
            };
            let router = if path.starts_with("/raft/") { peers.clone() } else { api.clone() };
            let response = tokio::time::timeout(Duration::from_secs(10), router.oneshot(request))
                .await
                .expect("every request is answered")
                .unwrap();
            let status = response.status();
            prop_assert!(
                status != 500 && status != 502,
                "{method} {path} {header:?}: {status}"
            );
            let after = revision(&node.handle).await;
            // Only an accepted write may change the state.
            if !status.is_success() {
                prop_assert_eq!(before, after, "{} {} {:?} changed the state", method, path, header);
            }
            Ok::<(), TestCaseError>(())
        })?;
    });
}
