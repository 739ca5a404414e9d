//! The map: the public reserve / initialize / deinitialize / release API.
//!
//! # Safety
//!
//! This module calls the host's unsafe methods. Every call is made on pages the calling thread
//! owns in the bookkeeping (claimed by an `Initializing` region, taken by a `Retiring` region,
//! or inside a `Releasing` slab), so no other thread of the map touches them concurrently, and
//! the map itself never holds references into JIT memory.
#![expect(unsafe_code, reason = "the host's page operations are unsafe fns")]

use core::fmt;

use heapless::Vec;

use crate::action::{run_dealloc_actions, run_finalize_actions, Deallocs};
use crate::addr::PageRange;
use crate::error::Error;
use crate::host::{Host, HostOp};
use crate::lock::Lock;
use crate::plan::{runs, OldDirtyEnds, Plan, Span, Spans};
use crate::prot::{Lifetime, Prot};
use crate::regions::RegionId;
use crate::request::{Content, InitRequest};
use crate::state::{NextSpan, Quarantine, Retired, SegmentSet, State};
use crate::table::{Fixed, Storage};

/// What deinitialize does with the contents of freed pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscardPolicy {
    /// Drop the contents ([`Host::discard`]): memory goes back to the system and reused pages
    /// read as zero without any zero-filling.
    #[default]
    Discard,
    /// Keep the contents resident: deinitialize is cheaper and initialize zero-fills reused
    /// pages itself.
    Retain,
}

/// How a map behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// What deinitialize does with freed pages.
    pub discard: DiscardPolicy,
    /// Accept segments that are writable and executable at once (refused by default: W^X).
    pub allow_write_exec: bool,
    /// Largest reservation accepted, in bytes.
    pub max_reservation: usize,
}

impl Config {
    /// Discard on deinitialize, W^X enforced, reservations up to 1 TiB (1 GiB on 32-bit).
    pub const DEFAULT: Self = Self {
        discard: DiscardPolicy::Discard,
        allow_write_exec: false,
        max_reservation: if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 },
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The default fixed storage: 8 slabs, 64 regions, 256 segments of live regions; a map with
/// it takes about 48 KiB, most of it room for the regions' dealloc actions. Pick other capacities with [`Fixed`], or use
/// `Growable` (feature `alloc`).
pub type DefaultStorage = Fixed<8, 64, 256>;

/// How freed pages are reset, from the host's capabilities and the discard policy.
#[derive(Debug, Clone, Copy)]
struct Reset {
    /// The host writes through an alias: freed pages keep their protection.
    lazy: bool,
    /// Freed pages are discarded.
    discard: bool,
    /// Executable pages may be reused; when not, freed ones are quarantined instead.
    reuse_exec: bool,
}

impl Reset {
    /// Whether resetting pages at `prot` protects them back to read-write. `changed`: a
    /// failed initialize changed (or tried to change) their protection.
    ///
    /// Eagerly (flip hosts) every page not read-write is. Lazily, only pages whose
    /// protection is in doubt, and executable pages whose bytes are discarded (zeros are no
    /// trap instructions); the others keep their protection.
    fn protects(self, prot: Prot, changed: bool) -> bool {
        if self.lazy {
            changed || (self.discard && prot.contains(Prot::EXEC))
        } else {
            prot != Prot::READ_WRITE
        }
    }

    /// Whether freed pages are reset by overwriting their old bytes (lazily, without
    /// discarding), which takes no host call: then there are no calls to merge either.
    fn overwrites(self) -> bool {
        self.lazy && !self.discard
    }

    /// Whether reused pages may hold old bytes and must be zero-filled by initialize: freed
    /// pages are not discarded.
    fn zero_on_reuse(self) -> bool {
        !self.discard
    }

    /// Which pages of a region being forgotten stay out of use, after resetting them
    /// `failed` or not.
    fn quarantine(self, failed: bool) -> Quarantine {
        Quarantine::after_reset(failed, self.reuse_exec)
    }

    /// The protection pages at `prot` are left at by a reset.
    fn leaves(self, prot: Prot, changed: bool) -> Prot {
        if self.protects(prot, changed) {
            Prot::READ_WRITE
        } else {
            prot
        }
    }

