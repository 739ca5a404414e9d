//! Cranelift JIT memory on mapcore: [`MapcoreMemoryProvider`], a
//! [`JITMemoryProvider`] for `cranelift-jit` 0.135.8
//! (feature `cranelift`, Rust 1.95).
//!
//! Cranelift asks its memory provider for bytes of three kinds, writes code and data into them
//! itself, patches relocations in place, and then calls `finalize` to make them usable. This
//! provider
//!
//! - reserves one slab of address space from a [`StdJitMap`] (64 MiB by default,
//!   `MAP_NORESERVE`, so it costs no memory until touched), which keeps all code and data of a
//!   module within ±2 GiB of each other as Cranelift 0.135's PC-relative relocations need;
//! - bump-allocates each kind in its own page-aligned segments, so that no page holds two
//!   kinds and no page is shared with memory that an earlier `finalize` already protected;
//! - turns `finalize` into mapcore initialize requests whose segments are
//!   [`Content::InPlace`](mapcore::Content::InPlace) (the bytes Cranelift wrote are neither
//!   copied nor zeroed): code becomes read-execute (with the instruction cache made coherent
//!   by the map, which matters on aarch64), read-only data read-only, writable data stays
//!   read-write;
//! - turns `free_memory` into one `deinitialize_multiple` over every region, so the pages go
//!   back to the system (`MADV_DONTNEED`) and the same addresses are handed out again;
//! - releases the slab when dropped, unless it still holds finalized memory that was never
//!   freed: then it leaks it, as Cranelift's own providers do, so that function pointers stay
//!   valid.
//!
//! The pinned Cranelift crates are re-exported ([`cranelift_jit`], [`cranelift_module`],
//! [`cranelift_codegen`], [`cranelift_frontend`], [`cranelift_native`]) so that a program uses
//! exactly the versions this provider was built against.
//!
//! # Example
//!
//! ```
//! use mapcore_std::cranelift::MapcoreMemoryProvider;
//! use mapcore_std::cranelift::cranelift_codegen::ir::{types, AbiParam, InstBuilder};
//! use mapcore_std::cranelift::cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
//! use mapcore_std::cranelift::cranelift_jit::{JITBuilder, JITModule};
//! use mapcore_std::cranelift::cranelift_module::{default_libcall_names, Linkage, Module};
//!
//! let mut builder = JITBuilder::new(default_libcall_names())?;
//! builder.memory_provider(Box::new(MapcoreMemoryProvider::new()?));
//! let mut module = JITModule::new(builder);
//!
//! // fn add42(x: i64) -> i64 { x + 42 }
//! let mut ctx = module.make_context();
//! ctx.func.signature.params.push(AbiParam::new(types::I64));
//! ctx.func.signature.returns.push(AbiParam::new(types::I64));
//! let id = module.declare_function("add42", Linkage::Export, &ctx.func.signature)?;
//! let mut fctx = FunctionBuilderContext::new();
//! let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
//! let block = b.create_block();
//! b.append_block_params_for_function_params(block);
//! b.switch_to_block(block);
//! let x = b.block_params(block)[0];
//! let sum = b.ins().iadd_imm_s(x, 42);
//! b.ins().return_(&[sum]);
//! b.seal_all_blocks();
//! b.finalize(module.isa().frontend_config());
//! module.define_function(id, &mut ctx)?;
//! module.finalize_definitions()?;
//!
//! let code = module.get_finalized_function(id);
//! // SAFETY: `code` is the finalized `add42`, which has this signature.
//! let add42 = unsafe { std::mem::transmute::<*const u8, extern "C" fn(i64) -> i64>(code) };
//! assert_eq!(add42(100), 142);
//! // SAFETY: no function of the module runs or is called again.
//! unsafe { module.free_memory() };
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Safety
//!
//! Implementing the trait means declaring its `unsafe fn free_memory`. Pointers handed to
//! Cranelift are made from the map's integer addresses with
//! [`with_exposed_provenance_mut`](ptr::with_exposed_provenance_mut), taking back the
//! provenance [`LibcHost`] exposed when it `mmap`ed the slab. No pointer is dereferenced here.
#![expect(
    unsafe_code,
    reason = "the trait method `free_memory` is an `unsafe fn`"
)]

