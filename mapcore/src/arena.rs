//! Slot arenas: records that keep their place while they live, found by a typed id in O(1).
//!
//! A freed entry joins a free list threaded through the vacant entries themselves, so that
//! removing never allocates and inserting reuses the newest hole first; only an arena with no
//! hole grows its table.

use core::marker::PhantomData;

use crate::table::Table;

/// A typed index into an [`Arena`]: ids of different arenas cannot be mixed up.
pub(crate) trait Id: Copy + Eq + core::fmt::Debug {
    /// The id of the entry at `index`.
    fn from_index(index: u32) -> Self;
    /// The entry's index.
    fn index(self) -> u32;
}

/// Defines a `u32` newtype implementing [`Id`].
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(crate) struct $name(u32);

        impl $crate::arena::Id for $name {
            fn from_index(index: u32) -> Self {
                Self(index)
            }

            fn index(self) -> u32 {
                self.0
            }
        }
    };
}
pub(crate) use define_id;

/// One entry of an arena.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry<T> {
    Occupied(T),
    /// A hole; `next` is the next hole of the free list.
    Vacant {
        next: Option<u32>,
    },
}

/// Records of type `T` found by id `I`, stored in a [`Table`] of entries.
pub(crate) struct Arena<T, I, Tab> {
    entries: Tab,
    /// The most recently freed hole.
    free: Option<u32>,
    holes: usize,
    _marker: PhantomData<(T, I)>,
}

impl<T, I, Tab: Default> Default for Arena<T, I, Tab> {
    fn default() -> Self {
        Self {
            entries: Tab::default(),
            free: None,
            holes: 0,
            _marker: PhantomData,
        }
    }
}

impl<T, I: Id, Tab: Table<Entry<T>>> Arena<T, I, Tab> {
    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.entries.items().len() - self.holes
    }

    /// Whether `extra` more records fit; a growable table reserves room for them.
    #[inline]
    pub(crate) fn make_room(&mut self, extra: usize) -> bool {
        extra <= self.holes || self.entries.make_room(extra - self.holes)
    }

    /// Stores `value`; `None` if the arena is full. Inlined so that a large record is built
    /// in place rather than copied in.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> Option<I> {
        if let Some(index) = self.free {
            let entry = &mut self.entries.items_mut()[index as usize];
            if let Entry::Vacant { next } = *entry {
                self.free = next;
                self.holes -= 1;
                *entry = Entry::Occupied(value);
                return Some(I::from_index(index));
            }
            debug_assert!(false, "free list points at an occupied entry");
        }
        let id = u32::try_from(self.entries.items().len()).ok()?;
        self.entries.try_push(Entry::Occupied(value)).ok()?;
        Some(I::from_index(id))
    }

    /// Removes and returns the record `id`, if there is one.
    pub(crate) fn remove(&mut self, id: I) -> Option<T> {
        let entry = self.entries.items_mut().get_mut(id.index() as usize)?;
        if matches!(entry, Entry::Vacant { .. }) {
            return None;
        }
        let old = core::mem::replace(entry, Entry::Vacant { next: self.free });
        self.free = Some(id.index());
        self.holes += 1;
        match old {
            Entry::Occupied(value) => Some(value),
            Entry::Vacant { .. } => None,
        }
    }

    /// Drops the record `id`; whether there was one.
    pub(crate) fn free(&mut self, id: I) -> bool {
        let Some(entry) = self.entries.items_mut().get_mut(id.index() as usize) else {
            return false;
        };
        if matches!(entry, Entry::Vacant { .. }) {
            return false;
        }
        *entry = Entry::Vacant { next: self.free };
        self.free = Some(id.index());
        self.holes += 1;
        true
    }

    /// The record `id`, if there is one.
    #[inline]
    pub(crate) fn get(&self, id: I) -> Option<&T> {
        match self.entries.items().get(id.index() as usize) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    /// The record `id`, mutably, if there is one.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: I) -> Option<&mut T> {
        match self.entries.items_mut().get_mut(id.index() as usize) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    #[cfg(any(test, feature = "testing"))]
    /// Every record with its id, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.entries
            .items()
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                Entry::Occupied(value) => Some((I::from_index(index as u32), value)),
                Entry::Vacant { .. } => None,
            })
    }

    /// Whether the free list holds exactly the vacant entries (for invariant checks).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn free_list_is_sound(&self) -> bool {
        let entries = self.entries.items();
        let mut seen = 0;
        let mut next = self.free;
        while let Some(index) = next {
            match entries.get(index as usize) {
                Some(Entry::Vacant { next: after }) if seen < entries.len() => {
                    seen += 1;
                    next = *after;
                }
                _ => return false,
            }
        }
        let vacant = entries
            .iter()
            .filter(|e| matches!(e, Entry::Vacant { .. }))
            .count();
        seen == vacant && vacant == self.holes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    define_id!(
        /// A test id.
        TestId
    );

    type Small = Arena<u64, TestId, heapless::Vec<Entry<u64>, 3>>;

    #[test]
    fn ids_stay_put_and_holes_are_reused() {
        let mut arena = Small::default();
        assert!(!arena.free(TestId::from_index(0)));
        let a = arena.insert(10).unwrap();
        let b = arena.insert(20).unwrap();
        let c = arena.insert(30).unwrap();
        assert_eq!(arena.insert(40), None, "full");
        assert!(!arena.make_room(1));
        assert!(arena.free(b));
        assert!(!arena.free(b), "freed twice");
        assert_eq!(arena.remove(b), None, "removed after it was freed");
        assert_eq!(arena.get(b), None);
        assert!(arena.make_room(1));
        assert!(!arena.make_room(2));
        assert_eq!((arena.get(a), arena.get(c)), (Some(&10), Some(&30)));
        let d = arena.insert(50).unwrap();
        assert_eq!(d, b, "the hole is reused");
        assert_eq!(arena.len(), 3);
        assert!(arena.free_list_is_sound());
        let all: std::vec::Vec<_> = arena.iter().map(|(id, v)| (id.index(), *v)).collect();
        assert_eq!(all, [(0, 10), (1, 50), (2, 30)]);
    }

    #[test]
    fn newest_hole_first() {
        let mut arena = Small::default();
        let ids: std::vec::Vec<TestId> = (0..3).map(|v| arena.insert(v).unwrap()).collect();
        arena.remove(ids[0]);
        arena.remove(ids[2]);
        assert!(arena.free_list_is_sound());
        assert_eq!(arena.insert(7), Some(ids[2]));
        assert_eq!(arena.insert(8), Some(ids[0]));
        assert_eq!(arena.len(), 3);
        assert!(arena.free_list_is_sound());
    }
}
