//! `raftcfg status`: every member's Raft progress as the member itself
//! reports it, and what is wrong with the cluster. It exits non-zero when
//! something is: no leader, a voter that cannot be reached, answers as
//! another node, belongs to another cluster (or none) or says it was
//! removed, or members holding different states at the same applied
//! index. The same about a learner is a warning only (a learner being
//! added is often still starting).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use raftcfg_client::http::{Client, ClientError};
use raftcfg_client::wire::{
    ClusterId, EntryCount, LogIndex, Member, MemberList, MemberRole, NodeId, NodeStatus,
};
use serde::Serialize;

use super::client_commands::EndpointArgs;
use super::output::{OutputArgs, or_dash, print_json, role_name, table};

/// The longest `status` waits for each node.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// How many hex characters of a state digest the table shows.
const DIGEST_CHARS: usize = 12;

/// `raftcfg status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `raftcfg status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = args
        .endpoints
        .client_within(args.endpoints.timeout.min(STATUS_TIMEOUT))?;
    let list = client.members_from_leader().await?;
    let report = Report::gather(&client, &list).await;
    if args.output.json() {
        print_json(&report)?;
    } else {
        print!("{}", status_table(&report.members));
        for line in report.warnings.iter().chain(&report.problems) {
            eprintln!("{line}");
        }
    }
    match report.problems.len() {
        0 => Ok(()),
        1 => anyhow::bail!("the cluster has a problem: {}", report.problems[0]),
        n => anyhow::bail!("the cluster has {n} problems (see above)"),
    }
}

/// What `status` found: one row per member, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Report {
    /// The leader the member list names.
    leader_id: Option<NodeId>,
    /// The cluster the leader (or else most members) belongs to.
    cluster_id: Option<ClusterId>,
    members: Vec<StatusRow>,
    /// Reasons to exit non-zero.
    problems: Vec<String>,
    /// Worth knowing, not failing for.
    warnings: Vec<String>,
}

impl Report {
    /// Asks every listed member for its status and judges the answers.
    async fn gather(client: &Client, list: &MemberList) -> Self {
        let statuses = futures::future::join_all(
            list.members
                .iter()
                .map(|member| client.node_status_with_digest_of(&member.client_url)),
        )
        .await;
        let rows = list
            .members
            .iter()
            .zip(statuses)
            .map(|(member, status)| StatusRow::new(member, status))
            .collect();
        Self::judge(list.leader_id, rows)
    }

    /// The report on `rows`, whose list named `leader_id` as leader.
    fn judge(leader_id: Option<NodeId>, mut rows: Vec<StatusRow>) -> Self {
        let lags = lags_of(&rows);
        for (row, lag) in rows.iter_mut().zip(lags) {
            row.lag = lag;
        }
        let cluster_id = cluster_of(&rows);
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        if leader_id.is_none() {
            problems.push("the cluster has no leader (an election, or no quorum)".to_owned());
        }
        for row in &rows {
            let Some(finding) = row.finding(cluster_id) else {
                continue;
            };
            match row.role {
                MemberRole::Voter => problems.push(finding),
                MemberRole::Learner => warnings.push(format!("learner {finding}")),
            }
        }
        problems.extend(digest_conflicts(&rows).iter().map(ToString::to_string));
        Self {
            leader_id,
            cluster_id,
            members: rows,
            problems,
            warnings,
        }
    }
}

/// The cluster the reachable leader belongs to, or else the one most
/// reachable members belong to.
fn cluster_of(rows: &[StatusRow]) -> Option<ClusterId> {
    let answers = || rows.iter().filter_map(|row| row.node.as_ref());
    if let Some(leader) = answers()
        .filter(|node| node.role == "leader")
        .max_by_key(|node| node.term)
    {
        return leader.cluster_id;
    }
    let mut counts: BTreeMap<ClusterId, usize> = BTreeMap::new();
    for id in answers().filter_map(|node| node.cluster_id) {
        *counts.entry(id).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(id, _)| id)
}

