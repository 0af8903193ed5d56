//! [`Revision`]: the cluster-wide counter of successful writes.

use std::fmt;

use bytes::{Buf, BufMut};

use crate::codec::{Decode, DecodeError, Encode};

/// A point in the key-value history: the number of successful writes (puts
/// and deletes) the cluster has applied. Revision 0 is the empty store
/// before any write; the first write gets revision 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub u64);

impl Revision {
    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// A revision is encoded as a big-endian `u64`.
impl Encode for Revision {
    fn encode_to<B: BufMut>(&self, out: &mut B) {
        out.put_u64(self.0);
    }
}

impl Decode for Revision {
    fn decode_from<B: Buf>(input: &mut B) -> Result<Self, DecodeError> {
        Ok(Self(input.try_get_u64()?))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Revision {
    fn from(value: u64) -> Self {
        Self(value)
    }
}
