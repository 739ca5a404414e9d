//! The map's bookkeeping: slabs, regions and the pages they own. Safe code only, no host calls.
//!
//! Every operation here runs under the map's lock and is short. Work that needs the host or
//! runs actions happens between two of these steps, on pages the first step claimed, so that
//! no other thread can touch them meanwhile:
//!
//! - initialize: [`State::claim`] (region `Initializing`), then [`State::commit`] or
//!   [`State::forget`];
//! - deinitialize: [`State::retire`] (region `Retiring`, dealloc actions taken out), then
//!   [`State::forget`];
//! - release: [`State::begin_release`] (slab `Releasing`), [`State::retire_newest_in`] until
//!   none is left, then [`State::finish_release`].

use core::mem;

use crate::action::Deallocs;
use crate::addr::PageRange;
use crate::error::{Error, Limit};
use crate::plan::{Plan, Span, Spans};
use crate::prot::Lifetime;
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
    pub(crate) range: PageRange,
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
#[derive(Debug)]
pub(crate) struct Region {
    pub(crate) key: usize,
    pub(crate) slab_base: usize,
    pub(crate) seq: u64,
    pub(crate) state: RegionState,
    /// Its pages, sorted; Finalize-lifetime spans only while initializing.
    pub(crate) spans: Spans,
    pub(crate) deallocs: Deallocs,
}

/// A region taken out of service, with what its caller needs to finish the job.
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) slot: u32,
    pub(crate) deallocs: Deallocs,
}

