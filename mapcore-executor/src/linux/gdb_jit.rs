//! The GDB JIT interface: how a debugger learns about JIT'd code.
//!
//! gdb (and lldb) look up two symbols by name in the executable: `__jit_debug_descriptor`, a
//! `jit_descriptor` holding a doubly linked list of `jit_code_entry`s (each an in-memory object
//! file with debug info), and `__jit_debug_register_code`, an empty function on which the
//! debugger puts a breakpoint. To add or remove an entry the process links or unlinks it, sets
//! `action_flag` and `relevant_entry`, and calls the function; the debugger, stopped there,
//! reads the descriptor. The layout is gdb's `jit.h`, version 1:
//!
//! | `jit_descriptor` | `jit_code_entry` |
//! |---|---|
//! | `u32 version` (1), `u32 action_flag` (0 none, 1 register, 2 unregister), `relevant_entry`, `first_entry` | `next_entry`, `prev_entry`, `const char *symfile_addr`, `u64 symfile_size` |
//!
//! The descriptor is the one piece of executor state in a static: the debugger finds it only by
//! its symbol name, so it cannot live in the session. A lock serializes changes to it (gdb
//! expects one change per call of the function). The entries themselves are owned by the
//! session's registry ([`DebugEntry`]), which unregisters each before the memory it describes
//! is freed.
//!
//! # Safety
//!
//! The descriptor and the entries are only written under [`LOCK`]; an entry is unlinked
//! before it is freed ([`DebugEntry::unregister`], also on drop), so the list never points to
//! freed memory. The debugger reads them while the process is stopped.
#![expect(
    unsafe_code,
    reason = "the descriptor the debugger reads is a mutable static with a C layout"
)]

use std::cell::UnsafeCell;
use std::ffi::c_char;
use std::ptr;
use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::Mutex;

use mapcore_sps::from_bytes;

use super::cabi::CWrapperFunctionBuffer;
use super::registry::Registry;

/// `JIT_NOACTION`.
const NO_ACTION: u32 = 0;
/// `JIT_REGISTER_FN`.
const REGISTER: u32 = 1;
/// `JIT_UNREGISTER_FN`.
const UNREGISTER: u32 = 2;

/// gdb's `struct jit_code_entry`.
#[repr(C)]
#[derive(Debug)]
struct JitCodeEntry {
    next_entry: *mut Self,
    prev_entry: *mut Self,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// gdb's `struct jit_descriptor`.
#[repr(C)]
#[derive(Debug)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut JitCodeEntry,
    first_entry: *mut JitCodeEntry,
}

/// The descriptor's storage: written only under [`LOCK`].
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct Descriptor(UnsafeCell<JitDescriptor>);

// SAFETY: every access goes through `LOCK` (module docs).
unsafe impl Sync for Descriptor {}

/// The descriptor the debugger reads, by this exact name; version 1 from the start, as the
/// debugger checks the version before the process runs.
#[no_mangle]
#[used]
pub(crate) static __jit_debug_descriptor: Descriptor = Descriptor(UnsafeCell::new(JitDescriptor {
    version: 1,
    action_flag: NO_ACTION,
    relevant_entry: ptr::null_mut(),
    first_entry: ptr::null_mut(),
}));

/// Serializes changes to [`__jit_debug_descriptor`] and the calls that announce them.
static LOCK: Mutex<()> = Mutex::new(());

/// The function the debugger breaks on, by this exact name. Never inlined, and the fence keeps
/// the compiler from treating it as free of effects and dropping its calls.
#[no_mangle]
#[inline(never)]
pub(crate) extern "C" fn __jit_debug_register_code() {
    compiler_fence(Ordering::SeqCst);
}

/// One registered object file: linked into the debugger's list while this value lives.
#[derive(Debug)]
pub(crate) struct DebugEntry {
    entry: Box<JitCodeEntry>,
    linked: bool,
}

impl DebugEntry {
    /// Links the object file at `start` of `size` bytes into the list; tells the debugger at
    /// once if `notify` (otherwise it sees the entry on the next notification).
    pub(crate) fn register(start: u64, size: u64, notify: bool) -> Self {
        let mut entry = Box::new(JitCodeEntry {
            next_entry: ptr::null_mut(),
            prev_entry: ptr::null_mut(),
            symfile_addr: ptr::with_exposed_provenance(usize::try_from(start).unwrap_or(0)),
            symfile_size: size,
        });
        let raw: *mut JitCodeEntry = &raw mut *entry;
        let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let descriptor = __jit_debug_descriptor.0.get();
        // SAFETY: under `LOCK`, the only writer; `raw` is a live, boxed entry and the list
        // holds only live entries (module docs).
        unsafe {
            let first = (*descriptor).first_entry;
            (*raw).next_entry = first;
            if !first.is_null() {
                (*first).prev_entry = raw;
            }
            (*descriptor).first_entry = raw;
            (*descriptor).relevant_entry = raw;
            (*descriptor).action_flag = REGISTER;
        }
        if notify {
            __jit_debug_register_code();
        }
        Self {
            entry,
            linked: true,
        }
    }

