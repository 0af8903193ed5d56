//! Tools around raftcfg that are not part of the server: `history`, a
//! linearizability checker for recorded client histories of a key-value
//! register (the fault-injection tests and `raftcfg-tools check-history`
//! use it), and `bench`, a closed-loop HTTP load generator for raftcfg and
//! etcd (`raftcfg-tools bench`); `floor`, the least time a replicated,
//! synced write takes on this machine (`raftcfg-tools floor`). `cli` is the
//! `raftcfg-tools` command.

pub mod bench;
pub mod check_history;
pub mod cli;
pub mod floor;
pub mod history;
