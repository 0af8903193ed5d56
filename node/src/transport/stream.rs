//! Peer streams: one long-lived connection from a member to each peer,
//! carrying the member's Raft messages to it in order, one way, with no
//! answers. A batch of messages costs one write on the sending side and
//! one read on the receiving side, where a request would also cost an
//! answer, a second wake-up and the HTTP machinery of both.
//!
//! The sender opens a stream on the peer port with an HTTP/1.1 upgrade:
//! `POST /raft/v1/stream` with `Upgrade: raftcfg-peer-stream/1` and its
//! peer URL in [`SENDER_URL_HEADER`]. After `101 Switching Protocols` the
//! connection carries frames, each a 4-byte big-endian length and then a
//! [`MessageBatch`] in the binary codec. The receiver never writes, so the
//! sender learns that a stream ended from its read side (end of stream)
//! or from a failed write; data the network has not acknowledged within
//! [`UNACKNOWLEDGED_LIMIT`] breaks the connection (`TCP_USER_TIMEOUT`), so
//! a peer that vanished without closing is noticed in seconds.
//!
//! The receiver holds each stream to the peer port's limits: a frame longer
//! than a legitimate batch, an undecodable frame, a frame that arrives too
//! slowly or a driver that cannot take more messages ends the stream. The
//! sender then reconnects after a pause, as it would after a lost request;
//! Raft resends whatever mattered.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use raftcfg_raft::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::sender::Local;
use super::server::PeerState;
use super::{SENDER_ID_HEADER, SENDER_URL_HEADER};
use crate::codec::{self, MessageBatch};

/// Path of the stream endpoint on the peer port.
pub const STREAM_PATH: &str = "/raft/v1/stream";
/// The protocol named in the upgrade.
pub const STREAM_PROTOCOL: &str = "raftcfg-peer-stream/1";

/// Time to connect to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for the upgrade's request and answer.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(5);
/// Data sent but not acknowledged by the peer's machine for this long
/// breaks the connection.
pub const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(5);
/// A receiver ends a stream that brought nothing for this long; a sender
/// closes its own after [`SENDER_IDLE_CLOSE`], well before, so it never
/// writes into a stream the receiver is closing.
const RECEIVER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A sender closes a stream it had nothing to send on for this long.
pub const SENDER_IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Time for the rest of a frame once its length arrived.
const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The receiver's read buffer: many small frames per system call.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Why a stream could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0} is not an http:// or https:// peer URL")]
    BadUrl(String),
    #[error("{0} is a plain http:// peer URL, but this member's peers use TLS")]
    PlainPeer(String),
    #[error("{0} is an https:// peer URL, but this member has no peer TLS (--peer-cert-file)")]
    NoPeerTls(String),
    #[error("the TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error("the upgrade failed: {0}")]
    Upgrade(#[from] hyper::Error),
    #[error("the upgrade timed out")]
    UpgradeTimeout,
    #[error("the peer refused the stream: {0}")]
    Refused(StatusCode),
    #[error("writing: {0}")]
    Write(std::io::Error),
    #[error("the peer closed the stream")]
    ClosedByPeer,
}

/// The sending end of a stream to one peer.
pub struct OutgoingStream {
    io: TokioIo<Upgraded>,
    /// A second handle on the socket, for writes from outside the runtime
    /// (see `link`); none over TLS, where every byte goes through the TLS
    /// session.
    socket: Option<socket2::Socket>,
}

