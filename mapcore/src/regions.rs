//! The region table: every region found by id in O(1) and by key in O(log n), each slab's
//! regions in a list (newest first), and the dealloc actions of the regions that have some.

use crate::action::Deallocs;
use crate::addr::PageRange;
use crate::arena::{define_id, Arena, Entry};
use crate::slabs::SlabId;
use crate::table::Storage;
use crate::tree::{Node, Tree};

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
/// only while initializing), all inside `hull`, and its dealloc actions live in a side table,
/// so that creating and forgetting a region moves a few words, not its segments and actions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub(crate) key: usize,
    pub(crate) slab: SlabId,
    pub(crate) state: RegionState,
    /// From the start of its lowest span to the end of its highest: where to look for its
    /// spans.
    pub(crate) hull: PageRange,
    /// Its dealloc actions, if it has (or, initializing, may get) some.
    deallocs: Option<DeallocsId>,
    /// The next older region of its slab.
    pub(crate) older: Option<RegionId>,
    /// The next newer region of its slab.
    pub(crate) newer: Option<RegionId>,
}

impl Region {
    /// A region being initialized in `slab`.
    pub(crate) fn new(key: usize, slab: SlabId, hull: PageRange) -> Self {
        Self {
            key,
            slab,
            state: RegionState::Initializing,
            hull,
            deallocs: None,
            older: None,
            newer: None,
        }
    }

    /// Whether it has an entry in the dealloc-action table.
    pub(crate) fn has_deallocs(&self) -> bool {
        self.deallocs.is_some()
    }
}

/// The regions, their key index and their dealloc actions.
pub(crate) struct Regions<S: Storage> {
    records: Arena<Region, RegionId, S::Regions<Entry<Region>>>,
    keys: Tree<usize, RegionId, S::Regions<Node<usize, RegionId>>>,
    deallocs: Arena<Deallocs, DeallocsId, S::Regions<Entry<Deallocs>>>,
}

impl<S: Storage> Default for Regions<S> {
    fn default() -> Self {
        Self {
            records: Arena::default(),
            keys: Tree::default(),
            deallocs: Arena::default(),
        }
    }
}

impl<S: Storage> Regions<S> {
    /// The number of regions, in any state.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether one more region fits, with an entry for dealloc actions if `with_deallocs`;
    /// a growable table reserves the room.
    pub(crate) fn make_room(&mut self, with_deallocs: bool) -> bool {
        self.records.make_room(1)
            && self.keys.make_room(1)
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
            region.deallocs = Some(self.deallocs.insert(Deallocs::new()).ok()?);
        }
        region.older = older;
        region.newer = None;
        let id = self.records.insert(region).ok()?;
        let key = self.keys.insert(region.key, id);
        debug_assert!(key.is_ok(), "room was made");
        if let Some(older) = older.and_then(|older| self.records.get_mut(older)) {
            older.newer = Some(id);
        }
        Some(id)
    }

    /// Forgets a region, with its dealloc actions, and unlinks it from its slab's list. If it
    /// was the newest of its slab ([`Region::newer`] is `None`), [`Region::older`] is the
    /// slab's newest now.
    pub(crate) fn remove(&mut self, id: RegionId) -> Option<Region> {
        let region = self.records.remove(id)?;
        self.keys.remove(&region.key);
        if let Some(deallocs) = region.deallocs {
            self.deallocs.remove(deallocs);
        }
        if let Some(newer) = region.newer.and_then(|newer| self.records.get_mut(newer)) {
            newer.older = region.older;
        }
        if let Some(older) = region.older.and_then(|older| self.records.get_mut(older)) {
            older.newer = region.newer;
        }
        Some(region)
    }

    /// The region `id`.
    pub(crate) fn get(&self, id: RegionId) -> Option<&Region> {
        self.records.get(id)
    }

    /// The region `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: RegionId) -> Option<&mut Region> {
        self.records.get_mut(id)
    }

    /// The region keyed `key`.
    pub(crate) fn with_key(&self, key: usize) -> Option<RegionId> {
        self.keys.get(&key)
    }

    /// The dealloc-action entry of region `id`, to fill.
    pub(crate) fn deallocs_mut(&mut self, id: RegionId) -> Option<&mut Deallocs> {
        let entry = self.records.get(id)?.deallocs?;
        self.deallocs.get_mut(entry)
    }

    /// Takes the dealloc actions of region `id` out of the table (none if it has none).
    pub(crate) fn take_deallocs(&mut self, id: RegionId) -> Deallocs {
        self.records
            .get_mut(id)
            .and_then(|region| region.deallocs.take())
            .and_then(|entry| self.deallocs.remove(entry))
            .unwrap_or_default()
    }

    /// Checks the index, the lists and the side table against the records; returns what is
    /// broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        self.keys.check()?;
        if !self.records.free_list_is_sound() || !self.deallocs.free_list_is_sound() {
            return Err("region free lists are wrong");
        }
        if self.keys.len() != self.records.len() {
            return Err("key index and regions disagree");
        }
        let mut with_deallocs = 0;
        for (id, region) in self.records.iter() {
            if self.keys.get(&region.key) != Some(id) {
                return Err("key index points at the wrong region");
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
        if with_deallocs != self.deallocs.len() {
            return Err("dealloc actions without a region");
        }
        Ok(())
    }
}
