//! What the session registered with the runtime or the debugger, by the memory it covers:
//! EH-frame sections (libgcc's `__register_frame`) and debug objects (the GDB JIT interface).
//!
//! Each registration covers its own range (the section, the object file) and, when an alloc
//! action of an initialize made it, that region's extent (the code it describes). Whatever
//! route made a registration (a finalize action with or without its dealloc pair, a direct
//! call), none may outlive that memory: a stale EH frame crashes the next unwind, a stale debug
//! entry shows gdb code that is gone. So before a deinitialize resets a region's pages or a
//! release unmaps a slab, the memory manager [`sweep`](Registry::sweep)s the extent: every
//! registration overlapping it is undone at once but kept as swept, so that the region's own
//! dealloc actions, which run next, still find what they deregister; after the call,
//! [`purge`](Registry::purge) forgets the swept ones. A failing finalize action sweeps its
//! initialize's region the same way before the map rolls it back
//! ([`sweep_initializing`](Registry::sweep_initializing)), and memory that initialize frees
//! itself (Finalize lifetime) cannot be registered at all.

use super::eh_frame::EhFrameSection;
use super::gdb_jit::DebugEntry;

/// A half-open address range `[start, end)`.
pub(crate) type Extent = (u64, u64);

/// The initialize whose finalize actions run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Initializing {
    /// From its lowest segment's start to its highest one's end: the registrations its actions
    /// make describe this region.
    pub(crate) extent: Extent,
    /// Its Finalize-lifetime segments, whole pages: freed before the initialize returns, so
    /// nothing may be registered there.
    pub(crate) transient: Vec<Extent>,
}

fn overlap(a: Extent, b: Extent) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// A registration and what undoes it.
#[derive(Debug)]
enum Registered {
    EhFrame(EhFrameSection),
    Debug(DebugEntry),
}

#[derive(Debug)]
struct Registration {
    registered: Registered,
    /// The registered memory itself.
    range: Extent,
    /// The region being initialized when an alloc action made the registration.
    owner: Option<Extent>,
    /// Undone by a sweep; forgotten at the next purge.
    swept: bool,
}

impl Registration {
    fn overlaps(&self, extent: Extent) -> bool {
        overlap(self.range, extent) || self.owner.is_some_and(|owner| overlap(owner, extent))
    }

    fn undo(&mut self, counts: &mut Counts) {
        match &mut self.registered {
            Registered::EhFrame(section) => {
                section.deregister();
                counts.eh_deregister += 1;
            }
            Registered::Debug(entry) => {
                entry.unregister();
                counts.debug_deregister += 1;
            }
        }
        self.swept = true;
    }
}

/// How many registrations were made and undone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) eh_register: u64,
    pub(crate) eh_deregister: u64,
    pub(crate) debug_register: u64,
    pub(crate) debug_deregister: u64,
}

/// The session's registrations.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: Vec<Registration>,
    /// The initialize whose finalize actions run now, if any.
    initializing: Option<Initializing>,
    counts: Counts,
}

impl Registry {
    /// Sets the initialize whose finalize actions run next (`None` once they ran).
    pub(crate) fn set_initializing(&mut self, initializing: Option<Initializing>) {
        self.initializing = initializing;
    }

    /// Checks that `range` may be registered: it is not memory the current initialize frees
    /// before it returns.
    ///
    /// # Errors
    ///
    /// `range` overlaps a Finalize-lifetime segment of the current initialize.
    pub(crate) fn check_lasting(&self, range: Extent) -> Result<(), String> {
        let transient = self.initializing.iter().flat_map(|i| &i.transient);
        match transient.copied().find(|&t| overlap(t, range)) {
            Some((start, end)) => Err(format!(
                "{:#x}..{:#x} lies in a Finalize-lifetime segment ({start:#x}..{end:#x}), \
                 freed when this initialize returns",
                range.0, range.1
            )),
            None => Ok(()),
        }
    }

    /// Whether an EH-frame section starting at `start` is registered.
    pub(crate) fn has_eh_frame(&self, start: u64) -> bool {
        self.entries.iter().any(|r| {
            !r.swept && matches!(&r.registered, Registered::EhFrame(s) if s.start() == start)
        })
    }

    /// Keeps a section just registered, covering `range`.
    pub(crate) fn add_eh_frame(&mut self, section: EhFrameSection, range: Extent) {
        self.counts.eh_register += 1;
        self.add(Registered::EhFrame(section), range);
    }