impl OutgoingStream {
    /// Opens a stream to the peer at `peer_url` (over TLS with `tls`, which
    /// an `https://` URL needs and an `http://` one refuses).
    pub async fn open(
        peer_url: &str,
        local: &Local,
        tls: Option<&TlsConnector>,
    ) -> Result<Self, StreamError> {
        let (authority, secure) = match (
            peer_url.strip_prefix("https://"),
            peer_url.strip_prefix("http://"),
        ) {
            (Some(authority), _) => (authority, true),
            (None, Some(authority)) => (authority, false),
            (None, None) => return Err(StreamError::BadUrl(peer_url.to_owned())),
        };
        if authority.is_empty() || authority.contains('/') {
            return Err(StreamError::BadUrl(peer_url.to_owned()));
        }
        let tls = match (secure, tls) {
            (true, Some(tls)) => Some(tls),
            (false, None) => None,
            (true, None) => return Err(StreamError::NoPeerTls(peer_url.to_owned())),
            (false, Some(_)) => return Err(StreamError::PlainPeer(peer_url.to_owned())),
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
            .await
            .map_err(|_| StreamError::ConnectTimeout)?
            .map_err(StreamError::Connect)?;
        tcp.set_nodelay(true).map_err(StreamError::Connect)?;
        let socket = socket2::SockRef::from(&tcp);
        socket
            .set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT))
            .map_err(StreamError::Connect)?;
        // Over TLS every byte goes through the session: no second handle.
        let socket = match tls {
            None => Some(socket.try_clone().map_err(StreamError::Connect)?),
            Some(_) => None,
        };
        let opening = async {
            match tls {
                None => upgrade(tcp, authority, local).await,
                Some(tls) => {
                    let name = server_name(authority)
                        .ok_or_else(|| StreamError::BadUrl(peer_url.to_owned()))?;
                    let tls = tls
                        .connect(name, tcp)
                        .await
                        .map_err(StreamError::Handshake)?;
                    upgrade(tls, authority, local).await
                }
            }
        };
        let upgraded = tokio::time::timeout(UPGRADE_TIMEOUT, opening)
            .await
            .map_err(|_| StreamError::UpgradeTimeout)??;
        Ok(Self {
            io: TokioIo::new(upgraded),
            socket,
        })
    }

    /// The second handle on the socket, once (none over TLS): writes on it
    /// go straight to the connection, beside this stream's (the caller
    /// keeps them apart). Non-blocking, like the socket.
    pub fn take_socket(&mut self) -> Option<socket2::Socket> {
        self.socket.take()
    }

    /// Writes `messages` as one frame.
    pub async fn send(&mut self, messages: &[Message]) -> Result<(), StreamError> {
        self.write(&encode_frame(messages)).await
    }

    /// Writes `bytes` (whole frames, or the end of one) as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.io.write_all(bytes).await.map_err(StreamError::Write)
    }

    /// Resolves once the stream can no longer be used: the receiver closed
    /// it, the connection broke, or the receiver wrote (which it never
    /// does). Cancel-safe.
    pub async fn closed(&mut self) {
        let mut byte = [0u8; 1];
        let _ = self.io.read(&mut byte).await;
    }
}

/// `messages` as one frame: the batch's length, big-endian, then the batch.
pub fn encode_frame(messages: &[Message]) -> Vec<u8> {
    let batch = codec::encode(messages);
    let length = u32::try_from(batch.len()).expect("a batch is far below 4 GiB");
    let mut frame = Vec::with_capacity(4 + batch.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&batch);
    frame
}

/// The name a peer's certificate must carry: the host of `authority`
/// (`host:port`, an IPv6 address in brackets).
fn server_name(authority: &str) -> Option<ServerName<'static>> {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned()).ok()
}

/// Sends the upgrade request on `io` and waits for the switch.
async fn upgrade<I>(io: I, authority: &str, local: &Local) -> Result<Upgraded, StreamError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // Drives the connection until the upgrade hands it over.
    tokio::spawn(connection.with_upgrades());
    let mut request = Request::post(STREAM_PATH)
        .header(header::HOST, authority)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, STREAM_PROTOCOL)
        .header(SENDER_URL_HEADER, &local.url);
    if let Some(id) = local.id() {
        request = request.header(SENDER_ID_HEADER, id.get());
    }
    let request = request
        .body(Body::empty())
        .expect("the upgrade request is well formed");
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(StreamError::Refused(response.status()));
    }
    Ok(hyper::upgrade::on(response).await?)
}

