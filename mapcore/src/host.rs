//! The host: the abstract page-protection interface the map drives.
//!
//! # Safety
//!
//! This module declares an `unsafe trait` and `unsafe fn`s, and forwards them for `&H`.
//! The implementer's promises are on [`Host`]; the caller's promises are on each method.
#![expect(
    unsafe_code,
    reason = "the host trait is where the unsafe promises are written down"
)]

use core::fmt::{Debug, Display};

use crate::addr::PageRange;
use crate::prot::Prot;

/// What kind of failure a host error is, independent of the host.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostErrorKind {
    /// Out of memory or address space (ENOMEM, including `vm.max_map_count`).
    OutOfMemory,
    /// The system refused the protection, typically execute permission under W^X
    /// enforcement (EACCES from SELinux `execmem` or `PR_SET_MDWE`).
    PermissionDenied,
    /// The host rejected an argument (EINVAL).
    InvalidArgument,
    /// Anything else.
    Other,
}

/// An error reported by a [`Host`]: a small value (typically an error code), cloned into each
/// batch entry it affects, and displayed inside the map's error messages.
pub trait HostError: Debug + Display + Clone {
    /// The kind of failure.
    fn kind(&self) -> HostErrorKind;
}

impl HostError for core::convert::Infallible {
    fn kind(&self) -> HostErrorKind {
        match *self {}
    }
}

/// What a host can and cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Host::discard`] really drops contents, so discarded pages read as zero afterwards.
    /// When false the map zero-fills reused pages itself.
    pub discard: bool,
    /// Pages that were executable may be made writable again and reused. Some systems forbid
    /// this; the map then never hands such pages out again until their slab is released.
    pub reuse_executable: bool,
    /// [`Host::write`], [`Host::fill_zero`] and [`Host::fill_trap`] reach the pages through a
    /// read-write alias, whatever the protection of the execution view (a dual-mapped host).
    ///
    /// The map then protects lazily: a freed page keeps its last protection, its old bytes
    /// overwritten (trap instructions where code was written, zeros on other pages), and
    /// initialize protects only the pages whose protection differs from the request's. Reusing
    /// a region of the same layout makes no protect call at all.
    pub writes_through_alias: bool,
}

impl Capabilities {
    /// Everything supported (Linux, most Unix systems).
    pub const FULL: Self = Self {
        discard: true,
        reuse_executable: true,
        writes_through_alias: false,
    };
}

/// Which host call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostOp {
    /// [`Host::reserve`].
    Reserve,
    /// [`Host::release`].
    Release,
    /// [`Host::protect`].
    Protect,
    /// [`Host::discard`].
    Discard,
    /// [`Host::flush_icache`].
    FlushIcache,
}

/// The page-protection interface the map is built on.
///
/// Addresses are integers: the map never dereferences them, it reaches memory only through
/// [`Host::write`] and [`Host::fill_zero`]. A host may therefore write through an alias of the
/// pages (a dual-mapped W^X host) while the addresses handed to the JIT are the execution view.
///
/// Every method takes `&self` and may be called from several threads at once, on disjoint
/// ranges; the map never calls the host while holding its lock.
///
/// # Safety
///
/// The implementer promises:
/// 1. [`reserve`](Host::reserve) returns a page-aligned base of `size` bytes of fresh address
///    space that overlaps nothing else the host has handed out and not released; all of it
///    reads as zero and is read-write.
/// 2. `Ok` from [`protect`](Host::protect) means the new protection is in effect for the whole
///    range. On `Err`, any part of the range may have changed.
/// 3. `Ok` from [`discard`](Host::discard) means the range reads as zero afterwards, with its
///    protection unchanged. A host whose [`Capabilities::discard`] is false may do nothing.
/// 4. [`write`](Host::write), [`fill_zero`](Host::fill_zero) and
///    [`fill_trap`](Host::fill_trap) store exactly the given bytes at the given execution
///    addresses (through whatever alias the host uses) and nothing else; with
///    [`Capabilities::writes_through_alias`] they do so whatever the execution view's
///    protection.
/// 5. No method calls back into the map.
/// 6. [`page_size`](Host::page_size) is a power of two and never changes; nor does
///    [`capabilities`](Host::capabilities) (a map reads both once, when it is created).
pub unsafe trait Host: Sync {
    /// The host's error type.
    type Error: HostError;

    /// The page size all ranges are aligned to; a power of two.
    fn page_size(&self) -> usize;

    /// What the host supports.
    fn capabilities(&self) -> Capabilities;

