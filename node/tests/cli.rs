//! The `raftcfg` client commands against real `raftcfg serve` processes,
//! as scripts use them: `-o json`, `--timeout` with a paused endpoint,
//! `status`'s exit code, `member list` through a follower, and the
//! one-line errors for the usual mistakes.

mod support;

use serde_json::Value;
use support::{Cluster, RAFTCFG};

/// `raftcfg ARGS`: whether it succeeded, its stdout and its stderr.
fn raftcfg(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(RAFTCFG)
        .args(args)
        .env_remove("RAFTCFG_ENDPOINTS")
        .env_remove("RAFTCFG_TIMEOUT")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `raftcfg ARGS` that must succeed; its stdout as JSON.
fn json(args: &[&str]) -> Value {
    let (ok, stdout, stderr) = raftcfg(args);
    assert!(ok, "raftcfg {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Asserts that stderr is exactly one line holding each of `needles`.
fn one_line_error(stderr: &str, needles: &[&str]) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("raftcfg: error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_json_serves_scripts_for_get_ls_member_list_and_status() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let endpoint = cluster.nodes[follower].client_url();
    let revision = cluster.put("app/db", "postgres://a").await;
    cluster.put("app/token", "t").await;

    let got = json(&["get", "app/db", "-o", "json", "--endpoints", &endpoint]);
    assert_eq!(got["key"], "app/db");
    assert_eq!(got["value_base64"], "cG9zdGdyZXM6Ly9h");
    assert_eq!(got["mod_revision"], revision);
    assert!(got["revision"].as_u64().unwrap() > revision);

    let listed = json(&["ls", "app/", "--output", "json", "--endpoints", &endpoint]);
    let keys: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["app/db", "app/token"]);
    assert_eq!(listed["more"], false);
    let first = json(&[
        "ls",
        "app/",
        "-o",
        "json",
        "--limit",
        "1",
        "--endpoints",
        &endpoint,
    ]);
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert_eq!(first["more"], true);

    // Through a follower, health is the leader's view.
    let members = json(&["member", "list", "-o", "json", "--endpoints", &endpoint]);
    let members = members["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for (member, node) in members.iter().zip(&cluster.nodes) {
        assert_eq!(member["healthy"], true, "{member}");
        let id = node.status().await.node_id.0;
        // The id read as a JSON number (a double) is exact.
        let listed = members
            .iter()
            .find(|m| m["name"] == node.name.as_str())
            .unwrap();
        assert_eq!(listed["id"].as_f64().unwrap() as u64, id);
        assert!(member["match_index"].as_u64().is_some(), "{member}");
    }

    let status = json(&["status", "-o", "json", "--endpoints", &endpoint]);
    assert_eq!(status["problems"].as_array().unwrap().len(), 0, "{status}");
    assert_eq!(status["members"].as_array().unwrap().len(), 3);
    let leader_id = cluster.nodes[leader].status().await.node_id.0;
    assert_eq!(status["leader_id"].as_u64(), Some(leader_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fails_when_a_voter_is_unreachable() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    let endpoint = cluster.nodes[leader].client_url();
    let (ok, _, stderr) = raftcfg(&["status", "--endpoints", &endpoint]);
    assert!(ok, "{stderr}");

    let down = (leader + 1) % 3;
    cluster.nodes[down].kill();

    let (ok, stdout, stderr) = raftcfg(&["status", "--endpoints", &endpoint]);
    assert!(!ok, "status succeeded with a voter down: {stdout}");
    let name = &cluster.nodes[down].name;
    assert!(stdout.contains("unreachable"), "{stdout}");
    assert!(
        stderr.contains(&format!("{name} (id ")) && stderr.contains("is unreachable"),
        "{stderr}"
    );
    assert!(
        stderr.contains("raftcfg: error: the cluster has a problem: "),
        "{stderr}"
    );
    let report = {
        let (ok, stdout, _) = raftcfg(&["status", "-o", "json", "--endpoints", &endpoint]);
        assert!(!ok);
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_skips_a_paused_endpoint_quickly_and_a_timed_out_write_is_unknown() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let leader = cluster.wait_for_leader(&[0, 1, 2]).await;
    cluster.put("k", "v").await;
    let paused = (leader + 1) % 3;
    let endpoints = format!(
        "{},{}",
        cluster.nodes[paused].client_url(),
        cluster.nodes[leader].client_url()
    );
    cluster.nodes[paused].pause();

    // A read gives up on the paused node after the failover timeout, well
    // before the (long) request timeout.
    let started = std::time::Instant::now();
    let (ok, stdout, stderr) = raftcfg(&[
        "get",
        "k",
        "--serializable",
        "--timeout",
        "10m",
        "--endpoints",
        &endpoints,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "v");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the read waited {:?}",
        started.elapsed()
    );

    // A write is never moved on: its outcome is unknown.
    let (ok, _, stderr) = raftcfg(&[
        "put",
        "k",
        "w",
        "--timeout",
        "500ms",
        "--endpoints",
        &endpoints,
    ]);
    assert!(!ok);
    one_line_error(&stderr, &["may or may not have taken effect"]);
    // The paused node cannot have passed it on: had the command moved on
    // to the leader, the value would be new.
    let value = cluster.get_via(leader, "k").await;
    assert_eq!(value.as_deref(), Some("v"), "the write was sent again");
    cluster.nodes[paused].resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usual_mistakes_get_one_line_that_says_what_to_do() {
    let mut cluster = Cluster::new(1, &[]);
    cluster.form().await;
    let node = &cluster.nodes[0];

    let bare = format!("127.0.0.1:{}", node.client_port);
    let (ok, _, stderr) = raftcfg(&["get", "k", "--endpoints", &bare]);
    assert!(!ok);
    one_line_error(&stderr, &[&format!("use http://{bare}")]);

    let peer = node.peer_url();
    let (ok, _, stderr) = raftcfg(&["get", "k", "--endpoints", &peer]);
    assert!(!ok);
    one_line_error(&stderr, &["peer port", "client port"]);

    let (ok, _, stderr) = raftcfg(&["get"]);
    assert!(!ok);
    one_line_error(&stderr, &["<KEY>", "--help"]);
    let (ok, _, stderr) = raftcfg(&["get", "k", "--timeout", "soon"]);
    assert!(!ok);
    one_line_error(&stderr, &["'soon' is not a duration"]);

    // A second process on the same data directory.
    let data_dir = node.data_dir.to_str().unwrap();
    let (ok, _, stderr) = raftcfg(&[
        "serve",
        "--name",
        &node.name,
        "--data-dir",
        data_dir,
        "--listen-client",
        "127.0.0.1:0",
        "--listen-peer",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    let line = stderr
        .lines()
        .find(|line| line.starts_with("raftcfg: error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(line.contains("another raftcfg is using"), "{line}");
    assert_eq!(line.matches(data_dir).count(), 1, "{line}");

    let (ok, _, stderr) = raftcfg(&[
        "serve",
        "--name",
        "x",
        "--data-dir",
        data_dir,
        "--listen-client",
        "127.0.0.1:0",
        "--listen-peer",
        "127.0.0.1:0",
        "--advertise-peer",
        "https://127.0.0.1:7380",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--advertise-peer https://127.0.0.1:7380 is https://")
            && stderr.contains("TLS is not configured"),
        "{stderr}"
    );

    let scratch = tempfile::tempdir().unwrap();
    let junk = scratch.path().join("notes.txt");
    std::fs::write(&junk, "shopping list\n").unwrap();
    let restored = scratch.path().join("restored");
    let (ok, _, stderr) = raftcfg(&[
        "snapshot",
        "restore",
        junk.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--name",
        "r1",
    ]);
    assert!(!ok);
    one_line_error(&stderr, &["is not a raftcfg backup"]);
    assert!(!restored.exists(), "a failed restore left a directory");
}
