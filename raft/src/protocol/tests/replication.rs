use crate::testing::{Cluster, config, id};
use crate::{EntryPayload, LogIndex, LogStorage, Message, MessageBody, PlantedBug, Term};

fn appends(messages: &[Message]) -> Vec<&Message> {
    messages
        .iter()
        .filter(|m| matches!(m.body, MessageBody::AppendEntries { .. }))
        .collect()
}

#[test]
fn a_new_leader_appends_a_noop_entry_of_its_term() {
    let mut cluster = Cluster::new(3);
    cluster.elect(2);
    let storage = cluster.node(2).storage().clone();
    let entry = storage.entries(LogIndex(1), LogIndex(2), u64::MAX).unwrap();
    assert_eq!(entry[0].payload, EntryPayload::Noop);
    assert_eq!(entry[0].term, cluster.node(2).status().term);
}

#[test]
fn entries_proposed_between_readies_travel_in_one_append() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    for n in 0..10 {
        cluster.propose(1, &format!("v{n}"));
    }
    let messages = cluster.take_messages();
    let to_two = appends(&messages)
        .into_iter()
        .filter(|m| m.to == id(2))
        .collect::<Vec<_>>();
    assert_eq!(to_two.len(), 1);
    let MessageBody::AppendEntries { entries, .. } = &to_two[0].body else {
        unreachable!()
    };
    assert_eq!(entries.len(), 10);
}

#[test]
fn appends_are_pipelined_up_to_the_inflight_limit() {
    let configs = (1..=3)
        .map(|n| {
            let mut c = config(n);
            c.max_append_bytes = 1;
            c.max_inflight_appends = 4;
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    for n in 0..10 {
        cluster.propose(1, &format!("v{n}"));
    }
    // One entry per append, at most four unacknowledged per follower.
    let messages = cluster.take_messages();
    assert_eq!(
        appends(&messages).iter().filter(|m| m.to == id(2)).count(),
        4
    );
    for message in messages {
        cluster.deliver(message);
    }
    cluster.deliver_all();
    assert_eq!(cluster.applied_commands(3).len(), 10);
}

#[test]
fn a_follower_with_a_conflicting_suffix_is_overwritten() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    // The isolated leader appends entries nobody else receives.
    for n in 0..5 {
        cluster.propose(1, &format!("lost{n}"));
    }
    cluster.deliver_all();
    cluster.run_until(100, |c| c.leader().is_some_and(|l| l != 1));
    let leader = cluster.leader().unwrap();
    cluster.propose(leader, "kept");
    cluster.heal();
    cluster.run_until(100, |c| c.applied_commands(1) == ["kept"]);
    let (a, b) = (
        cluster.node(1).storage().clone(),
        cluster.node(leader).storage().clone(),
    );
    let last = b.last_index().unwrap();
    assert_eq!(a.last_index().unwrap(), last);
    assert_eq!(
        a.entries(LogIndex(1), last.next(), u64::MAX),
        b.entries(LogIndex(1), last.next(), u64::MAX)
    );
}

#[test]
fn fast_backtracking_skips_a_conflicting_term_in_one_round_trip() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.isolate(1);
    for n in 0..50 {
        cluster.propose(1, &format!("lost{n}"));
    }
    cluster.deliver_all();
    cluster.run_until(100, |c| c.leader().is_some_and(|l| l != 1));
    let leader = cluster.leader().unwrap();
    cluster.heal();
    cluster.tick(leader);
    let mut rejections = 0;
    for _ in 0..20 {
        let messages = cluster.take_messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            if message.to == id(leader)
                && matches!(
                    message.body,
                    MessageBody::AppendEntriesResponse { success: false, .. }
                )
            {
                rejections += 1;
            }
            cluster.deliver(message);
        }
    }
    assert!(
        rejections <= 2,
        "{rejections} rejections to skip one term of 50 entries"
    );
    assert_eq!(cluster.node(1).status().leader_id, Some(id(leader)));
    assert_eq!(
        cluster.node(1).status().last_index,
        cluster.node(leader).status().last_index
    );
}

#[test]
fn a_follower_commits_only_what_it_has_matched() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    cluster.propose(1, "a");
    cluster.deliver_all();
    let commit = cluster.node(2).status().commit;
    // An append that matches at `commit` but claims a later leader commit.
    let term = cluster.node(1).status().term;
    cluster.node(2).step(Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(1),
        to: id(2),
        term,
        body: MessageBody::AppendEntries {
            prev_log_index: commit,
            prev_log_term: term,
            entries: Vec::new(),
            leader_commit: commit.plus(10),
        },
    });
    assert_eq!(cluster.node(2).status().commit, commit);
}

