//! The ordered index the tables are built on, with one implementation per storage: an AVL
//! tree in a fixed-capacity table (exact capacity, no heap) and a B-tree in a growable one
//! (fewer, wider nodes: cheaper at every size). Both are O(log n) in every operation and never
//! allocate once they have grown to their working size.

/// The entries on both sides of a point: the one at or below it, the one above it.
pub(crate) type Around<K, V> = (Option<(K, V)>, Option<(K, V)>);

/// An ordered map from `K` to `V` (small `Copy` data: addresses, sequence numbers, ids).
pub trait OrderedMap<K, V>: Default {
    /// The number of keys.
    fn len(&self) -> usize;
    /// Whether `extra` more keys fit; a growable map reserves the room, so that the inserts
    /// cannot fail.
    fn make_room(&mut self, extra: usize) -> bool;
    /// The value stored under `key`.
    fn get(&self, key: &K) -> Option<V>;
    /// The value stored under `key`, mutably.
    fn get_mut(&mut self, key: &K) -> Option<&mut V>;
    /// The entry with the greatest key at or below `key` (`inclusive`) or strictly below it.
    fn below(&self, key: &K, inclusive: bool) -> Option<(K, V)>;
    /// The entry with the least key at or above `key` (`inclusive`) or strictly above it.
    fn above(&self, key: &K, inclusive: bool) -> Option<(K, V)>;
    /// In one descent: `below(key, true)` and `above(key, false)`.
    fn around(&self, key: &K) -> Around<K, V>;
    /// Adds `key` (not present yet), or hands the entry back if the map is full.
    ///
    /// # Errors
    ///
    /// The map is full (never after `make_room`); the entry is returned.
    fn insert(&mut self, key: K, value: V) -> Result<(), (K, V)>;
    /// Removes `key`; returns its value if it was present.
    fn remove(&mut self, key: &K) -> Option<V>;
    /// Every entry in key order (for inspection and checks).
    #[cfg(any(test, feature = "testing"))]
    fn entries(&self) -> impl Iterator<Item = (K, V)> + '_;
    /// Checks the structure's own invariants; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    fn check(&self) -> Result<(), &'static str>;
}

/// Implements [`OrderedMap`] for a tree type by forwarding to its inherent methods.
macro_rules! forward_ordered_map {
    ($tree:ident, $node:path) => {
        impl<K: Ord + Copy, V: Copy, Tab: $crate::table::Table<$node>> OrderedMap<K, V>
            for $tree<K, V, Tab>
        {
            #[inline]
            fn len(&self) -> usize {
                Self::len(self)
            }
            #[inline]
            fn make_room(&mut self, extra: usize) -> bool {
                Self::make_room(self, extra)
            }
            #[inline]
            fn get(&self, key: &K) -> Option<V> {
                Self::get(self, key)
            }
            #[inline]
            fn get_mut(&mut self, key: &K) -> Option<&mut V> {
                Self::get_mut(self, key)
            }
            #[inline]
            fn below(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
                Self::below(self, key, inclusive)
            }
            #[inline]
            fn above(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
                Self::above(self, key, inclusive)
            }
            #[inline]
            fn around(&self, key: &K) -> Around<K, V> {
                Self::around(self, key)
            }
            #[inline]
            fn insert(&mut self, key: K, value: V) -> Result<(), (K, V)> {
                Self::insert(self, key, value)
            }
            #[inline]
            fn remove(&mut self, key: &K) -> Option<V> {
                Self::remove(self, key)
            }
            #[cfg(any(test, feature = "testing"))]
            #[inline]
            fn entries(&self) -> impl Iterator<Item = (K, V)> + '_ {
                Self::iter(self)
            }
            #[cfg(any(test, feature = "testing"))]
            #[inline]
            fn check(&self) -> Result<(), &'static str> {
                Self::check(self)
            }
        }
    };
}

#[cfg(feature = "alloc")]
use crate::btree::BTree;
use crate::tree::Tree;

forward_ordered_map!(Tree, crate::tree::Node<K, V>);
#[cfg(feature = "alloc")]
forward_ordered_map!(BTree, crate::btree::Node<K, V>);