/// Answers a request to open a stream: `101` and a task that receives it,
/// or why not.
pub fn accept(state: &PeerState, mut request: Request<Body>) -> Response {
    let headers = request.headers();
    if !asks_for_stream(headers) {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, STREAM_PROTOCOL)],
            format!("{STREAM_PATH} only opens a stream: send Upgrade: {STREAM_PROTOCOL}"),
        )
            .into_response();
    }
    let sender_url = headers
        .get(SENDER_URL_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned);
    if let Some(gone) = super::removed_sender(&state.node, headers) {
        return gone;
    }
    let Ok(slot) = state.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this member has as many peer streams open as it takes",
        )
            .into_response();
    };
    let switched = hyper::upgrade::on(&mut request);
    let state = state.clone();
    tokio::spawn(async move {
        match switched.await {
            Ok(upgraded) => receive(TokioIo::new(upgraded), &state, sender_url).await,
            Err(error) => tracing::debug!(%error, "a peer stream's upgrade failed"),
        }
        drop(slot);
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, STREAM_PROTOCOL),
        ],
    )
        .into_response()
}

/// Whether `headers` ask for an upgrade to a peer stream.
fn asks_for_stream(headers: &HeaderMap) -> bool {
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, STREAM_PROTOCOL)
}

/// Hands every frame of a stream to the driver until the stream ends, a
/// frame is refused, or the node stops. Frames that arrived whole while
/// the last ones were being handled go to the driver together, so a
/// follower busy with one fsync makes the next one for all of them.
async fn receive(io: TokioIo<Upgraded>, state: &PeerState, sender_url: Option<String>) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, io);
    let mut stopping = state.stopping.clone();
    loop {
        let length = tokio::select! {
            read = tokio::time::timeout(RECEIVER_IDLE_TIMEOUT, reader.read_u32()) => match read {
                Ok(Ok(length)) => length as usize,
                Ok(Err(_)) => return, // closed by the sender
                Err(_) => {
                    tracing::debug!(?sender_url, "closing a peer stream idle for too long");
                    return;
                }
            },
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let Some(mut messages) = read_batch(&mut reader, state, &sender_url, length).await else {
            return;
        };
        let mut taken = length;
        while let Some(length) = buffered_frame(&reader)
            && taken + length <= state.limits.messages_bytes
        {
            // The length and the frame are in the buffer: no wait.
            if reader.read_u32().await.is_err() {
                return;
            }
            let Some(more) = read_batch(&mut reader, state, &sender_url, length).await else {
                return;
            };
            messages.extend(more);
            taken += length;
        }
        if let Err(error) = state.node.step(messages, sender_url.clone()) {
            tracing::debug!(?sender_url, %error, "closing a peer stream: the driver takes no more");
            return;
        }
    }
}

/// The length of the next frame, if the reader holds all of it already.
fn buffered_frame<R: AsyncRead>(reader: &BufReader<R>) -> Option<usize> {
    let buffered = reader.buffer();
    let length = u32::from_be_bytes(buffered.get(..4)?.try_into().ok()?) as usize;
    (buffered.len() >= 4 + length).then_some(length)
}

