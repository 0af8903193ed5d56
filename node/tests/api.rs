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

/// The header a JSON body is sent with.
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

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
        JSON,
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
        JSON,
        bad,
        "bad_body",
    )
    .await;
    let zero_id = br#"{"node_id":0,"name":"a","peer_url":"http://a:1","client_url":"http://a:2"}"#;
    node.refused(
        Method::POST,
        members,
        zero_id.to_vec(),
        JSON,
        bad,
        "bad_member_id",
    )
    .await;
    let bad_url = br#"{"node_id":5,"name":"a","peer_url":"ftp://a:1","client_url":"http://a:2"}"#;
    node.refused(
        Method::POST,
        members,
        bad_url.to_vec(),
        JSON,
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
        JSON,
        bad,
        "bad_member",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/members/abc/promote",
        vec![],
        JSON,
        bad,
        "bad_member_id",
    )
    .await;
    let not_found = StatusCode::NOT_FOUND;
    node.refused(
        Method::POST,
        "/v1/cluster/members/77/promote",
        vec![],
        JSON,
        not_found,
        "unknown_member",
    )
    .await;
    node.refused(
        Method::DELETE,
        "/v1/cluster/members/77",
        vec![],
        JSON,
        not_found,
        "unknown_member",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/leader",
        br#"{"to":"x"}"#.to_vec(),
        JSON,
        bad,
        "bad_body",
    )
    .await;
    let conflict = StatusCode::CONFLICT;
    node.refused(
        Method::POST,
        "/v1/cluster/bootstrap",
        vec![],
        JSON,
        conflict,
        "already_initialized",
    )
    .await;
    let own = node.handle().view().identity.node_id;
    node.refused(
        Method::DELETE,
        &format!("/v1/cluster/members/{own}"),
        vec![],
        JSON,
        conflict,
        "invalid_membership_change",
    )
    .await;
}