    /// What a reset leaves the pages of `span` at: their protection, and where the bytes
    /// that may not be zero end. Discarded or zero-filled pages hold none; trap bytes
    /// replace the old bytes of code left executable on a lazy host; an eager host that
    /// does not discard leaves the old bytes.
    fn freed(self, span: &Span, changed: bool) -> (Prot, usize) {
        let prot = self.leaves(span.prot, changed);
        let cleared = self.discard || (self.lazy && !prot.contains(Prot::EXEC));
        let dirty_end = if cleared {
            span.range.start()
        } else {
            span.dirty_end
        };
        (prot, dirty_end)
    }
}

/// Entries of a batch handled together, so that their adjacent pages share host calls.
const BATCH_CHUNK: usize = 16;

/// A JIT memory map over a [`Host`]: slabs of address space and the regions initialized in them.
///
/// All methods take `&self`; the map is `Sync` when its host is. A spin lock guards the
/// bookkeeping only: no copy, host call or action runs under it, so actions may call back into
/// the map.
pub struct JitMap<H: Host, S: Storage = DefaultStorage> {
    host: H,
    page_size: usize,
    config: Config,
    /// From the host's capabilities and the config, which never change.
    reset: Reset,
    state: Lock<State<S>>,
}

impl<H: Host + fmt::Debug, S: Storage> fmt::Debug for JitMap<H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.state.with(|state| {
            f.debug_struct("JitMap")
                .field("host", &self.host)
                .field("config", &self.config)
                .field("state", state)
                .finish()
        })
    }
}

/// How one batch entry being deinitialized is doing.
#[derive(Debug)]
struct Retiring<E> {
    index: usize,
    region: RegionId,
    dealloc_failures: usize,
    /// The error of the first protect back to read-write over its pages that failed.
    reset_error: Option<E>,
    /// Its next span whose pages are still to be reset.
    next: Option<NextSpan>,
}

impl<E> Retiring<E> {
    /// What went wrong, if anything: a failed reset (pages quarantined) with the count of
    /// failed dealloc actions, else the count alone.
    fn into_error(self) -> Option<Error<E>> {
        match self.reset_error {
            Some(error) => Some(Error::Host {
                op: HostOp::Protect,
                segment: None,
                error,
                quarantined: true,
                dealloc_failures: self.dealloc_failures,
            }),
            None => (self.dealloc_failures > 0).then_some(Error::DeallocFailed {
                failed: self.dealloc_failures,
            }),
        }
    }
}

impl<H: Host, S: Storage> JitMap<H, S> {
    /// A map over `host` with the default [`Config`].
    pub fn new(host: H) -> Self {
        Self::with_config(host, Config::DEFAULT)
    }

    /// A map over `host` with `config`.
    pub fn with_config(host: H, config: Config) -> Self {
        let page_size = host.page_size();
        let capabilities = host.capabilities();
        let reset = Reset {
            lazy: capabilities.writes_through_alias,
            discard: config.discard == DiscardPolicy::Discard && capabilities.discard,
            reuse_exec: capabilities.reuse_executable,
        };
        Self {
            host,
            page_size,
            config,
            reset,
            state: Lock::new(State::default()),
        }
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host's page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `f` on the bookkeeping under the lock. The guard is gone when this returns, so no
    /// caller can hold the lock across a host call or an action by accident.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State<S>) -> R) -> R {
        self.state.with(f)
    }

    /// Reserves a slab of `size` bytes of read-write memory that reads as zero and returns
    /// its base.
    ///
    /// # Errors
    ///
    /// The first that applies, in this order: [`Error::InvalidSize`] for zero or a non-page
    /// multiple, [`Error::TooLarge`] above [`Config::max_reservation`],
    /// [`Error::CapacityExceeded`] when the slab table is full, [`Error::Host`] when the host
    /// fails, [`Error::HostInvariant`] when it returns a bad base. Nothing is left reserved on
    /// any error.
    pub fn reserve(&self, size: usize) -> Result<usize, Error<H::Error>> {
        if size == 0 || !size.is_multiple_of(self.page_size) {
            return Err(Error::InvalidSize { size });
        }
        if size > self.config.max_reservation {
            return Err(Error::TooLarge { size });
        }
        self.with_state(|s| s.begin_reserve())?;
        let base = match self.host.reserve(size) {
            Ok(base) => base,
            Err(error) => {
                self.with_state(|s| s.abandon_reserve());
                return Err(Error::Host {
                    op: HostOp::Reserve,
                    segment: None,
                    error,
                    quarantined: false,
                    dealloc_failures: 0,
                });
            }
        };
        let recorded = self.with_state(|s| s.finish_reserve(base, size, self.page_size));
        if let Err(error) = recorded {
            // SAFETY: (1) `base`/`size` are exactly what `reserve` just returned and nobody
            // else knows of them; (2) nothing refers to the memory.
            let _ = unsafe { self.host.release(base, size) };
            return Err(error);
        }
        Ok(base)
    }

