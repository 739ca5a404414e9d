//! The region table: every region found by id in O(1), each slab's regions in a list (newest
//! first), and the dealloc actions of the regions that have some.
//!
//! A region is found by its key through the span table: its key is where its lowest Standard
//! segment starts, so the span starting there is its own. Only a region whose key segment is
//! empty (covers no page) has no such span; those few are indexed here by key.

use crate::action::Deallocs;
use crate::addr::PageRange;
use crate::arena::{define_id, Arena, Entry};
use crate::ordered::OrderedMap;
use crate::slabs::SlabId;
use crate::table::Storage;

define_id!(
    /// A region's place in the region table; stays the same while the region lives.
    RegionId
);

define_id!(
    /// A region's dealloc actions' place in the side table.
    DeallocsId
);

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
/// only while initializing), chained from the start of its `hull`, and its dealloc
/// actions live in a side table, so that creating and forgetting a region moves a few words,
/// not its segments and actions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub(crate) key: usize,
    pub(crate) slab: SlabId,
    pub(crate) state: RegionState,
    /// From the start of its lowest span to the end of its highest (empty if it owns no
    /// page). Its lowest span is the head of the chain of its spans (see
    /// [`PageSpan::next`](crate::spans::PageSpan::next)).
    pub(crate) hull: PageRange,
    /// Whether its key segment covers no page (so no span of its own starts at its key).
    pub(crate) empty_key: bool,
    /// Its dealloc actions, if it has (or, initializing, may get) some.
    deallocs: Option<DeallocsId>,
    /// The next older region of its slab.
    pub(crate) older: Option<RegionId>,
    /// The next newer region of its slab.
    pub(crate) newer: Option<RegionId>,
}

impl Region {
    /// A region being initialized in `slab`.
    pub(crate) fn new(key: usize, empty_key: bool, slab: SlabId, hull: PageRange) -> Self {
        Self {
            key,
            empty_key,
            slab,
            state: RegionState::Initializing,
            hull,
            deallocs: None,
            older: None,
            newer: None,
        }
    }

    /// Where its lowest span starts, the head of the chain of its spans.
    pub(crate) fn first_span(&self) -> Option<usize> {
        (!self.hull.is_empty()).then(|| self.hull.start())
    }

    /// Whether it has an entry in the dealloc-action table.
    pub(crate) fn has_deallocs(&self) -> bool {
        self.deallocs.is_some()
    }
}

/// What forgetting a region changed for its slab.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Removed {
    /// The region's slab.
    pub(crate) slab: SlabId,
    /// If it was the slab's newest region: the slab's newest region now.
    pub(crate) newest: Option<Option<RegionId>>,
}

/// The regions, their key index and their dealloc actions.
pub(crate) struct Regions<S: Storage> {
    records: Arena<Region, RegionId, S::Regions<Entry<Region>>>,
    /// The regions whose key segment covers no page, by key.
    empty_keys: S::RegionIndex<usize, RegionId>,
    deallocs: Arena<Deallocs, DeallocsId, S::Regions<Entry<Deallocs>>>,
}

impl<S: Storage> Default for Regions<S> {
    fn default() -> Self {
        Self {
            records: Arena::default(),
            empty_keys: Default::default(),
            deallocs: Arena::default(),
        }
    }
}

impl<S: Storage> Regions<S> {
    /// The number of regions, in any state.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether one more region fits, with an entry for dealloc actions if `with_deallocs` and
    /// in the empty-key index if `empty_key`; a growable table reserves the room.
    #[inline(always)]
    pub(crate) fn make_room(&mut self, with_deallocs: bool, empty_key: bool) -> bool {
        self.records.make_room(1)
            && (!empty_key || self.empty_keys.make_room(1))
            && (!with_deallocs || self.deallocs.make_room(1))
    }

    /// Records `region` (its key not in use) as the newest of its slab, whose newest region
    /// so far is `older`, with an empty dealloc-action entry if `with_deallocs`. `None` only
    /// if [`Regions::make_room`] was not asked first.
    pub(crate) fn insert(
        &mut self,
        mut region: Region,
        with_deallocs: bool,
        older: Option<RegionId>,
    ) -> Option<RegionId> {
        if with_deallocs {
            region.deallocs = Some(self.deallocs.insert(Deallocs::new())?);
        }
        region.older = older;
        region.newer = None;
        let id = self.records.insert(region)?;
        if region.empty_key {
            let key = self.empty_keys.insert(region.key, id);
            debug_assert!(key.is_ok(), "room was made");
        }
        if let Some(older) = older.and_then(|older| self.records.get_mut(older)) {
            older.newer = Some(id);
        }
        Some(id)
    }

