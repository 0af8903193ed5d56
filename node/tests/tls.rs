//! TLS on the client port, with certificates made in the test: the
//! handshake against the right CA, a wrong CA, an expired certificate and
//! a missing or foreign client certificate (on the port's own server, in
//! process); then real `raftcfg serve` processes: a TLS cluster formed and
//! used through the client library and the CLI, and a certificate replaced
//! under a continuous write load with no request failing; and mutual TLS
//! between members: a cluster that replicates, forwards and sends a
//! snapshot over it, refuses strangers at the peer port, and moves to a
//! new peer CA by files replaced in place, under writes, with no restart.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use raftcfg_client::http::{Client, ClientOptions, ClientTls, Consistency, Precondition};
use raftcfg_node::http_serve::{self, ConnectionLimits};
use raftcfg_node::metrics::{CLIENT_PORT, Metrics, PortLabels};
use raftcfg_node::tls::{ReloadingTls, TlsFiles};
use support::Cluster;
use support::certs::{Leaf, TestCa};

/// A port serving `GET /ping` with `files`; its https URL and metrics.
async fn tls_port(files: TlsFiles) -> (String, Arc<Metrics>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let metrics = Arc::new(Metrics::default());
    let tls = Arc::new(ReloadingTls::load(files).unwrap());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Served until the test ends.
    std::mem::forget(stop);
    tokio::spawn(http_serve::serve(
        listener,
        CLIENT_PORT,
        Router::new().route("/ping", get(|| async { "pong" })),
        ConnectionLimits::CLIENT_DEFAULTS,
        Some(tls),
        metrics.clone(),
        stopping,
    ));
    (format!("https://127.0.0.1:{port}"), metrics)
}

/// GET /ping trusting `ca` (PEM), presenting `identity` if given.
async fn ping(url: &str, ca: &str, identity: Option<&Leaf>) -> Result<String, String> {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap());
    if let Some(leaf) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(&leaf.identity_pem()).unwrap());
    }
    let response = builder
        .build()
        .unwrap()
        .get(format!("{url}/ping"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    response.text().await.map_err(|e| format!("{e:?}"))
}

fn files(dir: &Path, leaf: &Leaf, client_ca: Option<&TestCa>, required: bool) -> TlsFiles {
    let (cert, key) = leaf.write(dir, "server");
    TlsFiles {
        cert,
        key,
        trusted_ca: client_ca.map(|ca| ca.write(dir, "client-ca")),
        client_cert_auth: required,
    }
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_gets_through_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let other = TestCa::new("someone else's CA");
    let (url, metrics) = tls_port(files(dir.path(), &ca.leaf("n1"), None, false)).await;

    assert_eq!(ping(&url, &ca.pem, None).await.unwrap(), "pong");
    let refused = ping(&url, &other.pem, None).await.unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    let plain = reqwest::get(url.replace("https://", "http://") + "/ping").await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP was served on a TLS port"
    );
    let failures = metrics
        .tls_handshake_failures
        .get_or_create(&PortLabels { port: CLIENT_PORT })
        .get();
    assert!(failures >= 1);
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_by_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let (url, _) = tls_port(files(dir.path(), &ca.expired_leaf("n1"), None, false)).await;

    let refused = ping(&url, &ca.pem, None).await.unwrap_err();
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
}

#[tokio::test]
async fn with_client_cert_auth_only_a_certificate_from_the_trusted_ca_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let clients = TestCa::new("client CA");
    let stranger = TestCa::new("someone else's CA");
    let (url, _) = tls_port(files(dir.path(), &ca.leaf("n1"), Some(&clients), true)).await;

    let client = clients.leaf("operator");
    assert_eq!(ping(&url, &ca.pem, Some(&client)).await.unwrap(), "pong");
    assert!(ping(&url, &ca.pem, None).await.is_err(), "no certificate");
    assert!(
        ping(&url, &ca.pem, Some(&stranger.leaf("mallory")))
            .await
            .is_err(),
        "a certificate from another CA"
    );
    assert!(
        ping(&url, &ca.pem, Some(&clients.expired_leaf("old")))
            .await
            .is_err(),
        "an expired client certificate"
    );
}