use core::fmt;
use std::io;
use std::ptr;
use std::sync::Arc;

pub use cranelift_codegen;
pub use cranelift_frontend;
pub use cranelift_jit;
pub use cranelift_module;
pub use cranelift_native;

use cranelift_jit::{BranchProtection, JITMemoryKind, JITMemoryProvider};
use cranelift_module::{ModuleError, ModuleResult};
use mapcore::{align_up, Host, InitRequest, Prot, Segment, MAX_SEGMENTS};

use crate::{Error, LibcHost, StdError, StdJitMap};

/// The default slab size: 64 MiB of address space, reserved with `MAP_NORESERVE`.
pub const DEFAULT_SLAB_SIZE: usize = 64 << 20;

/// The largest slab: every byte of it is within ±2 GiB of every other, which is what the
/// PC-relative relocations of Cranelift 0.135 on x86_64 (and `adrp` on aarch64) reach.
pub const MAX_SLAB_SIZE: usize = 1 << 31;

/// How much a kind claims at once when its segment grows (at least one page), so that kinds
/// that alternate do not split each other's segments at every page.
const CLAIM_SIZE: usize = 64 << 10;

/// The three kinds of memory Cranelift asks for, as indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code = 0,
    ReadOnly = 1,
    Writable = 2,
}

impl Kind {
    fn of(kind: &JITMemoryKind) -> Self {
        match kind {
            JITMemoryKind::Executable => Self::Code,
            JITMemoryKind::ReadOnly => Self::ReadOnly,
            JITMemoryKind::Writable => Self::Writable,
        }
    }

    /// The protection the kind's pages get at finalize.
    const fn prot(self) -> Prot {
        match self {
            Self::Code => Prot::READ_EXEC,
            Self::ReadOnly => Prot::READ,
            Self::Writable => Prot::READ_WRITE,
        }
    }
}

/// The segment a kind is filling: `[start, cursor)` handed out since the last finalize,
/// `[cursor, end)` claimed for this kind but not handed out yet. `start` and `end` are
/// page-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    start: usize,
    cursor: usize,
    end: usize,
}

impl Open {
    const fn empty_at(addr: usize) -> Self {
        Self {
            start: addr,
            cursor: addr,
            end: addr,
        }
    }
}

/// Bytes handed out and written by Cranelift, waiting for `finalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    kind: Kind,
    start: usize,
    len: usize,
}

/// A Cranelift [`JITMemoryProvider`] that places code and data in a mapcore slab.
///
/// See the [module documentation](self) for what it does. Give it to Cranelift with
/// [`JITBuilder::memory_provider`](cranelift_jit::JITBuilder::memory_provider), and free a
/// module's memory with [`JITModule::free_memory`](cranelift_jit::JITModule::free_memory).
///
/// # Memory
///
/// - **Placement**: one slab per provider; each kind fills its own page-aligned segments, with
///   alignments up to the page size. A segment that cannot grow in place (another kind claimed
///   the pages after it) is closed and a new one starts at the next free page.
/// - **Finalize**: every segment filled since the last finalize becomes part of one region of
///   the map (more than one if there are over [`MAX_SEGMENTS`] segments). The next allocation
///   of each kind starts on a fresh page. If an initialize fails, the error is returned and the
///   segments stay pending, so a later `finalize` retries them.
/// - **Free**: every region is deinitialized in one batch; bytes handed out but never
///   finalized are discarded too. The slab is then empty and the next allocation starts at
///   its base again. If the map reports an error, the provider releases the slab instead and
///   reserves a new one on the next allocation.
/// - **Drop**: releases the slab if no finalized memory is live (never finalized, or freed).
///   Otherwise it leaks the slab, and the map with it, as `cranelift-jit`'s own providers
///   leak their memory: Cranelift promises that function pointers stay valid until
///   `free_memory`, and dropping a `JITModule` does not call it.
///
/// # Errors
///
/// `allocate` fails with an [`io::Error`] (which Cranelift wraps in
/// [`ModuleError::Allocation`]) when the slab is full ([`io::ErrorKind::OutOfMemory`]), the
/// alignment is not a power of two up to the page size ([`io::ErrorKind::InvalidInput`]) or
/// the slab could not be reserved again (the map's [`StdError`] as the inner error).
/// `finalize` fails with [`ModuleError::Backend`] wrapping the map's [`StdError`] (reach it with
/// `downcast_ref::<StdError>()`), or when Arm BTI is requested on a CPU that enforces it, which
/// mapcore's [`Prot`] cannot express. Nothing here panics.
pub struct MapcoreMemoryProvider {
    map: Arc<StdJitMap>,
    slab_size: usize,
    /// The slab's base, or `None` until it is (re)reserved.
    slab: Option<usize>,
    /// The first page no kind has claimed.
    frontier: usize,
    /// The segment each kind is filling, indexed by [`Kind`].
    open: [Open; 3],
    /// Closed segments waiting for finalize.
    pending: Vec<Pending>,
    /// Keys of the regions finalize initialized.
    live: Vec<usize>,
}

