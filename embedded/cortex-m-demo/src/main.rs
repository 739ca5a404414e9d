//! mapcore on a Cortex-M3 without an MMU, under QEMU (`mps2-an385`): a static arena for
//! memory, the MPU for protections ([`host::ArenaHost`]). The firmware reserves a slab,
//! initializes a Thumb function given as bytes, calls it, checks that the MPU refuses what the
//! protections forbid, deinitializes, initializes another function at the same address, calls
//! it, and releases. Each check prints `ok` or `FAIL` over semihosting, then a
//! `N passed, N failed` line; the exit status is non-zero if any check failed.
//!
//! Run from this directory: `cargo run --release`.
#![no_std]
#![no_main]
#![expect(
    unsafe_code,
    reason = "calling JIT'd code and touching JIT memory is inherently unsafe"
)]

mod host;
mod probe;

use core::fmt;
use core::mem::transmute;
use core::ptr;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use mapcore::{Error, Fixed, HostOp, InitRequest, JitMap, Prot, Segment};

use host::{arena_base, ArenaError, ArenaHost, ARENA_SIZE, PAGES, PAGE_SIZE};
use probe::{Fault, Seen};

/// `int answer(void) { return 42; }`: `movs r0, #42; bx lr`, little-endian Thumb.
const ANSWER: [u8; 4] = [0x2a, 0x20, 0x70, 0x47];
/// `int add(int a, int b) { return a + b; }`: `adds r0, r0, r1; bx lr`.
const ADD: [u8; 4] = [0x40, 0x18, 0x70, 0x47];

/// Tables sized for an 8-page arena: 2 slabs, 4 regions, 8 segments, no heap.
type Map = JitMap<ArenaHost, Fixed<2, 4, 8>>;

/// The checks made so far.
#[derive(Debug, Default)]
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    /// Counts and prints one check.
    fn check(&mut self, ok: bool, what: fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        hprintln!("{} {}", if ok { "ok  " } else { "FAIL" }, what);
    }
}

/// The address to branch to for the Thumb function at `addr`: bit 0 set selects Thumb state.
fn thumb(addr: usize) -> *const () {
    ptr::with_exposed_provenance(addr | 1)
}

/// Reads the word at `addr` and writes it back unchanged: a write that changes nothing, to
/// see whether the MPU allows writing there.
fn rewrite(addr: usize) -> u32 {
    let word = ptr::with_exposed_provenance_mut::<u32>(addr);
    // SAFETY: `addr` is a word-aligned address in the arena (its provenance was exposed by
    // `arena_base`), which is always memory; nothing else runs meanwhile, and the word keeps
    // its value.
    unsafe { word.write_volatile(word.read_volatile()) };
    // SAFETY: as above.
    unsafe { word.read_volatile() }
}

/// Whether every byte of `[addr, addr + len)` in the arena is zero.
fn reads_zero(addr: usize, len: usize) -> bool {
    (addr..addr + len).all(|a| {
        // SAFETY: the caller passes a range inside the arena, which is always memory.
        unsafe { ptr::with_exposed_provenance::<u8>(a).read_volatile() == 0 }
    })
}

