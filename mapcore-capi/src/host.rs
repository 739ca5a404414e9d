//! `mapcore_host`: a host made of C function pointers, so that a C runtime can supply its own
//! page-protection layer, and [`TableHost`], the mapcore `Host` that calls it.
//!
//! # Safety
//!
//! [`TableHost`] implements the unsafe `Host` trait by calling the C functions of the table.
//! Its promises to the map are the promises the C implementer makes, numbered as on the
//! trait and spelled out on `mapcore_host`; the map's promises to the host (live ranges,
//! read-write pages for writes, no concurrent access to the range) are passed on to the C
//! functions unchanged. `ctx` is only ever handed back to the table's own functions.
#![expect(unsafe_code, reason = "calling the C functions of a host table")]

use core::ffi::c_void;

use libc::{size_t, uintptr_t};
use mapcore::{Capabilities, Host, PageRange, Prot};
use mapcore_std::OsError;

use crate::status::Invalid;

/// Capability bit: `discard` really drops contents, so discarded pages read as zero
/// afterwards. Without it the map zero-fills reused pages itself (and `discard` may do
/// nothing).
pub const MAPCORE_CAP_DISCARD: u32 = 1;
/// Capability bit: pages that were executable may be made writable again and reused. Without
/// it the map never hands such pages out again until their slab is released.
pub const MAPCORE_CAP_REUSE_EXECUTABLE: u32 = 2;
/// Capability bit: `write`, `fill_zero` and `fill_trap` reach the pages through a read-write
/// alias, whatever the protection of the addresses the host hands out (a dual-mapped host).
/// The map then protects lazily: freed pages keep their protection, their old bytes
/// overwritten (`fill_trap` where they were executable), and initialize protects only pages
/// whose protection differs from the request's. Needs a non-null `fill_trap`.
pub const MAPCORE_CAP_WRITES_THROUGH_ALIAS: u32 = 4;
/// Every capability bit this version knows.
const KNOWN_CAPS: u32 =
    MAPCORE_CAP_DISCARD | MAPCORE_CAP_REUSE_EXECUTABLE | MAPCORE_CAP_WRITES_THROUGH_ALIAS;

