//! Errors in C: a status code returned by every function, and `mapcore_error`, the details and
//! the message of one failure, written into memory the caller provides.
//!
//! There is no "last error" state, global or per map: each call that can fail takes a
//! `mapcore_error *` (or `NULL`) and fills it on failure, so concurrent calls on one map never
//! see each other's errors.
//!
//! # Safety
//!
//! The only unsafe code is `#[no_mangle]` on `mapcore_status_name`: the symbol is this
//! library's, with the `mapcore_` prefix that no other library uses.
#![expect(
    unsafe_code,
    reason = "mapcore_status_name is exported under its C name"
)]

use core::ffi::{c_char, CStr};
use core::fmt::{self, Write};

use libc::{size_t, uintptr_t};
use mapcore::{ActionError, Error, HostOp, Limit};
use mapcore_std::{OsError, StdError};

/// The outcome of a call: `MAPCORE_OK` (zero), or what went wrong.
///
/// One code per kind of failure of the map, plus the failures of the C boundary itself
/// (`MAPCORE_ERR_INVALID_ARGUMENT`, `MAPCORE_ERR_ARGS_TOO_LONG`, `MAPCORE_ERR_PANIC`). The
/// values are stable. Unless a code's description says otherwise, a failed call changed
/// nothing: no memory, no protection, no action ran.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum mapcore_status {
    /// Success.
    MAPCORE_OK = 0,
    /// A pointer argument that must not be `NULL` was, a segment's group has unknown bits, a
    /// host table lacks a function or reports a bad page size or unknown capability bits.
    /// Nothing was changed.
    MAPCORE_ERR_INVALID_ARGUMENT = 1,
    /// An action's arguments are longer than `MAPCORE_MAX_ACTION_ARGS` bytes; `index` names the
    /// action pair.
    MAPCORE_ERR_ARGS_TOO_LONG = 2,
    /// A reservation size is zero or not a multiple of the page size; `addr` holds the size.
    MAPCORE_ERR_INVALID_SIZE = 3,
    /// A reservation is larger than the configured maximum; `addr` holds the size.
    MAPCORE_ERR_TOO_LARGE = 4,
    /// A table or a per-request limit is full; `limit` says which.
    MAPCORE_ERR_CAPACITY_EXCEEDED = 5,
    /// An initialize request has no Standard-lifetime segment, so it would have no key.
    MAPCORE_ERR_NO_STANDARD_SEGMENT = 6,
    /// A segment address is not page-aligned; `index` names the segment.
    MAPCORE_ERR_MISALIGNED = 7,
    /// A segment's end overflows the address space; `index` names the segment.
    MAPCORE_ERR_OVERFLOW = 8,
    /// A segment's content is longer than the segment; `index` names the segment.
    MAPCORE_ERR_CONTENT_TOO_LONG = 9,
    /// A segment starts outside every slab; `index` names the segment.
    MAPCORE_ERR_NOT_IN_SLAB = 10,
    /// A segment runs past the end of its slab or lies in another slab than the first
    /// segment; `index` names the segment.
    MAPCORE_ERR_SPANS_SLABS = 11,
    /// Two segments of one request share a page; `index` names the later one.
    MAPCORE_ERR_SHARED_PAGE = 12,
    /// A segment overlaps a live region, a region being initialized or quarantined pages;
    /// `index` names the segment.
    MAPCORE_ERR_OVERLAP = 13,
    /// The request's key is already the key of a live region; `addr` holds the key.
    MAPCORE_ERR_KEY_IN_USE = 14,
    /// A segment asks for write and execute together and the map does not allow it; `index`
    /// names the segment.
    MAPCORE_ERR_WRITE_EXECUTE = 15,
    /// The address is inside a slab but is not the key of any region; `addr` holds it.
    MAPCORE_ERR_UNKNOWN_KEY = 16,
    /// The address is inside a live region but is not its key; `addr` holds it.
    MAPCORE_ERR_INTERIOR_ADDRESS = 17,
    /// The address is inside no slab at all; `addr` holds it.
    MAPCORE_ERR_NOT_IN_ANY_SLAB = 18,
    /// The address is inside a slab but is not its base; `addr` holds it.
    MAPCORE_ERR_NOT_SLAB_BASE = 19,
    /// Another thread is working on this region or slab; nothing was changed, the call may be
    /// retried. `addr` holds the address given.
    MAPCORE_ERR_BUSY = 20,
    /// The host returned a reservation that is unaligned or overlaps a recorded slab; it was
    /// given back and nothing was recorded. `addr` holds the base the host returned.
    MAPCORE_ERR_HOST_INVARIANT = 21,
    /// A host call failed: `host_op` says which, `code` holds the host's error code (an errno
    /// value for the built-in host), `index` the first segment the call covered, if any.
    /// Initialize rolled everything back; `quarantined` says the rollback itself failed and
    /// some pages will never be handed out again. Release: the slab is still reserved and the
    /// release may be retried. `count` says how many dealloc actions failed in the same call
    /// (deinitialize, release, or an initialize's cleanup): a host failure never hides them.
    MAPCORE_ERR_HOST = 22,
    /// A finalize action failed: `index` names its pair, `code` holds the code it returned,
    /// `count` how many cleanup dealloc actions failed. The dealloc actions of the pairs
    /// before it ran, newest first, and everything was rolled back (`quarantined` as for
    /// `MAPCORE_ERR_HOST`).
    MAPCORE_ERR_FINALIZE_FAILED = 23,
    /// `count` dealloc actions failed. Every dealloc action still ran exactly once and the
    /// region (or slab) is gone.
    MAPCORE_ERR_DEALLOC_FAILED = 24,
    /// `count` entries of a batch call failed; each entry's own error is in the `errors`
    /// array, when one was given.
    MAPCORE_ERR_BATCH = 25,
    /// mapcore panicked: a bug. The call was abandoned part-way and the map may hold pages
    /// that are never handed out again. Please report it with the message.
    MAPCORE_ERR_PANIC = 26,
    /// An error this version of the C API has no code for (a newer mapcore); the message
    /// describes it.
    MAPCORE_ERR_UNKNOWN = 27,
}

