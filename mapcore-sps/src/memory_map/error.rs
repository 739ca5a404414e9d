//! Why an initialize argument buffer does not decode into a mapcore request.

use core::fmt;

use mapcore::{MAX_ACTION_PAIRS, MAX_SEGMENTS};

use super::action::MAX_WIRE_ACTION_ARGS;
use crate::codec::DecodeError;

/// Why an initialize argument buffer could not be decoded into a mapcore request, and the byte
/// offset of the value at fault (from the start of the argument buffer).
///
/// Only the encoding and the request's fixed capacities are checked; the map validates the
/// request itself when it is initialized.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestDecodeError {
    /// The bytes are not valid SPS for the argument shape.
    Decode(DecodeError),
    /// A segment's group byte, at `offset`, has a bit above the finalize-lifetime bit.
    UnknownGroup {
        /// The group byte.
        offset: usize,
    },
    /// The segment count, at `offset`, is above mapcore's [`MAX_SEGMENTS`].
    TooManySegments {
        /// Start of the count.
        offset: usize,
    },
    /// The action pair count, at `offset`, is above mapcore's [`MAX_ACTION_PAIRS`].
    TooManyActionPairs {
        /// Start of the count.
        offset: usize,
    },
    /// An alloc action carries more than [`MAX_WIRE_ACTION_ARGS`] argument bytes; `offset` is
    /// the start of its argument sequence.
    ActionArgsTooLong {
        /// Start of the argument sequence.
        offset: usize,
    },
}

impl RequestDecodeError {
    /// The byte offset of the value at fault.
    #[must_use]
    pub const fn offset(self) -> usize {
        match self {
            Self::Decode(error) => error.offset(),
            Self::UnknownGroup { offset }
            | Self::TooManySegments { offset }
            | Self::TooManyActionPairs { offset }
            | Self::ActionArgsTooLong { offset } => offset,
        }
    }
}

impl From<DecodeError> for RequestDecodeError {
    fn from(error: DecodeError) -> Self {
        Self::Decode(error)
    }
}

impl fmt::Display for RequestDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset();
        match self {
            Self::Decode(error) => fmt::Display::fmt(error, f),
            Self::UnknownGroup { .. } => {
                write!(f, "unknown allocation group bits at byte {offset}")
            }
            Self::TooManySegments { .. } => {
                write!(
                    f,
                    "more than {MAX_SEGMENTS} segments in the count at byte {offset}"
                )
            }
            Self::TooManyActionPairs { .. } => {
                write!(
                    f,
                    "more than {MAX_ACTION_PAIRS} action pairs in the count at byte {offset}"
                )
            }
            Self::ActionArgsTooLong { .. } => {
                write!(
                    f,
                    "alloc action arguments at byte {offset} exceed {MAX_WIRE_ACTION_ARGS} bytes"
                )
            }
        }
    }
}

impl core::error::Error for RequestDecodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Decode(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn display_is_lower_case_without_period_and_names_the_offset() {
        let samples = [
            RequestDecodeError::Decode(DecodeError::Truncated { offset: 3 }),
            RequestDecodeError::UnknownGroup { offset: 3 },
            RequestDecodeError::TooManySegments { offset: 3 },
            RequestDecodeError::TooManyActionPairs { offset: 3 },
            RequestDecodeError::ActionArgsTooLong { offset: 3 },
        ];
        for e in samples {
            let text = e.to_string();
            assert!(!text.starts_with(char::is_uppercase), "{text}");
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.contains('3'), "{text}");
            assert_eq!(e.offset(), 3);
        }
    }

    #[test]
    fn a_decode_error_is_the_source() {
        use core::error::Error as _;
        let inner = DecodeError::TrailingBytes { offset: 9 };
        let e = RequestDecodeError::from(inner);
        assert_eq!(e.to_string(), inner.to_string());
        assert!(e.source().is_some());
        assert!(RequestDecodeError::UnknownGroup { offset: 0 }
            .source()
            .is_none());
    }
}
