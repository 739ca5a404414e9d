//! The one error type of the map.

use core::fmt;

use crate::action::ActionError;
use crate::host::{HostError, HostOp};

/// Which fixed capacity a request exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The slab table of the map's storage.
    Slabs,
    /// The region table of the map's storage.
    Regions,
    /// The page-span table of the map's storage.
    Spans,
    /// Segments per initialize request ([`MAX_SEGMENTS`](crate::MAX_SEGMENTS)).
    Segments,
    /// Action pairs per initialize request ([`MAX_ACTION_PAIRS`](crate::MAX_ACTION_PAIRS)).
    ActionPairs,
}

/// Everything that can go wrong in the map.
///
/// Validation errors (everything but [`Host`](Error::Host), [`FinalizeFailed`](Error::FinalizeFailed),
/// [`DeallocFailed`](Error::DeallocFailed) and [`Batch`](Error::Batch)) are reported before any
/// side effect: the map and the memory are exactly as before the call.
///
/// # Which error is reported
///
/// One call returns one error, and loses nothing: where several validation errors apply, the
/// `# Errors` section of each [`JitMap`](crate::JitMap) method says which comes first; once
/// side effects began, the error says everything that went wrong: a failed host call
/// ([`Host`](Error::Host)) or finalize action ([`FinalizeFailed`](Error::FinalizeFailed)) comes
/// with the number of dealloc actions that failed in the same call and whether pages had to
/// be quarantined; failed dealloc actions alone are [`DeallocFailed`](Error::DeallocFailed).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// A reservation size is zero or not a multiple of the page size.
    InvalidSize {
        /// The size asked for.
        size: usize,
    },
    /// A reservation is larger than the map's configured maximum.
    TooLarge {
        /// The size asked for.
        size: usize,
    },
    /// A table or a per-request limit is full.
    CapacityExceeded(Limit),
    /// An initialize request has no Standard-lifetime segment, so it would have no key.
    NoStandardSegment,
    /// A segment address is not page-aligned.
    Misaligned {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// A segment's end overflows the address space.
    Overflow {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// A segment's content is longer than the segment.
    ContentTooLong {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// A segment starts outside every slab.
    NotInSlab {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// A segment runs past the end of its slab, or lies in another slab than the first segment.
    SpansSlabs {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// Two segments of one request share a page.
    SharedPage {
        /// Index of the later of the two segments in the request.
        segment: usize,
    },
    /// A segment overlaps a live region, a region being initialized or quarantined pages.
    Overlap {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// The request's key is already the key of a live region.
    KeyInUse {
        /// The key.
        key: usize,
    },
    /// A segment asks for write and execute together, and the map does not allow it.
    WriteExecute {
        /// Index of the segment in the request.
        segment: usize,
    },
    /// The address is inside a slab but is not the key of any region.
    UnknownKey {
        /// The address given.
        addr: usize,
    },
    /// The address is inside a live region but is not its key.
    InteriorAddress {
        /// The address given.
        addr: usize,
    },
    /// The address is inside no slab at all.
    NotInAnySlab {
        /// The address given.
        addr: usize,
    },
    /// The address is inside a slab but is not its base.
    NotSlabBase {
        /// The address given.
        addr: usize,
    },
    /// Another thread is working on this region or slab (initializing, deinitializing or
    /// releasing it); nothing was changed, the call may be retried.
    Busy {
        /// The address given.
        addr: usize,
    },
    /// The host returned a reservation that is unaligned or overlaps a recorded slab; it was
    /// given back and nothing was recorded.
    HostInvariant {
        /// The base the host returned.
        addr: usize,
    },
    /// A host call failed. For initialize everything was rolled back; `quarantined` says the
    /// rollback itself failed and some pages will never be handed out again.
    ///
    /// Dealloc actions that failed in the same call are counted here too (`dealloc_failures`):
    /// a host failure never hides them.
    Host {
        /// The call that failed.
        op: HostOp,
        /// The first request segment the failing call covered, where there is one.
        segment: Option<usize>,
        /// The host's error.
        error: E,
        /// Pages could not be returned to the free state and are quarantined until their slab
        /// is released.
        quarantined: bool,
        /// How many dealloc actions failed in the same call: those of the regions deinitialized
        /// or released, or, for initialize, the cleanup deallocs of a rolled-back request.
        /// Every one of them still ran exactly once.
        dealloc_failures: usize,
    },
    /// A finalize action failed; the earlier pairs' dealloc actions ran newest first and
    /// everything was rolled back.
    FinalizeFailed {
        /// Index of the failing pair in the request.
        action: usize,
        /// The action's error.
        error: ActionError,
        /// How many dealloc actions failed during the cleanup.
        cleanup_failures: usize,
        /// Pages could not be returned to the free state and are quarantined.
        quarantined: bool,
    },
    /// Some dealloc actions failed. Every dealloc action still ran exactly once and the
    /// region is gone.
    DeallocFailed {
        /// How many failed.
        failed: usize,
    },
    /// Some entries of a batch call failed; each was reported with its index.
    Batch {
        /// How many entries failed.
        failed: usize,
    },
}

impl<E> Error<E> {
    /// The host error this error carries, if any.
    pub fn host_error(&self) -> Option<&E> {
        match self {
            Self::Host { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSize { size } => {
                write!(
                    f,
                    "reservation size {size:#x} is zero or not a page multiple"
                )
            }
            Self::TooLarge { size } => {
                write!(
                    f,
                    "reservation size {size:#x} exceeds the configured maximum"
                )
            }
            Self::CapacityExceeded(limit) => write!(f, "capacity exceeded: {limit:?}"),
            Self::NoStandardSegment => {
                f.write_str("initialize request has no standard-lifetime segment")
            }
            Self::Misaligned { segment } => write!(f, "segment {segment} is not page-aligned"),
            Self::Overflow { segment } => {
                write!(f, "segment {segment} overflows the address space")
            }
            Self::ContentTooLong { segment } => {
                write!(f, "segment {segment} has more content than size")
            }
            Self::NotInSlab { segment } => write!(f, "segment {segment} is outside every slab"),
            Self::SpansSlabs { segment } => {
                write!(f, "segment {segment} is not inside the request's slab")
            }
            Self::SharedPage { segment } => {
                write!(f, "segment {segment} shares a page with another segment")
            }
            Self::Overlap { segment } => {
                write!(f, "segment {segment} overlaps memory that is in use")
            }
            Self::KeyInUse { key } => write!(f, "region key {key:#x} is already in use"),
            Self::WriteExecute { segment } => {
                write!(f, "segment {segment} asks for write and execute together")
            }
            Self::UnknownKey { addr } => write!(f, "{addr:#x} is not the key of any region"),
            Self::InteriorAddress { addr } => {
                write!(f, "{addr:#x} is inside a region but is not its key")
            }
            Self::NotInAnySlab { addr } => write!(f, "{addr:#x} is not inside any slab"),
            Self::NotSlabBase { addr } => write!(f, "{addr:#x} is inside a slab but not its base"),
            Self::Busy { addr } => {
                write!(f, "{addr:#x} is busy with another operation; retry")
            }
            Self::HostInvariant { addr } => {
                write!(f, "host returned an invalid reservation at {addr:#x}")
            }
            Self::Host {
                op,
                segment,
                error,
                quarantined,
                dealloc_failures,
            } => {
                write!(f, "host {op:?} failed")?;
                if let Some(segment) = segment {
                    write!(f, " on segment {segment}")?;
                }
                write!(f, ": {error}")?;
                if *quarantined {
                    f.write_str(" (rollback failed; pages quarantined)")?;
                }
                if *dealloc_failures > 0 {
                    write!(f, " ({dealloc_failures} dealloc actions failed too)")?;
                }
                Ok(())
            }
            Self::FinalizeFailed {
                action,
                error,
                cleanup_failures,
                quarantined,
            } => {
                write!(
                    f,
                    "finalize action {action} failed with code {}",
                    error.code()
                )?;
                if *cleanup_failures > 0 {
                    write!(f, " ({cleanup_failures} cleanup dealloc actions failed)")?;
                }
                if *quarantined {
                    f.write_str(" (rollback failed; pages quarantined)")?;
                }
                Ok(())
            }
            Self::DeallocFailed { failed } => write!(f, "{failed} dealloc actions failed"),
            Self::Batch { failed } => write!(f, "{failed} batch entries failed"),
        }
    }
}

impl<E: HostError + core::error::Error + 'static> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Host { error, .. } => Some(error),
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
    fn display_of_a_host_error_counts_the_failed_dealloc_actions() {
        let both: Error<i32> = Error::Host {
            op: HostOp::Release,
            segment: None,
            error: 22,
            quarantined: false,
            dealloc_failures: 3,
        };
        assert_eq!(
            both.to_string(),
            "host Release failed: 22 (3 dealloc actions failed too)"
        );
    }

    #[test]
    fn display_is_lower_case_without_period() {
        let samples: [Error<i32>; 5] = [
            Error::InvalidSize { size: 0 },
            Error::Overlap { segment: 1 },
            Error::Host {
                op: HostOp::Protect,
                segment: Some(0),
                error: 12,
                quarantined: true,
                dealloc_failures: 2,
            },
            Error::FinalizeFailed {
                action: 2,
                error: ActionError::new(7),
                cleanup_failures: 1,
                quarantined: false,
            },
            Error::Batch { failed: 3 },
        ];
        for e in samples {
            let text = e.to_string();
            assert!(!text.chars().next().unwrap().is_uppercase(), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }
}
