//! The contenders: one file per peer, all behind [`Contender`], so every workload drives them
//! through the same calls with the same blob.

mod cranelift;
mod floor;
mod floor_dual;
mod jit_allocator;
pub(crate) mod mapcore;
mod region;

use mapcore_std::DiscardPolicy;

/// How a contender keeps code from being writable and executable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// `mprotect` flips pages between RW and RX.
    Flip,
    /// A read-write alias of the executable pages (memfd mapped twice).
    Dual,
}

impl Security {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Flip => "flip",
            Self::Dual => "dual",
        }
    }
}

/// What a workload needs room for: `slots` live regions of at most `slot_bytes` bytes each
/// (a page multiple).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) slots: usize,
    pub(crate) slot_bytes: usize,
}

/// One live region as a workload sees it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Token {
    /// Execution address of the blob.
    pub(crate) exec: usize,
    /// Address of the rodata copy (W1b), or 0.
    pub(crate) rodata: usize,
    /// Bytes of whole pages the region spans from `exec` (code and rodata).
    pub(crate) len: usize,
    /// Contender-private handle (slot index, pool index).
    pub(crate) id: usize,
}

/// A JIT memory manager under test.
///
/// `init*` copy the blob into fresh memory, make it executable (and coherent) and return
/// where it runs; `deinit*` hand the memory back for reuse. Errors are bugs here: they panic.
pub(crate) trait Contender {
    /// Short id, used by `--only`.
    fn name(&self) -> &'static str;
    /// W^X model.
    fn security(&self) -> Security;
    /// Sets up for a workload (reserves the slab, pre-sizes tables); untimed.
    fn prepare(&mut self, layout: Layout);
    /// Undoes `prepare` once every region is deinitialized; untimed.
    fn finish(&mut self);
    /// One code region holding `code`.
    fn init(&mut self, code: &[u8]) -> Token;
    /// One region with an executable `code` segment, a read-only `rodata` segment and one
    /// finalize/dealloc pair of no-op actions (W1b).
    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token;
    /// Deinitializes one region made by `init`.
    fn deinit(&mut self, token: Token);
    /// Deinitializes one region made by `init_with_rodata` (runs its dealloc action).
    fn deinit_with_rodata(&mut self, token: Token);
    /// Why this contender cannot run `workload`, if it cannot.
    fn unsupported(&self, workload: crate::workload::Workload) -> Option<&'static str> {
        let _ = workload;
        None
    }
    /// Deinitializes many regions; peers without a batch call loop.
    fn deinit_batch(&mut self, tokens: &[Token]) {
        for &token in tokens {
            self.deinit(token);
        }
    }
}

/// Every contender, in report order; the first is the floor the others are compared with.
pub(crate) fn all() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(floor::Floor::new(false)),
        Box::new(floor::Floor::new(true)),
        Box::new(floor_dual::FloorDual::new()),
        Box::new(mapcore::Mapcore::new(Security::Flip, DiscardPolicy::Retain)),
        Box::new(mapcore::Mapcore::new(
            Security::Flip,
            DiscardPolicy::Discard,
        )),
        Box::new(mapcore::Mapcore::new(Security::Dual, DiscardPolicy::Retain)),
        Box::new(mapcore::Mapcore::new(
            Security::Dual,
            DiscardPolicy::Discard,
        )),
        Box::new(region::RegionSlab::new()),
        Box::new(jit_allocator::JitAlloc::new()),
        Box::new(cranelift::Cranelift::new(cranelift::Provider::Arena)),
        Box::new(cranelift::Cranelift::new(cranelift::Provider::System)),
    ]
}

/// The page size.
pub(crate) fn page_size() -> usize {
    mapcore_std::page_size()
}

/// `len` rounded up to whole pages.
pub(crate) fn page_ceil(len: usize) -> usize {
    len.div_ceil(page_size()) * page_size()
}

/// Fixed-size slots in one slab, for the contenders where the caller places regions (the
/// floors, region, mapcore): a LIFO free list, so a single live region always lands on the
/// same pages. Pre-sized by `reset`; taking and returning never allocate.
///
/// The slab has one spare page before the first slot and one after the last, so every region
/// lies strictly inside the slab's mapping, as in a real JIT slab: its `mprotect` always
/// splits the mapping (VMA) and the flip back merges it again. Without them, a one-region slab
/// would be a whole mapping whose flips never split, or would split or not depending on
/// which neighbouring mapping the kernel happened to merge it with.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    free: Vec<usize>,
    slots: usize,
    slot_bytes: usize,
}

impl Slots {
    /// `layout.slots` free slots of `layout.slot_bytes` each.
    pub(crate) fn reset(&mut self, layout: Layout) {
        self.free.clear();
        self.free.extend((0..layout.slots).rev());
        self.slots = layout.slots;
        self.slot_bytes = layout.slot_bytes;
    }

    /// Total bytes the slab needs, spare pages included.
    pub(crate) fn slab_bytes(&self) -> usize {
        self.slots * self.slot_bytes + 2 * page_size()
    }

    /// A free slot and its offset in the slab.
    pub(crate) fn take(&mut self) -> (usize, usize) {
        let slot = self.free.pop().expect("workload exceeded its layout");
        (slot, page_size() + slot * self.slot_bytes)
    }

    /// Returns a slot.
    pub(crate) fn put(&mut self, slot: usize) {
        self.free.push(slot);
    }
}
