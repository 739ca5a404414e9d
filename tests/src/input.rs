//! Structured fuzz input: small fields reduced with `%` (mimalloc style) and resolved against
//! the model's current state, so that most operations are meaningful: addresses are slab bases
//! and region keys plus or minus whole pages, with occasional misalignment.

use arbitrary::Arbitrary;
use mapcore::{HostOp, Prot};

use crate::model::{ActSpec, FaultPlan, InitM, Model, PairM, SegM};

/// Most operations one input runs; the rest is ignored.
pub const MAX_OPS: usize = 48;
/// Most segments of a generated request (beyond the over-capacity case).
pub const MAX_SEGS: usize = 5;
/// Most action pairs of a generated request (beyond the over-capacity case).
pub const MAX_PAIRS: usize = 4;
/// Most entries of a generated batch: long enough that the map cannot handle every batch as
/// one group of entries sharing host calls (its groups are bounded: it does not allocate).
pub const MAX_BATCH: usize = 20;

/// The map's configuration, the host's page size and capabilities, the storage.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setup {
    /// Page size selector.
    pub page: u8,
    /// Bit 0: retain policy; bit 1: allow W+X; bits 2-3 both set: host cannot discard; bits 4-5
    /// both set: host cannot reuse executable pages; bit 6: growable storage; bit 7: the
    /// host writes through an alias (lazy protection; the recording host only, a real host
    /// says what it is).
    pub flags: u8,
    /// Maximum reservation selector.
    pub max_pages: u8,
}

impl Setup {
    /// Host page size: mostly 64 (the recording host stores byte by byte, so small pages
    /// make runs fast), sometimes 256, rarely 4096.
    #[must_use]
    pub fn page_size(&self) -> usize {
        match self.page % 16 {
            0..=9 => 64,
            10..=14 => 256,
            _ => 4096,
        }
    }

    /// `DiscardPolicy::Retain`.
    #[must_use]
    pub fn retain(&self) -> bool {
        self.flags & 1 != 0
    }

    /// `Config::allow_write_exec`.
    #[must_use]
    pub fn allow_write_exec(&self) -> bool {
        self.flags & 2 != 0
    }

    /// `Capabilities::discard`.
    #[must_use]
    pub fn host_discards(&self) -> bool {
        self.flags & 0x0c != 0x0c
    }

    /// `Capabilities::reuse_executable`.
    #[must_use]
    pub fn reuse_exec(&self) -> bool {
        self.flags & 0x30 != 0x30
    }

    /// `Capabilities::writes_through_alias`.
    #[must_use]
    pub fn writes_through_alias(&self) -> bool {
        self.flags & 0x80 != 0
    }

    /// Growable instead of fixed storage.
    #[must_use]
    pub fn growable(&self) -> bool {
        self.flags & 0x40 != 0
    }

    /// `Config::max_reservation`: 8 to 39 pages of `page_size`.
    #[must_use]
    pub fn max_reservation(&self, page_size: usize) -> usize {
        (usize::from(self.max_pages % 32) + 8) * page_size
    }
}

/// A reservation size.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    /// Which kind of size.
    pub kind: u8,
    /// A small number.
    pub n: u8,
}

impl SizeSpec {
    /// The size in bytes.
    #[must_use]
    pub fn resolve(&self, page: usize, max: usize) -> usize {
        let pages = usize::from(self.n % 16) + 1;
        match self.kind % 8 {
            0..=4 => pages * page,
            5 => 0,
            6 => pages * page + 1 + usize::from(self.n) % (page - 1),
            _ => match self.n % 4 {
                0 => usize::MAX & !(page - 1),
                1 => (max & !(page - 1)) + page,
                2 => max & !(page - 1),
                _ => 1 << 47,
            },
        }
    }
}

/// Where and what one segment is.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegSpec {
    /// Which base: a live slab, a live region's key, right after the previous segment, a
    /// released slab, or a weird absolute address.
    pub place: u8,
    /// Page offset from that base.
    pub page: i8,
    /// Size selector.
    pub size: u8,
    /// Misalignment (rare).
    pub extra: u8,
    /// Protection bits and lifetime.
    pub group: u8,
    /// Content selector: length around the size edge, copied or in place.
    pub content: u8,
}

/// A finalize/dealloc pair: each absent, succeeding or failing.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairSpec {
    /// Finalize selector.
    pub finalize: u8,
    /// Dealloc selector.
    pub dealloc: u8,
}

