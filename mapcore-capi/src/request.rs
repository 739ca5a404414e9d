//! Initialize requests in C: segments and finalize/dealloc action pairs, turned into a
//! mapcore `InitRequest` without touching the heap.
//!
//! A C action is a function `int32_t f(void *ctx, const uint8_t *args, size_t len)`, a `ctx`
//! pointer and up to `MAPCORE_MAX_ACTION_ARGS` argument bytes. It becomes a mapcore `Action`
//! bound to one Rust function, the trampoline, through the action's context word:
//!
//! | mapcore `Action` part | holds |
//! |---|---|
//! | context word | the address of the C function |
//! | argument bytes 0..8 | `ctx`, as a native-endian `u64` |
//! | argument bytes 8.. | the C argument bytes, copied |
//!
//! so a C action carries 8 bytes fewer than a Rust one (`MAPCORE_MAX_ACTION_ARGS` is
//! `mapcore::MAX_ACTION_ARGS - 8`).
//!
//! # Safety
//!
//! The trampoline turns a context word back into a C function pointer and calls it. Only
//! [`c_action`] binds the trampoline (it is private to this module), and it always stores a
//! valid `mapcore_action_fn` there and the `ctx` in the first argument bytes, so the
//! trampoline calls exactly what the C caller gave, with what it gave. Segments' content
//! pointers are read under the promises of `mapcore_map_initialize`.
#![expect(
    unsafe_code,
    reason = "reading C arrays, and calling C action functions through a context word"
)]

use core::ffi::c_void;
use core::ptr;

use heapless::Vec;
use libc::{size_t, uintptr_t};
use mapcore::{
    Action, ActionError, ActionPair, AllocGroup, Error, Lifetime, Limit, Prot, Segment,
    MAX_ACTION_ARGS, MAX_ACTION_PAIRS, MAX_SEGMENTS,
};

use crate::status::{Failure, Invalid};

/// Segment group bit: readable.
pub const MAPCORE_GROUP_READ: u8 = 1;
/// Segment group bit: writable.
pub const MAPCORE_GROUP_WRITE: u8 = 2;
/// Segment group bit: executable.
pub const MAPCORE_GROUP_EXEC: u8 = 4;
/// Segment group bit: Finalize lifetime. The segment's memory lives only while initialize
/// runs the finalize actions and is freed before initialize returns; without this bit the
/// segment lives until the region is deinitialized (Standard lifetime).
pub const MAPCORE_GROUP_FINALIZE: u8 = 8;

/// Most segments in one initialize request.
pub const MAPCORE_MAX_SEGMENTS: usize = 16;
/// Most action pairs in one initialize request, and so most dealloc actions per region.
pub const MAPCORE_MAX_ACTION_PAIRS: usize = 16;
/// Most argument bytes of one C action: mapcore keeps 48 bytes inline per action, 8 of which
/// hold the action's `ctx`.
pub const MAPCORE_MAX_ACTION_ARGS: usize = 40;

/// The bytes of the context pointer at the start of a bound action's arguments.
const CTX_BYTES: usize = 8;

const _: () = {
    assert!(MAPCORE_MAX_SEGMENTS == MAX_SEGMENTS);
    assert!(MAPCORE_MAX_ACTION_PAIRS == MAX_ACTION_PAIRS);
    assert!(MAPCORE_MAX_ACTION_ARGS + CTX_BYTES == MAX_ACTION_ARGS);
    assert!(size_of::<usize>() <= CTX_BYTES);
};

/// An action function: receives the action's `ctx` and a copy of its argument bytes (`args`
/// is never `NULL`, even when `len` is 0). Returns 0 on success, anything else on failure;
/// the value is reported as `mapcore_error.code` of `MAPCORE_ERR_FINALIZE_FAILED`.
///
/// It runs on the thread that called the map function that runs it (initialize for finalize
/// actions; deinitialize, release, shutdown or free for dealloc actions). It may call back
/// into the map. It must not unwind (throw a C++ exception) or `longjmp` out.
pub type mapcore_action_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, args: *const u8, len: size_t) -> i32>;

/// One action: a function, its context and its argument bytes. `func` `NULL` means no action.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mapcore_action {
    /// The function, or `NULL` for no action.
    pub func: mapcore_action_fn,
    /// Passed to `func` as is. mapcore never dereferences it; it must stay valid for as long
    /// as the action may run (for a dealloc action: until its region is deinitialized or its
    /// slab released, at the latest `mapcore_map_free`).
    pub ctx: *mut c_void,
    /// The argument bytes, copied at initialize; may be `NULL` when `args_len` is 0.
    pub args: *const u8,
    /// How many argument bytes; at most `MAPCORE_MAX_ACTION_ARGS`.
    pub args_len: size_t,
}