    /// Unlinks the entry and tells the debugger; does nothing the second time.
    pub(crate) fn unregister(&mut self) {
        if !self.linked {
            return;
        }
        self.linked = false;
        let raw: *mut JitCodeEntry = &raw mut *self.entry;
        let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let descriptor = __jit_debug_descriptor.0.get();
        // SAFETY: under `LOCK`; `raw` is linked (`linked`), so its neighbours are live
        // entries of the list.
        unsafe {
            let (prev, next) = ((*raw).prev_entry, (*raw).next_entry);
            if prev.is_null() {
                (*descriptor).first_entry = next;
            } else {
                (*prev).next_entry = next;
            }
            if !next.is_null() {
                (*next).prev_entry = prev;
            }
            (*descriptor).relevant_entry = raw;
            (*descriptor).action_flag = UNREGISTER;
        }
        // The debugger reads the entry while stopped in this call; it is freed only after.
        __jit_debug_register_code();
    }
}

impl Drop for DebugEntry {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// `llvm_orc_registerJITLoaderGDBAllocAction`: `(ExecutorAddrRange object, bool notify)` →
/// `Error`. Registers the in-memory object file (LLVM sends a copy of the linked object, with
/// its sections' load addresses filled in) and keeps it in the registry, which unregisters it
/// before the object's memory or the code it describes is freed. The process itself never
/// reads the object; the debugger does.
///
/// # Errors
///
/// The arguments do not decode, the range is empty, or it is memory the current initialize
/// frees before it returns.
pub(crate) fn register(registry: &mut Registry, args: &[u8]) -> Result<(), String> {
    let ((start, end), notify) = from_bytes::<((u64, u64), bool)>(args)
        .map_err(|e| format!("bad debug-object arguments: {e}"))?;
    if start == 0 || end <= start {
        return Err(format!("bad debug-object range {start:#x}..{end:#x}"));
    }
    registry.check_lasting((start, end))?;
    let entry = DebugEntry::register(start, end - start, notify);
    registry.add_debug(entry, (start, end));
    Ok(())
}

/// `llvm_orc_registerJITLoaderGDBAllocAction` with the C wrapper ABI, for JIT'd callers:
/// refused with an out-of-band error (the receiver frees it), as it has no session to record
/// in.
pub(crate) extern "C" fn register_wrapper(
    _data: *const c_char,
    _size: usize,
) -> CWrapperFunctionBuffer {
    CWrapperFunctionBuffer::out_of_band_error(
        "mapcore-executor: llvm_orc_registerJITLoaderGDBAllocAction runs only as an alloc \
         action of the executor's memory manager",
    )
}

/// The entries in the list now, first first (for tests: what a debugger would see).
#[cfg(test)]
pub(crate) fn listed() -> Vec<(u64, u64)> {
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut listed = Vec::new();
    // SAFETY: under `LOCK`; the list holds only live entries.
    unsafe {
        let mut at = (*__jit_debug_descriptor.0.get()).first_entry;
        while !at.is_null() {
            listed.push(((*at).symfile_addr.addr() as u64, (*at).symfile_size));
            at = (*at).next_entry;
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_link_and_unlink_in_any_order() {
        let mut a = DebugEntry::register(0x1000, 16, true);
        let b = DebugEntry::register(0x2000, 32, false);
        let c = DebugEntry::register(0x3000, 48, true);
        // Newest first (other tests may add entries meanwhile).
        let at = |entry| listed().iter().position(|&e| e == entry).unwrap();
        assert!(at((0x3000, 48)) < at((0x2000, 32)));
        assert!(at((0x2000, 32)) < at((0x1000, 16)));
        drop(b);
        assert!(!listed().contains(&(0x2000, 32)));
        a.unregister();
        a.unregister();
        assert!(!listed().contains(&(0x1000, 16)));
        assert!(listed().contains(&(0x3000, 48)));
        drop(c);
        drop(a);
        let version = {
            let _guard = LOCK.lock().unwrap();
            // SAFETY: a read under the lock, as everywhere.
            unsafe { (*__jit_debug_descriptor.0.get()).version }
        };
        assert_eq!(version, 1);
    }
}