/// An initialize request.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct InitSpec {
    /// Segments (at most [`MAX_SEGS`] used).
    pub segs: Vec<SegSpec>,
    /// Pairs (at most [`MAX_PAIRS`] used).
    pub pairs: Vec<PairSpec>,
    /// 0xff: pad to one more segment than allowed; 0xfe: one more pair than allowed;
    /// otherwise a multiple of 4 leaves the request wild, anything else makes it tame.
    pub over: u8,
}

impl InitSpec {
    /// A tame request is mostly valid: no misalignment, no content past its segment, no
    /// overflowing size, no W+X unless asked twice, at least one Standard segment. Wild ones
    /// are what the bytes say.
    #[must_use]
    pub fn tame(&self) -> bool {
        !self.over.is_multiple_of(4)
    }
}

/// An address for deinitialize or release.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrSpec {
    /// Which kind of address.
    pub kind: u8,
    /// Which one of that kind.
    pub pick: u8,
    /// Page offset, for interior and neighbouring addresses.
    pub off: i8,
}

/// Faults injected into one operation.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None.
    None,
    /// Fallible call `k % 12` fails.
    Nth {
        /// Call index.
        k: u8,
        /// Errno selector.
        errno: u8,
    },
    /// Two fallible calls fail (e.g. a protect and the protect of its rollback).
    Two {
        /// First call index.
        k1: u8,
        /// Second call index.
        k2: u8,
        /// Errno selector.
        errno: u8,
    },
    /// Every call of one kind fails (protect, discard, release, flush, reserve).
    Op {
        /// Op selector.
        op: u8,
        /// Errno selector.
        errno: u8,
    },
    /// One call fails, and every call of one kind.
    NthAndOp {
        /// Call index.
        k: u8,
        /// Op selector.
        op: u8,
        /// Errno selector.
        errno: u8,
    },
}

fn errno(sel: u8) -> i32 {
    [12, 13, 22][usize::from(sel % 3)]
}

fn host_op(sel: u8) -> HostOp {
    [
        HostOp::Protect,
        HostOp::Discard,
        HostOp::Release,
        HostOp::FlushIcache,
        HostOp::Reserve,
    ][usize::from(sel % 5)]
}

impl Fault {
    /// The fault plan.
    #[must_use]
    pub fn plan(&self) -> FaultPlan {
        let nth = |k: u8| u64::from(k % 12);
        match *self {
            Self::None => FaultPlan::default(),
            Self::Nth { k, errno: e } => FaultPlan {
                nth: vec![(nth(k), errno(e))],
                ops: vec![],
            },
            Self::Two { k1, k2, errno: e } => FaultPlan {
                nth: vec![(nth(k1), errno(e)), (nth(k2), errno(e))],
                ops: vec![],
            },
            Self::Op { op, errno: e } => FaultPlan {
                nth: vec![],
                ops: vec![(host_op(op), errno(e))],
            },
            Self::NthAndOp { k, op, errno: e } => FaultPlan {
                nth: vec![(nth(k), errno(e))],
                ops: vec![(host_op(op), errno(e))],
            },
        }
    }
}

/// One operation of a fuzz input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `reserve`.
    Reserve {
        /// Size.
        size: SizeSpec,
        /// Faults.
        fault: Fault,
    },
    /// `initialize`.
    Initialize {
        /// Request.
        req: InitSpec,
        /// Faults.
        fault: Fault,
    },
    /// `deinitialize`.
    Deinitialize {
        /// Key.
        key: AddrSpec,
        /// Faults.
        fault: Fault,
    },
    /// `deinitialize_multiple`.
    DeinitializeMultiple {
        /// Keys (at most [`MAX_BATCH`] used).
        keys: Vec<AddrSpec>,
        /// Faults.
        fault: Fault,
    },
    /// `release`.
    Release {
        /// Base.
        base: AddrSpec,
        /// Faults.
        fault: Fault,
    },
    /// `release_multiple`.
    ReleaseMultiple {
        /// Bases (at most [`MAX_BATCH`] used).
        bases: Vec<AddrSpec>,
        /// Faults.
        fault: Fault,
    },
    /// `shutdown`.
    Shutdown {
        /// Faults.
        fault: Fault,
    },
}

impl Op {
    /// The op's fault plan.
    #[must_use]
    pub fn fault(&self) -> Fault {
        match self {
            Self::Reserve { fault, .. }
            | Self::Initialize { fault, .. }
            | Self::Deinitialize { fault, .. }
            | Self::DeinitializeMultiple { fault, .. }
            | Self::Release { fault, .. }
            | Self::ReleaseMultiple { fault, .. }
            | Self::Shutdown { fault } => *fault,
        }
    }
}

