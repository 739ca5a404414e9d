//! Reply payloads: SPS into a growable buffer, and how a failed call is answered.
//!
//! mapcore-sps's [`Writer`] writes into a caller's slice; [`encode`] gives it a `Vec` and retries
//! with a larger one when the reply does not fit, so a handler never sizes its reply by hand.

use std::fmt;

use mapcore_sps::{BufferTooSmall, Writer};

/// Largest reply we build: beyond this a write is reported as a failure, not an abort.
const MAX_REPLY: usize = 1 << 31;

/// Encodes a reply with `write`, growing the buffer until it fits.
///
/// # Errors
///
/// The reply would exceed [`MAX_REPLY`].
pub(crate) fn encode(
    hint: usize,
    write: impl Fn(&mut Writer<'_>) -> Result<(), BufferTooSmall>,
) -> Result<Vec<u8>, Failure> {
    let mut capacity = hint.clamp(64, MAX_REPLY);
    loop {
        let mut buf = vec![0u8; capacity];
        let mut writer = Writer::new(&mut buf);
        if write(&mut writer).is_ok() {
            let len = writer.finish();
            buf.truncate(len);
            return Ok(buf);
        }
        if capacity >= MAX_REPLY {
            return Err(Failure::rejected(format_args!(
                "reply exceeds {MAX_REPLY} bytes"
            )));
        }
        capacity = capacity.saturating_mul(2).min(MAX_REPLY);
    }
}

/// Why a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The input itself is wrong: undecodable arguments, the wrong instance, an unknown tag or
    /// handle. Counted as a protocol error and logged.
    Protocol,
    /// Well-formed, but refused: the map rejected it, a library did not load, an address
    /// cannot be read. Only the controller hears about it.
    Rejected,
}

/// A failed call: its kind and the message for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Failure {
    /// A protocol error with `message`.
    pub(crate) fn protocol(message: fmt::Arguments<'_>) -> Self {
        Self {
            kind: FailureKind::Protocol,
            message: message.to_string(),
        }
    }

    /// A refused request with `message`.
    pub(crate) fn rejected(message: fmt::Arguments<'_>) -> Self {
        Self {
            kind: FailureKind::Rejected,
            message: message.to_string(),
        }
    }

    /// Undecodable arguments of `wrapper`.
    pub(crate) fn decode(wrapper: &str, error: impl fmt::Display) -> Self {
        Self::protocol(format_args!(
            "{wrapper}: cannot decode the arguments: {error}"
        ))
    }

    /// An instance argument that is not the one advertised for `wrapper`.
    pub(crate) fn wrong_instance(wrapper: &str, instance: u64) -> Self {
        Self::protocol(format_args!(
            "{wrapper}: {instance:#x} is not the instance this executor advertised"
        ))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a wrapper returns on the wire, which decides how a failure is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `Expected<T>`: a failure is `00` then the message.
    Expected,
    /// `Error`: a failure is `01` then the message.
    Error,
    /// `void`: success is an empty payload; a failure is an SPS `Error` (`01` then the
    /// message). LLVM's controller ignores it (it decodes nothing), a stricter one sees it.
    Void,
    /// A plain value (`int64_t`, `Sequence<T>`) with no error channel: a failure is an empty
    /// payload, which is how LLVM's own executor sends its out-of-band errors, and which makes
    /// the controller fail the call with "could not deserialize" instead of reading a bogus
    /// value.
    Plain,
}

impl Shape {
    /// The reply payload for a failure.
    pub(crate) fn failure(self, failure: &Failure) -> Vec<u8> {
        let message: &dyn fmt::Display = failure;
        let written = match self {
            Self::Expected => encode(failure.message.len() + 16, |w| {
                w.expected::<u64>(Err(message))
            }),
            Self::Error | Self::Void => {
                encode(failure.message.len() + 16, |w| w.error(Err(message)))
            }
            Self::Plain => return Vec::new(),
        };
        // Only an absurdly long message can fail to encode; send it without the message then.
        written.unwrap_or_else(|_| match self {
            Self::Expected => vec![0; 9],
            _ => [1u8].into_iter().chain([0; 8]).collect(),
        })
    }
}

/// An `Expected<ExecutorAddr>` success.
pub(crate) fn expected_addr(addr: u64) -> Result<Vec<u8>, Failure> {
    encode(16, |w| w.expected(Ok(&addr)))
}

/// An `Error` success: the single byte `00`.
pub(crate) fn no_error() -> Vec<u8> {
    vec![0]
}
