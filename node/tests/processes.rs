//! Multi-process tests: real `raftcfg serve` processes on loopback ports,
//! driven through the HTTP API, killed with SIGKILL and restarted.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftcfg_client::http::{Consistency, Precondition};
use raftcfg_client::wire::{LogIndex, MemberRole, NodeId};
use support::patience::patience;
use support::{Cluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_follower_is_read_linearizably_from_another_follower() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let written = cluster.nodes[followers[0]]
        .client()
        .put(
            "app/db/url",
            Bytes::from_static(b"postgres://db"),
            Precondition::None,
        )
        .await
        .unwrap();
    let value = cluster.nodes[followers[1]]
        .client()
        .get("app/db/url", Consistency::Linearizable)
        .await
        .unwrap()
        .expect("the write is visible");
    assert_eq!(&value.bytes[..], b"postgres://db");
    assert_eq!(value.mod_revision, written.revision);

    // The follower handed the write on: not a failed proposal, there or
    // on the leader, which counts it as proposed.
    let scrape = |i: usize| {
        let url = format!("{}/metrics", cluster.nodes[i].client_url());
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let value_of = |page: &str, series: &str| -> Option<u64> {
        page.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let follower_page = scrape(followers[0]).await;
    assert_eq!(
        value_of(&follower_page, "raftcfg_proposals_failed_total"),
        Some(0),
        "{follower_page}"
    );
    let leader_page = scrape(leader).await;
    assert_eq!(
        value_of(&leader_page, "raftcfg_proposals_failed_total"),
        Some(0),
        "{leader_page}"
    );
    assert!(value_of(&leader_page, "raftcfg_proposals_total") >= Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_promptly_and_loses_no_acknowledged_write() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let key = format!("k{i}");
        cluster.put(&key, &format!("v{i}")).await;
        acknowledged.push(key);
    }
    let old_leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    cluster.nodes[old_leader].kill();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    let new_leader = cluster.wait_for_leader(&survivors).await;
    let failover = killed_at.elapsed();
    println!("new leader after {failover:?}");
    // At default timings (election timeout 1–2 s) a new leader is in place
    // within 3 s on an idle machine; a slower one gets proportionally more.
    let allowed = patience(Duration::from_secs(3));
    assert!(
        failover <= allowed,
        "a new leader took {failover:?} at default timings (allowed {allowed:?})"
    );
    for (i, key) in acknowledged.iter().enumerate() {
        assert_eq!(
            cluster.get_via(new_leader, key).await.as_deref(),
            Some(format!("v{i}").as_str())
        );
    }
    // The killed node comes back and catches up with what it missed.
    cluster.put("after", "failover").await;
    cluster.nodes[old_leader].start().await;
    let node = &cluster.nodes[old_leader];
    wait_for("the restarted node to catch up", async || {
        let value = node
            .client()
            .get("after", Consistency::Serializable)
            .await
            .ok()??;
        (&value.bytes[..] == b"failover").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_behind_the_compaction_point_catches_up_by_snapshot_and_is_promoted() {
    let tuning = ["--snapshot-threshold", "20", "--compaction-tail", "5"];
    let mut cluster = Cluster::new(3, &tuning);
    cluster.form().await;
    for i in 0..100 {
        cluster.put(&format!("k{i}"), "v").await;
    }
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let status = cluster.nodes[leader].status().await;
    assert!(
        status.snapshot_index > LogIndex(1),
        "the log was compacted: {status:?}"
    );

    let fourth = cluster.add_node(&tuning);
    cluster.nodes[fourth].start().await;
    cluster.join(fourth).await;
    let members = cluster.client().members().await.unwrap();
    assert_eq!(members.members.len(), 4);
    assert!(members.members.iter().all(|m| m.role == MemberRole::Voter));
    let metrics = reqwest::get(format!("{}/metrics", cluster.nodes[fourth].client_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // At least one: the leader may take a newer snapshot while the learner
    // installs the first, and compact past it, so the learner gets another.
    let received: u64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("raftcfg_snapshots_received_total ")?
                .parse()
                .ok()
        })
        .expect("the snapshot counter is in the metrics");
    assert!(
        received >= 1,
        "the new member was sent a snapshot:\n{metrics}"
    );
    assert_eq!(cluster.get_via(fourth, "k99").await.as_deref(), Some("v"));
    // Every member applied the same state.
    wait_for("equal digests", async || {
        let mut digests = Vec::new();
        for node in &cluster.nodes {
            let status = node.status_with_digest().await;
            digests.push((status.applied, status.state_digest));
        }
        digests.windows(2).all(|w| w[0] == w[1]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_follower_and_then_the_leader_keeps_the_cluster_writable() {
    let mut cluster = Cluster::new(4, &[]);
    cluster.form().await;
    let client = cluster.client();
    let leader = cluster.wait_for_leader(&[0, 1, 2, 3]).await;
    let follower = (0..4).find(|i| *i != leader).unwrap();
    let follower_id = cluster.nodes[follower].status().await.node_id;
    client.remove_member(follower_id).await.unwrap();
    cluster.nodes[follower].stop();

    let leader_id = cluster.nodes[leader].status().await.node_id;
    client.remove_member(leader_id).await.unwrap();
    let rest: Vec<usize> = (0..4).filter(|i| *i != leader && *i != follower).collect();
    let new_leader = cluster.wait_for_leader(&rest).await;
    cluster.nodes[leader].stop();

    let members = cluster.nodes[new_leader].client().members().await.unwrap();
    let ids: Vec<NodeId> = members.members.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 2, "{members:?}");
    assert!(!ids.contains(&leader_id) && !ids.contains(&follower_id));
    let revision = cluster.nodes[rest[0]]
        .client()
        .put("still", Bytes::from_static(b"writable"), Precondition::None)
        .await
        .unwrap()
        .revision;
    assert!(revision > 0);
    assert_eq!(
        cluster.get_via(rest[1], "still").await.as_deref(),
        Some("writable")
    );
}

/// What a removed member answers: the status and error code of `path`.
async fn answer(client_url: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{client_url}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_learns_it_turns_unready_and_refuses_every_request() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    cluster.put("before", "removal").await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let removed = (0..3).find(|i| *i != leader).unwrap();
    let removed_id = cluster.nodes[removed].status().await.node_id;
    cluster.client().remove_member(removed_id).await.unwrap();

    // The leader no longer talks to it; it learns from the peers it calls.
    let node = &cluster.nodes[removed];
    wait_for("the removed member to know it", async || {
        (node.status().await.role == "removed").then_some(())
    })
    .await;
    let url = node.client_url();
    for path in [
        "/readyz",
        "/v1/kv/before",
        "/v1/cluster/members",
        "/v1/kv?prefix=",
    ] {
        assert_eq!(
            answer(&url, path).await,
            (410, "removed".to_owned()),
            "{path}"
        );
    }
    let refused = node
        .client()
        .put("k", Bytes::from_static(b"v"), Precondition::None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("removed"));
    assert!(
        node.log_tail().contains("removed from its cluster"),
        "{}",
        node.log_tail()
    );

    // It stays removed across a restart, and nobody counts it.
    cluster.nodes[removed].stop();
    cluster.nodes[removed].start().await;
    assert_eq!(cluster.nodes[removed].status().await.role, "removed");
    assert_eq!(answer(&url, "/readyz").await, (410, "removed".to_owned()));
    let rest: Vec<usize> = (0..3).filter(|i| *i != removed).collect();
    let members = cluster.nodes[rest[0]].client().members().await.unwrap();
    assert!(
        members.members.iter().all(|m| m.id != removed_id),
        "{members:?}"
    );
    let revision = cluster.nodes[rest[1]]
        .client()
        .put("after", Bytes::from_static(b"removal"), Precondition::None)
        .await
        .unwrap()
        .revision;
    assert!(revision > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_a_wiped_data_directory_is_not_taken_for_the_old_member() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    cluster.put("before", "wipe").await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let old = cluster.nodes[victim].status().await;
    cluster.nodes[victim].kill();
    std::fs::remove_dir_all(&cluster.nodes[victim].data_dir).unwrap();
    cluster.nodes[victim].start().await;

    let fresh = cluster.nodes[victim].status().await;
    assert_ne!(fresh.node_id, old.node_id, "a wiped node gets a new id");
    cluster.put("after", "wipe").await;
    // Same name and address, but the leader's messages are for the old id:
    // the new node stays outside the cluster.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = cluster.nodes[victim].status().await;
    assert_eq!(fresh.cluster_id, None, "{fresh:?}");
    assert_eq!(fresh.applied, LogIndex(0));
    let refused = cluster.nodes[victim]
        .client()
        .get("before", Consistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("not_initialized"));
    let members = cluster.client().members().await.unwrap();
    assert!(members.members.iter().any(|m| m.id == old.node_id));
    assert!(members.members.iter().all(|m| m.id != fresh.node_id));
    // The old member's replication does not advance.
    let leader_view = cluster.nodes[leader].client().members().await.unwrap();
    let old_entry = leader_view
        .members
        .iter()
        .find(|m| m.id == old.node_id)
        .unwrap();
    assert_eq!(old_entry.healthy, Some(false), "{old_entry:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_saved_with_the_cli_restores_into_a_new_single_node_cluster() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    for i in 0..20 {
        cluster.put(&format!("app/k{i}"), &format!("v{i}")).await;
    }
    let backup = cluster.dir.path().join("backup.snap");
    let endpoints = cluster.nodes[1].client_url();
    let raftcfg = |args: &[&str]| {
        let output = std::process::Command::new(support::RAFTCFG)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "raftcfg {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    raftcfg(&[
        "snapshot",
        "save",
        backup.to_str().unwrap(),
        "--endpoints",
        &endpoints,
    ]);
    let source = cluster.nodes[0].status().await;

    let restored = cluster.add_node(&[]);
    let data_dir = cluster.nodes[restored].data_dir.clone();
    let name = cluster.nodes[restored].name.clone();
    raftcfg(&[
        "snapshot",
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--name",
        &name,
    ]);
    cluster.nodes[restored].start().await;
    cluster.wait_for_leader(&[restored]).await;
    let status = cluster.nodes[restored].status().await;
    assert_ne!(status.cluster_id, source.cluster_id, "a new cluster");
    assert_eq!(
        cluster.get_via(restored, "app/k19").await.as_deref(),
        Some("v19")
    );
    // Restoring over existing data is refused.
    let output = std::process::Command::new(support::RAFTCFG)
        .args([
            "snapshot",
            "restore",
            backup.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(&data_dir)
        .args(["--name", &name])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_every_change_in_order_from_a_past_revision() {
    use futures::StreamExt as _;
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let first = cluster.put("app/a", "1").await;
    cluster.put("other/x", "ignored").await;
    cluster.put("app/b", "2").await;
    cluster
        .client()
        .delete("app/a", Precondition::None)
        .await
        .unwrap();
    // Watch through a follower, from before the first write.
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let mut events = cluster.nodes[follower].client().watch("app/", Some(first));
    let mut seen = Vec::new();
    while seen.len() < 4 {
        if seen.len() == 3 {
            cluster.put("app/c", "3").await;
        }
        let event = tokio::time::timeout(patience(Duration::from_secs(10)), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("a valid event");
        seen.push((
            event.key.clone(),
            format!("{:?}", event.kind),
            event.revision,
        ));
    }
    let keys: Vec<&str> = seen.iter().map(|(key, _, _)| key.as_str()).collect();
    assert_eq!(keys, ["app/a", "app/b", "app/a", "app/c"]);
    assert_eq!(seen[2].1, "Delete");
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_requests_get_503_with_retry_after() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    cluster.put("k", "v").await;
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    // Node 0 (the founder) steps down once it hears from no quorum.
    let node = &cluster.nodes[0];
    wait_for("the lone node to give up leadership", async || {
        (node.status().await.role != "leader").then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    for request in [
        http.put(format!("{}/v1/kv/k", node.client_url())).body("w"),
        http.get(format!("{}/v1/kv/k", node.client_url())),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: raftcfg_client::wire::ErrorBody = response.json().await.unwrap();
        assert!(
            ["no_leader", "timeout", "unavailable"].contains(&body.error.code.as_str()),
            "{body:?}"
        );
    }
    // A serializable read is still served from the local state.
    let value = node
        .client()
        .get("k", Consistency::Serializable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&value.bytes[..], b"v");
}

/// `raftcfg ARGS`: whether it succeeded, its stdout and its stderr.
fn raftcfg(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(support::RAFTCFG)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_bootstraps_adds_and_updates_members_and_refuses_duplicates() {
    let mut cluster = Cluster::new(2, &[]);
    cluster.start_all().await;
    let first = cluster.nodes[0].client_url();
    let second = &cluster.nodes[1];
    let id = second.status().await.node_id.0.to_string();

    let (ok, stdout, stderr) = raftcfg(&["bootstrap", "--endpoints", &first]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("bootstrapped cluster "), "{stdout}");
    let (ok, _, stderr) = raftcfg(&["bootstrap", "--endpoints", &first]);
    assert!(!ok && stderr.contains("already"), "{stderr}");
    cluster.wait_for_leader(&[0]).await;

    let add = |name: &str, peer: &str| {
        raftcfg(&[
            "member",
            "add",
            "--endpoints",
            &first,
            "--node-id",
            &id,
            "--name",
            name,
            "--peer-url",
            peer,
            "--client-url",
            &second.client_url(),
        ])
    };
    let (ok, stdout, stderr) = add("n2", &second.peer_url());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("as a learner"), "{stdout}");
    let (ok, _, stderr) = add("n2", &second.peer_url());
    assert!(!ok && stderr.contains("already a member"), "{stderr}");

    // New URLs for the member, then another member's: refused.
    let moved_client = "http://127.0.0.1:9";
    let (ok, stdout, stderr) = raftcfg(&[
        "member",
        "update",
        &id,
        "--endpoints",
        &first,
        "--peer-url",
        &second.peer_url(),
        "--client-url",
        moved_client,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(moved_client), "{stdout}");
    let (ok, stdout, _) = raftcfg(&["member", "list", "--endpoints", &first]);
    assert!(ok && stdout.contains(moved_client), "{stdout}");
    let (ok, _, stderr) = raftcfg(&[
        "member",
        "update",
        &id,
        "--endpoints",
        &first,
        "--peer-url",
        &cluster.nodes[0].peer_url(),
        "--client-url",
        moved_client,
    ]);
    assert!(!ok && stderr.contains("already member"), "{stderr}");
    let (ok, _, stderr) = raftcfg(&[
        "member",
        "update",
        "12345",
        "--endpoints",
        &first,
        "--peer-url",
        "http://127.0.0.1:8",
        "--client-url",
        "http://127.0.0.1:7",
    ]);
    assert!(!ok && stderr.contains("not a member"), "{stderr}");
}

/// Parses any JSON value and fails on an object with a key twice (which
/// `serde_json::Value` would silently merge).
struct NoKeyTwice;

impl<'de> serde::Deserialize<'de> for NoKeyTwice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoKeyTwiceVisitor)
    }
}

struct NoKeyTwiceVisitor;

impl<'de> serde::de::Visitor<'de> for NoKeyTwiceVisitor {
    type Value = NoKeyTwice;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoKeyTwice, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key} is there twice"
                )));
            }
            map.next_value::<NoKeyTwice>()?;
        }
        Ok(NoKeyTwice)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoKeyTwice, A::Error> {
        while seq.next_element::<NoKeyTwice>()?.is_some() {}
        Ok(NoKeyTwice)
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }

    fn visit_i64<E>(self, _: i64) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }

    fn visit_u64<E>(self, _: u64) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }

    fn visit_f64<E>(self, _: f64) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }

    fn visit_str<E>(self, _: &str) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }

    fn visit_unit<E>(self) -> Result<NoKeyTwice, E> {
        Ok(NoKeyTwice)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_no_key_twice_across_terms_and_failures() {
    let mut cluster = Cluster::new(2, &["--log-format", "json"]);
    cluster.form().await;
    // New terms: each restart of both members elects again.
    for _ in 0..2 {
        for node in &mut cluster.nodes {
            node.kill();
        }
        cluster.start_all().await;
        cluster.wait_for_leader(&[0, 1]).await;
    }
    cluster.put("k", "v").await;
    // A request that fails on the server (no quorum: 503) is logged.
    cluster.nodes[1].kill();
    let failed = cluster.nodes[0]
        .client()
        .get("k", Consistency::Linearizable)
        .await;
    assert!(failed.is_err(), "{failed:?}");

    let log = std::fs::read_to_string(cluster.nodes[0].data_dir.with_extension("log")).unwrap();
    let mut messages = Vec::new();
    for line in log.lines() {
        serde_json::from_str::<NoKeyTwice>(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        messages.push(
            value["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for expected in ["serving", "member of the cluster", "request failed"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "no {expected:?} line in\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_is_open_to_its_user_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut cluster = Cluster::new(1, &[]);
    cluster.start_all().await;
    let mode = std::fs::metadata(&cluster.nodes[0].data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
