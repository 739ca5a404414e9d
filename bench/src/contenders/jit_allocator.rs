//! P2: `jit-allocator` 0.2.8 with its default options: dual mapping (a memfd mapped once
//! read-execute and once read-write), unused memory filled with traps on release. The blob is
//! written through the read-write view and run from the read-execute view; no page ever
//! changes protection, so the steady state makes no system call at all.
//!
//! # Safety
//!
//! Copies into the read-write view of blocks the allocator just handed out, and releases
//! them with the read-execute pointer `alloc` returned.
#![expect(
    unsafe_code,
    reason = "jit-allocator's release is unsafe; copies into JIT memory"
)]

use std::ptr;

use jit_allocator::{flush_instruction_cache, JitAllocator, JitAllocatorOptions};

use super::{page_ceil, Contender, Layout, Security, Token};
use crate::blob::noop_action;
use crate::workload::Workload;

/// A `JitAllocator` with default options.
pub(crate) struct JitAlloc {
    allocator: Box<JitAllocator>,
}

impl JitAlloc {
    pub(crate) fn new() -> Self {
        Self {
            allocator: JitAllocator::new(JitAllocatorOptions::default()),
        }
    }

    /// Allocates `bytes.len()` bytes, copies `bytes` through the RW view and returns the RX
    /// address.
    fn place(&mut self, bytes: &[u8]) -> usize {
        let (rx, rw) = self
            .allocator
            .alloc(bytes.len())
            .expect("JitAllocator::alloc");
        // SAFETY: `rw` is the writable view of at least `bytes.len()` fresh bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), rw, bytes.len()) };
        flush_instruction_cache(rx, bytes.len());
        rx.expose_provenance()
    }

    fn release(&mut self, rx: usize) {
        // SAFETY: `rx` is a live allocation's RX pointer from `alloc`, released only once;
        // the blob is not running.
        unsafe { self.allocator.release(ptr::with_exposed_provenance(rx)) }
            .expect("JitAllocator::release");
    }
}

impl Contender for JitAlloc {
    fn name(&self) -> &'static str {
        "jit-allocator"
    }

    fn security(&self) -> Security {
        Security::Dual
    }

    fn unsupported(&self, workload: Workload) -> Option<&'static str> {
        (workload == Workload::Churn).then_some(
            "jit-allocator 0.2.8 panics under mixed-size churn (a shift overflow corrupts \
             its bit vectors; see the test `jit_allocator_release_panics`)",
        )
    }

    fn prepare(&mut self, _layout: Layout) {}

    fn finish(&mut self) {}

    fn init(&mut self, code: &[u8]) -> Token {
        Token {
            exec: self.place(code),
            rodata: 0,
            len: page_ceil(code.len()),
            id: 0,
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let exec = self.place(code);
        // No read-only kind: the rodata lives in read-execute memory.
        let rodata = self.place(rodata);
        noop_action(&[]).expect("finalize action");
        Token {
            exec,
            rodata,
            len: 0,
            id: 0,
        }
    }

    fn deinit(&mut self, token: Token) {
        self.release(token.exec);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        noop_action(&[]).expect("dealloc action");
        self.release(token.rodata);
        self.release(token.exec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream bug, pinned here so that the churn exclusion stays honest. With default
    /// options: allocate A (2 KiB) and B (2 KiB), release A, allocate C (4 KiB) and D
    /// (1000 B), release C, release D, release B. `BitVectorRangeIterator::next_range`
    /// computes `u32::MAX << 32` when a search crosses a bit word that is entirely free
    /// (allocator.rs:165): debug builds panic there with a shift overflow while allocating C;
    /// release builds wrap the shift, corrupt the used/stop bit vectors, and the final
    /// `release` panics in `bit_vector_clear` (index out of bounds).
    #[test]
    fn jit_allocator_release_panics() {
        let outcome = std::panic::catch_unwind(|| {
            let mut ja = JitAllocator::new(JitAllocatorOptions::default());
            let alloc = |ja: &mut JitAllocator, n| ja.alloc(n).expect("alloc").0;
            let a = alloc(&mut ja, 2048);
            let b = alloc(&mut ja, 2048);
            // SAFETY: each pointer is a live allocation of `ja`, released once.
            unsafe { ja.release(a) }.expect("release A");
            let c = alloc(&mut ja, 4096);
            let d = alloc(&mut ja, 1000);
            // SAFETY: as above.
            unsafe { ja.release(c) }.expect("release C");
            // SAFETY: as above.
            unsafe { ja.release(d) }.expect("release D");
            // SAFETY: as above.
            unsafe { ja.release(b) }.expect("release B");
            ja
        });
        if let Ok(ja) = outcome {
            // The allocator may be corrupt: leak it rather than run its destructor.
            std::mem::forget(ja);
            panic!("jit-allocator no longer panics: fixed upstream? re-enable W3 for it");
        }
    }
}
