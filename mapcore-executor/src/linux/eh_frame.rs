//! EH-frame registration, run as finalize and dealloc actions:
//! `llvm_orc_registerEHFrameAllocAction` / `llvm_orc_deregisterEHFrameAllocAction`, each taking
//! an SPS `ExecutorAddrRange` (start, end) of a JIT'd `.eh_frame` section and returning an SPS
//! `Error`. Registration is libgcc's `__register_frame(start)`, which C++ exceptions thrown
//! through JIT'd code need.
//!
//! libgcc trusts its input: `__register_frame` on garbage makes a later unwind crash, and
//! `__deregister_frame` of a section it does not know aborts the process. So the range must be
//! readable and hold at least one and only well-formed CIE/FDE records up to a zero terminator
//! ([`eh_frame_check`]), and the session remembers the sections it registered
//! ([`EhFrames`]): deregistering any other is an error, not an abort.
//!
//! The actions run with the session's [`EhFrames`]: as alloc actions inside the map, or through
//! CallWrapper. Their advertised addresses are C wrapper functions, for JIT'd code that calls
//! them directly; those have no session to record in, so they refuse with an out-of-band error.
//!
//! # Safety
//!
//! `__register_frame` is called only on a validated, readable section (see above) that stays
//! registered until its dealloc action or the session's shutdown deregisters it, before the
//! memory is unmapped (the map runs dealloc actions first). `__deregister_frame` is called only
//! on a section registered with the same [`EhFrames`], and a process has one session.
#![expect(
    unsafe_code,
    reason = "libgcc's __register_frame and the C wrapper ABI"
)]

use std::ffi::{c_char, c_void};

use mapcore_sps::from_bytes;

use super::cabi::CWrapperFunctionBuffer;
use super::eh_frame_check;
use super::mem_access;

extern "C" {
    /// libgcc: registers the `.eh_frame` section starting at `begin`.
    fn __register_frame(begin: *const c_void);
    /// libgcc: deregisters a section registered with `__register_frame`; aborts if unknown.
    fn __deregister_frame(begin: *const c_void);
}

/// Largest section accepted.
const MAX_SECTION: u64 = 1 << 30;

/// The sections one session registered, and how many registrations and deregistrations
/// succeeded.
#[derive(Debug, Default)]
pub(crate) struct EhFrames {
    /// Start addresses of the sections registered now.
    registered: Vec<u64>,
    /// Successful registrations.
    pub(crate) registrations: u64,
    /// Successful deregistrations.
    pub(crate) deregistrations: u64,
}

/// Decodes an `ExecutorAddrRange`.
fn range(args: &[u8]) -> Result<(u64, u64), String> {
    from_bytes::<(u64, u64)>(args).map_err(|e| format!("bad EH-frame range argument: {e}"))
}

impl EhFrames {
    /// How many sections are registered now.
    pub(crate) fn registered_count(&self) -> usize {
        self.registered.len()
    }
}

/// The registration action: validates the section and registers it.
///
/// # Errors
///
/// The arguments do not decode, the section is unreadable or malformed, or it is already
/// registered.
pub(crate) fn register(frames: &mut EhFrames, args: &[u8]) -> Result<(), String> {
    let (start, end) = range(args)?;
    validate(start, end)?;
    if frames.registered.contains(&start) {
        return Err(format!("EH frame at {start:#x} is already registered"));
    }
    let begin = std::ptr::with_exposed_provenance::<c_void>(usize::try_from(start).unwrap_or(0));
    // SAFETY: `begin` starts a readable section of well-formed records ending in a zero
    // terminator (validated above); it stays registered until deregistered here, which the
    // map does before it unmaps the memory.
    unsafe { __register_frame(begin) };
    frames.registered.push(start);
    frames.registrations += 1;
    Ok(())
}

/// The deregistration action.
///
/// # Errors
///
/// The arguments do not decode, or the section was not registered here.
pub(crate) fn deregister(frames: &mut EhFrames, args: &[u8]) -> Result<(), String> {
    let (start, _end) = range(args)?;
    let Some(index) = frames.registered.iter().position(|&s| s == start) else {
        return Err(format!("no EH frame registered at {start:#x}"));
    };
    let begin = std::ptr::with_exposed_provenance::<c_void>(usize::try_from(start).unwrap_or(0));
    // SAFETY: `begin` was registered with `__register_frame` by `register` and not since
    // deregistered, so libgcc knows it.
    unsafe { __deregister_frame(begin) };
    frames.registered.swap_remove(index);
    frames.deregistrations += 1;
    Ok(())
}

/// Checks that `[start, end)` is readable and holds a well-formed section
/// ([`eh_frame_check`]), so that libgcc's walks stay inside it.
fn validate(start: u64, end: u64) -> Result<(), String> {
    let len = end
        .checked_sub(start)
        .filter(|&len| len > 0 && len <= MAX_SECTION)
        .ok_or_else(|| format!("bad EH-frame range {start:#x}..{end:#x}"))?;
    let len = usize::try_from(len).map_err(|_| "EH-frame range too large")?;
    let bytes = mem_access::read(start, len)
        .map_err(|e| format!("EH frame at {start:#x}..{end:#x} is not readable: {e}"))?;
    let terminated_after = || mem_access::read(end, 4).is_ok_and(|word| word == [0; 4]);
    eh_frame_check::check(&bytes, terminated_after)
        .map_err(|e| format!("EH frame at {start:#x}..{end:#x} {e}"))
}

/// `llvm_orc_registerEHFrameAllocAction` with the C wrapper ABI, for JIT'd callers: refused
/// with an out-of-band error (the receiver frees it), as it has no session to record in.
pub(crate) extern "C" fn register_wrapper(
    _data: *const c_char,
    _size: usize,
) -> CWrapperFunctionBuffer {
    CWrapperFunctionBuffer::out_of_band_error(
        "mapcore-executor: llvm_orc_registerEHFrameAllocAction runs only as an alloc action \
         of the executor's memory manager",
    )
}

/// `llvm_orc_deregisterEHFrameAllocAction` with the C wrapper ABI, for JIT'd callers: refused
/// with an out-of-band error (the receiver frees it), as it has no session to record in.
pub(crate) extern "C" fn deregister_wrapper(
    _data: *const c_char,
    _size: usize,
) -> CWrapperFunctionBuffer {
    CWrapperFunctionBuffer::out_of_band_error(
        "mapcore-executor: llvm_orc_deregisterEHFrameAllocAction runs only as an alloc action \
         of the executor's memory manager",
    )
}
