//! Instruction-cache coherence for freshly written code, selected by target.
//!
//! Publishing code is: write it, clean the data cache and invalidate the instruction cache for
//! its addresses, make it executable, and make sure no thread runs instructions it fetched
//! before. [`flush`] does the cache and pipeline part:
//!
//! - **aarch64 Linux**: the same cache maintenance as `__clear_cache` (`dc cvau` per data-cache
//!   line, `dsb ish`, `ic ivau` per instruction-cache line, `dsb ish`, `isb`, skipping what
//!   `CTR_EL0.IDC/DIC` say is unnecessary), then
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)` so that every other thread of the
//!   process also executes a context-synchronizing event. The process registers for that
//!   command once, on first use; kernels without it (before 4.16) fall back to
//!   `MEMBARRIER_CMD_GLOBAL`, which also makes every CPU pass through the kernel.
//! - **x86 and x86_64**: nothing, deliberately. Their instruction caches snoop data writes,
//!   and the `mprotect` that makes the pages executable serializes the calling thread.
//! - **Miri**: nothing; Miri cannot run JIT code anyway.
//! - **anything else**: fails with `ENOSYS` rather than pretend.
//!
//! # Safety
//!
//! The aarch64 branch uses inline assembly for cache maintenance by virtual address and calls
//! `syscall(SYS_membarrier, ..)`. Cache maintenance changes no memory contents; on an address
//! that is not mapped readable it faults (`SIGSEGV`) instead of corrupting anything, and the
//! map only ever passes pages it has just written.
#![cfg_attr(
    all(
        target_arch = "aarch64",
        any(target_os = "linux", target_os = "android"),
        not(miri)
    ),
    expect(
        unsafe_code,
        reason = "cache maintenance instructions and the membarrier syscall"
    )
)]

use mapcore::PageRange;

use crate::error::OsError;

pub(crate) use imp::flush;

#[cfg(all(
    target_arch = "aarch64",
    any(target_os = "linux", target_os = "android"),
    not(miri)
))]
mod imp {
    use core::arch::asm;
    use core::ffi::{c_int, c_long};
    use std::sync::OnceLock;

    use super::{OsError, PageRange};
    use crate::sys::cvt;

    // From <linux/membarrier.h>; the libc crate does not export them at the crate root.
    const MEMBARRIER_CMD_QUERY: c_int = 0;
    const MEMBARRIER_CMD_GLOBAL: c_int = 1 << 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: c_int = 1 << 5;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: c_int = 1 << 6;

    /// `CTR_EL0.IDC`: data-cache clean to the point of unification is not required.
    const CTR_IDC: u64 = 1 << 28;
    /// `CTR_EL0.DIC`: instruction-cache invalidation to the point of unification is not
    /// required.
    const CTR_DIC: u64 = 1 << 29;

    /// `membarrier(cmd, 0, 0)`.
    fn membarrier(cmd: c_int) -> Result<c_long, OsError> {
        // SAFETY: membarrier takes plain integers, touches no user memory and only affects
        // scheduling; every command used here is valid for the syscall (unknown ones fail
        // with EINVAL).
        cvt(unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as c_int, 0 as c_int) })
    }

    /// The membarrier command that serializes every core running this process, chosen and
    /// registered once per process.
    fn barrier_command() -> Result<c_int, OsError> {
        static COMMAND: OnceLock<Result<c_int, OsError>> = OnceLock::new();
        *COMMAND.get_or_init(|| {
            match membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) {
                Ok(_) => Ok(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE),
                // Before Linux 4.16 the SYNC_CORE commands do not exist.
                Err(error) if error.raw_os_error() == libc::EINVAL => {
                    let supported = membarrier(MEMBARRIER_CMD_QUERY)?;
                    if supported & c_long::from(MEMBARRIER_CMD_GLOBAL) != 0 {
                        Ok(MEMBARRIER_CMD_GLOBAL)
                    } else {
                        Err(error)
                    }
                }
                Err(error) => Err(error),
            }
        })
    }

    /// `CTR_EL0`, the cache type register (readable at EL0 on Linux).
    fn cache_type() -> u64 {
        let ctr: u64;
        // SAFETY: reading CTR_EL0 has no side effects; Linux lets user space read it (or
        // emulates the read).
        unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
        ctr
    }

    /// `__clear_cache(start, end)`: cleans the data cache and invalidates the instruction
    /// cache for `[start, end)` to the point of unification, then synchronizes this core.
    fn clear_cache(start: usize, end: usize) {
        let ctr = cache_type();
        // Line sizes are encoded as log2 of the number of 4-byte words.
        let dline = 4usize << ((ctr >> 16) & 0xf);
        let iline = 4usize << (ctr & 0xf);
        if ctr & CTR_IDC == 0 {
            let mut line = start & !(dline - 1);
            while line < end {
                // SAFETY: cleaning a data-cache line writes it back and changes no memory
                // contents; the line belongs to pages the map has just written (mapped,
                // read-write).
                unsafe { asm!("dc cvau, {}", in(reg) line, options(nostack, preserves_flags)) };
                line += dline;
            }
        }
        // SAFETY: a barrier instruction; no memory or register effects.
        unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        if ctr & CTR_DIC == 0 {
            let mut line = start & !(iline - 1);
            while line < end {
                // SAFETY: invalidating an instruction-cache line changes no memory contents;
                // the line belongs to mapped pages, as above.
                unsafe { asm!("ic ivau, {}", in(reg) line, options(nostack, preserves_flags)) };
                line += iline;
            }
            // SAFETY: a barrier instruction; no memory or register effects.
            unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
        }
        // SAFETY: an instruction barrier; it only refetches this core's instruction stream.
        unsafe { asm!("isb", options(nostack, preserves_flags)) };
    }

    /// Cache maintenance for `range`, then a process-wide core-serializing barrier.
    pub(crate) fn flush(range: PageRange) -> Result<(), OsError> {
        if range.is_empty() {
            return Ok(());
        }
        clear_cache(range.start(), range.end());
        membarrier(barrier_command()?)?;
        Ok(())
    }
}

#[cfg(any(miri, target_arch = "x86", target_arch = "x86_64"))]
mod imp {
    use super::{OsError, PageRange};

    /// Nothing to do: x86 instruction caches are coherent with data writes (and Miri runs no
    /// JIT code).
    pub(crate) fn flush(_range: PageRange) -> Result<(), OsError> {
        Ok(())
    }
}

#[cfg(not(any(
    miri,
    any(target_arch = "x86", target_arch = "x86_64"),
    all(
        target_arch = "aarch64",
        any(target_os = "linux", target_os = "android")
    ),
)))]
mod imp {
    use super::{OsError, PageRange};

    /// Unknown instruction-cache rules on this target: refuse rather than run stale code.
    pub(crate) fn flush(_range: PageRange) -> Result<(), OsError> {
        Err(OsError::from_raw_os_error(libc::ENOSYS))
    }
}