    /// Initializes a region: copies content, zero-fills, sets protections, makes the
    /// instruction cache coherent, runs the finalize actions and keeps their dealloc actions.
    /// Returns the region's key, the address of its lowest Standard segment.
    ///
    /// Every check happens before the first side effect. Finalize-lifetime segments are freed
    /// again before this returns.
    ///
    /// # Errors
    ///
    /// Validation errors change nothing. Of those that apply, the first in this order is
    /// reported:
    /// 1. [`Error::CapacityExceeded`] for more than [`MAX_SEGMENTS`](crate::MAX_SEGMENTS)
    ///    segments, then for more than [`MAX_ACTION_PAIRS`](crate::MAX_ACTION_PAIRS) pairs;
    /// 2. segment by segment, in request order, the first of [`Error::Misaligned`],
    ///    [`Error::Overflow`], [`Error::ContentTooLong`], [`Error::WriteExecute`] that the
    ///    segment fails;
    /// 3. [`Error::NoStandardSegment`];
    /// 4. [`Error::SharedPage`] for the lowest page two segments share;
    /// 5. [`Error::NotInSlab`] when the request's slab does not exist: the slab is the one
    ///    holding the segment with the lowest pages (segment 0 if no segment covers a page),
    ///    where a zero-size segment may also sit exactly at a slab's end;
    /// 6. [`Error::Busy`] when that slab is being released or its release failed;
    /// 7. segment by segment, in request order, [`Error::SpansSlabs`] for a segment that is
    ///    in another slab or runs past the slab's end, [`Error::NotInSlab`] for one in no slab;
    /// 8. [`Error::Overlap`] for the lowest page in use (by a live or in-progress region, or
    ///    quarantined);
    /// 9. [`Error::KeyInUse`], then [`Error::Overlap`] for a zero-size key segment on a page in
    ///    use;
    /// 10. [`Error::CapacityExceeded`] for the region table, then for the span table.
    ///
    /// [`Error::Host`] and [`Error::FinalizeFailed`] are reported after a complete rollback:
    /// the dealloc actions of finalize actions that succeeded ran newest first, every page is
    /// free again (read-write, and discarded or zeroed), nothing is recorded. If the rollback
    /// itself failed, the error says `quarantined` and the pages are never handed out again.
    /// When the reset of the Finalize-lifetime pages fails after every finalize action ran,
    /// the error is [`Error::Host`] and counts the cleanup dealloc actions that failed
    /// (`dealloc_failures`). A failed discard is no error: the pages are zero-filled instead.
    pub fn initialize(&self, request: &InitRequest<'_>) -> Result<usize, Error<H::Error>> {
        let mut spans = Spans::new();
        let plan = Plan::validate(
            request,
            self.page_size,
            self.config.allow_write_exec,
            &mut spans,
        )?;
        let has_deallocs = request.actions.iter().any(|pair| pair.dealloc.is_some());
        let mut old_dirty = OldDirtyEnds::new();
        let claim = self.with_state(|s| {
            let placement = s.place(&plan, request.segments, has_deallocs, &mut old_dirty)?;
            Ok::<_, Error<H::Error>>(s.claim(placement))
        })?;
        let (region, changed) = (claim.region, claim.protect);
        let reset = self.reset;
        self.write_contents(request, &plan, claim.touched, &old_dirty, reset);

        let fail = |op, segment, error, dealloc_failures| {
            let quarantined = self.roll_back(region, plan.spans, changed, reset);
            Err(Error::Host {
                op,
                segment: Some(segment),
                error,
                quarantined,
                dealloc_failures,
            })
        };
        // Only the pages not at their protection yet: on a lazy host, reused pages may be.
        for run in runs(plan.spans, true, |s| changed.contains(s.segment.into())) {
            // SAFETY: (1) the claimed pages lie inside one live slab; (2) the map holds no
            // references into them and the caller gave up the request's pages to the map.
            if let Err(error) = unsafe { self.host.protect(run.range, run.prot) } {
                return fail(HostOp::Protect, run.segment, error, 0);
            }
        }
        for run in runs(plan.spans, false, |s| s.prot.contains(Prot::EXEC)) {
            // SAFETY: the claimed pages lie inside one live slab, and are readable: executable
            // spans are at their protection now, which includes read.
            if let Err(error) = unsafe { self.host.flush_icache(run.range) } {
                return fail(HostOp::FlushIcache, run.segment, error, 0);
            }
        }
        let mut deallocs = Deallocs::new();
        let finalized = if request.actions.is_empty() {
            Ok(())
        } else {
            run_finalize_actions(request.actions, &mut deallocs)
        };
        if let Err(failure) = finalized {
            let quarantined = self.roll_back(region, plan.spans, changed, reset);
            return Err(Error::FinalizeFailed {
                action: failure.index,
                error: failure.error,
                cleanup_failures: failure.cleanup_failures,
                quarantined,
            });
        }
        if plan.has_finalize {
            let finalize_only = |s: &Span| s.lifetime == Lifetime::Finalize;
            let freed = self.reset_pages(plan.spans, finalize_only, SegmentSet::default(), reset);
            if let Err((op, segment, error)) = freed {
                let cleanup_failures = run_dealloc_actions(&deallocs);
                return fail(op, segment, error, cleanup_failures);
            }
        }
        let has_finalize = plan.has_finalize;
        self.with_state(|s| {
            s.commit(region, &deallocs, has_finalize, reset.reuse_exec, |span| {
                reset.freed(span, false)
            });
        });
        Ok(plan.key)
    }

