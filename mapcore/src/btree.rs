//! An ordered index for growable storage: a B-tree whose nodes live in a [`Table`], linked by
//! index.
//!
//! Every operation is O(log n) with a small constant: a node holds up to 15 keys, searched in
//! place, so 16,000 keys are three levels deep, and a tree of a few keys is one node whose
//! insert and remove shift a handful of entries. Freed nodes go on a free list for the next
//! split, so once the tree has grown to its working size it never allocates again, and
//! [`BTree::make_room`] reserves every node an insert may need before the insert runs.

use heapless::Vec;

use crate::ordered::Around;
use crate::table::Table;

/// Keys a node can hold for a moment: one more than [`MAX`], before it splits.
const CAP: usize = 16;
/// Keys a node holds at most.
const MAX: usize = CAP - 1;
/// Keys a node other than the root holds at least.
const MIN: usize = MAX / 2;
/// Levels a tree can have: with at least `MIN + 1` children per inner node, more than `u32`
/// nodes would be needed for more.
const MAX_HEIGHT: usize = 16;
/// No node.
const NIL: u32 = u32::MAX;

/// One node of a [`BTree`]: `len` keys with their values and, in an inner node, `len + 1`
/// children. A free node links to the next free one through `children[0]`.
#[derive(Debug, Clone, Copy)]
pub struct Node<K, V> {
    keys: [K; CAP],
    values: [V; CAP],
    children: [u32; CAP + 1],
    len: u8,
    leaf: bool,
}

impl<K: Ord + Copy, V: Copy> Node<K, V> {
    fn new(key: K, value: V, leaf: bool) -> Self {
        Self {
            keys: [key; CAP],
            values: [value; CAP],
            children: [NIL; CAP + 1],
            len: 1,
            leaf,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.len)
    }

    #[inline]
    fn keys(&self) -> &[K] {
        &self.keys[..self.len()]
    }

    /// Puts `key`/`value` at `i` and, in an inner node, `child` right of it.
    #[inline]
    fn insert_at(&mut self, i: usize, key: K, value: V, child: u32) {
        let len = self.len();
        // Moving nothing is the common case in small trees: no call for it.
        if i < len {
            self.keys.copy_within(i..len, i + 1);
            self.values.copy_within(i..len, i + 1);
            if !self.leaf {
                self.children.copy_within(i + 1..len + 1, i + 2);
            }
        }
        self.keys[i] = key;
        self.values[i] = value;
        if !self.leaf {
            self.children[i + 1] = child;
        }
        self.len += 1;
    }

    /// Takes out the entry at `i` and, in an inner node, the child right of it.
    #[inline]
    fn remove_at(&mut self, i: usize) -> (K, V, u32) {
        let len = self.len();
        let (key, value, child) = (self.keys[i], self.values[i], self.children[i + 1]);
        if i + 1 < len {
            self.keys.copy_within(i + 1..len, i);
            self.values.copy_within(i + 1..len, i);
            if !self.leaf {
                self.children.copy_within(i + 2..len + 1, i + 1);
            }
        }
        self.len -= 1;
        (key, value, child)
    }
}

/// An ordered map from `K` to `V`, its nodes stored in `Tab`.
#[derive(Debug)]
pub struct BTree<K, V, Tab> {
    nodes: Tab,
    root: u32,
    /// Levels: 0 for an empty tree that never had a node, 1 for a lone leaf.
    height: usize,
    len: usize,
    free: u32,
    free_count: usize,
    _marker: core::marker::PhantomData<(K, V)>,
}

impl<K, V, Tab: Default> Default for BTree<K, V, Tab> {
    fn default() -> Self {
        Self {
            nodes: Tab::default(),
            root: NIL,
            height: 0,
            len: 0,
            free: NIL,
            free_count: 0,
            _marker: core::marker::PhantomData,
        }
    }
}

/// The way down to a node: each inner node passed and the child taken.
type Path = Vec<(u32, usize), MAX_HEIGHT>;

impl<K: Ord + Copy, V: Copy, Tab: Table<Node<K, V>>> BTree<K, V, Tab> {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `extra` more keys fit; reserves every node their inserts may need.
    pub(crate) fn make_room(&mut self, extra: usize) -> bool {
        // An insert splits at most every node on its way down, and may add a root.
        let nodes = extra.saturating_mul(self.height + 1);
        nodes <= self.free_count || self.nodes.make_room(nodes - self.free_count)
    }

