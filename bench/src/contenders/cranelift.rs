//! P3: `cranelift-jit` 0.135.8's memory providers. They have no per-allocation free, so one
//! operation is what a one-function module costs: `allocate` + write + `finalize` + call +
//! `free_memory`. `ArenaMemoryProvider` cannot be reused after `free_memory` (it unmaps its
//! reservation), so each operation also creates one (`new_with_size`); a
//! `SystemMemoryProvider` is reused. Live regions each own a provider.
//!
//! # Safety
//!
//! Copies into memory a provider just allocated (read-write until `finalize`), and calls
//! `free_memory` only once nothing runs in the provider's memory.
#![expect(unsafe_code, reason = "free_memory is unsafe; copies into JIT memory")]

use std::ptr;

use cranelift_jit::{
    ArenaMemoryProvider, BranchProtection, JITMemoryKind, JITMemoryProvider, SystemMemoryProvider,
};

use super::{page_ceil, Contender, Layout, Security, Token};
use crate::blob::noop_action;

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Arena,
    System,
}

/// One provider, unboxed so that the bench adds no allocation of its own.
enum Any {
    Arena(ArenaMemoryProvider),
    System(SystemMemoryProvider),
}

impl Any {
    fn get(&mut self) -> &mut dyn JITMemoryProvider {
        match self {
            Self::Arena(p) => p,
            Self::System(p) => p,
        }
    }
}

/// Providers of live regions by slot, plus the free slots.
pub(crate) struct Cranelift {
    kind: Provider,
    live: Vec<Option<Any>>,
    spare: Vec<Any>,
    free: Vec<usize>,
}

impl Cranelift {
    pub(crate) fn new(kind: Provider) -> Self {
        Self {
            kind,
            live: Vec::new(),
            spare: Vec::new(),
            free: Vec::new(),
        }
    }

    /// A provider able to hold `bytes` bytes: a new arena of that size, or a reused system
    /// provider.
    fn provider(&mut self, bytes: usize) -> Any {
        match self.kind {
            Provider::Arena => Any::Arena(
                ArenaMemoryProvider::new_with_size(bytes).expect("ArenaMemoryProvider::new"),
            ),
            Provider::System => self
                .spare
                .pop()
                .unwrap_or_else(|| Any::System(SystemMemoryProvider::new())),
        }
    }

    /// Allocates `bytes` of `kind` in `provider` and copies them there.
    fn place(provider: &mut dyn JITMemoryProvider, bytes: &[u8], kind: JITMemoryKind) -> usize {
        let dst = provider
            .allocate(bytes.len(), 16, kind)
            .expect("JITMemoryProvider::allocate");
        // SAFETY: `dst` is `bytes.len()` fresh, writable bytes (not finalized yet).
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        dst.expose_provenance()
    }

    fn keep(&mut self, provider: Any) -> usize {
        let slot = self.free.pop().expect("workload exceeded its layout");
        self.live[slot] = Some(provider);
        slot
    }

    fn free(&mut self, slot: usize) {
        let mut provider = self.live[slot].take().expect("live provider");
        // SAFETY: the provider's code is not running and nothing points into its memory.
        unsafe { provider.get().free_memory() };
        if self.kind == Provider::System {
            self.spare.push(provider);
        }
        self.free.push(slot);
    }
}

impl Contender for Cranelift {
    fn name(&self) -> &'static str {
        match self.kind {
            Provider::Arena => "cranelift-arena",
            Provider::System => "cranelift-system",
        }
    }

    fn security(&self) -> Security {
        Security::Flip
    }

    fn prepare(&mut self, layout: Layout) {
        self.live.clear();
        self.live.resize_with(layout.slots, || None);
        self.free.clear();
        self.free.extend((0..layout.slots).rev());
        self.spare.reserve(layout.slots);
    }

    fn finish(&mut self) {}

    fn init(&mut self, code: &[u8]) -> Token {
        let mut provider = self.provider(page_ceil(code.len()));
        let exec = Self::place(provider.get(), code, JITMemoryKind::Executable);
        provider
            .get()
            .finalize(BranchProtection::None)
            .expect("JITMemoryProvider::finalize");
        Token {
            exec,
            rodata: 0,
            len: page_ceil(code.len()),
            id: self.keep(provider),
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let mut provider = self.provider(page_ceil(code.len()) + page_ceil(rodata.len()));
        let exec = Self::place(provider.get(), code, JITMemoryKind::Executable);
        let data = Self::place(provider.get(), rodata, JITMemoryKind::ReadOnly);
        provider
            .get()
            .finalize(BranchProtection::None)
            .expect("JITMemoryProvider::finalize");
        noop_action(&[]).expect("finalize action");
        Token {
            exec,
            rodata: data,
            len: 0,
            id: self.keep(provider),
        }
    }

    fn deinit(&mut self, token: Token) {
        self.free(token.id);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        noop_action(&[]).expect("dealloc action");
        self.free(token.id);
    }
}
