//! The machine code every contender runs: a function that returns [`ANSWER`], padded with
//! trapping instructions to the size a workload asks for, plus the unsafe call into it.
//!
//! # Safety
//!
//! [`call`] jumps to JIT memory; its caller promises the address holds this blob, mapped
//! executable with a coherent instruction cache. On aarch64 [`make_coherent`] runs the cache
//! maintenance the hand-written floor needs (`__clear_cache` plus `membarrier`), which changes
//! no memory contents.
#![expect(
    unsafe_code,
    reason = "calls JIT code; the aarch64 floor's cache maintenance"
)]

/// What the blob returns.
pub(crate) const ANSWER: u32 = 42;

/// The function itself: `mov eax, 42; ret`.
#[cfg(target_arch = "x86_64")]
const CODE: &[u8] = &[0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3];
/// Padding: `int3`.
#[cfg(target_arch = "x86_64")]
const PAD: &[u8] = &[0xcc];

/// The function itself: `mov w0, #42; ret`.
#[cfg(target_arch = "aarch64")]
const CODE: &[u8] = &[0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6];
/// Padding: `brk #0`.
#[cfg(target_arch = "aarch64")]
const PAD: &[u8] = &[0x00, 0x00, 0x20, 0xd4];

/// The byte freed code is overwritten with by the dual floor: `int3`.
#[cfg(target_arch = "x86_64")]
pub(crate) const TRAP: u8 = 0xcc;
/// The byte freed code is overwritten with by the dual floor: zero words are `udf #0`.
#[cfg(target_arch = "aarch64")]
pub(crate) const TRAP: u8 = 0;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("mapcore-bench has machine code for x86_64 and aarch64 only");

/// The blob padded to `size` bytes (at least the function itself, rounded up to whole
/// instructions).
pub(crate) fn padded(size: usize) -> Vec<u8> {
    let mut blob = CODE.to_vec();
    while blob.len() < size {
        blob.extend_from_slice(PAD);
    }
    blob
}

/// Calls the blob at `addr` and checks its answer.
///
/// # Safety
///
/// 1. `addr` is the start of a copy of [`padded`]'s bytes, mapped readable and executable.
/// 2. The instruction cache is coherent with those bytes for the calling thread.
///
/// # Panics
///
/// If the blob returns anything but [`ANSWER`] (stale or wrong code).
#[inline]
pub(crate) unsafe fn call(addr: usize) {
    // SAFETY: (1) `addr` holds the function `CODE`, which follows the C ABI (no arguments,
    // result in eax / w0) and is executable; (2) the caller promises it is coherent. The
    // pointer takes the provenance the mapping's creator exposed; executing code does not
    // need provenance for reads or writes.
    let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(addr) };
    let got = std::hint::black_box(f)();
    assert_eq!(
        got, ANSWER,
        "JIT code at {addr:#x} returned the wrong value"
    );
}

/// Makes freshly written code at `[addr, addr + len)` visible to instruction fetch, as the
/// hand-written floor must: nothing on x86_64 (coherent caches), `__clear_cache` followed by
/// `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` on aarch64 Linux (what mapcore-std does).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn make_coherent(addr: usize, len: usize) {
    let _ = (addr, len);
}

/// See the x86_64 version.
#[cfg(target_arch = "aarch64")]
pub(crate) fn make_coherent(addr: usize, len: usize) {
    use std::sync::Once;

    const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_int = 1 << 5;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_int = 1 << 6;
    static REGISTER: Once = Once::new();

    extern "C" {
        fn __clear_cache(start: *mut libc::c_char, end: *mut libc::c_char);
    }
    let start: *mut libc::c_char = std::ptr::with_exposed_provenance_mut(addr);
    // SAFETY: `[addr, addr + len)` was just written by the caller, so it is mapped; cache
    // maintenance changes no memory contents.
    unsafe { __clear_cache(start, start.wrapping_add(len)) };
    REGISTER.call_once(|| {
        // SAFETY: membarrier takes plain integers and touches no user memory.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
                0,
                0,
            )
        };
    });
    // SAFETY: as above.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
            0,
            0,
        )
    };
}

/// A no-op finalize or dealloc action, called through a pointer by the contenders that have
/// no actions of their own (W1b).
pub(crate) fn noop_action(args: &[u8]) -> Result<(), mapcore_std::ActionError> {
    std::hint::black_box(args);
    Ok(())
}
