//! [`ClientOptions`]: the timeouts of a [`Client`](crate::Client) and
//! their defaults.

use std::time::Duration;

/// How long a request with a small body may take at one endpoint, from
/// connecting to the last byte of the answer, unless [`ClientOptions`] say
/// otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a read waits for one endpoint to start answering before it
/// tries the next.
pub const DEFAULT_READ_FAILOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connecting to one endpoint may take before the next is tried.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a watch or snapshot stream may stay silent (no event, no
/// keep-alive comment, no bytes) before the connection is considered dead.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a broken watch keeps trying to reconnect before it gives up.
pub const DEFAULT_WATCH_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeouts of a [`Client`](crate::Client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Limit on a whole request at one endpoint, for everything except
    /// watch and snapshot bodies.
    pub request_timeout: Duration,
    /// How long a read waits for an endpoint's answer to start before it
    /// moves on to the next endpoint (the last one tried gets the whole
    /// `request_timeout`). Writes never move on after sending: a
    /// write that times out has an unknown outcome.
    pub read_failover_timeout: Duration,
    /// Limit on connecting to one endpoint.
    pub connect_timeout: Duration,
    /// Longest silence on a watch or snapshot stream.
    pub stream_idle_timeout: Duration,
    /// How long a watch retries after losing its connection.
    pub watch_reconnect_timeout: Duration,
    /// TLS for https:// endpoints.
    pub tls: ClientTls,
    /// How to sign in where auth is enabled (none: anonymous, or by the
    /// client certificate of `tls`).
    pub credentials: Option<crate::Credentials>,
}

/// What a [`Client`](crate::Client) trusts and presents over TLS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM certificates of the CAs to trust instead of the system's (the
    /// cluster's own CA, say).
    pub ca_pem: Option<Vec<u8>>,
    /// A PEM client certificate chain and its private key, for servers
    /// that ask for one.
    pub identity_pem: Option<Vec<u8>>,
}

/// Never shows the private key of the identity.
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("identity_pem", &self.identity_pem.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            read_failover_timeout: DEFAULT_READ_FAILOVER_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            watch_reconnect_timeout: DEFAULT_WATCH_RECONNECT_TIMEOUT,
            tls: ClientTls::default(),
            credentials: None,
        }
    }
}
