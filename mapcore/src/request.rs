//! Initialize requests: segments and action pairs.

use crate::action::ActionPair;
use crate::prot::{AllocGroup, Lifetime, Prot};

/// Most segments in one initialize request.
pub const MAX_SEGMENTS: usize = 16;

/// Where a segment's bytes come from.
///
/// Under the default [`DiscardPolicy::Discard`](crate::DiscardPolicy::Discard) the map knows
/// free pages read as zero (fresh, or discarded when they were freed) and does not zero-fill
/// them again. Writing into free pages is only meant for in-place content of a request that
/// then covers those bytes; bytes written into free pages and never initialized (or written
/// past an in-place segment's `len`) are not erased and may show through. Initialize them as a
/// region and deinitialize it to discard them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// Copy these bytes to the start of the segment; the rest of the segment reads as zero.
    Bytes(&'a [u8]),
    /// The first `len` bytes were already written at the segment's address (in place, while
    /// the pages were free and read-write); they are neither copied nor zeroed. The rest of the
    /// segment reads as zero.
    ///
    /// On a host that writes through an alias ([`Capabilities::writes_through_alias`]), freed
    /// pages keep their last protection, so only pages never initialized before are certain
    /// to be read-write at the execution address: write in place there, or use a host that
    /// resets freed pages to read-write (a flip host), as mapcore-std's Cranelift provider
    /// does.
    ///
    /// [`Capabilities::writes_through_alias`]: crate::Capabilities::writes_through_alias
    InPlace {
        /// How many bytes at the start of the segment were written in place.
        len: usize,
    },
}

impl Content<'_> {
    /// Length of the content in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::InPlace { len } => *len,
        }
    }

    /// Whether there is no content.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One segment of an initialize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Final protection and lifetime.
    pub group: AllocGroup,
    /// Page-aligned start address inside a slab.
    pub addr: usize,
    /// Size in bytes; protection covers whole pages, so the last page is rounded up.
    pub size: usize,
    /// The bytes at the start of the segment.
    pub content: Content<'a>,
}

impl<'a> Segment<'a> {
    /// A Standard-lifetime segment with copied content.
    #[must_use]
    pub const fn new(prot: Prot, addr: usize, size: usize, content: &'a [u8]) -> Self {
        Self {
            group: AllocGroup::new(prot),
            addr,
            size,
            content: Content::Bytes(content),
        }
    }

    /// A segment of the given lifetime with copied content.
    #[must_use]
    pub const fn with_lifetime(
        prot: Prot,
        lifetime: Lifetime,
        addr: usize,
        size: usize,
        content: &'a [u8],
    ) -> Self {
        Self {
            group: AllocGroup::with_lifetime(prot, lifetime),
            addr,
            size,
            content: Content::Bytes(content),
        }
    }

    /// A Standard-lifetime segment whose first `len` bytes were written in place.
    #[must_use]
    pub const fn in_place(prot: Prot, addr: usize, size: usize, len: usize) -> Self {
        Self {
            group: AllocGroup::new(prot),
            addr,
            size,
            content: Content::InPlace { len },
        }
    }
}

/// Everything one initialize call does: segments to write and protect, actions to run.
#[derive(Debug, Clone, Copy)]
pub struct InitRequest<'a> {
    /// The segments, in any order.
    pub segments: &'a [Segment<'a>],
    /// The finalize/dealloc action pairs, run in order.
    pub actions: &'a [ActionPair],
}

impl<'a> InitRequest<'a> {
    /// A request with segments and action pairs.
    #[must_use]
    pub const fn new(segments: &'a [Segment<'a>], actions: &'a [ActionPair]) -> Self {
        Self { segments, actions }
    }
}
