//! [`LibcHost`]: the [`Host`] of a normal process, on `mmap`, `mprotect`, `madvise` and
//! `munmap`. Each page has one mapping, written while read-write and then flipped to its final
//! protection with `mprotect`, so code runs at the address it was written to.
//!
//! Every libc call goes through [`cvt`], which turns the C failure value into an [`OsError`]
//! read from `errno`.
//!
//! # Safety
//!
//! This module calls libc and implements the unsafe [`Host`] trait. The host hands out
//! addresses as integers, so the pointer `mmap` returns has its provenance exposed
//! (`expose_provenance`) and every pointer made from an address later takes it back
//! ([`with_exposed_provenance_mut`](ptr::with_exposed_provenance_mut)).
//! The memory behind those pointers is only touched under the caller's promises on each
//! [`Host`] method: a live reservation, read-write pages, and no concurrent access.
#![expect(unsafe_code, reason = "libc calls and the unsafe Host trait")]

use core::ffi::{c_int, c_void};
use core::ptr;

use mapcore::{Capabilities, Host, PageRange, Prot};

use crate::error::OsError;
use crate::sys::{cvt, prot_bits};

/// Flags for reservations: private anonymous memory, no swap reserved up front (a slab may be
/// large and mostly unused).
#[cfg(any(target_os = "linux", target_os = "android"))]
const RESERVE_FLAGS: c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const RESERVE_FLAGS: c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;

/// The pointer for an address this host handed out, with the provenance `mmap` gave it.
fn at(addr: usize) -> *mut c_void {
    ptr::with_exposed_provenance_mut(addr)
}

/// The [`Host`] for ordinary processes: anonymous `mmap` reservations, `mprotect`,
/// `madvise(MADV_DONTNEED)`, `munmap`, and the instruction-cache maintenance the CPU needs.
///
/// It holds no state: the page size is read once per process (see
/// [`page_size`](crate::page_size())) and icache set-up is process-wide, so every
/// `LibcHost` is the same and copying one is free.
///
/// Made for Linux on x86_64 and aarch64. On other Unix systems it compiles, untested, but
/// [`Host::discard`] does nothing (the map then zero-fills reused pages itself, see
/// [`Capabilities::discard`]) and [`Host::flush_icache`] fails with `ENOSYS` on
/// architectures whose instruction cache it does not know how to maintain.
///
/// # Examples
///
/// ```
/// use mapcore_std::{LibcHost, StdJitMap};
///
/// let map = StdJitMap::new(LibcHost::new());
/// let base = map.reserve(16 * mapcore_std::page_size())?;
/// map.release(base)?;
/// # Ok::<(), mapcore_std::StdError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LibcHost {
    _private: (),
}

impl LibcHost {
    /// The host.
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

// SAFETY: the implementer's promises of `Host`:
// 1. `reserve` returns what a successful anonymous private `mmap` returned: page-aligned,
//    fresh address space that overlaps no live mapping, zero-filled and `PROT_READ |
//    PROT_WRITE`.
// 2. `protect` returns `Ok` only when `mprotect` returned 0, i.e. the protection of the whole
//    range is in effect.
// 3. On Linux `MADV_DONTNEED` on private anonymous memory makes later reads see zero-filled
//    pages and leaves the protection alone; elsewhere `discard` does nothing and
//    `capabilities().discard` is false.
// 4. `write`, `fill_zero` and `fill_trap` store exactly the bytes asked for at the given
//    addresses, the execution addresses themselves (no alias: `writes_through_alias` is
//    false).
// 5. No method calls back into a map.
// 6. `page_size` returns the cached `sysconf` value, asserted to be a power of two.
unsafe impl Host for LibcHost {
    type Error = OsError;

    fn page_size(&self) -> usize {
        crate::page_size()
    }

    /// [`Capabilities::FULL`] on Linux; elsewhere `discard` is false because `MADV_DONTNEED`
    /// is only a hint there and old bytes may survive it.
    fn capabilities(&self) -> Capabilities {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            Capabilities::FULL
        } else {
            Capabilities {
                discard: false,
                ..Capabilities::FULL
            }
        }
    }

