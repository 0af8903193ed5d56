//! Checksummed records: every value the Raft log store writes is sealed
//! with a CRC32 of its bytes, so a value damaged on disk is detected when it
//! is read instead of being handed to the Raft core.
//!
//! A sealed value is the big-endian CRC32 (IEEE, as `crc32fast` computes it)
//! of the payload, followed by the payload.

/// Why a sealed value could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// The value is too short to hold a checksum.
    #[error("the value is {0} bytes, too short for its checksum")]
    TooShort(usize),
    /// The checksum does not match the payload.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Mismatch {
        /// The checksum stored with the value.
        stored: u32,
        /// The checksum of the payload as read.
        computed: u32,
    },
}

const CHECKSUM_BYTES: usize = 4;

/// `payload` with its checksum in front, ready to store.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(CHECKSUM_BYTES + payload.len());
    sealed.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    sealed.extend_from_slice(payload);
    sealed
}

/// The payload of a value made by [`seal`], once its checksum matches.
pub fn unseal(value: &[u8]) -> Result<&[u8], ChecksumError> {
    let Some((checksum, payload)) = value.split_first_chunk::<CHECKSUM_BYTES>() else {
        return Err(ChecksumError::TooShort(value.len()));
    };
    let stored = u32::from_be_bytes(*checksum);
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(ChecksumError::Mismatch { stored, computed });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_to_its_payload() {
        assert_eq!(unseal(&seal(b"entry")), Ok(&b"entry"[..]));
        assert_eq!(unseal(&seal(b"")), Ok(&b""[..]));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let sealed = seal(b"a log entry");
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[byte] ^= 1 << bit;
                assert!(unseal(&damaged).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_value_shorter_than_a_checksum_is_refused() {
        assert_eq!(unseal(b"abc"), Err(ChecksumError::TooShort(3)));
    }
}
