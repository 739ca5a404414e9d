//! The reference model: what every operation of a [`JitMap`](mapcore::JitMap) must do, derived
//! from the API docs of [`JitMap`](mapcore::JitMap) (their `# Errors` sections above all),
//! with a different shape from the implementation.
//!
//! The implementation keeps sorted interval tables (slabs, keys, page spans). The model keeps
//! **one state per page** ([`PageState`]): free, live in a region (by key), quarantined, or left
//! behind in a slab whose unmap failed. Overlap, interior-address and containment questions
//! are answered page by page; host calls are predicted as maximal runs of pages (one protect
//! per maximal run of equal non-read-write protection, one reset per contiguous span inside a
//! slab, batches merge adjacent spans).
//!
//! The model also models the fault plan of the host ([`FaultPlan`]): "the k-th fallible call
//! fails" and "every call of this kind fails", so it predicts exactly which call fails and
//! everything that follows (rollback calls, quarantine, dealloc actions, the error).
//!
//! # Lazy protection (hosts that write through an alias)
//!
//! With [`ModelConfig::alias`] the host's writes reach every page whatever its protection,
//! and the map protects lazily. The rules the model follows, in its own terms:
//!
//! - A free page keeps the protection it was left at, and its old bytes are gone: zeros, or
//!   trap bytes over the bytes written where it was left executable and the bytes were not
//!   discarded (zeros elsewhere).
//! - What the map knows of a free page is its *record*: freeing a segment's pages records them
//!   with the protection they were left at, one record per segment; claiming pages takes
//!   them out of the records they were in (what is left of a record stays recorded, as pieces).
//!   A page without a record is read-write, unless its slab has *lost* a protection (below):
//!   then the map does not know it.
//! - Initialize protects a segment iff some page of it is not known to be at the segment's
//!   protection already; touching segments of equal protection that both need it share one
//!   protect. Then the icache flushes, as with any host.
//! - Freeing pages (deinitialize, rollback, Finalize pages) sends a page back to read-write
//!   only if its protection is in doubt (a rolled-back segment that initialize protected or
//!   meant to) or if it is executable and its bytes are discarded (zeros are no trap
//!   instructions); the others keep their protection. Runs of pages reset together hold
//!   only pages that go back, or only pages that do not; resetting one request's pages does
//!   the ones that go back first.
//! - A fixed span table counts the records among its entries. When initialize needs room it
//!   forgets whole records the claim does not touch, lowest address first, until what it
//!   reserves fits; if forgetting all of those is not enough, it forgets every record and
//!   the claim takes one entry a segment; if even that would not fit, it forgets nothing
//!   (`Model::evict`). Forgetting a record that was not read-write makes its slab lose a
//!   protection for good (until it is released).
//!
//! The rules apply to flip hosts too, where every free page is read-write: the records
//! exist, but nothing observable depends on them there.

use std::collections::{BTreeMap, BTreeSet};

use mapcore::{ActionError, Error, HostOp, Limit, Prot, MAX_ACTION_PAIRS, MAX_SEGMENTS};

/// How many consecutive entries of a deinitialize batch the map handles together at least
/// (the whole batch, if shorter), as the docs of `JitMap::deinitialize_multiple` promise; how
/// many more it handles together is its own choice.
pub const MERGED_ENTRIES: usize = 16;

/// Errors as the model predicts them: the host error is its errno value.
pub type MErr = Error<i32>;

/// What a free page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeBytes {
    /// Zeros: fresh from reserve, discarded, or zero-filled.
    Zero,
    /// Trap bytes ([`RecordingHost::TRAP_BYTE`](mapcore::testing::RecordingHost)) where code
    /// was written, zeros elsewhere: freed executable on an alias host that does not discard.
    Trap,
    /// Old bytes may remain (retain policy or a host that cannot discard, flip host).
    Stale,
}

/// What one page of a slab is, as far as the contract says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Free.
    Free {
        /// The protection it is at: read-write, unless the host writes through an alias.
        prot: Prot,
        /// What it holds.
        bytes: FreeBytes,
        /// The map's record of its protection (see the module docs), by record number.
        record: Option<u64>,
    },
    /// Part of the live region `key`, with the protection of its segment.
    Live {
        /// The region's key.
        key: usize,
        /// The segment's protection.
        prot: Prot,
    },
    /// Part of a region that an earlier entry of the current deinitialize batch group took
    /// out of service (only during a batch).
    Retiring {
        /// The region's key.
        key: usize,
        /// The segment's protection.
        prot: Prot,
    },
    /// Never handed out again until the slab is released; `prot` is known when the pages were
    /// deliberately kept (executable pages on a host that cannot reuse them), unknown after a
    /// failed reset.
    Quarantined {
        /// The protection, if known.
        prot: Option<Prot>,
    },
    /// A page of a slab whose unmap failed, that belonged to a region: the region is gone,
    /// the page keeps its protection and contents until the release is retried.
    Limbo {
        /// The protection it kept.
        prot: Prot,
        /// The map's record of it: the region's pages are recorded free.
        record: Option<u64>,
    },
}

impl PageState {
    /// Whether the page is taken in the sense of initialize's overlap check.
    fn occupied(self) -> bool {
        matches!(
            self,
            Self::Live { .. } | Self::Retiring { .. } | Self::Quarantined { .. }
        )
    }

    /// The record of a free page (or of a page of a slab whose unmap failed).
    fn record(self) -> Option<u64> {
        match self {
            Self::Free { record, .. } | Self::Limbo { record, .. } => record,
            _ => None,
        }
    }

    /// The protection the host must show for the page, if the model knows it.
    #[must_use]
    pub fn expected_prot(self) -> Option<Prot> {
        match self {
            Self::Free { prot, .. }
            | Self::Live { prot, .. }
            | Self::Retiring { prot, .. }
            | Self::Limbo { prot, .. } => Some(prot),
            Self::Quarantined { prot } => prot,
        }
    }
}

/// An action as the model knows it: its log tag and whether it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActSpec {
    /// Unique tag the action appends to the action log.
    pub tag: u32,
    /// Whether the action returns an error (code = tag).
    pub fail: bool,
}

/// A finalize/dealloc pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairM {
    /// The finalize action.
    pub finalize: Option<ActSpec>,
    /// The dealloc action.
    pub dealloc: Option<ActSpec>,
}

