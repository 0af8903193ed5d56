//! New node and cluster ids: random, and below 2^53, so that every common
//! JSON parser reads them exactly. JavaScript and `jq` hold numbers as
//! doubles (exact only up to 2^53), and Go's and Java's signed 64-bit
//! parsers stop at 2^63; an id past either would name another node once
//! pasted. Ids stored by older builds keep their value.

use raftcfg_raft::{ClusterId, NodeId};

/// Every new id is below this: the largest integer a double holds exactly.
pub const ID_LIMIT: u64 = 1 << 53;

/// A fresh node id.
pub fn fresh_node_id() -> NodeId {
    NodeId(fresh())
}

/// A fresh cluster id.
pub fn fresh_cluster_id() -> ClusterId {
    ClusterId(fresh())
}

/// A random integer in `1..ID_LIMIT`.
fn fresh() -> u64 {
    (rand::random::<u64>() % ID_LIMIT).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_survive_a_double_and_a_signed_parser() {
        for _ in 0..10_000 {
            for id in [fresh_node_id().get(), fresh_cluster_id().get()] {
                assert!((1..ID_LIMIT).contains(&id), "{id}");
                assert_eq!(id as f64 as u64, id);
                assert!(i64::try_from(id).is_ok());
            }
        }
    }
}
