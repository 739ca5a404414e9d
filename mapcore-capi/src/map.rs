//! `mapcore_map`: the opaque map handle, its constructors, and reserve, initialize,
//! deinitialize, release and the batch forms as C functions.
//!
//! Every function that can fail returns a `mapcore_status` and takes a `mapcore_error *` last,
//! which may be `NULL` and is written only on failure. Every call runs under
//! [`catch_unwind`], so no panic crosses into C; a pointer that must not be `NULL` is checked
//! and refused with `MAPCORE_ERR_INVALID_ARGUMENT`.
//!
//! A handle holds one map behind the object-safe [`Map`] trait, implemented once for every
//! `JitMap<H, Growable>` whose host reports `OsError`s: a constructor for another host is one
//! more function that builds its `JitMap` and calls [`new_map`].
//!
//! # Safety
//!
//! The C functions read the arrays and write the out-parameters their callers pass, under
//! the promises written on each function; a `mapcore_map *` is a `Box` made by [`new_map`]
//! and freed only by `mapcore_map_free`.
#![expect(unsafe_code, reason = "the C functions take raw pointers")]

use core::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libc::{size_t, uintptr_t};
use mapcore::{Config, DiscardPolicy, Growable, Host, InitRequest, JitMap};
use mapcore_std::{DualMappedHost, LibcHost, OsError, StdError};

use crate::host::{mapcore_host, TableHost};
use crate::request::{self, c_slice, mapcore_action_pair, mapcore_segment};
use crate::status::{mapcore_error, mapcore_status, Failure, Invalid};

/// How a map behaves. Start from `mapcore_config_default()`; a zeroed struct is valid too
/// (it means the defaults, since `max_reservation` 0 stands for the default maximum).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct mapcore_config {
    /// Deinitialize keeps freed pages' contents resident instead of discarding them: cheaper
    /// deinitialize, and initialize zero-fills reused pages itself. Default false.
    pub retain_contents: bool,
    /// Accept segments that are writable and executable at once. Default false (W^X).
    pub allow_write_exec: bool,
    /// Largest reservation accepted, in bytes; 0 means the default, 1 TiB (1 GiB on 32-bit
    /// targets).
    pub max_reservation: size_t,
}

impl mapcore_config {
    /// The mapcore `Config` this stands for.
    fn to_config(self) -> Config {
        Config {
            discard: if self.retain_contents {
                DiscardPolicy::Retain
            } else {
                DiscardPolicy::Discard
            },
            allow_write_exec: self.allow_write_exec,
            max_reservation: if self.max_reservation == 0 {
                Config::DEFAULT.max_reservation
            } else {
                self.max_reservation
            },
        }
    }
}

/// The default configuration: discard on deinitialize, W^X enforced, the default maximum
/// reservation (written out, not 0).
#[unsafe(no_mangle)]
pub extern "C" fn mapcore_config_default() -> mapcore_config {
    mapcore_config {
        retain_contents: false,
        allow_write_exec: false,
        max_reservation: Config::DEFAULT.max_reservation,
    }
}

