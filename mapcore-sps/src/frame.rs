//! Message framing: the 32-byte header in front of every SPS payload.
//!
//! Four little-endian u64 fields: total size including the header, opcode, sequence number,
//! tag (the wrapper's address for a call, 0 otherwise). The same format runs both ways.

use crate::codec::{DecodeError, Reader};

/// Length of the message header in bytes.
pub const HEADER_LEN: usize = 32;

/// Byte offset of each header field, for error offsets.
const SIZE_AT: usize = 0;
const OPCODE_AT: usize = 8;

/// What a message is. A `uint8_t` enum in C++, carried in a full u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// The executor's first message: triple, page size, bootstrap map and symbols.
    Setup,
    /// End of session with an SPS `Error` payload (LLVM 22 closes the stream instead).
    Hangup,
    /// The reply to a call, with the call's sequence number and tag 0.
    Result,
    /// A call of the wrapper whose address is the tag.
    CallWrapper,
}

impl Opcode {
    /// The opcode for a wire value, or `None` for anything but 0 to 3.
    #[must_use]
    pub const fn from_u64(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Setup),
            1 => Some(Self::Hangup),
            2 => Some(Self::Result),
            3 => Some(Self::CallWrapper),
            _ => None,
        }
    }

    /// The wire value.
    #[must_use]
    pub const fn to_u64(self) -> u64 {
        match self {
            Self::Setup => 0,
            Self::Hangup => 1,
            Self::Result => 2,
            Self::CallWrapper => 3,
        }
    }
}

/// A decoded message header. Its total size (payload plus header) always fits a u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    opcode: Opcode,
    seqno: u64,
    tag: u64,
    payload_len: usize,
}

impl Header {
    /// A header for a payload of `payload_len` bytes, or `None` if the total size would not fit
    /// a u64.
    #[must_use]
    pub fn new(opcode: Opcode, seqno: u64, tag: u64, payload_len: usize) -> Option<Self> {
        u64::try_from(payload_len)
            .ok()?
            .checked_add(HEADER_LEN as u64)?;
        Some(Self {
            opcode,
            seqno,
            tag,
            payload_len,
        })
    }

    /// The opcode.
    #[must_use]
    pub const fn opcode(&self) -> Opcode {
        self.opcode
    }

    /// The sequence number: the controller's for calls, echoed by results; 0 for setup.
    #[must_use]
    pub const fn seqno(&self) -> u64 {
        self.seqno
    }

    /// The tag: the wrapper's address for a call, 0 otherwise.
    #[must_use]
    pub const fn tag(&self) -> u64 {
        self.tag
    }

    /// The payload length: the size field minus the header.
    #[must_use]
    pub const fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The size field: payload plus header.
    #[must_use]
    pub const fn size(&self) -> u64 {
        // `new` and `decode` guarantee the sum fits.
        (self.payload_len as u64).saturating_add(HEADER_LEN as u64)
    }

    /// Decodes a header, as read from the stream before its payload.
    ///
    /// # Errors
    ///
    /// [`DecodeError::MessageTooSmall`] if the size is below [`HEADER_LEN`],
    /// [`DecodeError::ValueTooLarge`] if the payload length does not fit `usize`, and
    /// [`DecodeError::UnknownOpcode`] for an opcode above 3.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let size = r.u64()?;
        let opcode = r.u64()?;
        let seqno = r.u64()?;
        let tag = r.u64()?;
        let payload = size
            .checked_sub(HEADER_LEN as u64)
            .ok_or(DecodeError::MessageTooSmall { offset: SIZE_AT })?;
        let payload_len =
            usize::try_from(payload).map_err(|_| DecodeError::ValueTooLarge { offset: SIZE_AT })?;
        let opcode =
            Opcode::from_u64(opcode).ok_or(DecodeError::UnknownOpcode { offset: OPCODE_AT })?;
        Ok(Self {
            opcode,
            seqno,
            tag,
            payload_len,
        })
    }

    /// The header's 32 wire bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields = [self.size(), self.opcode.to_u64(), self.seqno, self.tag];
        for (chunk, field) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(size: u64, opcode: u64, seqno: u64, tag: u64) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&size.to_le_bytes());
        out[8..16].copy_from_slice(&opcode.to_le_bytes());
        out[16..24].copy_from_slice(&seqno.to_le_bytes());
        out[24..].copy_from_slice(&tag.to_le_bytes());
        out
    }

    #[test]
    fn opcodes_match_the_wire() {
        for (value, op) in [
            (0, Opcode::Setup),
            (1, Opcode::Hangup),
            (2, Opcode::Result),
            (3, Opcode::CallWrapper),
        ] {
            assert_eq!(Opcode::from_u64(value), Some(op));
            assert_eq!(op.to_u64(), value);
        }
        assert_eq!(Opcode::from_u64(4), None);
        assert_eq!(Opcode::from_u64(u64::MAX), None);
    }

    #[test]
    fn call_header_golden() {
        // Trace step 5: seq 3, tag = initialize wrapper, 264-byte payload.
        let bytes = golden(32 + 264, 3, 3, 0x5555_0000_1234);
        let header = Header::decode(&bytes).unwrap();
        assert_eq!(header.opcode(), Opcode::CallWrapper);
        assert_eq!((header.seqno(), header.tag()), (3, 0x5555_0000_1234));
        assert_eq!((header.payload_len(), header.size()), (264, 296));
        assert_eq!(header.to_bytes(), bytes);
    }

    #[test]
    fn setup_header_golden() {
        // Trace step 1: size 2233, seq 0, tag 0.
        let header = Header::new(Opcode::Setup, 0, 0, 2201).unwrap();
        assert_eq!(header.to_bytes(), golden(2233, 0, 0, 0));
    }

    #[test]
    fn bad_headers_are_rejected() {
        assert_eq!(
            Header::decode(&golden(31, 2, 0, 0)),
            Err(DecodeError::MessageTooSmall { offset: 0 })
        );
        assert_eq!(
            Header::decode(&golden(32, 2, 0, 0)).map(|h| h.payload_len()),
            Ok(0)
        );
        assert_eq!(
            Header::decode(&golden(40, 4, 0, 0)),
            Err(DecodeError::UnknownOpcode { offset: 8 })
        );
        if usize::BITS < 64 {
            assert_eq!(
                Header::decode(&golden(u64::MAX, 2, 0, 0)),
                Err(DecodeError::ValueTooLarge { offset: 0 })
            );
        }
    }

    #[test]
    fn header_size_always_fits() {
        if usize::BITS == 64 {
            assert_eq!(Header::new(Opcode::Result, 0, 0, usize::MAX), None);
        }
        let max = Header::new(Opcode::Result, 0, 0, usize::MAX - 32);
        assert!(max.is_none() || max.is_some_and(|h| h.size() == (usize::MAX as u64)));
    }
}
