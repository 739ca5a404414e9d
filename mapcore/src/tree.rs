//! An ordered index: an AVL tree whose nodes live in a [`Table`], linked by index.
//!
//! Every operation is O(log n): lookups, the nearest key at or below / above a point, insert
//! and remove. Removing never allocates (freed nodes are kept on a free list for the next
//! insert), so a fixed-capacity table makes a tree with no heap at all, and a growable one
//! allocates only when the tree outgrows every size it had before.
//!
//! Keys and values are small `Copy` data (addresses, sequence numbers, ids): the records
//! themselves live in arenas, and the trees only index them.

use crate::ordered::Around;
use crate::table::Table;

/// No node.
const NIL: u32 = u32::MAX;

/// One node of a [`Tree`].
#[derive(Debug, Clone, Copy)]
pub struct Node<K, V> {
    key: K,
    value: V,
    left: u32,
    right: u32,
    /// Height of the subtree rooted here (a leaf has 1); in a free node, unused.
    height: u8,
}

/// An ordered map from `K` to `V`, its nodes stored in `Tab`.
#[derive(Debug)]
pub struct Tree<K, V, Tab> {
    nodes: Tab,
    root: u32,
    /// Freed nodes, linked through `left`.
    free: u32,
    free_count: usize,
    _marker: core::marker::PhantomData<(K, V)>,
}

impl<K, V, Tab: Default> Default for Tree<K, V, Tab> {
    fn default() -> Self {
        Self {
            nodes: Tab::default(),
            root: NIL,
            free: NIL,
            free_count: 0,
            _marker: core::marker::PhantomData,
        }
    }
}