    /// Keeps a debug object just registered, covering `range`.
    pub(crate) fn add_debug(&mut self, entry: DebugEntry, range: Extent) {
        self.counts.debug_register += 1;
        self.add(Registered::Debug(entry), range);
    }

    fn add(&mut self, registered: Registered, range: Extent) {
        self.entries.push(Registration {
            registered,
            range,
            owner: self.initializing.as_ref().map(|i| i.extent),
            swept: false,
        });
    }

    /// Deregisters the EH-frame section starting at `start`, or forgets it if a sweep did
    /// already.
    ///
    /// # Errors
    ///
    /// No section starting at `start` is registered.
    pub(crate) fn remove_eh_frame(&mut self, start: u64) -> Result<(), String> {
        let index = self
            .entries
            .iter()
            .position(|r| matches!(&r.registered, Registered::EhFrame(s) if s.start() == start))
            .ok_or_else(|| format!("no EH frame registered at {start:#x}"))?;
        let mut registration = self.entries.swap_remove(index);
        if !registration.swept {
            registration.undo(&mut self.counts);
        }
        Ok(())
    }

    /// Undoes every registration overlapping `extent`, memory about to be freed; they stay
    /// listed, as swept, until the next [`purge`](Self::purge). Returns how many it undid.
    pub(crate) fn sweep(&mut self, extent: Extent) -> usize {
        let mut undone = 0;
        for registration in &mut self.entries {
            if !registration.swept && registration.overlaps(extent) {
                registration.undo(&mut self.counts);
                undone += 1;
            }
        }
        undone
    }

    /// Undoes what the current initialize registered, if one runs: a failing finalize action
    /// makes the map roll it back, and its memory must still be intact for the undoing.
    pub(crate) fn sweep_initializing(&mut self) -> usize {
        match self.initializing.as_ref().map(|i| i.extent) {
            Some(extent) => self.sweep(extent),
            None => 0,
        }
    }

    /// Forgets the swept registrations.
    pub(crate) fn purge(&mut self) {
        self.entries.retain(|r| !r.swept);
    }

    /// The counters.
    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// How many EH-frame sections and debug objects are registered now.
    pub(crate) fn live(&self) -> (usize, usize) {
        let live = self.entries.iter().filter(|r| !r.swept);
        live.fold((0, 0), |(eh, debug), r| match r.registered {
            Registered::EhFrame(_) => (eh + 1, debug),
            Registered::Debug(_) => (eh, debug + 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::gdb_jit;

    #[test]
    fn sweeps_by_range_and_by_owner() {
        let mut registry = Registry::default();
        registry.add_debug(DebugEntry::register(0x9000, 0x100, false), (0x9000, 0x9100));
        registry.set_initializing(Some(Initializing {
            extent: (0x1000, 0x3000),
            transient: vec![(0x2000, 0x3000)],
        }));
        assert!(registry.check_lasting((0x1fff, 0x2001)).is_err());
        assert!(registry.check_lasting((0x1000, 0x2000)).is_ok());
        registry.add_debug(DebugEntry::register(0xa000, 0x100, false), (0xa000, 0xa100));
        registry.set_initializing(None);
        assert!(registry.check_lasting((0x1fff, 0x2001)).is_ok());
        assert_eq!(registry.sweep_initializing(), 0);
        assert_eq!(registry.live(), (0, 2));
        // Freeing neither range: nothing happens.
        assert_eq!(registry.sweep((0x3000, 0x9000)), 0);
        assert_eq!(registry.live(), (0, 2));
        // Freeing the owner's code undoes the second, though its object lives elsewhere.
        assert_eq!(registry.sweep((0x2fff, 0x3000)), 1);
        assert_eq!(registry.live(), (0, 1));
        assert!(!gdb_jit::listed().contains(&(0xa000, 0x100)));
        assert!(gdb_jit::listed().contains(&(0x9000, 0x100)));
        registry.sweep((0x9080, 0x9081));
        assert_eq!(registry.live(), (0, 0));
        registry.purge();
        assert!(registry.entries.is_empty());
        let counts = registry.counts();
        assert_eq!((counts.debug_register, counts.debug_deregister), (2, 2));
        assert!(registry.remove_eh_frame(0x9000).is_err());
    }
}