/// A segment of an initialize request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegM {
    /// Final protection.
    pub prot: Prot,
    /// Finalize lifetime.
    pub finalize: bool,
    /// Start address.
    pub addr: usize,
    /// Size in bytes.
    pub size: usize,
    /// Content length (copied or in place).
    pub content_len: usize,
    /// Seed of the content pattern ([`pattern`]).
    pub seed: u8,
    /// Content written in place before the call instead of copied.
    pub in_place: bool,
}

/// An initialize request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitM {
    /// Segments in request order.
    pub segs: Vec<SegM>,
    /// Action pairs in request order.
    pub pairs: Vec<PairM>,
}

/// The content byte `i` of a segment seeded `seed`: never zero, so stale bytes show.
#[must_use]
pub fn pattern(seed: u8, i: usize) -> u8 {
    ((((i as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8) ^ seed) | 1
}

/// A fallible host call as the model expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpCall {
    /// `reserve(size)` returning `base`.
    Reserve {
        /// Size.
        size: usize,
        /// Base returned on success.
        base: Option<usize>,
    },
    /// `release(base, size)`.
    Release {
        /// Base.
        base: usize,
        /// Size.
        size: usize,
    },
    /// `protect([start, end), prot)`.
    Protect {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
        /// New protection.
        prot: Prot,
    },
    /// `discard([start, end))`.
    Discard {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
    /// `flush_icache([start, end))`.
    Flush {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
}

/// A host call and whether it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallM {
    /// The call.
    pub call: ExpCall,
    /// Whether it returned `Ok`.
    pub ok: bool,
}

/// Faults to inject into one operation, in the recording host's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// `(k, errno)`: the k-th fallible call of the operation (from 0) fails; a later entry for
    /// the same k replaces an earlier one.
    pub nth: Vec<(u64, i32)>,
    /// `(op, errno)`: every call of `op` fails; the first entry for an op wins.
    pub ops: Vec<(HostOp, i32)>,
}

impl FaultPlan {
    /// Whether the plan injects nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nth.is_empty() && self.ops.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
struct FaultState {
    nth: BTreeMap<u64, i32>,
    ops: Vec<(HostOp, i32)>,
    counter: u64,
}

impl FaultState {
    fn new(plan: &FaultPlan) -> Self {
        let mut nth = BTreeMap::new();
        for &(k, e) in &plan.nth {
            nth.insert(k, e);
        }
        Self {
            nth,
            ops: plan.ops.clone(),
            counter: 0,
        }
    }

    fn next(&mut self, op: HostOp) -> Result<(), i32> {
        let index = self.counter;
        self.counter += 1;
        if let Some(e) = self.nth.remove(&index) {
            return Err(e);
        }
        match self.ops.iter().find(|(o, _)| *o == op) {
            Some(&(_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

/// Expected content of one Standard segment of a live region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Segment start.
    pub addr: usize,
    /// Content length; `[addr, addr + len)` holds [`pattern`]`(seed, i)`.
    pub len: usize,
    /// Pattern seed.
    pub seed: u8,
    /// End of the segment's last page; `[addr + len, end)` reads zero.
    pub end: usize,
}

/// A live region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionM {
    /// Base of its slab.
    pub slab: usize,
    /// Creation order.
    pub seq: u64,
    /// Its non-empty Standard segments `(start, end, prot)` in address order, page-rounded.
    pub spans: Vec<(usize, usize, Prot)>,
    /// Its dealloc actions in registration order.
    pub deallocs: Vec<ActSpec>,
    /// What its pages hold.
    pub fills: Vec<Fill>,
}

/// A slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlabM {
    /// Size in bytes.
    pub size: usize,
    /// Creation order.
    pub seq: u64,
    /// A release ran but the host could not unmap: only a retried release is accepted.
    pub failed: bool,
    /// A record that was not read-write was forgotten: pages without a record may be at any
    /// protection.
    pub lost: bool,
}

/// Model configuration: the map's `Config`, the host's capabilities, the storage capacities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    /// Host page size.
    pub page_size: usize,
    /// `DiscardPolicy::Discard` (else `Retain`).
    pub discard_policy: bool,
    /// `Capabilities::discard`.
    pub host_discards: bool,
    /// `Capabilities::reuse_executable`.
    pub reuse_exec: bool,
    /// `Config::allow_write_exec`.
    pub allow_write_exec: bool,
    /// `Config::max_reservation`.
    pub max_reservation: usize,
    /// `Capabilities::writes_through_alias`: lazy protection.
    pub alias: bool,
    /// Slab table capacity (`None`: growable).
    pub slabs: Option<usize>,
    /// Region table capacity.
    pub regions: Option<usize>,
    /// Page-span table capacity.
    pub spans: Option<usize>,
}

impl ModelConfig {
    /// Whether freed pages are discarded, so that free pages must read zero.
    #[must_use]
    pub fn discarding(&self) -> bool {
        self.discard_policy && self.host_discards
    }

    /// Whether freeing pages at `prot` sends them back to read-write; `in_doubt`: a
    /// rolled-back segment whose protection initialize changed or meant to.
    fn goes_back(&self, prot: Prot, in_doubt: bool) -> bool {
        if self.alias {
            in_doubt || (self.discarding() && prot.contains(Prot::EXEC))
        } else {
            prot != Prot::READ_WRITE
        }
    }

    /// What a page freed at `prot` holds afterwards (`left`: the protection it is left at).
    fn freed_bytes(&self, left: Prot) -> FreeBytes {
        if self.discarding() {
            FreeBytes::Zero
        } else if !self.alias {
            FreeBytes::Stale
        } else if left.contains(Prot::EXEC) {
            FreeBytes::Trap
        } else {
            FreeBytes::Zero
        }
    }
}

/// One pages of an initialize request.
#[derive(Debug, Clone, Copy)]
struct ReqPage {
    addr: usize,
    seg: usize,
    prot: Prot,
    finalize: bool,
    /// When freed: goes back to read-write ([`ModelConfig::goes_back`]).
    back: bool,
}

/// A maximal run of pages, with the first segment it covers (initialize) and whether some
/// page in it goes back to read-write when freed.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    prot: Prot,
    seg: usize,
    needs_protect: bool,
}

/// Groups address-sorted pages into maximal runs of consecutive pages; `same` says whether
/// two consecutive pages may share a run.
fn runs(pages: &[ReqPage], page: usize, same: impl Fn(&ReqPage, &ReqPage) -> bool) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut prev: Option<ReqPage> = None;
    for p in pages {
        let joins = prev.is_some_and(|q| q.addr + page == p.addr && same(&q, p));
        match out.last_mut() {
            Some(run) if joins => {
                run.end = p.addr + page;
                run.needs_protect |= p.back;
            }
            _ => out.push(Run {
                start: p.addr,
                end: p.addr + page,
                prot: p.prot,
                seg: p.seg,
                needs_protect: p.back,
            }),
        }
        prev = Some(*p);
    }
    out
}

/// A record of free pages (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Record {
    start: usize,
    end: usize,
    prot: Prot,
}

