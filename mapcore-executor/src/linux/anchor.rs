//! The addresses advertised for instance tokens.
//!
//! Each is the address of one distinct byte of a constant table: never mapped executable,
//! never the address of JIT'd code, and the same for the whole process.

/// A data symbol's anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    DylibManager = 0,
    MemoryManager = 1,
    SharedMemoryMapper = 2,
}

/// The storage behind [`Anchor`] addresses: one distinct byte each.
static ANCHORS: [u8; 3] = [0; 3];

impl Anchor {
    /// The address advertised for this anchor.
    pub(crate) fn addr(self) -> u64 {
        std::ptr::from_ref(&ANCHORS[self as usize]).addr() as u64
    }
}
