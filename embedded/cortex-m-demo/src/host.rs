//! `ArenaHost`: a mapcore host over one static arena, its pages protected by the Cortex-M3's
//! memory protection unit (MPU).
//!
//! A Cortex-M3 has no MMU: no address space to map, and one physical address per byte. The
//! "reservations" are pieces of a static arena of [`PAGES`] pages of [`PAGE_SIZE`] bytes,
//! handed out first-fit. The MPU (ARMv7-M PMSA) has 8 regions; each region is a power of two
//! in size, aligned to it, and split into 8 subregions that can be switched off one by one.
//! The arena is exactly one such region, so each page is one subregion:
//!
//! | MPU region | covers | access | pages in it |
//! |---|---|---|---|
//! | 0 | the arena | read-write, never execute | every page (the free state) |
//! | 1 | the arena | none | the pages whose subregion is on |
//! | 2 | the arena | read-only, never execute | the pages whose subregion is on |
//! | 3 | the arena | read-only, execute | the pages whose subregion is on |
//! | 4 | the arena | read-write, execute | the pages whose subregion is on |
//!
//! A higher region wins where two overlap, and each page is switched on in at most one of
//! regions 1 to 4, so each page has exactly the protection last set for it. Everything outside
//! the arena keeps the default memory map (`PRIVDEFENA`), and the firmware runs privileged.
//! The MPU grants neither write nor execute without read, so write-only is given as
//! read-write and execute-only as read-execute, as `mprotect` does on most MMUs.
//!
//! # Safety
//!
//! The arena is a `static` reached only through this host, by pointers derived from the
//! static itself. The map owns every reserved page between `reserve` and `release` and, by the
//! `Host` contract, no two calls touch the same pages at once; the page bookkeeping and the
//! MPU are changed only inside a critical section (single core, interrupts off).
#![expect(
    unsafe_code,
    reason = "a host implements an unsafe trait, and writes the arena and the MPU's registers"
)]

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::ptr;

use cortex_m::asm::{dsb, isb};
use cortex_m::interrupt::{self, CriticalSection, Mutex};
use cortex_m::peripheral::MPU;
use mapcore::{Capabilities, Host, HostError, HostErrorKind, PageRange, Prot};

/// The page size: one MPU subregion.
pub(crate) const PAGE_SIZE: usize = 1024;
/// Pages in the arena: the 8 subregions of one MPU region.
pub(crate) const PAGES: usize = 8;
/// The arena's size, which is also its alignment (an MPU region is aligned to its size).
pub(crate) const ARENA_SIZE: usize = PAGE_SIZE * PAGES;

/// The memory handed out: one MPU region, aligned to its size.
#[repr(C, align(8192))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);

const _: () = assert!(core::mem::align_of::<Arena>() == ARENA_SIZE);
const _: () = assert!(core::mem::size_of::<Arena>() == ARENA_SIZE);

// SAFETY: the bytes are reached only through `ArenaHost`'s methods, which touch a page only
// while the map owns it and hands it to one call at a time (see the module's safety note).
unsafe impl Sync for Arena {}

/// Zero-initialized, so it lives in `.bss` and reads as zero at reset.
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));

// MPU register fields (ARMv7-M Architecture Reference Manual, B3.5).
const CTRL_ENABLE: u32 = 1;
const CTRL_PRIVDEFENA: u32 = 1 << 2;
const RBAR_VALID: u32 = 1 << 4;
const RASR_ENABLE: u32 = 1;
const RASR_SIZE: u32 = (ARENA_SIZE.trailing_zeros() - 1) << 1; // region size 2^(SIZE + 1)
const RASR_SRD_SHIFT: u32 = 8; // subregion i is switched off when bit 8 + i is set
const RASR_NORMAL: u32 = (1 << 17) | (1 << 16); // TEX 0, C, B: normal memory, write-back
const RASR_XN: u32 = 1 << 28;
const AP_NONE: u32 = 0b000 << 24;
const AP_READ_WRITE: u32 = 0b011 << 24;
const AP_READ_ONLY: u32 = 0b110 << 24;

/// The protections of MPU regions 1, 2, 3, 4 (region 0 is read-write), with their access bits.
const CLASSES: [(Prot, u32); 4] = [
    (Prot::NONE, AP_NONE | RASR_XN),
    (Prot::READ, AP_READ_ONLY | RASR_XN),
    (Prot::READ_EXEC, AP_READ_ONLY),
    (Prot::ALL, AP_READ_WRITE),
];

/// Regions the host programs: the read-write base and one per entry of `CLASSES`.
const REGIONS: u32 = 1 + CLASSES.len() as u32;

/// Which pages are reserved and which class region each page is in: one bit per page.
#[derive(Debug, Clone, Copy, Default)]
struct Pages {
    reserved: u8,
    class: [u8; CLASSES.len()],
}

