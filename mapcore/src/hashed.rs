//! An ordered index that also answers exact lookups by hash: the keys in a [`BTree`] for the
//! range queries, the values in a `hashbrown` map. For the span table of `Growable` storage,
//! where most lookups are exact (the span starting at a region's key, at a freed span) and a
//! B-tree's descent grows with the table: with 4,095 other live regions, a W1 4 KiB cycle's
//! exact lookups cost about three times as much in the B-tree as in the hash map.
//!
//! The newest entry is held beside the hash map, where an exact lookup is one comparison: a
//! region that is initialized and deinitialized again and again in the same pages (a JIT
//! relinking into reused memory) finds its span there on every step.

use alloc::vec::Vec;
use core::hash::Hash;

use hashbrown::HashMap;

use crate::btree::{self, BTree};
use crate::ordered::{Around, OrderedMap};

/// Keys in order, values by hash.
#[derive(Debug)]
pub struct Hashed<K, V> {
    order: BTree<K, (), Vec<btree::Node<K, ()>>>,
    /// The newest entry, which `values` does not hold.
    newest: Option<(K, V)>,
    /// Every other entry.
    values: HashMap<K, V>,
}

impl<K, V> Default for Hashed<K, V> {
    fn default() -> Self {
        Self {
            order: BTree::default(),
            newest: None,
            values: HashMap::default(),
        }
    }
}

impl<K: Ord + Copy + Hash, V: Copy> Hashed<K, V> {
    /// The entry of a key the B-tree holds: the newest entry or the hash map holds it too.
    fn entry(&self, (key, ()): (K, ())) -> (K, V) {
        let value = self.get(&key);
        (
            key,
            value.unwrap_or_else(|| unreachable!("both hold the same keys")),
        )
    }
}

impl<K: Ord + Copy + Hash, V: Copy> OrderedMap<K, V> for Hashed<K, V> {
    fn len(&self) -> usize {
        self.values.len() + usize::from(self.newest.is_some())
    }

    fn make_room(&mut self, extra: usize) -> bool {
        self.order.make_room(extra) && self.values.try_reserve(extra).is_ok()
    }

    #[inline]
    fn get(&self, key: &K) -> Option<V> {
        match self.newest {
            Some((newest, value)) if newest == *key => Some(value),
            _ => self.values.get(key).copied(),
        }
    }

    #[inline]
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match &mut self.newest {
            Some((newest, value)) if *newest == *key => Some(value),
            _ => self.values.get_mut(key),
        }
    }

    fn below(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        self.order.below(key, inclusive).map(|e| self.entry(e))
    }

    fn above(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        self.order.above(key, inclusive).map(|e| self.entry(e))
    }

    fn around(&self, key: &K) -> Around<K, V> {
        let (below, above) = self.order.around(key);
        (below.map(|e| self.entry(e)), above.map(|e| self.entry(e)))
    }

    fn insert(&mut self, key: K, value: V) -> Result<(), (K, V)> {
        // The entry it replaces as the newest moves to the hash map: after `make_room` that
        // allocates nothing; without, it may, as the B-tree may.
        if self.values.try_reserve(1).is_err() {
            return Err((key, value));
        }
        self.order
            .insert(key, ())
            .map_err(|(key, ())| (key, value))?;
        if let Some((older, value)) = self.newest.replace((key, value)) {
            let old = self.values.insert(older, value);
            debug_assert!(old.is_none(), "a key is inserted once");
        }
        Ok(())
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        self.order.remove(key)?;
        match self.newest {
            Some((newest, value)) if newest == *key => {
                self.newest = None;
                Some(value)
            }
            _ => self.values.remove(key),
        }
    }

    #[cfg(any(test, feature = "testing"))]
    fn entries(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.order.iter().map(|e| self.entry(e))
    }

    #[cfg(any(test, feature = "testing"))]
    fn check(&self) -> Result<(), &'static str> {
        self.order.check()?;
        let newest_apart = self
            .newest
            .is_none_or(|(key, _)| !self.values.contains_key(&key));
        let same_keys = self.order.len() == self.len()
            && self.order.iter().all(|(key, ())| self.get(&key).is_some());
        if !newest_apart {
            Err("the hash map holds the newest entry too")
        } else if same_keys {
            Ok(())
        } else {
            Err("the hash map and the B-tree hold different keys")
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Hashed;
    use crate::ordered::model_test;

    proptest! {
        #![proptest_config(model_test::config())]

        #[test]
        fn agrees_with_btreemap(ops in proptest::collection::vec((0u8..4, 0u16..64), 0..200)) {
            model_test::agrees_with_btreemap(Hashed::<u16, u32>::default(), ops)?;
        }
    }
}