/// The operations of a map, whatever its host: what a handle holds.
pub(crate) trait Map: Send + Sync {
    fn page_size(&self) -> usize;
    fn reserve(&self, size: usize) -> Result<usize, StdError>;
    fn initialize(&self, request: &InitRequest<'_>) -> Result<usize, StdError>;
    fn deinitialize(&self, key: usize) -> Result<(), StdError>;
    fn deinitialize_multiple(
        &self,
        keys: &[usize],
        report: &mut dyn FnMut(usize, StdError),
    ) -> Result<(), StdError>;
    fn release(&self, base: usize) -> Result<(), StdError>;
    fn release_multiple(
        &self,
        bases: &[usize],
        report: &mut dyn FnMut(usize, StdError),
    ) -> Result<(), StdError>;
    fn shutdown(&self) -> Result<(), StdError>;
    fn slab_count(&self) -> usize;
    fn region_count(&self) -> usize;
}

impl<H: Host<Error = OsError> + Send> Map for JitMap<H, Growable> {
    fn page_size(&self) -> usize {
        Self::page_size(self)
    }
    fn reserve(&self, size: usize) -> Result<usize, StdError> {
        Self::reserve(self, size)
    }
    fn initialize(&self, request: &InitRequest<'_>) -> Result<usize, StdError> {
        Self::initialize(self, request)
    }
    fn deinitialize(&self, key: usize) -> Result<(), StdError> {
        Self::deinitialize(self, key)
    }
    fn deinitialize_multiple(
        &self,
        keys: &[usize],
        report: &mut dyn FnMut(usize, StdError),
    ) -> Result<(), StdError> {
        Self::deinitialize_multiple(self, keys, report)
    }
    fn release(&self, base: usize) -> Result<(), StdError> {
        Self::release(self, base)
    }
    fn release_multiple(
        &self,
        bases: &[usize],
        report: &mut dyn FnMut(usize, StdError),
    ) -> Result<(), StdError> {
        Self::release_multiple(self, bases, report)
    }
    fn shutdown(&self) -> Result<(), StdError> {
        Self::shutdown(self)
    }
    fn slab_count(&self) -> usize {
        Self::slab_count(self)
    }
    fn region_count(&self) -> usize {
        Self::region_count(self)
    }
}

/// A JIT memory map: slabs of address space and the regions initialized in them. Made by
/// `mapcore_map_new_libc` or `mapcore_map_new_host`, freed by `mapcore_map_free`.
///
/// Every function on a map may be called from several threads at once; actions may call
/// back into the map that runs them.
pub struct mapcore_map {
    map: Box<dyn Map>,
}

impl fmt::Debug for mapcore_map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mapcore_map")
            .field("page_size", &self.map.page_size())
            .field("slabs", &self.map.slab_count())
            .field("regions", &self.map.region_count())
            .finish()
    }
}

/// Runs `f` so that nothing unwinds out of it, and reports its failure: the status is
/// returned, the record written to `err` if it is not `NULL`.
///
/// # Safety
///
/// `err` is `NULL` or valid for writing one `mapcore_error`.
unsafe fn guarded(
    err: *mut mapcore_error,
    f: impl FnOnce() -> Result<(), Failure>,
) -> mapcore_status {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(Failure::Panic));
    match outcome {
        Ok(()) => mapcore_status::MAPCORE_OK,
        Err(failure) => {
            let record = failure.record();
            if !err.is_null() {
                // SAFETY: non-null, and the caller promises it is valid for one write.
                unsafe { err.write(record) };
            }
            record.status
        }
    }
}

/// The map behind a handle, or the failure for a `NULL` one.
///
/// # Safety
///
/// `map` is `NULL` or a handle from `mapcore_map_new_*` that has not been freed.
unsafe fn map_ref<'a>(map: *const mapcore_map) -> Result<&'a dyn Map, Invalid> {
    // SAFETY: `NULL` or a live handle, as the caller promises; handles are only read.
    let handle = unsafe { map.as_ref() }.ok_or(Invalid::Null("map"))?;
    Ok(&*handle.map)
}

/// Writes `value` to `out` if it is not `NULL`.
///
/// # Safety
///
/// `out` is `NULL` or valid for writing one `T`.
unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and valid for one write, as the caller promises.
        unsafe { out.write(value) };
    }
}

/// Boxes `map` into a handle and stores it in `*out`.
///
/// # Safety
///
/// `out` is valid for writing one pointer.
unsafe fn new_map(map: impl Map + 'static, out: *mut *mut mapcore_map) {
    let handle = Box::new(mapcore_map { map: Box::new(map) });
    // SAFETY: valid for one write, as the caller promises.
    unsafe { out.write(Box::into_raw(handle)) };
}