/// A finalize action and the dealloc action that undoes it; either may be absent.
///
/// Finalize actions run in order during initialize, after all content is written and
/// protected. A pair's dealloc action is kept once its finalize action succeeded (or had
/// none); if a finalize action fails, the kept dealloc actions run newest first and the
/// failing pair's own dealloc never runs. Kept dealloc actions run exactly once, newest first,
/// when the region is deinitialized (or its slab released, or the map shut down or freed).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mapcore_action_pair {
    /// Runs during initialize.
    pub finalize: mapcore_action,
    /// Runs when the region goes away, or during a rollback.
    pub dealloc: mapcore_action,
}

/// One segment of an initialize request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mapcore_segment {
    /// Protection and lifetime: `MAPCORE_GROUP_READ | _WRITE | _EXEC | _FINALIZE`, the bits of
    /// LLVM's `AllocGroup` on the wire. Other bits are refused.
    pub group: u8,
    /// Page-aligned start address inside a reserved slab.
    pub addr: uintptr_t,
    /// Size in bytes; the protection covers whole pages.
    pub size: size_t,
    /// The bytes copied to the start of the segment; the rest reads as zero. May be `NULL`
    /// when `content_len` is 0. Must not overlap the slab's pages.
    pub content: *const u8,
    /// How many content bytes; at most `size`.
    pub content_len: size_t,
}

/// A C array as a slice; `NULL` is accepted for an empty array.
///
/// # Safety
///
/// 1. If `len` is non-zero, `ptr` is `NULL` or points to `len` initialized, properly
///    aligned `T`s.
/// 2. They are not written during `'a`.
pub(crate) unsafe fn c_slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &'static str,
) -> Result<&'a [T], Invalid> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Invalid::Null(name));
    }
    // SAFETY: `ptr` is non-null and (1) points to `len` initialized, aligned `T`s that (2) no
    // one writes while the slice lives.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Converts the C segments.
///
/// # Safety
///
/// Each segment's `content` is `NULL` or points to `content_len` readable bytes that are not
/// written during `'a`.
pub(crate) unsafe fn segments<'a>(
    c: &[mapcore_segment],
) -> Result<Vec<Segment<'a>, MAX_SEGMENTS>, Failure> {
    if c.len() > MAX_SEGMENTS {
        return Err(Error::CapacityExceeded(Limit::Segments).into());
    }
    let mut out = Vec::new();
    for (index, seg) in c.iter().enumerate() {
        let group = group(seg.group).ok_or(Invalid::GroupBits {
            segment: index,
            bits: seg.group,
        })?;
        let content = if seg.content_len == 0 {
            &[][..]
        } else if seg.content.is_null() {
            return Err(Invalid::NullContent { segment: index }.into());
        } else {
            // SAFETY: non-null, and the caller promises `content_len` readable bytes that
            // stay unchanged during `'a`; `u8` needs no alignment.
            unsafe { core::slice::from_raw_parts(seg.content, seg.content_len) }
        };
        let segment =
            Segment::with_lifetime(group.prot, group.lifetime, seg.addr, seg.size, content);
        let pushed = out.push(segment);
        debug_assert!(pushed.is_ok(), "checked against MAX_SEGMENTS above");
    }
    Ok(out)
}

/// The allocation group of a group byte, or `None` if it has unknown bits.
pub(crate) fn group(bits: u8) -> Option<AllocGroup> {
    if bits
        & !(MAPCORE_GROUP_READ | MAPCORE_GROUP_WRITE | MAPCORE_GROUP_EXEC | MAPCORE_GROUP_FINALIZE)
        != 0
    {
        return None;
    }
    let prot = Prot::from_bits(bits & 7)?;
    let lifetime = if bits & MAPCORE_GROUP_FINALIZE != 0 {
        Lifetime::Finalize
    } else {
        Lifetime::Standard
    };
    Some(AllocGroup::with_lifetime(prot, lifetime))
}