/// Input of the `core_ops` target.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct CoreInput {
    /// Configuration.
    pub setup: Setup,
    /// Operations (at most [`MAX_OPS`] run).
    pub ops: Vec<Op>,
}

/// One step after the prelude of a `batch_ops` input.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum BatchStep {
    /// A deinitialize batch.
    Deinitialize {
        /// Keys.
        keys: Vec<AddrSpec>,
        /// Faults.
        fault: Fault,
    },
    /// A release batch.
    Release {
        /// Bases.
        bases: Vec<AddrSpec>,
        /// Faults.
        fault: Fault,
    },
    /// One more region.
    Initialize(InitSpec),
    /// One more slab.
    Reserve(SizeSpec),
}

/// Input of the `batch_ops` target: two or three slabs and some regions, then batches with
/// duplicates, unknown, interior and mixed entries.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct BatchInput {
    /// Configuration.
    pub setup: Setup,
    /// Slab sizes selectors (pages 4 to 19 each; the third is used when non-zero).
    pub slabs: [u8; 3],
    /// Regions made before the batches (no faults).
    pub regions: Vec<InitSpec>,
    /// The batches.
    pub steps: Vec<BatchStep>,
}

impl BatchInput {
    /// The same input as a `core_ops` operation list.
    #[must_use]
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        let count = if self.slabs[2] == 0 { 2 } else { 3 };
        for &n in &self.slabs[..count] {
            ops.push(Op::Reserve {
                size: SizeSpec {
                    kind: 0,
                    n: n % 16 + 3,
                },
                fault: Fault::None,
            });
        }
        for req in self.regions.iter().take(12) {
            // The prepared regions are tame: the batches need live regions to work on.
            let req = InitSpec {
                over: 1,
                ..req.clone()
            };
            ops.push(Op::Initialize {
                req,
                fault: Fault::None,
            });
        }
        for step in &self.steps {
            ops.push(match step {
                BatchStep::Deinitialize { keys, fault } => Op::DeinitializeMultiple {
                    keys: keys.clone(),
                    fault: *fault,
                },
                BatchStep::Release { bases, fault } => Op::ReleaseMultiple {
                    bases: bases.clone(),
                    fault: *fault,
                },
                BatchStep::Initialize(req) => Op::Initialize {
                    req: req.clone(),
                    fault: Fault::None,
                },
                BatchStep::Reserve(size) => Op::Reserve {
                    size: *size,
                    fault: Fault::None,
                },
            });
        }
        ops.truncate(MAX_OPS);
        ops
    }
}

/// An operation with concrete addresses, sizes and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concrete {
    /// `reserve(size)`.
    Reserve(usize),
    /// `initialize(request)`.
    Initialize(InitM),
    /// `deinitialize(key)`.
    Deinitialize(usize),
    /// `deinitialize_multiple(keys)`.
    DeinitializeMultiple(Vec<usize>),
    /// `release(base)`.
    Release(usize),
    /// `release_multiple(bases)`.
    ReleaseMultiple(Vec<usize>),
    /// `shutdown()`.
    Shutdown,
}

impl Concrete {
    /// The operation's name, for the outcome tally.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reserve(_) => "reserve",
            Self::Initialize(_) => "initialize",
            Self::Deinitialize(_) => "deinitialize",
            Self::DeinitializeMultiple(_) => "deinitialize_multiple",
            Self::Release(_) => "release",
            Self::ReleaseMultiple(_) => "release_multiple",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Hands out unique action tags.
#[derive(Debug, Default)]
pub struct Tags(u32);

impl Tags {
    fn next(&mut self, sel: u8) -> Option<ActSpec> {
        match sel % 4 {
            0 => None,
            s => {
                self.0 += 1;
                Some(ActSpec {
                    tag: self.0,
                    fail: s == 3,
                })
            }
        }
    }
}

fn weird(page: usize, pick: u8) -> usize {
    let top = usize::MAX & !(page - 1);
    [0, top, page, top - 4 * page, 1, usize::MAX][usize::from(pick) % 6]
}

/// Resolves addresses against the model.
struct Resolver<'m> {
    model: &'m Model,
    page: usize,
}

