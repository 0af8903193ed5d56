//! What the driver's rounds and a peer's task share about one peer: the
//! open stream's socket, and whose turn it is to write.
//!
//! A frame the driver sends while the task has nothing queued and the
//! socket takes it whole is written by the driver itself, with one
//! non-blocking system call: no hand-off to the task, whose wake-up costs
//! as much as the write on a small machine. Anything else goes to the
//! task's queue, and from then on the task writes, in order, until its
//! queue is empty again. The lock makes the two mutually exclusive: the
//! driver writes only while the task is idle, and the task becomes idle
//! only when nothing is queued behind it.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use raftcfg_raft::Message;
use socket2::Socket;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::sender::fits_one_frame;
use super::stream::encode_frame;
use crate::metrics::PeerStats;

/// What the task is given to write.
pub(super) enum Queued {
    /// Messages to write as frames.
    Messages(Vec<Message>),
    /// The end of a frame the driver began on stream `stream` (the socket
    /// took only part of it): written before anything else, and only on
    /// that stream.
    Rest { stream: u64, bytes: Vec<u8> },
}

/// The shared state of one peer's link.
#[derive(Default)]
pub(super) struct PeerLink {
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    /// The open stream's number and a second handle on its socket.
    writer: Option<(u64, Socket)>,
    /// Whether the task has something to write (then only it writes).
    task_busy: bool,
    /// When the stream last carried a frame, from either side.
    last_write: Option<Instant>,
}

/// Whether the task may go idle.
pub(super) enum Idle {
    /// Nothing is queued: the task is idle and the driver may write.
    Yes,
    /// Something was queued meanwhile: the task keeps its turn.
    Busy(Queued),
    /// The transport dropped the queue: the task ends.
    Ended,
}

