//! Where the first slabs of a [`DualMappedHost`](crate::DualMappedHost) have their alias,
//! readable without a lock: every write, zero fill and trap fill translates its address, and a
//! read lock costs two atomic read-modify-writes per call, more than the lookup itself.
//!
//! Only the holder of the host's slab-table write lock changes the cache ([`publish`] and
//! [`withdraw`] run under it). Readers load a slot's base with `Acquire` and its end and alias
//! after it. That is consistent for the slab a reader asks about: the map only passes
//! addresses of a slab it recorded after `reserve` returned (so the slab's publication happens
//! before the lookup, through the map's lock) and that is not being released (so its slot
//! does not change meanwhile). A released slab's slot is cleared before its views are
//! unmapped, under the write lock that a later `reserve` of the same addresses takes before
//! publishing, so a stale slot is never found for a live slab's address.
//!
//! [`publish`]: AliasCache::publish
//! [`withdraw`]: AliasCache::withdraw

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many slabs the cache holds; the others are found in the locked table.
pub(crate) const SLOTS: usize = 8;

/// One slab's views: a base of 0 marks a free slot (no mapping starts at address 0).
#[derive(Debug, Default)]
struct Slot {
    base: AtomicUsize,
    end: AtomicUsize,
    alias: AtomicUsize,
}

/// The alias base of up to [`SLOTS`] slabs, by the range of their execution view.
#[derive(Debug, Default)]
pub(crate) struct AliasCache {
    slots: [Slot; SLOTS],
}

impl AliasCache {
    /// Records the slab `[base, base + size)` with its alias at `alias`, if a slot is free.
    /// The caller holds the slab table's write lock.
    pub(crate) fn publish(&self, base: usize, size: usize, alias: usize) {
        debug_assert_ne!(base, 0, "no mapping starts at address 0");
        if let Some(slot) = self
            .slots
            .iter()
            .find(|slot| slot.base.load(Ordering::Relaxed) == 0)
        {
            slot.end.store(base + size, Ordering::Relaxed);
            slot.alias.store(alias, Ordering::Relaxed);
            slot.base.store(base, Ordering::Release);
        }
    }

    /// Forgets the slab based at `base`, if the cache holds it. The caller holds the slab
    /// table's write lock, and withdraws a slab before unmapping it.
    pub(crate) fn withdraw(&self, base: usize) {
        if let Some(slot) = self
            .slots
            .iter()
            .find(|slot| slot.base.load(Ordering::Relaxed) == base)
        {
            slot.base.store(0, Ordering::Release);
        }
    }

    /// The alias address of execution address `addr`, if the cache holds its slab.
    #[inline]
    pub(crate) fn alias_address(&self, addr: usize) -> Option<usize> {
        self.slots.iter().find_map(|slot| {
            let base = slot.base.load(Ordering::Acquire);
            let inside = base != 0 && base <= addr && addr < slot.end.load(Ordering::Relaxed);
            inside.then(|| slot.alias.load(Ordering::Relaxed) + (addr - base))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{AliasCache, SLOTS};

    const SLAB: usize = 0x10_000;

    #[test]
    fn translates_inside_published_slabs_only() {
        let cache = AliasCache::default();
        cache.publish(0x100_000, SLAB, 0x900_000);
        cache.publish(0x200_000, SLAB, 0xa00_000);
        assert_eq!(cache.alias_address(0x100_000), Some(0x900_000));
        assert_eq!(
            cache.alias_address(0x100_000 + SLAB - 1),
            Some(0x900_000 + SLAB - 1)
        );
        assert_eq!(cache.alias_address(0x200_123), Some(0xa00_123));
        assert_eq!(
            cache.alias_address(0x100_000 + SLAB),
            None,
            "one past the end"
        );
        assert_eq!(cache.alias_address(0xff_fff), None, "below the base");
    }

    #[test]
    fn a_withdrawn_slab_is_not_found_and_frees_its_slot() {
        let cache = AliasCache::default();
        cache.publish(0x100_000, SLAB, 0x900_000);
        cache.withdraw(0x100_000);
        assert_eq!(cache.alias_address(0x100_000), None);
        // The same addresses again, with another alias (the kernel reused the range).
        cache.publish(0x100_000, SLAB, 0x500_000);
        assert_eq!(cache.alias_address(0x100_010), Some(0x500_010));
        cache.withdraw(0x300_000); // not held: nothing changes
        assert_eq!(cache.alias_address(0x100_010), Some(0x500_010));
    }

    #[test]
    fn holds_the_first_slots_slabs_and_finds_none_beyond() {
        let cache = AliasCache::default();
        let base = |i: usize| 0x100_000 * (i + 1);
        for i in 0..=SLOTS {
            cache.publish(base(i), SLAB, 0x8000_0000 + base(i));
        }
        for i in 0..SLOTS {
            assert_eq!(
                cache.alias_address(base(i) + 8),
                Some(0x8000_0008 + base(i))
            );
        }
        assert_eq!(cache.alias_address(base(SLOTS)), None, "no slot was free");
        cache.withdraw(base(0));
        cache.publish(base(SLOTS), SLAB, 0x7000_0000);
        assert_eq!(cache.alias_address(base(SLOTS) + 1), Some(0x7000_0001));
    }
}