/// The entries initialize reserves room for to claim the pages `start..end`, given the records
/// reaching into them. The map reserves for the worst case without counting the records a
/// claim removes, except one: a single record that starts at or before the pages is reused
/// when it starts there and cut when it starts below (one piece kept below, one made above if
/// it reaches past them). Otherwise a new entry, plus one for the piece above the pages of a
/// record reaching past them. Only observable through which records a full fixed table
/// forgets ([`Model::evict`]).
fn room_for(records: &[Record], start: usize, end: usize) -> usize {
    let reached: Vec<&Record> = records
        .iter()
        .filter(|r| r.start < end && start < r.end)
        .collect();
    match reached.as_slice() {
        [] => 1,
        [only] if only.start <= start => {
            usize::from(only.start < start) + usize::from(only.end > end)
        }
        [.., last] => 1 + usize::from(last.end > end),
    }
}

/// One reset of a deinitialize batch: `(start, end, needs_protect, member regions)`.
type Reset = (usize, usize, bool, BTreeSet<usize>);

/// A region taken out of service by a deinitialize batch group.
#[derive(Debug)]
struct Retired {
    index: usize,
    region: RegionM,
    failures: usize,
    /// The errno of the first failed protect back over its pages.
    reset_error: Option<i32>,
}

/// The reference model of one map and its host.
#[derive(Debug, Clone)]
pub struct Model {
    /// Configuration.
    pub cfg: ModelConfig,
    slabs: BTreeMap<usize, SlabM>,
    pages: BTreeMap<usize, PageState>,
    regions: BTreeMap<usize, RegionM>,
    /// Quarantined page-span table entries `(slab, start, end)` (they count against the span
    /// capacity until the slab is unmapped).
    qentries: Vec<(usize, usize, usize)>,
    seq: u64,
    /// The number of the last record made.
    records: u64,
    faults: FaultState,
    /// Fallible host calls the current operation must make, in order.
    pub calls: Vec<CallM>,
    /// Action tags the current operation must log, in order.
    pub actions: Vec<u32>,
    /// Batch entries the current operation must report, `(index, error)`.
    pub reports: Vec<(usize, MErr)>,
    /// Other results the current operation may return instead of the predicted one
    /// (unspecified choices, see [`Model::initialize`]).
    pub alternatives: Vec<MErr>,
    /// Pages whose state the current operation changed, sorted and deduplicated by
    /// [`Model::end`] (in operation order, possibly repeated, before it).
    pub touched: Vec<usize>,
    /// Pages the current operation may write to or zero; sorted and deduplicated by
    /// [`Model::end`].
    pub writable: Vec<usize>,
    /// Slabs the current operation released (unmapped), `(base, size)`.
    pub released: Vec<(usize, usize)>,
    /// Every dealloc action registered by a successful initialize, ever.
    pub registered: Vec<u32>,
    /// Every key an initialize returned, ever, in order.
    pub key_history: Vec<usize>,
    /// Every slab ever reserved, `(base, size)`, in order.
    pub slab_history: Vec<(usize, usize)>,
}

impl Model {
    /// An empty map.
    #[must_use]
    pub fn new(cfg: ModelConfig) -> Self {
        Self {
            cfg,
            slabs: BTreeMap::new(),
            pages: BTreeMap::new(),
            regions: BTreeMap::new(),
            qentries: Vec::new(),
            seq: 0,
            records: 0,
            faults: FaultState::default(),
            calls: Vec::new(),
            actions: Vec::new(),
            reports: Vec::new(),
            alternatives: Vec::new(),
            touched: Vec::new(),
            writable: Vec::new(),
            released: Vec::new(),
            registered: Vec::new(),
            key_history: Vec::new(),
            slab_history: Vec::new(),
        }
    }

    /// Starts an operation with `faults` injected.
    pub fn begin(&mut self, faults: &FaultPlan) {
        self.faults = FaultState::new(faults);
        self.calls.clear();
        self.actions.clear();
        self.reports.clear();
        self.alternatives.clear();
        self.touched.clear();
        self.writable.clear();
        self.released.clear();
    }

    /// Ends an operation: sorts and deduplicates [`Model::touched`] and [`Model::writable`]
    /// (the buffers are reused from operation to operation, so this allocates nothing once
    /// they have grown).
    pub fn end(&mut self) {
        for v in [&mut self.touched, &mut self.writable] {
            v.sort_unstable();
            v.dedup();
        }
    }

    /// Whether the current operation may write to the page at `page` (after [`Model::end`]).
    #[must_use]
    pub fn may_write(&self, page: usize) -> bool {
        self.writable.binary_search(&page).is_ok()
    }

    // ---- inspection ----

    /// The slabs, by base.
    #[must_use]
    pub fn slabs(&self) -> &BTreeMap<usize, SlabM> {
        &self.slabs
    }

    /// Every page of every slab.
    #[must_use]
    pub fn pages(&self) -> &BTreeMap<usize, PageState> {
        &self.pages
    }

    /// The live regions, by key.
    #[must_use]
    pub fn regions(&self) -> &BTreeMap<usize, RegionM> {
        &self.regions
    }

    /// The state of the page holding `addr`, if it is in a slab.
    #[must_use]
    pub fn page_state(&self, addr: usize) -> Option<PageState> {
        self.pages.get(&(addr & !(self.cfg.page_size - 1))).copied()
    }

    /// Base of the slab whose bytes include `addr`.
    #[must_use]
    pub fn slab_containing(&self, addr: usize) -> Option<usize> {
        let (base, slab) = self.slabs.range(..=addr).next_back()?;
        (addr - base < slab.size).then_some(*base)
    }

    fn seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn call(&mut self, call: ExpCall, op: HostOp) -> Result<(), i32> {
        let result = self.faults.next(op);
        self.calls.push(CallM {
            call,
            ok: result.is_ok(),
        });
        result
    }