/// The mapcore `Config` of an optional C config.
///
/// # Safety
///
/// `config` is `NULL` or points to a readable `mapcore_config`.
unsafe fn config_of(config: *const mapcore_config) -> Config {
    // SAFETY: `NULL` or readable, as the caller promises.
    unsafe { config.as_ref() }.map_or(Config::DEFAULT, |c| c.to_config())
}

/// Makes a map over the built-in Linux host: `mmap` reservations, `mprotect`,
/// `madvise(MADV_DONTNEED)`, `munmap`, and the instruction-cache maintenance the CPU needs
/// (none on x86-64; `__clear_cache` and `membarrier` on aarch64). Host error codes are errno
/// values.
///
/// Stores the new handle in `*out`; `config` may be `NULL` for the defaults.
///
/// # Errors
///
/// `MAPCORE_ERR_INVALID_ARGUMENT` if `out` is `NULL`.
///
/// # Safety
///
/// `config` is `NULL` or points to a readable `mapcore_config`; `out` is `NULL` or valid for
/// writing a pointer; `err` is `NULL` or valid for writing a `mapcore_error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_new_libc(
    config: *const mapcore_config,
    out: *mut *mut mapcore_map,
    err: *mut mapcore_error,
) -> mapcore_status {
    // SAFETY: the caller's promises, passed on.
    unsafe { new_builtin(LibcHost::new(), config, out, err) }
}

/// Makes a map over the built-in dual-mapped Linux host: each slab a memory file
/// (`memfd_create`) mapped twice, the addresses handed out (which code runs at) and a
/// read-write alias the map writes through (`MADV_DONTFORK`, never executable). Freed pages
/// keep their protection, code overwritten with trap instructions, so reusing a region of the
/// same layout makes no system call; where the kernel refuses `mprotect` to executable
/// (`PR_SET_MDWE`) the file is mapped again over the range instead. Two mappings and one file
/// descriptor per slab. Host error codes are errno values.
///
/// Stores the new handle in `*out`; `config` may be `NULL` for the defaults.
///
/// # Errors
///
/// `MAPCORE_ERR_INVALID_ARGUMENT` if `out` is `NULL`.
///
/// # Safety
///
/// `config` is `NULL` or points to a readable `mapcore_config`; `out` is `NULL` or valid for
/// writing a pointer; `err` is `NULL` or valid for writing a `mapcore_error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_new_dual(
    config: *const mapcore_config,
    out: *mut *mut mapcore_map,
    err: *mut mapcore_error,
) -> mapcore_status {
    // SAFETY: the caller's promises, passed on.
    unsafe { new_builtin(DualMappedHost::new(), config, out, err) }
}