    #[inline]
    fn node(&self, i: u32) -> &Node<K, V> {
        &self.nodes.items()[i as usize]
    }

    #[inline]
    fn node_mut(&mut self, i: u32) -> &mut Node<K, V> {
        &mut self.nodes.items_mut()[i as usize]
    }

    /// Two distinct nodes, mutably.
    fn pair_mut(&mut self, a: u32, b: u32) -> (&mut Node<K, V>, &mut Node<K, V>) {
        let (a, b) = (a as usize, b as usize);
        let items = self.nodes.items_mut();
        if a < b {
            let (low, high) = items.split_at_mut(b);
            (&mut low[a], &mut high[0])
        } else {
            let (low, high) = items.split_at_mut(a);
            (&mut high[0], &mut low[b])
        }
    }

    /// Stores a new node; `None` if the table is full (never after `make_room`).
    fn alloc(&mut self, node: Node<K, V>) -> Option<u32> {
        if self.free != NIL {
            let i = self.free;
            self.free = self.node(i).children[0];
            self.free_count -= 1;
            *self.node_mut(i) = node;
            return Some(i);
        }
        let i = u32::try_from(self.nodes.items().len())
            .ok()
            .filter(|&i| i != NIL)?;
        self.nodes.try_push(node).ok()?;
        Some(i)
    }

    fn free_node(&mut self, i: u32) {
        let free = self.free;
        let node = self.node_mut(i);
        node.len = 0;
        node.children[0] = free;
        self.free = i;
        self.free_count += 1;
    }

    /// The node and index holding `key`.
    fn find(&self, key: &K) -> Option<(u32, usize)> {
        let mut n = self.root;
        while n != NIL {
            let node = self.node(n);
            match node.keys().binary_search(key) {
                Ok(i) => return Some((n, i)),
                Err(_) if node.leaf => return None,
                Err(i) => n = node.children[i],
            }
        }
        None
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.find(key).map(|(n, i)| self.node(n).values[i])
    }

