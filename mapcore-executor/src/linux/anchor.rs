//! The addresses advertised for data symbols: instance tokens and the dispatch context.
//!
//! Each is the address of one distinct byte of a constant table: never mapped executable,
//! never the address of JIT'd code, and the same for the whole process.

/// A data symbol's anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    DispatchCtx = 0,
    DylibManager = 1,
    MemoryManager = 2,
    SharedMemoryMapper = 3,
}

/// The storage behind [`Anchor`] addresses: one distinct byte each.
static ANCHORS: [u8; 4] = [0; 4];

impl Anchor {
    /// The address advertised for this anchor.
    pub(crate) fn addr(self) -> u64 {
        std::ptr::from_ref(&ANCHORS[self as usize]).addr() as u64
    }
}
