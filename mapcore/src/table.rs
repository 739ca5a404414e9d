//! Table storage: fixed-capacity (`heapless`, no heap) or growable (`alloc`), one interface.
//!
//! The map's tables are arenas and trees whose entries never move: they only ever append to
//! their storage and reuse freed entries, so both storages give the same semantics and the
//! same O(log n) operations; they differ only in when a table is full.

use core::hash::Hash;

#[cfg(feature = "alloc")]
use crate::hashed::Hashed;
use crate::ordered::OrderedMap;
use crate::tree::{self, Tree};
#[cfg(feature = "alloc")]
use crate::{btree, btree::BTree};

/// The storage of one table: a list that only grows at its end. Implemented for
/// `heapless::Vec` and, with the `alloc` feature, for `alloc::vec::Vec`.
pub trait Table<T>: Default {
    /// The items.
    fn items(&self) -> &[T];
    /// The items, mutably.
    fn items_mut(&mut self) -> &mut [T];
    /// Appends `item`, or hands it back if the table is full.
    ///
    /// # Errors
    ///
    /// The table is full; the item is returned.
    fn try_push(&mut self, item: T) -> Result<(), T>;
    /// Whether `extra` more items fit; a growable table reserves room for them.
    fn make_room(&mut self, extra: usize) -> bool;
}

impl<T, const N: usize> Table<T> for heapless::Vec<T, N> {
    fn items(&self) -> &[T] {
        self
    }

    fn items_mut(&mut self) -> &mut [T] {
        self
    }

    fn try_push(&mut self, item: T) -> Result<(), T> {
        self.push(item)
    }

    fn make_room(&mut self, extra: usize) -> bool {
        self.len().checked_add(extra).is_some_and(|n| n <= N)
    }
}

#[cfg(feature = "alloc")]
impl<T> Table<T> for alloc::vec::Vec<T> {
    fn items(&self) -> &[T] {
        self
    }

    fn items_mut(&mut self) -> &mut [T] {
        self
    }

    fn try_push(&mut self, item: T) -> Result<(), T> {
        // Room is usually held already (`make_room`); only a full vector may allocate.
        if self.len() == self.capacity() && self.try_reserve(1).is_err() {
            return Err(item);
        }
        self.push(item);
        Ok(())
    }

    fn make_room(&mut self, extra: usize) -> bool {
        self.try_reserve(extra).is_ok()
    }
}

/// How the map stores its tables: [`Fixed`] or (feature `alloc`) `Growable`.
///
/// Implemented by those two only; the tables' types are the crate's own.
pub trait Storage {
    /// The slab records.
    type Slabs<T>: Table<T>;
    /// The region records and their dealloc actions.
    type Regions<T>: Table<T>;
    /// An index with room for one entry per slab.
    type SlabIndex<K: Ord + Copy, V: Copy>: OrderedMap<K, V>;
    /// An index with room for one entry per region.
    type RegionIndex<K: Ord + Copy, V: Copy>: OrderedMap<K, V>;
    /// An index with room for one entry per span (a segment of a live region, or quarantined
    /// pages).
    type SpanIndex<K: Ord + Copy + Hash, V: Copy>: OrderedMap<K, V>;
}

/// Fixed-capacity tables, no heap: at most `SLABS` slabs, `REGIONS` live regions and `SPANS`
/// segments of live regions (plus quarantined page runs). Indexes are AVL trees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixed<const SLABS: usize, const REGIONS: usize, const SPANS: usize>;

impl<const SLABS: usize, const REGIONS: usize, const SPANS: usize> Storage
    for Fixed<SLABS, REGIONS, SPANS>
{
    type Slabs<T> = heapless::Vec<T, SLABS>;
    type Regions<T> = heapless::Vec<T, REGIONS>;
    type SlabIndex<K: Ord + Copy, V: Copy> = Tree<K, V, heapless::Vec<tree::Node<K, V>, SLABS>>;
    type RegionIndex<K: Ord + Copy, V: Copy> = Tree<K, V, heapless::Vec<tree::Node<K, V>, REGIONS>>;
    type SpanIndex<K: Ord + Copy + Hash, V: Copy> =
        Tree<K, V, heapless::Vec<tree::Node<K, V>, SPANS>>;
}

/// Tables that grow on the global heap; full only when allocation fails. Indexes are
/// B-trees; the span index also finds a span by its start through a hash map.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Growable;

#[cfg(feature = "alloc")]
impl Storage for Growable {
    type Slabs<T> = alloc::vec::Vec<T>;
    type Regions<T> = alloc::vec::Vec<T>;
    type SlabIndex<K: Ord + Copy, V: Copy> = BTree<K, V, alloc::vec::Vec<btree::Node<K, V>>>;
    type RegionIndex<K: Ord + Copy, V: Copy> = BTree<K, V, alloc::vec::Vec<btree::Node<K, V>>>;
    type SpanIndex<K: Ord + Copy + Hash, V: Copy> = Hashed<K, V>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_table_hands_item_back_when_full() {
        let mut t = heapless::Vec::<u32, 2>::new();
        assert!(t.make_room(2));
        assert_eq!(t.try_push(5), Ok(()));
        assert_eq!(t.try_push(3), Ok(()));
        assert!(!t.make_room(1));
        assert_eq!(t.try_push(4), Err(4));
        assert_eq!(t.items(), [5, 3]);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn growable_table_makes_room() {
        let mut t = alloc::vec::Vec::<u32>::new();
        assert!(t.make_room(4));
        assert!(t.capacity() >= 4);
        for v in [9, 1] {
            t.try_push(v).unwrap();
        }
        assert_eq!(t, [9, 1]);
    }
}