/// Converts the C action pairs, copying their argument bytes.
///
/// # Safety
///
/// Each action's `args` is `NULL` or points to `args_len` readable bytes.
pub(crate) unsafe fn pairs(
    c: &[mapcore_action_pair],
) -> Result<Vec<ActionPair, MAX_ACTION_PAIRS>, Failure> {
    if c.len() > MAX_ACTION_PAIRS {
        return Err(Error::CapacityExceeded(Limit::ActionPairs).into());
    }
    let mut out = Vec::new();
    for (index, pair) in c.iter().enumerate() {
        // SAFETY: the caller's promise on `args`, forwarded.
        let finalize = unsafe { c_action(&pair.finalize, index) }?;
        // SAFETY: as above.
        let dealloc = unsafe { c_action(&pair.dealloc, index) }?;
        let pushed = out.push(ActionPair { finalize, dealloc });
        debug_assert!(pushed.is_ok(), "checked against MAX_ACTION_PAIRS above");
    }
    Ok(out)
}

/// The mapcore action for a C action of pair `pair`, or `None` if its `func` is `NULL`.
///
/// # Safety
///
/// `action.args` is `NULL` or points to `action.args_len` readable bytes.
unsafe fn c_action(action: &mapcore_action, pair: usize) -> Result<Option<Action>, Invalid> {
    let Some(func) = action.func else {
        return Ok(None);
    };
    if action.args_len > MAPCORE_MAX_ACTION_ARGS {
        return Err(Invalid::ArgsTooLong {
            pair,
            len: action.args_len,
        });
    }
    let args = if action.args_len == 0 {
        &[][..]
    } else if action.args.is_null() {
        return Err(Invalid::NullArgs { pair });
    } else {
        // SAFETY: non-null, and the caller promises `args_len` readable bytes; they are
        // copied below, before this function returns.
        unsafe { core::slice::from_raw_parts(action.args, action.args_len) }
    };
    let mut bound = [0u8; MAX_ACTION_ARGS];
    bound[..CTX_BYTES].copy_from_slice(&(action.ctx.expose_provenance() as u64).to_ne_bytes());
    bound[CTX_BYTES..CTX_BYTES + args.len()].copy_from_slice(args);
    let word = (func as *const ()).expose_provenance();
    let bound = Action::with_context(trampoline, word, &bound[..CTX_BYTES + args.len()]);
    // The length was checked against MAPCORE_MAX_ACTION_ARGS, which leaves room for the ctx.
    bound.map(Some).map_err(|_| Invalid::ArgsTooLong {
        pair,
        len: action.args_len,
    })
}

