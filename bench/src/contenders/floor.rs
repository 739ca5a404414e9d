//! P0: the floor, the same system calls written by hand with libc. One slab is mapped once;
//! per operation the blob is copied into read-write pages, the pages are made read-execute,
//! the blob is called, and the pages are made read-write again (`mprotect` twice), plus one
//! `madvise(MADV_DONTNEED)` in the decommitting variant. Batches are plain loops.
//!
//! # Safety
//!
//! Raw `mmap`/`mprotect`/`madvise`/`munmap` on the one slab this contender mapped, and copies
//! into its read-write pages; every address used lies inside that slab.
#![expect(unsafe_code, reason = "raw libc memory calls: this is the floor")]

use std::io;
use std::ptr;

use super::{page_ceil, Contender, Layout, Security, Slots, Token};
use crate::blob::{make_coherent, noop_action};

/// A hand-written slab + `mprotect` flip, optionally decommitting on free.
#[derive(Debug)]
pub(crate) struct Floor {
    madvise: bool,
    slab: *mut u8,
    slab_len: usize,
    slots: Slots,
}

/// Panics with errno if a libc call returned -1.
fn check(ret: libc::c_int, what: &str) {
    assert!(ret == 0, "{what}: {}", io::Error::last_os_error());
}

impl Floor {
    pub(crate) fn new(madvise: bool) -> Self {
        Self {
            madvise,
            slab: ptr::null_mut(),
            slab_len: 0,
            slots: Slots::default(),
        }
    }

    /// The address of `offset` bytes into the slab.
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.slab_len);
        self.slab.wrapping_add(offset)
    }

    /// Copies `bytes` to `dst`.
    fn write(dst: *mut u8, bytes: &[u8]) {
        // SAFETY: `dst` is a slot of the slab, its pages are read-write (free) and at least
        // `bytes.len()` long (the workload's layout), and `bytes` lies on the heap, not in
        // the slab.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }

    fn protect(addr: *mut u8, len: usize, prot: libc::c_int) {
        // SAFETY: `[addr, addr + len)` is whole pages of the slab that nothing refers to.
        check(
            unsafe { libc::mprotect(addr.cast(), len, prot) },
            "mprotect",
        );
    }

    /// Makes `len` bytes at `addr` free again: read-write, and decommitted if asked.
    fn reset(&self, addr: usize, len: usize) {
        let addr: *mut u8 = ptr::with_exposed_provenance_mut(addr);
        Self::protect(addr, len, libc::PROT_READ | libc::PROT_WRITE);
        if self.madvise {
            // SAFETY: whole pages of the slab, private anonymous memory, contents unneeded.
            check(
                unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) },
                "madvise",
            );
        }
    }
}

impl Contender for Floor {
    fn name(&self) -> &'static str {
        if self.madvise {
            "floor-madvise"
        } else {
            "floor"
        }
    }

    fn security(&self) -> Security {
        Security::Flip
    }

    fn prepare(&mut self, layout: Layout) {
        self.slots.reset(layout);
        self.slab_len = self.slots.slab_bytes();
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choice replaces
        // nothing.
        let slab = unsafe {
            libc::mmap(
                ptr::null_mut(),
                self.slab_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(
            slab != libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        self.slab = slab.cast();
    }

    fn finish(&mut self) {
        // SAFETY: the slab this contender mapped; every region in it is gone.
        check(
            unsafe { libc::munmap(self.slab.cast(), self.slab_len) },
            "munmap",
        );
        self.slab = ptr::null_mut();
    }

    fn init(&mut self, code: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let dst = self.at(offset);
        Self::write(dst, code);
        make_coherent(dst.addr(), code.len());
        let len = page_ceil(code.len());
        Self::protect(dst, len, libc::PROT_READ | libc::PROT_EXEC);
        Token {
            exec: dst.expose_provenance(),
            rodata: 0,
            len,
            id: slot,
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let dst = self.at(offset);
        let code_len = page_ceil(code.len());
        let data = dst.wrapping_add(code_len);
        Self::write(dst, code);
        Self::write(data, rodata);
        make_coherent(dst.addr(), code.len());
        Self::protect(dst, code_len, libc::PROT_READ | libc::PROT_EXEC);
        Self::protect(data, page_ceil(rodata.len()), libc::PROT_READ);
        noop_action(&[]).expect("finalize action");
        Token {
            exec: dst.expose_provenance(),
            rodata: data.expose_provenance(),
            len: code_len + page_ceil(rodata.len()),
            id: slot,
        }
    }

    fn deinit(&mut self, token: Token) {
        self.reset(token.exec, token.len);
        self.slots.put(token.id);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        noop_action(&[]).expect("dealloc action");
        // Code and rodata pages touch: one mprotect (and one madvise) covers both.
        self.deinit(token);
    }
}
