//! A global allocator that counts the allocations of the current thread, for tests that prove
//! an operation allocates nothing (error paths included: when `mprotect` fails with ENOMEM
//! because of `vm.max_map_count`, malloc fails too).
//!
//! ```
//! use mapcore::testing::{count_allocations, CountingAllocator};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let (v, allocations) = count_allocations(|| vec![1u8; 3]);
//!     assert_eq!((v.len(), allocations), (3, 1));
//! }
//! ```
#![expect(
    unsafe_code,
    reason = "a counting global allocator is the only way to observe allocations"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

std::thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the current thread's allocation attempts (`alloc`,
/// `alloc_zeroed`, `realloc`, failed ones included) inside [`count_allocations`]. Install it
/// with `#[global_allocator]` in the test binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

impl CountingAllocator {
    fn note() {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    }
}

// SAFETY: forwards every call to the system allocator unchanged; counting touches only
// const-initialized thread-local `Cell`s, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's promises for `alloc` are forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's promises for `alloc_zeroed` are forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: the caller's promises for `realloc` are forwarded unchanged; `ptr` came from
        // `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's promises for `dealloc` are forwarded unchanged; `ptr` came from
        // `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the number of allocations it made on this thread
/// (counted only if [`CountingAllocator`] is the global allocator).
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.set(0);
    ARMED.set(true);
    let result = f();
    ARMED.set(false);
    (result, ALLOCATIONS.get())
}

/// Runs `f` without counting its allocations (for a test's own bookkeeping inside
/// [`count_allocations`], such as a recording host's log).
pub fn without_counting<R>(f: impl FnOnce() -> R) -> R {
    let was_armed = ARMED.replace(false);
    let result = f();
    ARMED.set(was_armed);
    result
}