/// One member in `raftcfg status`: what the member list says and what the
/// node itself answered (or why it could not be asked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct StatusRow {
    name: String,
    id: NodeId,
    role: MemberRole,
    /// The member list marks it as leader.
    leader: bool,
    client_url: String,
    /// Its answer to `GET /v1/node`.
    node: Option<NodeStatus>,
    /// Why it could not be asked.
    error: Option<String>,
    /// How far its applied index trails (see [`lags_of`]).
    lag: Option<EntryCount>,
}

impl StatusRow {
    fn new(member: &Member, node: Result<NodeStatus, ClientError>) -> Self {
        let (node, error) = match node {
            Ok(node) => (Some(node), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            name: member.name.clone(),
            id: member.id,
            role: member.role,
            leader: member.leader,
            client_url: member.client_url.clone(),
            node,
            error,
            lag: None,
        }
    }

    /// What is wrong with this member, if anything, given the cluster's id.
    fn finding(&self, cluster_id: Option<ClusterId>) -> Option<String> {
        let who = format!("{} (id {})", self.name, self.id);
        let Some(node) = &self.node else {
            let reason = self.error.as_deref().unwrap_or("no answer");
            return Some(format!("{who} is unreachable: {reason}"));
        };
        if node.node_id != self.id {
            return Some(format!(
                "{who} answers as node {} at {}: its data directory was replaced, or the URL \
                 reaches another node",
                node.node_id, self.client_url
            ));
        }
        if node.role == "removed" {
            return Some(format!(
                "{who} says it was removed from the cluster, yet is listed"
            ));
        }
        if node.cluster_id != cluster_id {
            return Some(match node.cluster_id {
                None => format!("{who} belongs to no cluster (its data directory is new)"),
                Some(other) => format!(
                    "{who} belongs to cluster {other}, not {}",
                    or_dash(cluster_id)
                ),
            });
        }
        None
    }
}

/// Two members that applied the same index but hold different states.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DigestConflict {
    first: String,
    second: String,
    applied: LogIndex,
}

impl std::fmt::Display for DigestConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "members {} and {} applied index {} but their states differ",
            self.first, self.second, self.applied
        )
    }
}

/// Every disagreement among reachable members at the same applied index:
/// for each such index, the first member with each further digest is
/// paired with the first member seen at that index.
fn digest_conflicts(rows: &[StatusRow]) -> Vec<DigestConflict> {
    let mut by_applied: BTreeMap<LogIndex, Vec<(&str, &str)>> = BTreeMap::new();
    for row in rows {
        if let Some(node) = &row.node
            && let Some(digest) = &node.state_digest
        {
            by_applied
                .entry(node.applied)
                .or_default()
                .push((&row.name, digest));
        }
    }
    let mut conflicts = Vec::new();
    for (applied, members) in by_applied {
        let (first_name, first_digest) = members[0];
        let mut reported = vec![first_digest];
        for (name, digest) in members {
            if !reported.contains(&digest) {
                reported.push(digest);
                conflicts.push(DigestConflict {
                    first: first_name.to_owned(),
                    second: name.to_owned(),
                    applied,
                });
            }
        }
    }
    conflicts
}

/// How far each row's applied index trails: behind the last index of the
/// reachable leader with the highest term, or else behind its own commit.
fn lags_of(rows: &[StatusRow]) -> Vec<Option<EntryCount>> {
    let leader_last = rows
        .iter()
        .filter_map(|row| row.node.as_ref())
        .filter(|node| node.role == "leader")
        .max_by_key(|node| node.term)
        .map(|node| node.last_index);
    rows.iter()
        .map(|row| {
            let node = row.node.as_ref()?;
            Some(match leader_last {
                Some(last) => last.entries_since(node.applied),
                None => node.commit.entries_since(node.applied),
            })
        })
        .collect()
}

