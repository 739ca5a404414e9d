//! LLVM's shared-memory mapper service (`llvm-jitlink --use-memmgr=shared`,
//! `clang-repl --use-shared-memory`): the controller writes the contents itself, through its
//! own mapping of a named POSIX shared-memory object, and the executor only maps and protects.
//!
//! - reserve creates a slab of the service's own map, on a [`DualMappedHost`] backed by named
//!   shared memory: the execution view, never writable and executable at once, and a read-write
//!   alias; it answers the base and the object's name. LLVM's controller opens the name, unlinks
//!   it at once and maps the object read-write to write the contents.
//! - initialize names the reservation and the segments, without content: they are initialized
//!   through mapcore's contract with [`Content::InPlace`](mapcore_std::Content::InPlace) (all
//!   checks before any side effect, full rollback, actions never lost), after checking that
//!   every segment lies in that reservation. The name is unlinked then if the controller has
//!   not done it: it has opened the object to write the contents.
//! - deinitialize runs the dealloc actions and resets the pages (freed code pages are discarded
//!   and no longer executable; LLVM's own service leaves them executable, holding old code).
//!   LLVM 22's controller also deinitializes an allocation it abandons before initializing it
//!   (a failed link): free pages of a slab, which no initialize ever answered with that key, are
//!   such an allocation and nothing to do; a key deinitialized twice is still an error.
//! - release deinitializes what is left and unmaps the slab.
//!
//! The host maps a file again where the kernel refuses to add execute permission, so the
//! service works under memory-deny-write-execute (`PR_SET_MDWE`), where LLVM's fails. The map
//! is dual-mapped whatever W^X mode the memory manager uses (`MAPCORE_EXECUTOR_WX`): the
//! controller's writes need a file behind each slab.
//!
//! No name outlives the executor: besides the unlinks above and the release of every slab at
//! the end of the session, a [`ShmGuard`] unlinks the names left when the executor is killed
//! (unless a debugger traces it).
//! The controller keeps a writable mapping of each slab until it releases it: that is LLVM's
//! design, and the reason the execution view alone is what W^X covers here.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use mapcore_sps::{AddrListArgs, ReserveArgs, SharedInitializeArgs, SharedReservation};
use mapcore_std::{Backing, Config, DualMappedHost, Error, StdHost, StdJitMap};

use super::action_context::ActionContext;
use super::anchor::Anchor;
use super::memory::{self, check_instance, map_failure};
use super::reply::{self, Failure};
use super::shm_guard::{self, ShmGuard};
use super::stats::MapCounters;

/// The service's state: its map, what its actions reach, and the guard of its names.
#[derive(Debug)]
pub(crate) struct SharedMemory {
    /// Declared before `actions`, so dropped first: its drop runs the remaining dealloc
    /// actions, which reach `actions`.
    map: StdJitMap,
    actions: Rc<ActionContext>,
    /// What this executor's names start with in `/dev/shm`.
    prefix: String,
    /// Started by the first reserve, unless a debugger traces the executor.
    guard: Option<ShmGuard>,
    /// Keys initialize answered, live or deinitialized since, so that a key deinitialized twice
    /// is told from an abandoned allocation; forgotten when their slab is released.
    keys: BTreeSet<usize>,
    /// Bases of the slabs the controller released, until a reservation gets one back.
    released: HashSet<usize>,
}

impl SharedMemory {
    /// A service with an empty map (no system call until the first reserve); its actions reach
    /// `actions`.
    pub(crate) fn new(actions: Rc<ActionContext>) -> Self {
        // A random word keeps the names of executors that reuse a process id apart, so that a
        // guard never unlinks another executor's names.
        let mut nonce = RandomState::new().build_hasher();
        nonce.write_u32(std::process::id());
        let tag = format!("mapcore_{:016x}", nonce.finish());
        let host = DualMappedHost::with_backing(Backing::SharedMemory {
            prefix: tag.clone(),
        });
        Self {
            map: StdJitMap::with_config(StdHost::DualMapped(host), Config::DEFAULT),
            actions,
            // The host names each object `/<tag>_<pid>_<n>`.
            prefix: format!("{tag}_{}_", std::process::id()),
            guard: None,
            keys: BTreeSet::new(),
            released: HashSet::new(),
        }
    }

    fn host(&self) -> &DualMappedHost {
        match self.map.host() {
            StdHost::DualMapped(host) => host,
            StdHost::Flip(_) => unreachable!("the service's map is always dual-mapped"),
        }
    }

    /// The service's map.
    pub(crate) fn map(&self) -> &StdJitMap {
        &self.map
    }
}

