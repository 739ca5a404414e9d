//! The slab table: every reserved slab, found by id, by address and by age in O(log n).

use core::cell::Cell;

use crate::addr::PageRange;
use crate::arena::{define_id, Arena, Entry};
use crate::ordered::OrderedMap;
use crate::regions::RegionId;
use crate::table::Storage;

define_id!(
    /// A slab's place in the slab table; stays the same while the slab lives.
    SlabId
);

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
    /// Some free pages without a span entry may not be read-write: their entries were
    /// forgotten to make room in a full table.
    pub(crate) lost_prots: bool,
    /// The newest region in the slab: the head of its regions' list, newest first.
    pub(crate) newest_region: Option<RegionId>,
}

impl Slab {
    /// A live slab just reserved: nothing claimed in it yet.
    pub(crate) fn new(base: usize, size: usize, seq: u64) -> Self {
        Self {
            base,
            size,
            seq,
            state: SlabState::Live,
            touched: PageRange::default(),
            lost_prots: false,
            newest_region: None,
        }
    }

    /// One past the slab's last byte.
    pub(crate) fn end(&self) -> usize {
        self.base + self.size
    }

    /// Whether a segment at `addr` with no pages (`empty`) or some could belong to this slab:
    /// non-empty segments start strictly before the end, empty ones may sit exactly at the
    /// end.
    pub(crate) fn admits(&self, addr: usize, empty: bool) -> bool {
        self.base <= addr && (addr < self.end() || (empty && addr == self.end()))
    }
}

/// The slabs, indexed by base and by age.
pub(crate) struct Slabs<S: Storage> {
    records: Arena<Slab, SlabId, S::Slabs<Entry<Slab>>>,
    by_base: S::SlabIndex<usize, SlabId>,
    by_age: S::SlabIndex<u64, SlabId>,
    /// Reservations between [`Slabs::hold`] and [`Slabs::insert`], each holding room for one
    /// slab.
    held: usize,
    /// The slab [`Slabs::admitting`] found last: consecutive requests usually go to the same
    /// slab, and checking it first skips the search.
    last_found: Cell<Option<SlabId>>,
}

impl<S: Storage> Default for Slabs<S> {
    fn default() -> Self {
        Self {
            records: Arena::default(),
            by_base: Default::default(),
            by_age: Default::default(),
            held: 0,
            last_found: Cell::new(None),
        }
    }
}

impl<S: Storage> Slabs<S> {
    /// The number of slabs.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Holds room for one more slab; `false` if the table is full.
    pub(crate) fn hold(&mut self) -> bool {
        let n = self.held + 1;
        let room =
            self.records.make_room(n) && self.by_base.make_room(n) && self.by_age.make_room(n);
        if room {
            self.held = n;
        }
        room
    }

    /// Gives back room held by [`Slabs::hold`].
    pub(crate) fn unhold(&mut self) {
        debug_assert!(self.held > 0, "no room held");
        self.held = self.held.saturating_sub(1);
    }

    /// Whether `[base, end)` overlaps a recorded slab.
    pub(crate) fn clashes(&self, base: usize, end: usize) -> bool {
        let below = self.by_base.below(&base, true);
        let above = self.by_base.above(&base, false);
        below.is_some_and(|(_, id)| self.records.get(id).is_some_and(|s| s.end() > base))
            || above.is_some_and(|(start, _)| start < end)
    }

    /// Records `slab` in room held by [`Slabs::hold`] (which it uses up). The caller checked
    /// that it does not clash with another slab. `None` only if no room was held.
    pub(crate) fn insert(&mut self, slab: Slab) -> Option<SlabId> {
        debug_assert!(self.held > 0 && !self.clashes(slab.base, slab.end()));
        self.held = self.held.saturating_sub(1);
        let id = self.records.insert(slab)?;
        let by_base = self.by_base.insert(slab.base, id);
        let by_age = self.by_age.insert(slab.seq, id);
        debug_assert!(by_base.is_ok() && by_age.is_ok(), "room was held");
        Some(id)
    }

    /// Forgets a slab.
    pub(crate) fn remove(&mut self, id: SlabId) -> Option<Slab> {
        let slab = self.records.remove(id)?;
        self.by_base.remove(&slab.base);
        self.by_age.remove(&slab.seq);
        Some(slab)
    }

    /// The slab `id`.
    pub(crate) fn get(&self, id: SlabId) -> Option<&Slab> {
        self.records.get(id)
    }

