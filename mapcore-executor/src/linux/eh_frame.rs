//! EH-frame registration, run as finalize and dealloc actions:
//! `llvm_orc_registerEHFrameAllocAction` / `llvm_orc_deregisterEHFrameAllocAction`, each taking
//! an SPS `ExecutorAddrRange` (start, end) of a JIT'd `.eh_frame` section and returning an SPS
//! `Error`. Registration is libgcc's `__register_frame(start)`, which C++ exceptions thrown
//! through JIT'd code need.
//!
//! libgcc trusts its input: `__register_frame` on garbage makes a later unwind crash, and
//! `__deregister_frame` of a section it does not know aborts the process. So the range must be
//! readable and hold at least one and only well-formed CIE/FDE records up to a zero terminator
//! ([`eh_frame_check`]), and the session's [`Registry`] keeps the sections it registered:
//! deregistering any other is an error, not an abort, and a section is deregistered before its
//! memory is freed, even when no dealloc action asks for it.
//!
//! The actions run with the session's registry: as alloc actions inside the map, or through
//! CallWrapper. Their advertised addresses are C wrapper functions, for JIT'd code that calls
//! them directly; those have no session to record in, so they refuse with an out-of-band error.
//!
//! # Safety
//!
//! `__register_frame` is called only on a validated, readable section (see above), kept by an
//! [`EhFrameSection`] in the registry, which deregisters it before a deinitialize or release
//! frees its memory (it sweeps the freed extent first). `__deregister_frame` is called only
//! once per registered section, by that value.
#![expect(
    unsafe_code,
    reason = "libgcc's __register_frame and the C wrapper ABI"
)]

use std::ffi::{c_char, c_void};

use mapcore_sps::from_bytes;

use super::cabi::CWrapperFunctionBuffer;
use super::eh_frame_check;
use super::mem_access;
use super::registry::Registry;

extern "C" {
    /// libgcc: registers the `.eh_frame` section starting at `begin`.
    fn __register_frame(begin: *const c_void);
    /// libgcc: deregisters a section registered with `__register_frame`; aborts if unknown.
    fn __deregister_frame(begin: *const c_void);
}

/// Largest section accepted.
const MAX_SECTION: u64 = 1 << 30;

/// A section registered with libgcc, until [`deregister`](Self::deregister)ed or dropped.
#[derive(Debug)]
pub(crate) struct EhFrameSection {
    start: u64,
    registered: bool,
}

impl EhFrameSection {
    /// Validates `[start, end)` and registers it.
    fn register(start: u64, end: u64) -> Result<Self, String> {
        validate(start, end)?;
        // SAFETY: `begin` starts a readable section of well-formed records ending in a zero
        // terminator (validated above); the registry deregisters it before the memory is
        // freed (module docs).
        unsafe { __register_frame(begin(start)) };
        Ok(Self {
            start,
            registered: true,
        })
    }

    /// The section's start address.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Deregisters the section; does nothing the second time.
    pub(crate) fn deregister(&mut self) {
        if std::mem::take(&mut self.registered) {
            // SAFETY: registered by `register` and not since deregistered, so libgcc knows
            // it, and its memory is still mapped (module docs).
            unsafe { __deregister_frame(begin(self.start)) };
        }
    }
}

impl Drop for EhFrameSection {
    fn drop(&mut self) {
        self.deregister();
    }
}

fn begin(start: u64) -> *const c_void {
    std::ptr::with_exposed_provenance::<c_void>(usize::try_from(start).unwrap_or(0))
}

/// Decodes an `ExecutorAddrRange`.
fn range(args: &[u8]) -> Result<(u64, u64), String> {
    from_bytes::<(u64, u64)>(args).map_err(|e| format!("bad EH-frame range argument: {e}"))
}

/// The registration action: validates the section and registers it.
///
/// # Errors
///
/// The arguments do not decode, the section is unreadable or malformed, or it is already
/// registered.
pub(crate) fn register(registry: &mut Registry, args: &[u8]) -> Result<(), String> {
    let (start, end) = range(args)?;
    if registry.has_eh_frame(start) {
        return Err(format!("EH frame at {start:#x} is already registered"));
    }
    registry.check_lasting((start, end))?;
    let section = EhFrameSection::register(start, end)?;
    registry.add_eh_frame(section, (start, end));
    Ok(())
}

/// The deregistration action.
///
/// # Errors
///
/// The arguments do not decode, or the section was not registered here.
pub(crate) fn deregister(registry: &mut Registry, args: &[u8]) -> Result<(), String> {
    let (start, _end) = range(args)?;
    registry.remove_eh_frame(start)
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
