//! The map's bookkeeping over its three tables ([`Slabs`], [`Regions`], [`Spans`]). Safe code
//! only, no host calls; every lookup is O(log n) or better.
//!
//! Every operation here runs under the map's lock and is short. Work that needs the host or
//! runs actions happens between two of these steps, on pages the first step claimed, so that
//! no other thread can touch them meanwhile:
//!
//! - initialize: [`State::place`] checks a plan against the tables, [`State::claim`] records
//!   the region (`Initializing`) and cannot fail; then [`State::commit`] or [`State::forget`];
//! - deinitialize: [`State::retire`] (region `Retiring`), [`State::take_deallocs`] if it has
//!   dealloc actions, then [`State::forget`];
//! - release: [`State::begin_release`] (slab `Releasing`), [`State::retire_newest_in`] until
//!   none is left, then [`State::finish_release`].

use core::num::NonZeroUsize;

use crate::action::{Action, Deallocs};
use crate::addr::PageRange;
use crate::error::{Error, Limit};
use crate::plan::{OldDirtyEnds, Plan, Span};
use crate::prot::{Lifetime, Prot};
use crate::regions::{Region, RegionId, RegionState, Regions};
use crate::request::Segment;
use crate::slabs::{Slab, SlabId, SlabState, Slabs};
use crate::spans::{Owner, PageSpan, Spans};
use crate::table::Storage;

/// Which pages of a forgotten region stay recorded as quarantined, never handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quarantine {
    /// None: all become free.
    Nothing,
    /// The executable ones (for hosts that cannot reuse executable pages).
    Executable,
    /// All of them (they could not be reset).
    All,
}

impl Quarantine {
    /// What stays out of use after a region's pages were reset: all of them if the reset
    /// `failed`, else the executable ones when the host cannot reuse them (`reuse_exec`).
    pub(crate) fn after_reset(failed: bool, reuse_exec: bool) -> Self {
        if failed {
            Self::All
        } else if reuse_exec {
            Self::Nothing
        } else {
            Self::Executable
        }
    }
}

/// A region taken out of service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retired {
    pub(crate) region: RegionId,
    /// Whether [`State::take_deallocs`] has actions to hand out.
    pub(crate) has_deallocs: bool,
    /// Its lowest span, where resetting its pages starts (set by `retire`, for deinitialize).
    pub(crate) first_span: Option<NextSpan>,
}

/// Where a checked initialize goes: everything [`State::claim`] needs to record it.
#[derive(Debug)]
pub(crate) struct Placement<'p> {
    spans: &'p [Span],
    protect: SegmentSet,
    key: usize,
    empty_key: bool,
    hull: PageRange,
    slab: SlabId,
    with_deallocs: bool,
}

/// A successful claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The new region.
    pub(crate) region: RegionId,
    /// The pages of the slab that had been claimed before (and may hold old bytes).
    pub(crate) touched: PageRange,
    /// The segments whose pages are not at their protection yet.
    pub(crate) protect: SegmentSet,
}

/// A set of segment indexes of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegmentSet(u16);

const _: () = assert!(
    crate::request::MAX_SEGMENTS <= 16,
    "a SegmentSet holds every segment"
);

impl SegmentSet {
    /// Adds `segment` (below `MAX_SEGMENTS`).
    pub(crate) fn insert(&mut self, segment: usize) {
        self.0 |= 1 << segment;
    }

    /// Whether `segment` is in the set.
    pub(crate) fn contains(self, segment: usize) -> bool {
        self.0 & (1 << segment) != 0
    }
}

/// One span of a region, as the deinitialize merge walks them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextSpan {
    /// The base of the region's slab.
    pub(crate) slab: usize,
    pub(crate) span: Span,
    /// Where the region's next span starts, if it has one (see [`State::span_at`]).
    pub(crate) next: Option<NonZeroUsize>,
}

/// All bookkeeping of one map.
pub(crate) struct State<S: Storage> {
    slabs: Slabs<S>,
    regions: Regions<S>,
    /// Every page in use.
    spans: Spans<S>,
    next_seq: u64,
}