impl fmt::Debug for MapcoreMemoryProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapcoreMemoryProvider")
            .field("slab", &self.slab.map(|base| base as *const u8))
            .field("slab_size", &self.slab_size)
            .field("used", &self.used())
            .field("pending_segments", &self.pending.len())
            .field("live_regions", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl MapcoreMemoryProvider {
    /// A provider with its own [`StdJitMap`] and a [`DEFAULT_SLAB_SIZE`] slab, reserved now.
    ///
    /// # Errors
    ///
    /// The slab could not be reserved (see [`with_map`](Self::with_map)).
    pub fn new() -> io::Result<Self> {
        Self::with_slab_size(DEFAULT_SLAB_SIZE)
    }

    /// A provider with its own [`StdJitMap`] and a slab of `slab_size` bytes (rounded up to
    /// whole pages), reserved now.
    ///
    /// # Errors
    ///
    /// The slab could not be reserved (see [`with_map`](Self::with_map)).
    pub fn with_slab_size(slab_size: usize) -> io::Result<Self> {
        Self::with_map(Arc::new(StdJitMap::new(LibcHost::new())), slab_size)
    }

    /// A provider that reserves its slab of `slab_size` bytes (rounded up to whole pages) in
    /// `map`, now. The map may be shared with other providers and other users: the provider
    /// only touches its own slab.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `slab_size` is zero or above [`MAX_SLAB_SIZE`], or
    /// if `map`'s host writes through an alias (the dual-mapped host: Cranelift writes code in
    /// place at the execution address, which such a host may leave executable after reuse);
    /// otherwise the map's [`StdError`] from
    /// [`reserve`](mapcore::JitMap::reserve) as the inner error (for example the kernel's
    /// `ENOMEM`, or [`Error::TooLarge`] above the map's configured maximum).
    pub fn with_map(map: Arc<StdJitMap>, slab_size: usize) -> io::Result<Self> {
        if slab_size == 0 || slab_size > MAX_SLAB_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "slab size {slab_size:#x} is zero or above {MAX_SLAB_SIZE:#x}, the reach of \
                     Cranelift's PC-relative relocations"
                ),
            ));
        }
        if map.host().capabilities().writes_through_alias {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the Cranelift provider needs a map on the flip host, not {}: Cranelift \
                     writes code in place, and that host leaves freed pages at their last \
                     protection",
                    map.host().mode()
                ),
            ));
        }
        let slab_size = align_up(slab_size, map.page_size())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "slab size overflows"))?;
        let mut provider = Self {
            map,
            slab_size,
            slab: None,
            frontier: 0,
            open: [Open::empty_at(0); 3],
            pending: Vec::new(),
            live: Vec::new(),
        };
        provider.slab_base()?;
        Ok(provider)
    }

    /// The map the slab lives in.
    #[must_use]
    pub fn map(&self) -> &Arc<StdJitMap> {
        &self.map
    }

    /// The slab's base address and size, or `None` while no slab is reserved (after a failed
    /// [`free_memory`](JITMemoryProvider::free_memory) gave it up).
    #[must_use]
    pub fn slab(&self) -> Option<(usize, usize)> {
        self.slab.map(|base| (base, self.slab_size))
    }

    /// Bytes of the slab claimed so far (page-granular; includes pages claimed but not yet
    /// handed out).
    #[must_use]
    pub fn used(&self) -> usize {
        self.slab.map_or(0, |base| self.frontier - base)
    }

    /// The number of map regions holding finalized memory that is still live.
    #[must_use]
    pub fn live_regions(&self) -> usize {
        self.live.len()
    }

    /// The slab's base, reserving it (again) if needed, and resetting every cursor to it.
    fn slab_base(&mut self) -> io::Result<usize> {
        if let Some(base) = self.slab {
            return Ok(base);
        }
        let base = self.map.reserve(self.slab_size).map_err(io_error)?;
        self.slab = Some(base);
        self.reset_cursors(base);
        Ok(base)
    }

    fn reset_cursors(&mut self, base: usize) {
        self.frontier = base;
        self.open = [Open::empty_at(base); 3];
    }

    /// Hands out `size` bytes aligned to `align` (a power of two up to the page size) from
    /// `kind`'s segment, growing it or starting a new one as needed.
    fn allocate_in(&mut self, size: usize, align: usize, kind: Kind) -> io::Result<usize> {
        let page = self.map.page_size();
        let base = self.slab_base()?;
        let slab_end = base + self.slab_size;
        let open = self.open[kind as usize];
        // Fits in what the kind already claimed?
        let at = align_up(open.cursor, align).ok_or_else(exhausted)?;
        if let Some(end) = at.checked_add(size).filter(|end| *end <= open.end) {
            self.open[kind as usize].cursor = end;
            return Ok(at);
        }
        // Grow in place if the segment ends where the unclaimed pages begin; else start a new
        // segment there. Either way `at` is page-aligned or inside the kind's own pages.
        let (start, at) = if open.end == self.frontier {
            (open.start, at)
        } else {
            (self.frontier, self.frontier)
        };
        let needed_end = at
            .checked_add(size)
            .and_then(|end| align_up(end, page))
            .filter(|end| *end <= slab_end)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "mapcore slab exhausted: {size} bytes asked for, {} of {} bytes free",
                        slab_end - self.frontier,
                        self.slab_size
                    ),
                )
            })?;
        let claim_end = self
            .frontier
            .saturating_add(CLAIM_SIZE.max(page))
            .min(slab_end);
        let end = needed_end.max(claim_end);
        // Nothing failed: commit.
        if start != open.start && open.cursor > open.start {
            self.pending.push(Pending {
                kind,
                start: open.start,
                len: open.cursor - open.start,
            });
        }
        self.frontier = end;
        self.open[kind as usize] = Open {
            start,
            cursor: at + size,
            end,
        };
        Ok(at)
    }

    /// Moves what each kind handed out since the last finalize to `pending`; the next
    /// allocation of each kind starts on a fresh page.
    fn close_open_segments(&mut self) {
        let page = self.map.page_size();
        for kind in [Kind::Code, Kind::ReadOnly, Kind::Writable] {
            let open = &mut self.open[kind as usize];
            if open.cursor > open.start {
                self.pending.push(Pending {
                    kind,
                    start: open.start,
                    len: open.cursor - open.start,
                });
                // Cannot overflow: `end` is page-aligned and at least `cursor`.
                let next = align_up(open.cursor, page)
                    .unwrap_or(open.end)
                    .min(open.end);
                *open = Open {
                    start: next,
                    cursor: next,
                    end: open.end,
                };
            }
        }
    }

    /// Initializes the pending segments, at most [`MAX_SEGMENTS`] per region, with their
    /// kind's protection (or `prot` for all of them), and records the regions. On an error
    /// the failed segments and those after them stay pending.
    fn initialize_pending(&mut self, prot: Option<Prot>) -> Result<(), StdError> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_SEGMENTS);
            let segments: Vec<Segment<'_>> = self.pending[..n]
                .iter()
                .map(|p| Segment::in_place(prot.unwrap_or(p.kind.prot()), p.start, p.len, p.len))
                .collect();
            let key = self.map.initialize(&InitRequest::new(&segments, &[]))?;
            self.live.push(key);
            self.pending.drain(..n);
        }
        Ok(())
    }

    /// Deinitializes everything and empties the slab; on any error gives the slab up.
    fn reclaim(&mut self) {
        let Some(base) = self.slab else {
            self.pending.clear();
            self.live.clear();
            return;
        };
        // Bytes Cranelift wrote but never finalized: make them a read-write region too, so
        // that deinitialize discards them and the free pages read as zero again, as the map
        // expects of free pages.
        self.close_open_segments();
        let mut clean = self.initialize_pending(Some(Prot::READ_WRITE)).is_ok();
        clean &= self
            .map
            .deinitialize_multiple(&self.live, |_, _| {})
            .is_ok();
        self.pending.clear();
        self.live.clear();
        if clean {
            self.reset_cursors(base);
        } else {
            // Some pages may be dirty or quarantined: give the whole slab back (release
            // deinitializes what is left in it) and start afresh on the next allocation. If
            // even the release fails the slab stays recorded in the map, which retries when
            // it is dropped.
            let _ = self.map.release(base);
            self.slab = None;
        }
    }
}

