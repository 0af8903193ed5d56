//! `raftcfg_client::http::Client` against small axum servers on loopback
//! that record what the client sent and answer as the API contract says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use raftcfg_client::http::{Client, ClientError, ClientOptions, Consistency, Precondition};
use raftcfg_client::wire::{
    AddMemberRequest, ClusterId, ErrorBody, KeyValue, ListResponse, LogIndex, MemberList,
    MembershipResponse, NodeId, NodeStatus, Term, WatchEvent, WatchEventKind, WriteResponse,
};

/// An endpoint where nothing listens: connecting is refused at once.
const DEAD: &str = "http://127.0.0.1:1";

/// One request as the mock server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// Path and query exactly as sent (still percent-encoded).
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap()
    }

    fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, q)| q);
        url_pairs(query)
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://h/?{query}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves every request with `respond`, recording it first.
async fn mock<F>(respond: F) -> (String, Log)
where
    F: Fn(&Seen) -> Response + Clone + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let recorder = log.clone();
    let app = Router::new().fallback(move |request: Request| {
        let respond = respond.clone();
        let recorder = recorder.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let seen = Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
            };
            recorder.lock().unwrap().push(seen.clone());
            respond(&seen)
        }
    });
    (serve(app).await, log)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn json(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, ErrorBody::new(code, message))
}

fn unavailable() -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_leader",
        "the cluster has no leader; retry shortly",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, "2".parse().unwrap());
    response
}

fn written(revision: u64) -> Response {
    json(StatusCode::OK, WriteResponse { revision })
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn put_sends_the_raw_value_to_the_percent_encoded_key_path() {
    let (endpoint, log) = mock(|_| written(7)).await;
    let client = Client::new([endpoint]).unwrap();

    let answer = client
        .put(
            "app/my key/ü",
            Bytes::from_static(b"\x00\xffvalue"),
            Precondition::None,
        )
        .await
        .unwrap();

    assert_eq!(answer.revision, 7);
    let request = &seen(&log)[0];
    assert_eq!(request.method, Method::PUT);
    assert_eq!(request.path(), "/v1/kv/app/my%20key/%C3%BC");
    assert_eq!(&request.body[..], b"\x00\xffvalue");
    assert!(request.headers.get(header::IF_MATCH).is_none());
    assert!(request.headers.get(header::IF_NONE_MATCH).is_none());
}

#[tokio::test]
async fn preconditions_are_sent_as_if_match_and_if_none_match() {
    let (endpoint, log) = mock(|_| written(9)).await;
    let client = Client::new([endpoint]).unwrap();

    client
        .put("k", Bytes::from_static(b"v"), Precondition::ModRevision(5))
        .await
        .unwrap();
    client
        .put("k", Bytes::from_static(b"v"), Precondition::Absent)
        .await
        .unwrap();
    client
        .delete("k", Precondition::ModRevision(6))
        .await
        .unwrap();

    let requests = seen(&log);
    assert_eq!(requests[0].headers[header::IF_MATCH], "\"5\"");
    assert_eq!(requests[1].headers[header::IF_NONE_MATCH], "*");
    assert_eq!(requests[2].method, Method::DELETE);
    assert_eq!(requests[2].path(), "/v1/kv/k");
    assert_eq!(requests[2].headers[header::IF_MATCH], "\"6\"");
}

#[tokio::test]
async fn a_failed_precondition_is_a_distinct_error() {
    let (endpoint, _) = mock(|_| {
        error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the key's mod_revision is 8, not 5",
        )
    })
    .await;
    let client = Client::new([endpoint]).unwrap();

    let e = client
        .put("k", Bytes::new(), Precondition::ModRevision(5))
        .await
        .unwrap_err();

    assert!(e.is_precondition_failed(), "{e:?}");
    assert_eq!(e.code(), Some("precondition_failed"));
    let text = e.to_string();
    assert!(text.contains("412"), "{text}");
    assert!(
        text.contains("the key's mod_revision is 8, not 5"),
        "{text}"
    );
}