/// All bookkeeping of one map.
pub(crate) struct State<S: Storage> {
    /// Sorted by base.
    slabs: S::Slabs<Slab>,
    /// Reservations between `begin_reserve` and `finish_reserve`, holding a table entry each.
    pending_reserves: usize,
    /// Region records by slot; a slot never moves while the region lives.
    slots: S::Regions<Option<Region>>,
    /// Empty slots below `slots.len()`.
    free_slots: S::Regions<u32>,
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
            .partition_point(|s| s.range.end() <= addr)
    }

    fn span_containing(&self, addr: usize) -> Option<&PageSpan> {
        self.spans
            .items()
            .get(self.first_span_ending_after(addr))
            .filter(|s| s.range.contains(addr))
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
        };
        // Cannot fail: begin_reserve held the room.
        insert_sorted(&mut self.slabs, slab, |s| s.base)
            .map(|_| ())
            .map_err(|_| Error::CapacityExceeded(Limit::Slabs))
    }

    // ---- initialize ----

    /// Checks `plan` against the tables and, if it fits, records a new `Initializing` region
    /// that owns all its pages. Returns the region's slot.
    pub(crate) fn claim<E>(
        &mut self,
        plan: &Plan,
        segments: &[crate::request::Segment<'_>],
    ) -> Result<u32, Error<E>> {
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
        let slab = match slab_index {
            Some(i) => self.slabs.items()[i],
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
        for span in &plan.spans {
            let i = self.first_span_ending_after(span.range.start());
            if self
                .spans
                .items()
                .get(i)
                .is_some_and(|s| s.range.start() < span.range.end())
            {
                return Err(Error::Overlap {
                    segment: span.segment,
                });
            }
        }
        if self
            .keys
            .items()
            .binary_search_by_key(&plan.key, |k| k.0)
            .is_ok()
        {
            return Err(Error::KeyInUse { key: plan.key });
        }
        if self.span_containing(plan.key).is_some() {
            return Err(Error::Overlap {
                segment: plan.key_segment,
            });
        }
        let needs_slot = self.free_slots.items().is_empty();
        if (needs_slot && !self.slots.make_room(1)) || !self.keys.make_room(1) {
            return Err(Error::CapacityExceeded(Limit::Regions));
        }
        if !self.spans.make_room(plan.spans.len()) {
            return Err(Error::CapacityExceeded(Limit::Spans));
        }
        // Everything checked and the room held: from here on nothing fails.
        let seq = self.seq();
        let region = Region {
            key: plan.key,
            slab_base: slab.base,
            seq,
            state: RegionState::Initializing,
            spans: plan.spans.clone(),
            deallocs: Deallocs::new(),
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
        let _ = insert_sorted(&mut self.keys, (plan.key, slot), |k| k.0);
        for span in &plan.spans {
            let _ = insert_sorted(
                &mut self.spans,
                PageSpan {
                    range: span.range,
                    owner: Owner::Region(slot),
                },
                |s| s.range.start(),
            );
        }
        Ok(slot)
    }

    /// Makes an `Initializing` region `Live` with its dealloc actions, and frees its
    /// Finalize-lifetime pages (already reset by the caller), except executable ones when
    /// the host cannot reuse them: those are quarantined.
    pub(crate) fn commit(&mut self, slot: u32, deallocs: Deallocs, reuse_exec: bool) {
        let mut finalize_spans = Spans::new();
        if let Some(region) = self.region_mut(slot) {
            region.state = RegionState::Live;
            region.deallocs = deallocs;
            for span in region
                .spans
                .iter()
                .filter(|s| s.lifetime == Lifetime::Finalize)
            {
                let _ = finalize_spans.push(*span);
            }
            region.spans.retain(|s| s.lifetime == Lifetime::Standard);
        }
        for span in &finalize_spans {
            if reuse_exec || !span.prot.contains(crate::Prot::EXEC) {
                self.remove_span(span.range);
            } else {
                self.mark_quarantined(span.range);
            }
        }
    }

    fn remove_span(&mut self, range: PageRange) {
        if let Ok(i) = span_index(self.spans.items(), range) {
            self.spans.remove_at(i);
        }
    }

    fn mark_quarantined(&mut self, range: PageRange) {
        if let Ok(i) = span_index(self.spans.items(), range) {
            self.spans.items_mut()[i].owner = Owner::Quarantined;
        }
    }

    // ---- deinitialize ----

    /// Takes the `Live` region keyed `key` out of service: it becomes `Retiring` and its
    /// dealloc actions are handed to the caller, so that they can only ever run once.
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
        self.retire_slot(slot).ok_or(Error::Busy { addr: key })
    }

    fn retire_slot(&mut self, slot: u32) -> Option<Retired> {
        let region = self
            .region_mut(slot)
            .filter(|r| r.state == RegionState::Live)?;
        region.state = RegionState::Retiring;
        Some(Retired {
            slot,
            deallocs: mem::take(&mut region.deallocs),
        })
    }

    /// The slab base and the `index`-th span (in address order) of a region.
    pub(crate) fn retiring_span(&self, slot: u32, index: usize) -> Option<(usize, Span)> {
        let region = self.region(slot)?;
        region
            .spans
            .get(index)
            .map(|span| (region.slab_base, *span))
    }

    /// Quarantines the executable spans of a region, for hosts that cannot reuse them.
    pub(crate) fn quarantine_executable(&mut self, slot: u32) {
        let mut index = 0;
        while let Some((_, span)) = self.retiring_span(slot, index) {
            if span.prot.contains(crate::Prot::EXEC) {
                // Quarantining takes the span out of the region's list: stay at `index`.
                self.quarantine_span(slot, span.range);
            } else {
                index += 1;
            }
        }
    }

    /// Removes a region that is `Initializing` (rolled back) or `Retiring` (deinitialized).
    /// With `quarantine`, its pages stay recorded as quarantined instead of becoming free.
    pub(crate) fn forget(&mut self, slot: u32, quarantine: bool) {
        // Work on the record in place: it is large, and moving it out would copy it.
        let Some(region) = self
            .slots
            .items()
            .get(slot as usize)
            .and_then(Option::as_ref)
        else {
            return;
        };
        if let Ok(i) = self.keys.items().binary_search_by_key(&region.key, |k| k.0) {
            self.keys.remove_at(i);
        }
        for span in &region.spans {
            match span_index(self.spans.items(), span.range) {
                Ok(i) if quarantine => self.spans.items_mut()[i].owner = Owner::Quarantined,
                Ok(i) => drop(self.spans.remove_at(i)),
                Err(_) => {}
            }
        }
        self.slots.items_mut()[slot as usize] = None;
        // Cannot fail: at most one free slot per slot.
        let _ = self
            .free_slots
            .try_insert(self.free_slots.items().len(), slot);
    }

    /// Quarantines one span of a region before the region is forgotten (its pages could not
    /// be reset, or executable pages may not be reused).
    pub(crate) fn quarantine_span(&mut self, slot: u32, range: PageRange) {
        if let Some(region) = self.region_mut(slot) {
            region.spans.retain(|s| s.range != range);
        }
        self.mark_quarantined(range);
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
        while j < self.spans.items().len() && self.spans.items()[j].range.start() < end {
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

    /// The live and in-progress regions.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn regions(&self) -> impl Iterator<Item = &Region> {
        self.slots.items().iter().flatten()
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
            .any(|w| w[0].range.end() > w[1].range.start())
        {
            return Err("page spans unsorted or overlapping");
        }
        for span in spans {
            let Some(i) = self.slab_containing(span.range.start()) else {
                return Err("page span outside every slab");
            };
            if span.range.end() > slabs[i].range().1 {
                return Err("page span crosses its slab's end");
            }
            if let Owner::Region(slot) = span.owner {
                let Some(region) = self.region(slot) else {
                    return Err("span owned by an empty slot");
                };
                if !region.spans.iter().any(|s| s.range == span.range) {
                    return Err("span not listed by its region");
                }
            }
        }
        let keys = self.keys.items();
        if keys.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err("keys unsorted or duplicated");
        }
        if keys.len() != self.regions().count() {
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
            for span in &region.spans {
                let recorded = span_index(spans, span.range).ok().map(|i| spans[i]);
                if !recorded
                    .is_some_and(|s| s.range == span.range && s.owner == Owner::Region(slot))
                {
                    return Err("region span missing from the span table");
                }
            }
        }
        for &slot in self.free_slots.items() {
            if self.region(slot).is_some() || slot as usize >= self.slots.items().len() {
                return Err("free slot list is wrong");
            }
        }
        Ok(())
    }
}

/// Where the span starting at `range`'s start is, in the sorted span table.
fn span_index(spans: &[PageSpan], range: PageRange) -> Result<usize, usize> {
    spans.binary_search_by_key(&range.start(), |s| s.range.start())
}
