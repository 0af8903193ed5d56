//! Authentication and authorization on real `raftcfg serve` processes: the
//! permission matrix (each operation × each kind of caller, through the
//! leader and through a follower), lists and watches that return only the
//! keys the caller may read, the leader checking a forwarded write again,
//! sign-in by client certificate, no lock-out, and the CLI and client
//! library signing in with a password.

mod support;

use std::time::Duration;

use bytes::Bytes;
use raftcfg_client::http::{Client, ClientOptions, ClientTls, Consistency, Credentials};
use raftcfg_client::wire::TokenResponse;
use raftcfg_node::codec;
use raftcfg_node::kv::{Command, Key, Limits, Precondition};
use raftcfg_node::transport::{ForwardError, ForwardReply, PROPOSE_PATH};
use reqwest::StatusCode;
use support::Cluster;
use support::certs::TestCa;

/// How long tokens live in these clusters: short, so a token can be seen
/// expire, yet long enough for a slow machine to use a fresh one (expiry
/// is counted in whole seconds, so a token lives between TTL - 1 and TTL).
const TOKEN_TTL_SECS: u64 = 8;

/// Who makes a request in the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    WrongPassword,
    ExpiredToken,
    NoRoles,
    Reader,
    Writer,
    Root,
}

/// The operations of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    List,
    Watch,
    Member,
    Snapshot,
    Auth,
}

const OPS: [Op; 7] = [
    Op::Read,
    Op::Write,
    Op::List,
    Op::Watch,
    Op::Member,
    Op::Snapshot,
    Op::Auth,
];

/// The status `who` should get for `op`.
fn expected(who: Who, op: Op) -> StatusCode {
    let key_op = matches!(op, Op::Read | Op::List | Op::Watch);
    match who {
        Who::Nobody | Who::WrongPassword | Who::ExpiredToken => StatusCode::UNAUTHORIZED,
        Who::Root => StatusCode::OK,
        Who::Reader if key_op => StatusCode::OK,
        Who::Writer if key_op || op == Op::Write => StatusCode::OK,
        Who::NoRoles | Who::Reader | Who::Writer => StatusCode::FORBIDDEN,
    }
}

/// `op` against `url` (a member's client URL) with `token`, as a status.
async fn attempt(
    http: &reqwest::Client,
    url: &str,
    op: Op,
    token: Option<&str>,
    cluster: &Cluster,
) -> StatusCode {
    let member = &cluster.nodes[0];
    let request = match op {
        Op::Read => http.get(format!("{url}/v1/kv/app/a")),
        Op::Write => http.put(format!("{url}/v1/kv/app/a")).body("written"),
        Op::List => http.get(format!("{url}/v1/kv?prefix=app/")),
        Op::Watch => http.get(format!("{url}/v1/watch?prefix=app/&from_revision=1")),
        Op::Member => {
            let id = member.status().await.node_id;
            http.put(format!("{url}/v1/cluster/members/{id}"))
                .header("content-type", "application/json")
                .body(
                    serde_json::json!({
                        "peer_url": member.peer_url(),
                        "client_url": member.client_url(),
                    })
                    .to_string(),
                )
        }
        Op::Snapshot => http.get(format!("{url}/v1/snapshot")),
        Op::Auth => http.get(format!("{url}/v1/auth/users")),
    };
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    // Only the status matters: a watch or a backup body is not read.
    request
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{op:?} at {url}: {e}"))
        .status()
}