#[tokio::test]
async fn get_returns_the_value_with_its_revisions() {
    let (endpoint, log) = mock(|_| {
        (
            [
                (header::ETAG.as_str(), "\"12\""),
                ("X-Raftcfg-Create-Revision", "3"),
                ("X-Raftcfg-Mod-Revision", "12"),
                ("X-Raftcfg-Version", "4"),
                ("X-Raftcfg-Revision", "20"),
            ],
            Bytes::from_static(b"postgres://db"),
        )
            .into_response()
    })
    .await;
    let client = Client::new([endpoint]).unwrap();

    let value = client
        .get("app/db/url", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    client
        .get("app/db/url", Consistency::Serializable)
        .await
        .unwrap();

    assert_eq!(&value.bytes[..], b"postgres://db");
    assert_eq!(
        (
            value.create_revision,
            value.mod_revision,
            value.version,
            value.revision
        ),
        (3, 12, 4, 20)
    );
    let requests = seen(&log);
    assert_eq!(requests[0].method, Method::GET);
    assert_eq!(requests[0].uri, "/v1/kv/app/db/url");
    assert_eq!(
        requests[1].uri,
        "/v1/kv/app/db/url?consistency=serializable"
    );
}

#[tokio::test]
async fn get_of_an_absent_key_is_none() {
    let (endpoint, _) = mock(|_| error(StatusCode::NOT_FOUND, "not_found", "no such key")).await;
    let client = Client::new([endpoint]).unwrap();

    assert_eq!(
        client.get("k", Consistency::Linearizable).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_delete_of_an_absent_key_is_not_found() {
    let (endpoint, _) = mock(|_| error(StatusCode::NOT_FOUND, "not_found", "no such key")).await;
    let client = Client::new([endpoint]).unwrap();

    let e = client.delete("k", Precondition::None).await.unwrap_err();

    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn an_error_body_of_another_shape_still_gives_status_and_text() {
    let (endpoint, _) =
        mock(|_| (StatusCode::BAD_GATEWAY, "upstream went away").into_response()).await;
    let client = Client::new([endpoint]).unwrap();

    let e = client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap_err();

    match &e {
        ClientError::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(*status, StatusCode::BAD_GATEWAY);
            assert_eq!(*code, None);
            assert_eq!(message, "upstream went away");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dead_endpoint_is_skipped_and_the_live_one_remembered() {
    let (live, log) = mock(|_| written(1)).await;
    let client = Client::new([DEAD.to_owned(), live.clone()]).unwrap();

    client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap();
    client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap();

    assert_eq!(seen(&log).len(), 2);
}

#[tokio::test]
async fn a_503_moves_a_write_to_the_next_endpoint_which_is_then_preferred() {
    let (busy, busy_log) = mock(|_| unavailable()).await;
    let (live, live_log) = mock(|_| written(3)).await;
    let client = Client::new([busy, live]).unwrap();

    assert_eq!(
        client
            .put("k", Bytes::new(), Precondition::None)
            .await
            .unwrap()
            .revision,
        3
    );
    client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap();

    assert_eq!(seen(&busy_log).len(), 1, "the 503 endpoint is tried once");
    assert_eq!(seen(&live_log).len(), 2);
}

#[tokio::test]
async fn a_removed_member_moves_reads_and_writes_to_the_next_endpoint_but_another_410_does_not() {
    let removed = || {
        error(
            StatusCode::GONE,
            "removed",
            "this node was removed from its cluster",
        )
    };
    let (gone, gone_log) = mock(move |_| removed()).await;
    let (live, live_log) = mock(|_| written(4)).await;
    let client = Client::new([gone, live]).unwrap();
    let answer = client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(answer.revision, 4);
    assert_eq!((seen(&gone_log).len(), seen(&live_log).len()), (1, 1));

    // A watch start that was compacted is a 410 too, but it is an answer.
    let (compacted, _) = mock(|_| {
        error(
            StatusCode::GONE,
            "compacted",
            "revisions up to 9 were compacted",
        )
    })
    .await;
    let (other, other_log) = mock(|_| written(5)).await;
    let client = Client::new([compacted, other]).unwrap();
    let refused = client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("compacted"));
    assert!(seen(&other_log).is_empty());
}

#[tokio::test]
async fn when_every_endpoint_refuses_the_last_refusal_is_returned() {
    let (a, a_log) = mock(|_| unavailable()).await;
    let (b, b_log) = mock(|_| unavailable()).await;
    let client = Client::new([a, b]).unwrap();

    let e = client
        .put("k", Bytes::new(), Precondition::None)
        .await
        .unwrap_err();

    assert_eq!(e.code(), Some("no_leader"));
    assert!(matches!(
        e,
        ClientError::Api {
            retry_after: Some(d),
            ..
        } if d == Duration::from_secs(2)
    ));
    assert_eq!(seen(&a_log).len() + seen(&b_log).len(), 2);
}

#[tokio::test]
async fn when_no_endpoint_can_be_reached_the_error_names_each() {
    let client = Client::new([DEAD, "http://127.0.0.1:2"]).unwrap();

    let e = client.members().await.unwrap_err();

    let text = e.to_string();
    assert!(matches!(e, ClientError::Transport { .. }), "{e:?}");
    assert!(text.contains("http://127.0.0.1:1: "), "{text}");
    assert!(text.contains("http://127.0.0.1:2: "), "{text}");
}

/// An endpoint that answers every request after `delay`.
async fn slow(delay: Duration) -> String {
    let app = Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        written(1)
    });
    serve(app).await
}

fn short_timeouts() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_write_that_times_out_is_unknown_and_not_retried() {
    let slow = slow(Duration::from_secs(5)).await;
    let (live, live_log) = mock(|_| written(1)).await;
    let client = Client::with_options([slow, live], short_timeouts()).unwrap();

    let e = client
        .put("app/x", Bytes::new(), Precondition::None)
        .await
        .unwrap_err();

    assert!(e.is_unknown_outcome(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("the put of app/x sent to http://"),
        "{text}"
    );
    assert!(text.contains("may or may not have taken effect"), "{text}");
    assert!(seen(&live_log).is_empty(), "the write was sent again");
}

#[tokio::test]
async fn a_read_that_times_out_moves_to_the_next_endpoint() {
    let slow = slow(Duration::from_secs(5)).await;
    let members = MemberList {
        members: vec![],
        leader_id: Some(NodeId(4)),
        commit_index: LogIndex(9),
        membership_change_pending: false,
    };
    let answer = members.clone();
    let (live, _) = mock(move |_| json(StatusCode::OK, answer.clone())).await;
    let client = Client::with_options([slow, live], short_timeouts()).unwrap();

    assert_eq!(client.members().await.unwrap(), members);
}

#[tokio::test]
async fn a_read_moves_on_after_the_failover_timeout_not_the_request_timeout() {
    let stalled = slow(Duration::from_secs(3600)).await;
    let members = MemberList {
        members: vec![],
        leader_id: Some(NodeId(4)),
        commit_index: LogIndex(9),
        membership_change_pending: false,
    };
    let answer = members.clone();
    let (live, _) = mock(move |_| json(StatusCode::OK, answer.clone())).await;
    let options = ClientOptions {
        request_timeout: Duration::from_secs(3600),
        read_failover_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let client = Client::with_options([stalled.clone(), live], options.clone()).unwrap();

    // Were the request timeout the limit, this would wait an hour.
    let read = tokio::time::timeout(Duration::from_secs(60), client.members()).await;
    assert_eq!(read.expect("the read did not move on").unwrap(), members);

    // The last endpoint gets the whole request timeout, so a lone stalled
    // endpoint is not given up on after the failover timeout.
    let alone = Client::with_options([stalled], options).unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(1), alone.members()).await;
    assert!(waited.is_err(), "gave up early: {waited:?}");
}

#[tokio::test]
async fn a_write_is_not_cut_short_by_the_read_failover_timeout() {
    let slowish = slow(Duration::from_millis(500)).await;
    let (live, live_log) = mock(|_| written(2)).await;
    let options = ClientOptions {
        read_failover_timeout: Duration::from_millis(50),
        ..ClientOptions::default()
    };
    let client = Client::with_options([slowish, live], options).unwrap();

    let answer = client
        .put("app/x", Bytes::new(), Precondition::None)
        .await
        .unwrap();

    assert_eq!(answer.revision, 1);
    assert!(seen(&live_log).is_empty(), "the write was sent again");
}

fn member(
    id: u64,
    client_url: &str,
    leader: bool,
    healthy: Option<bool>,
) -> raftcfg_client::wire::Member {
    raftcfg_client::wire::Member {
        id: NodeId(id),
        name: format!("n{id}"),
        peer_url: format!("http://n{id}:7380"),
        client_url: client_url.to_owned(),
        role: raftcfg_client::wire::MemberRole::Voter,
        leader,
        match_index: healthy.map(|_| LogIndex(9)),
        healthy,
    }
}

#[tokio::test]
async fn members_from_leader_asks_the_leader_when_a_follower_answers() {
    // The leader's URL is known only once its server is bound.
    let leader_url: Arc<Mutex<String>> = Arc::default();
    let (follower, _) = mock({
        let leader_url = leader_url.clone();
        move |_| {
            let leader = leader_url.lock().unwrap().clone();
            json(
                StatusCode::OK,
                MemberList {
                    members: vec![
                        member(1, &leader, true, None),
                        member(2, "http://f", false, None),
                    ],
                    leader_id: Some(NodeId(1)),
                    commit_index: LogIndex(9),
                    membership_change_pending: false,
                },
            )
        }
    })
    .await;
    let leaders_view = MemberList {
        members: vec![
            member(1, "http://l", true, Some(true)),
            member(2, "http://f", false, Some(false)),
        ],
        leader_id: Some(NodeId(1)),
        commit_index: LogIndex(9),
        membership_change_pending: false,
    };
    let answer = leaders_view.clone();
    let (leader, leader_log) = mock(move |_| json(StatusCode::OK, answer.clone())).await;
    *leader_url.lock().unwrap() = leader;
    let client = Client::new([follower]).unwrap();

    assert_eq!(client.members_from_leader().await.unwrap(), leaders_view);
    assert_eq!(seen(&leader_log).len(), 1);

    // An unreachable leader leaves the follower's answer.
    *leader_url.lock().unwrap() = DEAD.to_owned();
    let list = client.members_from_leader().await.unwrap();
    assert_eq!(list.members[1].healthy, None);
}

#[tokio::test]
async fn a_write_that_is_cut_off_mid_request_is_unknown() {
    // Accepts a connection, reads a little and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 64];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            drop(socket);
        }
    });
    let (live, live_log) = mock(|_| written(1)).await;
    let client = Client::new([format!("http://{address}"), live]).unwrap();

    let e = client
        .add_member(&AddMemberRequest {
            node_id: NodeId(9),
            name: "n9".into(),
            peer_url: "http://n9:7380".into(),
            client_url: "http://n9:7379".into(),
        })
        .await
        .unwrap_err();

    assert!(e.is_unknown_outcome(), "{e:?}");
    assert!(seen(&live_log).is_empty());
}

#[tokio::test]
async fn list_sends_its_parameters_as_a_query() {
    let page = ListResponse {
        items: vec![KeyValue {
            key: "app/a b".into(),
            value_base64: "aGk=".into(),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
        }],
        more: true,
        revision: 9,
    };
    let answer = page.clone();
    let (endpoint, log) = mock(move |_| json(StatusCode::OK, answer.clone())).await;
    let client = Client::new([endpoint]).unwrap();

    let got = client
        .list("app/", Some(10), Some("app/a"), Consistency::Serializable)
        .await
        .unwrap();

    assert_eq!(got, page);
    assert_eq!(got.items[0].value().unwrap(), b"hi");
    let request = &seen(&log)[0];
    assert_eq!(request.path(), "/v1/kv");
    assert_eq!(
        request.query(),
        [
            ("prefix".to_owned(), "app/".to_owned()),
            ("limit".to_owned(), "10".to_owned()),
            ("start_after".to_owned(), "app/a".to_owned()),
            ("consistency".to_owned(), "serializable".to_owned()),
        ]
    );
}

#[tokio::test]
async fn cluster_calls_use_the_documented_methods_paths_and_bodies() {
    let (endpoint, log) = mock(|seen| match (seen.method.as_str(), seen.path()) {
        ("POST", "/v1/cluster/leader") => json(StatusCode::OK, serde_json::json!({"leader_id": 2})),
        ("POST", "/v1/cluster/bootstrap") => json(
            StatusCode::OK,
            serde_json::json!({"cluster_id": 77, "node_id": 1}),
        ),
        _ => json(
            StatusCode::OK,
            MembershipResponse {
                index: LogIndex(40),
            },
        ),
    })
    .await;
    let client = Client::new([endpoint]).unwrap();
    let add = AddMemberRequest {
        node_id: NodeId(9),
        name: "n9".into(),
        peer_url: "http://n9:7380".into(),
        client_url: "http://n9:7379".into(),
    };

    assert_eq!(client.add_member(&add).await.unwrap().index, LogIndex(40));
    client.promote(NodeId(9)).await.unwrap();
    client.remove_member(NodeId(9)).await.unwrap();
    assert_eq!(
        client
            .transfer_leader(Some(NodeId(2)))
            .await
            .unwrap()
            .leader_id,
        NodeId(2)
    );
    client.transfer_leader(None).await.unwrap();
    assert_eq!(client.bootstrap().await.unwrap().cluster_id, ClusterId(77));

    let requests = seen(&log);
    let calls: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.to_string(), r.path().to_owned()))
        .collect();
    let expected = [
        ("POST", "/v1/cluster/members"),
        ("POST", "/v1/cluster/members/9/promote"),
        ("DELETE", "/v1/cluster/members/9"),
        ("POST", "/v1/cluster/leader"),
        ("POST", "/v1/cluster/leader"),
        ("POST", "/v1/cluster/bootstrap"),
    ];
    assert_eq!(
        calls,
        expected.map(|(m, p)| (m.to_owned(), p.to_owned())).to_vec()
    );
    let body: AddMemberRequest = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, add);
    assert_eq!(
        requests[0].headers[header::CONTENT_TYPE],
        "application/json"
    );
    assert_eq!(&requests[3].body[..], br#"{"to":2}"#);
    assert_eq!(&requests[4].body[..], br#"{"to":null}"#);
    assert!(requests[5].body.is_empty());
}

#[tokio::test]
async fn bootstrap_goes_only_to_the_first_endpoint() {
    let (live, live_log) = mock(|_| {
        json(
            StatusCode::OK,
            serde_json::json!({"cluster_id": 1, "node_id": 1}),
        )
    })
    .await;
    let client = Client::new([DEAD.to_owned(), live]).unwrap();

    assert!(client.bootstrap().await.is_err());
    assert!(seen(&live_log).is_empty());
}

fn status(node_id: u64) -> NodeStatus {
    NodeStatus {
        node_id: NodeId(node_id),
        cluster_id: Some(ClusterId(1)),
        name: format!("n{node_id}"),
        role: "follower".into(),
        term: Term(3),
        commit: LogIndex(10),
        applied: LogIndex(10),
        last_index: LogIndex(10),
        last_term: Term(3),
        snapshot_index: LogIndex(0),
        leader_id: Some(NodeId(1)),
        state_digest: Some("ab".repeat(32)),
    }
}

#[tokio::test]
async fn node_status_of_asks_exactly_the_given_endpoint() {
    let (a, a_log) = mock(|_| json(StatusCode::OK, status(1))).await;
    let (b, b_log) = mock(|_| json(StatusCode::OK, status(2))).await;
    let client = Client::new([a]).unwrap();

    assert_eq!(client.node_status_of(&b).await.unwrap().node_id, NodeId(2));
    assert_eq!(client.node_status().await.unwrap().node_id, NodeId(1));
    assert!(client.node_status_of(DEAD).await.is_err());

    assert_eq!(seen(&b_log)[0].path(), "/v1/node");
    assert_eq!(seen(&a_log).len(), 1);
}

#[tokio::test]
async fn a_snapshot_is_streamed_into_the_writer() {
    let app = Router::new().route(
        "/v1/snapshot",
        axum::routing::get(|| async {
            let chunks = (0..64u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; 1000])));
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
        }),
    );
    let endpoint = serve(app).await;
    let client = Client::new([endpoint]).unwrap();

    let mut out: Vec<u8> = Vec::new();
    let written = client.snapshot(&mut out).await.unwrap();

    assert_eq!(written, 64_000);
    assert_eq!(out.len(), 64_000);
    assert_eq!(out[63_999], 63);
}

