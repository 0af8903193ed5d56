//! Replays the fuzz targets' corpora (`node/fuzz/corpus/`) on stable, so
//! every input a fuzzer ever found interesting stays a regression test.
//! The ignored `write_seed_corpus` (re)writes the seed inputs.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftcfg_node::codec::{self, MessageBatch};
use raftcfg_node::fuzz;
use raftcfg_raft::{ClusterId, Entry, EntryPayload, LogIndex, Message, MessageBody, NodeId, Term};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus(target)).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        run(&bytes);
        count += 1;
    }
    assert!(count > 0, "the {target} corpus is empty");
    count
}

fn seed_messages() -> Vec<MessageBatch> {
    let message = |body| Message {
        cluster_id: ClusterId(7),
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        body,
    };
    vec![
        MessageBatch(vec![]),
        MessageBatch(vec![message(MessageBody::TimeoutNow)]),
        MessageBatch(vec![message(MessageBody::AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(2),
            entries: vec![Entry {
                term: Term(3),
                index: LogIndex(5),
                payload: EntryPayload::Command(Bytes::from_static(b"cmd")),
            }],
            leader_commit: LogIndex(4),
        })]),
    ]
}

#[test]
#[ignore = "writes the seed corpora: cargo test --test fuzz_corpus -- --ignored"]
fn write_seed_corpus() {
    for (i, batch) in seed_messages().iter().enumerate() {
        std::fs::write(
            corpus("peer_message").join(format!("seed-{i}")),
            codec::encode(batch),
        )
        .unwrap();
    }
    for (i, key) in ["app/db/url", "a//b", "/x", "é/ü", "a/../b", "\u{1}"]
        .iter()
        .enumerate()
    {
        std::fs::write(corpus("key_parser").join(format!("seed-{i}")), key).unwrap();
    }
}

#[test]
fn the_peer_message_corpus_replays() {
    replay("peer_message", fuzz::peer_message);
}

#[test]
fn the_key_parser_corpus_replays() {
    replay("key_parser", fuzz::key);
}