/// A map over one of the built-in hosts, stored in `*out`.
///
/// # Safety
///
/// As for `mapcore_map_new_libc`.
unsafe fn new_builtin<H: Host<Error = OsError> + Send + 'static>(
    host: H,
    config: *const mapcore_config,
    out: *mut *mut mapcore_map,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        if out.is_null() {
            return Err(Invalid::Null("out").into());
        }
        // SAFETY: `NULL` or readable, as the caller promises.
        let config = unsafe { config_of(config) };
        let map: JitMap<H, Growable> = JitMap::with_config(host, config);
        // SAFETY: non-null and valid for one write, as the caller promises.
        unsafe { new_map(map, out) };
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Makes a map over a host supplied as a table of C functions (see `mapcore_host` for what
/// they must do). The table is copied; its `ctx` must stay valid until `mapcore_map_free`
/// returns. `page_size` and `capabilities` are called once, here.
///
/// Stores the new handle in `*out`; `config` may be `NULL` for the defaults.
///
/// # Errors
///
/// `MAPCORE_ERR_INVALID_ARGUMENT` if `host` or `out` is `NULL`, an entry of the table is
/// `NULL`, the page size is not a power of two, or the capabilities have unknown bits.
///
/// # Safety
///
/// `host` is `NULL` or points to a readable `mapcore_host` whose functions and `ctx` keep
/// the promises written on `mapcore_host` for the life of the map; `config` is `NULL` or
/// readable; `out` is `NULL` or valid for writing a pointer; `err` is `NULL` or valid for
/// writing a `mapcore_error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_new_host(
    host: *const mapcore_host,
    config: *const mapcore_config,
    out: *mut *mut mapcore_map,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or readable, as the caller promises.
        let table = unsafe { host.as_ref() }.ok_or(Invalid::Null("host"))?;
        if out.is_null() {
            return Err(Invalid::Null("out").into());
        }
        // SAFETY: the table keeps the `mapcore_host` promises for the life of the map, which
        // owns the host.
        let host = unsafe { TableHost::new(table) }?;
        // SAFETY: `NULL` or readable, as the caller promises.
        let config = unsafe { config_of(config) };
        let map: JitMap<TableHost, Growable> = JitMap::with_config(host, config);
        // SAFETY: non-null and valid for one write, as the caller promises.
        unsafe { new_map(map, out) };
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Frees a map: releases every slab still reserved, newest first, running every remaining
/// dealloc action (their failures are not reported: call `mapcore_map_shutdown` first to see
/// them). `NULL` is ignored.
///
/// # Safety
///
/// `map` is `NULL` or a handle from `mapcore_map_new_*` that has not been freed, and no other
/// thread uses it during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_free(map: *mut mapcore_map) {
    if map.is_null() {
        return;
    }
    // SAFETY: a live handle made by `Box::into_raw` in `new_map`, freed only here, and no one
    // else uses it any more.
    let handle = unsafe { Box::from_raw(map) };
    // Dropping the map releases everything; a panic there must not reach C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(handle)));
}

/// The map's page size; 0 if `map` is `NULL`.
///
/// # Safety
///
/// `map` is `NULL` or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_page_size(map: *const mapcore_map) -> size_t {
    // SAFETY: `NULL` or a live handle, as the caller promises.
    unsafe { map_ref(map) }.map_or(0, |map| map.page_size())
}

/// How many slabs the map holds; 0 if `map` is `NULL`.
///
/// # Safety
///
/// `map` is `NULL` or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_slab_count(map: *const mapcore_map) -> size_t {
    // SAFETY: `NULL` or a live handle, as the caller promises.
    unsafe { map_ref(map) }.map_or(0, |map| map.slab_count())
}

/// How many regions the map holds (live or in progress); 0 if `map` is `NULL`.
///
/// # Safety
///
/// `map` is `NULL` or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_region_count(map: *const mapcore_map) -> size_t {
    // SAFETY: `NULL` or a live handle, as the caller promises.
    unsafe { map_ref(map) }.map_or(0, |map| map.region_count())
}