/// Which host call failed, for `MAPCORE_ERR_HOST`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum mapcore_host_op {
    /// No host call: the error is not `MAPCORE_ERR_HOST`.
    MAPCORE_HOST_OP_NONE = 0,
    /// `reserve`.
    MAPCORE_HOST_OP_RESERVE = 1,
    /// `release`.
    MAPCORE_HOST_OP_RELEASE = 2,
    /// `protect`.
    MAPCORE_HOST_OP_PROTECT = 3,
    /// `discard`.
    MAPCORE_HOST_OP_DISCARD = 4,
    /// `flush_icache`.
    MAPCORE_HOST_OP_FLUSH_ICACHE = 5,
}

/// Which capacity was exceeded, for `MAPCORE_ERR_CAPACITY_EXCEEDED`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum mapcore_limit {
    /// No limit: the error is not `MAPCORE_ERR_CAPACITY_EXCEEDED`.
    MAPCORE_LIMIT_NONE = 0,
    /// The slab table (only when memory for it cannot be allocated).
    MAPCORE_LIMIT_SLABS = 1,
    /// The region table (only when memory for it cannot be allocated).
    MAPCORE_LIMIT_REGIONS = 2,
    /// The page-span table (only when memory for it cannot be allocated).
    MAPCORE_LIMIT_SPANS = 3,
    /// More than `MAPCORE_MAX_SEGMENTS` segments in one request.
    MAPCORE_LIMIT_SEGMENTS = 4,
    /// More than `MAPCORE_MAX_ACTION_PAIRS` action pairs in one request.
    MAPCORE_LIMIT_ACTION_PAIRS = 5,
}

/// The size of `mapcore_error.message`, terminating NUL included. Longer messages are cut
/// short; every message of this version fits.
pub const MAPCORE_ERROR_MESSAGE_LEN: usize = 256;

/// `mapcore_error.index` when the error names no segment or action pair: `SIZE_MAX`, which
/// `cbindgen.toml` writes into the header itself (cbindgen cannot evaluate `usize::MAX`).
///
/// cbindgen:ignore
pub const MAPCORE_NO_INDEX: usize = usize::MAX;

