//! Tools around raftcfg that are not part of the server: `history`, a
//! linearizability checker for recorded client histories of a key-value
//! register (the fault-injection tests and `raftcfg-tools check-history`
//! use it), and `bench`, a closed-loop HTTP load generator for raftcfg and
//! etcd (`raftcfg-tools bench`). `cli` is the `raftcfg-tools` command.

pub mod bench;
pub mod check_history;
pub mod cli;
pub mod history;