/// A token for `user`'s password from `url`, or the status refusing it.
async fn token(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> Result<String, StatusCode> {
    let response = http
        .post(format!("{url}/v1/auth/token"))
        .json(&serde_json::json!({ "user": user, "password": password }))
        .send()
        .await
        .unwrap();
    if !response.status().is_success() {
        return Err(response.status());
    }
    Ok(response.json::<TokenResponse>().await.unwrap().token)
}

/// A client signed in as `user`.
fn client_as(cluster: &Cluster, user: &str, password: &str) -> Client {
    Client::with_options(
        cluster.nodes.iter().map(support::Node::client_url),
        ClientOptions {
            credentials: Some(Credentials::Password {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// Users root, writer (readwrite on app/), reader (read on app/) and
/// norole, with keys app/a and other/b; then auth enabled.
async fn secure_cluster() -> Cluster {
    let ttl = TOKEN_TTL_SECS.to_string();
    let mut cluster = Cluster::new(3, &["--auth-token-ttl", &ttl]);
    cluster.form().await;
    let admin = cluster.client();
    cluster.put("app/a", "1").await;
    cluster.put("other/b", "2").await;
    // No lock-out: enabling needs a root user holding the root role.
    let refused = admin.auth_enable().await.unwrap_err();
    assert_eq!(refused.code(), Some("auth_refused"), "{refused}");
    assert!(refused.to_string().contains("root"), "{refused}");
    admin.add_user("root", Some("root-pw")).await.unwrap();
    admin.grant_role("root", "root").await.unwrap();
    for (role, access) in [("app-rw", "readwrite"), ("app-ro", "read")] {
        admin.add_role(role).await.unwrap();
        admin.grant_permission(role, "app/", access).await.unwrap();
    }
    for (user, role) in [
        ("writer", Some("app-rw")),
        ("reader", Some("app-ro")),
        ("norole", None),
    ] {
        admin
            .add_user(user, Some(&format!("{user}-pw")))
            .await
            .unwrap();
        if let Some(role) = role {
            admin.grant_role(user, role).await.unwrap();
        }
    }
    admin.auth_enable().await.unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_kind_of_caller_as_its_permissions_say() {
    let cluster = secure_cluster().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let http = reqwest::Client::new();
    let url = cluster.nodes[leader].client_url();
    let expired = token(&http, &url, "reader", "reader-pw").await.unwrap();
    tokio::time::sleep(Duration::from_secs(TOKEN_TTL_SECS + 1)).await;
    assert_eq!(
        token(&http, &url, "reader", "wrong").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        token(&http, &url, "ghost", "whatever").await,
        Err(StatusCode::UNAUTHORIZED),
        "an unknown user is answered as a wrong password"
    );

    let mut failures = Vec::new();
    for through in [leader, follower] {
        let url = cluster.nodes[through].client_url();
        for who in [
            Who::Nobody,
            Who::WrongPassword,
            Who::ExpiredToken,
            Who::NoRoles,
            Who::Reader,
            Who::Writer,
            Who::Root,
        ] {
            for op in OPS {
                // A fresh token per attempt: they live only seconds.
                let bearer = match who {
                    Who::Nobody | Who::WrongPassword => None,
                    Who::ExpiredToken => Some(expired.clone()),
                    Who::NoRoles => Some(token(&http, &url, "norole", "norole-pw").await.unwrap()),
                    Who::Reader => Some(token(&http, &url, "reader", "reader-pw").await.unwrap()),
                    Who::Writer => Some(token(&http, &url, "writer", "writer-pw").await.unwrap()),
                    Who::Root => Some(token(&http, &url, "root", "root-pw").await.unwrap()),
                };
                let status = if who == Who::WrongPassword {
                    // Signing in fails, so nothing can be attempted.
                    token(&http, &url, "writer", "nope").await.unwrap_err()
                } else {
                    attempt(&http, &url, op, bearer.as_deref(), &cluster).await
                };
                if status != expected(who, op) {
                    failures.push(format!(
                        "{op:?} by {who:?} through node {through}: got {status}, expected {}",
                        expected(who, op)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_watches_return_only_readable_keys_and_the_leader_checks_forwarded_writes() {
    let cluster = secure_cluster().await;
    let reader = client_as(&cluster, "reader", "reader-pw");
    // Everything listed: only app/ comes back.
    let page = reader
        .list("", None, None, Consistency::Linearizable)
        .await
        .unwrap();
    let keys: Vec<_> = page.items.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(keys, ["app/a"]);
    let error = reader
        .list("other/", None, None, Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN), "{error}");

    // A watch of everything sees the app/ change and not the other/ one.
    let http = reqwest::Client::new();
    let url = cluster.nodes[0].client_url();
    let bearer = token(&http, &url, "reader", "reader-pw").await.unwrap();
    let watch = http
        .get(format!("{url}/v1/watch?from_revision=1"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    let root = client_as(&cluster, "root", "root-pw");
    root.put(
        "other/c",
        Bytes::from_static(b"x"),
        raftcfg_client::Precondition::None,
    )
    .await
    .unwrap();
    let last = root
        .put(
            "app/z",
            Bytes::from_static(b"y"),
            raftcfg_client::Precondition::None,
        )
        .await
        .unwrap()
        .revision;
    let mut body = watch;
    let mut text = String::new();
    while !text.contains(&format!("id: {last}")) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.chunk())
            .await
            .expect("the watch went silent")
            .unwrap()
            .expect("the watch ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("app/a") && text.contains("app/z"), "{text}");
    assert!(
        !text.contains("other/"),
        "a key the reader may not read was sent: {text}"
    );

    // A write forwarded for reader, or for nobody, is refused by the
    // leader itself.
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let peer = cluster.nodes[leader].peer_url();
    let command = Command::Put {
        key: Key::parse("app/a", &Limits::default()).unwrap(),
        value: Bytes::from_static(b"sneaky"),
        precondition: Precondition::None,
    };
    for user in [Some("reader"), None] {
        let mut request = http
            .post(format!("{peer}{PROPOSE_PATH}"))
            .body(codec::encode(&command));
        if let Some(user) = user {
            request = request.header(raftcfg_node::auth::USER_HEADER, user);
        }
        let body = request.send().await.unwrap().bytes().await.unwrap();
        let reply: ForwardReply = codec::decode(body).unwrap();
        assert!(
            matches!(reply.0, Err(ForwardError::Forbidden(_))),
            "{user:?}: {:?}",
            reply.0
        );
    }
    let value = root
        .get("app/a", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        value.bytes,
        Bytes::from_static(b"1"),
        "the refused writes wrote nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_revokes_old_tokens_and_root_cannot_be_locked_out() {
    let cluster = secure_cluster().await;
    let http = reqwest::Client::new();
    let url = cluster.nodes[0].client_url();
    let old = token(&http, &url, "writer", "writer-pw").await.unwrap();
    let root = client_as(&cluster, "root", "root-pw");
    root.set_password("writer", "new-pw").await.unwrap();
    let status = attempt(&http, &url, Op::Read, Some(&old), &cluster).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(token(&http, &url, "writer", "new-pw").await.is_ok());
    for refused in [
        root.delete_user("root").await.unwrap_err(),
        root.revoke_role("root", "root").await.unwrap_err(),
    ] {
        assert_eq!(refused.code(), Some("auth_refused"), "{refused}");
    }
    // The list of users never shows a password or its hash.
    let page = http
        .get(format!("{url}/v1/auth/users"))
        .bearer_auth(token(&http, &url, "root", "root-pw").await.unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("\"writer\"") && !page.contains("argon2") && !page.contains("pw"),
        "{page}"
    );
    // Disabled, requests need no credentials again.
    root.auth_disable().await.unwrap();
    assert_eq!(
        attempt(&http, &url, Op::Write, None, &cluster).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_signs_in_with_a_password_or_a_token() {
    let cluster = secure_cluster().await;
    let endpoint = cluster.nodes[1].client_url();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let output = std::process::Command::new(support::RAFTCFG)
            .args(args)
            .args(["--endpoints", &endpoint])
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, _, error) = cli(&["get", "app/a"], &[]);
    assert!(!ok && error.contains("unauthenticated"), "{error}");
    let (ok, out, error) = cli(
        &[
            "put",
            "app/cli",
            "v",
            "--user",
            "writer",
            "--password",
            "writer-pw",
        ],
        &[],
    );
    assert!(ok, "{error}");
    assert!(!out.contains("writer-pw"));
    let (ok, _, error) = cli(&["get", "app/a", "--user", "writer"], &[]);
    assert!(
        !ok && error.contains("--password"),
        "no terminal to prompt on: {error}"
    );
    let (ok, out, error) = cli(
        &["auth", "token", "--user", "reader"],
        &[("RAFTCFG_PASSWORD", "reader-pw")],
    );
    assert!(ok, "{error}");
    let token = out.trim().to_owned();
    let (ok, out, error) = cli(&["get", "app/cli"], &[("RAFTCFG_TOKEN", &token)]);
    assert!(ok, "{error}");
    assert_eq!(out, "v");
    let (ok, _, error) = cli(&["put", "app/cli", "w", "--token", &token], &[]);
    assert!(!ok && error.contains("forbidden"), "{error}");
    let root = [("RAFTCFG_USER", "root"), ("RAFTCFG_PASSWORD", "root-pw")];
    let (ok, out, error) = cli(&["user", "list"], &root);
    assert!(ok, "{error}");
    assert!(out.contains("reader") && out.contains("app-ro"), "{out}");
    let (ok, out, error) = cli(&["role", "list"], &root);
    assert!(ok, "{error}");
    assert!(out.contains("readwrite:\"app/\""), "{out}");
    let (ok, out, error) = cli(&["auth", "status"], &[]);
    assert!(ok, "{error}");
    assert_eq!(out.trim(), "authentication enabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_signs_in_as_its_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("client CA");
    let mut cluster = Cluster::new(1, &[]);
    let ca_file = ca.write(dir.path(), "ca");
    let node = &mut cluster.nodes[0];
    let (cert, key) = ca.leaf("n1").write(dir.path(), "n1");
    for (flag, path) in [
        ("--cert-file", &cert),
        ("--key-file", &key),
        ("--trusted-ca-file", &ca_file),
    ] {
        node.extra_args.push(flag.to_owned());
        node.extra_args.push(path.to_str().unwrap().to_owned());
    }
    let trust = ClientTls {
        ca_pem: Some(ca.pem.clone().into_bytes()),
        identity_pem: None,
    };
    node.client_tls = Some(trust.clone());
    cluster.form().await;
    let admin = cluster.client();
    admin.add_user("root", None).await.unwrap();
    admin.grant_role("root", "root").await.unwrap();
    admin.add_user("svc", None).await.unwrap();
    admin.add_role("svc").await.unwrap();
    admin
        .grant_permission("svc", "svc/", "readwrite")
        .await
        .unwrap();
    admin.grant_role("svc", "svc").await.unwrap();
    admin.auth_enable().await.unwrap();

    let with_cert = |name: &str| {
        Client::with_options(
            [cluster.nodes[0].client_url()],
            ClientOptions {
                tls: ClientTls {
                    identity_pem: Some(ca.leaf(name).identity_pem()),
                    ..trust.clone()
                },
                ..ClientOptions::default()
            },
        )
        .unwrap()
    };
    let svc = with_cert("svc");
    svc.put(
        "svc/x",
        Bytes::from_static(b"1"),
        raftcfg_client::Precondition::None,
    )
    .await
    .unwrap();
    let error = svc
        .put(
            "app/x",
            Bytes::from_static(b"1"),
            raftcfg_client::Precondition::None,
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN), "{error}");
    let stranger = with_cert("mallory")
        .get("svc/x", Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(
        stranger.status(),
        Some(StatusCode::UNAUTHORIZED),
        "{stranger}"
    );
    assert!(
        with_cert("root").users().await.is_ok(),
        "root by certificate"
    );
    assert!(
        cluster.client().auth_status().await.unwrap().enabled,
        "the status is open to all"
    );
}