/// A page-protection host supplied by a C runtime: its functions and the `ctx` passed to each.
///
/// Functions that can fail return 0 on success and a non-zero error code on failure (an errno
/// value by convention: `ENOMEM` reads as out of memory, `EACCES` and `EPERM` as permission
/// denied, `EINVAL` as invalid argument). The code is reported in `mapcore_error.code` with
/// `MAPCORE_ERR_HOST`.
///
/// Addresses are integers: mapcore never dereferences them itself, it reaches memory only
/// through `write`, `fill_zero` and `fill_trap`, so a host may write through another mapping of the pages
/// while the addresses it hands out are the ones code runs at.
///
/// Every entry must be non-null, except `fill_trap` for hosts without
/// `MAPCORE_CAP_WRITES_THROUGH_ALIAS`. The table is copied by `mapcore_map_new_host`; `ctx` must
/// stay valid until `mapcore_map_free` returns.
///
/// The implementer promises, as for mapcore's Rust `Host` trait:
///
/// 1. `reserve` stores in `*base` a page-aligned address of `size` bytes of fresh address
///    space that overlaps nothing else the host has handed out and not released; all of it
///    reads as zero and is read-write.
/// 2. 0 from `protect` means the new protection is in effect for the whole range. On failure
///    any part of the range may have changed.
/// 3. 0 from `discard` means the range reads as zero afterwards, with its protection
///    unchanged. A host without `MAPCORE_CAP_DISCARD` may do nothing and return 0.
/// 4. `write`, `fill_zero` and `fill_trap` store exactly the given bytes at the given
///    addresses (through whatever mapping the host uses) and nothing else; with
///    `MAPCORE_CAP_WRITES_THROUGH_ALIAS`, whatever the protection of those addresses.
/// 5. No function calls back into the map.
/// 6. `page_size` returns a power of two, the same every time.
///
/// and besides, for C:
///
/// 7. Every function may be called from any thread, and from several at once on disjoint
///    ranges; the map never calls the host while it holds its own lock.
/// 8. No function unwinds (throws a C++ exception) or `longjmp`s out.
///
/// mapcore in turn promises each function: `reserve` gets a non-zero page multiple; `release`
/// gets exactly the `base` and `size` of one earlier successful `reserve` not yet released,
/// and nothing refers to that memory any more; `protect`, `discard` and `flush_icache` get a
/// page-aligned range inside one live reservation; `write`, `fill_zero` and `fill_trap` get a
/// range inside one live reservation that is read-write (or any protection, with
/// `MAPCORE_CAP_WRITES_THROUGH_ALIAS`), that no one else accesses during the call, and that
/// `bytes` does not overlap; `flush_icache` is called on readable pages after code was
/// written to them and their protections applied.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mapcore_host {
    /// Passed as the first argument of every function.
    pub ctx: *mut c_void,
    /// The page size all ranges are aligned to, a power of two. Called once, by
    /// `mapcore_map_new_host`.
    pub page_size: Option<unsafe extern "C" fn(ctx: *mut c_void) -> size_t>,
    /// What the host supports: `MAPCORE_CAP_*` bits. Called once, by `mapcore_map_new_host`.
    pub capabilities: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Reserves `size` bytes of zeroed read-write memory and stores its base in `*base`.
    pub reserve:
        Option<unsafe extern "C" fn(ctx: *mut c_void, size: size_t, base: *mut uintptr_t) -> i32>,
    /// Returns a reservation to the system. On failure it must still be reserved.
    pub release:
        Option<unsafe extern "C" fn(ctx: *mut c_void, base: uintptr_t, size: size_t) -> i32>,
    /// Sets the protection of `[addr, addr + len)`: `MAPCORE_GROUP_READ | _WRITE | _EXEC` bits.
    pub protect: Option<
        unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, len: size_t, prot: u8) -> i32,
    >,
    /// Drops the contents of `[addr, addr + len)` so that it reads as zero.
    pub discard:
        Option<unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, len: size_t) -> i32>,
    /// Copies `len` bytes from `bytes` to `addr`. Cannot fail.
    pub write: Option<
        unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, bytes: *const u8, len: size_t),
    >,
    /// Sets `len` bytes at `addr` to zero. Cannot fail.
    pub fill_zero: Option<unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, len: size_t)>,
    /// Makes the instruction cache coherent with the data just written to `[addr, addr +
    /// len)`. A host on x86, whose caches are coherent, returns 0 and does nothing.
    pub flush_icache:
        Option<unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, len: size_t) -> i32>,
    /// Fills `len` bytes at `addr` with the architecture's trap instruction (`int3`, 0xcc, on
    /// x86-64; `udf` on Arm). Cannot fail. Called only on hosts with
    /// `MAPCORE_CAP_WRITES_THROUGH_ALIAS`, on freed pages that were executable; may be NULL
    /// otherwise.
    pub fill_trap: Option<unsafe extern "C" fn(ctx: *mut c_void, addr: uintptr_t, len: size_t)>,
}

type ReserveFn = unsafe extern "C" fn(*mut c_void, size_t, *mut uintptr_t) -> i32;
type RangeFn = unsafe extern "C" fn(*mut c_void, uintptr_t, size_t) -> i32;
type ProtectFn = unsafe extern "C" fn(*mut c_void, uintptr_t, size_t, u8) -> i32;
type WriteFn = unsafe extern "C" fn(*mut c_void, uintptr_t, *const u8, size_t);
type FillFn = unsafe extern "C" fn(*mut c_void, uintptr_t, size_t);

/// The mapcore `Host` over a `mapcore_host` table: its functions checked non-null, its page
/// size and capabilities read once.
#[derive(Debug)]
pub(crate) struct TableHost {
    ctx: *mut c_void,
    page_size: usize,
    capabilities: Capabilities,
    reserve: ReserveFn,
    release: RangeFn,
    protect: ProtectFn,
    discard: RangeFn,
    write: WriteFn,
    fill_zero: FillFn,
    flush_icache: RangeFn,
    /// Non-null whenever the capabilities say `writes_through_alias`.
    fill_trap: Option<FillFn>,
}

