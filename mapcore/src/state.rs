//! The map's bookkeeping: slabs, regions and the pages they own. Safe code only, no host calls.
//!
//! Every operation here runs under the map's lock and is short. Work that needs the host or
//! runs actions happens between two of these steps, on pages the first step claimed, so that
//! no other thread can touch them meanwhile:
//!
//! - initialize: [`State::claim`] (region `Initializing`), then [`State::commit`] or
//!   [`State::forget`];
//! - deinitialize: [`State::retire`] (region `Retiring`), [`State::take_deallocs`] if it has
//!   dealloc actions, then [`State::forget`];
//! - release: [`State::begin_release`] (slab `Releasing`), [`State::retire_newest_in`] until
//!   none is left, then [`State::finish_release`].

use crate::action::{Action, Deallocs};
use crate::addr::PageRange;
use crate::error::{Error, Limit};
use crate::plan::{Plan, Span};
use crate::prot::{Lifetime, Prot};
use crate::request::MAX_SEGMENTS;
use crate::table::{insert_sorted, Storage, Table};

/// The life of a slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlabState {
    /// Regions may be initialized in it.
    Live,
    /// A release is running.
    Releasing,
    /// A release deinitialized everything but the host could not unmap; only a retried
    /// release is accepted.
    ReleaseFailed,
}

/// One reserved slab.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slab {
    pub(crate) base: usize,
    pub(crate) size: usize,
    /// Order of creation, for newest-first shutdown.
    pub(crate) seq: u64,
    pub(crate) state: SlabState,
    /// Covers every page ever claimed in the slab; the pages outside it are fresh from the
    /// host and read as zero.
    pub(crate) touched: PageRange,
}

impl Slab {
    fn range(&self) -> (usize, usize) {
        (self.base, self.base + self.size)
    }

    /// Whether a segment at `addr` with `empty` pages could belong to this slab: non-empty
    /// segments start strictly before the end, empty ones may sit exactly at the end.
    fn admits(&self, addr: usize, empty: bool) -> bool {
        let (start, end) = self.range();
        start <= addr && (addr < end || (empty && addr == end))
    }
}

/// Who owns a span of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The region in this slot.
    Region(u32),
    /// Nobody: the pages could not be reset and are never handed out again.
    Quarantined,
}

/// Pages in use: one segment of a region, or quarantined pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageSpan {
    /// The pages and what their segment wants for them.
    pub(crate) span: Span,
    pub(crate) owner: Owner,
}

/// The life of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegionState {
    /// Initialize is writing, protecting and running finalize actions.
    Initializing,
    /// Initialized; may be deinitialized.
    Live,
    /// Deinitialize or release is running its dealloc actions and resetting its pages.
    Retiring,
}

/// One region: the result of one successful initialize.
///
/// Small on purpose: its pages are the span-table entries it owns (Finalize-lifetime ones
/// only while initializing), all inside `hull`, and its dealloc actions live in a side table,
/// so that creating and forgetting a region moves a few words, not its segments and actions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub(crate) key: usize,
    pub(crate) slab_base: usize,
    pub(crate) seq: u64,
    pub(crate) state: RegionState,
    /// From the start of its lowest span to the end of its highest: where to look for its
    /// spans.
    hull: PageRange,
    /// Whether it has an entry in the dealloc-action table.
    has_deallocs: bool,
}

/// A region taken out of service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retired {
    pub(crate) slot: u32,
    /// Whether [`State::take_deallocs`] has actions to hand out.
    pub(crate) has_deallocs: bool,
    /// Its lowest span, where resetting its pages starts (set by `retire`, for deinitialize).
    pub(crate) first_span: Option<NextSpan>,
}

/// A successful claim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The new region's slot.
    pub(crate) slot: u32,
    /// The pages of the slab that had been claimed before (and may hold old bytes).
    pub(crate) touched: PageRange,
}

/// One span of a region, as the deinitialize merge walks them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextSpan {
    /// The base of the region's slab.
    pub(crate) slab: usize,
    pub(crate) span: Span,
    /// Whether it is certainly the region's last span.
    pub(crate) last: bool,
}