    /// Copies each segment's content and zero-fills the rest of its pages where they may
    /// hold old bytes (when freed pages are not discarded): up to where the old bytes of the
    /// span end (`old_dirty`), in pages of `touched` (claimed before).
    fn write_contents(
        &self,
        request: &InitRequest<'_>,
        plan: &Plan<'_>,
        touched: PageRange,
        old_dirty: &[usize],
        reset: Reset,
    ) {
        let zero = reset.zero_on_reuse();
        for (span, &dirty_end) in plan.spans.iter().zip(old_dirty) {
            let seg = &request.segments[usize::from(span.segment)];
            if let Content::Bytes(bytes) = seg.content {
                if !bytes.is_empty() {
                    // SAFETY: (1) the span's pages are claimed, inside one slab, and free pages
                    // are read-write unless the host writes through an alias (the map protects
                    // lazily only then); (2) the claim keeps every other thread away; (3) the
                    // caller's `bytes` are borrowed memory, which cannot be the claimed pages
                    // (they belong to the map until initialize returns).
                    unsafe { self.host.write(seg.addr, bytes) };
                }
            }
            let from = (seg.addr + seg.content.len()).max(touched.start());
            let to = dirty_end.min(touched.end());
            if zero && from < to {
                // SAFETY: as above; `from..to` lies inside the span.
                unsafe { self.host.fill_zero(from, to - from) };
            }
        }
    }