// SAFETY: the C implementer promises (7) that every function may be called from any thread,
// also concurrently; `ctx` is only passed to those functions.
unsafe impl Send for TableHost {}
// SAFETY: as above: shared use from several threads is concurrent calls of the functions.
unsafe impl Sync for TableHost {}

/// A C status as a host result.
fn check(code: i32) -> Result<(), OsError> {
    if code == 0 {
        Ok(())
    } else {
        Err(OsError::from_raw_os_error(code))
    }
}

impl TableHost {
    /// Checks `table`, reads its page size and capabilities, and keeps its functions.
    ///
    /// # Errors
    ///
    /// A `NULL` entry, a page size that is not a power of two, unknown capability bits.
    ///
    /// # Safety
    ///
    /// The table's functions and `ctx` keep the promises written on `mapcore_host`, for as
    /// long as the host lives.
    pub(crate) unsafe fn new(table: &mapcore_host) -> Result<Self, Invalid> {
        let missing = Invalid::MissingHostFunction;
        let page_size_fn = table.page_size.ok_or(missing("page_size"))?;
        let capabilities_fn = table.capabilities.ok_or(missing("capabilities"))?;
        let host = |page_size, capabilities| -> Result<Self, Invalid> {
            Ok(Self {
                ctx: table.ctx,
                page_size,
                capabilities,
                reserve: table.reserve.ok_or(missing("reserve"))?,
                release: table.release.ok_or(missing("release"))?,
                protect: table.protect.ok_or(missing("protect"))?,
                discard: table.discard.ok_or(missing("discard"))?,
                write: table.write.ok_or(missing("write"))?,
                fill_zero: table.fill_zero.ok_or(missing("fill_zero"))?,
                flush_icache: table.flush_icache.ok_or(missing("flush_icache"))?,
                fill_trap: table.fill_trap,
            })
        };
        // Every entry is checked before the first C call.
        host(1, Capabilities::FULL)?;
        // SAFETY: a function of the table with its own ctx, under the implementer's promises.
        let page_size = unsafe { page_size_fn(table.ctx) };
        if !page_size.is_power_of_two() {
            return Err(Invalid::PageSize(page_size));
        }
        // SAFETY: as above.
        let bits = unsafe { capabilities_fn(table.ctx) };
        if bits & !KNOWN_CAPS != 0 {
            return Err(Invalid::CapabilityBits(bits));
        }
        let capabilities = Capabilities {
            discard: bits & MAPCORE_CAP_DISCARD != 0,
            reuse_executable: bits & MAPCORE_CAP_REUSE_EXECUTABLE != 0,
            writes_through_alias: bits & MAPCORE_CAP_WRITES_THROUGH_ALIAS != 0,
        };
        if capabilities.writes_through_alias && table.fill_trap.is_none() {
            return Err(missing("fill_trap"));
        }
        host(page_size, capabilities)
    }
}

// SAFETY: the implementer's promises of `Host` are the C implementer's promises 1-6 on
// `mapcore_host`, made for the functions called here, and `Sync` is promise 7; `page_size`
// returns the value read once and checked to be a power of two (6).
unsafe impl Host for TableHost {
    type Error = OsError;

    fn page_size(&self) -> usize {
        self.page_size
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn reserve(&self, size: usize) -> Result<usize, OsError> {
        let mut base: uintptr_t = 0;
        // SAFETY: the table's function with its ctx; `base` is a valid place for the result.
        check(unsafe { (self.reserve)(self.ctx, size, &mut base) })?;
        Ok(base)
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), OsError> {
        // SAFETY: the table's function with its ctx; the caller's promises (1) one live
        // reservation, (2) nothing refers to it, are the ones `release` is documented with.
        check(unsafe { (self.release)(self.ctx, base, size) })
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), OsError> {
        // SAFETY: the table's function with its ctx; (1) the range is inside one live
        // reservation and (2) no reference into it is invalidated, as the caller promises.
        check(unsafe { (self.protect)(self.ctx, range.start(), range.len(), prot.bits()) })
    }

    unsafe fn discard(&self, range: PageRange) -> Result<(), OsError> {
        // SAFETY: the table's function with its ctx; (1) the range is inside one live
        // reservation and (2) its contents are not needed, as the caller promises.
        check(unsafe { (self.discard)(self.ctx, range.start(), range.len()) })
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the table's function with its ctx; `bytes` is readable for its length, and
        // the caller promises (1) a live read-write destination, (2) no concurrent access,
        // (3) no overlap with `bytes`.
        unsafe { (self.write)(self.ctx, addr, bytes.as_ptr(), bytes.len()) }
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: the table's function with its ctx, under the caller's promises as for
        // `write`.
        unsafe { (self.fill_zero)(self.ctx, addr, len) }
    }

    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        // The map calls it only with `writes_through_alias`, for which `new` required the
        // function; without one, zeros at least leave no old code behind.
        match self.fill_trap {
            // SAFETY: the table's function with its ctx, under the caller's promises as for
            // `write`.
            Some(fill_trap) => unsafe { fill_trap(self.ctx, addr, len) },
            // SAFETY: as above.
            None => unsafe { (self.fill_zero)(self.ctx, addr, len) },
        }
    }