/// All bookkeeping of one map.
pub(crate) struct State<S: Storage> {
    /// Sorted by base.
    slabs: S::Slabs<Slab>,
    /// Reservations between `begin_reserve` and `finish_reserve`, holding a table entry each.
    pending_reserves: usize,
    /// Region records by slot; a slot never moves while the region lives.
    slots: S::Regions<Option<Region>>,
    /// Empty slots below `slots.len()`; always has room for every slot, so that forgetting a
    /// region (also on error paths) never allocates.
    free_slots: S::Regions<u32>,
    /// `(slot, dealloc actions)` of the regions that have actions (or are initializing with
    /// some), sorted by slot.
    deallocs: S::Regions<(u32, Deallocs)>,
    /// `(key, slot)`, sorted by key.
    keys: S::Regions<(usize, u32)>,
    /// Every page in use, sorted by address, disjoint.
    spans: S::Spans<PageSpan>,
    next_seq: u64,
}

impl<S: Storage> Default for State<S> {
    fn default() -> Self {
        Self {
            slabs: Default::default(),
            pending_reserves: 0,
            slots: Default::default(),
            free_slots: Default::default(),
            deallocs: Default::default(),
            keys: Default::default(),
            spans: Default::default(),
            next_seq: 0,
        }
    }
}