    /// `mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    /// -1, 0)`.
    #[doc(alias = "mmap")]
    fn reserve(&self, size: usize) -> Result<usize, OsError> {
        // SAFETY: an anonymous mapping at an address of the kernel's choice (NULL hint, no
        // MAP_FIXED) cannot replace or alias any existing memory; there are no other
        // preconditions.
        let base = cvt(unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                RESERVE_FLAGS,
                -1,
                0,
            )
        })?;
        Ok(base.expose_provenance())
    }

    /// `munmap(base, size)`.
    #[doc(alias = "munmap")]
    unsafe fn release(&self, base: usize, size: usize) -> Result<(), OsError> {
        // SAFETY: (1) `base`/`size` are exactly one live reservation of this host, so only
        // memory this host mapped is unmapped; (2) the caller promises nothing refers to it.
        cvt(unsafe { libc::munmap(at(base), size) })?;
        Ok(())
    }

    /// `mprotect(range.start(), range.len(), prot)`.
    #[doc(alias = "mprotect")]
    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), OsError> {
        // SAFETY: (1) the range lies inside one live reservation of this host, so no other
        // memory's protection changes; (2) the caller promises no live reference into it is
        // invalidated by the new protection.
        cvt(unsafe { libc::mprotect(at(range.start()), range.len(), prot_bits(prot)) })?;
        Ok(())
    }

    /// `madvise(range.start(), range.len(), MADV_DONTNEED)` on Linux, never `MADV_FREE`
    /// (which frees lazily, so old bytes could still be read); nothing elsewhere.
    #[doc(alias = "madvise")]
    #[doc(alias = "MADV_DONTNEED")]
    unsafe fn discard(&self, range: PageRange) -> Result<(), OsError> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: (1) the range lies inside one live reservation of this host, which is
            // private anonymous memory: MADV_DONTNEED drops its pages and nothing else;
            // (2) the caller promises nobody needs the contents any more.
            cvt(unsafe { libc::madvise(at(range.start()), range.len(), libc::MADV_DONTNEED) })?;
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = range;
        Ok(())
    }

    /// `memcpy(addr, bytes, bytes.len())`.
    #[doc(alias = "memcpy")]
    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        let dst = at(addr).cast::<u8>();
        debug_assert!(
            {
                let src = bytes.as_ptr().addr();
                src.saturating_add(bytes.len()) <= addr || addr.saturating_add(bytes.len()) <= src
            },
            "content overlaps its own destination"
        );
        // SAFETY: (1) `[addr, addr + len)` lies in a live reservation and is read-write, so
        // `dst` is valid for writes of `len` bytes; `u8` needs no alignment. `bytes` is a
        // valid shared slice and cannot overlap the destination: nothing may refer to the
        // destination while (2) the caller keeps everyone else away from it.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }

    /// `memset(addr, 0, len)`.
    #[doc(alias = "memset")]
    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: as for `write`: `[addr, addr + len)` is live, read-write and not accessed
        // by anyone else during the call.
        unsafe { ptr::write_bytes(at(addr).cast::<u8>(), 0, len) };
    }

    /// Fills with the architecture's trap instruction (`int3` on x86-64, `udf #0` on
    /// aarch64). The map never calls it on this host, which writes at the execution addresses
    /// themselves.
    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // SAFETY: as for `write`: `[addr, addr + len)` is live, read-write and not accessed
        // by anyone else during the call.
        unsafe { crate::trap::fill(at(addr).cast::<u8>(), len) };
    }

    /// Makes the instruction cache coherent with the data just written to `range`: on aarch64
    /// Linux, `__clear_cache(start, end)` followed by
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`; on x86 and x86_64, nothing
    /// (their instruction caches are coherent with data writes).
    #[doc(alias = "__clear_cache")]
    #[doc(alias = "membarrier")]
    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), OsError> {
        crate::icache::flush(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_write_discard_release_round_trip() {
        let host = LibcHost::new();
        let page = host.page_size();
        let base = host.reserve(2 * page).unwrap();
        assert_eq!(base % page, 0);
        let range = PageRange::new(base, base + 2 * page, page).unwrap();
        // SAFETY: the two pages were just reserved, are read-write and used by this test only.
        unsafe {
            host.write(base + 10, &[1, 2, 3]);
            assert_eq!(*at(base + 11).cast::<u8>(), 2);
            host.fill_zero(base + 10, 2);
            assert_eq!(*at(base + 12).cast::<u8>(), 3);
            assert_eq!(*at(base + 11).cast::<u8>(), 0);
            host.discard(range).unwrap();
            assert_eq!(*at(base + 12).cast::<u8>(), 0);
            host.protect(range, Prot::READ).unwrap();
            host.protect(range, Prot::READ_WRITE).unwrap();
            host.release(base, 2 * page).unwrap();
        }
    }

    #[test]
    fn reserve_reports_errno() {
        let host = LibcHost::new();
        let page = host.page_size();
        // More address space than any process has: the kernel refuses with ENOMEM.
        let error = host.reserve(usize::MAX & !(page - 1)).unwrap_err();
        assert_eq!(error.raw_os_error(), libc::ENOMEM);
    }
}