    unsafe fn flush_icache(&self, range: PageRange) -> Result<(), OsError> {
        // SAFETY: the table's function with its ctx; the range is inside one live
        // reservation and readable, as the caller promises.
        check(unsafe { (self.flush_icache)(self.ctx, range.start(), range.len()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

    use mapcore::{Growable, InitRequest, JitMap, Segment};
    use mapcore_std::LibcHost;

    use super::*;

    /// The test host's state: call counts, an injected protect failure, the page size and
    /// capabilities it reports.
    #[derive(Default)]
    struct State {
        page_size: usize,
        caps: u32,
        protects: AtomicUsize,
        writes: AtomicUsize,
        fail_protect: AtomicI32,
    }

    fn state(ctx: *mut c_void) -> &'static State {
        // SAFETY: every test passes a `State` that outlives its host.
        unsafe { &*ctx.cast::<State>() }
    }

    fn code(result: Result<(), OsError>) -> i32 {
        result.map_or_else(OsError::raw_os_error, |()| 0)
    }

    unsafe extern "C" fn page_size(ctx: *mut c_void) -> size_t {
        state(ctx).page_size
    }
    unsafe extern "C" fn capabilities(ctx: *mut c_void) -> u32 {
        state(ctx).caps
    }
    unsafe extern "C" fn reserve(_: *mut c_void, size: size_t, base: *mut uintptr_t) -> i32 {
        match LibcHost::new().reserve(size) {
            // SAFETY: `base` is the map's valid out-pointer.
            Ok(got) => unsafe {
                base.write(got);
                0
            },
            Err(error) => error.raw_os_error(),
        }
    }
    unsafe extern "C" fn release(_: *mut c_void, base: uintptr_t, size: size_t) -> i32 {
        // SAFETY: the map's promises for `release`, passed on.
        code(unsafe { LibcHost::new().release(base, size) })
    }
    fn range(addr: uintptr_t, len: size_t) -> PageRange {
        PageRange::new(addr, addr + len, mapcore_std::page_size()).unwrap()
    }
    unsafe extern "C" fn protect(ctx: *mut c_void, addr: uintptr_t, len: size_t, prot: u8) -> i32 {
        let state = state(ctx);
        state.protects.fetch_add(1, Ordering::SeqCst);
        let fail = state.fail_protect.swap(0, Ordering::SeqCst);
        if fail != 0 {
            return fail;
        }
        // SAFETY: the map's promises for `protect`, passed on.
        code(unsafe { LibcHost::new().protect(range(addr, len), Prot::from_bits(prot).unwrap()) })
    }
    unsafe extern "C" fn discard(_: *mut c_void, addr: uintptr_t, len: size_t) -> i32 {
        // SAFETY: the map's promises for `discard`, passed on.
        code(unsafe { LibcHost::new().discard(range(addr, len)) })
    }
    unsafe extern "C" fn write(ctx: *mut c_void, addr: uintptr_t, bytes: *const u8, len: size_t) {
        state(ctx).writes.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the map's promises for `write`, passed on; `bytes` is readable for `len`.
        unsafe { LibcHost::new().write(addr, core::slice::from_raw_parts(bytes, len)) }
    }
    unsafe extern "C" fn fill_zero(_: *mut c_void, addr: uintptr_t, len: size_t) {
        // SAFETY: the map's promises for `fill_zero`, passed on.
        unsafe { LibcHost::new().fill_zero(addr, len) }
    }
    unsafe extern "C" fn flush_icache(_: *mut c_void, addr: uintptr_t, len: size_t) -> i32 {
        // SAFETY: the map's promises for `flush_icache`, passed on.
        code(unsafe { LibcHost::new().flush_icache(range(addr, len)) })
    }

    fn table(state: &State) -> mapcore_host {
        mapcore_host {
            ctx: core::ptr::from_ref(state).cast_mut().cast(),
            page_size: Some(page_size),
            capabilities: Some(capabilities),
            reserve: Some(reserve),
            release: Some(release),
            protect: Some(protect),
            discard: Some(discard),
            write: Some(write),
            fill_zero: Some(fill_zero),
            flush_icache: Some(flush_icache),
            fill_trap: None,
        }
    }

    fn full_state() -> State {
        State {
            page_size: mapcore_std::page_size(),
            caps: MAPCORE_CAP_DISCARD | MAPCORE_CAP_REUSE_EXECUTABLE,
            ..State::default()
        }
    }

    #[test]
    fn tables_are_checked_before_any_call() {
        let state = full_state();
        let mut t = table(&state);
        t.discard = None;
        // SAFETY: the table's functions keep the promises; this one is refused anyway.
        let refused = unsafe { TableHost::new(&t) }.unwrap_err();
        assert_eq!(refused, Invalid::MissingHostFunction("discard"));

        let odd = State {
            page_size: 6000,
            ..full_state()
        };
        // SAFETY: as above.
        let refused = unsafe { TableHost::new(&table(&odd)) }.unwrap_err();
        assert_eq!(refused, Invalid::PageSize(6000));
        let unknown = State {
            caps: 8,
            ..full_state()
        };
        // SAFETY: as above.
        let refused = unsafe { TableHost::new(&table(&unknown)) }.unwrap_err();
        assert_eq!(refused, Invalid::CapabilityBits(8));
        // An alias host must bring `fill_trap`.
        let alias = State {
            caps: MAPCORE_CAP_WRITES_THROUGH_ALIAS,
            ..full_state()
        };
        // SAFETY: as above.
        let refused = unsafe { TableHost::new(&table(&alias)) }.unwrap_err();
        assert_eq!(refused, Invalid::MissingHostFunction("fill_trap"));

        let partial = State {
            caps: MAPCORE_CAP_DISCARD,
            ..full_state()
        };
        // SAFETY: as above.
        let host = unsafe { TableHost::new(&table(&partial)) }.unwrap();
        assert_eq!(host.page_size(), mapcore_std::page_size());
        assert!(host.capabilities().discard && !host.capabilities().reuse_executable);
    }

    #[test]
    fn a_map_over_the_table_calls_it_and_reports_its_codes() {
        let state = full_state();
        // SAFETY: the functions above keep the `mapcore_host` promises (they forward to the
        // libc host) and `state` outlives the map.
        let host = unsafe { TableHost::new(&table(&state)) }.unwrap();
        let map: JitMap<TableHost, Growable> = JitMap::new(host);
        let page = map.page_size();
        let base = map.reserve(4 * page).unwrap();
        let data = *b"data";
        let segments = [Segment::new(Prot::READ, base, 4, &data)];
        state.fail_protect.store(libc::EPERM, Ordering::SeqCst);
        let error = map
            .initialize(&InitRequest::new(&segments, &[]))
            .unwrap_err();
        assert_eq!(
            error.host_error(),
            Some(&OsError::from_raw_os_error(libc::EPERM))
        );
        assert_eq!(map.region_count(), 0);
        let key = map.initialize(&InitRequest::new(&segments, &[])).unwrap();
        assert_eq!(key, base);
        assert_eq!(state.writes.load(Ordering::SeqCst), 2);
        // The failed protect, its rollback to read-write, the successful protect.
        assert_eq!(state.protects.load(Ordering::SeqCst), 3);
        map.deinitialize(key).unwrap();
        map.release(base).unwrap();
    }
}