impl<S: Storage> core::fmt::Debug for State<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("slabs", &self.slabs.items())
            .field("regions", &self.keys.items().len())
            .field("spans", &self.spans.items().len())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> State<S> {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Index of the slab whose range contains `addr`.
    fn slab_containing(&self, addr: usize) -> Option<usize> {
        let slabs = self.slabs.items();
        let i = slabs.partition_point(|s| s.base <= addr);
        (i > 0 && slabs[i - 1].admits(addr, false)).then(|| i - 1)
    }

    /// Index of the slab with exactly this base.
    fn slab_index(&self, base: usize) -> Option<usize> {
        self.slabs
            .items()
            .binary_search_by_key(&base, |s| s.base)
            .ok()
    }

    /// Index of the first span that ends after `addr`.
    fn first_span_ending_after(&self, addr: usize) -> usize {
        self.spans
            .items()
            .partition_point(|s| s.span.range.end() <= addr)
    }

    fn span_containing(&self, addr: usize) -> Option<&PageSpan> {
        self.spans
            .items()
            .get(self.first_span_ending_after(addr))
            .filter(|s| s.span.range.contains(addr))
    }

    fn region(&self, slot: u32) -> Option<&Region> {
        self.slots
            .items()
            .get(slot as usize)
            .and_then(Option::as_ref)
    }

    fn region_mut(&mut self, slot: u32) -> Option<&mut Region> {
        self.slots
            .items_mut()
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
    }

    /// Index of the first span owned by `slot` that starts at or after `from`, searching the
    /// region's hull only.
    fn next_span_index(&self, slot: u32, from: usize) -> Option<usize> {
        let hull = self.region(slot)?.hull;
        let spans = self.spans.items();
        let first = spans.partition_point(|s| s.span.range.start() < from.max(hull.start()));
        spans[first..]
            .iter()
            .take_while(|s| s.span.range.start() < hull.end())
            .position(|s| s.owner == Owner::Region(slot))
            .map(|i| first + i)
    }

    /// Applies `f` to the index of every span owned by `slot`, in address order; `f` may
    /// change the entry's owner, or remove it and return `true`.
    fn for_each_span_of(&mut self, slot: u32, mut f: impl FnMut(&mut Self, usize) -> bool) {
        let Some(hull) = self.region(slot).map(|r| r.hull) else {
            return;
        };
        let mut i = self.first_span_ending_after(hull.start());
        while let Some(entry) = self.spans.items().get(i) {
            if entry.span.range.start() >= hull.end() {
                break;
            }
            let removed = entry.owner == Owner::Region(slot) && f(self, i);
            if !removed {
                i += 1;
            }
        }
    }

    // ---- reserve ----

    /// Holds a slab-table entry for a reservation about to be made.
    pub(crate) fn begin_reserve<E>(&mut self) -> Result<(), Error<E>> {
        if !self.slabs.make_room(self.pending_reserves + 1) {
            return Err(Error::CapacityExceeded(Limit::Slabs));
        }
        self.pending_reserves += 1;
        Ok(())
    }

    /// Gives back the entry held by `begin_reserve` (the host failed).
    pub(crate) fn abandon_reserve(&mut self) {
        self.pending_reserves -= 1;
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
        self.pending_reserves -= 1;
        let end = base
            .checked_add(size)
            .filter(|_| base.is_multiple_of(page_size));
        let Some(end) = end else {
            return Err(Error::HostInvariant { addr: base });
        };
        let i = self.slabs.items().partition_point(|s| s.base < base);
        let clashes_prev = i > 0 && self.slabs.items()[i - 1].range().1 > base;
        let clashes_next = self.slabs.items().get(i).is_some_and(|s| s.base < end);
        if clashes_prev || clashes_next {
            return Err(Error::HostInvariant { addr: base });
        }
        let seq = self.seq();
        let slab = Slab {
            base,
            size,
            seq,
            state: SlabState::Live,
            touched: PageRange::default(),
        };
        // Cannot fail: begin_reserve held the room.
        insert_sorted(&mut self.slabs, slab, |s| s.base)
            .map(|_| ())
            .map_err(|_| Error::CapacityExceeded(Limit::Slabs))
    }

    // ---- initialize ----

    /// Checks `plan` against the tables and, if it fits, records a new `Initializing` region
    /// that owns all its pages.
    pub(crate) fn claim<E>(
        &mut self,
        plan: &Plan<'_>,
        segments: &[crate::request::Segment<'_>],
        has_actions: bool,
    ) -> Result<Claim, Error<E>> {
        // The slab is the one holding the first segment that covers pages (or the first
        // segment, if none does), so that an empty segment at a slab's end does not pick the
        // adjacent slab.
        let first = plan.spans.first().map_or(0, |s| s.segment);
        let anchor = segments[first].addr;
        let slab_index = self
            .slabs
            .items()
            .iter()
            .position(|s| s.admits(anchor, plan.spans.is_empty()));
        let (slab_index, slab) = match slab_index {
            Some(i) => (i, self.slabs.items()[i]),
            None => return Err(Error::NotInSlab { segment: first }),
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
                    .is_some_and(|end| end <= slab.range().1);
            if !inside {
                // Crossing the slab's end, or lying in another slab, is a spanning request;
                // lying in no slab at all is not.
                let in_any = self.slabs.items().iter().any(|s| s.admits(seg.addr, empty));
                return Err(if in_any {
                    Error::SpansSlabs { segment }
                } else {
                    Error::NotInSlab { segment }
                });
            }
        }
        // Where each span goes in the span table, found while checking that its pages are
        // free (one search per span, not two).
        let mut places: heapless::Vec<usize, MAX_SEGMENTS> = heapless::Vec::new();
        for span in plan.spans {
            let i = self.first_span_ending_after(span.range.start());
            if self
                .spans
                .items()
                .get(i)
                .is_some_and(|s| s.span.range.start() < span.range.end())
            {
                return Err(Error::Overlap {
                    segment: span.segment,
                });
            }
            // Cannot fail: at most one span per segment.
            let _ = places.push(i);
        }
        let key_place = match self.keys.items().binary_search_by_key(&plan.key, |k| k.0) {
            Ok(_) => return Err(Error::KeyInUse { key: plan.key }),
            Err(place) => place,
        };
        // A key segment that covers pages was checked above; an empty one may sit in used
        // pages.
        let key_is_empty = segments[plan.key_segment].size == 0;
        if key_is_empty && self.span_containing(plan.key).is_some() {
            return Err(Error::Overlap {
                segment: plan.key_segment,
            });
        }
        let needs_slot = self.free_slots.items().is_empty();
        let room = if needs_slot {
            // A new slot, and room to list every slot as free later.
            let slots = self.slots.items().len();
            self.slots.make_room(1) && self.free_slots.make_room(slots + 1)
        } else {
            true
        };
        if !room || !self.keys.make_room(1) || (has_actions && !self.deallocs.make_room(1)) {
            return Err(Error::CapacityExceeded(Limit::Regions));
        }
        if !self.spans.make_room(plan.spans.len()) {
            return Err(Error::CapacityExceeded(Limit::Spans));
        }
        // Everything checked and the room held: from here on nothing fails.
        if !plan.hull.is_empty() {
            let touched = &mut self.slabs.items_mut()[slab_index].touched;
            *touched = if touched.is_empty() {
                plan.hull
            } else {
                let start = touched.start().min(plan.hull.start());
                let end = touched.end().max(plan.hull.end());
                // Cannot fail: both ranges are page-aligned.
                PageRange::new(start, end, 1).unwrap_or(*touched)
            };
        }
        let region = Region {
            key: plan.key,
            slab_base: slab.base,
            seq: self.seq(),
            state: RegionState::Initializing,
            hull: plan.hull,
            has_deallocs: has_actions,
        };
        let slot = match self.free_slots.items().len() {
            0 => {
                let slot = self.slots.items().len();
                let _ = self.slots.try_insert(slot, Some(region));
                slot as u32
            }
            n => {
                let slot = self.free_slots.remove_at(n - 1);
                self.slots.items_mut()[slot as usize] = Some(region);
                slot
            }
        };
        let _ = self.keys.try_insert(key_place, (plan.key, slot));
        if has_actions {
            // Filled by `commit`; held now so that commit cannot run out of room.
            let _ = insert_sorted(&mut self.deallocs, (slot, Deallocs::new()), |d| d.0);
        }
        // Each span lands after the ones inserted before it, all lower.
        for (k, (span, place)) in plan.spans.iter().zip(&places).enumerate() {
            let page_span = PageSpan {
                span: *span,
                owner: Owner::Region(slot),
            };
            let _ = self.spans.try_insert(place + k, page_span);
        }
        Ok(Claim {
            slot,
            touched: slab.touched,
        })
    }

    /// Makes an `Initializing` region `Live` with its dealloc actions, and frees its
    /// Finalize-lifetime pages if it has any (`has_finalize`; already reset by the caller),
    /// except executable ones when the host cannot reuse them: those are quarantined.
    pub(crate) fn commit(
        &mut self,
        slot: u32,
        deallocs: &[Action],
        has_finalize: bool,
        reuse_exec: bool,
    ) {
        let Some(region) = self.region_mut(slot) else {
            return;
        };
        region.state = RegionState::Live;
        if region.has_deallocs {
            if deallocs.is_empty() {
                region.has_deallocs = false;
                self.remove_deallocs(slot);
            } else if let Ok(i) = self.deallocs_index(slot) {
                // Cannot fail: both hold at most MAX_ACTION_PAIRS actions.
                let _ = self.deallocs.items_mut()[i].1.extend_from_slice(deallocs);
            }
        }
        if !has_finalize {
            return;
        }
        self.for_each_span_of(slot, |s, i| {
            let span = s.spans.items()[i].span;
            if span.lifetime != Lifetime::Finalize {
                return false;
            }
            if reuse_exec || !span.prot.contains(Prot::EXEC) {
                s.spans.remove_at(i);
                return true;
            }
            s.spans.items_mut()[i].owner = Owner::Quarantined;
            false
        });
    }

    fn deallocs_index(&self, slot: u32) -> Result<usize, usize> {
        self.deallocs.items().binary_search_by_key(&slot, |d| d.0)
    }

    fn remove_deallocs(&mut self, slot: u32) -> Deallocs {
        match self.deallocs_index(slot) {
            Ok(i) => self.deallocs.remove_at(i).1,
            Err(_) => Deallocs::new(),
        }
    }

    // ---- deinitialize ----

    /// Takes the `Live` region keyed `key` out of service: it becomes `Retiring`, and only its
    /// retirer may take its dealloc actions, so that they can only ever run once.
    ///
    /// `retired_here` are the slots the caller itself retired earlier in the same batch and
    /// has not forgotten yet: for errors they count as gone already, as if the batch entries
    /// were processed one by one (a repeated key is unknown, not busy).
    pub(crate) fn retire<E>(
        &mut self,
        key: usize,
        retired_here: &[u32],
    ) -> Result<Retired, Error<E>> {
        let gone = |slot: u32| retired_here.contains(&slot);
        let found = self.keys.items().binary_search_by_key(&key, |k| k.0);
        let Some(slot) = found
            .ok()
            .map(|i| self.keys.items()[i].1)
            .filter(|&slot| !gone(slot))
        else {
            // Quarantined pages belong to no region: an address there is no interior address.
            let in_region = self
                .span_containing(key)
                .is_some_and(|s| matches!(s.owner, Owner::Region(slot) if !gone(slot)));
            return Err(if in_region {
                Error::InteriorAddress { addr: key }
            } else if self.slab_containing(key).is_some() {
                Error::UnknownKey { addr: key }
            } else {
                Error::NotInAnySlab { addr: key }
            });
        };
        // A slab being released retires its regions itself, and must not be unmapped while
        // another thread still resets pages in it.
        let slab_live = self
            .region(slot)
            .and_then(|r| self.slab_index(r.slab_base))
            .is_some_and(|i| self.slabs.items()[i].state == SlabState::Live);
        if !slab_live {
            return Err(Error::Busy { addr: key });
        }
        let mut retired = self.retire_slot(slot).ok_or(Error::Busy { addr: key })?;
        // Deinitialize resets the region's pages, starting here; release unmaps them instead.
        retired.first_span = self.next_span_of(slot, 0);
        Ok(retired)
    }

    fn retire_slot(&mut self, slot: u32) -> Option<Retired> {
        let region = self
            .region_mut(slot)
            .filter(|r| r.state == RegionState::Live)?;
        region.state = RegionState::Retiring;
        Some(Retired {
            slot,
            has_deallocs: region.has_deallocs,
            first_span: None,
        })
    }

    /// Hands out the dealloc actions of a region its caller retired, or rolls back (the
    /// actions registered so far); they are no longer recorded afterwards.
    pub(crate) fn take_deallocs(&mut self, slot: u32) -> Deallocs {
        match self.region_mut(slot) {
            Some(region) if region.has_deallocs => {
                region.has_deallocs = false;
                self.remove_deallocs(slot)
            }
            _ => Deallocs::new(),
        }
    }

    /// The first span of a region that starts at or after `from`.
    pub(crate) fn next_span_of(&self, slot: u32, from: usize) -> Option<NextSpan> {
        let i = self.next_span_index(slot, from)?;
        let region = self.region(slot)?;
        let span = self.spans.items()[i].span;
        Some(NextSpan {
            slab: region.slab_base,
            span,
            last: span.range.end() >= region.hull.end(),
        })
    }

    /// Quarantines the executable spans of a region, for hosts that cannot reuse them.
    pub(crate) fn quarantine_executable(&mut self, slot: u32) {
        self.for_each_span_of(slot, |s, i| {
            if s.spans.items()[i].span.prot.contains(Prot::EXEC) {
                s.spans.items_mut()[i].owner = Owner::Quarantined;
            }
            false
        });
    }

    /// Removes a region that is `Initializing` (rolled back) or `Retiring` (deinitialized).
    /// With `quarantine`, its pages stay recorded as quarantined instead of becoming free.
    pub(crate) fn forget(&mut self, slot: u32, quarantine: bool) {
        let Some(region) = self.region(slot).copied() else {
            return;
        };
        if let Ok(i) = self.keys.items().binary_search_by_key(&region.key, |k| k.0) {
            self.keys.remove_at(i);
        }
        if region.has_deallocs {
            self.remove_deallocs(slot);
        }
        self.for_each_span_of(slot, |s, i| {
            if quarantine {
                s.spans.items_mut()[i].owner = Owner::Quarantined;
                false
            } else {
                s.spans.remove_at(i);
                true
            }
        });
        self.slots.items_mut()[slot as usize] = None;
        // Cannot fail: `claim` made room for every slot.
        let _ = self
            .free_slots
            .try_insert(self.free_slots.items().len(), slot);
    }

    // ---- release ----

    /// Starts releasing the slab based at `base`; returns its size.
    pub(crate) fn begin_release<E>(&mut self, base: usize) -> Result<usize, Error<E>> {
        let Some(i) = self.slab_index(base) else {
            return Err(if self.slab_containing(base).is_some() {
                Error::NotSlabBase { addr: base }
            } else {
                Error::NotInAnySlab { addr: base }
            });
        };
        let slab = self.slabs.items()[i];
        let busy = slab.state == SlabState::Releasing
            || self
                .slots
                .items()
                .iter()
                .flatten()
                .any(|r| r.slab_base == base && r.state != RegionState::Live);
        if busy {
            return Err(Error::Busy { addr: base });
        }
        self.slabs.items_mut()[i].state = SlabState::Releasing;
        Ok(slab.size)
    }

    /// Retires the newest live region of the slab based at `base`, if any.
    pub(crate) fn retire_newest_in(&mut self, base: usize) -> Option<Retired> {
        let slot = self
            .slots
            .items()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
            .filter(|(_, r)| r.slab_base == base && r.state == RegionState::Live)
            .max_by_key(|(_, r)| r.seq)
            .map(|(i, _)| i as u32)?;
        self.retire_slot(slot)
    }

    /// Ends a release: forgets the slab and its quarantined pages if the host unmapped it,
    /// otherwise keeps it as `ReleaseFailed` so the release can be retried.
    pub(crate) fn finish_release(&mut self, base: usize, unmapped: bool) {
        let Some(i) = self.slab_index(base) else {
            return;
        };
        if !unmapped {
            self.slabs.items_mut()[i].state = SlabState::ReleaseFailed;
            return;
        }
        let slab = self.slabs.remove_at(i);
        let (start, end) = slab.range();
        // Only quarantined pages can remain: release retired every region, and claims need a
        // live slab.
        let j = self.first_span_ending_after(start);
        while j < self.spans.items().len() && self.spans.items()[j].span.range.start() < end {
            self.spans.remove_at(j);
        }
    }

    /// The base of the newest slab created before `before` (a sequence number), for
    /// newest-first shutdown.
    pub(crate) fn newest_slab_before(&self, before: u64) -> Option<(usize, u64)> {
        self.slabs
            .items()
            .iter()
            .filter(|s| s.seq < before)
            .max_by_key(|s| s.seq)
            .map(|s| (s.base, s.seq))
    }

    // ---- inspection ----

    /// The slab records.
    pub(crate) fn slabs(&self) -> &[Slab] {
        self.slabs.items()
    }

    /// The page spans in use.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn page_spans(&self) -> &[PageSpan] {
        self.spans.items()
    }

    /// The region in `slot`, if any.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn region_in(&self, slot: u32) -> Option<&Region> {
        self.region(slot)
    }

    /// The number of regions recorded, in any state.
    pub(crate) fn region_count(&self) -> usize {
        self.keys.items().len()
    }

    /// Checks the tables' own invariants; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let slabs = self.slabs.items();
        if slabs.windows(2).any(|w| w[0].range().1 > w[1].base) {
            return Err("slabs unsorted or overlapping");
        }
        let spans = self.spans.items();
        if spans
            .windows(2)
            .any(|w| w[0].span.range.end() > w[1].span.range.start())
        {
            return Err("page spans unsorted or overlapping");
        }
        for page_span in spans {
            let range = page_span.span.range;
            let Some(i) = self.slab_containing(range.start()) else {
                return Err("page span outside every slab");
            };
            if range.end() > slabs[i].range().1 {
                return Err("page span crosses its slab's end");
            }
            if let Owner::Region(slot) = page_span.owner {
                let Some(region) = self.region(slot) else {
                    return Err("span owned by an empty slot");
                };
                if !region.hull.encloses(&range) {
                    return Err("span outside its region's hull");
                }
                if region.slab_base != slabs[i].base {
                    return Err("span in another slab than its region");
                }
                let finalize = page_span.span.lifetime == Lifetime::Finalize;
                if finalize && region.state != RegionState::Initializing {
                    return Err("finalize-lifetime span kept after initialize");
                }
            }
        }
        let keys = self.keys.items();
        if keys.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("keys unsorted or duplicated");
        }
        let regions = self.slots.items().iter().flatten().count();
        if keys.len() != regions {
            return Err("key index and region slots disagree");
        }
        for &(key, slot) in keys {
            let Some(region) = self.region(slot) else {
                return Err("key points at an empty slot");
            };
            if region.key != key {
                return Err("key index points at the wrong region");
            }
            if self.slab_index(region.slab_base).is_none() {
                return Err("region in an unknown slab");
            }
            if region.has_deallocs != self.deallocs_index(slot).is_ok() {
                return Err("dealloc-action table and region disagree");
            }
        }
        let deallocs = self.deallocs.items();
        if deallocs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("dealloc-action table unsorted or duplicated");
        }
        if deallocs.iter().any(|d| self.region(d.0).is_none()) {
            return Err("dealloc actions of an empty slot");
        }
        for &slot in self.free_slots.items() {
            if self.region(slot).is_some() || slot as usize >= self.slots.items().len() {
                return Err("free slot list is wrong");
            }
        }
        Ok(())
    }
}