/// One failure in detail. Every field is set on failure: fields that do not apply to the
/// status are zero (`index` is `MAPCORE_NO_INDEX`). Batch calls write one per entry, with
/// `status` `MAPCORE_OK` (and an empty message) for the entries that succeeded.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mapcore_error {
    /// What went wrong.
    pub status: mapcore_status,
    /// `MAPCORE_ERR_HOST`: the host's error code (an errno value for the built-in host).
    /// `MAPCORE_ERR_FINALIZE_FAILED`: the code the action returned.
    pub code: i32,
    /// The segment (or, for action errors, the action pair) of the request the error names,
    /// or `MAPCORE_NO_INDEX`.
    pub index: size_t,
    /// The address the error names (a key, a slab base, the host's bad base), or the size for
    /// `MAPCORE_ERR_INVALID_SIZE` and `MAPCORE_ERR_TOO_LARGE`.
    pub addr: uintptr_t,
    /// `MAPCORE_ERR_DEALLOC_FAILED`: how many dealloc actions failed. `MAPCORE_ERR_BATCH`: how
    /// many entries failed. `MAPCORE_ERR_FINALIZE_FAILED`: how many cleanup dealloc actions
    /// failed. `MAPCORE_ERR_HOST`: how many dealloc actions failed in the same call.
    pub count: size_t,
    /// `MAPCORE_ERR_HOST`: which host call failed.
    pub host_op: mapcore_host_op,
    /// `MAPCORE_ERR_CAPACITY_EXCEEDED`: which limit.
    pub limit: mapcore_limit,
    /// A rollback or reset failed and some pages are quarantined: never handed out again
    /// until their slab is released.
    pub quarantined: bool,
    /// What went wrong, in English, NUL-terminated: lower case, no trailing period.
    pub message: [c_char; MAPCORE_ERROR_MESSAGE_LEN],
}

impl fmt::Debug for mapcore_error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mapcore_error")
            .field("status", &self.status)
            .field("code", &self.code)
            .field("index", &self.index)
            .field("addr", &self.addr)
            .field("count", &self.count)
            .field("host_op", &self.host_op)
            .field("limit", &self.limit)
            .field("quarantined", &self.quarantined)
            .field("message", &self.message())
            .finish()
    }
}

impl mapcore_error {
    /// The record of a success: status `MAPCORE_OK`, every other field zero, empty message.
    pub(crate) const OK: Self = Self {
        status: mapcore_status::MAPCORE_OK,
        code: 0,
        index: MAPCORE_NO_INDEX,
        addr: 0,
        count: 0,
        host_op: mapcore_host_op::MAPCORE_HOST_OP_NONE,
        limit: mapcore_limit::MAPCORE_LIMIT_NONE,
        quarantined: false,
        message: [0; MAPCORE_ERROR_MESSAGE_LEN],
    };