impl PeerLink {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().expect("peer link lock is never poisoned")
    }

    /// Sends `messages` (from a driver round): written at once if the task
    /// is idle, a stream is open and its socket takes the whole frame;
    /// queued for the task otherwise. Never blocks.
    pub(super) fn send(
        &self,
        messages: Vec<Message>,
        queue: &UnboundedSender<Queued>,
        stats: &PeerStats,
    ) {
        let mut state = self.lock();
        if !state.task_busy
            && let Some((stream, socket)) = &state.writer
            && fits_one_frame(&messages)
        {
            let frame = encode_frame(&messages);
            let started = Instant::now();
            match socket.send(&frame) {
                Ok(written) if written == frame.len() => {
                    crate::metrics::observe(&stats.write, started.elapsed());
                    state.last_write = Some(Instant::now());
                    return;
                }
                Ok(written) => {
                    let rest = Queued::Rest {
                        stream: *stream,
                        bytes: frame[written..].to_vec(),
                    };
                    state.task_busy = true;
                    let _ = queue.send(rest);
                    return;
                }
                // A full socket: the task waits for room. Any other error:
                // the task's own write meets it and handles the failure.
                Err(_) => {}
            }
        }
        state.task_busy = true;
        // A closed queue means the task ended; the next send starts another.
        let _ = queue.send(Queued::Messages(messages));
    }

    /// Hands the driver a second handle on stream number `stream`'s socket
    /// (the task opened it, and holds the turn while it writes).
    pub(super) fn attach(&self, stream: u64, socket: Socket) {
        self.lock().writer = Some((stream, socket));
    }

    /// Takes the driver's handle away: the task is closing the stream, and
    /// the connection closes once both handles are gone.
    pub(super) fn detach(&self) {
        self.lock().writer = None;
    }

    /// Records that the task wrote to the stream.
    pub(super) fn wrote(&self) {
        self.lock().last_write = Some(Instant::now());
    }

    /// Called by the task when it has written everything it had: it goes
    /// idle unless something was queued meanwhile. Under the lock, so the
    /// driver never queues behind a task that is going idle.
    pub(super) fn try_idle(&self, pending: &mut UnboundedReceiver<Queued>) -> Idle {
        let mut state = self.lock();
        match pending.try_recv() {
            Ok(queued) => Idle::Busy(queued),
            Err(TryRecvError::Empty) => {
                state.task_busy = false;
                Idle::Yes
            }
            Err(TryRecvError::Disconnected) => Idle::Ended,
        }
    }

    /// The time left before the stream has carried nothing for `limit`.
    pub(super) fn idle_left(&self, limit: Duration) -> Duration {
        self.lock()
            .last_write
            .map_or(limit, |at| limit.saturating_sub(at.elapsed()))
    }

    /// Detaches the stream if it carried nothing for `limit` and the task
    /// has nothing to write; says whether it did (the task then closes it).
    pub(super) fn detach_if_idle(&self, limit: Duration) -> bool {
        let mut state = self.lock();
        let carried_lately = state.last_write.is_some_and(|at| at.elapsed() < limit);
        if state.task_busy || carried_lately {
            return false;
        }
        state.writer = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use raftcfg_raft::{ClusterId, Entry, EntryPayload, LogIndex, MessageBody, NodeId, Term};
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;

    fn message(payload_bytes: usize) -> Message {
        Message {
            cluster_id: ClusterId(9),
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![Entry {
                    index: LogIndex(1),
                    term: Term(3),
                    payload: EntryPayload::Command(vec![7; payload_bytes].into()),
                }],
                leader_commit: LogIndex(0),
            },
        }
    }

    /// A connected pair: the sending side as the task would attach it
    /// (non-blocking), and the receiving side.
    fn socket_pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sending = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiving, _) = listener.accept().unwrap();
        sending.set_nonblocking(true).unwrap();
        (Socket::from(sending), receiving)
    }

    fn read_exactly(receiving: &mut TcpStream, length: usize) -> Vec<u8> {
        let mut bytes = vec![0; length];
        receiving.read_exact(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn an_idle_task_lets_the_driver_write_the_frame_itself() {
        let link = PeerLink::default();
        let stats = PeerStats::default();
        let (queue, mut pending) = unbounded_channel();
        let (socket, mut receiving) = socket_pair();
        link.attach(1, socket);
        assert!(matches!(link.try_idle(&mut pending), Idle::Yes));

        let messages = vec![message(10), message(20)];
        link.send(messages.clone(), &queue, &stats);

        let frame = encode_frame(&messages);
        assert_eq!(read_exactly(&mut receiving, frame.len()), frame);
        assert!(pending.try_recv().is_err(), "nothing went to the task");
        assert_eq!(stats.write.count(), 1);
    }

    #[test]
    fn while_the_task_has_work_everything_queues_behind_it_in_order() {
        let link = PeerLink::default();
        let stats = PeerStats::default();
        let (queue, mut pending) = unbounded_channel();
        let (socket, _receiving) = socket_pair();
        // No stream yet: the first send queues and gives the task the turn.
        link.send(vec![message(1)], &queue, &stats);
        // The task opens a stream; sends while it writes queue behind.
        link.attach(1, socket);
        link.send(vec![message(2)], &queue, &stats);
        for expected in [1, 2] {
            match pending.try_recv() {
                Ok(Queued::Messages(messages)) => assert_eq!(messages, vec![message(expected)]),
                _ => panic!("message {expected} was not queued in order"),
            }
        }
        // With the queue empty the task goes idle; a send queued before
        // that keeps it busy instead.
        link.send(vec![message(3)], &queue, &stats);
        assert!(matches!(
            link.try_idle(&mut pending),
            Idle::Busy(Queued::Messages(_))
        ));
        assert!(matches!(link.try_idle(&mut pending), Idle::Yes));
        assert_eq!(stats.write.count(), 0);
    }

    #[test]
    fn a_frame_the_socket_takes_in_part_leaves_its_end_to_the_task_on_that_stream() {
        let link = PeerLink::default();
        let stats = PeerStats::default();
        let (queue, mut pending) = unbounded_channel();
        let (socket, mut receiving) = socket_pair();
        socket.set_send_buffer_size(4096).unwrap();
        link.attach(7, socket);
        assert!(matches!(link.try_idle(&mut pending), Idle::Yes));

        // Nobody reads: frames fill the socket until one goes in part.
        let mut sent = Vec::new();
        let rest = loop {
            let messages = vec![message(3000)];
            link.send(messages.clone(), &queue, &stats);
            let frame = encode_frame(&messages);
            match pending.try_recv() {
                Err(_) => sent.extend_from_slice(&frame),
                Ok(Queued::Rest { stream, bytes }) => {
                    assert_eq!(stream, 7);
                    assert!(!bytes.is_empty() && bytes.len() < frame.len());
                    assert!(frame.ends_with(&bytes));
                    sent.extend_from_slice(&frame[..frame.len() - bytes.len()]);
                    break bytes;
                }
                Ok(Queued::Messages(_)) => {
                    panic!("a full socket took nothing; it should take part first")
                }
            }
            assert!(sent.len() < 64 << 20, "the socket never filled");
        };
        // The task has the turn now: the next frame queues behind the rest.
        link.send(vec![message(1)], &queue, &stats);
        assert!(matches!(pending.try_recv(), Ok(Queued::Messages(_))));
        assert!(!rest.is_empty());
        // What arrived is exactly the frames written whole and the rest's
        // beginning.
        assert_eq!(read_exactly(&mut receiving, sent.len()), sent);
    }

    #[test]
    fn a_stream_is_idle_only_when_neither_side_wrote_lately() {
        let link = PeerLink::default();
        let stats = PeerStats::default();
        let (queue, mut pending) = unbounded_channel();
        let (socket, _receiving) = socket_pair();
        link.attach(1, socket);
        assert!(matches!(link.try_idle(&mut pending), Idle::Yes));
        link.send(vec![message(1)], &queue, &stats);
        assert!(
            !link.detach_if_idle(Duration::from_secs(60)),
            "the driver just wrote"
        );
        assert!(link.idle_left(Duration::from_secs(60)) > Duration::from_secs(59));
        assert!(link.detach_if_idle(Duration::ZERO));
        // Detached: the next send goes to the task, which opens a stream.
        link.send(vec![message(2)], &queue, &stats);
        assert!(matches!(pending.try_recv(), Ok(Queued::Messages(_))));
        assert!(!link.detach_if_idle(Duration::ZERO), "the task has work");
    }
}