impl JITMemoryProvider for MapcoreMemoryProvider {
    fn allocate(&mut self, size: usize, align: u64, kind: JITMemoryKind) -> io::Result<*mut u8> {
        let page = self.map.page_size();
        let align = usize::try_from(align)
            .ok()
            .filter(|a| a.is_power_of_two() && *a <= page)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("alignment {align} is not a power of two up to the page size {page}"),
                )
            })?;
        // Zero-byte requests still get a byte of their own, inside the kind's pages.
        let addr = self.allocate_in(size.max(1), align, Kind::of(&kind))?;
        Ok(ptr::with_exposed_provenance_mut(addr))
    }

    /// Deinitializes every region in one batch (discarding the pages) and starts again at the
    /// slab's base.
    ///
    /// # Safety
    ///
    /// As for the trait: no function of the memory runs or is called again, and nothing
    /// reads or writes its data any more.
    unsafe fn free_memory(&mut self) {
        self.reclaim();
    }

    fn finalize(&mut self, branch_protection: BranchProtection) -> ModuleResult<()> {
        if branch_protection == BranchProtection::BTI && bti_enforced() {
            return Err(ModuleError::Backend(anyhow::anyhow!(
                "mapcore cannot map code with Arm BTI enforcement (PROT_BTI): \
                 its Prot has no BTI flag"
            )));
        }
        self.close_open_segments();
        let segments = self.pending.len();
        self.initialize_pending(None).map_err(|error| {
            ModuleError::Backend(anyhow::Error::new(error).context(format!(
                "mapcore could not initialize the memory of {segments} JIT segments"
            )))
        })
    }
}