impl Resolver<'_> {
    fn live_slabs(&self) -> Vec<usize> {
        self.model.slabs().keys().copied().collect()
    }

    fn pick<T: Copy>(items: &[T], pick: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[usize::from(pick) % items.len()])
    }

    fn offset(&self, base: usize, pages: i8) -> usize {
        base.wrapping_add_signed(isize::from(pages).wrapping_mul(self.page as isize))
    }

    fn any_base(&self, pick: u8) -> usize {
        Self::pick(&self.live_slabs(), pick)
            .or_else(|| Self::pick(&self.model.slab_history, pick).map(|s| s.0))
            .unwrap_or(0x10_0000)
    }

    fn any_key(&self, pick: u8) -> Option<usize> {
        let live: Vec<usize> = self.model.regions().keys().copied().collect();
        Self::pick(&live, pick).or_else(|| Self::pick(&self.model.key_history, pick))
    }

    fn key(&self, spec: AddrSpec, earlier: &[usize]) -> usize {
        let fallback = || self.any_base(spec.pick);
        match spec.kind % 8 {
            0..=2 => self.any_key(spec.pick).unwrap_or_else(fallback),
            3 => Self::pick(&self.model.key_history, spec.pick).unwrap_or_else(fallback),
            4 => self.offset(
                self.any_key(spec.pick).unwrap_or_else(fallback),
                spec.off % 4,
            ),
            5 => self.offset(self.any_base(spec.pick), spec.off % 24),
            6 => Self::pick(earlier, spec.pick)
                .unwrap_or_else(|| self.any_key(spec.pick).unwrap_or_else(fallback)),
            _ => match spec.off % 3 {
                0 => weird(self.page, spec.pick),
                _ => self
                    .any_key(spec.pick)
                    .unwrap_or_else(fallback)
                    .wrapping_add(1 + usize::from(spec.pick) % (self.page - 1)),
            },
        }
    }

    fn base(&self, spec: AddrSpec, earlier: &[usize]) -> usize {
        match spec.kind % 8 {
            0..=3 => self.any_base(spec.pick),
            4 => Self::pick(&self.model.slab_history, spec.pick)
                .map_or_else(|| self.any_base(spec.pick), |s| s.0),
            5 => self.offset(self.any_base(spec.pick), spec.off % 24),
            6 => Self::pick(earlier, spec.pick).unwrap_or_else(|| self.any_base(spec.pick)),
            _ => match spec.off % 3 {
                0 => weird(self.page, spec.pick),
                _ => self
                    .any_base(spec.pick)
                    .wrapping_add(1 + usize::from(spec.pick) % (self.page - 1)),
            },
        }
    }

    fn size(&self, spec: &SegSpec, addr: usize) -> usize {
        let page = self.page;
        let k = 1 + usize::from(spec.size >> 3) % 4;
        match spec.size % 8 {
            0 => 0,
            1..=3 => usize::from(spec.size % 8) * page,
            4 => 1 + usize::from(spec.size >> 3) % (page - 1),
            5 => k * page + 1,
            6 => k * page - 1,
            _ => match (spec.size >> 3) % 4 {
                0 => usize::MAX,
                1 => usize::MAX - addr,
                2 => 64 * page,
                _ => usize::MAX / 2,
            },
        }
    }

    fn request(&self, spec: &InitSpec, tags: &mut Tags) -> InitM {
        let page = self.page;
        let tame = spec.tame();
        let mut segs: Vec<SegM> = Vec::new();
        let mut prev_end: Option<usize> = None;
        for s in spec.segs.iter().take(MAX_SEGS) {
            let mut addr = match s.place % 8 {
                0..=3 => self.offset(self.any_base(s.place >> 3), s.page % 24),
                // Next to or inside the pages of a live region: adjacency and interleaving.
                4 => match self.any_key(s.place >> 3) {
                    Some(key) => self.offset(key, s.page % 4),
                    None => self.offset(self.any_base(s.place >> 3), s.page % 24),
                },
                5 => match prev_end {
                    Some(end) => end.wrapping_add(usize::from(s.page.unsigned_abs() % 3) * page),
                    None => self.any_base(s.place >> 3),
                },
                6 => {
                    let released = Self::pick(&self.model.slab_history, s.place >> 3).map(|h| h.0);
                    self.offset(released.unwrap_or(0x10_0000), s.page % 24)
                }
                _ => weird(page, s.place >> 3),
            };
            if s.extra & 0xe0 == 0xe0 && !tame {
                addr = addr.wrapping_add(1 + usize::from(s.extra) % (page - 1));
            }
            let mut size = self.size(s, addr);
            if tame && s.size % 8 == 7 {
                size = usize::from(s.size >> 6) * page;
            }
            let small = usize::from(s.content >> 3) % 32;
            let (len, in_place) = match s.content % 8 {
                0 => (0, false),
                1 => (size, false),
                2 => (size.saturating_sub(1), false),
                3 => (size.saturating_add(1), false),
                4 => (small, false),
                5 => (size, true),
                6 => (small, true),
                _ => (size.saturating_add(1), true),
            };
            let mut len = if len > (6 * page + 1).min(4097) {
                small
            } else {
                len
            };
            let mut prot = Prot::from_bits(s.group & 7).unwrap_or(Prot::NONE);
            if tame {
                len = len.min(size);
                if prot.is_write_exec() && s.group & 0x40 == 0 {
                    prot = prot & Prot::READ_EXEC;
                }
            }
            let finalize = s.group & 0x18 == 0x18;
            let seed = s.content ^ s.group ^ s.page as u8;
            prev_end = addr
                .checked_add(size)
                .and_then(|e| e.checked_add(page - 1))
                .map(|e| e & !(page - 1));
            segs.push(SegM {
                prot,
                finalize,
                addr,
                size,
                content_len: len,
                seed,
                in_place,
            });
        }
        if tame {
            let all_finalize = segs.iter().all(|s| s.finalize);
            match segs.first_mut() {
                Some(first) if all_finalize => first.finalize = false,
                Some(_) => {}
                None => segs.push(SegM {
                    prot: Prot::READ,
                    finalize: false,
                    addr: self.any_base(spec.over),
                    size: page,
                    content_len: 1,
                    seed: spec.over,
                    in_place: false,
                }),
            }
        }
        let mut pairs: Vec<PairM> = spec
            .pairs
            .iter()
            .take(MAX_PAIRS)
            .map(|p| PairM {
                finalize: tags.next(p.finalize),
                dealloc: tags.next(p.dealloc),
            })
            .collect();
        match spec.over {
            0xff => {
                let filler = segs.first().copied().unwrap_or(SegM {
                    prot: Prot::READ,
                    finalize: false,
                    addr: 0,
                    size: 0,
                    content_len: 0,
                    seed: 0,
                    in_place: false,
                });
                segs.resize(mapcore::MAX_SEGMENTS + 1, filler);
            }
            0xfe => pairs.resize(mapcore::MAX_ACTION_PAIRS + 1, PairM::default()),
            _ => {}
        }
        InitM { segs, pairs }
    }
}