    /// The message, up to its terminating NUL.
    #[must_use]
    pub fn message(&self) -> String {
        // `c_char` is `i8` or `u8`: the same bits either way.
        let bytes: Vec<u8> = self
            .message
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Why a call failed: an error of the map, or of the C boundary before the map was reached.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    /// The map refused or failed.
    Map(StdError),
    /// A C argument was unusable; the map was not called.
    Argument(Invalid),
    /// mapcore panicked.
    Panic,
}

/// What was wrong with a C argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// A pointer that must not be `NULL` was; the parameter's name.
    Null(&'static str),
    /// A segment's group byte has bits other than read, write, execute and finalize.
    GroupBits {
        /// The segment's index.
        segment: usize,
        /// The group byte.
        bits: u8,
    },
    /// A segment has content_len > 0 but no content pointer.
    NullContent {
        /// The segment's index.
        segment: usize,
    },
    /// An action has args_len > 0 but no args pointer.
    NullArgs {
        /// The action pair's index.
        pair: usize,
    },
    /// An action's arguments are longer than `MAPCORE_MAX_ACTION_ARGS`.
    ArgsTooLong {
        /// The action pair's index.
        pair: usize,
        /// The length given.
        len: usize,
    },
    /// A host table entry that must not be `NULL` was; the entry's name.
    MissingHostFunction(&'static str),
    /// The host table's page size is zero or not a power of two.
    PageSize(usize),
    /// The host table's capabilities have bits this version does not know.
    CapabilityBits(u32),
}

impl From<StdError> for Failure {
    fn from(error: StdError) -> Self {
        Self::Map(error)
    }
}

impl From<Invalid> for Failure {
    fn from(invalid: Invalid) -> Self {
        Self::Argument(invalid)
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Null(name) => write!(f, "`{name}` is null"),
            Self::GroupBits { segment, bits } => {
                write!(f, "segment {segment} has unknown group bits {bits:#04x}")
            }
            Self::NullContent { segment } => {
                write!(f, "segment {segment} has content_len > 0 and null content")
            }
            Self::NullArgs { pair } => {
                write!(f, "an action of pair {pair} has args_len > 0 and null args")
            }
            Self::ArgsTooLong { pair, len } => write!(
                f,
                "an action of pair {pair} has {len} argument bytes, more than {}",
                crate::request::MAPCORE_MAX_ACTION_ARGS
            ),
            Self::MissingHostFunction(name) => write!(f, "host table entry `{name}` is null"),
            Self::PageSize(size) => {
                write!(f, "host page size {size:#x} is zero or not a power of two")
            }
            Self::CapabilityBits(bits) => {
                write!(f, "host capabilities {bits:#x} have unknown bits")
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map(error) => fmt::Display::fmt(error, f),
            Self::Argument(invalid) => fmt::Display::fmt(invalid, f),
            Self::Panic => {
                f.write_str("internal error: mapcore panicked (a bug; please report it)")
            }
        }
    }
}

impl Failure {
    /// The full record of this failure, message included.
    pub(crate) fn record(&self) -> mapcore_error {
        use mapcore_status as S;
        let mut out = mapcore_error::OK;
        match *self {
            Self::Argument(invalid) => match invalid {
                Invalid::ArgsTooLong { pair, .. } => {
                    out.status = S::MAPCORE_ERR_ARGS_TOO_LONG;
                    out.index = pair;
                }
                Invalid::GroupBits { segment, .. } | Invalid::NullContent { segment } => {
                    out.status = S::MAPCORE_ERR_INVALID_ARGUMENT;
                    out.index = segment;
                }
                Invalid::NullArgs { pair } => {
                    out.status = S::MAPCORE_ERR_INVALID_ARGUMENT;
                    out.index = pair;
                }
                Invalid::Null(_)
                | Invalid::MissingHostFunction(_)
                | Invalid::PageSize(_)
                | Invalid::CapabilityBits(_) => out.status = S::MAPCORE_ERR_INVALID_ARGUMENT,
            },
            Self::Panic => out.status = S::MAPCORE_ERR_PANIC,
            Self::Map(error) => map_error_fields(&error, &mut out),
        }
        write_message(&mut out.message, self);
        out
    }
}

/// Fills the status and detail fields of `out` from a map error.
fn map_error_fields(error: &StdError, out: &mut mapcore_error) {
    use mapcore_status as S;
    let (status, index, addr) = match *error {
        Error::InvalidSize { size } => (S::MAPCORE_ERR_INVALID_SIZE, None, size),
        Error::TooLarge { size } => (S::MAPCORE_ERR_TOO_LARGE, None, size),
        Error::CapacityExceeded(limit) => {
            out.limit = limit_code(limit);
            (S::MAPCORE_ERR_CAPACITY_EXCEEDED, None, 0)
        }
        Error::NoStandardSegment => (S::MAPCORE_ERR_NO_STANDARD_SEGMENT, None, 0),
        Error::Misaligned { segment } => (S::MAPCORE_ERR_MISALIGNED, Some(segment), 0),
        Error::Overflow { segment } => (S::MAPCORE_ERR_OVERFLOW, Some(segment), 0),
        Error::ContentTooLong { segment } => (S::MAPCORE_ERR_CONTENT_TOO_LONG, Some(segment), 0),
        Error::NotInSlab { segment } => (S::MAPCORE_ERR_NOT_IN_SLAB, Some(segment), 0),
        Error::SpansSlabs { segment } => (S::MAPCORE_ERR_SPANS_SLABS, Some(segment), 0),
        Error::SharedPage { segment } => (S::MAPCORE_ERR_SHARED_PAGE, Some(segment), 0),
        Error::Overlap { segment } => (S::MAPCORE_ERR_OVERLAP, Some(segment), 0),
        Error::KeyInUse { key } => (S::MAPCORE_ERR_KEY_IN_USE, None, key),
        Error::WriteExecute { segment } => (S::MAPCORE_ERR_WRITE_EXECUTE, Some(segment), 0),
        Error::UnknownKey { addr } => (S::MAPCORE_ERR_UNKNOWN_KEY, None, addr),
        Error::InteriorAddress { addr } => (S::MAPCORE_ERR_INTERIOR_ADDRESS, None, addr),
        Error::NotInAnySlab { addr } => (S::MAPCORE_ERR_NOT_IN_ANY_SLAB, None, addr),
        Error::NotSlabBase { addr } => (S::MAPCORE_ERR_NOT_SLAB_BASE, None, addr),
        Error::Busy { addr } => (S::MAPCORE_ERR_BUSY, None, addr),
        Error::HostInvariant { addr } => (S::MAPCORE_ERR_HOST_INVARIANT, None, addr),
        Error::Host {
            op,
            segment,
            error,
            quarantined,
            dealloc_failures,
        } => {
            out.host_op = host_op_code(op);
            out.code = host_code(error);
            out.count = dealloc_failures;
            out.quarantined = quarantined;
            (S::MAPCORE_ERR_HOST, segment, 0)
        }
        Error::FinalizeFailed {
            action,
            error,
            cleanup_failures,
            quarantined,
        } => {
            out.code = action_code(error);
            out.count = cleanup_failures;
            out.quarantined = quarantined;
            (S::MAPCORE_ERR_FINALIZE_FAILED, Some(action), 0)
        }
        Error::DeallocFailed { failed } => {
            out.count = failed;
            (S::MAPCORE_ERR_DEALLOC_FAILED, None, 0)
        }
        Error::Batch { failed } => {
            out.count = failed;
            (S::MAPCORE_ERR_BATCH, None, 0)
        }
        _ => (S::MAPCORE_ERR_UNKNOWN, None, 0),
    };
    out.status = status;
    out.index = index.unwrap_or(MAPCORE_NO_INDEX);
    out.addr = addr;
}

fn host_code(error: OsError) -> i32 {
    error.raw_os_error()
}

fn action_code(error: ActionError) -> i32 {
    error.code()
}

fn host_op_code(op: HostOp) -> mapcore_host_op {
    match op {
        HostOp::Reserve => mapcore_host_op::MAPCORE_HOST_OP_RESERVE,
        HostOp::Release => mapcore_host_op::MAPCORE_HOST_OP_RELEASE,
        HostOp::Protect => mapcore_host_op::MAPCORE_HOST_OP_PROTECT,
        HostOp::Discard => mapcore_host_op::MAPCORE_HOST_OP_DISCARD,
        HostOp::FlushIcache => mapcore_host_op::MAPCORE_HOST_OP_FLUSH_ICACHE,
    }
}

fn limit_code(limit: Limit) -> mapcore_limit {
    match limit {
        Limit::Slabs => mapcore_limit::MAPCORE_LIMIT_SLABS,
        Limit::Regions => mapcore_limit::MAPCORE_LIMIT_REGIONS,
        Limit::Spans => mapcore_limit::MAPCORE_LIMIT_SPANS,
        Limit::Segments => mapcore_limit::MAPCORE_LIMIT_SEGMENTS,
        Limit::ActionPairs => mapcore_limit::MAPCORE_LIMIT_ACTION_PAIRS,
    }
}

/// Writes `what` into `buf` as a NUL-terminated string, cut short at a character boundary if
/// it does not fit.
fn write_message(buf: &mut [c_char; MAPCORE_ERROR_MESSAGE_LEN], what: &impl fmt::Display) {
    let mut writer = MessageWriter {
        buf,
        len: 0,
        full: false,
    };
    // The writer never fails: it drops what does not fit.
    let _ = write!(writer, "{what}");
    let len = writer.len;
    buf[len] = 0;
}

/// A `fmt::Write` into a fixed buffer that keeps one byte for the NUL and stops at the first
/// character that does not fit whole.
struct MessageWriter<'a> {
    buf: &'a mut [c_char; MAPCORE_ERROR_MESSAGE_LEN],
    len: usize,
    full: bool,
}

impl Write for MessageWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0u8; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            if self.full || self.len + bytes.len() >= MAPCORE_ERROR_MESSAGE_LEN {
                // Full: drop this character and everything after it, so the message is a
                // prefix cut at a character boundary.
                self.full = true;
                return Ok(());
            }
            for &byte in bytes {
                // `c_char` is `i8` or `u8`: the same bits either way.
                self.buf[self.len] = byte as c_char;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// The name of a status code as a static NUL-terminated string, e.g. `"MAPCORE_ERR_OVERLAP"`;
/// `"MAPCORE_ERR_UNKNOWN"` for a value that is no status code. Never `NULL`; the string must
/// not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn mapcore_status_name(status: i32) -> *const c_char {
    status_name(status).as_ptr()
}

/// The name of the status code `status`.
pub(crate) fn status_name(status: i32) -> &'static CStr {
    use mapcore_status as S;
    const NAMES: [(mapcore_status, &CStr); 28] = [
        (S::MAPCORE_OK, c"MAPCORE_OK"),
        (
            S::MAPCORE_ERR_INVALID_ARGUMENT,
            c"MAPCORE_ERR_INVALID_ARGUMENT",
        ),
        (S::MAPCORE_ERR_ARGS_TOO_LONG, c"MAPCORE_ERR_ARGS_TOO_LONG"),
        (S::MAPCORE_ERR_INVALID_SIZE, c"MAPCORE_ERR_INVALID_SIZE"),
        (S::MAPCORE_ERR_TOO_LARGE, c"MAPCORE_ERR_TOO_LARGE"),
        (
            S::MAPCORE_ERR_CAPACITY_EXCEEDED,
            c"MAPCORE_ERR_CAPACITY_EXCEEDED",
        ),
        (
            S::MAPCORE_ERR_NO_STANDARD_SEGMENT,
            c"MAPCORE_ERR_NO_STANDARD_SEGMENT",
        ),
        (S::MAPCORE_ERR_MISALIGNED, c"MAPCORE_ERR_MISALIGNED"),
        (S::MAPCORE_ERR_OVERFLOW, c"MAPCORE_ERR_OVERFLOW"),
        (
            S::MAPCORE_ERR_CONTENT_TOO_LONG,
            c"MAPCORE_ERR_CONTENT_TOO_LONG",
        ),
        (S::MAPCORE_ERR_NOT_IN_SLAB, c"MAPCORE_ERR_NOT_IN_SLAB"),
        (S::MAPCORE_ERR_SPANS_SLABS, c"MAPCORE_ERR_SPANS_SLABS"),
        (S::MAPCORE_ERR_SHARED_PAGE, c"MAPCORE_ERR_SHARED_PAGE"),
        (S::MAPCORE_ERR_OVERLAP, c"MAPCORE_ERR_OVERLAP"),
        (S::MAPCORE_ERR_KEY_IN_USE, c"MAPCORE_ERR_KEY_IN_USE"),
        (S::MAPCORE_ERR_WRITE_EXECUTE, c"MAPCORE_ERR_WRITE_EXECUTE"),
        (S::MAPCORE_ERR_UNKNOWN_KEY, c"MAPCORE_ERR_UNKNOWN_KEY"),
        (
            S::MAPCORE_ERR_INTERIOR_ADDRESS,
            c"MAPCORE_ERR_INTERIOR_ADDRESS",
        ),
        (
            S::MAPCORE_ERR_NOT_IN_ANY_SLAB,
            c"MAPCORE_ERR_NOT_IN_ANY_SLAB",
        ),
        (S::MAPCORE_ERR_NOT_SLAB_BASE, c"MAPCORE_ERR_NOT_SLAB_BASE"),
        (S::MAPCORE_ERR_BUSY, c"MAPCORE_ERR_BUSY"),
        (S::MAPCORE_ERR_HOST_INVARIANT, c"MAPCORE_ERR_HOST_INVARIANT"),
        (S::MAPCORE_ERR_HOST, c"MAPCORE_ERR_HOST"),
        (
            S::MAPCORE_ERR_FINALIZE_FAILED,
            c"MAPCORE_ERR_FINALIZE_FAILED",
        ),
        (S::MAPCORE_ERR_DEALLOC_FAILED, c"MAPCORE_ERR_DEALLOC_FAILED"),
        (S::MAPCORE_ERR_BATCH, c"MAPCORE_ERR_BATCH"),
        (S::MAPCORE_ERR_PANIC, c"MAPCORE_ERR_PANIC"),
        (S::MAPCORE_ERR_UNKNOWN, c"MAPCORE_ERR_UNKNOWN"),
    ];
    NAMES
        .iter()
        .find(|(code, _)| *code as i32 == status)
        .map_or(c"MAPCORE_ERR_UNKNOWN", |&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapcore_status as S;

    const ALL: [mapcore_status; 28] = [
        S::MAPCORE_OK,
        S::MAPCORE_ERR_INVALID_ARGUMENT,
        S::MAPCORE_ERR_ARGS_TOO_LONG,
        S::MAPCORE_ERR_INVALID_SIZE,
        S::MAPCORE_ERR_TOO_LARGE,
        S::MAPCORE_ERR_CAPACITY_EXCEEDED,
        S::MAPCORE_ERR_NO_STANDARD_SEGMENT,
        S::MAPCORE_ERR_MISALIGNED,
        S::MAPCORE_ERR_OVERFLOW,
        S::MAPCORE_ERR_CONTENT_TOO_LONG,
        S::MAPCORE_ERR_NOT_IN_SLAB,
        S::MAPCORE_ERR_SPANS_SLABS,
        S::MAPCORE_ERR_SHARED_PAGE,
        S::MAPCORE_ERR_OVERLAP,
        S::MAPCORE_ERR_KEY_IN_USE,
        S::MAPCORE_ERR_WRITE_EXECUTE,
        S::MAPCORE_ERR_UNKNOWN_KEY,
        S::MAPCORE_ERR_INTERIOR_ADDRESS,
        S::MAPCORE_ERR_NOT_IN_ANY_SLAB,
        S::MAPCORE_ERR_NOT_SLAB_BASE,
        S::MAPCORE_ERR_BUSY,
        S::MAPCORE_ERR_HOST_INVARIANT,
        S::MAPCORE_ERR_HOST,
        S::MAPCORE_ERR_FINALIZE_FAILED,
        S::MAPCORE_ERR_DEALLOC_FAILED,
        S::MAPCORE_ERR_BATCH,
        S::MAPCORE_ERR_PANIC,
        S::MAPCORE_ERR_UNKNOWN,
    ];

    #[test]
    fn status_names_are_the_variant_names_and_values_are_dense() {
        for (value, status) in ALL.iter().enumerate() {
            assert_eq!(*status as i32, i32::try_from(value).unwrap());
            let name = status_name(*status as i32).to_str().unwrap();
            assert_eq!(name, format!("{status:?}"));
        }
        assert_eq!(status_name(-1), c"MAPCORE_ERR_UNKNOWN");
        assert_eq!(status_name(28), c"MAPCORE_ERR_UNKNOWN");
        // SAFETY: the returned pointer is a static NUL-terminated string.
        let exported = unsafe { CStr::from_ptr(mapcore_status_name(13)) };
        assert_eq!(exported, c"MAPCORE_ERR_OVERLAP");
    }

    /// Makes an error from a segment index or an address.
    type MakeError = fn(usize) -> StdError;

    fn record(error: StdError) -> mapcore_error {
        Failure::Map(error).record()
    }

    #[test]
    fn map_errors_carry_their_status_and_details() {
        let segment_errors: [(MakeError, mapcore_status); 8] = [
            (
                |s| Error::Misaligned { segment: s },
                S::MAPCORE_ERR_MISALIGNED,
            ),
            (|s| Error::Overflow { segment: s }, S::MAPCORE_ERR_OVERFLOW),
            (
                |s| Error::ContentTooLong { segment: s },
                S::MAPCORE_ERR_CONTENT_TOO_LONG,
            ),
            (
                |s| Error::NotInSlab { segment: s },
                S::MAPCORE_ERR_NOT_IN_SLAB,
            ),
            (
                |s| Error::SpansSlabs { segment: s },
                S::MAPCORE_ERR_SPANS_SLABS,
            ),
            (
                |s| Error::SharedPage { segment: s },
                S::MAPCORE_ERR_SHARED_PAGE,
            ),
            (|s| Error::Overlap { segment: s }, S::MAPCORE_ERR_OVERLAP),
            (
                |s| Error::WriteExecute { segment: s },
                S::MAPCORE_ERR_WRITE_EXECUTE,
            ),
        ];
        for (make, status) in segment_errors {
            let r = record(make(3));
            assert_eq!((r.status, r.index, r.addr, r.count), (status, 3, 0, 0));
            assert_eq!(r.message(), make(3).to_string());
        }
        let addr_errors: [(MakeError, mapcore_status); 9] = [
            (
                |a| Error::InvalidSize { size: a },
                S::MAPCORE_ERR_INVALID_SIZE,
            ),
            (|a| Error::TooLarge { size: a }, S::MAPCORE_ERR_TOO_LARGE),
            (|a| Error::KeyInUse { key: a }, S::MAPCORE_ERR_KEY_IN_USE),
            (
                |a| Error::UnknownKey { addr: a },
                S::MAPCORE_ERR_UNKNOWN_KEY,
            ),
            (
                |a| Error::InteriorAddress { addr: a },
                S::MAPCORE_ERR_INTERIOR_ADDRESS,
            ),
            (
                |a| Error::NotInAnySlab { addr: a },
                S::MAPCORE_ERR_NOT_IN_ANY_SLAB,
            ),
            (
                |a| Error::NotSlabBase { addr: a },
                S::MAPCORE_ERR_NOT_SLAB_BASE,
            ),
            (|a| Error::Busy { addr: a }, S::MAPCORE_ERR_BUSY),
            (
                |a| Error::HostInvariant { addr: a },
                S::MAPCORE_ERR_HOST_INVARIANT,
            ),
        ];
        for (make, status) in addr_errors {
            let r = record(make(0x5000));
            assert_eq!(
                (r.status, r.index, r.addr),
                (status, MAPCORE_NO_INDEX, 0x5000)
            );
            assert_eq!(r.message(), make(0x5000).to_string());
        }
        let r = record(Error::NoStandardSegment);
        assert_eq!(
            (r.status, r.index),
            (S::MAPCORE_ERR_NO_STANDARD_SEGMENT, MAPCORE_NO_INDEX)
        );
        let r = record(Error::CapacityExceeded(Limit::Regions));
        assert_eq!(r.status, S::MAPCORE_ERR_CAPACITY_EXCEEDED);
        assert_eq!(r.limit, mapcore_limit::MAPCORE_LIMIT_REGIONS);
        let r = record(Error::DeallocFailed { failed: 2 });
        assert_eq!((r.status, r.count), (S::MAPCORE_ERR_DEALLOC_FAILED, 2));
        let r = record(Error::Batch { failed: 5 });
        assert_eq!((r.status, r.count), (S::MAPCORE_ERR_BATCH, 5));
        assert_eq!(r.message(), "5 batch entries failed");
    }

    #[test]
    fn host_and_action_failures_carry_their_codes() {
        let r = record(Error::Host {
            op: HostOp::FlushIcache,
            segment: Some(2),
            error: OsError::from_raw_os_error(libc::ENOSYS),
            quarantined: true,
            dealloc_failures: 0,
        });
        assert_eq!(r.status, S::MAPCORE_ERR_HOST);
        assert_eq!(r.host_op, mapcore_host_op::MAPCORE_HOST_OP_FLUSH_ICACHE);
        assert_eq!((r.code, r.index, r.quarantined), (libc::ENOSYS, 2, true));
        assert!(r
            .message()
            .starts_with("host FlushIcache failed on segment 2: "));
        assert!(r
            .message()
            .ends_with("(rollback failed; pages quarantined)"));

        let r = record(Error::Host {
            op: HostOp::Reserve,
            segment: None,
            error: OsError::from_raw_os_error(libc::ENOMEM),
            quarantined: false,
            dealloc_failures: 0,
        });
        assert_eq!(r.host_op, mapcore_host_op::MAPCORE_HOST_OP_RESERVE);
        assert_eq!((r.index, r.quarantined), (MAPCORE_NO_INDEX, false));

        // A failed unmap after failed dealloc actions reports both.
        let r = record(Error::Host {
            op: HostOp::Release,
            segment: None,
            error: OsError::from_raw_os_error(libc::EINVAL),
            quarantined: false,
            dealloc_failures: 3,
        });
        assert_eq!(r.host_op, mapcore_host_op::MAPCORE_HOST_OP_RELEASE);
        assert_eq!((r.code, r.count), (libc::EINVAL, 3));
        assert!(r.message().ends_with("(3 dealloc actions failed too)"));

        let r = record(Error::FinalizeFailed {
            action: 4,
            error: ActionError::new(-3),
            cleanup_failures: 1,
            quarantined: false,
        });
        assert_eq!(r.status, S::MAPCORE_ERR_FINALIZE_FAILED);
        assert_eq!((r.code, r.index, r.count), (-3, 4, 1));
    }

    #[test]
    fn argument_failures_name_their_entry() {
        let r = Failure::Argument(Invalid::ArgsTooLong { pair: 6, len: 41 }).record();
        assert_eq!((r.status, r.index), (S::MAPCORE_ERR_ARGS_TOO_LONG, 6));
        let r = Failure::Argument(Invalid::GroupBits {
            segment: 1,
            bits: 0x90,
        })
        .record();
        assert_eq!((r.status, r.index), (S::MAPCORE_ERR_INVALID_ARGUMENT, 1));
        assert_eq!(r.message(), "segment 1 has unknown group bits 0x90");
        let r = Failure::Argument(Invalid::Null("map")).record();
        assert_eq!(
            (r.status, r.index),
            (S::MAPCORE_ERR_INVALID_ARGUMENT, MAPCORE_NO_INDEX)
        );
        assert_eq!(r.message(), "`map` is null");
        let r = Failure::Panic.record();
        assert_eq!(r.status, S::MAPCORE_ERR_PANIC);
        assert!(r.message().contains("panicked"));
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let mut buf = [1 as c_char; MAPCORE_ERROR_MESSAGE_LEN];
        // 2-byte characters: 127 fit in 255 bytes with one byte to spare, which stays unused.
        write_message(&mut buf, &"é".repeat(200));
        let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        let text = CStr::from_bytes_until_nul(&bytes)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(text, "é".repeat(127));
        // After the cut nothing more is written, not even a character that would fit.
        write_message(&mut buf, &format_args!("{}{}", "é".repeat(128), "x"));
        assert_eq!(bytes_of(&buf)[254], 0);
        // Exactly full: 255 one-byte characters and the NUL.
        write_message(&mut buf, &"x".repeat(255));
        assert_eq!(buf[254] as u8, b'x');
        assert_eq!(buf[255], 0);
        write_message(&mut buf, &"short");
        assert_eq!(&bytes_of(&buf)[..6], b"short\0");
    }

    fn bytes_of(buf: &[c_char]) -> Vec<u8> {
        buf.iter().map(|&c| c as u8).collect()
    }
}
