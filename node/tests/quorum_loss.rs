//! Recovery from a quorum lost for good, by hand: `raftcfg member
//! force-new-cluster` on the one voter left of three, whose two peers are
//! gone with their data. It keeps every acknowledged write (it led, so it
//! held them all), serves alone under the same cluster id, and takes the
//! others back as new nodes.

mod support;

use std::process::Output;

use raftcfg_client::wire::NodeId;
use support::{Cluster, wait_for};

/// Runs `raftcfg member force-new-cluster` against `endpoint`.
fn force_new_cluster(endpoint: &str, confirm: bool) -> Output {
    let mut command = std::process::Command::new(support::RAFTCFG);
    command.args(["member", "force-new-cluster", "--endpoints", endpoint]);
    if confirm {
        command.arg("--confirm-quorum-lost");
    }
    command.output().expect("run raftcfg")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivor_of_a_lost_quorum_is_forced_into_a_new_cluster_and_keeps_its_writes() {
    let mut cluster = Cluster::new(3, &[]);
    cluster.form().await;
    let survivor = cluster.wait_for_leader(&[0, 1, 2]).await;
    let lost: Vec<usize> = (0..3).filter(|i| *i != survivor).collect();
    for i in 0..50 {
        cluster.put(&format!("app/k{i}"), &format!("v{i}")).await;
    }
    let url = cluster.nodes[survivor].client_url();
    let before = cluster.nodes[survivor].status().await;

    // While it leads a quorum, the node refuses.
    let output = force_new_cluster(&url, true);
    assert!(!output.status.success(), "forced while leading a quorum");
    assert!(
        text(&output.stderr).contains("has a quorum"),
        "{}",
        text(&output.stderr)
    );

    // Two of three are gone with their data.
    for &i in &lost {
        cluster.nodes[i].kill();
        std::fs::remove_dir_all(&cluster.nodes[i].data_dir).expect("wipe a data directory");
    }
    wait_for("the survivor to know no leader", async || {
        let status = cluster.nodes[survivor].status().await;
        status.leader_id.is_none().then_some(())
    })
    .await;

    // Without the confirmation nothing is done.
    let output = force_new_cluster(&url, false);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("--confirm-quorum-lost"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(cluster.nodes[survivor].status().await.leader_id, None);

    let output = force_new_cluster(&url, true);
    assert!(
        output.status.success(),
        "force-new-cluster failed: {}\n{}",
        text(&output.stderr),
        cluster.log_tails()
    );
    let said = text(&output.stdout);
    let cluster_id = before.cluster_id.expect("a cluster");
    assert!(
        said.contains(&format!("is now the only voter of cluster {cluster_id}")),
        "{said}"
    );
    assert!(said.contains("kept every entry up to log index"), "{said}");

    cluster.wait_for_leader(&[survivor]).await;
    let after = cluster.nodes[survivor].status().await;
    assert_eq!(after.cluster_id, Some(cluster_id), "the same cluster");
    assert!(after.term > before.term);
    for i in 0..50 {
        assert_eq!(
            cluster
                .get_via(survivor, &format!("app/k{i}"))
                .await
                .as_deref(),
            Some(format!("v{i}").as_str()),
            "acknowledged write app/k{i}"
        );
    }
    let members = cluster.nodes[survivor].client().members().await.unwrap();
    let ids: Vec<NodeId> = members.members.iter().map(|m| m.id).collect();
    assert_eq!(ids, [after.node_id], "the survivor is the only member");
    cluster.put("app/after", "recovered").await;

    // A lost member comes back empty and joins as a new node.
    let back = lost[0];
    cluster.nodes[back].start().await;
    cluster.join(back).await;
    assert_eq!(
        cluster.get_via(back, "app/k49").await.as_deref(),
        Some("v49")
    );
    assert_eq!(
        cluster.get_via(back, "app/after").await.as_deref(),
        Some("recovered")
    );
}
