//! P1: `region` 4.0.1 as a JIT user would use it: one `region::alloc` slab, then per operation
//! `region::protect` to read-execute and back to read-write (two `mprotect`s). Batches loop.
//!
//! # Safety
//!
//! Copies into, and protection changes of, pages of the one allocation this contender owns.
#![expect(unsafe_code, reason = "region::protect and copies into JIT memory")]

use std::ptr;

use region::{Allocation, Protection};

use super::{page_ceil, Contender, Layout, Security, Slots, Token};
use crate::blob::{make_coherent, noop_action};

/// One `region::Allocation` slab with `region::protect` flips.
#[derive(Default)]
pub(crate) struct RegionSlab {
    slab: Option<Allocation>,
    slots: Slots,
}

impl RegionSlab {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The address `offset` bytes into the slab, after copying `bytes` there.
    fn write(&mut self, offset: usize, bytes: &[u8]) -> *mut u8 {
        let slab = self.slab.as_mut().expect("prepared");
        let dst = slab.as_mut_ptr::<u8>().wrapping_add(offset);
        // SAFETY: the slot lies inside the allocation and is read-write (free); `bytes` is
        // not in the slab.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        dst
    }

    fn protect(addr: *const u8, len: usize, prot: Protection) {
        // SAFETY: whole pages of our allocation that nothing refers to.
        unsafe { region::protect(addr, len, prot) }.expect("region::protect");
    }
}

impl Contender for RegionSlab {
    fn name(&self) -> &'static str {
        "region"
    }

    fn security(&self) -> Security {
        Security::Flip
    }

    fn prepare(&mut self, layout: Layout) {
        self.slots.reset(layout);
        self.slab = Some(
            region::alloc(self.slots.slab_bytes(), Protection::READ_WRITE).expect("region::alloc"),
        );
    }

    fn finish(&mut self) {
        self.slab = None;
    }

    fn init(&mut self, code: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let dst = self.write(offset, code);
        make_coherent(dst.addr(), code.len());
        Self::protect(dst, code.len(), Protection::READ_EXECUTE);
        Token {
            exec: dst.expose_provenance(),
            rodata: 0,
            len: page_ceil(code.len()),
            id: slot,
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let code_len = page_ceil(code.len());
        let dst = self.write(offset, code);
        let data = self.write(offset + code_len, rodata);
        make_coherent(dst.addr(), code.len());
        Self::protect(dst, code.len(), Protection::READ_EXECUTE);
        Self::protect(data, rodata.len(), Protection::READ);
        noop_action(&[]).expect("finalize action");
        Token {
            exec: dst.expose_provenance(),
            rodata: data.expose_provenance(),
            len: code_len + page_ceil(rodata.len()),
            id: slot,
        }
    }

    fn deinit(&mut self, token: Token) {
        let addr: *const u8 = ptr::with_exposed_provenance(token.exec);
        Self::protect(addr, token.len, Protection::READ_WRITE);
        self.slots.put(token.id);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        noop_action(&[]).expect("dealloc action");
        self.deinit(token);
    }
}