/// Reserves a slab of `size` bytes (a non-zero multiple of the page size) of read-write
/// memory that reads as zero, and stores its base in `*base` (if `base` is not `NULL`).
///
/// # Errors
///
/// `MAPCORE_ERR_INVALID_SIZE`, `MAPCORE_ERR_TOO_LARGE`, `MAPCORE_ERR_CAPACITY_EXCEEDED`,
/// `MAPCORE_ERR_HOST`, `MAPCORE_ERR_HOST_INVARIANT`; nothing is left reserved on any error.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `base` is `NULL` or valid for writing a `uintptr_t`;
/// `err` is `NULL` or valid for writing a `mapcore_error`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_reserve(
    map: *const mapcore_map,
    size: size_t,
    base: *mut uintptr_t,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        let reserved = map.reserve(size)?;
        // SAFETY: `NULL` or writable, as the caller promises.
        unsafe { put(base, reserved) };
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Initializes a region: copies each segment's content, zero-fills the rest, sets the
/// protections, makes the instruction cache coherent, runs the finalize actions in order and
/// keeps their dealloc actions. Stores the region's key, the address of its lowest Standard
/// segment, in `*key` (if `key` is not `NULL`).
///
/// Every check happens before the first write, protection change or action.
///
/// # Errors
///
/// `MAPCORE_ERR_INVALID_ARGUMENT`, `MAPCORE_ERR_ARGS_TOO_LONG` and the validation codes
/// (`MAPCORE_ERR_NO_STANDARD_SEGMENT` to `MAPCORE_ERR_WRITE_EXECUTE`, and
/// `MAPCORE_ERR_CAPACITY_EXCEEDED`) change nothing. `MAPCORE_ERR_HOST` and
/// `MAPCORE_ERR_FINALIZE_FAILED` are reported after a complete rollback: the dealloc actions
/// of the finalize actions that succeeded ran newest first, every page is free again, nothing
/// is recorded (unless `quarantined`).
///
/// # Safety
///
/// `map` is `NULL` or a live handle. `segments` points to `segment_count` readable
/// `mapcore_segment`s (or is `NULL` when `segment_count` is 0), each `content` pointing to
/// `content_len` readable bytes that do not overlap any slab of the map; likewise `actions`
/// and `action_count`, each action's `args` pointing to `args_len` readable bytes, and each
/// action's `func` and `ctx` callable until the action has run. `key` is `NULL` or valid for
/// writing a `uintptr_t`; `err` is `NULL` or valid for writing a `mapcore_error`. The
/// caller gives up the segments' pages to the map for the duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_initialize(
    map: *const mapcore_map,
    segments: *const mapcore_segment,
    segment_count: size_t,
    actions: *const mapcore_action_pair,
    action_count: size_t,
    key: *mut uintptr_t,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        // SAFETY: `segment_count` readable segments, unchanged during the call.
        let c_segments = unsafe { c_slice(segments, segment_count, "segments") }?;
        // SAFETY: as above, for the action pairs.
        let c_actions = unsafe { c_slice(actions, action_count, "actions") }?;
        // SAFETY: each content pointer is `NULL` or readable for its length, as promised.
        let segments = unsafe { request::segments(c_segments) }?;
        // SAFETY: each args pointer is `NULL` or readable for its length, as promised.
        let pairs = unsafe { request::pairs(c_actions) }?;
        let made = map.initialize(&InitRequest::new(&segments, &pairs))?;
        // SAFETY: `NULL` or writable, as the caller promises.
        unsafe { put(key, made) };
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Deinitializes the region keyed `key`: runs its dealloc actions newest first, returns its
/// pages to read-write and zero, and forgets it; the pages can be initialized again at once.
///
/// # Errors
///
/// `MAPCORE_ERR_UNKNOWN_KEY`, `MAPCORE_ERR_INTERIOR_ADDRESS`, `MAPCORE_ERR_NOT_IN_ANY_SLAB`
/// and `MAPCORE_ERR_BUSY` change nothing. `MAPCORE_ERR_DEALLOC_FAILED`: the region is gone
/// but some of its dealloc actions failed. `MAPCORE_ERR_HOST` with `quarantined`: its pages
/// could not be reset and will not be reused; `count` says how many of its dealloc actions
/// failed as well.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `err` is `NULL` or valid for writing a `mapcore_error`.
/// Nothing uses the region's memory any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_deinitialize(
    map: *const mapcore_map,
    key: uintptr_t,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        map.deinitialize(key)?;
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Which batch call [`batch`] makes.
#[derive(Debug, Clone, Copy)]
enum Batch {
    Deinitialize,
    Release,
}