/// Everything the firmware does with the map; every failing map call ends it early.
fn demo(map: &Map, checks: &mut Checks) -> Result<(), Error<ArenaError>> {
    let arena = arena_base()..arena_base() + ARENA_SIZE;

    // 1. Reserve two pages: code, then data.
    let base = map.reserve(2 * PAGE_SIZE)?;
    let inside = arena.contains(&base) && base + 2 * PAGE_SIZE <= arena.end;
    checks.check(
        inside && base.is_multiple_of(PAGE_SIZE),
        format_args!("reserve(2 pages) = {base:#x}: page-aligned, inside the arena"),
    );
    let (code, data) = (base, base + PAGE_SIZE);

    // 2. Initialize: the function r-x, and a copy of its bytes in a read-write data page.
    let segments = [
        Segment::new(Prot::READ_EXEC, code, ANSWER.len(), &ANSWER),
        Segment::new(Prot::READ_WRITE, data, ANSWER.len(), &ANSWER),
    ];
    let key = map.initialize(&InitRequest::new(&segments, &[]))?;
    checks.check(
        key == code,
        format_args!("initialize: `movs r0, #42; bx lr` r-x at {code:#x}, a copy rw- at {data:#x}; key {key:#x}"),
    );

    // 3. Call it.
    // SAFETY: `code` holds ANSWER, executable, made coherent by initialize; it follows the C
    // calling convention for `fn() -> i32`.
    let answer = unsafe { transmute::<*const (), extern "C" fn() -> i32>(thumb(code)) };
    let (value, fault) = probe::watch(|| answer());
    checks.check(
        value == 42 && fault.is_none(),
        format_args!("called {:#x}: answer() = {value}", code | 1),
    );

    // 4. The MPU enforces the protections: no writing code, no executing data.
    let (_, fault) = probe::watch(|| rewrite(code));
    checks.check(
        fault == Some(Fault::Data(code)),
        format_args!("writing the r-x page is refused: {}", Seen(fault)),
    );
    // SAFETY: `data` holds a copy of ANSWER. The MPU refuses the fetch; the probe switches the
    // MPU off, and the retried fetch runs the copy (on a Cortex-M3, with no caches, a
    // DSB + ISB after writing suffices, and initialize's flush of the code did both).
    let copy = unsafe { transmute::<*const (), extern "C" fn() -> i32>(thumb(data)) };
    let (value, fault) = probe::watch(|| copy());
    checks.check(
        fault == Some(Fault::Fetch) && value == 42,
        format_args!(
            "executing the rw- copy is refused: {}; copy() = {value}",
            Seen(fault)
        ),
    );

    // 5. Deinitialize: the pages are read-write again.
    map.deinitialize(key)?;
    let (_, fault) = probe::watch(|| rewrite(code));
    checks.check(
        fault.is_none(),
        format_args!(
            "deinitialize: the code page is writable again ({})",
            Seen(fault)
        ),
    );

    // 6. A write+execute segment is refused before any host call.
    let wx = [Segment::new(Prot::ALL, code, ADD.len(), &ADD)];
    let refused = map.initialize(&InitRequest::new(&wx, &[]));
    checks.check(
        matches!(refused, Err(Error::WriteExecute { segment: 0 })),
        format_args!("a rwx segment is refused: {refused:?}"),
    );

    // 7. Reuse the same address for another function.
    let segments = [Segment::new(Prot::READ_EXEC, code, ADD.len(), &ADD)];
    let again = map.initialize(&InitRequest::new(&segments, &[]))?;
    checks.check(
        again == key,
        format_args!("initialize `adds r0, r0, r1; bx lr` at the same address: key {again:#x}"),
    );
    // SAFETY: `code` now holds ADD, executable and coherent, `fn(i32, i32) -> i32` in the C
    // calling convention; `answer` is not called again.
    let add = unsafe { transmute::<*const (), extern "C" fn(i32, i32) -> i32>(thumb(code)) };
    let (value, fault) = probe::watch(|| add(40, 2));
    checks.check(
        value == 42 && fault.is_none(),
        format_args!("called {:#x}: add(40, 2) = {value}", code | 1),
    );
    let (_, fault) = probe::watch(|| rewrite(code));
    checks.check(
        fault == Some(Fault::Data(code)),
        format_args!("writing the new r-x page is refused: {}", Seen(fault)),
    );

    // 8. Release: the live region goes first, then the pages return to the arena.
    map.release(base)?;
    let (_, fault) = probe::watch(|| rewrite(code));
    checks.check(
        fault.is_none() && reads_zero(base, 2 * PAGE_SIZE) && map.slab_count() == 0,
        format_args!(
            "release: both pages read-write and zero again ({})",
            Seen(fault)
        ),
    );

    // 9. The host's errors reach the caller.
    let too_big = map.reserve(2 * ARENA_SIZE);
    checks.check(
        matches!(
            too_big,
            Err(Error::Host {
                op: HostOp::Reserve,
                error: ArenaError::Full,
                ..
            })
        ),
        format_args!("reserve(16 pages) fails in the host: {too_big:?}"),
    );
    Ok(())
}

#[entry]
fn main() -> ! {
    hprintln!(
        "mapcore on a Cortex-M3 (qemu mps2-an385): an arena of {PAGES} pages of {PAGE_SIZE} bytes at {:#x}, protected by the MPU",
        arena_base()
    );
    let mut checks = Checks::default();
    if let Some(mut peripherals) = cortex_m::Peripherals::take() {
        probe::enable(&mut peripherals.SCB);
        let host = ArenaHost::new(peripherals.MPU);
        checks.check(
            host.is_some(),
            format_args!("the MPU has the 5 regions the host needs"),
        );
        if let Some(host) = host {
            let map = Map::new(host);
            if let Err(error) = demo(&map, &mut checks) {
                checks.check(false, format_args!("map call failed: {error}"));
            }
        }
    } else {
        checks.check(false, format_args!("the core peripherals are available"));
    }
    hprintln!("{} passed, {} failed", checks.passed, checks.failed);
    let ok = checks.failed == 0 && checks.passed > 0;
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("FAIL hard fault at pc {:#x}", frame.pc());
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("FAIL panic: {info}");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
