//! A batch of peer messages: what one peer request carries.
//!
//! ```text
//! u32 count | message body*   (each as in `message.rs`)
//! ```

use bytes::{Buf, BufMut};
use raftcfg_raft::Message;

use super::{Decode, DecodeError, Encode, get_len, put_len};

/// The fewest bytes one encoded message takes (cluster, from, to, term, tag).
const MIN_MESSAGE_BYTES: usize = 33;

/// Messages sent to one peer in one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageBatch(pub Vec<Message>);

impl Encode for MessageBatch {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        self.0.as_slice().encode_to(out);
    }
}

/// A slice of messages encodes as the batch of them (so a sender can
/// encode messages it still owns).
impl Encode for [Message] {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        put_len(out, self.len());
        for message in self {
            message.encode_to(out);
        }
    }
}

impl Decode for MessageBatch {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        let count = get_len(input, MIN_MESSAGE_BYTES)?;
        let mut messages = Vec::with_capacity(count);
        for _ in 0..count {
            messages.push(Message::decode_from(input)?);
        }
        Ok(Self(messages))
    }
}

#[cfg(test)]
mod tests {
    use raftcfg_raft::{ClusterId, MessageBody, NodeId, Term};

    use super::super::testing::{assert_every_truncation_fails, assert_garbage_never_panics};
    use super::super::{decode, encode};
    use super::*;

    fn heartbeat(to: u64) -> Message {
        Message {
            cluster_id: ClusterId(9),
            from: NodeId(1),
            to: NodeId(to),
            term: Term(3),
            body: MessageBody::TimeoutNow,
        }
    }

    #[test]
    fn a_batch_round_trips_and_refuses_truncation() {
        let batch = MessageBatch(vec![heartbeat(2), heartbeat(3)]);
        let bytes = encode(&batch);
        assert_eq!(decode::<MessageBatch>(&bytes[..]).unwrap(), batch);
        assert_every_truncation_fails::<MessageBatch>(&bytes);
        assert_eq!(
            decode::<MessageBatch>(&encode(&MessageBatch(vec![]))[..]).unwrap(),
            MessageBatch(vec![])
        );
    }

    #[test]
    fn garbage_never_panics() {
        assert_garbage_never_panics::<MessageBatch>(11);
    }
}
