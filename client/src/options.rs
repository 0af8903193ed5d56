//! [`ClientOptions`]: the timeouts of a [`Client`](crate::Client) and
//! their defaults.

use std::time::Duration;

/// How long a request with a small body may take, from connecting to the
/// last byte of the answer, unless [`ClientOptions`] say otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// Whole-request limit for everything except watch and snapshot bodies.
    pub request_timeout: Duration,
    /// Limit on connecting to one endpoint.
    pub connect_timeout: Duration,
    /// Longest silence on a watch or snapshot stream.
    pub stream_idle_timeout: Duration,
    /// How long a watch retries after losing its connection.
    pub watch_reconnect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            watch_reconnect_timeout: DEFAULT_WATCH_RECONNECT_TIMEOUT,
        }
    }
}
