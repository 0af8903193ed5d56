//! Unit tests of the protocol, one file per feature, each test named as the
//! sentence it proves. They drive `tick`/`step` on small clusters and assert
//! on roles, logs and messages.

mod election;
mod identity;
mod membership;
mod read_index;
mod replication;
mod snapshot;
mod transfer;