/// The messages of the frame of `length` bytes that comes next; `None`
/// (the stream is to close) if it is too long, cut off, undecodable, or
/// from a member that was removed.
async fn read_batch(
    reader: &mut BufReader<TokioIo<Upgraded>>,
    state: &PeerState,
    sender_url: &Option<String>,
    length: usize,
) -> Option<Vec<Message>> {
    if length > state.limits.messages_bytes {
        tracing::warn!(
            ?sender_url,
            length,
            limit = state.limits.messages_bytes,
            "closing a peer stream: a frame is longer than a batch may be"
        );
        return None;
    }
    let Some(frame) = read_frame(reader, state, length).await else {
        tracing::debug!(
            ?sender_url,
            "closing a peer stream: a frame was cut off or too slow"
        );
        return None;
    };
    let batch = match codec::decode::<MessageBatch>(frame) {
        Ok(batch) => batch,
        Err(error) => {
            tracing::warn!(?sender_url, %error, "closing a peer stream: undecodable messages");
            return None;
        }
    };
    // A member removed while its stream was open: ending the stream
    // makes it reconnect, and the upgrade tells it why.
    if batch
        .0
        .first()
        .is_some_and(|m| state.node.saw_removed(m.from))
    {
        tracing::debug!(?sender_url, "closing a peer stream from a removed member");
        return None;
    }
    Some(batch.0)
}

/// The next `length` bytes, read within the peer port's buffer budget and
/// [`FRAME_READ_TIMEOUT`]; `None` if they do not all arrive in time.
async fn read_frame(
    reader: &mut BufReader<TokioIo<Upgraded>>,
    state: &PeerState,
    length: usize,
) -> Option<Bytes> {
    let _permit = state.reserve_buffer(length).await;
    let mut frame = vec![0u8; length];
    match tokio::time::timeout(FRAME_READ_TIMEOUT, reader.read_exact(&mut frame)).await {
        Ok(Ok(_)) => Some(Bytes::from(frame)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_peer_certificate_must_name_the_host_of_its_url() {
        for (authority, name) in [
            ("n1.peers.ns.svc:7380", "n1.peers.ns.svc"),
            ("127.0.0.1:7380", "127.0.0.1"),
            ("[::1]:7380", "::1"),
            ("localhost", "localhost"),
        ] {
            let expected = ServerName::try_from(name.to_owned()).unwrap();
            assert_eq!(server_name(authority), Some(expected), "{authority}");
        }
        assert_eq!(server_name("bad host:7380"), None);
    }

    #[tokio::test]
    async fn a_frame_counts_as_arrived_only_once_the_reader_holds_all_of_it() {
        let (mut sender, receiver) = tokio::io::duplex(1 << 16);
        let mut reader = BufReader::new(receiver);
        let frame = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
        // Two whole frames, then the length and part of the body of a third.
        let third = frame(b"third frame");
        sender.write_all(&frame(b"first")).await.unwrap();
        sender.write_all(&frame(b"second")).await.unwrap();
        sender.write_all(&third[..7]).await.unwrap();
        let read = async |reader: &mut BufReader<_>| {
            let length = reader.read_u32().await.unwrap() as usize;
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            body
        };
        assert_eq!(read(&mut reader).await, b"first");
        assert_eq!(buffered_frame(&reader), Some(6), "the second came whole");
        assert_eq!(read(&mut reader).await, b"second");
        assert_eq!(buffered_frame(&reader), None, "the third is cut short");
        sender.write_all(&third[7..]).await.unwrap();
        assert_eq!(read(&mut reader).await, b"third frame");
        assert_eq!(buffered_frame(&reader), None, "nothing is left");
    }

    #[test]
    fn only_an_upgrade_to_the_stream_protocol_asks_for_a_stream() {
        assert!(asks_for_stream(&headers(&[
            (header::CONNECTION, "Upgrade"),
            (header::UPGRADE, STREAM_PROTOCOL),
        ])));
        assert!(asks_for_stream(&headers(&[
            (header::CONNECTION, "keep-alive, upgrade"),
            (header::UPGRADE, "h2c, raftcfg-peer-stream/1"),
        ])));
        assert!(!asks_for_stream(&headers(&[(
            header::UPGRADE,
            STREAM_PROTOCOL
        )])));
        assert!(!asks_for_stream(&headers(&[
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, "websocket"),
        ])));
        assert!(!asks_for_stream(&HeaderMap::new()));
    }
}
