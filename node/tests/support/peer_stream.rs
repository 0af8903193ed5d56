//! Raw peer streams to a node's peer port, for tests that send frames a
//! real member never would (see `raftcfg_node::transport`'s stream format:
//! an HTTP/1.1 upgrade, then frames of a 4-byte big-endian length and a
//! message batch).

use std::time::Duration;

use raftcfg_node::transport::{STREAM_PATH, STREAM_PROTOCOL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::patience::patience;

/// Opens a stream to the peer port `port`; panics unless the node
/// switches protocols.
pub async fn open(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "POST {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Connection: upgrade\r\nUpgrade: {STREAM_PROTOCOL}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(
            stream
                .read_u8()
                .await
                .expect("the node answers the upgrade"),
        );
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "the node did not open a stream: {}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Writes a frame declaring `length` bytes, followed by `payload` (which
/// may be shorter or longer than it declares).
pub async fn send_frame(
    stream: &mut TcpStream,
    length: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(payload).await
}

/// Whether the node closes `stream` within a (scaled) few seconds; it
/// never writes on a stream, so any read that returns means closed.
pub async fn closed_by_node(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(patience(Duration::from_secs(5)), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}