/// Resolves `op` against the model's current state.
#[must_use]
pub fn resolve(op: &Op, model: &Model, tags: &mut Tags) -> Concrete {
    let page = model.cfg.page_size;
    let r = Resolver { model, page };
    match op {
        Op::Reserve { size, .. } => {
            Concrete::Reserve(size.resolve(page, model.cfg.max_reservation))
        }
        Op::Initialize { req, .. } => Concrete::Initialize(r.request(req, tags)),
        Op::Deinitialize { key, .. } => Concrete::Deinitialize(r.key(*key, &[])),
        Op::DeinitializeMultiple { keys, .. } => {
            let mut out = Vec::new();
            for k in keys.iter().take(MAX_BATCH) {
                let addr = r.key(*k, &out);
                out.push(addr);
            }
            Concrete::DeinitializeMultiple(out)
        }
        Op::Release { base, .. } => Concrete::Release(r.base(*base, &[])),
        Op::ReleaseMultiple { bases, .. } => {
            let mut out = Vec::new();
            for b in bases.iter().take(MAX_BATCH) {
                let addr = r.base(*b, &out);
                out.push(addr);
            }
            Concrete::ReleaseMultiple(out)
        }
        Op::Shutdown { .. } => Concrete::Shutdown,
    }
}

/// The bytes that decode to an input, as `arbitrary` 1.x reads them (what libfuzzer-sys hands
/// `fuzz_target!`), so that directed scenarios can be written as structured inputs and become
/// fuzz seeds. `decode(encode(x)) == x` for every input (checked in `tests/tests/replay.rs`).
pub mod encode {
    use super::{
        AddrSpec, BatchInput, BatchStep, CoreInput, Fault, InitSpec, Op, PairSpec, SegSpec, Setup,
        SizeSpec,
    };