fn sse_event(event: &WatchEvent) -> String {
    let kind = match event.kind {
        WatchEventKind::Put => "put",
        WatchEventKind::Delete => "delete",
    };
    format!(
        "event: {kind}\nid: {}\ndata: {}\n\n",
        event.revision,
        serde_json::to_string(event).unwrap()
    )
}

fn put_event(revision: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision,
        kind: WatchEventKind::Put,
        key: key.into(),
        value_base64: Some("aGk=".into()),
    }
}

fn delete_event(revision: u64, key: &str) -> WatchEvent {
    WatchEvent {
        revision,
        kind: WatchEventKind::Delete,
        key: key.into(),
        value_base64: None,
    }
}

/// An event-stream body sent in chunks that cut lines in odd places; the
/// connection stays open afterwards if `hold` is set.
fn sse_body(text: String, hold: bool) -> Response {
    let bytes = text.into_bytes();
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures::stream::iter(chunks);
    let body = if hold {
        Body::from_stream(stream.chain(futures::stream::pending()))
    } else {
        Body::from_stream(stream)
    };
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

#[tokio::test]
async fn a_watch_parses_events_and_skips_keep_alive_comments() {
    let (endpoint, log) = mock(|_| {
        let text = format!(
            ": keep-alive\n\n{}: keep-alive\n\n{}",
            sse_event(&put_event(5, "app/a")),
            sse_event(&delete_event(6, "app/b"))
        );
        sse_body(text, true)
    })
    .await;
    let client = Client::new([endpoint]).unwrap();

    let events: Vec<WatchEvent> = client
        .watch("app/", Some(5))
        .take(2)
        .map(Result::unwrap)
        .collect()
        .await;

    assert_eq!(events, [put_event(5, "app/a"), delete_event(6, "app/b")]);
    assert_eq!(events[0].value().unwrap().unwrap(), b"hi");
    let request = &seen(&log)[0];
    assert_eq!(request.path(), "/v1/watch");
    assert_eq!(
        request.query(),
        [
            ("prefix".to_owned(), "app/".to_owned()),
            ("from_revision".to_owned(), "5".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_watch_resumes_after_the_last_event_when_the_stream_drops() {
    let (endpoint, log) = mock(|seen| {
        let from: u64 = seen
            .query()
            .iter()
            .find(|(k, _)| k == "from_revision")
            .unwrap()
            .1
            .parse()
            .unwrap();
        // Each connection sends two events from `from`, one of them a
        // replay of an already delivered one, then hangs up.
        let text = format!(
            "{}{}",
            sse_event(&put_event(from - 1, "replayed")),
            sse_event(&put_event(from, "k"))
        );
        sse_body(text, false)
    })
    .await;
    let client = Client::new([endpoint]).unwrap();

    let revisions: Vec<u64> = client
        .watch("", Some(11))
        .take(3)
        .map(|e| e.unwrap().revision)
        .collect()
        .await;

    assert_eq!(revisions, [11, 12, 13], "the replayed events are skipped");
    let froms: Vec<String> = seen(&log).iter().map(|r| r.query()[1].1.clone()).collect();
    assert_eq!(froms[..3], ["11", "12", "13"]);
}

#[tokio::test]
async fn a_watch_without_a_start_revision_starts_after_the_current_one() {
    let (endpoint, log) = mock(|seen| {
        if seen.path() == "/v1/kv" {
            json(
                StatusCode::OK,
                ListResponse {
                    items: vec![],
                    more: false,
                    revision: 41,
                },
            )
        } else {
            sse_body(sse_event(&put_event(42, "k")), true)
        }
    })
    .await;
    let client = Client::new([endpoint]).unwrap();

    let first = client.watch("p/", None).next().await.unwrap().unwrap();

    assert_eq!(first.revision, 42);
    let requests = seen(&log);
    assert_eq!(requests[0].uri, "/v1/kv?prefix=p%2F&limit=1");
    assert_eq!(requests[1].uri, "/v1/watch?prefix=p%2F&from_revision=42");
}

#[tokio::test]
async fn a_watch_of_a_compacted_revision_ends_with_gone() {
    let (endpoint, _) =
        mock(|_| error(StatusCode::GONE, "compacted", "revision 3 was compacted")).await;
    let client = Client::new([endpoint]).unwrap();

    let items: Vec<Result<WatchEvent, ClientError>> = client.watch("", Some(3)).collect().await;

    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().code(), Some("compacted"));
}

#[tokio::test]
async fn a_write_the_server_calls_outcome_unknown_is_unknown_and_not_retried() {
    let (a, _) = mock(|_| {
        error(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            "the request timed out",
        )
    })
    .await;
    let (b, b_log) = mock(|_| written(1)).await;
    let client = Client::new([a, b]).unwrap();

    let e = client.delete("k", Precondition::None).await.unwrap_err();

    assert!(e.is_unknown_outcome(), "{e:?}");
    assert!(seen(&b_log).is_empty());
}

#[tokio::test]
async fn a_watch_ended_by_a_stopping_node_continues_on_another() {
    let connections = Arc::new(Mutex::new(0));
    let (a, _) = mock(move |_| {
        let mut connections = connections.lock().unwrap();
        *connections += 1;
        if *connections > 1 {
            return unavailable();
        }
        let stopping = serde_json::to_string(&ErrorBody::new("stopping", "the node is stopping"));
        let text = format!(
            "{}event: error\ndata: {}\n\n",
            sse_event(&put_event(5, "k")),
            stopping.unwrap()
        );
        sse_body(text, false)
    })
    .await;
    let (b, b_log) = mock(|_| sse_body(sse_event(&put_event(6, "k")), true)).await;
    let client = Client::new([a, b]).unwrap();

    let revisions: Vec<u64> = client
        .watch("", Some(5))
        .take(2)
        .map(|e| e.unwrap().revision)
        .collect()
        .await;

    assert_eq!(revisions, [5, 6]);
    assert_eq!(seen(&b_log)[0].query()[1].1, "6");
}