/// A stand-in for a node about to be added: it answers `GET /v1/node`
/// as node `id` of `cluster` (and nothing else, so it never catches up).
/// Returns its URL.
async fn stand_in(id: u64, cluster: Option<u64>) -> String {
    let status = NodeStatus {
        node_id: NodeId(id),
        cluster_id: cluster.map(raftcfg_client::wire::ClusterId),
        name: "far".into(),
        role: "follower".into(),
        term: raftcfg_client::wire::Term(0),
        commit: LogIndex(0),
        applied: LogIndex(0),
        last_index: LogIndex(0),
        last_term: raftcfg_client::wire::Term(0),
        snapshot_index: LogIndex(0),
        leader_id: None,
        state_digest: None,
    };
    let app = axum::Router::new().route(
        "/v1/node",
        axum::routing::get(move || {
            let status = status.clone();
            async move { axum::Json(status) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn add_body(id: u64, name: &str, peer_url: &str, client_url: &str) -> Vec<u8> {
    serde_json::json!({"node_id": id, "name": name, "peer_url": peer_url, "client_url": client_url})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn a_lagging_learner_is_not_promoted() {
    let node = TestNode::start(true).await;
    for i in 0..5 {
        node.put(&format!("k{i}"), "v").await;
    }
    // A learner whose peer URL leads nowhere never catches up.
    let add = add_body(
        4242,
        "far",
        "http://127.0.0.1:2",
        &stand_in(4242, None).await,
    );
    let (status, body) = node
        .call(Method::POST, "/v1/cluster/members", add.clone(), JSON)
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
        JSON,
        StatusCode::CONFLICT,
        "learner_not_caught_up",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/members",
        add,
        JSON,
        StatusCode::CONFLICT,
        "duplicate_member",
    )
    .await;
}

#[tokio::test]
async fn a_node_that_is_not_what_the_add_says_is_refused() {
    let node = TestNode::start(true).await;
    let own: NodeStatus = node.json(Method::GET, "/v1/node", vec![]).await;
    let ours = own.cluster_id.unwrap().0;
    let members = "/v1/cluster/members";
    let conflict = StatusCode::CONFLICT;
    let fresh = stand_in(77, None).await;
    let far = "http://127.0.0.1:2";

    // The node at the client URL is another node.
    let message = node
        .refused(
            Method::POST,
            members,
            add_body(78, "b", far, &fresh),
            JSON,
            conflict,
            "wrong_node",
        )
        .await;
    assert!(message.contains("node 77"), "{message}");
    // It belongs to another cluster, or was removed from this one.
    let foreign = stand_in(79, Some(ours + 1)).await;
    node.refused(
        Method::POST,
        members,
        add_body(79, "b", far, &foreign),
        JSON,
        conflict,
        "foreign_cluster",
    )
    .await;
    let removed = stand_in(80, Some(ours)).await;
    node.refused(
        Method::POST,
        members,
        add_body(80, "b", far, &removed),
        JSON,
        conflict,
        "removed_member",
    )
    .await;
    // It reuses a member's name or URL (the solo node is "solo" at
    // http://127.0.0.1:1 on both ports).
    let message = node
        .refused(
            Method::POST,
            members,
            add_body(77, "solo", far, &fresh),
            JSON,
            conflict,
            "duplicate_member",
        )
        .await;
    assert!(message.contains("name 'solo'"), "{message}");
    let message = node
        .refused(
            Method::POST,
            members,
            add_body(77, "b", "http://127.0.0.1:1", &fresh),
            JSON,
            conflict,
            "duplicate_member",
        )
        .await;
    assert!(message.contains("peer URL"), "{message}");
    // Nobody answers at the client URL.
    node.refused(
        Method::POST,
        members,
        add_body(77, "b", far, "http://127.0.0.1:1"),
        JSON,
        StatusCode::SERVICE_UNAVAILABLE,
        "member_unreachable",
    )
    .await;
    // All of it right: added.
    let (status, body) = node
        .call(Method::POST, members, add_body(77, "b", far, &fresh), JSON)
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
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

/// Every id-bearing answer, read as a JavaScript or `jq` reader would
/// (numbers as doubles), gives the exact ids back.
#[tokio::test]
async fn ids_survive_a_parser_that_reads_numbers_as_doubles() {
    let node = TestNode::start(false).await;
    let mut answers = Vec::new();
    let (status, body) = node
        .call(Method::POST, "/v1/cluster/bootstrap", vec![], &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    answers.push(body);
    // GET /v1/cluster/leader answers 503 until the new cluster has elected.
    let deadline = std::time::Instant::now() + patience(std::time::Duration::from_secs(10));
    let leader = loop {
        let (status, body) = node
            .call(Method::GET, "/v1/cluster/leader", vec![], &[])
            .await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no leader was elected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let leader_json: serde_json::Value = serde_json::from_slice(&leader).unwrap();
    assert_eq!(leader_json["name"], "solo", "{leader_json}");
    answers.push(leader);
    let to_itself = format!(r#"{{"to":{}}}"#, node.handle().view().identity.node_id);
    for (method, uri, body) in [
        (Method::GET, "/v1/node", vec![]),
        (Method::GET, "/v1/cluster/members", vec![]),
        (Method::POST, "/v1/cluster/leader", to_itself.into_bytes()),
    ] {
        let (status, body) = node
            .call(method, uri, body, &[("content-type", "application/json")])
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
        answers.push(body);
    }
    let mut ids = Vec::new();
    for answer in &answers {
        collect_ids(&serde_json::from_slice(answer).unwrap(), &mut ids);
    }
    assert!(ids.len() >= 6, "too few ids found: {ids:?}");
    for (field, number) in ids {
        let exact = number.as_u64().expect("an id is an unsigned integer");
        let as_double = number.as_f64().unwrap();
        assert_eq!(
            as_double as u64, exact,
            "{field} = {exact} changes when read as a double"
        );
        assert!(
            i64::try_from(exact).is_ok(),
            "{field} = {exact} overflows a signed parser"
        );
    }
}

/// The numbers under every key naming an id (`id`, `*_id`).
fn collect_ids(value: &serde_json::Value, ids: &mut Vec<(String, serde_json::Number)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, value) in fields {
                if let serde_json::Value::Number(number) = value
                    && (name == "id" || name.ends_with("_id"))
                {
                    ids.push((name.clone(), number.clone()));
                }
                collect_ids(value, ids);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_ids(item, ids)),
        _ => {}
    }
}

#[tokio::test]
async fn a_web_page_cannot_change_the_cluster() {
    let node = TestNode::start(true).await;
    let leader_before = node.handle().view().status.leader_id;
    // Exactly what a browser sends for a cross-site form or fetch() POST
    // that needs no preflight.
    let simple = [
        ("content-type", "text/plain"),
        ("origin", "http://evil.example"),
    ];
    let add = add_body(77, "b", "http://127.0.0.1:2", &stand_in(77, None).await);
    for (method, uri, body) in [
        (Method::POST, "/v1/cluster/members", add.clone()),
        (Method::POST, "/v1/cluster/leader", b"{}".to_vec()),
        (Method::POST, "/v1/cluster/bootstrap", vec![]),
        (Method::PUT, "/v1/kv/k", b"v".to_vec()),
        (Method::DELETE, "/v1/cluster/members/77", vec![]),
    ] {
        node.refused(
            method,
            uri,
            body,
            &simple,
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
        )
        .await;
    }
    // Without an Origin (not a browser), a JSON body must still say so.
    node.refused(
        Method::POST,
        "/v1/cluster/members",
        add.clone(),
        &[("content-type", "text/plain")],
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    node.refused(
        Method::POST,
        "/v1/cluster/leader",
        b"{}".to_vec(),
        &[],
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(node.handle().view().status.leader_id, leader_before);
    // Reading is not refused, with or without an Origin.
    let (status, _) = node
        .call(Method::GET, "/v1/cluster/members", vec![], &simple)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_allowed_origin_may_change_the_cluster() {
    let mut node = TestNode::start(true).await;
    node.0.state.allowed_origins = std::sync::Arc::new(vec!["https://admin.example".into()]);
    let headers = [
        ("content-type", "application/json"),
        ("origin", "https://admin.example"),
    ];
    let add = add_body(77, "b", "http://127.0.0.1:2", &stand_in(77, None).await);
    let (status, body) = node
        .call(Method::POST, "/v1/cluster/members", add, &headers)
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_reconnecting_event_source_resumes_after_its_last_event_id() {
    let node = TestNode::start(true).await;
    let revisions = [
        node.put("e/1", "a").await,
        node.put("e/2", "b").await,
        node.put("e/3", "c").await,
    ];
    // The URL still says where the watch first started; the browser adds
    // the id of the last event it got.
    let uri = format!("/v1/watch?prefix=e/&from_revision={}", revisions[0]);
    let response = router(node.0.state.clone())
        .oneshot(
            Request::builder()
                .uri(&uri)
                .header("last-event-id", revisions[1].to_string())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let later = node.put("e/4", "d").await;
    assert_eq!(
        revisions_of(response.into_body(), 2).await,
        vec![revisions[2], later]
    );
    node.refused(
        Method::GET,
        &uri,
        vec![],
        &[("last-event-id", "x")],
        StatusCode::BAD_REQUEST,
        "bad_header",
    )
    .await;
}

#[tokio::test]
async fn a_get_with_the_current_etag_is_not_modified() {
    let node = TestNode::start(true).await;
    let first = node.put("c", "one").await;
    let current = format!("\"{first}\"");
    let (status, body) = node
        .call(
            Method::GET,
            "/v1/kv/c",
            vec![],
            &[("if-none-match", &current)],
        )
        .await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    let others = format!("\"{}\", W/\"{}\"", first + 100, first + 101);
    let (status, _) = node
        .call(
            Method::GET,
            "/v1/kv/c",
            vec![],
            &[("if-none-match", &others)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "an old ETag gets the value");
    node.put("c", "two").await;
    let (status, body) = node
        .call(
            Method::GET,
            "/v1/kv/c",
            vec![],
            &[("if-none-match", &current)],
        )
        .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"two"[..]));
}

#[tokio::test]
async fn an_empty_key_and_unknown_parameters_are_refused_everywhere() {
    let node = TestNode::start(true).await;
    let bad = StatusCode::BAD_REQUEST;
    node.refused(Method::PUT, "/v1/kv/", b"v".to_vec(), &[], bad, "bad_key")
        .await;
    node.refused(Method::GET, "/v1/kv/", vec![], &[], bad, "bad_key")
        .await;
    for uri in [
        "/healthz?verbose",
        "/readyz?x=1",
        "/metrics?x=1",
        "/v1/cluster/leader?x",
        "/v1/node?x=1",
    ] {
        node.refused(Method::GET, uri, vec![], &[], bad, "unknown_parameter")
            .await;
    }
}

#[tokio::test]
async fn malformed_paths_and_oversized_requests_get_the_json_envelope() {
    let node = TestNode::start(true).await;
    // A key that percent-decodes to invalid UTF-8.
    node.refused(
        Method::GET,
        "/v1/kv/app%FFx",
        vec![],
        &[],
        StatusCode::BAD_REQUEST,
        "bad_key",
    )
    .await;
    node.refused(
        Method::PUT,
        "/v1/kv/%C3%28",
        b"v".to_vec(),
        &[],
        StatusCode::BAD_REQUEST,
        "bad_key",
    )
    .await;
    // A member id that does not decode either.
    node.refused(
        Method::DELETE,
        "/v1/cluster/members/%FF",
        vec![],
        &[],
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let long = format!(
        "/v1/kv/app?x={}",
        "a".repeat(raftcfg_node::http_errors::MAX_TARGET_BYTES)
    );
    node.refused(
        Method::GET,
        &long,
        vec![],
        &[],
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
    )
    .await;
    let names: Vec<String> = (0..=raftcfg_node::http_errors::MAX_HEADERS)
        .map(|i| format!("x-extra-{i}"))
        .collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "1")).collect();
    node.refused(
        Method::GET,
        "/v1/kv/app",
        vec![],
        &headers,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;
}

/// The value of the series `series` (name and labels, exactly) in a page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_watches_disk_and_the_process() {
    let node = TestNode::start(true).await;
    node.put("a", "1").await;
    let (missing, _) = node.call(Method::GET, "/v1/kv/missing", vec![], &[]).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    let watch = router(node.0.state.clone())
        .oneshot(Request::get("/v1/watch").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);

    let (status, page) = node.call(Method::GET, "/metrics", vec![], &[]).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    let kv = "port=\"client\",route=\"/v1/kv/{*key}\"";
    for (series, expected) in [
        (
            format!("raftcfg_http_requests_total{{{kv},method=\"PUT\",status=\"200\"}}"),
            1.0,
        ),
        (
            format!("raftcfg_http_requests_total{{{kv},method=\"GET\",status=\"404\"}}"),
            1.0,
        ),
        (
            format!("raftcfg_http_request_seconds_count{{{kv},method=\"GET\"}}"),
            1.0,
        ),
        ("raftcfg_watchers".to_owned(), 1.0),
        (
            format!(
                "raftcfg_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        ),
    ] {
        assert_eq!(
            sample(&page, &series),
            Some(expected),
            "{series} in\n{page}"
        );
    }
    for positive in [
        "raftcfg_data_dir_bytes{part=\"rocksdb\"}",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        let value = sample(&page, positive).unwrap_or_else(|| panic!("no {positive} in\n{page}"));
        assert!(value > 0.0, "{positive} is {value}");
    }
    assert!(
        sample(&page, "process_cpu_seconds_total").is_some(),
        "{page}"
    );

    drop(watch);
    let (_, page) = node.call(Method::GET, "/metrics", vec![], &[]).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(sample(&page, "raftcfg_watchers"), Some(0.0), "{page}");
}