/// Runs a batch call, recording each entry's outcome in `errors` (if not `NULL`).
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `addrs` points to `count` readable addresses (or is
/// `NULL` when `count` is 0); `errors` is `NULL` or valid for writing `count`
/// `mapcore_error`s; `err` is `NULL` or valid for writing one.
unsafe fn batch(
    map: *const mapcore_map,
    addrs: *const uintptr_t,
    count: size_t,
    errors: *mut mapcore_error,
    err: *mut mapcore_error,
    op: Batch,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        // SAFETY: `count` readable addresses, unchanged during the call.
        let addrs = unsafe { c_slice(addrs, count, "addrs") }?;
        if !errors.is_null() {
            for index in 0..count {
                // SAFETY: `errors` is valid for `count` writes, as the caller promises.
                unsafe { errors.add(index).write(mapcore_error::OK) };
            }
        }
        let mut report = |index: usize, error: StdError| {
            if !errors.is_null() && index < count {
                // SAFETY: as above; `index < count`.
                unsafe { errors.add(index).write(Failure::Map(error).record()) };
            }
        };
        match op {
            Batch::Deinitialize => map.deinitialize_multiple(addrs, &mut report)?,
            Batch::Release => map.release_multiple(addrs, &mut report)?,
        }
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Deinitializes the regions keyed `keys[0..count]`, back to front; keeps going after errors
/// and merges host calls over adjacent regions. If `errors` is not `NULL`, `errors[i]` is
/// set to the outcome of `keys[i]`: status `MAPCORE_OK`, or its error as
/// `mapcore_map_deinitialize` would report it. A key repeated in `keys` succeeds once; the
/// repeat reports `MAPCORE_ERR_UNKNOWN_KEY`.
///
/// # Errors
///
/// `MAPCORE_ERR_BATCH` with `count` the number of failed entries, if any failed;
/// `MAPCORE_ERR_INVALID_ARGUMENT` if `map` is `NULL`, or `keys` is `NULL` and `count` is
/// not 0.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `keys` points to `count` readable keys (or is `NULL`
/// when `count` is 0); `errors` is `NULL` or valid for writing `count` `mapcore_error`s;
/// `err` is `NULL` or valid for writing one. Nothing uses the regions' memory any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_deinitialize_multiple(
    map: *const mapcore_map,
    keys: *const uintptr_t,
    count: size_t,
    errors: *mut mapcore_error,
    err: *mut mapcore_error,
) -> mapcore_status {
    // SAFETY: the caller's promises, forwarded.
    unsafe { batch(map, keys, count, errors, err, Batch::Deinitialize) }
}

/// Releases the slab based at `base`: deinitializes the regions still in it, newest first
/// (each dealloc action exactly once), then returns the address space to the host.
///
/// # Errors
///
/// `MAPCORE_ERR_NOT_SLAB_BASE`, `MAPCORE_ERR_NOT_IN_ANY_SLAB` and `MAPCORE_ERR_BUSY` change
/// nothing. `MAPCORE_ERR_HOST`: the host could not unmap; the slab stays recorded (its
/// regions are gone) and the release can be retried; `count` says how many dealloc actions
/// failed before the unmap (a retry does not report them again). `MAPCORE_ERR_DEALLOC_FAILED`:
/// the slab is released but some dealloc actions failed.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `err` is `NULL` or valid for writing a `mapcore_error`.
/// Nothing uses the slab's memory any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_release(
    map: *const mapcore_map,
    base: uintptr_t,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        map.release(base)?;
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

/// Releases the slabs based at `bases[0..count]`, back to front; keeps going after errors.
/// If `errors` is not `NULL`, `errors[i]` is set to the outcome of `bases[i]`, as for
/// `mapcore_map_deinitialize_multiple`.
///
/// # Errors
///
/// `MAPCORE_ERR_BATCH` with `count` the number of failed entries, if any failed;
/// `MAPCORE_ERR_INVALID_ARGUMENT` if `map` is `NULL`, or `bases` is `NULL` and `count` is
/// not 0.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `bases` points to `count` readable addresses (or is
/// `NULL` when `count` is 0); `errors` is `NULL` or valid for writing `count`
/// `mapcore_error`s; `err` is `NULL` or valid for writing one. Nothing uses the slabs'
/// memory any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_release_multiple(
    map: *const mapcore_map,
    bases: *const uintptr_t,
    count: size_t,
    errors: *mut mapcore_error,
    err: *mut mapcore_error,
) -> mapcore_status {
    // SAFETY: the caller's promises, forwarded.
    unsafe { batch(map, bases, count, errors, err, Batch::Release) }
}