    /// Reserves `size` bytes (a non-zero page multiple) of zeroed read-write memory and
    /// returns its base address.
    ///
    /// # Errors
    ///
    /// The host cannot provide the memory.
    fn reserve(&self, size: usize) -> Result<usize, Self::Error>;

    /// Returns a reservation to the system.
    ///
    /// # Safety
    ///
    /// 1. `base` and `size` are exactly those of one earlier successful `reserve` that has
    ///    not been released.
    /// 2. Nothing refers to the memory any more.
    ///
    /// # Errors
    ///
    /// The host could not unmap the range; it is still reserved.
    unsafe fn release(&self, base: usize, size: usize) -> Result<(), Self::Error>;

    /// Sets the protection of `range`.
    ///
    /// # Safety
    ///
    /// 1. `range` lies inside one live reservation.
    /// 2. No reference into `range` is live that the new protection would invalidate.
    ///
    /// # Errors
    ///
    /// The protection could not be applied; part of the range may have changed.
    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), Self::Error>;

    /// Drops the contents of `range` so that it reads as zero and uses no physical memory.
    ///
    /// # Safety
    ///
    /// 1. `range` lies inside one live reservation.
    /// 2. Nothing needs the contents of `range` any more.
    ///
    /// # Errors
    ///
    /// The contents may still be there.
    unsafe fn discard(&self, range: PageRange) -> Result<(), Self::Error>;

    /// Copies `bytes` to the memory at `addr`.
    ///
    /// # Safety
    ///
    /// 1. `[addr, addr + bytes.len())` lies inside one live reservation and is currently
    ///    read-write, or the host's [`Capabilities::writes_through_alias`] is true.
    /// 2. No one else accesses that memory during the call.
    /// 3. `bytes` does not overlap `[addr, addr + bytes.len())`.
    unsafe fn write(&self, addr: usize, bytes: &[u8]);

    /// Sets `len` bytes at `addr` to zero.
    ///
    /// # Safety
    ///
    /// The same as [`write`](Host::write) with `len` for `bytes.len()`.
    unsafe fn fill_zero(&self, addr: usize, len: usize);

    /// Fills `len` bytes at `addr` with the architecture's trap instruction (`int3` on x86-64,
    /// `udf` on Arm), so that a stale call into freed code traps instead of running. The map
    /// calls it only on hosts with [`Capabilities::writes_through_alias`], on pages that were
    /// executable. `addr` and `len` are page-aligned.
    ///
    /// # Safety
    ///
    /// The same as [`write`](Host::write) with `len` for `bytes.len()`.
    unsafe fn fill_trap(&self, addr: usize, len: usize);

    /// Makes the instruction cache coherent with the data just written to `range`.
    ///
    /// There is no default body on purpose: a host on x86, whose caches are coherent, writes
    /// `Ok(())` deliberately.
    ///
    /// # Safety
    ///
    /// `range` lies inside one live reservation and is readable (cache maintenance by virtual
    /// address faults on unmapped or inaccessible pages).
    ///
    /// # Errors
    ///
    /// The cache could not be synchronized.
    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), Self::Error>;
}

// SAFETY: forwards every call to `H`, which upholds the trait's promises.
unsafe impl<H: Host + ?Sized> Host for &H {
    type Error = H::Error;

    fn page_size(&self) -> usize {
        (**self).page_size()
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    fn reserve(&self, size: usize) -> Result<usize, Self::Error> {
        (**self).reserve(size)
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), Self::Error> {
        // SAFETY: the caller upholds `release`'s contract, which is forwarded unchanged.
        unsafe { (**self).release(base, size) }
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), Self::Error> {
        // SAFETY: the caller upholds `protect`'s contract, which is forwarded unchanged.
        unsafe { (**self).protect(range, prot) }
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), Self::Error> {
        // SAFETY: the caller upholds `discard`'s contract, which is forwarded unchanged.
        unsafe { (**self).discard(range) }
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the caller upholds `write`'s contract, which is forwarded unchanged.
        unsafe { (**self).write(addr, bytes) }
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: the caller upholds `fill_zero`'s contract, which is forwarded unchanged.
        unsafe { (**self).fill_zero(addr, len) }
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // SAFETY: the caller upholds `fill_trap`'s contract, which is forwarded unchanged.
        unsafe { (**self).fill_trap(addr, len) }
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), Self::Error> {
        // SAFETY: the caller upholds `flush_icache`'s contract, which is forwarded unchanged.
        unsafe { (**self).flush_icache(range) }
    }
}
