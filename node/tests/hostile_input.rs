//! Input that is not just bad but hostile: arbitrary bytes to the peer
//! message decoder and arbitrary requests to every HTTP endpoint never
//! panic the node and never change its state unless they are valid.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use raftcfg_node::api::router;
use raftcfg_node::codec::{self, MessageBatch};
use raftcfg_node::kv::{Key, Limits};
use raftcfg_node::transport::peer_router;
use support::patience::patience;
use support::solo::Solo;
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
        Just("/raft/v1/stream"),
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
    let node = runtime.block_on(Solo::start(true, |config| {
        config.timing.tick = Duration::from_millis(5);
    }));
    let api = router(node.state.clone());
    let peers = peer_router(node.peer_state());
    let config = ProptestConfig::with_cases(300);
    proptest!(config, |(
        method in method(),
        path in path(),
        header in header(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    )| {
        runtime.block_on(async {
            let before = node.settled_revision().await;
            let mut request = Request::builder().method(method.clone()).uri(path.as_str());
            if let Some((name, value)) = &header {
                request = request.header(*name, value.as_str());
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return Ok(()); // not even a valid HTTP request
            };
            let router = if path.starts_with("/raft/") { peers.clone() } else { api.clone() };
            let response = tokio::time::timeout(patience(Duration::from_secs(10)), router.oneshot(request))
                .await
                .expect("every request is answered")
                .unwrap();
            let status = response.status();
            prop_assert!(
                status != 500 && status != 502,
                "{method} {path} {header:?}: {status}"
            );
            let after = node.settled_revision().await;
            // Only an accepted write may change the state.
            if !status.is_success() {
                prop_assert_eq!(before, after, "{} {} {:?} changed the state", method, path, header);
            }
            Ok::<(), TestCaseError>(())
        })?;
    });
}