    fn set_page(&mut self, page: usize, state: PageState) {
        self.pages.insert(page, state);
        self.touched.push(page);
    }

    fn run_deallocs(&mut self, deallocs: &[ActSpec]) -> usize {
        let mut failed = 0;
        for d in deallocs.iter().rev() {
            self.actions.push(d.tag);
            failed += usize::from(d.fail);
        }
        failed
    }

    /// Entries of the span table other than records: live regions' segments, quarantined
    /// runs.
    fn entries(&self) -> usize {
        self.regions.values().map(|r| r.spans.len()).sum::<usize>() + self.qentries.len()
    }

    /// The records, lowest first. A record is a maximal run of consecutive pages carrying its
    /// number: the pieces a claim leaves of one record are never adjacent (the claimed pages
    /// lie between them, and freeing those makes a new record).
    fn records(&self) -> Vec<Record> {
        let page = self.cfg.page_size;
        let mut out: Vec<(Record, u64)> = Vec::new();
        for (&addr, state) in &self.pages {
            let Some(number) = state.record() else {
                continue;
            };
            match out.last_mut() {
                Some((r, last)) if *last == number && r.end == addr => r.end += page,
                _ => out.push((
                    Record {
                        start: addr,
                        end: addr + page,
                        prot: state.expected_prot().unwrap_or(Prot::READ_WRITE),
                    },
                    number,
                )),
            }
        }
        out.into_iter().map(|(r, _)| r).collect()
    }

    /// How many records there would be with the pages `claimed` taken out of them.
    fn records_except(&self, claimed: &BTreeSet<usize>) -> usize {
        let page = self.cfg.page_size;
        let mut count = 0;
        let mut last: Option<(usize, u64)> = None;
        for (&addr, state) in &self.pages {
            let number = state.record().filter(|_| !claimed.contains(&addr));
            if let Some(n) = number {
                if last != Some((addr, n)) {
                    count += 1;
                }
                last = Some((addr + page, n));
            }
        }
        count
    }

    /// Numbers for `n` new records: the result plus 1 to `n`.
    fn new_records(&mut self, n: usize) -> u64 {
        let first = self.records;
        self.records += n as u64;
        first
    }

    /// A page of a segment at `prot` once freed into record `record`; `back`: it goes back to
    /// read-write.
    fn freed(&self, prot: Prot, back: bool, record: u64) -> PageState {
        let left = if self.cfg.alias && !back {
            prot
        } else {
            Prot::READ_WRITE
        };
        PageState::Free {
            prot: left,
            bytes: self.cfg.freed_bytes(left),
            record: Some(record),
        }
    }

    /// Whether the map knows that the free page `addr` of a slab (`lost`: that lost a
    /// protection) is at `prot`: its record says so, or it has none and is read-write by
    /// default.
    fn known_at(&self, addr: usize, lost: bool, prot: Prot) -> bool {
        match self.pages[&addr] {
            PageState::Free {
                prot: at,
                record: Some(_),
                ..
            } => at == prot,
            PageState::Free {
                prot: at,
                record: None,
                ..
            } => {
                assert!(
                    lost || at == Prot::READ_WRITE,
                    "model: {addr:#x} unrecorded at {at}"
                );
                !lost && prot == Prot::READ_WRITE
            }
            _ => false,
        }
    }

    /// Makes room for `needed` more entries in a span table of `cap` entries (`None`: forgets
    /// every record `evictable` selects), forgetting the selected records lowest first while
    /// it is short; returns whether the room is there. A forgotten record that was not
    /// read-write makes its slab lose a protection.
    fn evict(
        &mut self,
        cap: usize,
        needed: Option<usize>,
        evictable: impl Fn(&Record) -> bool,
    ) -> bool {
        let page = self.cfg.page_size;
        let records = self.records();
        let mut count = self.entries() + records.len();
        for r in records.into_iter().filter(|r| evictable(r)) {
            if needed.is_some_and(|n| count + n <= cap) {
                break;
            }
            for addr in (r.start..r.end).step_by(page) {
                let forgotten = match self.pages[&addr] {
                    PageState::Free { prot, bytes, .. } => PageState::Free {
                        prot,
                        bytes,
                        record: None,
                    },
                    PageState::Limbo { prot, .. } => PageState::Limbo { prot, record: None },
                    other => other,
                };
                self.set_page(addr, forgotten);
            }
            if r.prot != Prot::READ_WRITE {
                if let Some(slab) = self.slab_containing(r.start) {
                    if let Some(s) = self.slabs.get_mut(&slab) {
                        s.lost = true;
                    }
                }
            }
            count -= 1;
        }
        needed.is_none_or(|n| count + n <= cap)
    }

    /// Resets the pages of one request (a rollback, or its Finalize pages) in runs of
    /// consecutive pages: one pass over them all on a flip host; lazily the pages that go back
    /// to read-write first, then the others, never in one run. Keeps going after a failed
    /// protect; returns the first failure with the segment its run starts in.
    fn reset_pages(&mut self, pages: &[ReqPage]) -> Option<(usize, i32)> {
        let page = self.cfg.page_size;
        let passes: &[Option<bool>] = if self.cfg.alias {
            &[Some(true), Some(false)]
        } else {
            &[None]
        };
        let mut first_error = None;
        for pass in passes {
            let these: Vec<ReqPage> = pages
                .iter()
                .copied()
                .filter(|p| pass.is_none_or(|back| p.back == back))
                .collect();
            for run in runs(&these, page, |_, _| true) {
                if let Err(e) = self.reset_run(run.start, run.end, run.needs_protect) {
                    first_error.get_or_insert((run.seg, e));
                }
            }
        }
        first_error
    }

    /// Resets one run to the free state: protect back to read-write where needed, then
    /// discard by policy (a failed discard falls back to zero-filling, which cannot fail).
    fn reset_run(&mut self, start: usize, end: usize, needs_protect: bool) -> Result<(), i32> {
        if needs_protect {
            self.call(
                ExpCall::Protect {
                    start,
                    end,
                    prot: Prot::READ_WRITE,
                },
                HostOp::Protect,
            )?;
        }
        if self.cfg.discarding() {
            let _ = self.call(ExpCall::Discard { start, end }, HostOp::Discard);
        }
        Ok(())
    }

    // ---- reserve ----