impl Drop for MapcoreMemoryProvider {
    fn drop(&mut self) {
        let Some(base) = self.slab else { return };
        if self.live.is_empty() {
            let _ = self.map.release(base);
        } else {
            // Finalized memory that was never freed: keep it mapped for good, like Cranelift's
            // providers. Dropping the map would release the slab, so the map is leaked too.
            std::mem::forget(Arc::clone(&self.map));
        }
    }
}

/// Whether `PROT_BTI` would be enforced on this CPU (Cranelift only applies it then).
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn bti_enforced() -> bool {
    std::arch::is_aarch64_feature_detected!("bti")
}

/// Whether `PROT_BTI` would be enforced on this CPU (Cranelift only applies it then).
#[cfg(not(all(target_arch = "aarch64", target_os = "linux")))]
fn bti_enforced() -> bool {
    false
}

fn exhausted() -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, "mapcore slab exhausted")
}

/// The [`io::Error`] for a map error, with the map error inside.
fn io_error(error: StdError) -> io::Error {
    let kind = match &error {
        Error::Host { error, .. } => io::Error::from(*error).kind(),
        Error::InvalidSize { .. } | Error::TooLarge { .. } => io::ErrorKind::InvalidInput,
        Error::CapacityExceeded(_) => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> usize {
        crate::page_size()
    }

    fn alloc(p: &mut MapcoreMemoryProvider, size: usize, align: u64, kind: JITMemoryKind) -> usize {
        p.allocate(size, align, kind).unwrap().addr()
    }

    #[test]
    fn kinds_never_share_a_page() {
        let mut p = MapcoreMemoryProvider::with_slab_size(64 * page()).unwrap();
        let (base, _) = p.slab().unwrap();
        let code = alloc(&mut p, 10, 16, JITMemoryKind::Executable);
        let ro = alloc(&mut p, 10, 1, JITMemoryKind::ReadOnly);
        let rw = alloc(&mut p, 10, 8, JITMemoryKind::Writable);
        let code2 = alloc(&mut p, 10, 16, JITMemoryKind::Executable);
        assert_eq!(code, base);
        assert_eq!(code2, base + 16, "same kind continues its segment, aligned");
        let pages = [code / page(), ro / page(), rw / page()];
        assert!(
            pages[0] != pages[1] && pages[1] != pages[2] && pages[0] != pages[2],
            "{pages:?}"
        );
        assert_eq!(ro % page(), 0, "a new kind segment starts on a fresh page");
        assert_eq!(rw % page(), 0);
    }

    #[test]
    fn alignment_is_honoured_up_to_a_page_and_refused_above() {
        let mut p = MapcoreMemoryProvider::with_slab_size(64 * page()).unwrap();
        for log2 in 0..=page().trailing_zeros() {
            let align = 1usize << log2;
            let addr = alloc(&mut p, 3, align as u64, JITMemoryKind::Writable);
            assert_eq!(addr % align, 0, "align {align}");
        }
        for bad in [3u64, 2 * page() as u64, 0, u64::MAX] {
            let error = p.allocate(8, bad, JITMemoryKind::Executable).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "align {bad}");
        }
    }

    #[test]
    fn a_segment_that_cannot_grow_in_place_is_closed_and_a_new_one_started() {
        let mut p = MapcoreMemoryProvider::with_slab_size(64 * page()).unwrap();
        let claim = CLAIM_SIZE.max(page());
        let code = alloc(&mut p, claim - 8, 8, JITMemoryKind::Executable);
        let data = alloc(&mut p, 8, 8, JITMemoryKind::Writable);
        assert_eq!(data, code + claim);
        // The code segment is full and the data segment sits after it: new code segment.
        let code2 = alloc(&mut p, 64, 8, JITMemoryKind::Executable);
        assert_eq!(code2, data + claim);
        assert_eq!(
            p.pending.len(),
            1,
            "the first code segment waits for finalize"
        );
        p.finalize(BranchProtection::None).unwrap();
        assert_eq!(p.live_regions(), 1, "three segments, one region");
        assert!(p.pending.is_empty());
    }

    #[test]
    fn full_slab_is_out_of_memory_and_changes_nothing() {
        let mut p = MapcoreMemoryProvider::with_slab_size(2 * page()).unwrap();
        alloc(&mut p, page() + 1, 1, JITMemoryKind::Executable);
        let before = (p.frontier, p.open, p.pending.clone());
        let error = p.allocate(page(), 1, JITMemoryKind::ReadOnly).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory, "{error}");
        assert_eq!((p.frontier, p.open, p.pending.clone()), before);
        // What is left still fits.
        alloc(&mut p, page() - 1, 1, JITMemoryKind::Executable);
    }

    #[test]
    fn slab_size_limits() {
        for size in [0, MAX_SLAB_SIZE + 1, usize::MAX] {
            let error = MapcoreMemoryProvider::with_slab_size(size).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{size:#x}");
        }
        let p = MapcoreMemoryProvider::with_slab_size(1).unwrap();
        assert_eq!(p.slab().unwrap().1, page(), "rounded up to a page");
    }

    #[test]
    fn io_error_keeps_the_map_error_and_its_kind() {
        let os = crate::OsError::from_raw_os_error(::libc::ENOMEM);
        let error = io_error(Error::Host {
            op: mapcore::HostOp::Reserve,
            segment: None,
            error: os,
            quarantined: false,
            dealloc_failures: 0,
        });
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        let inner = error.get_ref().and_then(|e| e.downcast_ref::<StdError>());
        assert_eq!(inner.and_then(Error::host_error), Some(&os));
        assert_eq!(
            io_error(Error::TooLarge { size: 1 }).kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