    /// Forgets a region, with its dealloc actions, and unlinks it from its slab's list.
    /// Returns its slab and, if it was the slab's newest, the slab's newest region now.
    pub(crate) fn remove(&mut self, id: RegionId) -> Option<Removed> {
        let region = self.records.get(id)?;
        let (older, newer, deallocs) = (region.older, region.newer, region.deallocs);
        let empty_key = region.empty_key.then_some(region.key);
        let removed = Removed {
            slab: region.slab,
            newest: newer.is_none().then_some(older),
        };
        if let Some(key) = empty_key {
            self.empty_keys.remove(&key);
        }
        if let Some(deallocs) = deallocs {
            self.deallocs.free(deallocs);
        }
        self.records.free(id);
        if let Some(newer) = newer.and_then(|newer| self.records.get_mut(newer)) {
            newer.older = older;
        }
        if let Some(older) = older.and_then(|older| self.records.get_mut(older)) {
            older.newer = newer;
        }
        Some(removed)
    }

    /// Every region, with its id.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RegionId, &Region)> {
        self.records.iter()
    }

    /// The region `id`.
    pub(crate) fn get(&self, id: RegionId) -> Option<&Region> {
        self.records.get(id)
    }

    /// The region `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: RegionId) -> Option<&mut Region> {
        self.records.get_mut(id)
    }

    /// The region keyed `key` whose key segment is empty.
    pub(crate) fn with_empty_key(&self, key: usize) -> Option<RegionId> {
        // Usually no region has an empty key segment: skip the search.
        if self.empty_keys.len() == 0 {
            return None;
        }
        self.empty_keys.get(&key)
    }

    /// The dealloc-action entry of region `id`, to fill.
    pub(crate) fn deallocs_mut(&mut self, id: RegionId) -> Option<&mut Deallocs> {
        let entry = self.records.get(id)?.deallocs?;
        self.deallocs.get_mut(entry)
    }

    /// Moves the dealloc actions of region `id` out of the table into `into` (nothing if it
    /// has none). Only the actions are copied: moving the whole entry would copy room for
    /// `MAX_ACTION_PAIRS` of them, twice.
    pub(crate) fn take_deallocs(&mut self, id: RegionId, into: &mut Deallocs) {
        let Some(entry) = self.records.get_mut(id).and_then(|r| r.deallocs.take()) else {
            return;
        };
        if let Some(kept) = self.deallocs.get(entry) {
            // Both hold at most MAX_ACTION_PAIRS actions.
            let copied = into.extend_from_slice(kept);
            debug_assert!(copied.is_ok(), "dealloc actions fit");
        }
        self.deallocs.free(entry);
    }

    /// Forgets the dealloc-action entry of region `id` (which ended up with none).
    pub(crate) fn drop_deallocs(&mut self, id: RegionId) {
        if let Some(entry) = self.records.get_mut(id).and_then(|r| r.deallocs.take()) {
            self.deallocs.free(entry);
        }
    }

    /// Checks the index, the lists and the side table against the records; returns what is
    /// broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.empty_keys.check()?;
        if !self.records.free_list_is_sound() || !self.deallocs.free_list_is_sound() {
            return Err("region free lists are wrong");
        }

        let mut with_deallocs = 0;
        for (id, region) in self.records.iter() {
            if region.empty_key && self.empty_keys.get(&region.key) != Some(id) {
                return Err("empty-key index misses a region");
            }
            if let Some(entry) = region.deallocs {
                with_deallocs += 1;
                if self.deallocs.get(entry).is_none() {
                    return Err("region points at no dealloc actions");
                }
            }
            let newer_ok = region.newer.is_none_or(|n| {
                self.records
                    .get(n)
                    .is_some_and(|n| n.older == Some(id) && n.slab == region.slab)
            });
            let older_ok = region.older.is_none_or(|o| {
                self.records
                    .get(o)
                    .is_some_and(|o| o.newer == Some(id) && o.slab == region.slab)
            });
            if !newer_ok || !older_ok {
                return Err("slab region list broken");
            }
        }
        let empty = self.records.iter().filter(|(_, r)| r.empty_key).count();
        if empty != self.empty_keys.len() {
            return Err("empty-key index holds a region it should not");
        }
        if with_deallocs != self.deallocs.len() {
            return Err("dealloc actions without a region");
        }
        Ok(())
    }
}
