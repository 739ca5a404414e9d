//! Table storage: fixed-capacity (`heapless`, no heap) or growable (`alloc`), one interface.
//!
//! The map keeps its tables sorted and searches them by binary search, so both storages give
//! the same semantics and O(log n) lookups; they differ only in when a table is full.

/// A list the map can keep sorted. Implemented for `heapless::Vec` and, with the `alloc`
/// feature, for `alloc::vec::Vec`.
pub trait Table<T>: Default {
    /// The items.
    fn items(&self) -> &[T];
    /// The items, mutably.
    fn items_mut(&mut self) -> &mut [T];
    /// Inserts at `index` (at most the length), or hands the item back if the table is full.
    ///
    /// # Errors
    ///
    /// The table is full; the item is returned.
    fn try_insert(&mut self, index: usize, item: T) -> Result<(), T>;
    /// Removes and returns the item at `index` (less than the length).
    fn remove_at(&mut self, index: usize) -> T;
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

    fn try_insert(&mut self, index: usize, item: T) -> Result<(), T> {
        self.insert(index, item)
    }

    fn remove_at(&mut self, index: usize) -> T {
        self.remove(index)
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

    fn try_insert(&mut self, index: usize, item: T) -> Result<(), T> {
        // Room is usually held already (`make_room`); only a full vector may allocate.
        if self.len() == self.capacity() && self.try_reserve(1).is_err() {
            return Err(item);
        }
        self.insert(index, item);
        Ok(())
    }

    fn remove_at(&mut self, index: usize) -> T {
        // The last item (the common case: a free slot, the newest span) needs no shifting.
        if index + 1 == self.len() {
            if let Some(item) = self.pop() {
                return item;
            }
        }
        self.remove(index)
    }

    fn make_room(&mut self, extra: usize) -> bool {
        self.try_reserve(extra).is_ok()
    }
}

/// How the map stores its tables: [`Fixed`] or (feature `alloc`) `Growable`.
pub trait Storage {
    /// The slab table.
    type Slabs<T>: Table<T>;
    /// The region table and its key index.
    type Regions<T>: Table<T>;
    /// The page-span table (one entry per segment of every live region).
    type Spans<T>: Table<T>;
}

/// Fixed-capacity tables, no heap: at most `SLABS` slabs, `REGIONS` live regions and `SPANS`
/// segments of live regions (plus quarantined page runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixed<const SLABS: usize, const REGIONS: usize, const SPANS: usize>;

impl<const SLABS: usize, const REGIONS: usize, const SPANS: usize> Storage
    for Fixed<SLABS, REGIONS, SPANS>
{
    type Slabs<T> = heapless::Vec<T, SLABS>;
    type Regions<T> = heapless::Vec<T, REGIONS>;
    type Spans<T> = heapless::Vec<T, SPANS>;
}

/// Tables that grow on the global heap; full only when allocation fails.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Growable;

#[cfg(feature = "alloc")]
impl Storage for Growable {
    type Slabs<T> = alloc::vec::Vec<T>;
    type Regions<T> = alloc::vec::Vec<T>;
    type Spans<T> = alloc::vec::Vec<T>;
}

/// Inserts `item` into `table`, kept sorted by `key`; items with equal keys are not expected.
pub(crate) fn insert_sorted<T, K: Ord>(
    table: &mut impl Table<T>,
    item: T,
    key: impl Fn(&T) -> K,
) -> Result<usize, T> {
    let k = key(&item);
    let index = table.items().partition_point(|x| key(x) < k);
    table.try_insert(index, item).map(|()| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_table_hands_item_back_when_full() {
        let mut t = heapless::Vec::<u32, 2>::new();
        assert!(t.make_room(2));
        assert_eq!(insert_sorted(&mut t, 5, |x| *x), Ok(0));
        assert_eq!(insert_sorted(&mut t, 3, |x| *x), Ok(0));
        assert!(!t.make_room(1));
        assert_eq!(insert_sorted(&mut t, 4, |x| *x), Err(4));
        assert_eq!(t.items(), [3, 5]);
        assert_eq!(t.remove_at(0), 3);
        assert!(t.make_room(1));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn growable_table_keeps_order() {
        let mut t = alloc::vec::Vec::<u32>::new();
        for v in [9, 1, 5, 3] {
            insert_sorted(&mut t, v, |x| *x).unwrap();
        }
        assert_eq!(t, [1, 3, 5, 9]);
    }
}
