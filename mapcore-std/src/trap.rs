//! The architecture's trap instruction, which freed code is overwritten with so that a stale
//! call into it stops at once instead of running whatever the bytes decode to.
#![expect(unsafe_code, reason = "fills raw memory")]

/// The trap pattern, repeated: x86's one-byte `int3` (0xcc); on Arm, all-zero words, which are
/// `udf #0` on AArch64 and a permanently undefined encoding there; elsewhere zeros.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub(crate) const TRAP_BYTE: u8 = 0xcc;
/// The trap pattern, repeated: x86's one-byte `int3` (0xcc); on Arm, all-zero words, which are
/// `udf #0` on AArch64 and a permanently undefined encoding there; elsewhere zeros.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
pub(crate) const TRAP_BYTE: u8 = 0;

/// Fills `len` bytes at `dst` with the trap pattern.
///
/// # Safety
///
/// `dst` is valid for writes of `len` bytes, and nobody else accesses them during the call.
pub(crate) unsafe fn fill(dst: *mut u8, len: usize) {
    // SAFETY: the caller promises `dst..dst + len` is writable and ours alone; `u8` needs no
    // alignment.
    unsafe { core::ptr::write_bytes(dst, TRAP_BYTE, len) };
}