impl<S: Storage> Default for State<S> {
    fn default() -> Self {
        Self {
            slabs: Slabs::default(),
            regions: Regions::default(),
            spans: Spans::default(),
            next_seq: 0,
        }
    }
}

impl<S: Storage> core::fmt::Debug for State<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("slabs", &self.slabs.len())
            .field("regions", &self.regions.len())
            .field("spans", &self.spans.len())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> State<S> {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Calls `f` with every span of the chain that starts at `first` (a region's spans), in
    /// address order; `f` may change a span's owner (its link is read before).
    fn for_each_in_chain(
        &mut self,
        first: Option<usize>,
        mut f: impl FnMut(&mut Spans<S>, PageSpan),
    ) {
        let mut at = first;
        while let Some(entry) = at.and_then(|start| self.spans.starting_at(start)) {
            at = entry.next();
            f(&mut self.spans, entry);
        }
    }

    /// The region keyed `key`: the owner of the span starting there if that is its key (with
    /// that span), otherwise a region whose key segment is empty. Inlined: every deinitialize
    /// starts here (measured: 19 instructions a cycle).
    #[inline(always)]
    fn find_key(&self, key: usize) -> Option<(RegionId, Option<PageSpan>)> {
        let spanned = self.spans.starting_at(key).and_then(|s| match s.owner {
            Owner::Region(id) => self
                .regions
                .get(id)
                .filter(|r| r.key == key)
                .map(|_| (id, Some(s))),
            Owner::Quarantined | Owner::Free => None,
        });
        spanned.or_else(|| self.regions.with_empty_key(key).map(|id| (id, None)))
    }

    /// The region keyed `key`.
    fn region_with_key(&self, key: usize) -> Option<RegionId> {
        self.find_key(key).map(|(id, _)| id)
    }

    // ---- reserve ----

    /// Holds a slab-table entry for a reservation about to be made.
    pub(crate) fn begin_reserve<E>(&mut self) -> Result<(), Error<E>> {
        if self.slabs.hold() {
            Ok(())
        } else {
            Err(Error::CapacityExceeded(Limit::Slabs))
        }
    }

    /// Gives back the entry held by `begin_reserve` (the host failed).
    pub(crate) fn abandon_reserve(&mut self) {
        self.slabs.unhold();
    }

    /// Records the slab the host returned, using the entry held by `begin_reserve`.
    ///
    /// # Errors
    ///
    /// [`Error::HostInvariant`] if the base is unaligned or overlaps a recorded slab; the
    /// caller must give the reservation back.
    pub(crate) fn finish_reserve<E>(
        &mut self,
        base: usize,
        size: usize,
        page_size: usize,
    ) -> Result<(), Error<E>> {
        let end = base
            .checked_add(size)
            .filter(|_| base.is_multiple_of(page_size));
        let Some(end) = end.filter(|&end| !self.slabs.clashes(base, end)) else {
            self.slabs.unhold();
            return Err(Error::HostInvariant { addr: base });
        };
        let seq = self.seq();
        let slab = Slab::new(base, size, seq);
        debug_assert_eq!(slab.end(), end);
        match self.slabs.insert(slab) {
            Some(_) => Ok(()),
            None => {
                debug_assert!(false, "begin_reserve held the room");
                Err(Error::CapacityExceeded(Limit::Slabs))
            }
        }
    }

    // ---- initialize ----

    /// Checks `plan` against the tables: its slab, that its pages and key are free, and that
    /// the tables have room (a growable table reserves it). Records nothing; tells in
    /// `old_dirty` where the old bytes of each span's pages may end.
    pub(crate) fn place<'p, E>(
        &mut self,
        plan: &Plan<'p>,
        segments: &[Segment<'_>],
        with_deallocs: bool,
        old_dirty: &mut OldDirtyEnds,
    ) -> Result<Placement<'p>, Error<E>> {
        // The slab is the one holding the first segment that covers pages (or the first
        // segment, if none does), so that an empty segment at a slab's end does not pick the
        // adjacent slab.
        let first = plan.spans.first().map_or(0, |s| usize::from(s.segment));
        let admitting = self
            .slabs
            .admitting(segments[first].addr, plan.spans.is_empty());
        let Some((slab_id, slab)) = admitting.and_then(|id| Some((id, *self.slabs.get(id)?)))
        else {
            return Err(Error::NotInSlab { segment: first });
        };
        if slab.state != SlabState::Live {
            return Err(Error::Busy { addr: slab.base });
        }
        for (segment, seg) in segments.iter().enumerate() {
            let empty = seg.size == 0;
            let inside = slab.admits(seg.addr, empty)
                && seg
                    .addr
                    .checked_add(seg.size)
                    .is_some_and(|end| end <= slab.end());
            if !inside {
                // Crossing the slab's end, or lying in another slab, is a spanning request;
                // lying in no slab at all is not.
                let in_any = self.slabs.admitting(seg.addr, empty).is_some();
                return Err(if in_any {
                    Error::SpansSlabs { segment }
                } else {
                    Error::NotInSlab { segment }
                });
            }
        }
        // Which spans need a protect: those whose pages are not all at the wanted protection
        // already. Pages with no entry are read-write unless the slab lost track of some.
        let mut protect = SegmentSet::default();
        let mut extra = 0;
        old_dirty.clear();
        for span in plan.spans {
            let survey = self.spans.survey(span.range);
            if survey.in_use {
                return Err(Error::Overlap {
                    segment: span.segment.into(),
                });
            }
            let pushed = old_dirty.push(survey.dirty_end);
            debug_assert!(pushed.is_ok(), "one entry a span");
            let known = survey.prot.filter(|_| !(survey.gaps && slab.lost_prots));
            if known != Some(span.prot) {
                protect.insert(span.segment.into());
            }
            extra += survey.extra;
        }
        // A key segment that covers pages is free (checked above), so no span starts at the
        // key; an empty one may sit in used pages.
        let key_is_empty = segments[plan.key_segment].size == 0;
        let key_in_use = if key_is_empty {
            self.region_with_key(plan.key).is_some()
        } else {
            self.regions.with_empty_key(plan.key).is_some()
        };
        if key_in_use {
            return Err(Error::KeyInUse { key: plan.key });
        }
        let key_page_in_use = || {
            self.spans
                .containing(plan.key)
                .is_some_and(|s| s.owner != Owner::Free)
        };
        if key_is_empty && key_page_in_use() {
            return Err(Error::Overlap {
                segment: plan.key_segment,
            });
        }
        if !self.regions.make_room(with_deallocs, key_is_empty) {
            return Err(Error::CapacityExceeded(Limit::Regions));
        }
        // With every free entry forgotten, nothing is cut: one entry a span.
        let fits = self.spans.make_room(extra) || self.forget_free_for(plan.spans, extra);
        if !fits {
            return Err(Error::CapacityExceeded(Limit::Spans));
        }
        Ok(Placement {
            spans: plan.spans,
            protect,
            key: plan.key,
            empty_key: key_is_empty,
            hull: plan.hull,
            slab: slab_id,
            with_deallocs,
        })
    }

    /// Makes room in a full table for a claim of `spans` that needs `extra` more entries, by
    /// forgetting free entries: first those the claim does not touch (so that `extra` still
    /// counts right), lowest first; if that is not enough, all of them (then nothing is cut
    /// and the claim needs one entry a span). Forgets nothing if even that would not make
    /// room, so that a refused request changes nothing. Walks the table: for a full fixed
    /// table only.
    fn forget_free_for(&mut self, spans: &[Span], extra: usize) -> bool {
        let touches = |range: PageRange| spans.iter().any(|s| s.range.overlaps(&range));
        let (untouched, touched) = self.spans.count_free(touches);
        if self.spans.make_room(extra.saturating_sub(untouched)) {
            self.evict_free(Some(extra), |range| !touches(range))
        } else if self
            .spans
            .make_room(spans.len().saturating_sub(untouched + touched))
        {
            self.evict_free(None, |_| true);
            self.spans.make_room(spans.len())
        } else {
            false
        }
    }

    /// Makes room for `needed` more spans (`None`: as much as there is) by forgetting free
    /// entries that are `evictable`; a slab whose free pages lose a protection other than
    /// read-write remembers it.
    fn evict_free(&mut self, needed: Option<usize>, evictable: impl Fn(PageRange) -> bool) -> bool {
        let (spans, slabs) = (&mut self.spans, &mut self.slabs);
        spans.evict_free(needed, evictable, |range| {
            if let Some(slab) = slabs
                .containing(range.start())
                .and_then(|id| slabs.get_mut(id))
            {
                slab.lost_prots = true;
            }
        })
    }

    /// Records a new `Initializing` region that owns all the pages of `placement`, which
    /// [`State::place`] checked under the same lock: nothing here can fail.
    pub(crate) fn claim(&mut self, placement: Placement<'_>) -> Claim {
        let Some(slab) = self.slabs.get_mut(placement.slab) else {
            unreachable!("placed in a recorded slab");
        };
        let touched = slab.touched;
        slab.touched = touched.cover(&placement.hull);
        let region = Region::new(
            placement.key,
            placement.empty_key,
            placement.slab,
            placement.hull,
        );
        let inserted = self
            .regions
            .insert(region, placement.with_deallocs, slab.newest_region);
        let Some(id) = inserted else {
            unreachable!("place made room for the region");
        };
        slab.newest_region = Some(id);
        // Chained in address order: the plan's spans are sorted.
        for (index, span) in placement.spans.iter().enumerate() {
            let next = placement.spans.get(index + 1).map(|s| s.range.start());
            let taken = self.spans.take(*span, Owner::Region(id), next);
            debug_assert!(taken, "place made room for the spans");
        }
        Claim {
            region: id,
            touched,
            protect: placement.protect,
        }
    }

    /// Makes an `Initializing` region `Live` with its dealloc actions, and frees its
    /// Finalize-lifetime pages if it has any (`has_finalize`; already reset by the caller, each
    /// span's pages left at `freed(span)`: protection, end of the old bytes), except
    /// executable ones when the host cannot reuse them: those are quarantined.
    pub(crate) fn commit(
        &mut self,
        id: RegionId,
        deallocs: &[Action],
        has_finalize: bool,
        reuse_exec: bool,
        freed: impl Fn(&Span) -> (Prot, usize),
    ) {
        let Some(region) = self.regions.get_mut(id) else {
            debug_assert!(false, "committed an unknown region");
            return;
        };
        region.state = RegionState::Live;
        let chain = region.first_span();
        if deallocs.is_empty() {
            if region.has_deallocs() {
                self.regions.drop_deallocs(id);
            }
        } else if let Some(kept) = self.regions.deallocs_mut(id) {
            // Both hold at most MAX_ACTION_PAIRS actions.
            let extended = kept.extend_from_slice(deallocs);
            debug_assert!(extended.is_ok(), "dealloc actions fit");
        }
        if !has_finalize {
            return;
        }
        // Free the Finalize-lifetime spans, relink the chain around them and shrink the hull
        // to the spans kept, so that it starts at the chain's head again.
        let mut hull = PageRange::default();
        let mut kept: Option<usize> = None;
        self.for_each_in_chain(chain, |spans, entry| {
            let range = entry.span.range;
            if entry.span.lifetime != Lifetime::Finalize {
                if let Some(previous) = kept {
                    spans.set_next(previous, Some(range.start()));
                }
                hull = hull.cover(&range);
                kept = Some(range.start());
                return;
            }
            let start = range.start();
            spans.settle(start, |span| {
                (reuse_exec || !span.prot.contains(Prot::EXEC)).then(|| freed(span))
            });
        });
        if let Some(last) = kept {
            self.spans.set_next(last, None);
        }
        if let Some(region) = self.regions.get_mut(id) {
            region.hull = hull;
        }
    }

    // ---- deinitialize ----

    /// Takes the `Live` region keyed `key` out of service: it becomes `Retiring`, and only its
    /// retirer may take its dealloc actions, so that they can only ever run once.
    ///
    /// `gone` says which regions the caller itself retired earlier in the same batch and has
    /// not forgotten yet: for errors they count as gone already, as if the batch entries
    /// were processed one by one (a repeated key is unknown, not busy).
    pub(crate) fn retire<E>(
        &mut self,
        key: usize,
        gone: impl Fn(RegionId) -> bool,
    ) -> Result<Retired, Error<E>> {
        let Some((id, key_span)) = self.find_key(key).filter(|&(id, _)| !gone(id)) else {
            // Quarantined pages belong to no region: an address there is no interior address.
            let in_region = self
                .spans
                .containing(key)
                .is_some_and(|s| matches!(s.owner, Owner::Region(id) if !gone(id)));
            return Err(if in_region {
                Error::InteriorAddress { addr: key }
            } else if self.slabs.containing(key).is_some() {
                Error::UnknownKey { addr: key }
            } else {
                Error::NotInAnySlab { addr: key }
            });
        };
        // A slab being released retires its regions itself, and must not be unmapped while
        // another thread still resets pages in it.
        let Some(region) = self.regions.get_mut(id) else {
            return Err(Error::Busy { addr: key });
        };
        let live = self
            .slabs
            .get(region.slab)
            .filter(|s| s.state == SlabState::Live);
        let Some(slab_base) = live.map(|s| s.base) else {
            return Err(Error::Busy { addr: key });
        };
        let hull = region.hull;
        let mut retired = Self::retire_region(id, region).ok_or(Error::Busy { addr: key })?;
        // Deinitialize resets the region's pages, starting with its lowest span, usually the
        // one at its key (release unmaps them instead).
        retired.first_span = match key_span {
            Some(entry) if hull.start() == key => Some(NextSpan {
                slab: slab_base,
                span: entry.span,
                next: entry.next,
            }),
            _ if hull.is_empty() => None,
            _ => self.span_at(slab_base, hull.start()),
        };
        Ok(retired)
    }

    /// Takes `region` (`id`) out of service if it is live.
    fn retire_region(id: RegionId, region: &mut Region) -> Option<Retired> {
        if region.state != RegionState::Live {
            return None;
        }
        region.state = RegionState::Retiring;
        Some(Retired {
            region: id,
            has_deallocs: region.has_deallocs(),
            first_span: None,
        })
    }

    /// Hands out the dealloc actions of a region its caller retired into `into`; they are no
    /// longer recorded afterwards.
    pub(crate) fn take_deallocs(&mut self, id: RegionId, into: &mut Deallocs) {
        self.regions.take_deallocs(id, into);
    }

    /// The span starting at `start` (a link of a retired region's chain), in the slab based
    /// at `slab`.
    pub(crate) fn span_at(&self, slab: usize, start: usize) -> Option<NextSpan> {
        let entry = self.spans.starting_at(start)?;
        Some(NextSpan {
            slab,
            span: entry.span,
            next: entry.next,
        })
    }

    /// Removes a region that is `Initializing` (rolled back) or `Retiring` (deinitialized).
    /// Its pages become free, each span's left at `freed(span)` (protection, end of the old
    /// bytes), except those `quarantine` keeps recorded as quarantined. Inlined into its three
    /// callers (measured: 11 instructions a deinitialize).
    #[inline(always)]
    pub(crate) fn forget(
        &mut self,
        id: RegionId,
        quarantine: Quarantine,
        freed: impl Fn(&Span) -> (Prot, usize),
    ) {
        let Some(region) = self.regions.get(id) else {
            debug_assert!(false, "forgot an unknown region");
            return;
        };
        // Along the region's chain: one exact lookup a span.
        let mut at = region.first_span();
        while let Some(start) = at {
            let before = self.spans.settle(start, |span| {
                let keep = match quarantine {
                    Quarantine::Nothing => false,
                    Quarantine::All => true,
                    Quarantine::Executable => span.prot.contains(Prot::EXEC),
                };
                (!keep).then(|| freed(span))
            });
            debug_assert!(
                before.is_some_and(|e| e.owner == Owner::Region(id)),
                "a region's chain holds its spans"
            );
            at = before.and_then(|e| e.next());
        }
        let Some(removed) = self.regions.remove(id) else {
            debug_assert!(false, "forgot an unknown region");
            return;
        };
        if let Some(newest) = removed.newest {
            if let Some(slab) = self.slabs.get_mut(removed.slab) {
                slab.newest_region = newest;
            }
        }
    }

    // ---- release ----

    /// Starts releasing the slab based at `base`; returns its size.
    pub(crate) fn begin_release<E>(&mut self, base: usize) -> Result<usize, Error<E>> {
        let found = self.slabs.with_base(base);
        let Some((id, slab)) = found.and_then(|id| Some((id, *self.slabs.get(id)?))) else {
            return Err(if self.slabs.containing(base).is_some() {
                Error::NotSlabBase { addr: base }
            } else {
                Error::NotInAnySlab { addr: base }
            });
        };
        let busy = slab.state == SlabState::Releasing
            || self
                .regions_of(&slab)
                .any(|(_, r)| r.state != RegionState::Live);
        if busy {
            return Err(Error::Busy { addr: base });
        }
        if let Some(slab) = self.slabs.get_mut(id) {
            slab.state = SlabState::Releasing;
        }
        Ok(slab.size)
    }

    /// The regions of `slab`, newest first.
    fn regions_of<'a>(&'a self, slab: &Slab) -> impl Iterator<Item = (RegionId, &'a Region)> {
        let mut next = slab.newest_region;
        core::iter::from_fn(move || {
            let id = next?;
            let region = self.regions.get(id)?;
            next = region.older;
            Some((id, region))
        })
    }

    /// Retires the newest live region of the slab based at `base`, if any.
    pub(crate) fn retire_newest_in(&mut self, base: usize) -> Option<Retired> {
        let slab = *self.slabs.get(self.slabs.with_base(base)?)?;
        let newest_live = self
            .regions_of(&slab)
            .find(|(_, r)| r.state == RegionState::Live)
            .map(|(id, _)| id)?;
        Self::retire_region(newest_live, self.regions.get_mut(newest_live)?)
    }

    /// Ends a release: forgets the slab and its quarantined pages if the host unmapped it,
    /// otherwise keeps it as `ReleaseFailed` so the release can be retried.
    pub(crate) fn finish_release(&mut self, base: usize, unmapped: bool) {
        let Some(id) = self.slabs.with_base(base) else {
            return;
        };
        if !unmapped {
            if let Some(slab) = self.slabs.get_mut(id) {
                slab.state = SlabState::ReleaseFailed;
            }
            return;
        }
        let Some(slab) = self.slabs.remove(id) else {
            return;
        };
        debug_assert!(slab.newest_region.is_none(), "release retired every region");
        // Only free and quarantined pages can remain: release retired every region, and claims
        // need a live slab.
        if let Some(range) = PageRange::new(slab.base, slab.end(), 1) {
            self.spans.remove_within(range);
        }
    }

    /// The base and sequence number of the newest slab created before `before` (a sequence
    /// number), for newest-first shutdown.
    pub(crate) fn newest_slab_before(&self, before: u64) -> Option<(usize, u64)> {
        self.slabs.newest_before(before).map(|s| (s.base, s.seq))
    }

    // ---- inspection ----

    /// The number of slabs recorded.
    pub(crate) fn slab_count(&self) -> usize {
        self.slabs.len()
    }

    /// The number of regions recorded, in any state.
    pub(crate) fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// The size of the slab based at `base`.
    pub(crate) fn slab_size(&self, base: usize) -> Option<usize> {
        Some(self.slabs.get(self.slabs.with_base(base)?)?.size)
    }

    /// The hull of the live region keyed `key`, as (start, end).
    pub(crate) fn region_extent(&self, key: usize) -> Option<(usize, usize)> {
        let region = self.regions.get(self.region_with_key(key)?)?;
        (region.state == RegionState::Live).then(|| (region.hull.start(), region.hull.end()))
    }

    /// The slab records, in address order.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn slabs(&self) -> impl Iterator<Item = &Slab> {
        self.slabs.iter().map(|(_, slab)| slab)
    }

    /// The page spans in use, in address order.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn page_spans(&self) -> impl Iterator<Item = PageSpan> + '_ {
        self.spans.iter()
    }

    /// The region `id`, if any.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn region(&self, id: RegionId) -> Option<&Region> {
        self.regions.get(id)
    }

    /// Checks the tables' own invariants and that they agree; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.slabs.check()?;
        self.regions.check()?;
        self.spans.check()?;
        // Spans and slabs both in address order: one walk over the two.
        let mut slabs = self.slabs.iter().peekable();
        let mut keyed: isize = 0;
        let mut owned = 0;
        for page_span in self.spans.iter() {
            let range = page_span.span.range;
            while slabs.next_if(|(_, s)| s.end() <= range.start()).is_some() {}
            let Some(&(slab, slab_record)) = slabs.peek() else {
                return Err("page span outside every slab");
            };
            if range.start() < slab_record.base {
                return Err("page span outside every slab");
            }
            if range.end() > slab_record.end() {
                return Err("page span crosses its slab's end");
            }
            if !(range.start()..=range.end()).contains(&page_span.span.dirty_end) {
                return Err("page span's bytes that may not be zero end outside it");
            }
            if page_span.owner == Owner::Free && !slab_record.touched.encloses(&range) {
                return Err("free span outside the pages its slab ever claimed");
            }
            if page_span.owner == Owner::Free && page_span.next().is_some() {
                return Err("a free span is chained");
            }
            if let Owner::Region(id) = page_span.owner {
                owned += 1;
                let Some(region) = self.regions.get(id) else {
                    return Err("span owned by an unknown region");
                };
                if !region.hull.encloses(&range) {
                    return Err("span outside its region's hull");
                }
                if region.slab != slab {
                    return Err("span in another slab than its region");
                }
                let finalize = page_span.span.lifetime == Lifetime::Finalize;
                if finalize && region.state != RegionState::Initializing {
                    return Err("finalize-lifetime span kept after initialize");
                }
                if range.start() == region.key && !region.empty_key {
                    keyed += 1;
                }
            }
        }
        // Each region's chain links exactly the spans it owns, in address order.
        let mut chained = 0;
        for (id, region) in self.regions.iter() {
            let mut at = region.first_span();
            let mut end = 0;
            while let Some(start) = at {
                let Some(entry) = self.spans.starting_at(start) else {
                    return Err("a region's chain links a missing span");
                };
                if entry.owner != Owner::Region(id) || start < end {
                    return Err("a region's chain links a span out of order or not its own");
                }
                chained += 1;
                end = entry.span.range.end();
                at = entry.next();
            }
        }
        if chained != owned {
            return Err("a region's chain misses one of its spans");
        }
        let mut listed = 0;
        for (slab_id, slab) in self.slabs.iter() {
            for (_, region) in self.regions_of(slab) {
                listed += 1;
                if region.slab != slab_id || listed > self.regions.len() {
                    return Err("slab lists a region of another slab");
                }
                if !region.empty_key {
                    keyed -= 1;
                }
            }
            if slab
                .newest_region
                .is_some_and(|id| self.regions.get(id).is_none_or(|r| r.newer.is_some()))
            {
                return Err("slab's newest region is not the newest");
            }
        }
        if listed != self.regions.len() {
            return Err("a region is in no slab's list");
        }
        // Each region with a non-empty key segment owns the span starting at its key, which is
        // how it is found by key (the others are in the empty-key index).
        if keyed != 0 {
            return Err("a region does not own the span at its key");
        }
        Ok(())
    }
}
