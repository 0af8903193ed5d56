//! The client API through `router(state).oneshot(...)` on a real one-node
//! cluster: answers, headers, and every kind of bad input getting the right
//! 4xx with a clear JSON error and no change of state.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use raftcfg_client::wire::{
    ErrorBody, ListResponse, LogIndex, MemberList, MemberRole, NodeId, NodeStatus, WriteResponse,
};
use raftcfg_node::api::router;
use raftcfg_node::driver::{DriverConfig, NodeHandle};
use raftcfg_node::kv::Limits;
use serde::de::DeserializeOwned;
use support::patience::patience;
use support::solo::Solo;
use tower::ServiceExt as _;

struct TestNode(Solo);

impl TestNode {
    /// A node; bootstrapped and leading if `bootstrap`.
    async fn start(bootstrap: bool) -> Self {
        Self::start_with(bootstrap, |_| {}).await
    }

    async fn start_with(bootstrap: bool, tune: impl FnOnce(&mut DriverConfig)) -> Self {
        Self(Solo::start(bootstrap, tune).await)
    }

    fn handle(&self) -> NodeHandle {
        self.0.handle()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(self.0.state.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    async fn json<T: DeserializeOwned>(&self, method: Method, uri: &str, body: Vec<u8>) -> T {
        let (status, bytes) = self.call(method, uri, body, &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn put(&self, key: &str, value: &str) -> u64 {
        let written: WriteResponse = self
            .json(Method::PUT, &format!("/v1/kv/{key}"), value.into())
            .await;
        written.revision
    }

    async fn revision(&self) -> u64 {
        let list: ListResponse = self.json(Method::GET, "/v1/kv", vec![]).await;
        list.revision
    }

    async fn settled_revision(&self) -> u64 {
        self.0.settled_revision().await
    }

    /// Asserts the request is refused with `status` and `code`, a message,
    /// and no change of the store's revision.
    async fn refused(
        &self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        status: StatusCode,
        code: &str,
    ) -> String {
        let before = self.settled_revision().await;
        let (got, bytes) = self.call(method.clone(), uri, body, headers).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert_eq!(got, status, "{method} {uri}: {text}");
        let error: ErrorBody = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: not a JSON error ({e}): {text}"));
        assert_eq!(error.error.code, code, "{method} {uri}: {text}");
        assert!(error.error.message.len() > 10, "{method} {uri}: {text}");
        assert_eq!(
            self.settled_revision().await,
            before,
            "{method} {uri} changed the state"
        );
        error.error.message
    }
}

#[tokio::test]
async fn put_get_list_and_delete_with_metadata() {
    let node = TestNode::start(true).await;
    let first = node.put("app/db/url", "postgres://a").await;
    let second = node.put("app/db/url", "postgres://b").await;
    assert_eq!(second, first + 1);
    node.put("app/name", "shop").await;

    let request = Request::get("/v1/kv/app/db/url")
        .body(Body::empty())
        .unwrap();
    let response = router(node.0.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["etag"], format!("\"{second}\"").as_str());
    assert_eq!(
        headers["x-raftcfg-create-revision"],
        first.to_string().as_str()
    );
    assert_eq!(headers["x-raftcfg-version"], "2");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"postgres://b");

    let list: ListResponse = node
        .json(Method::GET, "/v1/kv?prefix=app/&limit=1", vec![])
        .await;
    assert_eq!(list.items.len(), 1);
    assert!(list.more);
    assert_eq!(list.items[0].key, "app/db/url");
    let rest: ListResponse = node
        .json(
            Method::GET,
            "/v1/kv?prefix=app/&start_after=app/db/url&consistency=serializable",
            vec![],
        )
        .await;
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].key, "app/name");
    assert!(!rest.more);

    let (status, _) = node
        .call(Method::DELETE, "/v1/kv/app/name", vec![], &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    node.refused(
        Method::GET,
        "/v1/kv/app/name",
        vec![],
        &[],
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn compare_and_swap_and_create_only() {
    let node = TestNode::start(true).await;
    let (status, _) = node
        .call(
            Method::PUT,
            "/v1/kv/lock",
            b"a".to_vec(),
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node.refused(
        Method::PUT,
        "/v1/kv/lock",
        b"b".to_vec(),
        &[("if-none-match", "*")],
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    )
    .await;
    let revision = node.revision().await;
    let message = node
        .refused(
            Method::PUT,
            "/v1/kv/lock",
            b"c".to_vec(),
            &[("if-match", "\"999\"")],
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        )
        .await;
    assert!(message.contains(&revision.to_string()), "{message}");
    let etag = format!("\"{revision}\"");
    let (status, _) = node
        .call(
            Method::PUT,
            "/v1/kv/lock",
            b"d".to_vec(),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node.refused(
        Method::DELETE,
        "/v1/kv/lock",
        vec![],
        &[("if-match", &etag)],
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    )
    .await;
}

#[tokio::test]
async fn bad_keys_values_and_preconditions_are_refused_without_a_state_change() {
    let node = TestNode::start(true).await;
    node.put("existing", "v").await;
    let bad_request = StatusCode::BAD_REQUEST;
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;
    // Keys.
    for uri in [
        "/v1/kv/a//b",
        "/v1/kv//leading",
        "/v1/kv/trailing/",
        "/v1/kv/a/%01/b",
        "/v1/kv/a/../b",
    ] {
        node.refused(Method::PUT, uri, b"v".to_vec(), &[], bad_request, "bad_key")
            .await;
    }
    let long_key = format!("/v1/kv/{}", "k".repeat(5000));
    node.refused(
        Method::PUT,
        &long_key,
        b"v".to_vec(),
        &[],
        too_large,
        "key_too_large",
    )
    .await;
    // Values.
    let huge = vec![b'x'; Limits::DEFAULT_MAX_VALUE_BYTES + 1];
    node.refused(
        Method::PUT,
        "/v1/kv/big",
        huge,
        &[],
        too_large,
        "value_too_large",
    )
    .await;
    // Preconditions.
    for headers in [
        &[("if-match", "\"abc\"")][..],
        &[("if-match", "\"0\"")][..],
        &[("if-match", "*")][..],
        &[("if-match", "\"1\""), ("if-none-match", "*")][..],
        &[("if-none-match", "\"5\"")][..],
    ] {
        node.refused(
            Method::PUT,
            "/v1/kv/existing",
            b"v".to_vec(),
            headers,
            bad_request,
            "bad_precondition",
        )
        .await;
    }
    node.refused(
        Method::DELETE,
        "/v1/kv/existing",
        vec![],
        &[("if-none-match", "*")],
        bad_request,
        "bad_precondition",
    )
    .await;
    // Deleting what is not there.
    node.refused(
        Method::DELETE,
        "/v1/kv/absent",
        vec![],
        &[],
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_query_parameters_are_refused() {
    let node = TestNode::start(true).await;
    let bad = StatusCode::BAD_REQUEST;
    node.refused(
        Method::GET,
        "/v1/kv/a?consistncy=serializable",
        vec![],
        &[],
        bad,
        "unknown_parameter",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/kv/a?consistency=eventual",
        vec![],
        &[],
        bad,
        "bad_query",
    )
    .await;
    node.refused(
        Method::PUT,
        "/v1/kv/a?ttl=5",
        b"v".to_vec(),
        &[],
        bad,
        "unknown_parameter",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/kv?limit=ten",
        vec![],
        &[],
        bad,
        "bad_query",
    )
    .await;
    node.refused(Method::GET, "/v1/kv?limit=0", vec![], &[], bad, "bad_query")
        .await;
    node.refused(
        Method::GET,
        "/v1/kv?limit=1&limit=2",
        vec![],
        &[],
        bad,
        "bad_query",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/kv?prefix=/abs",
        vec![],
        &[],
        bad,
        "bad_key",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/watch?from_revision=-1",
        vec![],
        &[],
        bad,
        "bad_query",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/nowhere",
        vec![],
        &[],
        StatusCode::NOT_FOUND,
        "no_such_endpoint",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/kv/a",
        vec![],
        &[],
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn bad_membership_requests_are_refused() {
    let node = TestNode::start(true).await;
    let bad = StatusCode::BAD_REQUEST;
    let members = "/v1/cluster/members";
    node.refused(
        Method::POST,
        members,
        b"{not json".to_vec(),
        &[],
        bad,
        "bad_body",
    )
    .await;
    let unknown_field =
        br#"{"node_id":5,"name":"a","peer_url":"http://a:1","client_url":"http://a:2","x":1}"#;
    node.refused(
        Method::POST,
        members,
        unknown_field.to_vec(),
        &[],
        bad,
        "bad_body",
    )
    .await;
    let zero_id = br#"{"node_id":0,"name":"a","peer_url":"http://a:1","client_url":"http://a:2"}"#;
    node.refused(
        Method::POST,
        members,
        zero_id.to_vec(),
        &[],
        bad,
        "bad_member_id",
    )
    .await;
    let bad_url = br#"{"node_id":5,"name":"a","peer_url":"ftp://a:1","client_url":"http://a:2"}"#;
    node.refused(
        Method::POST,
        members,
        bad_url.to_vec(),
        &[],
        bad,
        "bad_member",
    )
    .await;
    let bad_name =
        br#"{"node_id":5,"name":"a b","peer_url":"http://a:1","client_url":"http://a:2"}"#;
    node.refused(
        Method::POST,
        members,
        bad_name.to_vec(),
        &[],
        bad,
        "bad_member",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/members/abc/promote",
        vec![],
        &[],
        bad,
        "bad_member_id",
    )
    .await;
    let not_found = StatusCode::NOT_FOUND;
    node.refused(
        Method::POST,
        "/v1/cluster/members/77/promote",
        vec![],
        &[],
        not_found,
        "unknown_member",
    )
    .await;
    node.refused(
        Method::DELETE,
        "/v1/cluster/members/77",
        vec![],
        &[],
        not_found,
        "unknown_member",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/leader",
        br#"{"to":"x"}"#.to_vec(),
        &[],
        bad,
        "bad_body",
    )
    .await;
    let conflict = StatusCode::CONFLICT;
    node.refused(
        Method::POST,
        "/v1/cluster/bootstrap",
        vec![],
        &[],
        conflict,
        "already_initialized",
    )
    .await;
    let own = node.handle().view().identity.node_id;
    node.refused(
        Method::DELETE,
        &format!("/v1/cluster/members/{own}"),
        vec![],
        &[],
        conflict,
        "invalid_membership_change",
    )
    .await;
}

#[tokio::test]
async fn a_lagging_learner_is_not_promoted() {
    let node = TestNode::start(true).await;
    for i in 0..5 {
        node.put(&format!("k{i}"), "v").await;
    }
    // A learner at an address nobody listens on never catches up.
    let add = br#"{"node_id":4242,"name":"far","peer_url":"http://127.0.0.1:1","client_url":"http://127.0.0.1:1"}"#;
    let (status, body) = node
        .call(Method::POST, "/v1/cluster/members", add.to_vec(), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // The leader's list shows the learner, its commit index, and that the
    // change (committed by the only voter) is no longer pending.
    let list: MemberList = node.json(Method::GET, "/v1/cluster/members", vec![]).await;
    let own: NodeStatus = node.json(Method::GET, "/v1/node", vec![]).await;
    let learner = list
        .members
        .iter()
        .find(|m| m.id == NodeId(4242))
        .expect("listed");
    assert_eq!(learner.role, MemberRole::Learner);
    assert_eq!(list.commit_index, own.commit);
    assert!(!list.membership_change_pending);
    node.refused(
        Method::POST,
        "/v1/cluster/members/4242/promote",
        vec![],
        &[],
        StatusCode::CONFLICT,
        "learner_not_caught_up",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/members",
        add.to_vec(),
        &[],
        StatusCode::CONFLICT,
        "invalid_membership_change",
    )
    .await;
}

#[tokio::test]
async fn a_node_without_a_cluster_says_so() {
    let node = TestNode::start(false).await;
    let conflict = StatusCode::CONFLICT;
    node.refused(
        Method::GET,
        "/v1/kv/a",
        vec![],
        &[],
        conflict,
        "not_initialized",
    )
    .await;
    node.refused(
        Method::PUT,
        "/v1/kv/a",
        b"v".to_vec(),
        &[],
        conflict,
        "not_initialized",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/cluster/members",
        vec![],
        &[],
        conflict,
        "not_initialized",
    )
    .await;
    node.refused(
        Method::GET,
        "/v1/snapshot",
        vec![],
        &[],
        conflict,
        "not_initialized",
    )
    .await;
    node.refused(
        Method::GET,
        "/readyz",
        vec![],
        &[],
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
    )
    .await;
    let status: NodeStatus = node.json(Method::GET, "/v1/node", vec![]).await;
    assert_eq!(status.cluster_id, None);
    let (health, _) = node.call(Method::GET, "/healthz", vec![], &[]).await;
    assert_eq!(health, StatusCode::OK);
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_is_gone() {
    let node = TestNode::start_with(true, |config| {
        config.snapshots.threshold_entries = 3;
        config.snapshots.watch_history_revisions = 0;
    })
    .await;
    for i in 0..10 {
        node.put(&format!("k{i}"), "v").await;
    }
    node.refused(
        Method::GET,
        "/v1/watch?from_revision=1",
        vec![],
        &[],
        StatusCode::GONE,
        "compacted",
    )
    .await;
}

#[tokio::test]
async fn node_status_metrics_and_backup() {
    let node = TestNode::start(true).await;
    node.put("a", "1").await;
    let status: NodeStatus = node.json(Method::GET, "/v1/node", vec![]).await;
    assert_eq!(status.role, "leader");
    assert_eq!(
        status.state_digest, None,
        "the digest is computed only when asked"
    );
    assert!(status.applied >= LogIndex(2));
    let with_digest: NodeStatus = node.json(Method::GET, "/v1/node?digest=true", vec![]).await;
    let digest = with_digest.state_digest.expect("asked for the digest");
    assert_eq!(digest.len(), 64);
    let (ready, _) = node.call(Method::GET, "/readyz", vec![], &[]).await;
    assert_eq!(ready, StatusCode::OK);
    let (metrics_status, metrics) = node.call(Method::GET, "/metrics", vec![], &[]).await;
    assert_eq!(metrics_status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    for name in [
        "raftcfg_term ",
        "raftcfg_applied_index ",
        "raftcfg_proposals_total 1",
        "raftcfg_fsync_seconds_count ",
        "raftcfg_apply_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    let (backup_status, backup) = node.call(Method::GET, "/v1/snapshot", vec![], &[]).await;
    assert_eq!(backup_status, StatusCode::OK);
    let summary = raftcfg_node::kv::verify_state(&backup[..]).unwrap();
    assert_eq!(
        summary.digest.to_string(),
        digest,
        "nothing was written since"
    );
}

#[tokio::test]
async fn a_watch_that_falls_behind_the_feed_reads_the_log_and_misses_nothing() {
    // More separate rounds of writes than the feed holds for a watcher
    // that reads nothing meanwhile.
    const WRITES: usize = 1_100;
    let node = TestNode::start(true).await;
    let first = node.put("w/0", "0").await;
    let watch = open_watch(&node, &format!("/v1/watch?prefix=w/&from_revision={first}")).await;
    let mut expected = vec![first];
    for i in 1..WRITES {
        expected.push(node.put(&format!("w/{i}"), "v").await);
        node.put("other", "x").await;
    }
    let revisions = revisions_of(watch, WRITES).await;
    // Every w/ write, in order; the interleaved writes to "other" are not.
    assert_eq!(revisions, expected);
}

#[tokio::test]
async fn a_watch_gets_values_too_large_for_the_feed_from_the_log() {
    let node = TestNode::start(true).await;
    let watch = open_watch(&node, "/v1/watch?prefix=big/").await;
    // Each round writes more than the feed publishes (256 KiB).
    let large = "x".repeat(300 << 10);
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.push(node.put(&format!("big/{i}"), &large).await);
    }
    let revisions = revisions_of(watch, expected.len()).await;
    assert_eq!(revisions, expected);
}

/// Opens the watch at `uri` on `node`; the answer's body is the stream.
async fn open_watch(node: &TestNode, uri: &str) -> Body {
    let response = router(node.0.state.clone())
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// Reads the watch stream `body` until `count` events arrived and returns
/// their revisions (the SSE `id:` lines), in order. An `event: error`
/// fails the test.
async fn revisions_of(mut body: Body, count: usize) -> Vec<u64> {
    let mut text = String::new();
    let mut revisions = Vec::new();
    while revisions.len() < count {
        let frame =
            tokio::time::timeout(patience(std::time::Duration::from_secs(30)), body.frame())
                .await
                .expect("events in time")
                .expect("the stream goes on")
                .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        revisions = text
            .lines()
            .filter_map(|line| line.strip_prefix("id: ")?.parse::<u64>().ok())
            .collect();
        assert!(
            !text.contains("event: error"),
            "{}",
            &text[..text.len().min(500)]
        );
    }
    revisions
}