/// Releases every slab, newest first, running every remaining dealloc action. The map stays
/// usable afterwards; `mapcore_map_free` does the same without reporting.
///
/// # Errors
///
/// `MAPCORE_ERR_BATCH` with `count` the number of slabs whose release reported an error.
///
/// # Safety
///
/// `map` is `NULL` or a live handle; `err` is `NULL` or valid for writing a `mapcore_error`.
/// Nothing uses the map's memory any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mapcore_map_shutdown(
    map: *const mapcore_map,
    err: *mut mapcore_error,
) -> mapcore_status {
    let run = || {
        // SAFETY: `NULL` or a live handle, as the caller promises.
        let map = unsafe { map_ref(map) }?;
        map.shutdown()?;
        Ok(())
    };
    // SAFETY: `err` is `NULL` or writable, as the caller promises.
    unsafe { guarded(err, run) }
}

#[cfg(test)]
mod tests {
    use core::ffi::c_void;
    use core::ptr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::request::{mapcore_action, MAPCORE_GROUP_EXEC, MAPCORE_GROUP_READ};
    use mapcore_status as S;

    fn libc_map() -> *mut mapcore_map {
        let mut map = ptr::null_mut();
        // SAFETY: `out` is a valid place for the handle; config and err may be null.
        let status = unsafe { mapcore_map_new_libc(ptr::null(), &mut map, ptr::null_mut()) };
        assert_eq!(status, S::MAPCORE_OK);
        map
    }

    fn no_error() -> mapcore_error {
        mapcore_error::OK
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let mut err = no_error();
        // SAFETY: `err` is valid for one write.
        let status = unsafe { guarded(&mut err, || panic!("deliberate")) };
        assert_eq!(status, S::MAPCORE_ERR_PANIC);
        assert_eq!(err.status, S::MAPCORE_ERR_PANIC);
        assert!(err.message().contains("panicked"), "{}", err.message());
        // SAFETY: a null `err` is allowed.
        let status = unsafe { guarded(ptr::null_mut(), || Ok(())) };
        assert_eq!(status, S::MAPCORE_OK);
    }

    unsafe extern "C" fn count(ctx: *mut c_void, _args: *const u8, _len: size_t) -> i32 {
        // SAFETY: the test passes an `AtomicUsize` that outlives the map.
        unsafe { &*ctx.cast::<AtomicUsize>() }.fetch_add(1, Ordering::SeqCst);
        0
    }

