//! The memory manager: reserve, initialize, deinitialize and release, each with its batch form,
//! over one [`StdJitMap`].
//!
//! LLVM 22's `__llvm_orc_SimpleExecutorMemoryManager_*_wrapper` and orc-rt's
//! `orc_rt_ci_sps_SimpleNativeMemoryMap_*` share these handlers; the wire shapes are identical
//! (see `mapcore_sps`). Every error reply carries the map's own error text.
//!
//! Alloc actions arrive as a function address plus SPS arguments. The map stores each bound to
//! the session's [`ActionContext`], which runs our own actions (EH-frame and debug-object
//! registration) directly and calls anything else through the C wrapper ABI.
//!
//! Before a deinitialize or release frees memory, the registrations covering it are undone
//! (the context's registry is swept over the region's or slab's extent, which the map tells
//! beforehand), whether or not a dealloc action asks for it; the region's own dealloc actions
//! still find theirs, and the swept ones are forgotten after the call.

use std::collections::HashSet;
use std::rc::Rc;

use mapcore_sps::{AddrListArgs, AddrSeq, InitializeArgs, ReserveArgs};
use mapcore_std::{Config, InitRequest, Lifetime, StdError, StdHost, StdJitMap, WxMode};

use super::action_context::{ActionContext, RouteFn};
use super::anchor::Anchor;
use super::failures::Failures;
use super::log::{self, Log};
use super::registry::Initializing;
use super::reply::{self, Failure};
use super::stats::{MapCounters, Shutdown};

/// The memory manager's state: the session's one map and what its actions reach.
#[derive(Debug)]
pub(crate) struct Memory {
    /// Declared before `actions`, so dropped first: its drop runs the remaining dealloc actions,
    /// which reach `actions`.
    map: StdJitMap,
    actions: Rc<ActionContext>,
    /// Which W^X mode the map uses, and why.
    wx: WxChoice,
    /// Bases of the slabs the controller released, until a reservation gets one back.
    released: HashSet<usize>,
}

/// The W^X mode of the session's map and why it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WxChoice {
    /// `flip` or `dual-mapped`.
    pub(crate) mode: WxMode,
    /// One sentence: what was detected, or that `MAPCORE_EXECUTOR_WX` chose it.
    pub(crate) reason: &'static str,
}

impl WxChoice {
    /// `MAPCORE_EXECUTOR_WX=flip` or `=dual-mapped` forces a mode; otherwise
    /// [`mapcore_std::detect`] picks it. Anything else is reported and ignored.
    pub(crate) fn choose() -> Self {
        let forced = std::env::var("MAPCORE_EXECUTOR_WX").ok();
        let reason = "chosen by MAPCORE_EXECUTOR_WX";
        match forced.as_deref() {
            Some("flip") => Self {
                mode: WxMode::Flip,
                reason,
            },
            Some("dual-mapped") => Self {
                mode: WxMode::DualMapped,
                reason,
            },
            other => {
                if let Some(value) = other.filter(|v| !v.is_empty()) {
                    log::diag(format_args!(
                        "MAPCORE_EXECUTOR_WX={value:?} is neither `flip` nor `dual-mapped`; detecting"
                    ));
                }
                let detection = mapcore_std::detect();
                Self {
                    mode: detection.mode,
                    reason: detection.reason(),
                }
            }
        }
    }
}

impl Memory {
    /// A fresh map of the W^X mode `wx`; its actions' addresses are resolved by `route`.
    pub(crate) fn new(route: RouteFn, log: Log, wx: WxChoice) -> Self {
        let map = StdJitMap::with_config(StdHost::of_mode(wx.mode), Config::DEFAULT);
        Self {
            map,
            actions: ActionContext::new(route, log),
            wx,
            released: HashSet::new(),
        }
    }

    /// The map's W^X mode and why.
    pub(crate) fn wx(&self) -> WxChoice {
        self.wx
    }

    /// What the map's actions reach.
    pub(crate) fn actions(&self) -> &ActionContext {
        &self.actions
    }

    /// The session's action context, for another map whose actions reach the same state.
    pub(crate) fn shared_actions(&self) -> Rc<ActionContext> {
        Rc::clone(&self.actions)
    }

    /// The session's map.
    pub(crate) fn map(&self) -> &StdJitMap {
        &self.map
    }

    /// The page size the map works with, advertised in the Setup message.
    pub(crate) fn page_size(&self) -> usize {
        self.map.page_size()
    }
}