    /// The base the recording host hands out: first fit from `0x10_0000` among its current
    /// reservations (the model's slabs, failed ones included).
    #[must_use]
    pub fn first_fit(&self, size: usize) -> usize {
        let mut base = 0x10_0000usize;
        for (b, s) in &self.slabs {
            if base.checked_add(size).is_some_and(|end| end <= *b) {
                break;
            }
            base = b + s.size;
        }
        base
    }

    /// `reserve(size)`; `pick` gives the base the host returns if it succeeds.
    ///
    /// # Errors
    ///
    /// The error the map must return.
    pub fn reserve(
        &mut self,
        size: usize,
        pick: impl FnOnce(&Self) -> usize,
    ) -> Result<usize, MErr> {
        let page = self.cfg.page_size;
        if size == 0 || !size.is_multiple_of(page) {
            return Err(Error::InvalidSize { size });
        }
        if size > self.cfg.max_reservation {
            return Err(Error::TooLarge { size });
        }
        if self.cfg.slabs.is_some_and(|cap| self.slabs.len() >= cap) {
            return Err(Error::CapacityExceeded(Limit::Slabs));
        }
        if let Err(error) = self.faults.next(HostOp::Reserve) {
            self.calls.push(CallM {
                call: ExpCall::Reserve { size, base: None },
                ok: false,
            });
            return Err(Error::Host {
                op: HostOp::Reserve,
                segment: None,
                error,
                quarantined: false,
                dealloc_failures: 0,
            });
        }
        let base = pick(self);
        self.calls.push(CallM {
            call: ExpCall::Reserve {
                size,
                base: Some(base),
            },
            ok: true,
        });
        let end = base.checked_add(size);
        let clash = self
            .slabs
            .iter()
            .any(|(b, s)| end.is_some_and(|e| *b < e && base < b + s.size));
        if !base.is_multiple_of(page) || end.is_none() || clash {
            let _ = self.call(ExpCall::Release { base, size }, HostOp::Release);
            return Err(Error::HostInvariant { addr: base });
        }
        let seq = self.seq();
        self.slabs.insert(
            base,
            SlabM {
                size,
                seq,
                failed: false,
                lost: false,
            },
        );
        let fresh = PageState::Free {
            prot: Prot::READ_WRITE,
            bytes: FreeBytes::Zero,
            record: None,
        };
        for p in (base..base + size).step_by(page) {
            self.set_page(p, fresh);
        }
        self.slab_history.push((base, size));
        Ok(base)
    }

    // ---- initialize ----

    /// Whether a segment at `addr` (`empty`: of size zero) may belong to the slab `base`, as
    /// the contract says: a segment covering pages starts on one of the slab's pages; a
    /// zero-size segment may be anywhere in the slab, including exactly at its end.
    fn admits(&self, base: usize, addr: usize, empty: bool) -> bool {
        let end = base + self.slabs[&base].size;
        base <= addr && (addr < end || (empty && addr == end))
    }