/// Why a host call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArenaError {
    /// No run of free pages is long enough.
    Full,
    /// The size or range is not whole pages inside the arena.
    OutOfArena,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "no run of free pages in the arena is long enough",
            Self::OutOfArena => "not whole pages inside the arena",
        })
    }
}

impl HostError for ArenaError {
    fn kind(&self) -> HostErrorKind {
        match self {
            Self::Full => HostErrorKind::OutOfMemory,
            Self::OutOfArena => HostErrorKind::InvalidArgument,
        }
    }
}

/// The host: owns the MPU, and through it the arena's protections.
pub(crate) struct ArenaHost {
    mpu: Mutex<MPU>,
    pages: Mutex<Cell<Pages>>,
}

impl fmt::Debug for ArenaHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pages = interrupt::free(|cs| self.pages.borrow(cs).get());
        f.debug_struct("ArenaHost")
            .field("base", &format_args!("{:#x}", arena_base()))
            .field("pages", &pages)
            .finish()
    }
}

/// The arena's first address.
pub(crate) fn arena_base() -> usize {
    ARENA.0.get().cast::<u8>().expose_provenance()
}

impl ArenaHost {
    /// Takes the MPU (only one `MPU` value exists, so only one host does), makes the whole
    /// arena read-write and not executable, and switches the MPU on. `None` if the core has
    /// fewer MPU regions than the host needs.
    pub(crate) fn new(mpu: MPU) -> Option<Self> {
        let dregion = (mpu._type.read() >> 8) & 0xff;
        if dregion < REGIONS {
            return None;
        }
        let host = Self {
            mpu: Mutex::new(mpu),
            pages: Mutex::new(Cell::new(Pages::default())),
        };
        interrupt::free(|cs| {
            let mpu = host.mpu.borrow(cs);
            // SAFETY: with the MPU off, every region is switched off, then region 0 covers
            // exactly the arena, read-write and not executable (the class regions follow,
            // empty); the rest of the address space keeps the default map, so nothing else the
            // firmware uses changes.
            unsafe {
                mpu.ctrl.write(0);
                for region in 0..dregion.min(8) {
                    mpu.rnr.write(region);
                    mpu.rasr.write(0);
                }
                mpu.rbar.write(arena_base() as u32 | RBAR_VALID);
                mpu.rasr
                    .write(AP_READ_WRITE | RASR_XN | RASR_NORMAL | RASR_SIZE | RASR_ENABLE);
            }
            host.program(cs, Pages::default());
            // SAFETY: as above: only the arena has a region, the rest is the default map.
            unsafe { mpu.ctrl.write(CTRL_ENABLE | CTRL_PRIVDEFENA) };
            dsb();
            isb();
        });
        Some(host)
    }

    /// The MPU region for `prot` (index into `CLASSES`), or `None` for read-write, which is
    /// the base region.
    fn class_of(prot: Prot) -> Option<usize> {
        let prot = if prot.contains(Prot::WRITE) || prot.contains(Prot::EXEC) {
            prot | Prot::READ
        } else {
            prot
        };
        CLASSES.iter().position(|&(p, _)| p == prot)
    }

    /// The page bits of `[addr, addr + len)`, which must be whole pages inside the arena.
    fn page_mask(addr: usize, len: usize) -> Result<u8, ArenaError> {
        let offset = addr.wrapping_sub(arena_base());
        let fits = offset <= ARENA_SIZE && len <= ARENA_SIZE - offset;
        if !fits || !offset.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(ArenaError::OutOfArena);
        }
        let (first, count) = (offset / PAGE_SIZE, len / PAGE_SIZE);
        Ok((((1u32 << count) - 1) << first) as u8)
    }

    /// Records `pages` and writes the class regions from it, then waits until the new
    /// settings apply to every following access and instruction fetch.
    fn program(&self, cs: &CriticalSection, pages: Pages) {
        self.pages.borrow(cs).set(pages);
        let mpu = self.mpu.borrow(cs);
        for (i, (&(_, access), &mask)) in CLASSES.iter().zip(&pages.class).enumerate() {
            let enable = if mask == 0 { 0 } else { RASR_ENABLE };
            let off = u32::from(!mask) << RASR_SRD_SHIFT;
            // SAFETY: the region covers exactly the arena, with its subregions on only for the
            // pages in `mask`; nothing outside the arena is affected.
            unsafe {
                mpu.rbar
                    .write(arena_base() as u32 | RBAR_VALID | (1 + i as u32));
                mpu.rasr
                    .write(access | RASR_NORMAL | off | RASR_SIZE | enable);
            }
        }
        dsb();
        isb();
    }

    /// A pointer to the arena byte at execution address `addr`.
    ///
    /// # Safety
    ///
    /// `addr` lies inside the arena.
    unsafe fn byte(addr: usize) -> *mut u8 {
        // SAFETY: the caller promises `addr - base` is inside the arena's allocation.
        unsafe { ARENA.0.get().cast::<u8>().add(addr - arena_base()) }
    }
}