    /// `derive(Arbitrary)` picks variant `(u32 * count) >> 32` of an enum: the smallest `u32`
    /// that picks `index`.
    fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
        let tag = (index << 32).div_ceil(count);
        out.extend_from_slice(&u32::try_from(tag).unwrap_or(u32::MAX).to_le_bytes());
    }

    /// A collection: each element after a `true` byte, then a `false` one (not needed when it
    /// takes the rest of the input).
    fn list<T>(out: &mut Vec<u8>, items: &[T], rest: bool, item: impl Fn(&mut Vec<u8>, &T)) {
        for x in items {
            out.push(1);
            item(out, x);
        }
        if !rest {
            out.push(0);
        }
    }

    fn setup(out: &mut Vec<u8>, s: &Setup) {
        out.extend_from_slice(&[s.page, s.flags, s.max_pages]);
    }

    fn size(out: &mut Vec<u8>, s: &SizeSpec) {
        out.extend_from_slice(&[s.kind, s.n]);
    }

    fn addr(out: &mut Vec<u8>, a: &AddrSpec) {
        out.extend_from_slice(&[a.kind, a.pick, a.off.to_le_bytes()[0]]);
    }

    fn seg(out: &mut Vec<u8>, s: &SegSpec) {
        out.extend_from_slice(&[
            s.place,
            s.page.to_le_bytes()[0],
            s.size,
            s.extra,
            s.group,
            s.content,
        ]);
    }

    fn pair(out: &mut Vec<u8>, p: &PairSpec) {
        out.extend_from_slice(&[p.finalize, p.dealloc]);
    }

    fn init(out: &mut Vec<u8>, r: &InitSpec) {
        list(out, &r.segs, false, seg);
        list(out, &r.pairs, false, pair);
        out.push(r.over);
    }

    fn fault(out: &mut Vec<u8>, f: &Fault) {
        match *f {
            Fault::None => variant(out, 0, 5),
            Fault::Nth { k, errno } => {
                variant(out, 1, 5);
                out.extend_from_slice(&[k, errno]);
            }
            Fault::Two { k1, k2, errno } => {
                variant(out, 2, 5);
                out.extend_from_slice(&[k1, k2, errno]);
            }
            Fault::Op { op, errno } => {
                variant(out, 3, 5);
                out.extend_from_slice(&[op, errno]);
            }
            Fault::NthAndOp { k, op, errno } => {
                variant(out, 4, 5);
                out.extend_from_slice(&[k, op, errno]);
            }
        }
    }

    fn op(out: &mut Vec<u8>, o: &Op) {
        match o {
            Op::Reserve { size: s, fault: f } => {
                variant(out, 0, 7);
                size(out, s);
                fault(out, f);
            }
            Op::Initialize { req, fault: f } => {
                variant(out, 1, 7);
                init(out, req);
                fault(out, f);
            }
            Op::Deinitialize { key, fault: f } => {
                variant(out, 2, 7);
                addr(out, key);
                fault(out, f);
            }
            Op::DeinitializeMultiple { keys, fault: f } => {
                variant(out, 3, 7);
                list(out, keys, false, addr);
                fault(out, f);
            }
            Op::Release { base, fault: f } => {
                variant(out, 4, 7);
                addr(out, base);
                fault(out, f);
            }
            Op::ReleaseMultiple { bases, fault: f } => {
                variant(out, 5, 7);
                list(out, bases, false, addr);
                fault(out, f);
            }
            Op::Shutdown { fault: f } => {
                variant(out, 6, 7);
                fault(out, f);
            }
        }
    }

    fn step(out: &mut Vec<u8>, s: &BatchStep) {
        match s {
            BatchStep::Deinitialize { keys, fault: f } => {
                variant(out, 0, 4);
                list(out, keys, false, addr);
                fault(out, f);
            }
            BatchStep::Release { bases, fault: f } => {
                variant(out, 1, 4);
                list(out, bases, false, addr);
                fault(out, f);
            }
            BatchStep::Initialize(req) => {
                variant(out, 2, 4);
                init(out, req);
            }
            BatchStep::Reserve(s) => {
                variant(out, 3, 4);
                size(out, s);
            }
        }
    }

    /// A `core_ops` input.
    #[must_use]
    pub fn core(input: &CoreInput) -> Vec<u8> {
        let mut out = Vec::new();
        setup(&mut out, &input.setup);
        list(&mut out, &input.ops, true, op);
        out
    }

    /// A `batch_ops` input.
    #[must_use]
    pub fn batch(input: &BatchInput) -> Vec<u8> {
        let mut out = Vec::new();
        setup(&mut out, &input.setup);
        out.extend_from_slice(&input.slabs);
        list(&mut out, &input.regions, false, init);
        list(&mut out, &input.steps, true, step);
        out
    }
}