    /// Returns the pages of the selected spans to the free state. Eagerly (flip hosts): one
    /// protect back to read-write per run of touching pages that holds a page that is not,
    /// then (policy) one discard per run, falling back to zero-filling if the discard fails.
    /// Lazily (alias hosts): only the pages [`Reset::protects`] selects are protected (spans
    /// of `changed` segments are in doubt), and the others' bytes are overwritten instead.
    /// Keeps going after a failed protect and reports the first.
    fn reset_pages(
        &self,
        spans: &[Span],
        keep: impl Fn(&Span) -> bool,
        changed: SegmentSet,
        reset: Reset,
    ) -> Result<(), (HostOp, usize, H::Error)> {
        // Executable pages a host cannot reuse are never reset: they are quarantined.
        let keep = |s: &Span| keep(s) && (reset.reuse_exec || !s.prot.contains(Prot::EXEC));
        let protects = |s: &Span| reset.protects(s.prot, changed.contains(s.segment.into()));
        let mut first_error = None;
        // Lazily, a run holds only spans that are protected, or only spans that are not.
        for protected in [true, false] {
            let member = |s: &Span| keep(s) && (!reset.lazy || protects(s) == protected);
            for run in runs(spans, false, member) {
                let needs_protect = if reset.lazy {
                    protected
                } else {
                    run.prot != Prot::READ_WRITE
                };
                if let Err(e) = self.reset_run(run.range, needs_protect, reset) {
                    first_error.get_or_insert((HostOp::Protect, run.segment, e));
                }
            }
            if !reset.lazy {
                break;
            }
        }
        if reset.overwrites() {
            for span in spans.iter().filter(|s| keep(s)) {
                self.overwrite(
                    span,
                    reset.leaves(span.prot, changed.contains(span.segment.into())),
                );
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Resets one run of pages; fails only if the protect back to read-write fails.
    fn reset_run(
        &self,
        range: PageRange,
        needs_protect: bool,
        reset: Reset,
    ) -> Result<(), H::Error> {
        if needs_protect {
            // SAFETY: (1) the run lies inside one slab, in pages this thread owns; (2) the map
            // holds no references into them, and their region is being torn down.
            unsafe { self.host.protect(range, Prot::READ_WRITE) }?;
        }
        if reset.discard {
            // SAFETY: as above; the contents are no longer needed.
            if unsafe { self.host.discard(range) }.is_err() {
                // Zero them so that they still read as zero.
                // SAFETY: as above; the pages are read-write after the protect, or were before
                // (eager hosts), or the host writes through an alias.
                unsafe { self.host.fill_zero(range.start(), range.len()) };
            }
        }
        Ok(())
    }

    /// Overwrites the old bytes of the freed pages of `span` (those before its `dirty_end`;
    /// the rest read zero) that a lazy host leaves at `prot`: trap instructions if they are
    /// executable, so that a stale call traps, zeros otherwise.
    fn overwrite(&self, span: &Span, prot: Prot) {
        let (start, len) = (span.range.start(), span.dirty_end - span.range.start());
        if len == 0 {
            return;
        }
        if prot.contains(Prot::EXEC) {
            // SAFETY: (1) the pages lie inside one slab, in pages this thread owns, and the
            // host writes through an alias; (2) their region is being torn down; (3) no bytes
            // are passed.
            unsafe { self.host.fill_trap(start, len) };
        } else {
            // SAFETY: as above.
            unsafe { self.host.fill_zero(start, len) };
        }
    }

    /// Undoes a claimed initialize: every page back to the free state, the claim dropped.
    /// Returns whether some pages had to be quarantined. `changed`: the segments whose
    /// protection initialize changed or tried to change.
    fn roll_back(
        &self,
        region: RegionId,
        spans: &[Span],
        changed: SegmentSet,
        reset: Reset,
    ) -> bool {
        let quarantined = self.reset_pages(spans, |_| true, changed, reset).is_err();
        let quarantine = reset.quarantine(quarantined);
        self.with_state(|s| {
            s.forget(region, quarantine, |span| {
                reset.freed(span, changed.contains(span.segment.into()))
            });
        });
        quarantined
    }

    /// Deinitializes the region keyed `key`: runs its dealloc actions newest first, returns
    /// its pages to the free state and forgets it. The pages can be initialized again at once.
    ///
    /// # Errors
    ///
    /// An address that is no region's key is, in this order, [`Error::InteriorAddress`] when
    /// it lies in a page of a region (live or in progress; quarantined pages belong to none),
    /// [`Error::UnknownKey`] when it lies in a slab, [`Error::NotInAnySlab`] otherwise. The key
    /// of a region that is not live is [`Error::Busy`] (still being initialized or already
    /// being torn down, or its slab is being released, which tears it down). These change
    /// nothing.
    ///
    /// Otherwise the region is gone and every dealloc action ran once. If the protect of its
    /// pages back to read-write failed, the error is [`Error::Host`] with `quarantined` (the
    /// pages will not be reused), counting the failed dealloc actions in `dealloc_failures`;
    /// else, if some dealloc actions failed, [`Error::DeallocFailed`] with their number. A
    /// failed discard is no error: the pages are zero-filled instead.
    pub fn deinitialize(&self, key: usize) -> Result<(), Error<H::Error>> {
        // A batch of one, without the batch's bookkeeping.
        let retired = self.with_state(|s| s.retire(key, |_| false))?;
        let mut entry = [self.start_retiring(0, retired)];
        self.reset_and_forget(&mut entry);
        let [entry] = entry;
        entry.into_error().map_or(Ok(()), Err)
    }

    /// Deinitializes many regions, back to front; keeps going after errors, reports each
    /// failing entry to `report` with its index, and merges host calls over adjacent regions.
    /// An entry repeated in `keys` succeeds once; the repeat reports [`Error::UnknownKey`].
    ///
    /// Entries are handled in groups of consecutive entries, back to front, without
    /// allocating: a group's regions are taken out of service and their dealloc actions run,
    /// then their pages are reset, one host call per run of adjacent pages. A group holds at
    /// least 16 entries (the whole batch, if shorter).
    ///
    /// # Errors
    ///
    /// Each failing entry is reported with the error [`deinitialize`](Self::deinitialize)
    /// would return for it, as if the entries were processed one by one, back to front; a
    /// failed protect over pages that several entries share in one merged call is reported
    /// on each of them. Returns [`Error::Batch`] with the number of failed entries, if any
    /// failed.
    pub fn deinitialize_multiple(
        &self,
        keys: &[usize],
        mut report: impl FnMut(usize, Error<H::Error>),
    ) -> Result<(), Error<H::Error>> {
        let mut failed = 0;
        let mut end = keys.len();
        while end > 0 {
            let start = end.saturating_sub(BATCH_CHUNK);
            failed += self.deinitialize_chunk(keys, start, end, &mut report);
            end = start;
        }
        batch_result(failed)
    }

    fn deinitialize_chunk(
        &self,
        keys: &[usize],
        start: usize,
        end: usize,
        report: &mut impl FnMut(usize, Error<H::Error>),
    ) -> usize {
        let mut failed = 0;
        let mut chunk: Vec<Retiring<H::Error>, BATCH_CHUNK> = Vec::new();
        // 1. Back to front: take each region out of service and run its dealloc actions.
        for index in (start..end).rev() {
            let retired_here = |id| chunk.iter().any(|e: &Retiring<_>| e.region == id);
            match self.with_state(|s| s.retire(keys[index], retired_here)) {
                Ok(retired) => {
                    let pushed = chunk.push(self.start_retiring(index, retired));
                    debug_assert!(pushed.is_ok(), "at most BATCH_CHUNK entries");
                }
                Err(error) => {
                    report(index, error);
                    failed += 1;
                }
            }
        }
        self.reset_and_forget(&mut chunk);
        for entry in chunk {
            let index = entry.index;
            if let Some(error) = entry.into_error() {
                report(index, error);
                failed += 1;
            }
        }
        failed
    }

    /// Steps 2 and 3 of deinitialize: resets the pages of regions this thread retired, in
    /// address order, merging every run of touching pages across them (a k-way merge over
    /// the regions' sorted spans, one span per step), then forgets the regions. Failures are
    /// recorded in the entries.
    #[inline(always)] // so that a single deinitialize's known length of one folds the merge
    fn reset_and_forget(&self, chunk: &mut [Retiring<H::Error>]) {
        let reset = self.reset;
        let mut run: Option<(PageRange, bool, u32)> = None;
        // Runs never cross a slab's end: each host call stays inside one reservation, even
        // where the kernel placed two slabs side by side.
        let mut run_slab = 0;
        // Each entry holds its next span (the first one came with `retire`, the others follow
        // the region's chain): take the lowest. Where nothing merges (a single deinitialize,
        // or a host that overwrites freed bytes without a call to merge), any order will do:
        // entry by entry.
        let merges = !reset.overwrites();
        let mut first_pending = 0;
        let mut lowest = |chunk: &[Retiring<H::Error>]| {
            if let [only] = chunk {
                return only.next.map(|_| 0);
            }
            if !merges {
                let pending = chunk
                    .get(first_pending..)?
                    .iter()
                    .position(|r| r.next.is_some());
                first_pending += pending?;
                return Some(first_pending);
            }
            let pending = chunk.iter().enumerate();
            let starts = pending.filter_map(|(e, r)| r.next.map(|n| (e, n.span.range.start())));
            starts.min_by_key(|&(_, start)| start).map(|(e, _)| e)
        };
        while let Some(entry) = lowest(chunk) {
            let Some(NextSpan { slab, span, next }) = chunk[entry].next.take() else {
                break;
            };
            if let Some(start) = next {
                chunk[entry].next = self.with_state(|s| s.span_at(slab, start.get()));
            }
            if !reset.reuse_exec && span.prot.contains(Prot::EXEC) {
                continue; // quarantined in step 3
            }
            let protect = reset.protects(span.prot, false);
            if reset.overwrites() {
                // No host call: the pages keep their protection, their bytes overwritten.
                self.overwrite(&span, span.prot);
                continue;
            }
            if let Some((range, needs, members)) = &mut run {
                // Lazily, a run holds only spans that are protected, or only spans that are not.
                let joins = run_slab == slab && (!reset.lazy || *needs == protect);
                if let Some(joined) = range.join(&span.range).filter(|_| joins) {
                    *range = joined;
                    *needs |= protect;
                    *members |= 1 << entry;
                    continue;
                }
            }
            run_slab = slab;
            if let Some(done) = run.replace((span.range, protect, 1 << entry)) {
                self.finish_run(done, chunk, reset);
            }
        }
        if let Some(done) = run {
            self.finish_run(done, chunk, reset);
        }
        // 3. Forget the regions.
        self.with_state(|s| {
            for entry in chunk.iter() {
                let quarantine = reset.quarantine(entry.reset_error.is_some());
                s.forget(entry.region, quarantine, |span| reset.freed(span, false));
            }
        });
    }

    /// Step 1 of deinitialize, after `retire`: runs the region's dealloc actions, newest
    /// first, and returns its entry for steps 2 and 3.
    fn start_retiring(&self, index: usize, retired: Retired) -> Retiring<H::Error> {
        Retiring {
            index,
            region: retired.region,
            dealloc_failures: self.run_deallocs(&retired),
            reset_error: None,
            next: retired.first_span,
        }
    }

    /// Runs the dealloc actions of a region this thread retired, newest first; returns how
    /// many failed.
    fn run_deallocs(&self, retired: &Retired) -> usize {
        if !retired.has_deallocs {
            return 0;
        }
        self.take_and_run_deallocs(retired.region)
    }

    /// Runs the dealloc actions of `region`, which its caller retired. Kept out of line: its
    /// room for the actions is large, and regions without any do not need it.
    #[inline(never)]
    fn take_and_run_deallocs(&self, region: RegionId) -> usize {
        let mut deallocs = Deallocs::new();
        self.with_state(|s| s.take_deallocs(region, &mut deallocs));
        run_dealloc_actions(&deallocs)
    }

    /// Resets one merged run of a deinitialize batch and records a failure on its members.
    fn finish_run(
        &self,
        (range, needs_protect, members): (PageRange, bool, u32),
        chunk: &mut [Retiring<H::Error>],
        reset: Reset,
    ) {
        if let Err(error) = self.reset_run(range, needs_protect, reset) {
            for (bit, entry) in chunk.iter_mut().enumerate() {
                if members & (1 << bit) != 0 {
                    entry.reset_error.get_or_insert_with(|| error.clone());
                }
            }
        }
    }

    /// Releases the slab based at `base`: deinitializes the regions still in it, newest first
    /// (each dealloc action exactly once), then returns the address space to the host.
    ///
    /// # Errors
    ///
    /// An address that is not a slab base is [`Error::NotSlabBase`] inside a slab,
    /// [`Error::NotInAnySlab`] otherwise; then [`Error::Busy`] (a region of the slab is in
    /// progress, or the slab is being released). These change nothing.
    ///
    /// Otherwise the slab's regions are gone and every dealloc action ran once.
    /// [`Error::Host`]: the host could not unmap; the slab stays recorded and the release can
    /// be retried; `dealloc_failures` counts the dealloc actions that failed (the retry does
    /// not report them again). [`Error::DeallocFailed`]: the slab is released but some
    /// dealloc actions failed.
    pub fn release(&self, base: usize) -> Result<(), Error<H::Error>> {
        let size = self.with_state(|s| s.begin_release(base))?;
        let mut dealloc_failures = 0;
        while let Some(retired) = self.with_state(|s| s.retire_newest_in(base)) {
            dealloc_failures += self.run_deallocs(&retired);
            // The slab is unmapped next: its pages need no reset.
            let unreset = |span: &Span| (span.prot, span.range.end());
            self.with_state(|s| s.forget(retired.region, Quarantine::Nothing, unreset));
        }
        // SAFETY: (1) `base`/`size` are a recorded reservation, released only here, under the
        // slab's `Releasing` state that no other call passes; (2) its regions are gone and no
        // claim can enter a releasing slab.
        let unmapped = unsafe { self.host.release(base, size) };
        self.with_state(|s| s.finish_release(base, unmapped.is_ok()));
        if let Err(error) = unmapped {
            return Err(Error::Host {
                op: HostOp::Release,
                segment: None,
                error,
                quarantined: false,
                dealloc_failures,
            });
        }
        if dealloc_failures > 0 {
            return Err(Error::DeallocFailed {
                failed: dealloc_failures,
            });
        }
        Ok(())
    }

    /// Releases many slabs, back to front; keeps going after errors and reports each failing
    /// entry to `report` with its index.
    ///
    /// # Errors
    ///
    /// Each failing entry is reported with the error [`release`](Self::release) returns for
    /// it, one entry after the other, back to front (a repeated base finds its slab gone).
    /// Returns [`Error::Batch`] with the number of failed entries, if any failed.
    pub fn release_multiple(
        &self,
        bases: &[usize],
        mut report: impl FnMut(usize, Error<H::Error>),
    ) -> Result<(), Error<H::Error>> {
        let mut failed = 0;
        for (index, &base) in bases.iter().enumerate().rev() {
            if let Err(error) = self.release(base) {
                report(index, error);
                failed += 1;
            }
        }
        batch_result(failed)
    }

    /// Releases every slab, newest first, running every remaining dealloc action. The map
    /// stays usable afterwards. Dropping the map does the same.
    ///
    /// # Errors
    ///
    /// [`Error::Batch`] with the number of slabs whose release reported an error.
    pub fn shutdown(&self) -> Result<(), Error<H::Error>> {
        let mut failed = 0;
        let mut before = u64::MAX;
        while let Some((base, seq)) = self.with_state(|s| s.newest_slab_before(before)) {
            before = seq;
            if self.release(base).is_err() {
                failed += 1;
            }
        }
        batch_result(failed)
    }

    /// The number of slabs recorded.
    pub fn slab_count(&self) -> usize {
        self.with_state(|s| s.slab_count())
    }

    /// The number of regions recorded (live or in progress).
    pub fn region_count(&self) -> usize {
        self.with_state(|s| s.region_count())
    }

    /// The size of the slab based at `base`, if one is recorded: the address space a
    /// [`release`](Self::release) of `base` gives back.
    pub fn slab_size(&self, base: usize) -> Option<usize> {
        self.with_state(|s| s.slab_size(base))
    }

    /// The pages of the live region keyed `key`, from the start of its lowest page to the end
    /// of its highest (other regions' pages may lie between its segments): what a
    /// [`deinitialize`](Self::deinitialize) of `key` resets lies inside.
    pub fn region_extent(&self, key: usize) -> Option<(usize, usize)> {
        self.with_state(|s| s.region_extent(key))
    }

    /// Checks the bookkeeping's invariants (sorted, disjoint tables that agree with each
    /// other).
    ///
    /// # Errors
    ///
    /// A description of the first broken invariant.
    #[cfg(any(test, feature = "testing"))]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.with_state(|s| s.check())
    }
}

/// The aggregate result of a batch call that saw `failed` failing entries.
fn batch_result<E>(failed: usize) -> Result<(), Error<E>> {
    if failed == 0 {
        Ok(())
    } else {
        Err(Error::Batch { failed })
    }
}

impl<H: Host, S: Storage> Drop for JitMap<H, S> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
