//! `raftcfg dev`: a three-node cluster on 127.0.0.1 in this process, data
//! under `./data/dev`. The first run bootstraps node 1 and joins the other
//! two (learner, then voter); later runs resume the same cluster, and a run
//! interrupted half-way finishes the joins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use raftcfg_raft::{MembershipChange, MembershipError, NodeId, ProposalError};

use super::serve::{LogFormat, init_logging, wait_for_signal};
use crate::driver::{DriverError, NodeHandle};
use crate::server::{self, NodeConfig, RunningNode};

/// How long forming (or finding) the cluster may take.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `raftcfg dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the three nodes keep their data (one directory each).
    #[arg(long, env = "RAFTCFG_DEV_DATA_DIR", default_value = "data/dev")]
    pub data_dir: PathBuf,
    /// Node i (1..=3) serves clients on BASE+100·(i−1) and peers on the
    /// port after it: 7379/7380, 7479/7480, 7579/7580 by default.
    #[arg(long, default_value_t = 7379, value_parser = clap::value_parser!(u16).range(1024..=65_000))]
    pub base_port: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runs the dev cluster until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let mut nodes = Vec::new();
    for i in 0..3u16 {
        let name = format!("dev-{}", i + 1);
        let client_port = args.base_port + 100 * i;
        let mut config = NodeConfig::local(&name, args.data_dir.join(&name));
        // Three nodes of a playground on one disk: no log files made at
        // start (`raftcfg serve --wal-file-bytes`).
        config.db.wal_file_bytes = 0;
        config.listen_client = SocketAddr::from(([127, 0, 0, 1], client_port));
        config.listen_peer = SocketAddr::from(([127, 0, 0, 1], client_port + 1));
        let node = server::start(config)
            .await
            .with_context(|| format!("cannot start {name}"))?;
        nodes.push(node);
    }
    let formed = tokio::time::timeout(FORM_TIMEOUT, form(&nodes)).await;
    match formed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            stop(nodes).await;
            return Err(e);
        }
        Err(_) => {
            stop(nodes).await;
            anyhow::bail!(
                "the dev cluster did not form within {}s; see the log above",
                FORM_TIMEOUT.as_secs()
            );
        }
    }
    print_banner(&nodes);
    let signal = wait_for_signal().await;
    println!("raftcfg dev: stopping the three nodes");
    stop(nodes).await;
    signal.context("cannot listen for signals")
}

async fn stop(nodes: Vec<RunningNode>) {
    for node in nodes {
        if let Err(e) = node.shutdown().await {
            eprintln!("raftcfg dev: a node stopped with an error: {e:#}");
        }
    }
}

/// Bootstraps node 1 if no node is in a cluster, removes members whose
/// data directory is gone (so a replaced node does not make four), then
/// makes every node a voter, one at a time.
async fn form(nodes: &[RunningNode]) -> anyhow::Result<()> {
    if nodes.iter().all(|node| !node.node.view().initialized()) {
        let cluster = nodes[0].node.bootstrap().await?;
        println!("raftcfg dev: bootstrapped cluster {cluster} on dev-1");
    }
    remove_lost(nodes).await?;
    for node in nodes {
        let id = node.node.view().identity.node_id;
        loop {
            let leader = leader(nodes).await;
            let membership = leader.view().status.membership;
            let change = if membership.is_voter(id) {
                break;
            } else if membership.is_learner(id) {
                MembershipChange::PromoteLearner(id)
            } else {
                MembershipChange::AddLearner(id)
            };
            let address = node.address.clone();
            match leader.change_membership(change, Some(address)).await {
                Ok(_) => {}
                // The learner is catching up, the leader is settling in, or
                // the view we read predates the last change: look again.
                Err(DriverError::Refused(
                    ProposalError::LearnerNotCaughtUp { .. }
                    | ProposalError::LeaderNotReady
                    | ProposalError::MembershipChangeInProgress
                    | ProposalError::Membership(
                        MembershipError::AlreadyMember(_) | MembershipError::NotALearner(_),
                    ),
                ))
                | Err(DriverError::NotLeader { .. } | DriverError::Lost | DriverError::Unknown) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("cannot join a dev node"),
            }
        }
    }
    Ok(())
}

/// Removes, one at a time, every member that is none of `nodes`: one whose
/// data directory was deleted (its node came back under a new id).
async fn remove_lost(nodes: &[RunningNode]) -> anyhow::Result<()> {
    let ours: Vec<NodeId> = nodes
        .iter()
        .map(|n| n.node.view().identity.node_id)
        .collect();
    loop {
        let leader = leader(nodes).await;
        let membership = leader.view().status.membership;
        let Some(lost) = membership.members().find(|id| !ours.contains(id)) else {
            return Ok(());
        };
        match leader
            .change_membership(MembershipChange::Remove(lost), None)
            .await
        {
            Ok(_) => println!("raftcfg dev: removed member {lost}, whose data directory is gone"),
            Err(DriverError::Refused(
                ProposalError::LeaderNotReady
                | ProposalError::MembershipChangeInProgress
                | ProposalError::Membership(MembershipError::NotAMember(_)),
            ))
            | Err(DriverError::NotLeader { .. } | DriverError::Lost | DriverError::Unknown) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).context("cannot remove a lost dev node"),
        }
    }
}

/// The handle of the node that leads, once one does.
async fn leader(nodes: &[RunningNode]) -> NodeHandle {
    let started = Instant::now();
    loop {
        if let Some(node) = nodes.iter().find(|node| node.node.view().is_leader()) {
            return node.node.clone();
        }
        if started.elapsed() > Duration::from_secs(5) {
            tracing::info!("waiting for a leader");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_banner(nodes: &[RunningNode]) {
    let endpoints: Vec<String> = nodes.iter().map(RunningNode::client_url).collect();
    println!("raftcfg dev: 3-node cluster ready");
    for node in nodes {
        let view = node.node.view();
        println!(
            "  {:<6} id {:<20} client {}  peer {}",
            view.identity.name,
            NodeId::get(view.identity.node_id),
            node.address.client_url,
            node.address.peer_url
        );
    }
    let all = endpoints.join(",");
    println!("try:");
    println!("  export RAFTCFG_ENDPOINTS={all}");
    println!("  raftcfg put app/db/url postgres://db:5432");
    println!("  raftcfg get app/db/url");
    println!("  raftcfg ls app/");
    println!("  raftcfg watch app/");
    println!("  raftcfg status");
    println!(
        "  curl -X PUT --data-binary hello {}/v1/kv/greeting",
        endpoints[0]
    );
    println!("Ctrl-C stops all three; `raftcfg dev` again resumes with the same data.");
}