/// The function of every C action: calls the C function named by `word` with the `ctx` and
/// the argument bytes stored by [`c_action`].
fn trampoline(word: usize, args: &[u8]) -> Result<(), ActionError> {
    let Some((ctx, args)) = args.split_first_chunk::<CTX_BYTES>() else {
        debug_assert!(false, "c_action always stores the ctx");
        return Err(ActionError::new(i32::MIN));
    };
    // The ctx came from a `usize` (see `c_action`), so it fits.
    let ctx = u64::from_ne_bytes(*ctx) as usize;
    let func: *const () = ptr::with_exposed_provenance(word);
    // SAFETY: only `c_action` binds this function, and the word it binds is the address of a
    // non-null `mapcore_action_fn` whose provenance it exposed: the same function pointer.
    let func = unsafe {
        core::mem::transmute::<*const (), unsafe extern "C" fn(*mut c_void, *const u8, size_t) -> i32>(
            func,
        )
    };
    // SAFETY: the C caller of initialize promised that `func` may be called with its `ctx`
    // and `args` until the action has run; `args` points to `args.len()` readable bytes.
    let code = unsafe {
        func(
            ptr::with_exposed_provenance_mut(ctx),
            args.as_ptr(),
            args.len(),
        )
    };
    if code == 0 {
        Ok(())
    } else {
        Err(ActionError::new(code))
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn group_bits_map_to_protection_and_lifetime() {
        assert_eq!(group(0), Some(AllocGroup::new(Prot::NONE)));
        assert_eq!(group(5), Some(AllocGroup::new(Prot::READ_EXEC)));
        assert_eq!(
            group(8 | 1),
            Some(AllocGroup::with_lifetime(Prot::READ, Lifetime::Finalize))
        );
        assert_eq!(group(16), None);
        assert_eq!(group(0x81), None);
    }

    unsafe extern "C" fn record(ctx: *mut c_void, args: *const u8, len: size_t) -> i32 {
        // SAFETY: the tests pass an `AtomicUsize` as ctx and `len` readable bytes.
        let (counter, args) = unsafe {
            (
                &*ctx.cast::<AtomicUsize>(),
                core::slice::from_raw_parts(args, len),
            )
        };
        counter.fetch_add(
            args.iter().map(|&b| usize::from(b)).sum::<usize>() + 1,
            Ordering::SeqCst,
        );
        if args.first() == Some(&0xff) {
            7
        } else {
            0
        }
    }

    fn action(counter: &AtomicUsize, args: &[u8]) -> mapcore_action {
        mapcore_action {
            func: Some(record),
            ctx: ptr::from_ref(counter).cast_mut().cast(),
            args: args.as_ptr(),
            args_len: args.len(),
        }
    }

    #[test]
    fn c_actions_reach_their_function_with_ctx_and_args() {
        let counter = AtomicUsize::new(0);
        let args = [1u8, 2, 3];
        // SAFETY: `args` is readable for its length.
        let bound = unsafe { c_action(&action(&counter, &args), 0) }
            .unwrap()
            .unwrap();
        assert_eq!(bound.args().len(), CTX_BYTES + 3);
        assert_eq!(bound.run(), Ok(()));
        assert_eq!(counter.load(Ordering::SeqCst), 7);
        // SAFETY: as above.
        let failing = unsafe { c_action(&action(&counter, &[0xff]), 0) }
            .unwrap()
            .unwrap();
        assert_eq!(failing.run(), Err(ActionError::new(7)));
    }

    #[test]
    fn empty_and_longest_args_are_accepted_longer_are_refused() {
        let counter = AtomicUsize::new(0);
        let none = mapcore_action {
            args: ptr::null(),
            args_len: 0,
            ..action(&counter, &[])
        };
        // SAFETY: no bytes are read.
        let bound = unsafe { c_action(&none, 0) }.unwrap().unwrap();
        assert_eq!(bound.run(), Ok(()));
        assert_eq!(counter.load(Ordering::SeqCst), 1);

        let longest = [0u8; MAPCORE_MAX_ACTION_ARGS + 1];
        // SAFETY: `longest` is readable for its length.
        let ok = unsafe { c_action(&action(&counter, &longest[..MAPCORE_MAX_ACTION_ARGS]), 0) };
        assert!(ok.unwrap().is_some());
        // SAFETY: as above.
        let too_long = unsafe { c_action(&action(&counter, &longest), 3) };
        assert_eq!(
            too_long.unwrap_err(),
            Invalid::ArgsTooLong {
                pair: 3,
                len: MAPCORE_MAX_ACTION_ARGS + 1
            }
        );
        let null_args = mapcore_action {
            args: ptr::null(),
            args_len: 2,
            ..action(&counter, &[])
        };
        // SAFETY: the null pointer is refused before any read.
        let refused = unsafe { c_action(&null_args, 1) };
        assert_eq!(refused.unwrap_err(), Invalid::NullArgs { pair: 1 });
        let absent = mapcore_action {
            func: None,
            ..action(&counter, &longest)
        };
        // SAFETY: an absent action reads nothing, whatever its length.
        assert!(unsafe { c_action(&absent, 0) }.unwrap().is_none());
    }

    #[test]
    fn segments_are_checked_and_converted() {
        let bytes = [0xc3u8];
        let seg = |group, content: *const u8, content_len| mapcore_segment {
            group,
            addr: 0x1000,
            size: 0x1000,
            content,
            content_len,
        };
        // SAFETY: every non-null content points to `bytes`.
        unsafe {
            let ok = segments(&[seg(5, bytes.as_ptr(), 1), seg(9, ptr::null(), 0)]).unwrap();
            assert_eq!(ok[0].group, AllocGroup::new(Prot::READ_EXEC));
            assert_eq!(ok[0].content.len(), 1);
            assert_eq!(ok[1].group.lifetime, Lifetime::Finalize);
            let bad_group = segments(&[seg(5, bytes.as_ptr(), 1), seg(0x40, ptr::null(), 0)]);
            assert!(matches!(
                bad_group,
                Err(Failure::Argument(Invalid::GroupBits {
                    segment: 1,
                    bits: 0x40
                }))
            ));
            let null_content = segments(&[seg(1, ptr::null(), 4)]);
            assert!(matches!(
                null_content,
                Err(Failure::Argument(Invalid::NullContent { segment: 0 }))
            ));
            let many = [seg(1, ptr::null(), 0); MAX_SEGMENTS + 1];
            assert!(matches!(
                segments(&many),
                Err(Failure::Map(Error::CapacityExceeded(Limit::Segments)))
            ));
        }
    }
}