    #[test]
    fn round_trip_over_the_libc_host() {
        let map = libc_map();
        let mut err = no_error();
        let deallocs = AtomicUsize::new(0);
        // SAFETY: `map` is live until the free at the end; every out-pointer is valid; the
        // content and the action's ctx outlive the calls that use them.
        unsafe {
            let page = mapcore_map_page_size(map);
            let mut base = 0;
            let status = mapcore_map_reserve(map, 4 * page, &mut base, &mut err);
            assert_eq!(status, S::MAPCORE_OK);
            let code = [0xc3u8];
            let segment = mapcore_segment {
                group: MAPCORE_GROUP_READ | MAPCORE_GROUP_EXEC,
                addr: base,
                size: 1,
                content: code.as_ptr(),
                content_len: 1,
            };
            let none = mapcore_action {
                func: None,
                ctx: ptr::null_mut(),
                args: ptr::null(),
                args_len: 0,
            };
            let pair = mapcore_action_pair {
                finalize: none,
                dealloc: mapcore_action {
                    func: Some(count),
                    ctx: ptr::from_ref(&deallocs).cast_mut().cast(),
                    ..none
                },
            };
            let mut key = 0;
            let status = mapcore_map_initialize(map, &segment, 1, &pair, 1, &mut key, &mut err);
            assert_eq!(status, S::MAPCORE_OK, "{}", err.message());
            assert_eq!(key, base);
            assert_eq!(ptr::with_exposed_provenance::<u8>(key).read(), 0xc3);
            assert_eq!(mapcore_map_region_count(map), 1);

            // A batch with one good and one bad key; back to front, so the bad one is still
            // inside the live region.
            let keys = [key, key + 1];
            let mut errors = [no_error(), no_error()];
            let status = mapcore_map_deinitialize_multiple(
                map,
                keys.as_ptr(),
                2,
                errors.as_mut_ptr(),
                &mut err,
            );
            assert_eq!(status, S::MAPCORE_ERR_BATCH);
            assert_eq!(err.count, 1);
            assert_eq!(errors[0].status, S::MAPCORE_OK);
            assert_eq!(errors[1].status, S::MAPCORE_ERR_INTERIOR_ADDRESS);
            assert_eq!(errors[1].addr, key + 1);
            assert_eq!(deallocs.load(Ordering::SeqCst), 1);

            assert_eq!(mapcore_map_release(map, base, &mut err), S::MAPCORE_OK);
            assert_eq!(mapcore_map_slab_count(map), 0);
            mapcore_map_free(map);
        }
    }

    #[test]
    fn null_pointers_are_refused() {
        let mut err = no_error();
        // SAFETY: every pointer is null or valid; null ones are refused before use.
        unsafe {
            let status = mapcore_map_reserve(ptr::null(), 4096, ptr::null_mut(), &mut err);
            assert_eq!(status, S::MAPCORE_ERR_INVALID_ARGUMENT);
            assert_eq!(err.message(), "`map` is null");
            let status = mapcore_map_new_libc(ptr::null(), ptr::null_mut(), &mut err);
            assert_eq!(status, S::MAPCORE_ERR_INVALID_ARGUMENT);
            assert_eq!(err.message(), "`out` is null");
            let mut out = ptr::null_mut();
            let status = mapcore_map_new_host(ptr::null(), ptr::null(), &mut out, &mut err);
            assert_eq!(status, S::MAPCORE_ERR_INVALID_ARGUMENT);
            assert!(out.is_null());

            let map = libc_map();
            let status = mapcore_map_initialize(
                map,
                ptr::null(),
                2,
                ptr::null(),
                0,
                ptr::null_mut(),
                &mut err,
            );
            assert_eq!(status, S::MAPCORE_ERR_INVALID_ARGUMENT);
            assert_eq!(err.message(), "`segments` is null");
            let status =
                mapcore_map_release_multiple(map, ptr::null(), 1, ptr::null_mut(), &mut err);
            assert_eq!(status, S::MAPCORE_ERR_INVALID_ARGUMENT);
            assert_eq!(
                mapcore_map_release_multiple(map, ptr::null(), 0, ptr::null_mut(), ptr::null_mut()),
                S::MAPCORE_OK
            );
            mapcore_map_free(map);
            mapcore_map_free(ptr::null_mut());
        }
    }

    #[test]
    fn config_maps_onto_the_core_config() {
        let default = mapcore_config_default().to_config();
        assert_eq!(default, Config::DEFAULT);
        let zeroed = mapcore_config {
            retain_contents: false,
            allow_write_exec: false,
            max_reservation: 0,
        };
        assert_eq!(zeroed.to_config(), Config::DEFAULT);
        let custom = mapcore_config {
            retain_contents: true,
            allow_write_exec: true,
            max_reservation: 1 << 20,
        }
        .to_config();
        assert_eq!(custom.discard, DiscardPolicy::Retain);
        assert!(custom.allow_write_exec);
        assert_eq!(custom.max_reservation, 1 << 20);
    }
}
