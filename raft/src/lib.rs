//! raftcfg's Raft core: the consensus protocol as a pure, deterministic
//! state machine. It does no I/O, reads no clock and draws randomness only
//! from a generator seeded by its [`Config`]. The application feeds it
//! inputs and carries out what it asks for, in batches called [`Ready`].
//!
//! ```text
//!            tick()  step(msg)  propose(cmd)  propose_membership(change)
//!            read_index(ctx)  transfer_leadership(to)  compact(index, data)
//!                                   │
//!                                   ▼
//!   LogStorage ──reads──▶  ┌────────────────┐
//!   (durable log)          │    RawNode     │
//!                          └────────────────┘
//!                                   │ ready()
//!                                   ▼
//!     Ready { hard_state, snapshot, entries, compaction,       (1) persist
//!             messages,                                        (2) send
//!             committed_entries,                               (3) apply
//!             read_states, dropped_reads }                     (4) serve reads
//!                                   │ advance()                (5) acknowledge
//! ```
//!
//! The Ready contract, in this order: (1) make the hard state, entries,
//! received snapshot and compaction durable in one synced write; (2) send
//! the messages, which may promise what was just persisted (a leader's
//! appends and heartbeats may go before (1), see [`handle_ready`]); (3) install the
//! snapshot and apply committed entries; (4) serve each read once applied up
//! to its index; (5) call [`RawNode::advance`]. [`handle_ready`] does exactly
//! this and is shared by the node and the simulator.
//!
//! Features: randomized elections with PreVote and CheckQuorum; pipelined,
//! flow-controlled replication with fast backtracking; commit only of
//! current-term entries; single-server membership changes with learners;
//! leadership transfer; snapshots and compaction; ReadIndex on leaders and
//! followers; cluster and node identity on every message; and, for a
//! quorum lost for good, [`force_new_cluster`] on a stopped member's store.

mod config;
mod config_history;
mod entry;
mod error;
mod ids;
mod log;
mod mem_storage;
mod membership;
mod message;
mod progress;
mod protocol;
mod raw_node;
mod read_index;
mod ready;
mod recovery;
mod snapshot;
mod storage;

pub use config::Config;
#[cfg(feature = "planted-bugs")]
pub use config::PlantedBug;
pub use entry::{Entry, EntryPayload};
pub use error::{CompactError, MembershipError, ProposalError, StartError};
pub use ids::{ClusterId, LogIndex, NodeId, Term};
pub use mem_storage::MemStorage;
pub use membership::{ConfigChange, Membership, MembershipChange};
pub use message::{Message, MessageBody, ReadContext};
pub use protocol::{DropCounters, ReadState, Role};
pub use raw_node::{MemberProgress, RawNode, Ready, Status};
pub use ready::{LeaderSync, ReadyHandler, handle_ready, handle_ready_with};
pub use recovery::{ForceError, ForcedCluster, force_new_cluster};
pub use snapshot::{Snapshot, SnapshotMetadata};
pub use storage::{
    BootstrapError, HardState, LogStorage, LogStore, LogWrite, StorageError, bootstrap,
};

#[cfg(test)]
mod testing;