// SAFETY: how each promise of `mapcore::Host` is kept:
// 1. `reserve` hands out whole pages of the page-aligned arena, only pages whose `reserved` bit
//    is clear, and sets those bits under the critical section, so reservations never overlap.
//    A free page is zero (the arena is `.bss`, and `release` zeroes pages before freeing them)
//    and read-write (`release` takes it out of every class region first).
// 2. `protect` returns `Ok` only after the class regions are written and DSB + ISB have made
//    them apply to every later access and fetch, for every page of the range.
// 3. `capabilities().discard` is false and `discard` does nothing, which that allows; the map
//    then zero-fills reused pages itself.
// 4. `write`, `fill_zero` and `fill_trap` copy, zero or trap-fill exactly the bytes asked for, at those addresses: the
//    arena has no alias, execution addresses are the storage.
// 5. No method calls into a map.
// 6. `page_size` is the constant `PAGE_SIZE`, a power of two.
unsafe impl Host for ArenaHost {
    type Error = ArenaError;

    fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            discard: false,
            reuse_executable: true,
            writes_through_alias: false,
        }
    }

    fn reserve(&self, size: usize) -> Result<usize, ArenaError> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) {
            return Err(ArenaError::OutOfArena);
        }
        let count = size / PAGE_SIZE;
        if count > PAGES {
            return Err(ArenaError::Full);
        }
        let want = ((1u32 << count) - 1) as u8;
        interrupt::free(|cs| {
            let cell = self.pages.borrow(cs);
            let mut pages = cell.get();
            let first = (0..=PAGES - count)
                .find(|&first| pages.reserved & (want << first) == 0)
                .ok_or(ArenaError::Full)?;
            pages.reserved |= want << first;
            cell.set(pages);
            Ok(arena_base() + first * PAGE_SIZE)
        })
    }

    unsafe fn release(&self, base: usize, size: usize) -> Result<(), ArenaError> {
        let mask = Self::page_mask(base, size)?;
        interrupt::free(|cs| {
            let mut pages = self.pages.borrow(cs).get();
            debug_assert_eq!(pages.reserved & mask, mask, "release of pages not reserved");
            pages.class.iter_mut().for_each(|class| *class &= !mask);
            self.program(cs, pages);
            // SAFETY: the range is whole pages of the arena (checked above), read-write now,
            // and the caller promises nothing refers to them; they are still reserved, so no
            // `reserve` can hand them out before they are zero.
            unsafe { ptr::write_bytes(Self::byte(base), 0, size) };
            pages.reserved &= !mask;
            self.pages.borrow(cs).set(pages);
        });
        Ok(())
    }

    unsafe fn protect(&self, range: PageRange, prot: Prot) -> Result<(), ArenaError> {
        let mask = Self::page_mask(range.start(), range.len())?;
        interrupt::free(|cs| {
            let mut pages = self.pages.borrow(cs).get();
            pages.class.iter_mut().for_each(|class| *class &= !mask);
            if let Some(class) = Self::class_of(prot) {
                pages.class[class] |= mask;
            }
            self.program(cs, pages);
        });
        Ok(())
    }

    unsafe fn discard(&self, _range: PageRange) -> Result<(), ArenaError> {
        // Static memory cannot be given back; `capabilities().discard` says so, and the map
        // zero-fills reused pages instead.
        Ok(())
    }

    unsafe fn write(&self, addr: usize, bytes: &[u8]) {
        // SAFETY: the caller promises the range is inside one reservation (so inside the
        // arena), read-write, untouched by anyone else, and not overlapping `bytes`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), Self::byte(addr), bytes.len()) };
    }

    unsafe fn fill_zero(&self, addr: usize, len: usize) {
        // SAFETY: as in `write`.
        unsafe { ptr::write_bytes(Self::byte(addr), 0, len) };
    }

    /// Thumb `udf #0` (0xde00) halfwords. The map never calls it: this host has no alias.
    unsafe fn fill_trap(&self, addr: usize, len: usize) {
        for offset in (0..len).step_by(2) {
            // SAFETY: as in `write`; `addr` is page-aligned, so each halfword is aligned.
            let halfword = unsafe { Self::byte(addr + offset) }.cast::<u16>();
            // SAFETY: as above: inside the arena, aligned, and ours during the call.
            unsafe { halfword.write_volatile(0xde00) };
        }
    }

    unsafe fn flush_icache(&self, _range: PageRange) -> Result<(), ArenaError> {
        // A Cortex-M3 has no caches: DSB completes the writes, ISB refetches the pipeline.
        dsb();
        isb();
        Ok(())
    }
}
