//! The process's file descriptors: the soft open-file limit is raised to
//! the hard one at start, and the descriptors are divided between storage
//! and the two ports so that connections can never take the ones RocksDB
//! needs (a storage write that fails for want of a descriptor stops the
//! node).

use std::io;

/// The most table files RocksDB keeps open (`max_open_files`); beyond it,
/// it closes and reopens them as needed.
pub const ROCKSDB_MAX_OPEN_FILES: i32 = 256;
/// Descriptors kept for everything but connections: RocksDB's table files
/// and its log, manifest and lock files, snapshot files being written, read
/// or received, streams to and from peers (at most 64 incoming, see
/// `transport`), stdio.
pub const RESERVED_FOR_STORAGE: u64 = ROCKSDB_MAX_OPEN_FILES as u64 + 256;
/// Incoming connections on the peer port: a few per member of even a
/// large cluster.
pub const PEER_CONNECTIONS: usize = 256;
/// The fewest client connections a node starts with.
pub const MIN_CLIENT_CONNECTIONS: usize = 64;

/// How the descriptors are divided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft open-file limit the node runs with.
    pub open_files_limit: u64,
    /// Connections the client port keeps open at most.
    pub client_connections: usize,
    /// Connections the peer port keeps open at most.
    pub peer_connections: usize,
}

impl FdBudget {
    /// Divides `open_files_limit` descriptors: storage's reserve first,
    /// then up to [`PEER_CONNECTIONS`] (at most a quarter of the rest) for
    /// peers, then up to `wanted_client` for clients. Refused if fewer
    /// than [`MIN_CLIENT_CONNECTIONS`] would be left for clients.
    pub fn divide(open_files_limit: u64, wanted_client: usize) -> Result<Self, String> {
        let (peer_connections, for_clients) = split(open_files_limit);
        let client_connections = wanted_client.min(for_clients);
        if client_connections < MIN_CLIENT_CONNECTIONS.min(wanted_client) {
            let least = (RESERVED_FOR_STORAGE..)
                .find(|limit| split(*limit).1 >= MIN_CLIENT_CONNECTIONS)
                .expect("some limit leaves enough");
            return Err(format!(
                "the open-file limit of {open_files_limit} leaves {client_connections} \
                 descriptors for client connections after {RESERVED_FOR_STORAGE} for storage \
                 and {peer_connections} for peers; raise it (ulimit -n) to at least {least}"
            ));
        }
        Ok(Self {
            open_files_limit,
            client_connections,
            peer_connections,
        })
    }
}

/// Connections for the peer port and for clients out of `open_files_limit`.
fn split(open_files_limit: u64) -> (usize, usize) {
    let for_connections = open_files_limit.saturating_sub(RESERVED_FOR_STORAGE);
    let for_connections = usize::try_from(for_connections).unwrap_or(usize::MAX);
    let peers = PEER_CONNECTIONS.min(for_connections / 4);
    (peers, for_connections - peers)
}

/// Raises the soft open-file limit to the hard one and returns the soft
/// limit before and after.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let after = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generous_limit_gives_clients_what_they_want() {
        let budget = FdBudget::divide(1 << 20, 4096).unwrap();
        assert_eq!(budget.client_connections, 4096);
        assert_eq!(budget.peer_connections, PEER_CONNECTIONS);
    }

    #[test]
    fn a_tight_limit_keeps_storage_reserve_and_shares_the_rest() {
        let budget = FdBudget::divide(1024, 4096).unwrap();
        let total =
            RESERVED_FOR_STORAGE as usize + budget.peer_connections + budget.client_connections;
        assert_eq!(total, 1024, "{budget:?}");
        assert_eq!(budget.peer_connections, (1024 - 512) / 4);
    }

    #[test]
    fn a_limit_too_small_for_any_clients_is_refused_with_the_least_that_works() {
        let error = FdBudget::divide(520, 4096).unwrap_err();
        assert!(error.contains("at least"), "{error}");
        let least: u64 = error.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(FdBudget::divide(least, 4096).is_ok());
        assert!(FdBudget::divide(least - 1, 4096).is_err());
    }
}
