//! Decode and encode failures.

use core::fmt;

/// Why an SPS buffer could not be decoded, and the byte offset of the value at fault.
///
/// The offset is counted from the start of the buffer given to the [`Reader`](super::Reader)
/// (for a message header, from the start of the header).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The buffer ends inside the value that starts at `offset`.
    Truncated {
        /// Start of the incomplete value.
        offset: usize,
    },
    /// The sequence count at `offset` does not fit `usize`, or claims more elements than the
    /// remaining bytes could hold.
    CountTooLarge {
        /// Start of the count.
        offset: usize,
    },
    /// The u64 at `offset` is an address or size that does not fit `usize`.
    ValueTooLarge {
        /// Start of the u64.
        offset: usize,
    },
    /// The byte at `offset` is a bool other than 0 or 1.
    InvalidBool {
        /// The byte.
        offset: usize,
    },
    /// A string is not UTF-8; `offset` is its first invalid byte.
    InvalidUtf8 {
        /// The first invalid byte.
        offset: usize,
    },
    /// The value is complete but bytes follow it, starting at `offset`.
    TrailingBytes {
        /// The first unread byte.
        offset: usize,
    },
    /// The message header's opcode, at `offset`, is not one of the four opcodes.
    UnknownOpcode {
        /// Start of the opcode.
        offset: usize,
    },
    /// The message header's size, at `offset`, is smaller than the header itself.
    MessageTooSmall {
        /// Start of the size.
        offset: usize,
    },
}

impl DecodeError {
    /// The byte offset of the value at fault.
    #[must_use]
    pub const fn offset(self) -> usize {
        match self {
            Self::Truncated { offset }
            | Self::CountTooLarge { offset }
            | Self::ValueTooLarge { offset }
            | Self::InvalidBool { offset }
            | Self::InvalidUtf8 { offset }
            | Self::TrailingBytes { offset }
            | Self::UnknownOpcode { offset }
            | Self::MessageTooSmall { offset } => offset,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset();
        match self {
            Self::Truncated { .. } => write!(f, "input ends inside the value at byte {offset}"),
            Self::CountTooLarge { .. } => {
                write!(
                    f,
                    "sequence count at byte {offset} exceeds the remaining input"
                )
            }
            Self::ValueTooLarge { .. } => {
                write!(
                    f,
                    "address or size at byte {offset} does not fit the address space"
                )
            }
            Self::InvalidBool { .. } => write!(f, "bool at byte {offset} is neither 0 nor 1"),
            Self::InvalidUtf8 { .. } => write!(f, "string is not utf-8 at byte {offset}"),
            Self::TrailingBytes { .. } => write!(f, "unexpected bytes after byte {offset}"),
            Self::UnknownOpcode { .. } => write!(f, "unknown opcode at byte {offset}"),
            Self::MessageTooSmall { .. } => {
                write!(
                    f,
                    "message size at byte {offset} is smaller than the header"
                )
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// The output buffer is too small for the value; nothing of the failing value was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn display_is_lower_case_without_period_and_names_the_offset() {
        let samples = [
            DecodeError::Truncated { offset: 3 },
            DecodeError::CountTooLarge { offset: 3 },
            DecodeError::ValueTooLarge { offset: 3 },
            DecodeError::InvalidBool { offset: 3 },
            DecodeError::InvalidUtf8 { offset: 3 },
            DecodeError::TrailingBytes { offset: 3 },
            DecodeError::UnknownOpcode { offset: 3 },
            DecodeError::MessageTooSmall { offset: 3 },
        ];
        for e in samples {
            let text = e.to_string();
            assert!(!text.starts_with(char::is_uppercase), "{text}");
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.contains('3'), "{text}");
            assert_eq!(e.offset(), 3);
        }
        assert_eq!(BufferTooSmall.to_string(), "output buffer too small");
    }
}