#[test]
fn files_that_cannot_serve_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let leaf = ca.leaf("n1");
    let (cert, _) = leaf.write(dir.path(), "n1");
    let (_, other_key) = ca.leaf("n2").write(dir.path(), "n2");
    let mismatched = TlsFiles {
        cert: cert.clone(),
        key: other_key,
        trusted_ca: None,
        client_cert_auth: false,
    };
    let error = ReloadingTls::load(mismatched).err().unwrap();
    assert!(error.contains("is not the certificate's"), "{error}");
    let no_ca = TlsFiles {
        cert,
        key: dir.path().join("n1.key"),
        trusted_ca: None,
        client_cert_auth: true,
    };
    let error = ReloadingTls::load(no_ca).err().unwrap();
    assert!(error.contains("--trusted-ca-file"), "{error}");
}

/// A cluster of `n` TLS nodes whose client port requires a certificate
/// from `ca`, and client TLS that reaches them.
fn tls_cluster(n: usize, dir: &Path, ca: &TestCa) -> (Cluster, ClientTls) {
    let ca_file = ca.write(dir, "ca");
    let mut cluster = Cluster::new(n, &[]);
    let client = ca.leaf("tester");
    let tls = ClientTls {
        ca_pem: Some(ca.pem.clone().into_bytes()),
        identity_pem: Some(client.identity_pem()),
    };
    for node in &mut cluster.nodes {
        let (cert, key) = ca.leaf(&node.name).write(dir, &node.name);
        for (flag, path) in [
            ("--cert-file", &cert),
            ("--key-file", &key),
            ("--trusted-ca-file", &ca_file),
        ] {
            node.extra_args.push(flag.to_owned());
            node.extra_args.push(path.to_str().unwrap().to_owned());
        }
        node.extra_args.push("--client-cert-auth".to_owned());
        node.client_tls = Some(tls.clone());
    }
    (cluster, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_serves_the_library_and_the_cli_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let (mut cluster, _) = tls_cluster(2, dir.path(), &ca);
    // Adding the second member has the leader ask it, over TLS, who it is.
    cluster.form().await;
    let revision = cluster.put("app/db", "postgres://a").await;
    let members = cluster.client().members().await.unwrap();
    assert!(
        members
            .members
            .iter()
            .all(|m| m.client_url.starts_with("https://")),
        "{members:?}"
    );

    let endpoint = cluster.nodes[1].client_url();
    let client_leaf = ca.leaf("cli");
    let (cert, key) = client_leaf.write(dir.path(), "cli");
    let ca_file = dir.path().join("ca.crt");
    let output = std::process::Command::new(support::RAFTCFG)
        .args(["get", "app/db", "--endpoints", &endpoint])
        .arg("--cacert")
        .arg(&ca_file)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"postgres://a");

    // Without a client certificate, or trusting another CA: refused.
    let output = std::process::Command::new(support::RAFTCFG)
        .args(["get", "app/db", "--endpoints", &endpoint])
        .arg("--cacert")
        .arg(&ca_file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stranger = Client::with_options(
        [endpoint.as_str()],
        ClientOptions {
            tls: ClientTls {
                ca_pem: Some(TestCa::new("other").pem.into_bytes()),
                identity_pem: Some(client_leaf.identity_pem()),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    assert!(
        stranger
            .get("app/db", Consistency::Linearizable)
            .await
            .is_err()
    );

    let value = cluster
        .client()
        .get("app/db", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value.mod_revision, revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_under_load_is_served_with_no_request_failing() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestCa::new("first CA");
    let second = TestCa::new("second CA");
    let mut cluster = Cluster::new(1, &[]);
    let node = &mut cluster.nodes[0];
    let (cert, key) = first.leaf("n1").write(dir.path(), "live");
    for (flag, path) in [("--cert-file", &cert), ("--key-file", &key)] {
        node.extra_args.push(flag.to_owned());
        node.extra_args.push(path.to_str().unwrap().to_owned());
    }
    // Trusting both CAs: the old certificate and the new one will do.
    let both = ClientTls {
        ca_pem: Some(format!("{}\n{}", first.pem, second.pem).into_bytes()),
        identity_pem: None,
    };
    node.client_tls = Some(both.clone());
    cluster.form().await;
    let url = cluster.nodes[0].client_url();
    let only_second = ClientTls {
        ca_pem: Some(second.pem.clone().into_bytes()),
        identity_pem: None,
    };
    let client_with = |tls: &ClientTls| {
        Client::with_options(
            [url.as_str()],
            ClientOptions {
                tls: tls.clone(),
                ..ClientOptions::default()
            },
        )
        .unwrap()
    };
    assert!(
        client_with(&only_second).node_status().await.is_err(),
        "the second CA's certificate is not served yet"
    );

    // Writes go on throughout, over a kept-alive connection and over a new
    // connection (a new handshake) each time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for fresh in [false, true] {
        let (stop, done, both, url) = (stop.clone(), done.clone(), both.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let options = ClientOptions {
                tls: both,
                ..ClientOptions::default()
            };
            let kept = Client::with_options([url.as_str()], options.clone()).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let client = if fresh {
                    Client::with_options([url.as_str()], options.clone()).unwrap()
                } else {
                    kept.clone()
                };
                client
                    .put(
                        &format!("k/{fresh}/{i}"),
                        Bytes::from_static(b"v"),
                        Precondition::None,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("write {i} failed during the rotation: {e}"));
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let wait_for_writes = |at_least: u64| {
        let done = done.clone();
        async move {
            support::wait_for("writes to go on", async || {
                (done.load(Ordering::Relaxed) >= at_least).then_some(())
            })
            .await;
        }
    };
    wait_for_writes(20).await;

    // Replaced as a Secret's files are: each written aside, then renamed.
    let next = second.leaf("n1");
    let (new_cert, new_key) = next.write(dir.path(), "next");
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();

    let fresh_client = client_with(&only_second);
    support::wait_for("the new certificate to be served", async || {
        fresh_client.node_status().await.ok()
    })
    .await;
    let after = done.load(Ordering::Relaxed);
    wait_for_writes(after + 20).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("no write failed");
    }
}

/// Gives every node of `cluster` peer TLS with certificates from `ca`,
/// advertising its https:// peer URL.
fn with_peer_tls(cluster: &mut Cluster, dir: &Path, ca: &TestCa) {
    let ca_file = ca.write(dir, "peer-ca");
    for node in &mut cluster.nodes {
        let (cert, key) = ca
            .leaf(&node.name)
            .write(dir, &format!("{}-peer", node.name));
        for (flag, path) in [
            ("--peer-cert-file", &cert),
            ("--peer-key-file", &key),
            ("--peer-trusted-ca-file", &ca_file),
        ] {
            node.extra_args.push(flag.to_owned());
            node.extra_args.push(path.to_str().unwrap().to_owned());
        }
        node.advertise_peer = Some(format!("https://127.0.0.1:{}", node.peer_port));
    }
}

/// A request to a member's peer port as a stranger would make it: plain,
/// or over TLS trusting `ca` and presenting `identity`.
async fn knock(peer_port: u16, ca: &TestCa, identity: Option<&Leaf>) -> Result<u16, String> {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.pem.as_bytes()).unwrap());
    if let Some(leaf) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(&leaf.identity_pem()).unwrap());
    }
    let response = builder
        .build()
        .unwrap()
        .post(format!("https://127.0.0.1:{peer_port}/raft/v1/propose"))
        .body(vec![0u8; 16])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_tls_cluster_replicates_forwards_snapshots_and_refuses_peers_without_a_certificate()
{
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("peer CA");
    // A small snapshot threshold: the third member catches up from a
    // snapshot, sent over TLS too.
    let mut cluster = Cluster::new(3, &["--snapshot-threshold", "20"]);
    with_peer_tls(&mut cluster, dir.path(), &ca);
    cluster.start_all().await;
    cluster.nodes[0].client().bootstrap().await.unwrap();
    cluster.wait_for_leader(&[0]).await;
    cluster.join(1).await;
    for i in 0..60 {
        cluster.put(&format!("k{i}"), "v").await;
    }
    cluster.join(2).await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    // A write through a follower is forwarded to the leader over TLS.
    cluster.nodes[follower]
        .client()
        .put("forwarded", Bytes::from_static(b"yes"), Precondition::None)
        .await
        .unwrap();
    for node in &cluster.nodes {
        for (key, expected) in [("k0", "v"), ("forwarded", "yes")] {
            let value = node
                .client()
                .get(key, Consistency::Linearizable)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(value.bytes, expected.as_bytes(), "{key} on {}", node.name);
        }
    }
    assert!(
        cluster.nodes[2].status().await.snapshot_index.0 > 0,
        "the third member did not start from a snapshot"
    );

    // Strangers at the peer port: plain HTTP, TLS without a certificate,
    // and a certificate from another CA, are all refused at the handshake.
    let port = cluster.nodes[follower].peer_port;
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/raft/v1/propose"))
        .body(vec![0u8; 16])
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let no_cert = knock(port, &ca, None).await;
    assert!(
        no_cert.is_err(),
        "a peer without a certificate got {no_cert:?}"
    );
    let other = TestCa::new("other CA");
    let foreign = knock(port, &ca, Some(&other.leaf("intruder"))).await;
    assert!(foreign.is_err(), "a foreign certificate got {foreign:?}");
    // A certificate from the peer CA is a member's: it gets through to
    // the request's own checks.
    let member = knock(port, &ca, Some(&ca.leaf("n9"))).await;
    assert!(member.is_ok(), "{member:?}");

    let page = reqwest::get(format!("{}/metrics", cluster.nodes[follower].client_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: u64 = page
        .lines()
        .find_map(|line| line.strip_prefix("raftcfg_tls_handshake_failures_total{port=\"peer\"} "))
        .expect("a peer handshake failure count")
        .parse()
        .unwrap();
    assert!(failures >= 3, "{failures} peer handshake failures counted");

    // The cluster works on, and refuses a member that would talk plain
    // HTTP to it.
    cluster.put("after", "strangers").await;
    let mut request = cluster.nodes[2].add_request(raftcfg_client::wire::NodeId(99));
    request.peer_url = "http://127.0.0.1:1".to_owned();
    let error = cluster.client().add_member(&request).await.unwrap_err();
    assert!(error.to_string().contains("talk over TLS"), "{error}");
}

#[test]
fn peer_tls_that_cannot_work_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("peer CA");
    let (cert, key) = ca.leaf("n1").write(dir.path(), "n1");
    let ca_file = ca.write(dir.path(), "ca");
    let serve = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new(support::RAFTCFG)
            .args(["serve", "--name", "n1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client",
                "127.0.0.1:0",
                "--listen-peer",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = serve(&[
        "--peer-cert-file".as_ref(),
        cert.as_os_str(),
        "--peer-key-file".as_ref(),
        key.as_os_str(),
    ]);
    assert!(error.contains("--peer-trusted-ca-file"), "{error}");
    let error = serve(&[
        "--peer-cert-file".as_ref(),
        cert.as_os_str(),
        "--peer-key-file".as_ref(),
        key.as_os_str(),
        "--peer-trusted-ca-file".as_ref(),
        ca_file.as_os_str(),
        "--advertise-peer".as_ref(),
        "http://127.0.0.1:7380".as_ref(),
    ]);
    assert!(error.contains("advertise an https:// URL"), "{error}");
    let error = serve(&[
        "--advertise-peer".as_ref(),
        "https://127.0.0.1:7380".as_ref(),
    ]);
    assert!(error.contains("serves plain HTTP"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_certificates_rotated_to_a_new_ca_in_place_are_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = TestCa::new("old peer CA");
    let new = TestCa::new("new peer CA");
    let mut cluster = Cluster::new(3, &[]);
    with_peer_tls(&mut cluster, dir.path(), &old);
    cluster.form().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let restarted = (leader + 1) % 3;
    let rotate = |step: &str| {
        let ca_file = dir.path().join("peer-ca.crt");
        match step {
            "trust both" => std::fs::write(&ca_file, format!("{}\n{}", old.pem, new.pem)),
            "new leaves" => {
                for node in &cluster.nodes {
                    new.leaf(&node.name)
                        .write(dir.path(), &format!("{}-peer", node.name));
                }
                Ok(())
            }
            _ => std::fs::write(&ca_file, &new.pem),
        }
        .unwrap();
    };
    // Writes to the leader go on throughout; none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = cluster.nodes[leader].client();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client
                    .put(
                        "rotating",
                        Bytes::from(written.to_string()),
                        Precondition::None,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("write {written} failed: {e}"));
                written += 1;
            }
            written
        })
    };
    for step in ["trust both", "new leaves", "only the new CA"] {
        rotate(step);
        // Files are looked at again at most once a second.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    // The peer ports now take only the new CA's certificates...
    let port = cluster.nodes[leader].peer_port;
    assert!(knock(port, &new, Some(&new.leaf("n9"))).await.is_ok());
    assert!(knock(port, &new, Some(&old.leaf("n9"))).await.is_err());
    // ... and a member restarted now, which trusts only the new CA, is
    // dialled by the leader with the leader's new certificate, never
    // restarted itself.
    cluster.nodes[restarted].kill();
    cluster.nodes[restarted].start().await;
    cluster.put("after-rotation", "yes").await;
    let restarted_client = cluster.nodes[restarted].client();
    support::wait_for(
        "the restarted member to catch up over new streams",
        async || {
            restarted_client
                .get("after-rotation", Consistency::Serializable)
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
}