/// Releases every slab of `map`, running its remaining dealloc actions, and says what it held;
/// failures are logged under `what`. For the end of a session, between the caller's sweep of
/// every registration and its purge (`Session::shutdown`).
pub(crate) fn shutdown(map: &StdJitMap, actions: &ActionContext, what: &str) -> Shutdown {
    let live_slabs_at_eof = map.slab_count();
    let live_regions_at_eof = map.region_count();
    let result = map.shutdown();
    let live_slabs_after_shutdown = map.slab_count();
    let failures = actions.take_failures();
    if let Err(e) = &result {
        log::diag(format_args!("{what}: {e}{}", detail(&failures)));
    } else if !failures.is_empty() {
        log::diag(format_args!(
            "{what}: dealloc actions failed{}",
            detail(&failures)
        ));
    }
    Shutdown {
        live_slabs_at_eof,
        live_regions_at_eof,
        live_slabs_after_shutdown,
        shutdown_failed: result.is_err(),
    }
}

/// `": message; message"` for the failed actions, or nothing.
fn detail(failures: &Failures) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(": {failures}")
    }
}

/// A map error, with the messages of the actions that failed during the call.
pub(crate) fn map_failure(actions: &ActionContext, wrapper: &str, error: &StdError) -> Failure {
    Failure::rejected(format_args!(
        "{wrapper}: {error}{}",
        detail(&actions.take_failures())
    ))
}

/// What the request's finalize actions may register: the region they belong to, from the
/// lowest segment's start to the highest one's end, and the pages freed when it returns.
fn initializing(request: &InitRequest<'_>, page_size: usize) -> Option<Initializing> {
    let segments = request.segments.iter();
    let starts = segments.clone().map(|s| s.addr as u64);
    let ends = segments
        .clone()
        .map(|s| s.addr.saturating_add(s.size) as u64);
    let extent = (starts.min()?, ends.max()?);
    let transient = segments
        .filter(|s| s.group.lifetime == Lifetime::Finalize)
        .map(|s| {
            let pages = s.size.div_ceil(page_size).saturating_mul(page_size);
            (s.addr as u64, s.addr.saturating_add(pages) as u64)
        })
        .collect();
    Some(Initializing { extent, transient })
}

/// Whether `instance` is the one advertised as `anchor`'s.
pub(crate) fn check_instance(anchor: Anchor, wrapper: &str, instance: u64) -> Result<(), Failure> {
    if instance == anchor.addr() {
        Ok(())
    } else {
        Err(Failure::wrong_instance(wrapper, instance))
    }
}

/// reserve: `(Addr instance, u64 size)` → `Expected<Addr base>`.
pub(crate) fn reserve(
    memory: &mut Memory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "reserve";
    stats.reserve_calls += 1;
    let args = ReserveArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::MemoryManager, NAME, args.instance)?;
    let base = memory
        .map
        .reserve(args.size)
        .map_err(|e| map_failure(&memory.actions, NAME, &e))?;
    stats.slabs_reserved += 1;
    stats.reserve_bytes += args.size as u64;
    if memory.released.remove(&base) {
        stats.slabs_reused += 1;
    }
    reply::expected_addr(base as u64)
}

/// initialize: `(Addr instance, FinalizeRequest)` → `Expected<Addr key>`.
pub(crate) fn initialize(
    memory: &mut Memory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "initialize";
    stats.initialize_calls += 1;
    let actions = &memory.actions;
    let args = InitializeArgs::decode(args, |stored| actions.bind(stored))
        .map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::MemoryManager, NAME, args.instance)?;
    let request = args.init_request();
    let key = initialize_request(&memory.map, &memory.actions, &request, NAME)?;
    stats.segments_initialized += request.segments.len() as u64;
    reply::expected_addr(key as u64)
}

/// Initializes `request` on `map`, telling the actions what they may register; a rolled-back
/// request has what its actions registered undone.
pub(crate) fn initialize_request(
    map: &StdJitMap,
    actions: &ActionContext,
    request: &InitRequest<'_>,
    wrapper: &str,
) -> Result<usize, Failure> {
    actions.take_failures();
    let initializing = initializing(request, map.page_size());
    let extent = initializing.as_ref().map(|i| i.extent);
    actions.set_initializing(initializing);
    let initialized = map.initialize(request);
    actions.set_initializing(None);
    if initialized.is_err() {
        // Rolled back: a failing action had what the region's actions registered undone
        // (`ActionContext`); a host failure after the actions leaves it to this sweep.
        if let Some(extent) = extent {
            actions.sweep(extent);
        }
        actions.purge();
    }
    initialized.map_err(|e| map_failure(actions, wrapper, &e))
}