/// `status` output: one line per member.
fn status_table(rows: &[StatusRow]) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut line = vec![
                row.name.clone(),
                row.id.to_string(),
                role_name(row.role).to_owned(),
                if row.leader { "*" } else { "" }.to_owned(),
            ];
            match &row.node {
                Some(node) => line.extend([
                    node.role.clone(),
                    node.term.to_string(),
                    node.commit.to_string(),
                    node.applied.to_string(),
                    or_dash(row.lag),
                    match &node.state_digest {
                        Some(digest) => digest.chars().take(DIGEST_CHARS).collect(),
                        None => "-".to_owned(),
                    },
                ]),
                None => {
                    line.push("unreachable".to_owned());
                    line.extend(std::iter::repeat_n("-".to_owned(), 5));
                }
            }
            line
        })
        .collect();
    table(
        &[
            "NAME", "ID", "ROLE", "LEADER", "STATE", "TERM", "COMMIT", "APPLIED", "LAG", "DIGEST",
        ],
        &lines,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, id: u64, role: &str, applied: u64, digest: &str) -> StatusRow {
        StatusRow {
            name: name.to_owned(),
            id: NodeId(id),
            role: MemberRole::Voter,
            leader: role == "leader",
            client_url: format!("http://{name}:7379"),
            node: Some(NodeStatus {
                node_id: NodeId(id),
                cluster_id: Some(ClusterId(1)),
                name: name.to_owned(),
                role: role.to_owned(),
                term: raftcfg_client::wire::Term(2),
                commit: LogIndex(100),
                applied: LogIndex(applied),
                last_index: LogIndex(110),
                last_term: raftcfg_client::wire::Term(2),
                snapshot_index: LogIndex(0),
                leader_id: Some(NodeId(1)),
                state_digest: Some(digest.to_owned()),
            }),
            error: None,
            lag: None,
        }
    }

    fn unreachable(name: &str, id: u64, role: MemberRole) -> StatusRow {
        StatusRow {
            name: name.to_owned(),
            id: NodeId(id),
            role,
            leader: false,
            client_url: format!("http://{name}:7379"),
            node: None,
            error: Some("connection refused".to_owned()),
            lag: None,
        }
    }

    fn with(mut row: StatusRow, change: impl FnOnce(&mut NodeStatus)) -> StatusRow {
        change(row.node.as_mut().unwrap());
        row
    }

    #[test]
    fn a_healthy_cluster_has_no_problems() {
        let report = Report::judge(
            Some(NodeId(1)),
            vec![
                node("n1", 1, "leader", 110, "aaaa"),
                node("n2", 2, "follower", 110, "aaaa"),
            ],
        );
        assert_eq!(report.problems, Vec::<String>::new());
        assert_eq!(report.cluster_id, Some(ClusterId(1)));
        assert_eq!(report.members[1].lag, Some(EntryCount(0)));
    }

    #[test]
    fn each_way_a_voter_can_be_wrong_is_a_problem_and_a_learner_only_warns() {
        let report = Report::judge(
            Some(NodeId(1)),
            vec![
                node("n1", 1, "leader", 110, "a"),
                unreachable("n2", 2, MemberRole::Voter),
                with(node("n3", 3, "follower", 100, "a"), |n| {
                    n.node_id = NodeId(33)
                }),
                with(node("n4", 4, "follower", 100, "a"), |n| {
                    n.cluster_id = Some(ClusterId(9));
                }),
                with(node("n5", 5, "follower", 100, "a"), |n| n.cluster_id = None),
                with(node("n6", 6, "removed", 100, "a"), |_| {}),
                unreachable("n7", 7, MemberRole::Learner),
            ],
        );
        let problems = report.problems.join("\n");
        assert_eq!(report.problems.len(), 5, "{problems}");
        for expected in [
            "n2 (id 2) is unreachable: connection refused",
            "n3 (id 3) answers as node 33",
            "n4 (id 4) belongs to cluster 9, not 1",
            "n5 (id 5) belongs to no cluster",
            "n6 (id 6) says it was removed",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        assert_eq!(
            report.warnings,
            ["learner n7 (id 7) is unreachable: connection refused"]
        );
    }

    #[test]
    fn no_leader_is_a_problem() {
        let report = Report::judge(None, vec![node("n2", 2, "follower", 90, "a")]);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].contains("no leader"));
        assert_eq!(report.members[0].lag, Some(EntryCount(10)));
    }

    #[test]
    fn members_at_the_same_applied_index_with_different_digests_conflict() {
        let rows = [
            node("n1", 1, "leader", 90, "aaaa"),
            node("n2", 2, "follower", 90, "bbbb"),
            node("n3", 3, "follower", 80, "cccc"),
            unreachable("n4", 4, MemberRole::Learner),
        ];

        let conflicts = digest_conflicts(&rows);

        assert_eq!(
            conflicts,
            [DigestConflict {
                first: "n1".to_owned(),
                second: "n2".to_owned(),
                applied: LogIndex(90)
            }]
        );
        assert_eq!(
            conflicts[0].to_string(),
            "members n1 and n2 applied index 90 but their states differ"
        );
        let report = Report::judge(Some(NodeId(1)), rows.to_vec());
        assert_eq!(report.problems, [conflicts[0].to_string()]);
    }

    #[test]
    fn members_at_different_applied_indexes_or_equal_digests_do_not_conflict() {
        let rows = [
            node("n1", 1, "leader", 90, "aaaa"),
            node("n2", 2, "follower", 90, "aaaa"),
            node("n3", 3, "follower", 80, "cccc"),
            unreachable("n4", 4, MemberRole::Learner),
        ];
        assert!(digest_conflicts(&rows).is_empty());
    }

    #[test]
    fn three_different_states_at_one_index_give_two_warnings() {
        let rows = [
            node("n1", 1, "leader", 90, "aaaa"),
            node("n2", 2, "follower", 90, "bbbb"),
            node("n3", 3, "follower", 90, "cccc"),
            node("n4", 4, "follower", 90, "bbbb"),
        ];
        let pairs: Vec<(String, String)> = digest_conflicts(&rows)
            .into_iter()
            .map(|c| (c.first, c.second))
            .collect();
        assert_eq!(
            pairs,
            [
                ("n1".to_owned(), "n2".to_owned()),
                ("n1".to_owned(), "n3".to_owned())
            ]
        );
    }

    #[test]
    fn lag_is_measured_from_the_leaders_last_index_or_else_the_commit() {
        let with_leader = [
            node("n1", 1, "leader", 105, "a"),
            node("n2", 2, "follower", 90, "a"),
            unreachable("n3", 3, MemberRole::Voter),
        ];
        assert_eq!(
            lags_of(&with_leader),
            [Some(EntryCount(5)), Some(EntryCount(20)), None]
        );
        let without_leader = [node("n2", 2, "follower", 90, "a")];
        assert_eq!(lags_of(&without_leader), [Some(EntryCount(10))]);
    }

    #[test]
    fn the_status_table_shows_unreachable_members_and_short_digests() {
        let report = Report::judge(
            Some(NodeId(1)),
            vec![
                node("n1", 1, "leader", 110, "0123456789abcdef0123"),
                unreachable("n2", 2, MemberRole::Voter),
            ],
        );
        let text = status_table(&report.members);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME  ID  ROLE   LEADER  STATE"),
            "{text}"
        );
        assert!(
            lines[1].contains("leader") && lines[1].ends_with("0123456789ab"),
            "{text}"
        );
        assert!(lines[2].contains("unreachable"), "{text}");
    }

    #[test]
    fn the_json_report_names_each_member_and_every_problem() {
        let report = Report::judge(
            Some(NodeId(1)),
            vec![
                node("n1", 1, "leader", 110, "a"),
                unreachable("n2", 2, MemberRole::Voter),
            ],
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["leader_id"], 1);
        assert_eq!(json["members"][0]["node"]["role"], "leader");
        assert_eq!(json["members"][1]["error"], "connection refused");
        assert!(json["members"][1]["node"].is_null());
        assert_eq!(json["problems"].as_array().unwrap().len(), 1);
    }
}