    /// The slab `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: SlabId) -> Option<&mut Slab> {
        self.records.get_mut(id)
    }

    /// The slab based exactly at `base`.
    pub(crate) fn with_base(&self, base: usize) -> Option<SlabId> {
        self.by_base.get(&base)
    }

    /// The slab whose range contains `addr`.
    pub(crate) fn containing(&self, addr: usize) -> Option<SlabId> {
        self.admitting(addr, false)
    }

    /// The lowest slab that [admits](Slab::admits) a segment at `addr`: with `empty`, a
    /// slab ending exactly at `addr` comes before one starting there.
    #[inline(always)]
    pub(crate) fn admitting(&self, addr: usize, empty: bool) -> Option<SlabId> {
        // Slabs do not overlap, so the last slab found is the answer whenever it admits a
        // non-empty segment (an empty one at a slab's end may belong to the slab before).
        // The id may have been reused since: the check reads the slab recorded now.
        let last = self.last_found.get().filter(|_| !empty);
        if let Some(id) = last.filter(|&id| self.admits(id, addr, false)) {
            return Some(id);
        }
        self.search_admitting(addr, empty)
    }

    /// Whether the slab `id` is recorded and [admits](Slab::admits) a segment at `addr`.
    fn admits(&self, id: SlabId, addr: usize, empty: bool) -> bool {
        self.records.get(id).is_some_and(|s| s.admits(addr, empty))
    }

    /// [`Slabs::admitting`] by a search of the index.
    fn search_admitting(&self, addr: usize, empty: bool) -> Option<SlabId> {
        let admits = |(_, id): (usize, SlabId)| self.admits(id, addr, empty).then_some(id);
        let ending_here = if empty {
            self.by_base.below(&addr, false).and_then(admits)
        } else {
            None
        };
        let found = ending_here.or_else(|| self.by_base.below(&addr, true).and_then(admits));
        if found.is_some() {
            self.last_found.set(found);
        }
        found
    }

    /// The newest slab created before `seq`.
    pub(crate) fn newest_before(&self, seq: u64) -> Option<&Slab> {
        let (_, id) = self.by_age.below(&seq, false)?;
        self.records.get(id)
    }

    #[cfg(any(test, feature = "testing"))]
    /// Every slab, in address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlabId, &Slab)> {
        self.by_base
            .entries()
            .filter_map(|(_, id)| self.records.get(id).map(|s| (id, s)))
    }

    /// Checks the indexes against the records; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.by_base.check()?;
        self.by_age.check()?;
        if !self.records.free_list_is_sound() {
            return Err("slab free list is wrong");
        }
        let n = self.records.len();
        if self.by_base.len() != n || self.by_age.len() != n {
            return Err("slab indexes and records disagree");
        }
        // Each index entry leads to a record with its key; keys are distinct and the counts
        // equal, so every record is in both indexes exactly once.
        let mut end = 0;
        for (base, id) in self.by_base.entries() {
            let slab = self.records.get(id).filter(|s| s.base == base);
            let Some(slab) = slab else {
                return Err("slab index points at the wrong slab");
            };
            if slab.base < end {
                return Err("slabs overlap");
            }
            end = slab.end();
        }
        if self
            .by_age
            .entries()
            .any(|(seq, id)| self.records.get(id).is_none_or(|s| s.seq != seq))
        {
            return Err("slab age index points at the wrong slab");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Fixed;

    fn add(slabs: &mut Slabs<Fixed<4, 4, 4>>, base: usize, size: usize, seq: u64) -> SlabId {
        assert!(slabs.hold());
        slabs.insert(Slab::new(base, size, seq)).unwrap()
    }

    #[test]
    fn the_last_slab_found_never_answers_for_another() {
        let mut slabs = Slabs::<Fixed<4, 4, 4>>::default();
        let a = add(&mut slabs, 0x10000, 0x4000, 1);
        let b = add(&mut slabs, 0x14000, 0x4000, 2);
        assert_eq!(slabs.admitting(0x11000, false), Some(a));
        // The slab found last does not admit the address: the search runs.
        assert_eq!(slabs.admitting(0x15000, false), Some(b));
        // An empty segment at a's end belongs to a, although b was found last.
        assert_eq!(slabs.admitting(0x14000, true), Some(a));
        assert_eq!(slabs.admitting(0x14000, false), Some(b));
        // b's id is reused by a slab elsewhere: the old address is in no slab.
        slabs.remove(b);
        let c = add(&mut slabs, 0x40000, 0x1000, 3);
        assert_eq!(c, b, "the arena reuses the freed id");
        assert_eq!(slabs.admitting(0x15000, false), None);
        assert_eq!(slabs.admitting(0x40000, false), Some(c));
    }
}