/// Keeps entries of term 1 in appends and strips later ones.
fn strip_entries_after_term_1(mut message: Message) -> Option<Message> {
    if let MessageBody::AppendEntries { entries, .. } = &mut message.body {
        entries.retain(|e| e.term == Term(1));
    }
    Some(message)
}

/// The paper's Figure 8: an entry from an earlier term that sits on a
/// majority must not be committed by counting replicas, because a leader
/// of a later term can still overwrite it.
#[test]
fn figure_8_an_earlier_term_entry_on_a_majority_is_not_committed_by_counting() {
    figure_8(None);
}

#[test]
#[should_panic(expected = "commit")]
fn figure_8_catches_the_planted_commit_by_counting_bug() {
    figure_8(Some(PlantedBug::CommitPreviousTermByCounting));
}

fn figure_8(bug: Option<PlantedBug>) {
    let configs = (1..=5)
        .map(|n| {
            let mut c = config(n);
            c.max_append_bytes = 1;
            c.planted_bug = bug;
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    // (a) S1 (term 1) replicates x at index 2 to S2 only.
    for other in 3..=5 {
        cluster.cut.insert((id(1), id(other)));
        cluster.cut.insert((id(other), id(1)));
    }
    cluster.propose(1, "x");
    cluster.deliver_all();
    assert_eq!(cluster.node(2).status().last_index, LogIndex(2));
    assert_eq!(cluster.node(1).status().commit, LogIndex(1));
    // (b) S1 and S2 fall silent; one of S3..S5 wins term 2 and appends its
    // no-op at index 2, which reaches nobody.
    cluster.isolate(1);
    cluster.isolate(2);
    cluster.filter = Some(strip_entries_after_term_1);
    cluster.run_until(300, |c| c.leader().is_some_and(|l| l >= 3));
    let second = cluster.leader().unwrap();
    assert_eq!(cluster.node(second).status().term, Term(2));
    // (c) It falls silent; S1 or S2 wins term 3 and replicates x to the
    // others, but its own no-op reaches nobody.
    cluster.heal();
    cluster.isolate(second);
    cluster.run_until(300, |c| c.leader().is_some_and(|l| l <= 2));
    let third = cluster.leader().unwrap();
    let others: Vec<u64> = (1..=5).filter(|n| *n != second && *n != third).collect();
    cluster.run_until(50, |c| {
        others
            .iter()
            .all(|n| c.node(*n).status().last_index == LogIndex(2))
    });
    cluster.tick_all(5);
    // x is on a majority, but only as an entry of term 1: not committed.
    assert_eq!(cluster.node(third).status().commit, LogIndex(1), "commit");
    // (d) That is right: the term-2 leader, whose last entry is newer than
    // x, can still win a majority and would overwrite x.
    let term = cluster.node(third).status().term.next();
    for n in &others {
        cluster.node(*n).step(Message {
            cluster_id: crate::testing::CLUSTER,
            from: id(second),
            to: id(*n),
            term,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: LogIndex(2),
                last_log_term: Term(2),
                leadership_transfer: true,
            },
        });
    }
    let grants = cluster
        .take_messages()
        .into_iter()
        .filter(|m| {
            m.body
                == MessageBody::RequestVoteResponse {
                    pre_vote: false,
                    granted: true,
                }
        })
        .count();
    assert_eq!(grants, 3, "with its own vote, 4 of 5");
    assert!((1..=5).all(|n| !cluster.applied_commands(n).contains(&"x".to_owned())));
}

/// An append that arrives late (reordered or duplicated) and whose entries
/// the follower already holds must not cut off what follows them: the
/// follower has acknowledged those entries, and they may be committed.
#[test]
fn a_stale_append_does_not_truncate_matching_entries() {
    stale_append(None);
}

#[test]
#[should_panic(expected = "kept")]
fn a_stale_append_catches_the_planted_truncation_bug() {
    stale_append(Some(PlantedBug::StaleAppendTruncates));
}

fn stale_append(bug: Option<PlantedBug>) {
    let mut cluster = Cluster::with_planted_bug(3, bug);
    cluster.elect(1);
    cluster.deliver_all();
    // Node 2 hears nothing on its own; the appends are handed to it below.
    cluster.isolate(2);
    cluster.propose(1, "a");
    cluster.propose(1, "b");
    cluster.deliver_all();
    let term = cluster.node(1).status().term;
    let stored = cluster.node(1).storage().clone();
    let append = |entries: Vec<crate::Entry>| Message {
        cluster_id: crate::testing::CLUSTER,
        from: id(1),
        to: id(2),
        term,
        body: MessageBody::AppendEntries {
            prev_log_index: LogIndex(1),
            prev_log_term: term,
            entries,
            leader_commit: LogIndex(1),
        },
    };
    let both = stored.entries(LogIndex(2), LogIndex(4), u64::MAX).unwrap();
    cluster.node(2).step(append(both.clone()));
    cluster.flush();
    // An earlier append carrying only the first entry arrives after it.
    cluster.node(2).step(append(both[..1].to_vec()));
    cluster.flush();
    let storage = cluster.node(2).storage().clone();
    assert_eq!(storage.last_index().unwrap(), LogIndex(3), "entries kept");
    assert_eq!(
        storage.entries(LogIndex(2), LogIndex(4), u64::MAX).unwrap(),
        both
    );
}

fn deferring_notices(n: u64) -> Cluster {
    let configs = (1..=n)
        .map(|n| {
            let mut c = config(n);
            c.defer_commit_notices = true;
            c
        })
        .collect();
    let mut cluster = Cluster::with_configs(configs);
    cluster.elect(1);
    cluster.node(1).send_commit_notices();
    cluster.deliver_all();
    cluster
}

/// Delivers one round of appends and their answers: the leader commits.
fn commit_one(cluster: &mut Cluster, data: &str) -> LogIndex {
    let index = cluster.propose(1, data);
    for message in cluster.take_messages() {
        cluster.deliver(message);
    }
    for answer in cluster.take_messages() {
        cluster.deliver(answer);
    }
    assert_eq!(cluster.node(1).status().commit, index);
    index
}

#[test]
fn a_leader_sends_a_new_commit_index_alone_unless_it_defers_notices() {
    let mut cluster = Cluster::new(3);
    cluster.elect(1);
    let index = commit_one(&mut cluster, "x");
    let messages = cluster.take_messages();
    let notices = appends(&messages);
    assert_eq!(notices.len(), 2, "one for each follower");
    for notice in notices {
        let MessageBody::AppendEntries {
            entries,
            leader_commit,
            ..
        } = &notice.body
        else {
            unreachable!()
        };
        assert!(entries.is_empty());
        assert_eq!(*leader_commit, index);
    }
}

#[test]
fn a_deferred_commit_index_waits_until_the_leader_sends_the_notices() {
    let mut cluster = deferring_notices(3);
    let index = commit_one(&mut cluster, "x");
    assert!(appends(&cluster.take_messages()).is_empty(), "held back");
    assert!(cluster.node(1).commit_notices_due());
    assert!(cluster.node(2).status().commit < index);

    cluster.node(1).send_commit_notices();
    let messages = cluster.take_messages();
    assert_eq!(appends(&messages).len(), 2, "one for each follower");
    assert!(!cluster.node(1).commit_notices_due());
    for message in messages {
        cluster.deliver(message);
    }
    assert_eq!(cluster.node(2).status().commit, index);
    assert_eq!(cluster.node(3).status().commit, index);
    cluster.flush();
    assert_eq!(cluster.applied_commands(3), ["x"]);
}

#[test]
fn a_deferred_commit_index_travels_with_the_next_append() {
    let mut cluster = deferring_notices(3);
    let first = commit_one(&mut cluster, "x");
    assert!(cluster.node(1).commit_notices_due());
    cluster.propose(1, "y");
    let messages = cluster.take_messages();
    // The append of `y` carries the commit of `x`: no notice is due.
    assert!(!cluster.node(1).commit_notices_due());
    for message in messages {
        cluster.deliver(message);
    }
    assert_eq!(cluster.node(2).status().commit, first);
    cluster.flush();
    assert_eq!(cluster.applied_commands(2), ["x"]);
}

#[test]
fn a_deferred_commit_index_travels_with_the_next_heartbeat() {
    let mut cluster = deferring_notices(3);
    let index = commit_one(&mut cluster, "x");
    let heartbeat = cluster.node(1).status().commit;
    assert_eq!(heartbeat, index);
    cluster.tick_all(1);
    assert!(!cluster.node(1).commit_notices_due());
    assert_eq!(cluster.node(3).status().commit, index);
}

#[test]
fn no_notice_is_due_to_a_follower_that_lacks_the_committed_entries() {
    let mut cluster = deferring_notices(3);
    cluster.isolate(3);
    let index = commit_one(&mut cluster, "x");
    // Only node 2 holds `x`: the notice is due to it alone.
    cluster.node(1).send_commit_notices();
    let messages = cluster.take_messages();
    let notices: Vec<_> = appends(&messages)
        .into_iter()
        .filter(
            |m| matches!(&m.body, MessageBody::AppendEntries { entries, .. } if entries.is_empty()),
        )
        .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].to, id(2));
    assert!(cluster.node(3).status().commit < index);
}