    /// The segments sharing the lowest page that two segments share, and which of them the
    /// map may name: the contract says "the later of the two segments"; with three or more
    /// segments on that page which pair is named is unspecified.
    fn shared_page(segs: &[SegM], ends: &[usize]) -> Option<Vec<usize>> {
        let nonempty: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].size > 0).collect();
        let mut lowest: Option<usize> = None;
        for (x, &i) in nonempty.iter().enumerate() {
            for &j in &nonempty[x + 1..] {
                let start = segs[i].addr.max(segs[j].addr);
                if start < ends[i].min(ends[j]) {
                    lowest = Some(lowest.map_or(start, |l| l.min(start)));
                }
            }
        }
        let page = lowest?;
        let on_page: Vec<usize> = nonempty
            .iter()
            .copied()
            .filter(|&i| segs[i].addr <= page && page < ends[i])
            .collect();
        let before: Vec<usize> = on_page
            .iter()
            .copied()
            .filter(|&i| segs[i].addr < page)
            .collect();
        let starting: Vec<usize> = on_page
            .iter()
            .copied()
            .filter(|&i| segs[i].addr == page)
            .collect();
        let mut named = BTreeSet::new();
        match before.first() {
            Some(&b) => starting.iter().for_each(|&j| {
                named.insert(b.max(j));
            }),
            None => {
                for &a in &starting {
                    for &b in &starting {
                        if a != b {
                            named.insert(a.max(b));
                        }
                    }
                }
            }
        }
        Some(named.into_iter().collect())
    }

    /// `initialize(request)`.
    ///
    /// Which validation error comes first is the numbered list in the `# Errors` section of
    /// `JitMap::initialize`, followed here step by step (each step below names its number).
    ///
    /// # Errors
    ///
    /// The error the map must return.
    pub fn initialize(&mut self, req: &InitM) -> Result<usize, MErr> {
        let page = self.cfg.page_size;
        let segs = &req.segs;
        // 1. The request's limits.
        if segs.len() > MAX_SEGMENTS {
            return Err(Error::CapacityExceeded(Limit::Segments));
        }
        if req.pairs.len() > MAX_ACTION_PAIRS {
            return Err(Error::CapacityExceeded(Limit::ActionPairs));
        }
        // 2. Each segment on its own, in request order.
        let mut ends = Vec::with_capacity(segs.len());
        for (segment, s) in segs.iter().enumerate() {
            if s.addr % page != 0 {
                return Err(Error::Misaligned { segment });
            }
            let end = s
                .addr
                .checked_add(s.size)
                .and_then(|e| e.checked_add(page - 1));
            let Some(end) = end.map(|e| e & !(page - 1)) else {
                return Err(Error::Overflow { segment });
            };
            if s.content_len > s.size {
                return Err(Error::ContentTooLong { segment });
            }
            if s.prot.is_write_exec() && !self.cfg.allow_write_exec {
                return Err(Error::WriteExecute { segment });
            }
            ends.push(end);
        }
        // 3. A Standard segment, the lowest of which is the key.
        let Some(key_seg) = (0..segs.len())
            .filter(|&i| !segs[i].finalize)
            .min_by_key(|&i| (segs[i].addr, i))
        else {
            return Err(Error::NoStandardSegment);
        };
        let key = segs[key_seg].addr;
        // 4. The lowest shared page.
        if let Some(named) = Self::shared_page(segs, &ends) {
            self.alternatives = named
                .iter()
                .skip(1)
                .map(|&segment| Error::SharedPage { segment })
                .collect();
            return Err(Error::SharedPage { segment: named[0] });
        }

        // 5. The request's slab: the one holding the segment with the lowest pages.
        let nonempty: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].size > 0).collect();
        let anchor_seg = nonempty
            .iter()
            .copied()
            .min_by_key(|&i| segs[i].addr)
            .unwrap_or(0);
        let anchor = segs[anchor_seg].addr;
        let Some(slab) = self
            .slabs
            .keys()
            .copied()
            .find(|&b| self.admits(b, anchor, nonempty.is_empty()))
        else {
            return Err(Error::NotInSlab {
                segment: anchor_seg,
            });
        };
        // 6. A slab whose release failed (the model has no release in progress).
        if self.slabs[&slab].failed {
            return Err(Error::Busy { addr: slab });
        }
        // 7. Every segment inside that slab.
        let slab_end = slab + self.slabs[&slab].size;
        for (segment, s) in segs.iter().enumerate() {
            let empty = s.size == 0;
            let inside = self.admits(slab, s.addr, empty)
                && s.addr.checked_add(s.size).is_some_and(|e| e <= slab_end);
            if !inside {
                let in_any = self.slabs.keys().any(|&b| self.admits(b, s.addr, empty));
                return Err(if in_any {
                    Error::SpansSlabs { segment }
                } else {
                    Error::NotInSlab { segment }
                });
            }
        }

        // Pages, overlap, key, capacity.
        let mut rp: Vec<ReqPage> = Vec::new();
        for &i in &nonempty {
            let s = &segs[i];
            for addr in (s.addr..ends[i]).step_by(page) {
                rp.push(ReqPage {
                    addr,
                    seg: i,
                    prot: s.prot,
                    finalize: s.finalize,
                    back: false,
                });
            }
        }
        rp.sort_by_key(|p| p.addr);
        // 8. The lowest page in use.
        if let Some(p) = rp.iter().find(|p| self.pages[&p.addr].occupied()) {
            return Err(Error::Overlap { segment: p.seg });
        }
        // 9. The key.
        if self.regions.contains_key(&key) {
            return Err(Error::KeyInUse { key });
        }
        if self.page_state(key).is_some_and(PageState::occupied) {
            return Err(Error::Overlap { segment: key_seg });
        }
        // 10. The tables' capacities: regions, then spans.
        if self
            .cfg
            .regions
            .is_some_and(|cap| self.regions.len() >= cap)
        {
            return Err(Error::CapacityExceeded(Limit::Regions));
        }
        // The segments to protect: some page not known to be at the segment's protection
        // (decided before records are forgotten below).
        let lost = self.slabs[&slab].lost;
        let changed: BTreeSet<usize> = rp
            .iter()
            .filter(|p| !self.known_at(p.addr, lost, p.prot))
            .map(|p| p.seg)
            .collect();
        if let Some(cap) = self.cfg.spans {
            // The contract for a full fixed table: free records the claim does not touch are
            // forgotten first, lowest first, until the claim's reservation fits; if forgetting
            // all of those is not enough, every record is forgotten and the claim takes one
            // entry a segment; if even that does not fit, nothing is forgotten.
            let records = self.records();
            let reserved: usize = nonempty
                .iter()
                .map(|&i| room_for(&records, segs[i].addr, ends[i]))
                .sum();
            let claimed: BTreeSet<usize> = rp.iter().map(|p| p.addr).collect();
            let touches = |r: &Record| (r.start..r.end).step_by(page).any(|a| claimed.contains(&a));
            let touching = records.iter().filter(|r| touches(r)).count();
            let untouched = records.len() - touching;
            let count = self.entries() + records.len();
            let fits = if count + reserved <= cap {
                true
            } else if count - untouched + reserved <= cap {
                self.evict(cap, Some(reserved), |r| !touches(r))
            } else if count - records.len() + nonempty.len() <= cap {
                self.evict(cap, None, |_| true);
                true
            } else {
                false
            };
            if fits {
                // The claim must fit: its segments, and the records (or pieces) it leaves.
                let left = self.records_except(&claimed);
                let after = self.entries() + left + nonempty.len();
                assert!(
                    after <= cap,
                    "core bug: initialize reserved {reserved} span-table entries and forgot \
                     records to make room, but its claim leaves {after} entries in a table of \
                     {cap} (replay.rs: forgotten_record_was_counted_as_reused)"
                );
            } else {
                return Err(Error::CapacityExceeded(Limit::Spans));
            }
        }

        // Side effects: content, protections, icache, finalize actions, Finalize pages.
        self.writable.extend(rp.iter().map(|p| p.addr));
        let rollback = |m: &mut Self| m.roll_back(&rp, segs, &nonempty, &ends, slab, &changed);
        let to_protect: Vec<ReqPage> = rp
            .iter()
            .copied()
            .filter(|p| changed.contains(&p.seg))
            .collect();
        for run in runs(&to_protect, page, |a, b| a.prot == b.prot) {
            let call = ExpCall::Protect {
                start: run.start,
                end: run.end,
                prot: run.prot,
            };
            if let Err(error) = self.call(call, HostOp::Protect) {
                let quarantined = rollback(self);
                return Err(Error::Host {
                    op: HostOp::Protect,
                    segment: Some(run.seg),
                    error,
                    quarantined,
                    dealloc_failures: 0,
                });
            }
        }
        let exec: Vec<ReqPage> = rp
            .iter()
            .copied()
            .filter(|p| p.prot.contains(Prot::EXEC))
            .collect();
        for run in runs(&exec, page, |_, _| true) {
            if let Err(error) = self.call(
                ExpCall::Flush {
                    start: run.start,
                    end: run.end,
                },
                HostOp::FlushIcache,
            ) {
                let quarantined = rollback(self);
                return Err(Error::Host {
                    op: HostOp::FlushIcache,
                    segment: Some(run.seg),
                    error,
                    quarantined,
                    dealloc_failures: 0,
                });
            }
        }
        let mut kept = Vec::new();
        for (action, pair) in req.pairs.iter().enumerate() {
            if let Some(f) = pair.finalize {
                self.actions.push(f.tag);
                if f.fail {
                    let cleanup_failures = self.run_deallocs(&kept);
                    let quarantined = rollback(self);
                    return Err(Error::FinalizeFailed {
                        action,
                        error: ActionError::new(f.tag as i32),
                        cleanup_failures,
                        quarantined,
                    });
                }
            }
            if let Some(d) = pair.dealloc {
                kept.push(d);
            }
        }
        // Executable Finalize pages of a host that cannot reuse them stay quarantined.
        let reuse_exec = self.cfg.reuse_exec;
        let kept_exec = move |prot: Prot| !reuse_exec && prot.contains(Prot::EXEC);
        let fin: Vec<ReqPage> = rp
            .iter()
            .filter(|p| p.finalize && !kept_exec(p.prot))
            .map(|p| ReqPage {
                back: self.cfg.goes_back(p.prot, false),
                ..*p
            })
            .collect();
        if let Some((seg, error)) = self.reset_pages(&fin) {
            let dealloc_failures = self.run_deallocs(&kept);
            let quarantined = rollback(self);
            return Err(Error::Host {
                op: HostOp::Protect,
                segment: Some(seg),
                error,
                quarantined,
                dealloc_failures,
            });
        }

        // Commit: Finalize pages freed, one record per segment.
        let records = self.new_records(segs.len());
        for p in &rp {
            let state = if p.finalize && kept_exec(p.prot) {
                PageState::Quarantined { prot: Some(p.prot) }
            } else if p.finalize {
                let back = self.cfg.goes_back(p.prot, false);
                self.freed(p.prot, back, records + 1 + p.seg as u64)
            } else {
                PageState::Live { key, prot: p.prot }
            };
            self.set_page(p.addr, state);
        }
        let mut spans: Vec<(usize, usize, Prot)> = nonempty
            .iter()
            .filter(|&&i| !segs[i].finalize)
            .map(|&i| (segs[i].addr, ends[i], segs[i].prot))
            .collect();
        spans.sort_unstable_by_key(|s| s.0);
        let fills = nonempty
            .iter()
            .filter(|&&i| !segs[i].finalize)
            .map(|&i| Fill {
                addr: segs[i].addr,
                len: segs[i].content_len,
                seed: segs[i].seed,
                end: ends[i],
            })
            .collect();
        for &i in &nonempty {
            if segs[i].finalize && kept_exec(segs[i].prot) {
                self.qentries.push((slab, segs[i].addr, ends[i]));
            }
        }
        let seq = self.seq();
        self.registered.extend(kept.iter().map(|d| d.tag));
        self.regions.insert(
            key,
            RegionM {
                slab,
                seq,
                spans,
                deallocs: kept,
                fills,
            },
        );
        self.key_history.push(key);
        Ok(key)
    }

    /// Undoes a claimed initialize: every page of the request back to free
    /// ([`Model::reset_pages`]; the pages of `changed` segments, whose protection initialize
    /// changed or meant to, are in doubt); if a protect back fails, every page of the request
    /// is quarantined. Executable pages of a host that cannot reuse them are never reset,
    /// always quarantined. Returns whether the rest had to be.
    fn roll_back(
        &mut self,
        rp: &[ReqPage],
        segs: &[SegM],
        nonempty: &[usize],
        ends: &[usize],
        slab: usize,
        changed: &BTreeSet<usize>,
    ) -> bool {
        let reuse_exec = self.cfg.reuse_exec;
        let kept_exec = |prot: Prot| !reuse_exec && prot.contains(Prot::EXEC);
        let resettable: Vec<ReqPage> = rp
            .iter()
            .filter(|p| !kept_exec(p.prot))
            .map(|p| ReqPage {
                back: self.cfg.goes_back(p.prot, changed.contains(&p.seg)),
                ..*p
            })
            .collect();
        let quarantined = self.reset_pages(&resettable).is_some();
        let records = self.new_records(segs.len());
        for p in &resettable {
            let state = if quarantined {
                PageState::Quarantined { prot: None }
            } else {
                self.freed(p.prot, p.back, records + 1 + p.seg as u64)
            };
            self.set_page(p.addr, state);
        }
        for p in rp.iter().filter(|p| kept_exec(p.prot)) {
            self.set_page(p.addr, PageState::Quarantined { prot: None });
        }
        for &i in nonempty {
            if quarantined || kept_exec(segs[i].prot) {
                self.qentries.push((slab, segs[i].addr, ends[i]));
            }
        }
        quarantined
    }

    // ---- deinitialize ----

    /// The error for an address that is not the key of a live region.
    fn classify(&self, addr: usize) -> MErr {
        let unknown = if self.slab_containing(addr).is_some() {
            Error::UnknownKey { addr }
        } else {
            Error::NotInAnySlab { addr }
        };
        match self.page_state(addr) {
            Some(PageState::Live { .. }) => Error::InteriorAddress { addr },
            _ => unknown,
        }
    }

    /// `deinitialize(key)`.
    ///
    /// # Errors
    ///
    /// The error the map must return.
    pub fn deinitialize(&mut self, key: usize) -> Result<(), MErr> {
        let result = self.deinitialize_multiple(&[key], 1);
        match self.reports.pop() {
            Some((_, e)) => Err(e),
            None => result,
        }
    }

    /// `deinitialize_multiple(keys)`, the map handling `group` entries together (at least
    /// one): back to front, each group of consecutive entries is taken out of service, then
    /// its pages are reset, adjacent pages of its entries sharing host calls. The contract
    /// does not say how many entries the map handles together; the caller tries the sizes
    /// (see `driver.rs`). The per-entry errors go to [`Model::reports`].
    ///
    /// # Errors
    ///
    /// `Batch` with the number of failed entries.
    pub fn deinitialize_multiple(&mut self, keys: &[usize], group: usize) -> Result<(), MErr> {
        let group = group.max(1);
        let mut failed = 0;
        let mut end = keys.len();
        while end > 0 {
            let start = end.saturating_sub(group);
            failed += self.deinitialize_group(keys, start, end);
            end = start;
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(Error::Batch { failed })
        }
    }

    fn deinitialize_group(&mut self, keys: &[usize], start: usize, end: usize) -> usize {
        let page = self.cfg.page_size;
        let mut failed = 0;
        let mut retired: Vec<Retired> = Vec::new();
        // Back to front: take each region out, run its dealloc actions.
        for index in (start..end).rev() {
            let key = keys[index];
            if let Some(region) = self.regions.remove(&key) {
                for &(s, e, prot) in &region.spans {
                    for p in (s..e).step_by(page) {
                        self.set_page(p, PageState::Retiring { key, prot });
                    }
                }
                let failures = self.run_deallocs(&region.deallocs);
                retired.push(Retired {
                    index,
                    region,
                    failures,
                    reset_error: None,
                });
            } else {
                // As if the entries were processed one by one: a repeated key finds its
                // region gone and is classified like any other unknown address.
                self.reports.push((index, self.classify(key)));
                failed += 1;
            }
        }
        // Reset the pages, merging runs across regions.
        let reuse_exec = self.cfg.reuse_exec;
        let keep = |s: &&(usize, usize, Prot)| reuse_exec || !s.2.contains(Prot::EXEC);
        // Maximal runs of contiguous reset pages inside one slab, in address order (the
        // map merges the regions' spans in address order).
        // (page, region, prot)
        let mut all: Vec<(usize, usize, Prot)> = Vec::new();
        for (i, r) in retired.iter().enumerate() {
            for &(s, e, prot) in r.region.spans.iter().filter(keep) {
                for p in (s..e).step_by(page) {
                    all.push((p, i, prot));
                }
            }
        }
        all.sort_unstable();
        // Lazily without discarding, freed pages are only overwritten: no fallible call.
        if self.cfg.alias && !self.cfg.discarding() {
            all.clear();
        }
        // (start, end, needs_protect, members); lazily a run holds only pages that go back
        // to read-write, or only pages that do not.
        let mut resets: Vec<Reset> = Vec::new();
        for (p, i, prot) in all {
            let slab = self.slab_containing(p);
            let back = self.cfg.goes_back(prot, false);
            match resets.last_mut() {
                Some((rs, re, needs, members))
                    if *re == p
                        && self.slab_containing(*rs) == slab
                        && (!self.cfg.alias || *needs == back) =>
                {
                    *re = p + page;
                    *needs |= back;
                    members.insert(i);
                }
                _ => resets.push((p, p + page, back, BTreeSet::from([i]))),
            }
        }
        for r in &retired {
            for &(s, e, _) in &r.region.spans {
                self.writable.extend((s..e).step_by(page));
            }
        }
        for (s, e, needs, members) in resets {
            if let Err(error) = self.reset_run(s, e, needs) {
                for i in members {
                    retired[i].reset_error.get_or_insert(error);
                }
            }
        }
        // Forget the regions (a record per segment), then report.
        for r in &retired {
            for &(s, e, prot) in &r.region.spans {
                let exec_kept = !reuse_exec && prot.contains(Prot::EXEC);
                let state = if exec_kept {
                    PageState::Quarantined { prot: Some(prot) }
                } else if r.reset_error.is_some() {
                    PageState::Quarantined { prot: None }
                } else {
                    let record = self.new_records(1) + 1;
                    self.freed(prot, self.cfg.goes_back(prot, false), record)
                };
                for p in (s..e).step_by(page) {
                    self.set_page(p, state);
                }
                if exec_kept || r.reset_error.is_some() {
                    self.qentries.push((r.region.slab, s, e));
                }
            }
        }
        for r in retired {
            // A failed reset is reported with every failed dealloc action of the entry.
            let error = match r.reset_error {
                Some(error) => Some(Error::Host {
                    op: HostOp::Protect,
                    segment: None,
                    error,
                    quarantined: true,
                    dealloc_failures: r.failures,
                }),
                None => (r.failures > 0).then_some(Error::DeallocFailed { failed: r.failures }),
            };
            if let Some(error) = error {
                self.reports.push((r.index, error));
                failed += 1;
            }
        }
        failed
    }

    // ---- release ----

    /// `release(base)`.
    ///
    /// # Errors
    ///
    /// The error the map must return.
    pub fn release(&mut self, base: usize) -> Result<(), MErr> {
        let page = self.cfg.page_size;
        let Some(slab) = self.slabs.get(&base).copied() else {
            return Err(if self.slab_containing(base).is_some() {
                Error::NotSlabBase { addr: base }
            } else {
                Error::NotInAnySlab { addr: base }
            });
        };
        let mut inside: Vec<(u64, usize)> = self
            .regions
            .iter()
            .filter(|(_, r)| r.slab == base)
            .map(|(k, r)| (r.seq, *k))
            .collect();
        inside.sort_unstable_by(|a, b| b.cmp(a));
        let mut dealloc_failures = 0;
        for (_, key) in inside {
            let Some(region) = self.regions.remove(&key) else {
                continue;
            };
            dealloc_failures += self.run_deallocs(&region.deallocs);
            // The pages are recorded free at their protection until the slab is unmapped.
            for &(s, e, prot) in &region.spans {
                let record = Some(self.new_records(1) + 1);
                for p in (s..e).step_by(page) {
                    self.set_page(p, PageState::Limbo { prot, record });
                }
            }
        }
        if let Err(error) = self.call(
            ExpCall::Release {
                base,
                size: slab.size,
            },
            HostOp::Release,
        ) {
            if let Some(s) = self.slabs.get_mut(&base) {
                s.failed = true;
            }
            return Err(Error::Host {
                op: HostOp::Release,
                segment: None,
                error,
                quarantined: false,
                dealloc_failures,
            });
        }
        self.slabs.remove(&base);
        for p in (base..base + slab.size).step_by(page) {
            self.pages.remove(&p);
        }
        self.touched
            .retain(|p| !(base..base + slab.size).contains(p));
        self.released.push((base, slab.size));
        self.qentries.retain(|q| q.0 != base);
        if dealloc_failures > 0 {
            return Err(Error::DeallocFailed {
                failed: dealloc_failures,
            });
        }
        Ok(())
    }

    /// `release_multiple(bases)`; the per-entry errors go to [`Model::reports`].
    ///
    /// # Errors
    ///
    /// `Batch` with the number of failed entries.
    pub fn release_multiple(&mut self, bases: &[usize]) -> Result<(), MErr> {
        let mut failed = 0;
        for (index, &base) in bases.iter().enumerate().rev() {
            if let Err(e) = self.release(base) {
                self.reports.push((index, e));
                failed += 1;
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(Error::Batch { failed })
        }
    }

    /// `shutdown()`: every slab released, newest first.
    ///
    /// # Errors
    ///
    /// `Batch` with the number of slabs whose release failed.
    pub fn shutdown(&mut self) -> Result<(), MErr> {
        let mut order: Vec<(u64, usize)> = self.slabs.iter().map(|(b, s)| (s.seq, *b)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        let mut failed = 0;
        for (_, base) in order {
            if self.release(base).is_err() {
                failed += 1;
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(Error::Batch { failed })
        }
    }
}
