//! M: mapcore-std's `StdJitMap` (growable tables) on the flip host (`LibcHost`), with
//! `DiscardPolicy::Retain` (no decommit: the same two `mprotect`s as the floor) and
//! `DiscardPolicy::Discard` (plus one `madvise`, like the decommitting floor), and on the
//! dual-mapped host (`DualMappedHost`: reuse of the same layout makes no system call under
//! Retain; Discard punches the file and makes freed code non-executable). The bench places regions in fixed slots
//! of one reserved slab, as a JIT linker would; batches use `deinitialize_multiple`.

use mapcore_std::{
    Action, ActionPair, Config, DiscardPolicy, DualMappedHost, InitRequest, LibcHost, Prot,
    Segment, StdHost, StdJitMap,
};

use super::{page_ceil, Contender, Layout, Security, Slots, Token};
use crate::blob::noop_action;

/// A `StdJitMap` with one slab per workload.
#[derive(Debug)]
pub(crate) struct Mapcore {
    policy: DiscardPolicy,
    security: Security,
    map: StdJitMap,
    base: usize,
    slots: Slots,
    keys: Vec<usize>,
    actions: [ActionPair; 1],
}

/// A map on the flip host (`Security::Flip`) or the dual-mapped one, with `policy`.
pub(crate) fn new_map(security: Security, policy: DiscardPolicy) -> StdJitMap {
    let host: StdHost = match security {
        Security::Flip => LibcHost::new().into(),
        Security::Dual => DualMappedHost::new().into(),
    };
    let config = Config {
        discard: policy,
        ..Config::DEFAULT
    };
    StdJitMap::with_config(host, config)
}

/// The contender's name for a map of `security` and `policy`.
pub(crate) fn name(security: Security, policy: DiscardPolicy) -> &'static str {
    match (security, policy) {
        (Security::Flip, DiscardPolicy::Retain) => "mapcore-retain",
        (Security::Flip, DiscardPolicy::Discard) => "mapcore-discard",
        (Security::Dual, DiscardPolicy::Retain) => "mapcore-dual",
        (Security::Dual, DiscardPolicy::Discard) => "mapcore-dual-discard",
    }
}

impl Mapcore {
    /// A contender on the flip host (`Security::Flip`) or the dual-mapped one.
    pub(crate) fn new(security: Security, policy: DiscardPolicy) -> Self {
        let noop = Action::new(noop_action, &[]).expect("no arguments");
        Self {
            policy,
            security,
            map: new_map(security, policy),
            base: 0,
            slots: Slots::default(),
            keys: Vec::new(),
            actions: [ActionPair::new(noop.clone(), noop)],
        }
    }
}

impl Contender for Mapcore {
    fn name(&self) -> &'static str {
        name(self.security, self.policy)
    }

    fn security(&self) -> Security {
        self.security
    }

    fn prepare(&mut self, layout: Layout) {
        self.slots.reset(layout);
        self.keys = Vec::with_capacity(layout.slots);
        self.base = self.map.reserve(self.slots.slab_bytes()).expect("reserve");
    }

    fn finish(&mut self) {
        self.map.release(self.base).expect("release");
    }

    fn init(&mut self, code: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let addr = self.base + offset;
        let segments = [Segment::new(Prot::READ_EXEC, addr, code.len(), code)];
        let key = self
            .map
            .initialize(&InitRequest::new(&segments, &[]))
            .expect("initialize");
        Token {
            exec: key,
            rodata: 0,
            len: page_ceil(code.len()),
            id: slot,
        }
    }

    fn init_with_rodata(&mut self, code: &[u8], rodata: &[u8]) -> Token {
        let (slot, offset) = self.slots.take();
        let addr = self.base + offset;
        let data = addr + page_ceil(code.len());
        let segments = [
            Segment::new(Prot::READ_EXEC, addr, code.len(), code),
            Segment::new(Prot::READ, data, rodata.len(), rodata),
        ];
        let key = self
            .map
            .initialize(&InitRequest::new(&segments, &self.actions))
            .expect("initialize");
        Token {
            exec: key,
            rodata: data,
            len: page_ceil(code.len()) + page_ceil(rodata.len()),
            id: slot,
        }
    }

    fn deinit(&mut self, token: Token) {
        self.map.deinitialize(token.exec).expect("deinitialize");
        self.slots.put(token.id);
    }

    fn deinit_with_rodata(&mut self, token: Token) {
        self.deinit(token);
    }

    fn deinit_batch(&mut self, tokens: &[Token]) {
        self.keys.clear();
        self.keys.extend(tokens.iter().map(|t| t.exec));
        self.map
            .deinitialize_multiple(&self.keys, |index, error| {
                panic!("deinitialize_multiple entry {index}: {error}")
            })
            .expect("deinitialize_multiple");
        for token in tokens {
            self.slots.put(token.id);
        }
    }
}
