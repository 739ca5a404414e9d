//! The ordered index the tables are built on, with one implementation per storage: an AVL
//! tree in a fixed-capacity table (one node per key, so the capacity is exact and there is no
//! heap) and a B-tree in a growable one (fewer, wider nodes: with 4,095 other live regions, a
//! map's initialize/deinitialize cycle measured 3,102 instructions on B-trees against 4,545 on
//! AVL trees). Both are O(log n) in every operation and never allocate once they have grown to
//! their working size.

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

/// The test both indexes pass: a model check against `BTreeMap`.
#[cfg(test)]
pub(crate) mod model_test {
    use std::collections::BTreeMap;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::OrderedMap;

    /// Proptest settings for it: few cases and no failure file under miri (which is slow and
    /// isolates the file system).
    pub(crate) fn config() -> ProptestConfig {
        ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: if cfg!(miri) {
                None
            } else {
                ProptestConfig::default().failure_persistence
            },
            ..ProptestConfig::default()
        }
    }

    /// Runs `ops` (insert, insert, remove, overwrite; then a key) on `map` and on a `BTreeMap`,
    /// and checks after each one that every query agrees and the structure is sound.
    pub(crate) fn agrees_with_btreemap<M: OrderedMap<u16, u32>>(
        mut map: M,
        ops: Vec<(u8, u16)>,
    ) -> Result<(), TestCaseError> {
        let mut model = BTreeMap::new();
        for (n, (op, key)) in ops.into_iter().enumerate() {
            let value = n as u32;
            match op {
                0 | 1 => {
                    if let std::collections::btree_map::Entry::Vacant(e) = model.entry(key) {
                        e.insert(value);
                        prop_assert!(map.make_room(1));
                        prop_assert!(map.insert(key, value).is_ok());
                    }
                }
                2 => prop_assert_eq!(map.remove(&key), model.remove(&key)),
                _ => {
                    if let Some(v) = map.get_mut(&key) {
                        *v = value;
                        model.insert(key, value);
                    }
                }
            }
            prop_assert_eq!(map.get(&key), model.get(&key).copied());
            let below = model.range(..=key).next_back().map(|(k, v)| (*k, *v));
            prop_assert_eq!(map.below(&key, true), below);
            let strictly_below = model.range(..key).next_back().map(|(k, v)| (*k, *v));
            prop_assert_eq!(map.below(&key, false), strictly_below);
            let above = model.range(key..).next().map(|(k, v)| (*k, *v));
            prop_assert_eq!(map.above(&key, true), above);
            let strictly_above = model
                .range((core::ops::Bound::Excluded(key), core::ops::Bound::Unbounded))
                .next()
                .map(|(k, v)| (*k, *v));
            prop_assert_eq!(map.above(&key, false), strictly_above);
            prop_assert_eq!(map.around(&key), (below, strictly_above));
            prop_assert_eq!(map.check(), Ok(()));
            prop_assert_eq!(map.len(), model.len());
        }
        let all: Vec<(u16, u32)> = model.into_iter().collect();
        prop_assert_eq!(map.entries().collect::<Vec<_>>(), all);
        Ok(())
    }
}