impl<K: Ord + Copy, V: Copy, Tab: Table<Node<K, V>>> Tree<K, V, Tab> {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.nodes.items().len() - self.free_count
    }

    /// Whether `extra` more keys fit; a growable table reserves room for them.
    pub(crate) fn make_room(&mut self, extra: usize) -> bool {
        extra <= self.free_count || self.nodes.make_room(extra - self.free_count)
    }

    fn node(&self, i: u32) -> &Node<K, V> {
        &self.nodes.items()[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K, V> {
        &mut self.nodes.items_mut()[i as usize]
    }

    fn height(&self, i: u32) -> u8 {
        if i == NIL {
            0
        } else {
            self.node(i).height
        }
    }

    /// The node holding `key`.
    fn find(&self, key: &K) -> u32 {
        let mut i = self.root;
        while i != NIL {
            let node = self.node(i);
            i = match key.cmp(&node.key) {
                core::cmp::Ordering::Less => node.left,
                core::cmp::Ordering::Greater => node.right,
                core::cmp::Ordering::Equal => return i,
            };
        }
        NIL
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let i = self.find(key);
        (i != NIL).then(|| self.node(i).value)
    }

    /// The value stored under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key);
        (i != NIL).then(|| &mut self.node_mut(i).value)
    }

    /// The entry with the greatest key at or below `key` (`inclusive`) or strictly below it.
    pub(crate) fn below(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        let (mut i, mut best) = (self.root, NIL);
        while i != NIL {
            let node = self.node(i);
            if node.key < *key || (inclusive && node.key == *key) {
                best = i;
                i = node.right;
            } else {
                i = node.left;
            }
        }
        (best != NIL).then(|| (self.node(best).key, self.node(best).value))
    }

    /// The entry with the least key at or above `key` (`inclusive`) or strictly above it.
    pub(crate) fn above(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        let (mut i, mut best) = (self.root, NIL);
        while i != NIL {
            let node = self.node(i);
            if node.key > *key || (inclusive && node.key == *key) {
                best = i;
                i = node.left;
            } else {
                i = node.right;
            }
        }
        (best != NIL).then(|| (self.node(best).key, self.node(best).value))
    }

    /// In one descent: the entry with the greatest key at or below `key`, and the one with the
    /// least key strictly above it.
    pub(crate) fn around(&self, key: &K) -> Around<K, V> {
        let (mut i, mut below, mut above) = (self.root, NIL, NIL);
        while i != NIL {
            let node = self.node(i);
            if node.key <= *key {
                below = i;
                i = node.right;
            } else {
                above = i;
                i = node.left;
            }
        }
        let entry = |i: u32| (i != NIL).then(|| (self.node(i).key, self.node(i).value));
        (entry(below), entry(above))
    }

    /// Every entry in key order, in O(n) (for inspection and checks).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        // The way down to the next node: an AVL tree of u32 nodes is less than 64 high.
        let mut stack = heapless::Vec::<u32, 64>::new();
        let mut i = self.root;
        core::iter::from_fn(move || {
            while i != NIL {
                stack.push(i).ok()?;
                i = self.node(i).left;
            }
            let n = stack.pop()?;
            i = self.node(n).right;
            Some((self.node(n).key, self.node(n).value))
        })
    }

    /// Adds `key` (not present yet), or hands the entry back if the table is full.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Result<(), (K, V)> {
        debug_assert!(self.find(&key) == NIL, "key inserted twice");
        let node = Node {
            key,
            value,
            left: NIL,
            right: NIL,
            height: 1,
        };
        let new = if self.free != NIL {
            let i = self.free;
            self.free = self.node(i).left;
            self.free_count -= 1;
            *self.node_mut(i) = node;
            i
        } else {
            let index = self.nodes.items().len();
            let Ok(i) = u32::try_from(index) else {
                return Err((key, value));
            };
            if i == NIL || self.nodes.try_push(node).is_err() {
                return Err((key, value));
            }
            i
        };
        self.root = self.insert_under(self.root, new);
        Ok(())
    }

    /// Inserts node `new` into the subtree rooted at `i`; returns the subtree's new root.
    fn insert_under(&mut self, i: u32, new: u32) -> u32 {
        if i == NIL {
            return new;
        }
        if self.node(new).key < self.node(i).key {
            let left = self.insert_under(self.node(i).left, new);
            self.node_mut(i).left = left;
        } else {
            let right = self.insert_under(self.node(i).right, new);
            self.node_mut(i).right = right;
        }
        self.rebalance(i)
    }

    /// Removes `key`; returns its value if it was present.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (root, removed) = self.remove_under(self.root, key);
        self.root = root;
        if removed == NIL {
            return None;
        }
        let value = self.node(removed).value;
        self.node_mut(removed).left = self.free;
        self.free = removed;
        self.free_count += 1;
        Some(value)
    }

    /// Unlinks the node holding `key` from the subtree at `i`; returns the subtree's new root
    /// and the unlinked node (NIL if absent).
    fn remove_under(&mut self, i: u32, key: &K) -> (u32, u32) {
        if i == NIL {
            return (NIL, NIL);
        }
        let node = self.node(i);
        let (left, right) = (node.left, node.right);
        match key.cmp(&node.key) {
            core::cmp::Ordering::Less => {
                let (left, removed) = self.remove_under(left, key);
                self.node_mut(i).left = left;
                (self.rebalance(i), removed)
            }
            core::cmp::Ordering::Greater => {
                let (right, removed) = self.remove_under(right, key);
                self.node_mut(i).right = right;
                (self.rebalance(i), removed)
            }
            core::cmp::Ordering::Equal => {
                if left == NIL {
                    return (right, i);
                }
                if right == NIL {
                    return (left, i);
                }
                // The successor takes this node's place.
                let (right, successor) = self.remove_min(right);
                let s = self.node_mut(successor);
                s.left = left;
                s.right = right;
                (self.rebalance(successor), i)
            }
        }
    }

    /// Unlinks the least node of the subtree at `i` (not NIL); returns the subtree's new root
    /// and the unlinked node.
    fn remove_min(&mut self, i: u32) -> (u32, u32) {
        let left = self.node(i).left;
        if left == NIL {
            return (self.node(i).right, i);
        }
        let (left, min) = self.remove_min(left);
        self.node_mut(i).left = left;
        (self.rebalance(i), min)
    }

    fn update_height(&mut self, i: u32) {
        let (left, right) = (self.node(i).left, self.node(i).right);
        self.node_mut(i).height = 1 + self.height(left).max(self.height(right));
    }

    fn rotate_right(&mut self, i: u32) -> u32 {
        let l = self.node(i).left;
        let lr = self.node(l).right;
        self.node_mut(i).left = lr;
        self.node_mut(l).right = i;
        self.update_height(i);
        self.update_height(l);
        l
    }

    fn rotate_left(&mut self, i: u32) -> u32 {
        let r = self.node(i).right;
        let rl = self.node(r).left;
        self.node_mut(i).right = rl;
        self.node_mut(r).left = i;
        self.update_height(i);
        self.update_height(r);
        r
    }

    /// Restores the AVL balance at `i` after one of its subtrees changed height by at most
    /// one; returns the subtree's new root.
    fn rebalance(&mut self, i: u32) -> u32 {
        let (left, right) = (self.node(i).left, self.node(i).right);
        let (hl, hr) = (self.height(left), self.height(right));
        if hl > hr + 1 {
            let (ll, lr) = (self.node(left).left, self.node(left).right);
            if self.height(ll) < self.height(lr) {
                let left = self.rotate_left(left);
                self.node_mut(i).left = left;
            }
            return self.rotate_right(i);
        }
        if hr > hl + 1 {
            let (rl, rr) = (self.node(right).left, self.node(right).right);
            if self.height(rr) < self.height(rl) {
                let right = self.rotate_right(right);
                self.node_mut(i).right = right;
            }
            return self.rotate_left(i);
        }
        self.node_mut(i).height = 1 + hl.max(hr);
        i
    }

    /// Checks order, balance, heights and the free list; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        fn walk<K: Ord + Copy, V: Copy, Tab: Table<Node<K, V>>>(
            t: &Tree<K, V, Tab>,
            i: u32,
            lo: Option<K>,
            hi: Option<K>,
            count: &mut usize,
        ) -> Result<u8, &'static str> {
            if i == NIL {
                return Ok(0);
            }
            let node = *t.nodes.items().get(i as usize).ok_or("link out of range")?;
            *count += 1;
            if *count > t.nodes.items().len() {
                return Err("tree has a cycle");
            }
            if lo.is_some_and(|lo| node.key <= lo) || hi.is_some_and(|hi| node.key >= hi) {
                return Err("tree keys out of order");
            }
            let hl = walk(t, node.left, lo, Some(node.key), count)?;
            let hr = walk(t, node.right, Some(node.key), hi, count)?;
            if hl.abs_diff(hr) > 1 {
                return Err("tree out of balance");
            }
            if node.height != 1 + hl.max(hr) {
                return Err("tree height wrong");
            }
            Ok(node.height)
        }
        let mut count = 0;
        walk(self, self.root, None, None, &mut count)?;
        let mut free = 0;
        let mut i = self.free;
        while i != NIL {
            free += 1;
            if free > self.nodes.items().len() {
                return Err("tree free list has a cycle");
            }
            i = self
                .nodes
                .items()
                .get(i as usize)
                .ok_or("free link out of range")?
                .left;
        }
        if free != self.free_count || count + free != self.nodes.items().len() {
            return Err("tree node count wrong");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    type Growing = Tree<u16, u32, Vec<Node<u16, u32>>>;

    /// Operations per proptest case; few under miri, which is slow.
    const OPS: usize = if cfg!(miri) { 40 } else { 200 };

    #[test]
    fn fixed_tree_is_full_at_capacity_and_reuses_nodes() {
        let mut t: Tree<u32, u32, heapless::Vec<Node<u32, u32>, 3>> = Tree::default();
        for k in [5, 1, 9] {
            assert!(t.make_room(1));
            t.insert(k, k * 10).unwrap();
        }
        assert!(!t.make_room(1));
        assert_eq!(t.insert(4, 40), Err((4, 40)));
        assert_eq!(t.remove(&1), Some(10));
        assert_eq!(t.remove(&1), None);
        assert!(t.make_room(1));
        t.insert(4, 40).unwrap();
        assert_eq!(t.iter().collect::<Vec<_>>(), [(4, 40), (5, 50), (9, 90)]);
        t.check().unwrap();
    }

    #[test]
    fn neighbours() {
        let mut t = Growing::default();
        for k in [10, 20, 30] {
            t.insert(k, u32::from(k)).unwrap();
        }
        assert_eq!(t.below(&20, true), Some((20, 20)));
        assert_eq!(t.below(&20, false), Some((10, 10)));
        assert_eq!(t.below(&10, false), None);
        assert_eq!(t.above(&20, true), Some((20, 20)));
        assert_eq!(t.above(&20, false), Some((30, 30)));
        assert_eq!(t.above(&30, false), None);
        assert_eq!(t.below(&25, true), Some((20, 20)));
        assert_eq!(t.above(&25, true), Some((30, 30)));
    }

    #[test]
    fn ascending_inserts_stay_balanced() {
        // An AVL tree of n nodes is at most 1.44 log2(n) high: 17 for 4,096, 13 for 512.
        let (n, bound) = if cfg!(miri) { (512, 13) } else { (4096, 17) };
        let mut t = Growing::default();
        for k in 0..n {
            t.insert(k, 0).unwrap();
        }
        t.check().unwrap();
        assert!(t.height(t.root) <= bound, "height {}", t.height(t.root));
        for k in (0..n).step_by(2) {
            assert_eq!(t.remove(&k), Some(0));
        }
        t.check().unwrap();
        assert_eq!(t.len(), usize::from(n / 2));
    }

    proptest! {
        #![proptest_config(crate::ordered::model_test::config())]

        /// Every operation agrees with `BTreeMap`, and the tree stays sound.
        #[test]
        fn agrees_with_btreemap(ops in proptest::collection::vec((0u8..4, 0u16..64), 0..OPS)) {
            crate::ordered::model_test::agrees_with_btreemap(Growing::default(), ops)?;
        }
    }
}
