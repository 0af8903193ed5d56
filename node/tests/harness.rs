//! The process tests' own machinery: reserved ports really are held for the
//! test and usable by its child processes, and a node that cannot come up
//! fails its test at once with its log.

mod support;

use std::net::TcpStream;

use support::Node;
use support::ports::{ReservedPort, reserve_block};

#[test]
fn a_reserved_port_is_never_handed_out_again() {
    let held = ReservedPort::any();
    assert!(
        ReservedPort::try_at(held.port()).is_err(),
        "a second reservation of {} succeeded",
        held.port()
    );
    let taken: Vec<u16> = (0..2_000)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    assert!(
        !taken.contains(&held.port()),
        "bind(0) took a reserved port"
    );
}

#[test]
fn nothing_answers_on_a_reserved_port_until_a_process_listens_there() {
    let held = ReservedPort::any();
    let refused = TcpStream::connect(("127.0.0.1", held.port())).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_block_of_ports_is_reserved_at_the_offsets_asked_for() {
    let (base, ports) = reserve_block(&[0, 1, 100, 101, 200, 201]);
    let got: Vec<u16> = ports.iter().map(ReservedPort::port).collect();
    assert_eq!(
        got,
        vec![
            base,
            base + 1,
            base + 100,
            base + 101,
            base + 200,
            base + 201
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_on_its_reserved_ports_across_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::new("n1", dir.path().join("n1"), &[]);
    node.start().await;
    let first = node.status().await;
    node.kill();
    let refused = TcpStream::connect(("127.0.0.1", node.client_port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    node.start().await;
    assert_eq!(node.status().await.node_id, first.node_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_exits_at_start_fails_the_test_at_once_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    // Two nodes on one data directory: the second cannot take its lock.
    let data_dir = dir.path().join("shared");
    let mut first = Node::new("n1", data_dir.clone(), &[]);
    first.start().await;
    let mut second = Node::new("n1", data_dir, &[]);
    let failure = tokio::spawn(async move { second.start().await })
        .await
        .expect_err("the second node cannot start");
    let message = failure
        .into_panic()
        .downcast::<String>()
        .map(|text| *text)
        .unwrap_or_default();
    // "exited", not "did not serve within": it did not wait out the
    // start deadline.
    assert!(
        message.contains("exited") && message.contains("its log ends"),
        "{message}"
    );
    assert!(
        message.contains("another raftcfg is using"),
        "the failure quotes the node's own error: {message}"
    );
}