    /// The value stored under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (n, i) = self.find(key)?;
        Some(&mut self.node_mut(n).values[i])
    }

    /// Walks down one path; in each node, the keys `split` accepts (a prefix) lie left of the
    /// way down, and `visit` sees the node and their count.
    #[inline]
    fn descend(&self, split: impl Fn(&K) -> bool, mut visit: impl FnMut(&Node<K, V>, usize)) {
        let mut n = self.root;
        while n != NIL {
            let node = self.node(n);
            let i = node.keys().partition_point(&split);
            visit(node, i);
            if node.leaf {
                break;
            }
            n = node.children[i];
        }
    }

    /// The entry with the greatest key at or below `key` (`inclusive`) or strictly below it.
    pub(crate) fn below(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        let mut best = None;
        let split = |k: &K| k < key || (inclusive && k == key);
        self.descend(split, |node, i| {
            if i > 0 {
                best = Some((node.keys[i - 1], node.values[i - 1]));
            }
        });
        best
    }

    /// The entry with the least key at or above `key` (`inclusive`) or strictly above it.
    pub(crate) fn above(&self, key: &K, inclusive: bool) -> Option<(K, V)> {
        let mut best = None;
        let split = |k: &K| k < key || (!inclusive && k == key);
        self.descend(split, |node, i| {
            if i < node.len() {
                best = Some((node.keys[i], node.values[i]));
            }
        });
        best
    }

    /// In one descent: the entry with the greatest key at or below `key`, and the one with the
    /// least key strictly above it.
    pub(crate) fn around(&self, key: &K) -> Around<K, V> {
        let (mut below, mut above) = (None, None);
        self.descend(
            |k| k <= key,
            |node, i| {
                if i > 0 {
                    below = Some((node.keys[i - 1], node.values[i - 1]));
                }
                if i < node.len() {
                    above = Some((node.keys[i], node.values[i]));
                }
            },
        );
        (below, above)
    }

    /// Every entry in key order, in O(n) (for inspection and checks).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        // Each level's node and the next of its keys to hand out.
        let mut stack = Path::new();
        let mut down = if self.len > 0 { self.root } else { NIL };
        core::iter::from_fn(move || {
            while down != NIL {
                stack.push((down, 0)).ok()?;
                let node = self.node(down);
                down = if node.leaf { NIL } else { node.children[0] };
            }
            loop {
                let (n, i) = stack.pop()?;
                let node = self.node(n);
                if i < node.len() {
                    stack.push((n, i + 1)).ok()?;
                    if !node.leaf {
                        down = node.children[i + 1];
                    }
                    return Some((node.keys[i], node.values[i]));
                }
            }
        })
    }

    /// Adds `key` (not present yet), or hands the entry back if the table is full (never
    /// after [`BTree::make_room`]).
    pub(crate) fn insert(&mut self, key: K, value: V) -> Result<(), (K, V)> {
        debug_assert!(self.find(&key).is_none(), "key inserted twice");
        if self.root == NIL {
            self.root = self
                .alloc(Node::new(key, value, true))
                .ok_or((key, value))?;
            self.height = 1;
            self.len = 1;
            return Ok(());
        }
        // A lone leaf with room is a sorted array: no path, no split.
        if self.height == 1 && self.node(self.root).len() < MAX {
            let root = self.root;
            let i = self.node(root).keys().partition_point(|k| *k < key);
            self.node_mut(root).insert_at(i, key, value, NIL);
            self.len += 1;
            return Ok(());
        }
        self.insert_deep(key, value)
    }

    /// [`BTree::insert`] into a tree of more than one node, or a full one: kept apart so that
    /// the common small case above carries none of its state.
    #[inline(never)]
    fn insert_deep(&mut self, key: K, value: V) -> Result<(), (K, V)> {
        if !self.make_room(1) {
            return Err((key, value));
        }
        let mut path = Path::new();
        let mut n = self.root;
        loop {
            let node = self.node(n);
            let i = node.keys().partition_point(|k| *k < key);
            if node.leaf {
                self.node_mut(n).insert_at(i, key, value, NIL);
                break;
            }
            let pushed = path.push((n, i));
            debug_assert!(pushed.is_ok(), "the tree is at most MAX_HEIGHT deep");
            n = node.children[i];
        }
        self.len += 1;
        // Split full nodes on the way back up.
        while self.node(n).len() > MAX {
            const MID: usize = CAP / 2;
            let moved = CAP - MID - 1;
            let full = self.node(n);
            let (up_key, up_value) = (full.keys[MID], full.values[MID]);
            let mut right = Node::new(full.keys[MID + 1], full.values[MID + 1], full.leaf);
            right.keys[..moved].copy_from_slice(&full.keys[MID + 1..]);
            right.values[..moved].copy_from_slice(&full.values[MID + 1..]);
            right.children[..=moved].copy_from_slice(&full.children[MID + 1..]);
            right.len = moved as u8;
            self.node_mut(n).len = MID as u8;
            let Some(right) = self.alloc(right) else {
                unreachable!("make_room reserved the nodes");
            };
            match path.pop() {
                Some((parent, i)) => {
                    self.node_mut(parent).insert_at(i, up_key, up_value, right);
                    n = parent;
                }
                None => {
                    let mut root = Node::new(up_key, up_value, false);
                    root.children[0] = n;
                    root.children[1] = right;
                    let Some(root) = self.alloc(root) else {
                        unreachable!("make_room reserved the nodes");
                    };
                    self.root = root;
                    self.height += 1;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Removes `key`; returns its value if it was present.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        // A lone leaf is a sorted array: no path, no underflow.
        if self.height == 1 {
            let root = self.root;
            let i = self.node(root).keys().binary_search(key).ok()?;
            let (_, value, _) = self.node_mut(root).remove_at(i);
            self.len -= 1;
            return Some(value);
        }
        self.remove_deep(key)
    }

    /// [`BTree::remove`] from a tree of more than one node: kept apart so that the common
    /// small case above carries none of its state.
    #[inline(never)]
    fn remove_deep(&mut self, key: &K) -> Option<V> {
        let mut path = Path::new();
        let mut n = self.root;
        let (found, i) = loop {
            if n == NIL || self.len == 0 {
                return None;
            }
            let node = self.node(n);
            match node.keys().binary_search(key) {
                Ok(i) => break (n, i),
                Err(_) if node.leaf => return None,
                Err(i) => {
                    let pushed = path.push((n, i));
                    debug_assert!(pushed.is_ok(), "the tree is at most MAX_HEIGHT deep");
                    n = node.children[i];
                }
            }
        };
        let value = self.node(found).values[i];
        let leaf = if self.node(found).leaf {
            self.node_mut(found).remove_at(i);
            found
        } else {
            // The predecessor, the last key of the left subtree's last leaf, takes its place.
            let pushed = path.push((found, i));
            debug_assert!(pushed.is_ok(), "the tree is at most MAX_HEIGHT deep");
            let mut m = self.node(found).children[i];
            while !self.node(m).leaf {
                let last = self.node(m).len();
                let pushed = path.push((m, last));
                debug_assert!(pushed.is_ok(), "the tree is at most MAX_HEIGHT deep");
                m = self.node(m).children[last];
            }
            let last = self.node(m).len() - 1;
            let (k, v, _) = self.node_mut(m).remove_at(last);
            let node = self.node_mut(found);
            node.keys[i] = k;
            node.values[i] = v;
            m
        };
        self.len -= 1;
        self.fix_underflow(leaf, &mut path);
        Some(value)
    }

    /// Refills nodes left with fewer than [`MIN`] keys, from `n` up: borrows from a sibling
    /// that can spare a key, or merges with one.
    fn fix_underflow(&mut self, mut n: u32, path: &mut Path) {
        while let Some((parent, i)) = path.pop() {
            if self.node(n).len() >= MIN {
                return;
            }
            let p = self.node(parent);
            let (left, right) = (
                if i > 0 { p.children[i - 1] } else { NIL },
                if i < p.len() { p.children[i + 1] } else { NIL },
            );
            if left != NIL && self.node(left).len() > MIN {
                // Rotate right: the parent's separator comes down, the left sibling's last
                // key goes up.
                let (sep_key, sep_value) = (p.keys[i - 1], p.values[i - 1]);
                let (k, v, child) = {
                    let l = self.node_mut(left);
                    let last = l.len() - 1;
                    let moved = (l.keys[last], l.values[last], l.children[last + 1]);
                    l.len -= 1;
                    moved
                };
                let node = self.node_mut(n);
                let len = node.len();
                node.keys.copy_within(0..len, 1);
                node.values.copy_within(0..len, 1);
                node.children.copy_within(0..=len, 1);
                node.keys[0] = sep_key;
                node.values[0] = sep_value;
                node.children[0] = child;
                node.len += 1;
                let parent = self.node_mut(parent);
                parent.keys[i - 1] = k;
                parent.values[i - 1] = v;
                return;
            }
            if right != NIL && self.node(right).len() > MIN {
                // Rotate left: the separator comes down, the right sibling's first key goes up.
                let p = self.node(parent);
                let (sep_key, sep_value) = (p.keys[i], p.values[i]);
                let (k, v, child) = {
                    let r = self.node_mut(right);
                    let moved = (r.keys[0], r.values[0], r.children[0]);
                    let len = r.len();
                    r.keys.copy_within(1..len, 0);
                    r.values.copy_within(1..len, 0);
                    r.children.copy_within(1..=len, 0);
                    r.len -= 1;
                    moved
                };
                let node = self.node_mut(n);
                let len = node.len();
                node.keys[len] = sep_key;
                node.values[len] = sep_value;
                node.children[len + 1] = child;
                node.len += 1;
                let parent = self.node_mut(parent);
                parent.keys[i] = k;
                parent.values[i] = v;
                return;
            }
            // Merge with a sibling: left + separator + right into the left one.
            let at = if i > 0 { i - 1 } else { i };
            let p = self.node(parent);
            let (sep_key, sep_value) = (p.keys[at], p.values[at]);
            let (left, right) = (p.children[at], p.children[at + 1]);
            let (l, r) = self.pair_mut(left, right);
            let (ll, rl) = (l.len(), r.len());
            l.keys[ll] = sep_key;
            l.values[ll] = sep_value;
            l.keys[ll + 1..=ll + rl].copy_from_slice(&r.keys[..rl]);
            l.values[ll + 1..=ll + rl].copy_from_slice(&r.values[..rl]);
            l.children[ll + 1..=ll + rl + 1].copy_from_slice(&r.children[..=rl]);
            l.len = (ll + rl + 1) as u8;
            self.node_mut(parent).remove_at(at);
            self.free_node(right);
            n = parent;
        }
        // `n` is the root: an inner root left without keys hands over to its one child.
        let root = self.node(n);
        if root.len() == 0 && !root.leaf {
            self.root = root.children[0];
            self.height -= 1;
            self.free_node(n);
        }
    }

    /// Checks order, fill, depth, counts and the free list; returns what is broken.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        fn walk<K: Ord + Copy, V: Copy, Tab: Table<Node<K, V>>>(
            t: &BTree<K, V, Tab>,
            n: u32,
            depth: usize,
            lo: Option<K>,
            hi: Option<K>,
            seen: &mut (usize, usize),
        ) -> Result<(), &'static str> {
            let node = t.nodes.items().get(n as usize).ok_or("link out of range")?;
            seen.0 += 1;
            seen.1 += node.len();
            if seen.0 > t.nodes.items().len() {
                return Err("tree has a cycle");
            }
            if node.len() > MAX || (n != t.root && node.len() < MIN) {
                return Err("node over- or underfull");
            }
            let keys = node.keys();
            if keys.windows(2).any(|w| w[0] >= w[1])
                || keys.first().is_some_and(|k| lo.is_some_and(|lo| *k <= lo))
                || keys.last().is_some_and(|k| hi.is_some_and(|hi| *k >= hi))
            {
                return Err("tree keys out of order");
            }
            if node.leaf != (depth == t.height) {
                return Err("leaves at different depths");
            }
            if !node.leaf {
                for c in 0..=node.len() {
                    let lo = if c == 0 { lo } else { Some(keys[c - 1]) };
                    let hi = if c == node.len() { hi } else { Some(keys[c]) };
                    walk(t, node.children[c], depth + 1, lo, hi, seen)?;
                }
            }
            Ok(())
        }
        let mut seen = (0, 0);
        if self.root != NIL {
            walk(self, self.root, 1, None, None, &mut seen)?;
        }
        if seen.1 != self.len {
            return Err("tree key count wrong");
        }
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
                .children[0];
        }
        if free != self.free_count || seen.0 + free != self.nodes.items().len() {
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

    type Tree = BTree<u16, u32, Vec<Node<u16, u32>>>;

    /// Operations per proptest case; few under miri, which is slow.
    const OPS: usize = if cfg!(miri) { 40 } else { 600 };
    /// Keys in the deterministic tests: enough for three levels, fewer under miri.
    const KEYS: u16 = if cfg!(miri) { 300 } else { 2000 };

    #[test]
    fn grows_and_shrinks_through_every_shape() {
        let mut t = Tree::default();
        for k in 0..KEYS {
            assert!(t.make_room(1));
            t.insert(k, u32::from(k)).unwrap();
        }
        t.check().unwrap();
        assert!(t.height >= 2 && t.height <= 4, "height {}", t.height);
        for k in (0..KEYS).step_by(3) {
            assert_eq!(t.remove(&k), Some(u32::from(k)));
        }
        t.check().unwrap();
        for k in 0..KEYS {
            t.remove(&k);
        }
        t.check().unwrap();
        assert_eq!((t.len(), t.height), (0, 1));
        assert_eq!(t.above(&0, true), None);
        // Every node but the root came back to the free list; reuse makes no new node.
        let nodes = t.nodes.len();
        for k in 0..KEYS {
            assert!(t.make_room(1));
            t.insert(k, 0).unwrap();
        }
        assert!(
            t.nodes.len() <= nodes + 1,
            "{} nodes after {nodes}",
            t.nodes.len()
        );
        t.check().unwrap();
    }

    #[test]
    fn steady_cycles_allocate_nothing() {
        let mut t = Tree::default();
        for k in 0..KEYS / 4 {
            assert!(t.make_room(1));
            t.insert(k * 2, 0).unwrap();
        }
        assert!(t.make_room(1));
        let capacity = t.nodes.capacity();
        for round in 0..KEYS / 2 {
            let k = ((round * 7) % (KEYS / 2)) | 1;
            assert!(t.make_room(1));
            t.insert(k, 0).unwrap();
            assert_eq!(t.remove(&k), Some(0));
        }
        assert_eq!(t.nodes.capacity(), capacity);
        t.check().unwrap();
    }

    proptest! {
        #![proptest_config(crate::ordered::model_test::config())]

        /// Every operation agrees with `BTreeMap`, and the tree stays sound.
        #[test]
        fn agrees_with_btreemap(ops in proptest::collection::vec((0u8..4, 0u16..400), 0..OPS)) {
            crate::ordered::model_test::agrees_with_btreemap(Tree::default(), ops)?;
        }
    }
}
