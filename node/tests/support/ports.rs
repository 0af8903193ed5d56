//! Loopback ports that belong to one test for as long as it holds them, so
//! a child process can bind them — and bind them again after a kill -9 —
//! without racing anything else on the machine for them.
//!
//! A [`ReservedPort`] is a socket bound to `127.0.0.1:port` that never
//! listens. It is bound *without* `SO_REUSEADDR` (so the bind fails if
//! anything at all holds the port: another reservation, a listener, a
//! connection's local end) and then marked reusable. Linux then:
//!
//! - lets a process that binds with `SO_REUSEADDR` (as `raftcfg serve`
//!   does) bind and listen on the port beside it;
//! - never hands the port to `bind(…:0)` or to an outgoing connection's
//!   ephemeral port while the reservation lives;
//! - refuses connections to it while no child listens (nothing listens on
//!   the reservation itself), as for a port nobody holds.
//!
//! So a killed node's port stays its own until it restarts, and clients of
//! a dead node see "connection refused", as they would in production.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpSocket;

/// A loopback port held for this test (see the module doc).
pub struct ReservedPort {
    socket: TcpSocket,
    port: u16,
}

impl ReservedPort {
    /// A port nothing else holds, chosen by the system.
    pub fn any() -> Self {
        Self::try_at(0).expect("reserve a loopback port")
    }

    /// `port` itself, if nothing else holds it.
    pub fn try_at(port: u16) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        socket.set_reuseaddr(true)?;
        let port = socket.local_addr()?.port();
        Ok(Self { socket, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Debug for ReservedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservedPort")
            .field("port", &self.port)
            .field("fd", &std::os::fd::AsRawFd::as_raw_fd(&self.socket))
            .finish()
    }
}

/// A base port and reservations of `base + offset` for every offset (the
/// first reservation is the base itself).
pub fn reserve_block(offsets: &[u16]) -> (u16, Vec<ReservedPort>) {
    let highest = offsets.iter().copied().max().unwrap_or(0);
    for _ in 0..1_000 {
        let base = ReservedPort::any();
        if base.port().checked_add(highest).is_none() {
            continue;
        }
        let others: std::io::Result<Vec<ReservedPort>> = offsets
            .iter()
            .filter(|&&offset| offset != 0)
            .map(|&offset| ReservedPort::try_at(base.port() + offset))
            .collect();
        if let Ok(others) = others {
            let port = base.port();
            return (port, std::iter::once(base).chain(others).collect());
        }
    }
    panic!("found no free block of loopback ports at offsets {offsets:?}");
}