/// deinitialize (LLVM) / deinitializeMultiple (orc-rt): `(Addr instance, Seq<Addr key>)` →
/// `Error`. Back to front; every entry is tried; the error lists the first failing entries and
/// counts the others.
pub(crate) fn deinitialize(
    memory: &mut Memory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "deinitialize";
    stats.deinitialize_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::MemoryManager, NAME, args.instance)?;
    deinitialize_all(
        &memory.map,
        &memory.actions,
        stats,
        NAME,
        args.addrs,
        |_, _| false,
    )
}

/// Deinitializes the regions at `keys` of `map`, back to front, after undoing the
/// registrations in them; every entry is tried; the error lists the first failing entries but
/// those `abandoned` says the caller's protocol treats as done (given the key and the map's
/// error), and counts the others.
pub(crate) fn deinitialize_all(
    map: &StdJitMap,
    actions: &ActionContext,
    stats: &mut MapCounters,
    wrapper: &str,
    keys: AddrSeq<'_>,
    abandoned: impl Fn(usize, &StdError) -> bool,
) -> Result<Vec<u8>, Failure> {
    let keys: Vec<usize> = keys.iter().collect();
    let before = map.region_count();
    actions.take_failures();
    for &key in &keys {
        if let Some((start, end)) = map.region_extent(key) {
            actions.sweep((start as u64, end as u64));
        }
    }
    let mut failures = Failures::default();
    let (mut reported, mut failed) = (0, 0);
    let aggregate = map.deinitialize_multiple(&keys, |index, error| {
        reported += 1;
        if !abandoned(keys[index], &error) {
            failed += 1;
            failures.push(|| format!("key {:#x} (entry {index}): {error}", keys[index]));
        }
    });
    debug_assert_eq!(
        aggregate.is_err(),
        reported > 0,
        "every failing entry is reported"
    );
    actions.purge();
    stats.regions_deinitialized += before.saturating_sub(map.region_count()) as u64;
    let result = if failed == 0 {
        Ok(())
    } else {
        Err(mapcore_std::Error::Batch { failed })
    };
    batch_reply(actions, wrapper, result, failures)
}

/// release (LLVM) / releaseMultiple (orc-rt): `(Addr instance, Seq<Addr base>)` → `Error`.
/// Back to front; every entry is tried; the error lists the first failing entries and counts
/// the others.
pub(crate) fn release(
    memory: &mut Memory,
    stats: &mut MapCounters,
    args: &[u8],
) -> Result<Vec<u8>, Failure> {
    const NAME: &str = "release";
    stats.release_calls += 1;
    let args = AddrListArgs::decode(args).map_err(|e| Failure::decode(NAME, e))?;
    check_instance(Anchor::MemoryManager, NAME, args.instance)?;
    release_all(
        &memory.map,
        &memory.actions,
        stats,
        NAME,
        args.addrs,
        &mut memory.released,
    )
}

/// Releases the slabs at `bases` of `map`, back to front, after undoing the registrations in
/// them, and adds the bases released to `released`; every entry is tried; the error lists the
/// first failing entries and counts the others.
pub(crate) fn release_all(
    map: &StdJitMap,
    actions: &ActionContext,
    stats: &mut MapCounters,
    wrapper: &str,
    bases: AddrSeq<'_>,
    released: &mut HashSet<usize>,
) -> Result<Vec<u8>, Failure> {
    let bases: Vec<usize> = bases.iter().collect();
    let before = map.slab_count();
    actions.take_failures();
    for &base in &bases {
        if let Some(size) = map.slab_size(base) {
            actions.sweep((base as u64, base.saturating_add(size) as u64));
        }
    }
    let mut failures = Failures::default();
    let mut failed = HashSet::new();
    let result = map.release_multiple(&bases, |index, error| {
        failed.insert(index);
        failures.push(|| format!("slab {:#x} (entry {index}): {error}", bases[index]));
    });
    actions.purge();
    stats.slabs_released += before.saturating_sub(map.slab_count()) as u64;
    let gone = bases
        .iter()
        .enumerate()
        .filter(|(index, _)| !failed.contains(index));
    released.extend(gone.map(|(_, &base)| base));
    batch_reply(actions, wrapper, result, failures)
}

fn batch_reply(
    actions: &ActionContext,
    wrapper: &str,
    result: Result<(), StdError>,
    failures: Failures,
) -> Result<Vec<u8>, Failure> {
    let actions = actions.take_failures();
    match result {
        Ok(()) => Ok(reply::no_error()),
        Err(error) => Err(Failure::rejected(format_args!(
            "{wrapper}: {error}: {failures}{}",
            detail(&actions)
        ))),
    }
}