/// reserve: `(Addr instance, u64 size)` → `Expected<(Addr base, String name)>`.
pub(crate) fn reserve(
    service: &mut SharedMemory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "shared-memory reserve";
    stats.reserve_calls += 1;
    let args = ReserveArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::SharedMemoryMapper, NAME, args.instance)?;
    if service.guard.is_none() && !shm_guard::traced() {
        let guard = ShmGuard::start(&service.prefix).map_err(|e| {
            Failure::rejected(format_args!(
                "{NAME}: cannot start the guard that unlinks the shared-memory names if the \
                 executor is killed: {e}"
            ))
        })?;
        service.guard = Some(guard);
    }
    let base = service
        .map
        .reserve(args.size)
        .map_err(|e| map_failure(&service.actions, NAME, &e))?;
    let name = service.host().shared_memory_name(base);
    let name = name.as_ref().and_then(|n| n.to_str().ok());
    let Some(name) = name else {
        // Cannot happen: the host names every slab with an ASCII name; give the slab back.
        let released = service.map.release(base);
        debug_assert!(released.is_ok(), "a fresh slab is released: {released:?}");
        return Err(Failure::rejected(format_args!(
            "{NAME}: the slab at {base:#x} has no shared-memory name"
        )));
    };
    stats.slabs_reserved += 1;
    stats.reserve_bytes += args.size as u64;
    if service.released.remove(&base) {
        stats.slabs_reused += 1;
    }
    let reservation = SharedReservation {
        base: base as u64,
        name,
    };
    reply::encode(32 + name.len(), |w| w.expected(Ok(&reservation)))
}

/// initialize: `(Addr instance, Addr reservation, SharedMemoryFinalizeRequest)` →
/// `Expected<Addr key>`.
pub(crate) fn initialize(
    service: &mut SharedMemory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "shared-memory initialize";
    stats.initialize_calls += 1;
    let actions = &service.actions;
    let args = SharedInitializeArgs::decode(args, |stored| actions.bind(stored))
        .map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::SharedMemoryMapper, NAME, args.instance)?;
    check_inside_reservation(service.host(), &args)?;
    let request = args.init_request();
    let key = memory::initialize_request(&service.map, &service.actions, &request, NAME)?;
    // The controller wrote the contents through the name: no one needs it any more.
    service.host().unlink_shared_memory_name(args.reservation);
    service.keys.insert(key);
    stats.segments_initialized += request.segments.len() as u64;
    reply::expected_addr(key as u64)
}

/// Every segment lies in the reservation the request names, a slab of this service.
fn check_inside_reservation(
    host: &DualMappedHost,
    args: &SharedInitializeArgs<'_>,
) -> Result<(), Failure> {
    const NAME: &str = "shared-memory initialize";
    let base = args.reservation;
    let Some(size) = host.slab_size(base) else {
        return Err(Failure::rejected(format_args!(
            "{NAME}: {base:#x} is not a reservation of this service"
        )));
    };
    for (index, segment) in args.segments.iter().enumerate() {
        let inside = segment.addr >= base
            && segment
                .addr
                .checked_add(segment.size)
                .is_some_and(|end| end <= base + size);
        if !inside {
            return Err(Failure::rejected(format_args!(
                "{NAME}: segment {index} ({:#x}, {:#x} bytes) is outside the reservation at \
                 {base:#x} ({size:#x} bytes)",
                segment.addr, segment.size
            )));
        }
    }
    Ok(())
}

/// deinitialize: `(Addr instance, Seq<Addr key>)` → `Error`. Back to front; every entry is
/// tried; the error lists each failing entry.
pub(crate) fn deinitialize(
    service: &mut SharedMemory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "shared-memory deinitialize";
    stats.deinitialize_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::SharedMemoryMapper, NAME, args.instance)?;
    let (page, keys) = (service.map.page_size(), &service.keys);
    let abandoned = |key: usize, error: &mapcore_std::StdError| {
        matches!(error, Error::UnknownKey { .. })
            && key.is_multiple_of(page)
            && !keys.contains(&key)
    };
    memory::deinitialize_all(
        &service.map,
        &service.actions,
        stats,
        NAME,
        args.addrs,
        abandoned,
    )
}

/// release: `(Addr instance, Seq<Addr base>)` → `Error`. Back to front; every entry is tried;
/// the error lists each failing entry.
pub(crate) fn release(
    service: &mut SharedMemory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "shared-memory release";
    stats.release_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::SharedMemoryMapper, NAME, args.instance)?;
    let sizes: Vec<(usize, Option<usize>)> = args
        .addrs
        .iter()
        .map(|base| (base, service.host().slab_size(base)))
        .collect();
    let reply = memory::release_all(
        &service.map,
        &service.actions,
        stats,
        NAME,
        args.addrs,
        &mut service.released,
    );
    for (base, size) in sizes {
        if let Some(size) = size.filter(|_| service.host().slab_size(base).is_none()) {
            let gone: Vec<usize> = service.keys.range(base..base + size).copied().collect();
            for key in gone {
                service.keys.remove(&key);
            }
        }
    }
    reply
}
